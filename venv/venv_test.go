package venv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// These tests make real virtualenvs with the machine's python3 and install
// an empty requirements file with pip: no network, a few seconds each.

func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on PATH")
	}
	return p
}

func spec(t *testing.T, dir string, req string) (Spec, *test.Hook) {
	logger, hook := test.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	return Spec{
		Dir:              dir,
		Python:           python(t),
		Requirements:     []byte(req),
		RequirementsName: "requirements.txt",
		Imports:          []string{"json"},
		Installer:        "pip",
		Log:              logger,
	}, hook
}

func messages(hook *test.Hook) string {
	var b strings.Builder
	for _, e := range hook.AllEntries() {
		b.WriteString(e.Message + "\n")
	}
	return b.String()
}

func TestProvisionsOnceUntilRequirementsChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "venv")
	s, hook := spec(t, dir, "# nothing yet\n")
	env, err := Ensure(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if !env.Installed {
		t.Fatal("first Ensure did not install")
	}
	if _, err := os.Stat(filepath.Join(dir, "pyvenv.cfg")); err != nil {
		t.Fatal("no virtualenv was created")
	}

	hook.Reset()
	if env, err = Ensure(context.Background(), s); err != nil || env.Installed {
		t.Fatalf("unchanged: %+v, %v; want no install", env, err)
	}

	s.Requirements = []byte("# something else\n")
	if env, err = Ensure(context.Background(), s); err != nil || !env.Installed {
		t.Fatalf("changed requirements: %+v, %v; want a reinstall", env, err)
	}
	if !strings.Contains(messages(hook), "requirements.txt changed") {
		t.Errorf("reinstall did not say why:\n%s", messages(hook))
	}
}

func TestInterruptedInstallIsRepaired(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "venv")
	s, hook := spec(t, dir, "# one\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Ensure(ctx, s); err == nil {
		t.Fatal("a cancelled install reported success")
	}
	if readStamp(dir) != (stamp{}) {
		t.Fatal("a cancelled install left the environment marked ready")
	}
	if _, err := Ensure(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	// A killed install leaves the venv and some packages but no stamp.
	if err := os.Remove(filepath.Join(dir, stampName)); err != nil {
		t.Fatal(err)
	}
	hook.Reset()
	env, err := Ensure(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if !env.Installed {
		t.Fatal("an unfinished environment was taken as ready")
	}
	if !strings.Contains(messages(hook), "did not finish") {
		t.Errorf("repair did not say why:\n%s", messages(hook))
	}
}

func TestConcurrentRunsInstallOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "venv")
	var wg sync.WaitGroup
	installs := make(chan bool, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := spec(t, dir, "# shared\n")
			env, err := Ensure(context.Background(), s)
			if err != nil {
				t.Error(err)
				return
			}
			installs <- env.Installed
		}()
	}
	wg.Wait()
	close(installs)
	n := 0
	for installed := range installs {
		if installed {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of 4 concurrent runs installed, want exactly 1", n)
	}
}

func TestFailedInstallSaysWhyAndStaysUnready(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "venv")
	s, _ := spec(t, dir, "--no-index\nno-such-package-onnx2pt-test==1.0\n")
	_, err := Ensure(context.Background(), s)
	if err == nil {
		t.Fatal("installing a missing package succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, dir+".log") {
		t.Errorf("error should be one line naming the log: %q", msg)
	}
	if !strings.Contains(msg, "no no-such-package-onnx2pt-test release installs on Python 3.") {
		t.Errorf("error does not say what is missing: %q", msg)
	}
	if readStamp(dir) != (stamp{}) {
		t.Error("a failed install left the environment marked ready")
	}
}

func TestRefusesToReplaceANonVenvDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := spec(t, dir, "")
	_, err := Ensure(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "is not a virtualenv") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
		t.Error("the directory's contents were touched")
	}
}

func TestOfflineWithMissingPackages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "venv")
	s, _ := spec(t, dir, "onnx2pt-test-package-nobody-has\n")
	s.Offline = true
	_, err := Ensure(context.Background(), s)
	if err == nil {
		t.Fatal("an offline install of a missing package succeeded")
	}
	if !strings.Contains(err.Error(), "offline mode, and onnx2pt-test-package-nobody-has is not installed or cached") {
		t.Errorf("got %q", err)
	}
}

