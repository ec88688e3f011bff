package main

// End-to-end tests: build the real binary, run it on the real ResNet8 with
// the real virtualenv (torch, onnx2torch, onnxruntime), and check what a
// user would see and get.
//
// Most tests run in parallel: each works in folders of its own, and a
// conversion leaves a core idle while processes start. Those that time a
// stop or a timeout, or change the shared virtualenv, do not: Go runs them
// first, one at a time.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	binary   string // the onnx2pt binary under test
	repoRoot string
	venvDir  string
	// devPython has the development tools too (the family suite's
	// exporters): .venv-dev's, which sees venvDir's packages.
	devPython string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "onnx2pt-e2e-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "onnx2pt")
	// The go test process carries the cgo settings of cmd/pybuild, so this
	// build links the same Python as the test binary.
	// The test hooks let a test's Python make a worker crash or hang
	// (see testdata/onnx2pt_test_hooks.py); nothing else differs.
	if out, err := exec.Command("go", "build", "-tags", "onnx2pt_testhooks", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building onnx2pt: %v\n%s", err, out)
		return 1
	}
	repoRoot, _ = filepath.Abs("../..")
	venvDir = os.Getenv("ONNX2PT_TEST_VENV")
	if venvDir == "" {
		venvDir = filepath.Join(repoRoot, ".venv")
	}
	devPython = os.Getenv("ONNX2PT_TEST_DEV_PYTHON")
	if devPython == "" {
		devPython = filepath.Join(repoRoot, ".venv-dev", "bin", "python")
	}
	// Provision once up front (a no-op when it is ready), so the tests see
	// the second run a user sees.
	venv := exec.Command(binary, "venv", "--venv", venvDir)
	if out, err := venv.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "provisioning %s: %v\n%s", venvDir, err, out)
		return 1
	}
	return m.Run()
}

type result struct {
	code   int
	stdout string
	stderr string
}

// onnx2pt runs the binary in dir with the shared virtualenv.
func onnx2pt(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ONNX2PT_PYTHON_VENV="+venvDir, "NO_COLOR=1")
	return runCmd(t, cmd)
}

// runCmd runs cmd and returns its exit code and output.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return result{exitStatus(t, cmd.Run()), stdout.String(), stderr.String()}
}

// exitStatus is the exit code that err, from running a command, stands for.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// workdir is a temporary directory holding a copy of the reference model.
func workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot, "models", "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resnet8.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConvertResNet8(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := onnx2pt(t, dir, "convert", "--input", "resnet8.onnx", "--output", "out/resnet8.pt")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`Loading ONNX model from resnet8.onnx`,
		`Converting to PyTorch with onnx2torch \d+\.\d+\.\d+\.\.\.`,
		`Model converted successfully`,
		`Input shape: \(batch, 32, 32, 3\)`,
		`Output shape: \(batch, 10\)`,
		`Parameters: 78186 \(77536 in parameters, 650 in weight buffers\)`,
		`Max abs diff vs onnxruntime: \d`,
		`Saved to out/resnet8.pt`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stderr) {
			t.Errorf("log lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "Provisioning virtualenv") {
		t.Errorf("an unchanged virtualenv was provisioned again:\n%s", r.stderr)
	}

	checkReport(t, dir)
	checkWithPlainPython(t, dir)
	checkPortableArtifacts(t, dir)
	checkSourceArtifact(t, dir)
}

