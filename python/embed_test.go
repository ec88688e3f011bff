package python

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInstallWritesEveryHelperOnce(t *testing.T) {
	dir := t.TempDir()
	got, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob("onnx2pt_py/*.py")
	sub, _ := filepath.Glob("onnx2pt_py/*/*.py")
	want = append(want, sub...)
	if len(sub) == 0 || len(want) == len(sub) {
		t.Fatal("no helpers or no helper subpackages in the source tree")
	}
	for _, src := range want {
		a, _ := os.ReadFile(src)
		b, err := os.ReadFile(filepath.Join(got, src))
		if err != nil || string(a) != string(b) {
			t.Errorf("%s not installed as in the source tree (%v)", src, err)
		}
	}
	// A second install reuses the first and leaves no temporary directories.
	again, err := Install(dir)
	if err != nil || again != got {
		t.Fatalf("second install: %q, %v", again, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("install dir holds %d entries, want 1", len(entries))
	}
}

func TestExposeWritesAPthFileOnce(t *testing.T) {
	venv := t.TempDir()
	site := filepath.Join(venv, "lib", "python3.11", "site-packages")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Expose(venv, "/x/helpers-1"); err != nil {
		t.Fatal(err)
	}
	pth := filepath.Join(site, pthName)
	if data, _ := os.ReadFile(pth); string(data) != "/x/helpers-1\n" {
		t.Fatalf(".pth holds %q", data)
	}
	st, _ := os.Stat(pth)
	if err := Expose(venv, "/x/helpers-1"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.Stat(pth); !again.ModTime().Equal(st.ModTime()) {
		t.Error("an unchanged .pth was rewritten")
	}
	if err := Expose(venv, "/x/helpers-2"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(pth); string(data) != "/x/helpers-2\n" {
		t.Errorf(".pth holds %q after a new version", data)
	}
}
