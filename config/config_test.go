package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "c.yaml", "python:\n  venv: from-file\nverify:\n  atol: 0.001\n  rtol: 0.002\n")
	for _, c := range []struct {
		name      string
		env       map[string]string
		flag      string // value for python.venv set as a flag would
		wantVenv  string
		wantAtol  float64
		wantBatch int
	}{
		{name: "defaults under the file", wantVenv: filepath.Join(dir, "from-file"), wantAtol: 0.001, wantBatch: 2},
		{name: "environment over file", env: map[string]string{"ONNX2PT_PYTHON_VENV": "from-env", "ONNX2PT_VERIFY_ATOL": "0.5"}, wantVenv: "from-env", wantAtol: 0.5, wantBatch: 2},
		{name: "flag over environment", env: map[string]string{"ONNX2PT_PYTHON_VENV": "from-env"}, flag: "from-flag", wantVenv: "from-flag", wantAtol: 0.001, wantBatch: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			v := NewViper()
			if c.flag != "" {
				v.Set("python.venv", c.flag) // what a bound, changed flag amounts to
			}
			cfg, err := Load(v, file, func(key string) bool { return c.flag != "" && key == "python.venv" })
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Python.Venv != c.wantVenv || cfg.Verify.Atol != c.wantAtol || len(cfg.Verify.BatchSizes) != c.wantBatch {
				t.Errorf("venv %q atol %g batches %v", cfg.Python.Venv, cfg.Verify.Atol, cfg.Verify.BatchSizes)
			}
			if cfg.Verify.Rtol != 0.002 || cfg.Log.Level != "info" {
				t.Errorf("file or default lost: rtol %g level %q", cfg.Verify.Rtol, cfg.Log.Level)
			}
		})
	}
}

func TestUnknownKeysAreErrors(t *testing.T) {
	file := writeFile(t, t.TempDir(), "c.yaml", "python:\n  venvv: x\nmodels:\n  - input: a\n    ouptut: b\n")
	_, err := Load(NewViper(), file, nil)
	ue, ok := err.(*UsageError)
	if !ok {
		t.Fatalf("got %v, want a UsageError", err)
	}
	text := err.Error()
	for _, want := range []string{file, "venvv", "ouptut"} {
		if !strings.Contains(text, want) {
			t.Errorf("error does not name %q: %s", want, text)
		}
	}
	if len(ue.Problems) != 2 {
		t.Errorf("problems: %q", ue.Problems)
	}
}

func TestMissingConfigFile(t *testing.T) {
	_, err := Load(NewViper(), filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: config file not found") {
		t.Errorf("got %v", err)
	}
}

func TestValidateReportsEverythingAtOnce(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.onnx", "x")
	empty := writeFile(t, dir, "empty.onnx", "")
	out := filepath.Join(dir, "out.pt")
	cfg := &Config{
		File:      "c.yaml",
		Python:    PythonConfig{Venv: ".venv"},
		Log:       LogConfig{Level: "loud", Format: "xml"},
		Verify:    VerifyConfig{BatchSizes: []int{0}, Atol: -1, Rtol: 0.1, IntBounds: map[string]int{"ids": 0}},
		Artifacts: []string{"checkpoint", "onnx"},
		Models: []Model{
			{Input: good, Output: out, Data: &Data{Expected: filepath.Join(dir, "ref.npz")}, Artifacts: []string{}},
			{Input: filepath.Join(dir, "missing.onnx"), Output: out},
			{Input: empty, Output: filepath.Join(good, "no", "x.pt")},
			{Input: good, Output: good},
		},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	text := err.Error()
	for _, want := range []string{
		"c.yaml: ",
		`log.level: "loud"`,
		`log.format: "xml"`,
		"verify.batch_sizes: 0 is not between",
		"verify.atol: -1 is not in [0, 1)",
		"verify.int_bounds.ids: 0 is not a positive bound",
		"models[0].data.inputs: missing",
		`artifacts: "onnx" is not one of checkpoint, state_dict, torchscript, exported, source`,
		"models[0].artifacts: empty; name at least one of checkpoint, state_dict, torchscript, exported, source",
		"models[0].data.expected: " + filepath.Join(dir, "ref.npz") + " does not exist",
		"models[1].input: " + filepath.Join(dir, "missing.onnx") + " does not exist",
		"models[1].output: " + out + " is also the output of models[0]",
		"models[2].input: " + empty + " is empty",
		"models[2].output: cannot create directory " + filepath.Join(good, "no") + ": " + good + " is not a directory",
		"models[3].output: same file as the input",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
}

func TestValidConfigPasses(t *testing.T) {
	dir := t.TempDir()
	v := NewViper()
	cfg, err := Load(v, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Models = []Model{{Input: writeFile(t, dir, "m.onnx", "x"), Output: filepath.Join(dir, "m.pt")}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults with one model: %v", err)
	}
}

func TestPerModelOverrides(t *testing.T) {
	file := writeFile(t, t.TempDir(), "c.yaml", `verify: {atol: 0.001, batch_sizes: [1, 2]}
models:
  - {input: a.onnx, output: a.pt}
  - {input: b.onnx, output: b.pt, verify: {atol: 0.01, dims: {seq: 8}}}
`)
	cfg, err := Load(NewViper(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Effective(cfg.Models[0]), cfg.Effective(cfg.Models[1])
	if a.Atol != 0.001 || b.Atol != 0.01 || b.Dims["seq"] != 8 || len(b.BatchSizes) != 2 || b.Rtol != cfg.Verify.Rtol {
		t.Errorf("a %+v, b %+v", a, b)
	}
}

// Relative paths in a config file are relative to the file; those from
// flags and the environment, to the working directory.
func TestPathsFollowTheConfigFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "project", "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, dir, "c.yaml", `python:
  venv: ../.venv
  requirements: reqs.txt
  interpreter: python3.12
run: {summary: ../out/summary.json}
models:
  - {input: ../models/a.onnx, output: /abs/a.pt, data: {inputs: ../data/a.npz}}
`)
	cfg, err := Load(NewViper(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	project := filepath.Dir(dir)
	for _, c := range []struct{ name, got, want string }{
		{"venv", cfg.Python.Venv, filepath.Join(project, ".venv")},
		{"requirements", cfg.Python.Requirements, filepath.Join(dir, "reqs.txt")},
		{"interpreter on PATH", cfg.Python.Interpreter, "python3.12"},
		{"summary", cfg.Run.Summary, filepath.Join(project, "out", "summary.json")},
		{"model input", cfg.Models[0].Input, filepath.Join(project, "models", "a.onnx")},
		{"absolute output", cfg.Models[0].Output, "/abs/a.pt"},
		{"model data", cfg.Models[0].Data.Inputs, filepath.Join(project, "data", "a.npz")},
		{"default junit", cfg.Run.JUnit, ""},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(cfg.Rebased) != 5 {
		t.Errorf("rebased %q", cfg.Rebased)
	}

	// From the environment and from flags: the working directory's.
	t.Setenv("ONNX2PT_PYTHON_VENV", "env-venv")
	v := NewViper()
	v.Set("run.summary", "flag.json")
	cfg, err = Load(v, file, func(key string) bool { return key == "run.summary" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Python.Venv != "env-venv" || cfg.Run.Summary != "flag.json" {
		t.Errorf("venv %q, summary %q: the working directory's paths were rebased", cfg.Python.Venv, cfg.Run.Summary)
	}
}
