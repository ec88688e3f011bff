package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
		{"output without input", []string{"convert", "--output", "x.pt"}, exitUsage, "--output needs models to convert"},
		{"missing input", []string{"convert", "--input", filepath.Join(dir, "none.onnx")}, exitUsage, filepath.Join(dir, "none.onnx") + " does not exist"},
		{"output folder that cannot be made", []string{"convert", "-i", model, "-o", filepath.Join(model, "no", "m.pt")}, exitUsage, "--output: cannot create directory"},
		{"config typo", []string{"convert", "--config", badCfg}, exitUsage, "verify.atoll: unknown key (did you mean verify.atol?)"},
		{"inspect without a model", []string{"inspect"}, exitUsage, "inspect: name at least one ONNX model"},
		{"extra argument", []string{"version", "extra"}, exitUsage, "version: unknown command"},
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

// TestValidationMessages runs every kind of settings problem through the
// command line: each is one line naming the key or argument and what to
// do, exits 2, and a global value the models inherit is reported once.
func TestValidationMessages(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	os.WriteFile(model, []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	models := "models:\n  - {input: m.onnx, output: a.pt}\n  - {input: m.onnx, output: b.pt}\n"
	for _, c := range []struct {
		name   string
		args   []string
		says   []string
		absent []string
	}{
		{"unknown key", []string{"-c", write("k1.yaml", "modelz: []\n"+models)},
			[]string{"modelz: unknown key (did you mean models?)"}, nil},
		{"unknown nested key", []string{"-c", write("k2.yaml", "verify: {batch_size: [1]}\nrun: {jbos: 2}\n"+models)},
			[]string{"verify.batch_size: unknown key (did you mean verify.batch_sizes?)", "run.jbos: unknown key (did you mean run.jobs?)"}, nil},
		{"unknown model key", []string{"-c", write("k3.yaml", "models:\n  - {inptu: m.onnx, output: a.pt, data: {input: x}}\n")},
			[]string{"models[0].inptu: unknown key (did you mean models[0].input?)", "models[0].data.input: unknown key (did you mean models[0].data.inputs?)"}, nil},
		{"unknown key far from any", []string{"-c", write("k4.yaml", "colour: red\n"+models)},
			[]string{"colour: unknown key"}, []string{"did you mean"}},
		{"inherited value reported once", []string{"-c", write("g.yaml", "verify: {atol: -1}\n"+models)},
			[]string{"verify.atol: -1 is not in [0, 1)"}, []string{"models[0].verify", "models[1].verify"}},
		{"a model's own value", []string{"-c", write("o.yaml", "models:\n  - {input: m.onnx, output: a.pt, verify: {rtol: 2}}\n")},
			[]string{"models[0].verify.rtol: 2 is not in [0, 1)"}, nil},
		{"run settings", []string{"-c", write("r.yaml", "run: {jobs: -1, shard: 2/2, max_worker_memory: lots}\n"+models)},
			[]string{"run.jobs: -1 is negative", `run.shard: "2/2": the shard index must be from 0 to N-1`, `run.max_worker_memory: "lots" is not a size`}, nil},
		{"artifacts", []string{"-c", write("a.yaml", "artifacts: [onnx]\n"+models)},
			[]string{`artifacts: "onnx" is not one of checkpoint, state_dict, torchscript, exported, source`}, nil},
		{"missing argument", []string{filepath.Join(dir, "none.onnx")}, []string{filepath.Join(dir, "none.onnx") + " does not exist"}, nil},
		{"glob without matches", []string{filepath.Join(dir, "*.onnnx")}, []string{"*.onnnx: matches no file"}, nil},
		{"folder without models", []string{filepath.Join(dir, "empty")}, []string{"empty: a folder without .onnx files"}, nil},
		{"one output file for many models", []string{model, model, "-o", filepath.Join(dir, "x.pt")}, []string{"2 models need a folder"}, nil},
		{"shard flag", []string{model, "--shard", "1/1"}, []string{`run.shard: "1/1"`}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"convert"}, c.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d\n%s", code, exitUsage, stderr)
			}
			for _, want := range c.says {
				if strings.Count(stderr, want) != 1 {
					t.Errorf("want %q exactly once in:\n%s", want, stderr)
				}
			}
			for _, not := range c.absent {
				if strings.Contains(stderr, not) {
					t.Errorf("%q should not appear in:\n%s", not, stderr)
				}
			}
		})
	}
}