func TestExplain(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte("version_info = 3.14.0\n"), 0o644)
	for _, c := range []struct {
		output  string
		offline bool
		want    string
	}{
		{"error: Failed to fetch: `https://pypi.org/simple/torch/`\n  Caused by: dns error", false, "cannot reach the package index"},
		{"ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device", false, "the disk is full"},
		{"  × No solution found when resolving dependencies:\n  ╰─▶ Because torch==2.15.0 has no wheels with a matching Python ABI tag", false, "no torch release installs on Python 3.14.0 on " + runtime.GOOS},
		{"ERROR: No matching distribution found for onnxruntime", false, "no onnxruntime release installs"},
		{"error: Network connectivity is disabled, but the requested data wasn't found in the cache for: `torch`", true, "offline mode, and a required package is not installed or cached"},
		{"  × No solution found when resolving dependencies:\n  ╰─▶ Because you require a<1 and a>2, we can conclude that your requirements are unsatisfiable.", false, "the requirements conflict"},
		{"something else entirely", false, "something else entirely"},
	} {
		err := &cmdError{err: errors.New("exit status 1"), output: strings.Split(c.output, "\n")}
		got := explain(err, Spec{Dir: dir, Offline: c.offline})
		if !strings.Contains(got, c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.output, got, c.want)
		}
	}
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// makeVenv makes a real virtualenv without pip (fast, no network).
func makeVenv(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command(python(t), "-m", "venv", "--without-pip", dir).CombinedOutput(); err != nil {
		t.Fatalf("python3 -m venv: %v\n%s", err, out)
	}
}

func TestIDFollowsInstalledPackages(t *testing.T) {
	tmp := t.TempDir()
	// The interpreter records any start: a ready venv must not start one.
	started := filepath.Join(tmp, "started")
	py := filepath.Join(tmp, "python3")
	writeScript(t, py, "echo \"$@\" >> "+started+"\nexit 1\n")
	dir := filepath.Join(tmp, "venv")
	site := filepath.Join(dir, "lib", "python3.11", "site-packages")
	for _, d := range []string{filepath.Join(dir, "bin"), filepath.Join(site, "torch-2.5.1.dist-info")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "bin", "python"), nil, 0o755)
	os.WriteFile(filepath.Join(site, "six-1.16.0-py3.11.egg-info"), nil, 0o644)
	os.Symlink("lib", filepath.Join(dir, "lib64"))

	s, _ := spec(t, dir, "torch\n")
	s.Python = py
	s.CheckPython = func(context.Context, string) error {
		t.Error("a ready venv was provisioned again")
		return errors.New("unexpected")
	}
	want, err := wantedStamp(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeStamp(dir, want); err != nil {
		t.Fatal(err)
	}
	id := func() string {
		t.Helper()
		env, err := Ensure(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if env.Installed {
			t.Fatal("a ready venv was reinstalled")
		}
		return env.ID
	}
	mv := func(from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(site, from), filepath.Join(site, to)); err != nil {
			t.Fatal(err)
		}
	}

	first := id()
	if again := id(); again != first {
		t.Fatalf("an unchanged venv changed ID: %s → %s", first, again)
	}
	mv("torch-2.5.1.dist-info", "torch-2.6.0.dist-info") // pip install -U torch
	upgraded := id()
	if upgraded == first {
		t.Error("upgrading a package left the ID unchanged")
	}
	os.Mkdir(filepath.Join(site, "numpy-2.1.0.dist-info"), 0o755)
	added := id()
	if added == upgraded {
		t.Error("installing a package left the ID unchanged")
	}
	os.Remove(filepath.Join(site, "numpy-2.1.0.dist-info"))
	if id() != upgraded {
		t.Error("removing the added package did not restore the ID")
	}
	mv("six-1.16.0-py3.11.egg-info", "six-1.17.0-py3.11.egg-info")
	if id() == upgraded {
		t.Error("upgrading an egg-info distribution left the ID unchanged")
	}
	if _, err := os.Stat(started); err == nil {
		data, _ := os.ReadFile(started)
		t.Errorf("a ready venv started its interpreter:\n%s", data)
	}
}