// checkPortableArtifacts loads the TorchScript file and the torch.export
// program in a python where onnx2torch and onnx2pt's helpers cannot be
// imported, and compares them with onnxruntime at batch sizes 1, 4 and 7.
func checkPortableArtifacts(t *testing.T, dir string) {
	t.Helper()
	const script = `
import sys
sys.modules["onnx2torch"] = sys.modules["onnx2pt_py"] = None
try:
    import onnx2torch
    sys.exit("onnx2torch is not blocked")
except ImportError:
    pass
import numpy as np, onnxruntime as ort, torch
ref = ort.InferenceSession("resnet8.onnx", providers=["CPUExecutionProvider"])
models = {"torchscript": torch.jit.load("out/resnet8.torchscript.pt"),
          "exported": torch.export.load("out/resnet8.pt2").module()}
for name, model in models.items():
    for batch in (1, 4, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 32, 32, 3)).astype(np.float32)
        with torch.no_grad():
            y = model(torch.from_numpy(x)).numpy()
        want = ref.run(None, {"input_1": x})[0]
        print(name, batch, tuple(y.shape), float(np.abs(y - want).max()))
`
	cmd := exec.Command(filepath.Join(venvDir, "bin", "python"), "-I", "-c", script)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loading the portable artifacts with torch alone: %v\n%s%s", err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 6 {
		t.Fatalf("want 6 results (2 formats × 3 batch sizes), got:\n%s", out)
	}
	for _, line := range lines {
		var name string
		var batch, b, classes int
		var diff float64
		if _, err := fmt.Sscanf(line, "%s %d (%d, %d) %g", &name, &batch, &b, &classes, &diff); err != nil {
			t.Fatalf("unexpected line %q: %v", line, err)
		}
		if b != batch || classes != 10 || diff > 1e-4 {
			t.Errorf("%s at batch %d: shape (%d, %d), max abs diff %g vs onnxruntime", name, batch, b, classes, diff)
		}
	}
	rep := readJSON(t, filepath.Join(dir, "out", "resnet8.report.json"))
	arts, _ := rep["artifacts"].([]any)
	if len(arts) != 3 {
		t.Fatalf("report lists %d artifacts, want 3", len(arts))
	}
	for _, a := range arts[:2] {
		a := a.(map[string]any)
		path, _ := a["path"].(string)
		if path == "" || a["sha256"] != fileSHA256(t, filepath.Join(dir, path)) || !strings.Contains(fmt.Sprint(a["load"]), "import torch") {
			t.Errorf("report entry %v does not match the file", a)
		}
	}
	if src := arts[2].(map[string]any); src["format"] != "source" || src["path"] != "out/resnet8" || src["class"] != "Resnet8" {
		t.Errorf("source artifact reported as %v", src)
	}
}

