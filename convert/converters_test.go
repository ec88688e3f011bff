package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/python"
	"github.com/onnx2pt/onnx2pt/report"
)

// A conversion with user converters is up to date while each converter
// file has the content it had when it was loaded, and the list is the
// same; a module converter counts by its name.
func TestUserConvertersInUpToDate(t *testing.T) {
	setup := func(t *testing.T) (config.Job, string) {
		j := converted(t)
		dir := filepath.Dir(j.Model.Input)
		ops := filepath.Join(dir, "my_ops.py")
		if err := os.WriteFile(ops, []byte("# converters\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		sum, err := fileSHA256(ops)
		if err != nil {
			t.Fatal(err)
		}
		j.Converters = []string{ops, "my_package.converters"}
		// What the worker's report records: the converters as loaded, and
		// the fingerprint made with them.
		rep, err := report.Read(j.Model.Paths().Report)
		if err != nil {
			t.Fatal(err)
		}
		rep.Converters = []report.Converter{
			{Path: ops, Module: "my_ops", SHA256: sum, Nodes: []string{"scale"}},
			{Module: "my_package.converters", SHA256: "not counted"},
		}
		rep.Fingerprint = fingerprint(rep.Source, j, "env1", loadedIDs(rep.Converters))
		if rep.Fingerprint != Fingerprint(rep.Source, j, "env1") {
			t.Fatal("the fingerprint of the converters loaded differs from that of the same files")
		}
		if err := report.Write(j.Model.Paths().Report, rep); err != nil {
			t.Fatal(err)
		}
		return j, ops
	}
	j, _ := setup(t)
	if fresh, why := UpToDate(j, "env1"); !fresh {
		t.Fatalf("unchanged converters: not up to date: %s", why)
	}
	for _, c := range []struct {
		name   string
		change func(j *config.Job, ops string)
		why    string
	}{
		{"file changed", func(_ *config.Job, ops string) {
			os.WriteFile(ops, []byte("# converters, edited\n"), 0o644)
		}, "user converter " + "OPS" + " changed"},
		{"file removed", func(_ *config.Job, ops string) { os.Remove(ops) }, "user converter OPS changed"},
		{"module renamed", func(j *config.Job, _ string) { j.Converters[1] = "my_package.other" }, "user converter my_package.other changed"},
		{"one left out", func(j *config.Job, _ string) { j.Converters = j.Converters[:1] }, "the user converters changed"},
		{"none any more", func(j *config.Job, _ string) { j.Converters = nil }, "the user converters changed"},
		{"order changed", func(j *config.Job, _ string) { j.Converters[0], j.Converters[1] = j.Converters[1], j.Converters[0] }, "changed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			j, ops := setup(t)
			c.change(&j, ops)
			fresh, why := UpToDate(j, "env1")
			if want := strings.ReplaceAll(c.why, "OPS", ops); fresh || !strings.Contains(why, want) {
				t.Errorf("fresh=%v why=%q, want stale because %q", fresh, why, want)
			}
		})
	}
}

// Reports written before there were user converters stay up to date: no
// converters leave the fingerprint as it was.
func TestNoConvertersLeaveTheFingerprint(t *testing.T) {
	j := converted(t)
	src := report.Source{SHA256: "abc"}
	// The fingerprint as it was made before.
	data, _ := json.Marshal(struct {
		Format    int                   `json:"format"`
		Source    string                `json:"source"`
		External  []report.ExternalFile `json:"external"`
		Data      []string              `json:"data"`
		Verify    config.VerifyConfig   `json:"verify"`
		Artifacts config.Artifacts      `json:"artifacts"`
		Helpers   string                `json:"helpers"`
		Env       string                `json:"env"`
	}{fingerprintFormat, src.SHA256, src.ExternalData, dataSHA256(j.Model.Data), j.Verify, j.Artifacts, python.Version(), "env1"})
	sum := sha256.Sum256(data)
	if before := hex.EncodeToString(sum[:]); Fingerprint(src, j, "env1") != before || fingerprint(src, j, "env1", []string{}) != before {
		t.Error("without converters, the fingerprint is not what it was")
	}
	j.Converters = []string{"my_package.converters"}
	if Fingerprint(src, j, "env1") == fingerprint(src, j, "env1", nil) {
		t.Error("a converter leaves the fingerprint as it was")
	}
}
