package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A model whose name is not UTF-8 is refused before anything starts, the
// name shown with its bad bytes escaped; so is a --summary path. (The
// batch size 0 keeps a run that would let them through from starting
// Python.)
func TestNonUTF8PathsFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad\xffname.onnx")
	if err := os.WriteFile(bad, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "convert", bad, "--summary", filepath.Join(dir, "s\xfe.json"), "--batch-sizes", "0")
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	for _, want := range []string{
		`--input: the path is not valid UTF-8 ("` + dir + `/bad\xffname.onnx"): rename the file`,
		`run.summary: the path is not valid UTF-8 ("` + dir + `/s\xfe.json"): choose another name`,
	} {
		if strings.Count(stderr, want) != 1 {
			t.Errorf("want once %s\nin:\n%s", want, stderr)
		}
	}
	// The output named after the input is not reported again: renaming the
	// input fixes both.
	if strings.Contains(stderr, "--output") {
		t.Errorf("the output is reported too:\n%s", stderr)
	}
}

// Every problem of a config file comes out at once: values of the wrong
// type (with the value), values out of range, and the command line's.
func TestConfigProblemsAllAtOnce(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "m.onnx"), []byte("x"), 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("run:\n  timeout: 5 minutes\n  jobs: -3\nverify:\n  atol: -1\n  rtol: abc\nmodels:\n  - {input: m.onnx, output: m.pt}\n"), 0o644)
	for _, c := range []struct {
		name  string
		args  []string
		extra string
	}{
		{"the file's models", nil, ""},
		{"models as arguments", []string{filepath.Join(dir, "m.onnx"), "--shard", "3/2"}, `run.shard: "3/2"`},
		{"a missing argument", []string{filepath.Join(dir, "none.onnx")}, filepath.Join(dir, "none.onnx") + " does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"convert", "-c", cfg}, c.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			for _, want := range []string{
				`run.timeout: "5 minutes" is not a duration (use e.g. 90s or 10m)`,
				`verify.rtol: "abc" is not a number`,
				"verify.atol: -1 is not in [0, 1)",
				"run.jobs: -3 is negative",
				c.extra,
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("missing %q in:\n%s", want, stderr)
				}
			}
		})
	}
	// Commands that do not validate still refuse a value they cannot read.
	code, _, stderr := runCLI(t, "venv", "-c", cfg)
	if code != exitUsage || !strings.Contains(stderr, `run.timeout: "5 minutes" is not a duration`) {
		t.Errorf("venv: exit %d\n%s", code, stderr)
	}
}

// -o with a name that is neither a checkpoint file nor an existing folder
// would write files named after the folder: it is refused, suggesting the
// folder. An existing folder is still a folder.
func TestOutputThatLooksLikeAFolder(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	os.WriteFile(model, []byte("x"), 0o644)
	t.Setenv("ONNX2PT_PYTHON_REQUIREMENTS", dir) // stops a run let through before any virtualenv work
	newdir := filepath.Join(dir, "newdir")
	code, _, stderr := runCLI(t, "convert", model, "-o", newdir)
	want := "--output " + newdir + ": neither a .pt, .pth or .pt2 file nor an existing folder; for a new folder, end it with / (" + newdir + "/)"
	if code != exitUsage || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, want %d with %q:\n%s", code, exitUsage, want, stderr)
	}
	if _, err := os.Stat(newdir); !os.IsNotExist(err) {
		t.Errorf("%s was created: %v", newdir, err)
	}
	for _, out := range []string{filepath.Join(dir, "m.pth"), filepath.Join(dir, "m.pt2")} {
		if models, err := modelsFromArgs([]string{model}, out); err != nil || models[0].Output != out {
			t.Errorf("-o %s: %v %v", out, models, err)
		}
	}
	os.Mkdir(newdir, 0o755)
	if models, err := modelsFromArgs([]string{model}, newdir); err != nil || models[0].Output != filepath.Join(newdir, "m.pt") {
		t.Errorf("-o existing folder: %v %v", models, err)
	}
}

// Outputs' folders are made once the settings are valid, the same way for
// the config file's outputs and for -o: a refused run makes none. (A
// python.requirements that is a folder stops the run right after, before
// any virtualenv work.)
func TestOutputFoldersAreMadeOnceValid(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "m.onnx"), []byte("x"), 0o644)
	t.Setenv("ONNX2PT_PYTHON_REQUIREMENTS", dir)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("models:\n  - {input: m.onnx, output: out/sub/m.pt}\n"), 0o644)

	code, _, stderr := runCLI(t, "convert", "-c", cfg)
	if code != exitUsage || !strings.Contains(stderr, "python.requirements:") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "out", "sub")); err != nil || !st.IsDir() {
		t.Errorf("the config's output folder was not made: %v", err)
	}

	// A refused run makes no folder, for -o DIR/ as for the config's.
	refused := filepath.Join(dir, "refused") + "/"
	code, _, stderr = runCLI(t, "convert", filepath.Join(dir, "m.onnx"), "-o", refused, "--batch-sizes", "0")
	if code != exitUsage {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("a refused run made %s: %v", refused, err)
	}
	made := filepath.Join(dir, "made") + "/"
	runCLI(t, "convert", filepath.Join(dir, "m.onnx"), "-o", made)
	if st, err := os.Stat(made); err != nil || !st.IsDir() {
		t.Errorf("-o %s: not made: %v", made, err)
	}
}