// TestArgumentsBecomeModels covers files, folders, globs the shell left
// alone, and -o as a file, an existing folder or a new one ending in /.
func TestArgumentsBecomeModels(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.onnx", "b.onnx", "notes.txt", filepath.Join("sub", "c.onnx")} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, "out"), 0o755)
	p := func(parts ...string) string { return filepath.Join(append([]string{dir}, parts...)...) }
	for _, c := range []struct {
		name   string
		args   []string
		output string
		want   [][2]string // input, output
	}{
		{"a file beside itself", []string{p("a.onnx")}, "", [][2]string{{p("a.onnx"), p("a.pt")}}},
		{"a file to a file", []string{p("a.onnx")}, p("x.pt"), [][2]string{{p("a.onnx"), p("x.pt")}}},
		{"a file into an existing folder", []string{p("a.onnx")}, p("out"), [][2]string{{p("a.onnx"), p("out", "a.pt")}}},
		{"a folder", []string{dir}, "", [][2]string{{p("a.onnx"), p("a.pt")}, {p("b.onnx"), p("b.pt")}}},
		{"a glob into a new folder", []string{p("*", "*.onnx")}, p("new") + "/", [][2]string{{p("sub", "c.onnx"), p("new", "c.pt")}}},
		{"several, in order", []string{p("b.onnx"), p("a.onnx")}, p("out"), [][2]string{{p("b.onnx"), p("out", "b.pt")}, {p("a.onnx"), p("out", "a.pt")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			models, err := modelsFromArgs(c.args, c.output)
			if err != nil {
				t.Fatal(err)
			}
			var got [][2]string
			for _, m := range models {
				got = append(got, [2]string{m.Input, m.Output})
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	// Made once the settings are valid (TestOutputFoldersAreMadeOnceValid).
	if _, err := os.Stat(p("new")); !os.IsNotExist(err) {
		t.Errorf("-o new/ was made before validation: %v", err)
	}
}

func TestErrorLinesShowNamesEscapedAndKeepTheirBreaks(t *testing.T) {
	dir := t.TempDir()
	evil := filepath.Join(dir, "\x1b[2Jevil.onnx")
	code, _, stderr := runCLI(t, "convert", "--input", evil)
	if code != exitUsage || strings.Contains(stderr, "\x1b") || !strings.Contains(stderr, `\x1b[2Jevil.onnx`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	// Several configuration problems (two keys, and no models): one a
	// line, as before.
	cfg := filepath.Join(dir, "two.yaml")
	os.WriteFile(cfg, []byte("verify:\n  atoll: 1\n  rtoll: 2\n"), 0o644)
	code, _, stderr = runCLI(t, "convert", "--config", cfg)
	if code != exitUsage || !strings.Contains(stderr, "3 problems:\n  - ") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// Without python.venv, the virtualenv is the user's own for this
// interpreter and requirement set: the same from every directory, never one
// in the working directory; a config that names one wins.
func TestTheDefaultVirtualenvIsPerUser(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	for _, k := range []string{"ONNX2PT_PYTHON_VENV", "ONNX2PT_PYTHON_REQUIREMENTS"} {
		t.Setenv(k, "") // restored afterwards
		os.Unsetenv(k)
	}
	venvLine := func(dir string, args ...string) string {
		t.Helper()
		t.Chdir(dir)
		code, stdout, stderr := runCLI(t, append([]string{"version"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, line := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(line, "virtualenv ") {
				return line
			}
		}
		t.Fatalf("version names no virtualenv:\n%s", stdout)
		return ""
	}
	one, other := t.TempDir(), t.TempDir()
	first := venvLine(one)
	if !strings.HasPrefix(first, "virtualenv "+filepath.Join(cache, "onnx2pt", "venvs")+string(filepath.Separator)) ||
		!strings.Contains(first, "python.venv is not set") {
		t.Errorf("default %q: want one under the user cache, saying why", first)
	}
	if again := venvLine(other); again != first {
		t.Errorf("from another directory %q, was %q", again, first)
	}
	reqs := filepath.Join(other, "reqs.txt")
	os.WriteFile(reqs, []byte("torch\nonnx2torch\nonnxruntime\nnumpy\nonnx\n"), 0o644)
	t.Setenv("ONNX2PT_PYTHON_REQUIREMENTS", reqs)
	if own := venvLine(other); own == first {
		t.Errorf("other requirements share the default virtualenv %q", own)
	}
	os.Unsetenv("ONNX2PT_PYTHON_REQUIREMENTS")
	cfg := filepath.Join(one, "c.yaml")
	os.WriteFile(cfg, []byte("python:\n  venv: envs/mine\n"), 0o644)
	if named := venvLine(other, "-c", cfg); named != "virtualenv "+filepath.Join(one, "envs", "mine")+" (python.venv, from the config file)" {
		t.Errorf("config's venv: %q", named)
	}
	for _, dir := range []string{one, other} {
		if _, err := os.Stat(filepath.Join(dir, ".venv")); err == nil {
			t.Errorf("a .venv was made in %s", dir)
		}
	}
}

// The end of a run cancels its context too: that is no interrupt, and the
// run's last line must stay its own.
func TestTheEndOfARunIsNotAnInterrupt(t *testing.T) {
	var stderr syncBuffer
	a := newApp(&bytes.Buffer{}, &stderr)
	a.execute(context.Background(), []string{"convert", "--input", filepath.Join(t.TempDir(), "none.onnx")})
	time.Sleep(100 * time.Millisecond) // room for a stray goroutine to log
	if strings.Contains(stderr.String(), "Interrupted") {
		t.Fatalf("announced an interrupt that never came:\n%s", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a goroutine writing while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
