package convert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/report"
)

// converted lays out what a successful conversion leaves behind and
// returns the job it was made with.
func converted(t *testing.T) config.Job {
	t.Helper()
	dir := t.TempDir()
	m := config.Model{Input: filepath.Join(dir, "m.onnx"), Output: filepath.Join(dir, "m.pt")}
	v := config.VerifyConfig{BatchSizes: []int{1, 4}, Atol: 1e-5, Rtol: 1e-4}
	j := config.Job{Model: m, Verify: v, Artifacts: (&config.Config{}).ArtifactsFor(m)}
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := m.Paths()
	write(m.Input, "onnx bytes")
	write(filepath.Join(dir, "m.data"), "external weights")
	write(paths.Model, "pt bytes")
	write(paths.StateDict, "state")
	write(paths.Exported, "program")
	sum := func(path string) string {
		s, err := fileSHA256(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	src := report.Source{SHA256: sum(m.Input), ExternalData: []report.ExternalFile{
		{Location: "m.data", SHA256: sum(filepath.Join(dir, "m.data")), SizeBytes: 16},
	}}
	rep := &report.Report{
		Fingerprint: Fingerprint(src, j, "env1"),
		Source:      src,
		Output: report.Output{Path: paths.Model, SHA256: sum(paths.Model),
			StateDictPath: paths.StateDict, StateDictSHA256: sum(paths.StateDict), StateDictSizeBytes: 5},
		Verification: report.Verification{Passed: true},
		Artifacts: []report.Artifact{
			{Format: config.ArtifactTorchScript, Error: "tracing failed"},
			{Format: config.ArtifactExported, Path: paths.Exported, SHA256: sum(paths.Exported)},
		},
	}
	if err := report.Write(paths.Report, rep); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestUpToDate(t *testing.T) {
	if fresh, why := UpToDate(converted(t), "env1"); !fresh {
		t.Fatalf("an untouched conversion is not up to date: %s", why)
	}
	for _, c := range []struct {
		name   string
		change func(j *config.Job, env *string)
		why    string
	}{
		{"input changed", func(j *config.Job, _ *string) {
			m := j.Model
			os.WriteFile(m.Input, []byte("other"), 0o644)
		}, "m.onnx changed"},
		{"external data changed", func(j *config.Job, _ *string) {
			m := j.Model
			os.WriteFile(filepath.Join(filepath.Dir(m.Input), "m.data"), []byte("other weights"), 0o644)
		}, "external data m.data changed"},
		{"external data removed", func(j *config.Job, _ *string) {
			m := j.Model
			os.Remove(filepath.Join(filepath.Dir(m.Input), "m.data"))
		}, "external data m.data changed"},
		{"tolerance changed", func(j *config.Job, _ *string) { j.Verify.Atol = 1e-3 }, "settings"},
		{"environment changed", func(_ *config.Job, env *string) { *env = "env2" }, "Python packages changed"},
		{"output edited", func(j *config.Job, _ *string) {
			m := j.Model
			os.WriteFile(m.Output, []byte("edited"), 0o644)
		}, "was changed"},
		{"output removed", func(j *config.Job, _ *string) {
			os.Remove(j.Model.Output)
		}, "is missing"},
		{"state dict removed", func(j *config.Job, _ *string) {
			os.Remove(j.Model.Paths().StateDict)
		}, "state_dict.pt is missing"},
		{"state dict edited, same size", func(j *config.Job, _ *string) {
			m := j.Model
			os.WriteFile(m.Paths().StateDict, []byte("STATE"), 0o644)
		}, "state_dict.pt is missing or was changed"},
		{"artifacts changed", func(j *config.Job, _ *string) {
			j.Artifacts = config.Artifacts{Formats: []string{config.ArtifactCheckpoint}, Required: true}
		}, "settings"},
		{"exported program edited", func(j *config.Job, _ *string) {
			os.WriteFile(j.Model.Paths().Exported, []byte("other program"), 0o644)
		}, "m.pt2 is missing or was changed"},
		{"report removed", func(j *config.Job, _ *string) {
			os.Remove(j.Model.Paths().Report)
		}, "no report"},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := converted(t)
			env := "env1"
			c.change(&j, &env)
			fresh, why := UpToDate(j, env)
			if fresh || !strings.Contains(why, c.why) {
				t.Errorf("fresh=%v why=%q, want stale because %q", fresh, why, c.why)
			}
		})
	}
}

func TestProbeDataBehindALinkCountsByItsTarget(t *testing.T) {
	// The loader follows links in a data folder: changing a link's target
	// must change the fingerprint, as changing a file there does.
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "elsewhere.npy")
	if err := os.WriteFile(target, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(data, "x.npy")); err != nil {
		t.Fatal(err)
	}
	d := &config.Data{Inputs: data}
	before := strings.Join(dataSHA256(d), ",")
	if err := os.WriteFile(target, []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after := strings.Join(dataSHA256(d), ","); after == before {
		t.Errorf("a changed link target left the data's hash as it was: %s", after)
	}
}
