package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// problemsOf returns the problems of a UsageError (nil for nil).
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want a UsageError", err)
	}
	return ue.Problems
}

// validModel is a model whose input exists, writing into dir.
func validModel(t *testing.T, dir, name string) Model {
	return Model{Input: writeFile(t, dir, name+".onnx", "x"), Output: filepath.Join(dir, name+".pt")}
}

func defaultConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := Load(NewViper(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Paths that are not UTF-8 would reach the worker as U+FFFD (JSON), and
// the model would fail under another name: they are refused up front,
// each at its setting, with the bad bytes escaped.
func TestNonUTF8PathsAreRefused(t *testing.T) {
	dir := t.TempDir()
	badIn := writeFile(t, dir, "bad\xffname.onnx", "x")
	badData := writeFile(t, dir, "in\xfe.npz", "x")
	cfg := defaultConfig(t)
	cfg.File = "c.yaml"
	cfg.Run.Summary = filepath.Join(dir, "sum\xff.json")
	cfg.Run.JUnit = filepath.Join(dir, "junit\xc3.xml")
	cfg.Models = []Model{
		{Input: badIn, Output: filepath.Join(dir, "ok.pt")},
		{Input: writeFile(t, dir, "good.onnx", "x"), Output: filepath.Join(dir, "out\x80.pt"), Data: &Data{Inputs: badData}},
	}
	cfg.Models = append(cfg.Models, Model{Input: badIn, Output: filepath.Join(dir, "flags.pt"), FromFlags: true})
	problems := problemsOf(t, cfg.Validate())
	text := strings.Join(problems, "\n")
	for _, want := range []string{
		`models[0].input: the path is not valid UTF-8 ("` + dir + `/bad\xffname.onnx"): rename the file`,
		`models[1].output: the path is not valid UTF-8 ("` + dir + `/out\x80.pt"): choose another name`,
		`models[1].data.inputs: the path is not valid UTF-8 ("` + dir + `/in\xfe.npz"): rename the file`,
		`run.summary: the path is not valid UTF-8 ("` + dir + `/sum\xff.json"): choose another name`,
		`run.junit: the path is not valid UTF-8 ("` + dir + `/junit\xc3.xml"): choose another name`,
		`--input: the path is not valid UTF-8 ("` + dir + `/bad\xffname.onnx"): rename the file`,
	} {
		if strings.Count(text, want) != 1 {
			t.Errorf("want once %s\nin:\n%s", want, text)
		}
	}
	for _, p := range problems {
		if strings.ContainsRune(p, '\uFFFD') || strings.Contains(p, "\xff") {
			t.Errorf("a problem carries the raw bytes: %q", p)
		}
	}
}

// data.inputs and data.expected are a .npz file, a .npy file (one array)
// or a folder; anything else is refused at its key.
func TestDataFileKinds(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "arrays")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	npz := writeFile(t, dir, "in.npz", "x")
	npy := writeFile(t, dir, "x.npy", "x")
	upper := writeFile(t, dir, "Y.NPY", "x")
	txt := writeFile(t, dir, "in.txt", "x")
	missing := filepath.Join(dir, "none.npz")
	for _, c := range []struct {
		name string
		data Data
		want []string
	}{
		{"npz and folder", Data{Inputs: npz, Expected: folder}, nil},
		{"one npy each", Data{Inputs: npy, Expected: upper}, nil},
		{"a text file", Data{Inputs: txt}, []string{"models[0].data.inputs: " + txt + " is not a .npz file, a .npy file or a folder of .npy files"}},
		{"a missing npz", Data{Inputs: npz, Expected: missing}, []string{"models[0].data.expected: " + missing + " does not exist (expected a .npz file, a .npy file or a folder of .npy files)"}},
		{"expected alone", Data{Expected: npz}, []string{"models[0].data.inputs: missing (a .npz file, a .npy file or a folder of .npy files)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			m := validModel(t, dir, "m")
			m.Data = &c.data
			cfg.Models = []Model{m}
			if got := problemsOf(t, cfg.Validate()); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

// A value of the wrong type no longer hides the other problems: Load
// reports every value it cannot decode, with the value and what was
// expected, and Validate then reports those with everything else.
func TestLoadGathersEveryProblem(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m.onnx", "x")
	file := writeFile(t, dir, "c.yaml", `run:
  timeout: 5 minutes
  jobs: -3
verify:
  atol: -1
models:
  - {input: m.onnx, output: m.pt}
`)
	cfg, err := Load(NewViper(), file, nil)
	if got := problemsOf(t, err); strings.Join(got, "\n") != `run.timeout: "5 minutes" is not a duration (use e.g. 90s or 10m)` {
		t.Errorf("Load: %v", err)
	}
	if cfg == nil {
		t.Fatal("no configuration beside the decoding problems")
	}
	err = cfg.Validate()
	want := []string{
		`run.timeout: "5 minutes" is not a duration (use e.g. 90s or 10m)`,
		"verify.atol: -1 is not in [0, 1)",
		"run.jobs: -3 is negative (0 chooses from the cores and memory)",
	}
	got := problemsOf(t, err)
	if len(got) != len(want) {
		t.Errorf("problems %q, want %q", got, want)
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("missing %q in %q", w, got)
		}
	}
	if !strings.HasPrefix(err.Error(), file+": 3 problems:\n  - ") {
		t.Errorf("not the multi-problem format: %s", err)
	}
}

// Each value that cannot be decoded is shown as written, with what was
// expected, and is not reported a second time by Validate (as missing, or
// out of range at its zero value).
func TestDecodeErrorsShowTheValue(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m.onnx", "x")
	file := writeFile(t, dir, "c.yaml", `python:
  offline: maybe
verify:
  atol: abc
  rtol: 0
  batch_sizes: [1, x]
  dims: {seq: long}
run:
  jobs: 2.5
  timeout: 600
  max_models_per_worker: [3]
models:
  - {input: [m.onnx], output: m.pt}
  - {input: m.onnx, output: n.pt, verify: {seed: "one"}}
  - nope
`)
	cfg, err := Load(NewViper(), file, nil)
	if cfg == nil {
		t.Fatalf("no configuration: %v", err)
	}
	want := []string{
		`python.offline: "maybe" is not true or false`,
		`verify.atol: "abc" is not a number`,
		`verify.batch_sizes[1]: "x" is not a whole number`,
		`verify.dims.seq: "long" is not a whole number`,
		`run.jobs: 2.5 is not a whole number`,
		`run.timeout: 600 is not a duration (use e.g. 90s or 10m)`,
		`run.max_models_per_worker: [3] is not a whole number`,
		`models[0].input: ["m.onnx"] is not a string`,
		`models[1].verify.seed: "one" is not a whole number`,
		`models[2]: "nope" is not a mapping (key: value)`,
	}
	loadProblems := problemsOf(t, err)
	if strings.Join(sorted(loadProblems), "\n") != strings.Join(sorted(want), "\n") {
		t.Errorf("Load problems:\n  %s\nwant:\n  %s", strings.Join(loadProblems, "\n  "), strings.Join(want, "\n  "))
	}
	// Validate adds nothing about these keys: rtol 0 with atol back at its
	// default is fine, models[0].input is not "missing".
	if got := problemsOf(t, cfg.Validate()); strings.Join(sorted(got), "\n") != strings.Join(sorted(want), "\n") {
		t.Errorf("Validate problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// A value from the environment that cannot be decoded names the variable.
func TestDecodeErrorFromTheEnvironment(t *testing.T) {
	t.Setenv("ONNX2PT_VERIFY_ATOL", "tight")
	_, err := Load(NewViper(), "", nil)
	if got := problemsOf(t, err); len(got) != 1 || got[0] != `verify.atol: "tight" is not a number (from ONNX2PT_VERIFY_ATOL)` {
		t.Errorf("problems %q", got)
	}
}

// A YAML syntax error is reported at file:line, the line being the one at
// fault (the YAML library's own count is often one off, or the line of the
// enclosing block).
func TestYAMLSyntaxErrorLine(t *testing.T) {
	for _, c := range []struct {
		name, content string
		line          int
	}{
		{"tab", "verify:\n  atol: 1\n\trtol: 2\n", 3},
		{"indentation", "verify:\n  atol: 1\n  rtol: 2\n seed: 2\n", 4},
		{"unclosed list", "verify:\n  atol: 1\n  batch_sizes: [1, 2\nrun:\n  jobs: 1\n", 3},
		{"list item in a mapping", "python:\n  venv: x\n- models\n", 3},
		{"model misaligned", "models:\n  - input: a\n    output: b\n  - input: c\n   output: d\n", 5},
		{"two colons", "verify:\n  atol: 1\n  rtol: 1: 2\n", 3},
		{"no colon", "log:\n  level: info\nverbose\nrun: {}\n", 3},
		{"duplicate key", "run:\n  jobs: 1\n  jobs: 2\n", 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "c.yaml", c.content)
			_, err := Load(NewViper(), file, nil)
			if err == nil {
				t.Fatal("no error")
			}
			line := strings.Split(c.content, "\n")[c.line-1]
			prefix := file + ":" + itoa(c.line) + ": "
			if !strings.HasPrefix(err.Error(), prefix) || strings.Contains(err.Error(), "While parsing config") {
				t.Errorf("got %q, want it to start %q (the line is %q)", err, prefix, line)
			}
			if !strings.Contains(err.Error(), quote(line)) {
				t.Errorf("got %q, want it to show the line %s", err, quote(line))
			}
		})
	}
}

// An output's folder that does not exist is created before converting,
// as -o DIR/ does; validation refuses only one that cannot be made.
func TestOutputFolders(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "file", "x")
	cfg := defaultConfig(t)
	cfg.Models = []Model{
		{Input: writeFile(t, dir, "a.onnx", "x"), Output: filepath.Join(dir, "new", "deeper", "a.pt")},
		{Input: writeFile(t, dir, "b.onnx", "x"), Output: filepath.Join(file, "sub", "deeper", "b.pt")},
	}
	got := problemsOf(t, cfg.Validate())
	want := "models[1].output: cannot create directory " + filepath.Join(file, "sub", "deeper") + ": " + file + " is not a directory"
	if len(got) != 1 || got[0] != want {
		t.Errorf("problems %q, want %q", got, want)
	}
	cfg.Models = cfg.Models[:1]
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("validation created the folder: %v", err)
	}
	if err := cfg.CreateOutputFolders(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "new", "deeper")); err != nil || !st.IsDir() {
		t.Errorf("folder not created: %v", err)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func quote(s string) string { return strconv.Quote(s) }
