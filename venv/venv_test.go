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
