package pyvenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, c := range []struct{ cfg, want string }{
		{"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n", "3.11.7"},       // python -m venv
		{"home = /usr/bin\nimplementation = CPython\nuv = 0.13.9\nversion_info = 3.12.1\n", "3.12.1"}, // uv venv
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte(c.cfg), 0o644)
		if got, err := Version(dir); err != nil || got != c.want {
			t.Errorf("got %q, %v; want %q", got, err, c.want)
		}
	}
	dir := t.TempDir()
	if _, err := Version(dir); err == nil {
		t.Error("no pyvenv.cfg: no error")
	}
	os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte("home = /x\n"), 0o644)
	if _, err := Version(dir); err == nil {
		t.Error("no version line: no error")
	}
}

func TestMajorMinor(t *testing.T) {
	for in, want := range map[string]string{"3.11.7": "3.11", "3.13": "3.13", "3": "3", "3.14.0rc1": "3.14"} {
		if got := MajorMinor(in); got != want {
			t.Errorf("MajorMinor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHome(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte("home = /usr/local/bin\nversion = 3.11.7\n"), 0o644)
	if got, err := Home(dir); err != nil || got != "/usr/local/bin" {
		t.Errorf("got %q, %v; want /usr/local/bin", got, err)
	}
	os.WriteFile(filepath.Join(dir, "pyvenv.cfg"), []byte("version = 3.11.7\n"), 0o644)
	if _, err := Home(dir); err == nil {
		t.Error("no home line: no error")
	}
}
