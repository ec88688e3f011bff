package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx2pt/onnx2pt/pyembed"
)

// These tests run the command line in-process on paths that stop before
// Python starts; the end-to-end tests in cmd/onnx2pt cover the rest.

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	_, code, stdout, stderr := runApp(t, args...)
	return code, stdout, stderr
}

// runApp is runCLI that also returns the app, whose settings show what
// the flags were bound to.
func runApp(t *testing.T, args ...string) (*app, int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := newApp(&stdout, &stderr)
	code := a.execute(context.Background(), args)
	return a, code, stdout.String(), stderr.String()
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	os.WriteFile(model, []byte("x"), 0o644)
	badCfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badCfg, []byte("verify:\n  atoll: 1\n"), 0o644)
	for _, c := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"unknown flag", []string{"convert", "--nope"}, exitUsage, "unknown flag: --nope"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"output without input", []string{"convert", "--output", "x.pt"}, exitUsage, "--output needs --input"},
		{"missing input", []string{"convert", "--input", filepath.Join(dir, "none.onnx")}, exitUsage, "--input: " + filepath.Join(dir, "none.onnx") + " does not exist"},
		{"unwritable output dir", []string{"convert", "-i", model, "-o", filepath.Join(dir, "no", "m.pt")}, exitUsage, "--output: directory"},
		{"config typo", []string{"convert", "--config", badCfg}, exitUsage, "'verify' has invalid keys: atoll"},
		{"bad log level", []string{"version", "--log-level", "loud"}, exitUsage, `"loud" is not one of`},
		{"flag overrides the file", []string{"convert", "--config", filepath.Join("..", "..", "config", "onnx2pt.yaml"), "--batch-sizes", "0"}, exitUsage, "batch_sizes: 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			if !strings.Contains(stderr, c.says) {
				t.Errorf("stderr lacks %q:\n%s", c.says, stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "onnx2pt ") || !strings.Contains(stdout, "embeds Python "+pyembed.LinkedVersion()) {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, stdout, _ := runCLI(t, "--help")
	for _, want := range []string{"convert", "venv", "version"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %s", want)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	t.Setenv("ONNX2PT_LOG_LEVEL", "loud")
	if code, _, stderr := runCLI(t, "version"); code != exitUsage || !strings.Contains(stderr, `"loud" is not one of`) {
		t.Errorf("environment not applied: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "version", "--log-level", "info"); code != exitOK {
		t.Errorf("flag did not override the environment: exit %d\n%s", code, stderr)
	}
}

// TestPythonFlags checks that every command that provisions or starts
// Python takes the same environment flags and binds them to the settings.
// A missing config file stops each run before anything is provisioned;
// version without --python never provisions.
func TestPythonFlags(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	os.WriteFile(model, []byte("x"), 0o644)
	missing := filepath.Join(dir, "missing.yaml")
	for _, name := range []string{"CONFIG", "PYTHON_VENV", "PYTHON_INTERPRETER", "PYTHON_OFFLINE", "PYTHON_INSTALLER"} {
		t.Setenv("ONNX2PT_"+name, "")
	}
	notFound := missing + ": config file not found"
	all := []string{"--venv", "v", "--offline", "--installer", "pip"}
	allSet := map[string]any{"python.venv": "v", "python.interpreter": "py", "python.offline": true, "python.installer": "pip"}
	for _, c := range []struct {
		name string
		args []string
		code int
		says string
		want map[string]any
	}{
		{"inspect --venv", []string{"inspect", model, "--config", missing, "--venv", "v"}, exitUsage, notFound, map[string]any{"python.venv": "v"}},
		{"version --venv", []string{"version", "--venv", "v"}, exitOK, "", map[string]any{"python.venv": "v"}},
		{"convert", append([]string{"convert", "--config", missing, "--python", "py"}, all...), exitUsage, notFound, allSet},
		{"convert --interpreter", append([]string{"convert", "--config", missing, "--interpreter", "py"}, all...), exitUsage, notFound, allSet},
		{"inspect", append([]string{"inspect", model, "--config", missing, "--python", "py"}, all...), exitUsage, notFound, allSet},
		{"venv", append([]string{"venv", "--config", missing, "--python", "py"}, all...), exitUsage, notFound, allSet},
		{"version --python", append([]string{"version", "--python", "--config", missing, "--interpreter", "py"}, all...), exitUsage, notFound, allSet},
		{"version", append([]string{"version", "--interpreter", "py"}, all...), exitOK, "", allSet},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, code, _, stderr := runApp(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.says) {
				t.Errorf("exit %d, want %d with %q; stderr:\n%s", code, c.code, c.says, stderr)
			}
			for key, want := range c.want {
				if got := a.v.Get(key); got != want {
					t.Errorf("%s = %v, want %v", key, got, want)
				}
			}
		})
	}
}

func TestInterpreterGivenTwice(t *testing.T) {
	code, _, stderr := runCLI(t, "convert", "--python", "a", "--interpreter", "b")
	if code != exitUsage || !strings.Contains(stderr, "--interpreter and --python both set python.interpreter") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
}
