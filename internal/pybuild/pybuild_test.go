package pybuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbeDescribesARealInterpreter(t *testing.T) {
	info, err := Probe("python3")
	if err != nil {
		t.Skip("no python3:", err)
	}
	if info.Major != 3 || info.Executable == "" || !strings.HasPrefix(info.Version, "3.") || info.IncludeDir == "" {
		t.Errorf("probe: %+v", info)
	}
}

func TestProbeOfAMissingInterpreter(t *testing.T) {
	_, err := Probe("python-that-does-not-exist")
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("got %v", err)
	}
}

// fakeInstall lays out an include and a lib directory like a Python
// installation's and returns an Info pointing at them.
func fakeInstall(t *testing.T, headers, library, shared bool) Info {
	t.Helper()
	root := t.TempDir()
	inc, lib := filepath.Join(root, "include"), filepath.Join(root, "lib")
	os.MkdirAll(inc, 0o755)
	os.MkdirAll(lib, 0o755)
	info := Info{Executable: filepath.Join(root, "bin", "python3.12"), Version: "3.12.1", Major: 3, Minor: 12,
		IncludeDir: inc, LibDir: lib, LDVersion: "3.12", Shared: shared}
	if headers {
		os.WriteFile(filepath.Join(inc, "Python.h"), nil, 0o644)
	}
	if library {
		os.WriteFile(filepath.Join(lib, info.Library()), nil, 0o644)
	}
	return info
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name                     string
		headers, library, shared bool
		want                     string
	}{
		{"usable", true, true, true, ""},
		{"no headers", false, true, true, "has no C headers"},
		{"static build", true, false, false, "without a shared libpython"},
		{"no dev symlink", true, false, true, "libpython3.12"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := fakeInstall(t, c.headers, c.library, c.shared).Check()
			if c.want == "" {
				if err != nil {
					t.Errorf("unexpected %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "install") {
				t.Errorf("error is not one actionable line: %q", err)
			}
		})
	}
	old := fakeInstall(t, true, true, true)
	old.Minor = 8
	if err := old.Check(); err == nil || !strings.Contains(err.Error(), "too old") {
		t.Errorf("3.8: %v", err)
	}
}

func TestRenderPutsCompatFirstAndAddsRpath(t *testing.T) {
	info := fakeInstall(t, true, true, true)
	f := Render(info, "/src/pyembed/include", "/src/.build/python")
	cflags := lineStartingWith(f.PkgConfig, "Cflags:")
	if !strings.HasPrefix(cflags, "Cflags: -I/src/pyembed/include ") || strings.Index(cflags, info.IncludeDir) < strings.Index(cflags, "/src/pyembed/include") {
		t.Errorf("compat dir must come first: %s", cflags)
	}
	libs := lineStartingWith(f.PkgConfig, "Libs:")
	for _, want := range []string{"-L" + info.LibDir, "-lpython3.12", "-Wl,-rpath," + info.LibDir} {
		if !strings.Contains(libs, want) {
			t.Errorf("Libs lacks %s: %s", want, libs)
		}
	}
	if !strings.Contains(string(f.Header), `#define ONNX2PT_PYTHON_EXECUTABLE "`+info.Executable+`"`) {
		t.Errorf("header: %s", f.Header)
	}
	other := info
	other.LibDir = "/elsewhere"
	if Render(other, "/src/pyembed/include", "/src/.build/python").Key() == f.Key() {
		t.Error("different interpreters got the same build key")
	}
}

func TestWriteLeavesUnchangedFilesAlone(t *testing.T) {
	dir := t.TempDir()
	f := Render(fakeInstall(t, true, true, true), "/c", dir)
	if err := f.Write(dir); err != nil {
		t.Fatal(err)
	}
	pc := filepath.Join(dir, "python3.pc")
	old, _ := os.Stat(pc)
	if err := f.Write(dir); err != nil {
		t.Fatal(err)
	}
	now, _ := os.Stat(pc)
	if !now.ModTime().Equal(old.ModTime()) {
		t.Error("an unchanged file was rewritten")
	}
	data, _ := os.ReadFile(filepath.Join(dir, "include", "onnx2pt_build.h"))
	if string(data) != string(f.Header) {
		t.Error("header not written")
	}
}

func TestDiagnoseFindsAVenvOfAnotherVersion(t *testing.T) {
	if _, err := Probe("python3"); err != nil {
		t.Skip("no python3")
	}
	venv := t.TempDir()
	os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = /x\nversion = 3.2.1\n"), 0o644)
	var got *Finding
	findings := Diagnose("python3", venv, "/c", "/o")
	for i := range findings {
		if findings[i].Check == "virtualenv" {
			got = &findings[i]
		}
	}
	if got == nil || got.OK || !strings.Contains(got.Fix, "remove "+venv) || !strings.Contains(got.Fix, "PYTHON=python3.2") {
		t.Errorf("virtualenv finding: %+v", got)
	}
	if findings[0].Check != "interpreter" || !strings.Contains(findings[0].Found, "Python 3.") {
		t.Errorf("interpreter finding: %+v", findings[0])
	}
}

func TestDiagnoseAMissingInterpreter(t *testing.T) {
	findings := Diagnose("no-such-python", t.TempDir(), "/c", "/o")
	if len(findings) != 1 || findings[0].OK || findings[0].Fix == "" {
		t.Errorf("got %+v", findings)
	}
}
