package main

// End-to-end tests of the first hour: a config file used from another
// directory, and models given on the command line.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The repository's own config, run from elsewhere, converts the reference
// model with the repository's virtualenv and writes beside the model.
func TestConfigFromAnotherDirectory(t *testing.T) {
	t.Parallel()
	if filepath.Clean(venvDir) != filepath.Join(repoRoot, ".venv") {
		t.Skip("the tests use another virtualenv (ONNX2PT_TEST_VENV); the config names the repository's")
	}
	elsewhere := t.TempDir()
	// With the config's own settings, so the repository's outputs stay as
	// `go tool task convert` leaves them (up to date for the next run).
	cmd := exec.Command(binary, "convert", "-c", filepath.Join(repoRoot, "config", "onnx2pt.yaml"), "-v")
	cmd.Dir = elsewhere
	for _, kv := range os.Environ() { // the settings must come from the file alone
		if !strings.HasPrefix(kv, "ONNX2PT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	r := runCmd(t, cmd)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	want := filepath.Join(repoRoot, "models", "resnet8.pt")
	if !strings.Contains(r.stderr, "Saved to "+want) && !strings.Contains(r.stderr, "Up to date: "+want) {
		t.Errorf("not saved beside the model (%s):\n%s", want, r.stderr)
	}
	if strings.Contains(r.stderr, "Provisioning virtualenv") {
		t.Errorf("a new virtualenv was made instead of using the repository's:\n%s", r.stderr)
	}
	assertOnly(t, elsewhere) // nothing written where it ran
}

func TestModelsAsArguments(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	copies(t, dir, 2) // m0.onnx, m1.onnx beside resnet8.onnx
	ready := regexp.MustCompile(`Worker \d+ ready`)
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"files into a new folder", []string{"m0.onnx", "m1.onnx", "-o", "out/"}, []string{"out/m0.pt", "out/m1.pt"}},
		{"a glob the shell left alone", []string{"m*.onnx", "-o", "globbed/"}, []string{"globbed/m0.pt", "globbed/m1.pt"}},
		{"a folder, beside its models", []string{"."}, []string{"m0.pt", "m1.pt", "resnet8.pt"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"convert", "--jobs", "1", "-v", "--artifacts", "checkpoint,state_dict"}, c.args...)
			r := onnx2pt(t, dir, args...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			for _, out := range c.want {
				if _, err := os.Stat(filepath.Join(dir, out)); err != nil {
					t.Errorf("%s not written: %v", out, err)
				}
			}
			if n := len(ready.FindAllString(r.stderr, -1)); n != 1 {
				t.Errorf("%d interpreters started for %d models, want one", n, len(c.want))
			}
		})
	}
}

// A conversion made from one directory is up to date from any other: the
// config's paths resolve against its own folder, and the report's do not
// tie it to the directory it was written from.
func TestUpToDateFromAnyDirectory(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	cfgDir := filepath.Join(dir, "config")
	if err := os.Mkdir(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(cfgDir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("artifacts: [checkpoint]\nmodels:\n  - {input: ../resnet8.onnx, output: ../out/resnet8.pt}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := onnx2pt(t, dir, "convert", "-c", cfg); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, from := range []string{cfgDir, t.TempDir(), "/"} {
		r := onnx2pt(t, from, "convert", "-c", cfg, "-v")
		if r.code != 0 || !strings.Contains(r.stderr, "Up to date") || strings.Contains(r.stderr, "Starting Python") {
			t.Errorf("from %s: exit %d, converted again:\n%s", from, r.code, r.stderr)
		}
	}
}