// checkSourceArtifact imports out/resnet8/model.py in a python where only
// torch (and safetensors) can be imported: a plain nn.Module whose layers
// are torch.nn's, named after the ONNX graph's nodes, with the residual
// additions in forward, which loads its weights strictly, matches
// onnxruntime and trains.
func checkSourceArtifact(t *testing.T, dir string) {
	t.Helper()
	const script = `
import sys
sys.modules["onnx2torch"] = sys.modules["onnx2pt_py"] = sys.modules["onnx"] = None
sys.path.insert(0, "out/resnet8")
import json, numpy as np, torch
from safetensors.torch import load_file
from model import Resnet8
model = Resnet8()
model.load_state_dict(load_file("out/resnet8/model.safetensors"), strict=True)
model.eval()
modules = {name: type(m).__module__ + "." + type(m).__name__ for name, m in model.named_children()}
x = torch.from_numpy(np.random.default_rng(5).standard_normal((5, 32, 32, 3)).astype(np.float32))
with torch.no_grad():
    y = model(x).numpy()
model.train()
model(x).sum().backward()
grads = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())
print(json.dumps({"modules": modules, "y": y.tolist(), "grads": grads}))
`
	cmd := exec.Command(filepath.Join(venvDir, "bin", "python"), "-I", "-c", script)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("using out/resnet8/model.py with torch alone: %v\n%s", err, stderr.String())
	}
	var got struct {
		Modules map[string]string `json:"modules"`
		Y       [][]float64       `json:"y"`
		Grads   bool              `json:"grads"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	// The layers a hand-written ResNet8 has, named as the graph's nodes.
	want := map[string]string{"dense": "torch.nn.modules.linear.Linear"}
	for i := 1; i <= 9; i++ {
		want[fmt.Sprintf("conv_%d", i)] = "torch.nn.modules.conv.Conv2d"
	}
	for i := 1; i <= 7; i++ {
		want[fmt.Sprintf("bn_%d", i)] = "torch.nn.modules.batchnorm.BatchNorm2d"
	}
	if !maps.Equal(got.Modules, want) {
		t.Errorf("model.py's layers %v, want %v", got.Modules, want)
	}
	if !got.Grads {
		t.Error("a parameter got no finite gradient in training mode")
	}
	code, err := os.ReadFile(filepath.Join(dir, "out", "resnet8", "model.py"))
	if err != nil {
		t.Fatal(err)
	}
	for _, add := range []string{"add_1 = bn_3 + relu_1", "add_2 = bn_5 + conv_6", "add_3 = bn_7 + conv_9"} {
		if !strings.Contains(string(code), add) {
			t.Errorf("model.py's forward lacks the residual addition %q", add)
		}
	}
	if regexp.MustCompile(`(?m)^(import|from) (?:onnx|onnx2torch|onnx2pt)`).Match(code) {
		t.Error("model.py imports more than torch")
	}
	// Its outputs are the converted model's: onnxruntime's, within tolerance.
	python(t, dir, `
import json, sys, numpy as np, onnxruntime as ort
y = np.array(json.loads(sys.argv[1]))
x = np.random.default_rng(5).standard_normal((5, 32, 32, 3)).astype(np.float32)
want = ort.InferenceSession("resnet8.onnx", providers=["CPUExecutionProvider"]).run(None, {"input_1": x})[0]
assert np.abs(y - want).max() < 1e-4, np.abs(y - want).max()
`, string(mustJSON(t, got.Y)))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func checkReport(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "out", "resnet8.report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Source struct {
			SHA256      string           `json:"sha256"`
			Opset       int              `json:"opset"`
			Inputs      []map[string]any `json:"inputs"`
			Outputs     []map[string]any `json:"outputs"`
			OpHistogram map[string]int   `json:"op_histogram"`
		} `json:"source"`
		Output struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"output"`
		Weights struct {
			Parameters    int64 `json:"parameters"`
			WeightBuffers int64 `json:"weight_buffers"`
			Total         int64 `json:"total"`
		} `json:"weights"`
		Verification struct {
			Passed  bool `json:"passed"`
			Outputs []struct {
				MaxAbsDiff *float64 `json:"max_abs_diff"`
			} `json:"outputs"`
		} `json:"verification"`
		Timings []struct {
			Stage   string  `json:"stage"`
			Seconds float64 `json:"seconds"`
		} `json:"timings"`
		Versions map[string]string `json:"versions"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	if rep.Source.Opset != 13 || rep.Source.OpHistogram["Conv"] != 9 || rep.Source.OpHistogram["MatMul"] != 1 {
		t.Errorf("source: opset %d, ops %v", rep.Source.Opset, rep.Source.OpHistogram)
	}
	if fmt.Sprint(rep.Source.Inputs[0]["shape"]) != "[batch 32 32 3]" || fmt.Sprint(rep.Source.Outputs[0]["shape"]) != "[batch 10]" {
		t.Errorf("shapes: %v → %v", rep.Source.Inputs, rep.Source.Outputs)
	}
	if rep.Source.SHA256 != fileSHA256(t, filepath.Join(dir, "resnet8.onnx")) {
		t.Error("source sha256 does not match the input file")
	}
	if rep.Output.SHA256 != fileSHA256(t, filepath.Join(dir, "out", "resnet8.pt")) {
		t.Error("output sha256 does not match the written file")
	}
	w := rep.Weights
	if w.WeightBuffers == 0 || w.Total != w.Parameters+w.WeightBuffers {
		t.Errorf("weights: %+v", w)
	}
	if !rep.Verification.Passed || len(rep.Verification.Outputs) != 1 || rep.Verification.Outputs[0].MaxAbsDiff == nil || *rep.Verification.Outputs[0].MaxAbsDiff > 1e-5 {
		t.Errorf("verification: %+v", rep.Verification)
	}
	var stages []string
	for _, tm := range rep.Timings {
		stages = append(stages, tm.Stage)
	}
	if strings.Join(stages, ",") != "load,normalise,convert,probe,save,verify,export,export,export" {
		t.Errorf("timed stages: %v", stages)
	}
	for _, pkg := range []string{"python", "torch", "onnx", "onnx2torch", "onnxruntime"} {
		if rep.Versions[pkg] == "" {
			t.Errorf("no version for %s: %v", pkg, rep.Versions)
		}
	}
}

// checkWithPlainPython loads the result as a user would, in the venv's own
// python, and compares it with onnxruntime on the ONNX model.
func checkWithPlainPython(t *testing.T, dir string) {
	t.Helper()
	const script = `
import numpy as np, onnxruntime as ort, torch
ckpt = torch.load("out/resnet8.pt", weights_only=False)
model = ckpt["model"].eval()
x = np.random.default_rng(7).standard_normal((2, 32, 32, 3)).astype(np.float32)
with torch.no_grad():
    y = model(torch.from_numpy(x)).numpy()
ref = ort.InferenceSession("resnet8.onnx", providers=["CPUExecutionProvider"]).run(None, {"input_1": x})[0]
sd = torch.load("out/resnet8.state_dict.pt", weights_only=True)
assert sd.keys() == model.state_dict().keys(), "state_dict keys differ"
assert ckpt["state_dict"].keys() == sd.keys()
assert ckpt["metadata"]["source"]["file"] == "resnet8.onnx"
print(tuple(y.shape), float(np.abs(y - ref).max()))
`
	cmd := exec.Command(filepath.Join(venvDir, "bin", "python"), "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("loading the result in plain Python: %v\n%s", err, out)
	}
	var shape0, shape1 int
	var diff float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "(%d, %d) %g", &shape0, &shape1, &diff); err != nil {
		t.Fatalf("unexpected output %q: %v", out, err)
	}
	if shape0 != 2 || shape1 != 10 || diff > 1e-5 {
		t.Errorf("plain Python: shape (%d, %d), max abs diff %g vs onnxruntime", shape0, shape1, diff)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestBadInputFailsCleanly(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		content *string // nil: the file does not exist
		code    int
		says    string
	}{
		{"missing.onnx", nil, 2, "missing.onnx does not exist"},
		{"empty.onnx", ptr(""), 2, "empty.onnx is empty, not an ONNX model"},
		{"text.onnx", ptr("this is not a model\n"), 1, "text.onnx: not an ONNX model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, c.name)
			if c.content != nil {
				if err := os.WriteFile(in, []byte(*c.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// A good output from an earlier run must survive the failure.
			out := filepath.Join(dir, "model.pt")
			if err := os.WriteFile(out, []byte("earlier good output"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := onnx2pt(t, dir, "convert", "--input", c.name, "--output", "model.pt", "-v")
			if r.code != c.code {
				t.Errorf("exit %d, want %d\n%s", r.code, c.code, r.stderr)
			}
			last := lastLine(r.stderr)
			if !strings.HasPrefix(last, "onnx2pt: ") || !strings.Contains(last, c.says) {
				t.Errorf("last line %q does not say %q", last, c.says)
			}
			if strings.Contains(r.stderr, "Traceback") {
				t.Errorf("a traceback reached the user:\n%s", r.stderr)
			}
			if strings.Contains(r.stderr, "Starting Python") {
				t.Errorf("Python started for a file that is plainly not a model:\n%s", r.stderr)
			}
			if data, _ := os.ReadFile(out); string(data) != "earlier good output" {
				t.Errorf("the earlier output was changed to %q", data)
			}
			switch {
			case c.content == nil:
				assertOnly(t, dir, "model.pt")
			case c.code == 2: // refused before Python started
				assertOnly(t, dir, c.name, "model.pt")
			default: // refused before a worker started, with a failure report
				assertOnly(t, dir, c.name, "model.pt", "model.failed.report.json")
			}
		})
	}
}

func TestManyModelsOneInterpreter(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	if err := os.WriteFile(filepath.Join(dir, "broken.onnx"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `artifacts: [checkpoint, state_dict]
models:
  - {input: resnet8.onnx, output: a.pt}
  - {input: broken.onnx, output: broken.pt}
  - {input: resnet8.onnx, output: b.pt}
`
	if err := os.WriteFile(filepath.Join(dir, "batch.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := onnx2pt(t, dir, "convert", "--config", "batch.yaml", "--log-format", "json", "-v", "--jobs", "1")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	starts := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(line, "onnx2pt: ") {
			continue // the closing error line is for people
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if strings.HasPrefix(fmt.Sprint(entry["msg"]), "Starting Python") {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("Python started %d times, want once", starts)
	}
	// The last line names the one model that failed.
	if !strings.Contains(r.stderr, "Converted 2 of 3 models") || !strings.HasPrefix(lastLine(r.stderr), "onnx2pt: 1 of 3 models failed: broken.onnx") {
		t.Errorf("summary missing:\n%s", r.stderr)
	}
	assertOnly(t, dir, "resnet8.onnx", "broken.onnx", "batch.yaml", "broken.failed.report.json",
		"a.pt", "a.state_dict.pt", "a.report.json", "b.pt", "b.state_dict.pt", "b.report.json")
}

// assertOnly fails unless dir holds exactly the named files (so no
// temporary or partial file was left behind).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected file %s in %v", g, got)
		}
	}
	if len(got) != len(names) {
		t.Errorf("files %v, want %v", got, names)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func ptr(s string) *string { return &s }

func TestInspect(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	r := onnx2pt(t, dir, "inspect", "resnet8.onnx")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"opset 13", "input_1  float32  (batch, 32, 32, 3)", "dense    float32  (batch, 10)", "Conv×9", "converts as it is"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}
	if got, want := lastLine(r.stdout), "1 model: 1 converts"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	assertOnly(t, dir, "resnet8.onnx") // inspecting writes nothing
}

func TestInterruptStopsCleanly(t *testing.T) {
	dir := workdir(t)
	cmd := exec.Command(binary, "convert", "--input", "resnet8.onnx", "-v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ONNX2PT_PYTHON_VENV="+venvDir)
	// Interrupt while Python starts (importing torch takes a second or more).
	code, took, log := interruptAt(t, cmd, "Starting Python", 0)
	if code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, log)
	}
	if took > 3*time.Second {
		t.Errorf("stopping took %v", took)
	}
	assertOnly(t, dir, "resnet8.onnx")
}

// interruptAt starts cmd, sends it SIGINT delay after its log shows
// marker, and returns its exit code, how long it took to exit after the
// signal, and its log.
func interruptAt(t *testing.T, cmd *exec.Cmd, marker string, delay time.Duration) (int, time.Duration, string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), marker) {
			break
		}
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	err = cmd.Wait()
	took := time.Since(sent)
	return exitStatus(t, err), took, log.String()
}

func TestFailFastStopsAtTheFirstFailure(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	if err := os.WriteFile(filepath.Join(dir, "broken.onnx"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := "models:\n  - {input: broken.onnx, output: broken.pt}\n  - {input: resnet8.onnx, output: good.pt}\n"
	if err := os.WriteFile(filepath.Join(dir, "ff.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := onnx2pt(t, dir, "convert", "--config", "ff.yaml", "--fail-fast", "--jobs", "1")
	if r.code != 1 || !strings.HasPrefix(lastLine(r.stderr), "onnx2pt: 1 of 2 models failed, 1 not converted (--fail-fast): broken.onnx") {
		t.Fatalf("exit %d, last line %q\n%s", r.code, lastLine(r.stderr), r.stderr)
	}
	assertOnly(t, dir, "resnet8.onnx", "broken.onnx", "ff.yaml", "broken.failed.report.json")
}

func TestUnchangedModelsAreNotConvertedAgain(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	args := []string{"convert", "--input", "resnet8.onnx", "-v"}
	if r := onnx2pt(t, dir, args...); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	report, _ := os.ReadFile(filepath.Join(dir, "resnet8.report.json"))

	r := onnx2pt(t, dir, args...)
	if r.code != 0 || !strings.Contains(r.stderr, "Up to date: resnet8.pt") {
		t.Fatalf("second run: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "Starting Python") {
		t.Errorf("Python started although nothing changed:\n%s", r.stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "resnet8.report.json")); string(again) != string(report) {
		t.Error("the report was rewritten")
	}

	for _, extra := range [][]string{{"--force"}, {"--atol", "2e-5"}} {
		r := onnx2pt(t, dir, append(args, extra...)...)
		if r.code != 0 || !strings.Contains(r.stderr, "Saved to resnet8.pt") {
			t.Errorf("with %v: not converted again (exit %d)\n%s", extra, r.code, r.stderr)
		}
	}
}