func TestCancelledCheckKeepsTheVenv(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "venv")
	makeVenv(t, dir)
	// Unfinished (no stamp), so Ensure checks which Python made it.
	precious := filepath.Join(dir, "lib", "precious.dist-info")
	if err := os.Mkdir(precious, 0o755); err != nil {
		t.Fatal(err)
	}
	s, _ := spec(t, dir, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Ensure(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("got %v, want an interruption", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Error("a cancelled check deleted the virtualenv")
	}
}

func TestCancelledCheckKeepsSharedUV(t *testing.T) {
	// Hide any uv on PATH so onnx2pt's own copy is the one checked.
	var path []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "uv")); err != nil {
			path = append(path, d)
		}
	}
	s, _ := spec(t, filepath.Join(t.TempDir(), "venv"), "")
	t.Setenv("PATH", strings.Join(path, string(filepath.ListSeparator)))
	s.Installer = ""
	s.ToolsDir = t.TempDir()
	uv := filepath.Join(s.ToolsDir, "uv", "bin", "uv")
	writeScript(t, uv, "echo uv 0.0.0\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Ensure(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("got %v, want an interruption", err)
	}
	if _, err := os.Stat(uv); err != nil {
		t.Error("a cancelled check deleted the shared copy of uv")
	}
}

// TestVenvWhosePythonDoesNotRun: such a venv is remade only when its
// pyvenv.cfg names another Python; otherwise the failure is reported.
func TestVenvWhosePythonDoesNotRun(t *testing.T) {
	ctx := context.Background()
	out, err := exec.Command(python(t), "-I", "-c", "import os, platform, sys; print(platform.python_version(), os.path.realpath(sys.executable))").Output()
	if err != nil {
		t.Fatal(err)
	}
	version, exe, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	fast := installer{name: "venv", create: func(python, dir string) []string {
		return []string{python, "-m", "venv", "--without-pip", dir}
	}}
	for _, c := range []struct {
		name, cfg string
		remade    bool
	}{
		{"another version", "home = /nonexistent/bin\nversion = 3.0.1\n", true},
		{"another home", "home = /nonexistent/bin\nversion = " + version + "\n", true},
		{"this python", "home = " + filepath.Dir(exe) + "\nversion = " + version + "\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "venv")
			os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
			os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte(c.cfg), 0o644)
			os.Symlink(filepath.Join(dir, "gone", "python3"), filepath.Join(dir, "bin", "python"))
			precious := filepath.Join(dir, "precious")
			os.WriteFile(precious, nil, 0o644)

			s, _ := spec(t, dir, "")
			env := &Env{Dir: dir, Python: filepath.Join(dir, "bin", "python")}
			err := create(ctx, s, env, fast, "")
			_, kept := os.Stat(precious)
			if c.remade {
				if err != nil || kept == nil {
					t.Errorf("not remade: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "does not run") || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want one line saying its python does not run", err)
			}
			if kept != nil {
				t.Error("deleted without evidence that another Python made it")
			}
		})
	}
}

// TestRefusesABaseInterpreter: a directory with a pyvenv.cfg whose python
// is not a virtualenv's must not have anything installed with it.
func TestRefusesABaseInterpreter(t *testing.T) {
	other := filepath.Join(t.TempDir(), "other")
	makeVenv(t, other)
	for _, c := range []struct{ name, target, want string }{
		{"base interpreter", python(t), "its python is the base interpreter"},
		{"another venv's python", filepath.Join(other, "bin", "python"), "its python belongs to " + other},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "venv")
			calls := filepath.Join(t.TempDir(), "installs")
			// A wrapper runs the target, except for any install, which it
			// records instead of letting it change that Python.
			writeScript(t, filepath.Join(dir, "bin", "python"),
				"case \"$*\" in *pip*) echo \"$*\" >> "+calls+"; exit 1;; esac\nexec "+c.target+" \"$@\"\n")
			os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte("home = /usr/bin\n"), 0o644)

			s, _ := spec(t, dir, "")
			_, err := Ensure(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), "is not a virtualenv ("+c.want) ||
				!strings.Contains(err.Error(), "python.venv: "+dir) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want a one-line refusal saying %q", err, c.want)
			}
			if data, err := os.ReadFile(calls); err == nil {
				t.Errorf("installed with a python that is not the venv's:\n%s", data)
			}
			if readStamp(dir) != (stamp{}) {
				t.Error("marked ready")
			}
		})
	}
}
