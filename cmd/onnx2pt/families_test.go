package main

// The model-family suite (python/tests/families.py) through the real
// binary: inspect predicts, for every model, whether it converts; convert
// must then do exactly that, verifying each model it converts and naming
// the node and op of each it refuses.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

type familyModel struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Expect  string `json:"expect"`
	FailsOn string `json:"fails_on"`
	Node    string `json:"node"`
	// Verify holds the probe settings a model needs (verify.dims, ...).
	Verify map[string]any `json:"verify"`
}

type nodeFailure struct {
	Node   string `json:"node"`
	Op     string `json:"op"`
	Reason string `json:"reason"`
}

type inspection struct {
	Source struct {
		Path string `json:"path"`
	} `json:"source"`
	Normalisation struct {
		Failures  []nodeFailure           `json:"failures"`
		Passes    []struct{ Name string } `json:"passes"`
		Remaining []nodeFailure           `json:"remaining"`
	} `json:"normalisation"`
	Verdict string `json:"verdict"`
	Error   string `json:"error"`
}

type familyReport struct {
	Source struct {
		Precision string `json:"precision"`
		Quantized bool   `json:"quantized"`
	} `json:"source"`
	Status  string `json:"status"`
	Failure *struct {
		Stage   string `json:"stage"`
		Message string `json:"message"`
	} `json:"failure"`
	Probes []struct {
		Batch int    `json:"batch"`
		Kind  string `json:"kind"`
	} `json:"probes"`
	Verification struct {
		Passed bool    `json:"passed"`
		Atol   float64 `json:"atol"`
		Rtol   float64 `json:"rtol"`
	} `json:"verification"`
	Artifacts []struct {
		Format  string `json:"format"`
		Path    string `json:"path"`
		Batches []int  `json:"batches"`
		Error   string `json:"error"`
		Node    string `json:"node"`
	} `json:"artifacts"`
}

func TestFamilies(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and converts the whole family suite (minutes)")
	}
	t.Parallel()
	dir := t.TempDir()
	started := time.Now()
	models := generateFamilies(t, dir)
	t.Logf("generated %d models in %s", len(models), time.Since(started).Round(time.Second))

	paths := make([]string, len(models))
	for i, m := range models {
		paths[i] = m.Path
	}
	started = time.Now()
	r := onnx2pt(t, dir, append([]string{"inspect", "--json"}, paths...)...)
	t.Logf("inspected in %s", time.Since(started).Round(time.Second))
	var inspections struct{ Models []inspection }
	if err := json.Unmarshal([]byte(r.stdout), &inspections); err != nil {
		t.Fatalf("inspect --json (exit %d) printed no JSON: %v\n%s", r.code, err, r.stderr)
	}
	predicted := map[string]inspection{}
	for _, in := range inspections.Models {
		predicted[in.Source.Path] = in
	}
	anyRefused := false
	var undescribed []string
	for _, m := range models {
		in, ok := predicted[m.Path]
		if !ok {
			undescribed = append(undescribed, m.Name)
		}
		anyRefused = anyRefused || in.Verdict == "cannot convert"
	}
	if len(undescribed) > 0 {
		t.Fatalf("inspect did not describe %d models (%s):\n%s", len(undescribed), strings.Join(undescribed, ", "), r.stderr)
	}
	if want := exitCode(anyRefused); r.code != want {
		t.Errorf("inspect exited %d, want %d\n%s", r.code, want, r.stderr)
	}

	cfg := "verify: {atol: 1.0e-4, rtol: 1.0e-3, batch_sizes: [1, 3]}\nmodels:\n"
	for _, m := range models {
		line := fmt.Sprintf("  - {input: %s, output: out/%s.pt", m.Path, m.Name)
		if len(m.Verify) > 0 {
			settings, _ := json.Marshal(m.Verify) // JSON is YAML
			line += ", verify: " + string(settings)
		}
		cfg += line + "}\n"
	}
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "families.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	started = time.Now()
	r = onnx2pt(t, dir, "convert", "--config", "families.yaml")
	t.Logf("converted in %s", time.Since(started).Round(time.Second))

	failed, written := 0, 0
	for _, m := range models {
		in := predicted[m.Path]
		converted, source := checkFamilyOutcome(t, dir, m)
		if !converted {
			failed++
		}
		if source {
			written++
		}
		if predicts := in.Verdict != "cannot convert"; predicts != converted {
			t.Errorf("%s: inspect predicted %q (remaining %v, error %q), convert gave converts=%v", m.Name, in.Verdict, in.Normalisation.Remaining, in.Error, converted)
		}
		if converted != (m.Expect == "converts") {
			t.Errorf("%s: expected to %s, but converted=%v (inspect: %d failing nodes, passes %v, remaining %v)",
				m.Name, strings.TrimSuffix(m.Expect, "s"), converted, len(in.Normalisation.Failures), in.Normalisation.Passes, in.Normalisation.Remaining)
		}
		if m.Expect == "fails" && !namesFailure(in.Normalisation.Remaining, m) {
			t.Errorf("%s: inspect's remaining failures do not name node %q (%s): %v", m.Name, m.Node, m.FailsOn, in.Normalisation.Remaining)
		}
	}
	if want := exitCode(failed > 0); r.code != want {
		t.Errorf("convert exited %d with %d failed models, want %d\n%s", r.code, failed, want, lastLine(r.stderr))
	}
	// The source artifact (model.py + safetensors, checked with torch alone)
	// for at least 90% of the models that convert.
	converted := len(models) - failed
	t.Logf("source artifact written and verified for %d of %d converted models", written, converted)
	if float64(written) < 0.9*float64(converted) {
		t.Errorf("source artifact for %d of %d converted models, want at least 90%%", written, converted)
	}
}

