package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestShapeString(t *testing.T) {
	for _, c := range []struct {
		shape []any
		want  string
	}{
		{[]any{"batch", int64(32), int64(32), int64(3)}, "(batch, 32, 32, 3)"},
		{[]any{"batch", 10}, "(batch, 10)"},
		{[]any{int64(5)}, "(5,)"},
		{[]any{nil, int64(2)}, "(?, 2)"},
		{[]any{}, "()"},
		{nil, "(unknown)"},
	} {
		if got := (TensorSpec{Shape: c.shape}).ShapeString(); got != c.want {
			t.Errorf("%v: got %s, want %s", c.shape, got, c.want)
		}
	}
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.report.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	diff := 2.5e-7
	r := &Report{Verification: Verification{Passed: true, Outputs: []OutputParity{{Name: "y", MaxAbsDiff: &diff}}}}
	if err := Write(path, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Verification.Passed || *back.Verification.Outputs[0].MaxAbsDiff != diff || back.Verification.Outputs[0].MaxRelDiff != nil {
		t.Errorf("round trip: %+v", back.Verification)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}

func TestFailedWriteLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	// A directory where the report should go makes the final rename fail.
	path := filepath.Join(dir, "m.report.json")
	if err := os.MkdirAll(filepath.Join(path, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, &Report{}); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "m.report.json" {
		t.Errorf("left behind: %v", entries)
	}
}

func TestOpSummary(t *testing.T) {
	s := Source{OpHistogram: map[string]int{"Relu": 7, "Add": 4, "Conv": 9}}
	if got := s.OpSummary(); got != "Add×4 Conv×9 Relu×7" {
		t.Errorf("got %q", got)
	}
}
