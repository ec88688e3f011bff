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
	if len(want) == 0 {
		t.Fatal("no helpers in the source tree")
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