// familyRtol is the rtol a family model is verified at: the suite's, raised
// for 16-bit float models to 16 machine epsilons and for quantized ones to
// 4 steps of an 8-bit quantization (the README's Verification).
func familyRtol(rep familyReport) float64 {
	rtol := 1e-3
	switch rep.Source.Precision {
	case "float16":
		rtol = max(rtol, 16.0/1024)
	case "bfloat16":
		rtol = max(rtol, 16.0/128)
	}
	if rep.Source.Quantized {
		rtol = max(rtol, 4.0/256)
	}
	return rtol
}

// generateFamilies writes the suite under dir/models with the dev tools' python
// and returns its index, with paths relative to dir.
func generateFamilies(t *testing.T, dir string) []familyModel {
	t.Helper()
	script := filepath.Join(repoRoot, "python", "tests", "families.py")
	cmd := exec.Command(devPython, script, "models")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generating the family suite: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "models", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var models []familyModel
	if err := json.Unmarshal(data, &models); err != nil {
		t.Fatal(err)
	}
	if len(models) == 0 {
		t.Fatal("the family suite is empty")
	}
	return models
}

// checkFamilyOutcome reports whether m converted, checking the files and
// report that each outcome must leave.
func checkFamilyOutcome(t *testing.T, dir string, m familyModel) (converted, source bool) {
	t.Helper()
	base := filepath.Join(dir, "out", m.Name)
	if data, err := os.ReadFile(base + ".report.json"); err == nil {
		var rep familyReport
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatalf("%s: report: %v", m.Name, err)
		}
		var batches []string
		for _, p := range rep.Probes {
			batches = append(batches, fmt.Sprint(p.Batch, p.Kind))
		}
		// Random probes at both batch sizes (positive where the model's inputs
		// are in a domain), then the edge probe at the larger.
		v := rep.Verification
		probed := strings.Join(batches, " ")
		if rep.Status != "converted" || !v.Passed || v.Atol != 1e-4 || v.Rtol != familyRtol(rep) || !regexp.MustCompile(`^1(normal|positive|uniform) 3(normal|positive|uniform) 3edge$`).MatchString(probed) {
			t.Errorf("%s: status %q, verification %+v, probed batches %v", m.Name, rep.Status, v, batches)
		}
		if _, err := os.Stat(base + ".pt"); err != nil {
			t.Errorf("%s: converted without a model file: %v", m.Name, err)
		}
		return true, checkFamilyArtifacts(t, dir, m, rep)
	}
	data, err := os.ReadFile(base + ".failed.report.json")
	if err != nil {
		t.Errorf("%s: neither a report nor a failure report", m.Name)
		return false, false
	}
	var rep familyReport
	if err := json.Unmarshal(data, &rep); err != nil || rep.Failure == nil {
		t.Fatalf("%s: failure report without a failure (%v): %s", m.Name, err, data)
	}
	if _, err := os.Stat(base + ".pt"); err == nil {
		t.Errorf("%s: failed, yet left a model file", m.Name)
	}
	msg := rep.Failure.Message
	if m.Expect == "fails" {
		named := regexp.MustCompile(`\b`+regexp.QuoteMeta(m.Node)+`\b`).MatchString(msg) &&
			regexp.MustCompile(`\b`+regexp.QuoteMeta(m.FailsOn)+`\b`).MatchString(msg)
		if !named || strings.Contains(msg, "\n") {
			t.Errorf("%s: the failure should name node %q and op %s in one line: %q", m.Name, m.Node, m.FailsOn, msg)
		}
	} else {
		t.Logf("%s failed at %s: %s", m.Name, rep.Failure.Stage, msg)
	}
	return false, false
}

// checkFamilyArtifacts checks that both portable formats were tried and
// each either written (checked at batch sizes 1, 3 and 6) or explained, and
// logs the model's line of the artifact table.
func checkFamilyArtifacts(t *testing.T, dir string, m familyModel, rep familyReport) (source bool) {
	t.Helper()
	row := []string{m.Name}
	for i, want := range []string{"torchscript", "exported", "source"} {
		if i >= len(rep.Artifacts) || rep.Artifacts[i].Format != want {
			t.Errorf("%s: artifacts %+v, want torchscript, exported then source", m.Name, rep.Artifacts)
			return false
		}
		a := rep.Artifacts[i]
		switch {
		case a.Path != "":
			if _, err := os.Stat(filepath.Join(dir, a.Path)); err != nil || fmt.Sprint(a.Batches) != "[1 3 6]" {
				t.Errorf("%s: %s at %s checked at %v: %v", m.Name, want, a.Path, a.Batches, err)
			}
			row = append(row, "yes")
			source = source || want == "source"
		case a.Error != "":
			row = append(row, fmt.Sprintf("no: %s %s", a.Node, a.Error))
		default:
			t.Errorf("%s: %s neither written nor explained", m.Name, want)
		}
	}
	t.Logf("artifacts | %s |", strings.Join(row, " | "))
	return source
}

func namesFailure(failures []nodeFailure, m familyModel) bool {
	for _, f := range failures {
		if f.Node == m.Node && f.Op == m.FailsOn {
			return true
		}
	}
	return false
}

// exitCode is what a run of several models exits with: 1 when any failed.
func exitCode(anyFailed bool) int {
	if anyFailed {
		return 1
	}
	return 0
}
