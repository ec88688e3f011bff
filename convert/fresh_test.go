package convert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/report"
)

// converted lays out what a successful conversion leaves behind and
// returns the model and settings it was made with.
func converted(t *testing.T) (config.Model, config.VerifyConfig) {
	t.Helper()
	dir := t.TempDir()
	m := config.Model{Input: filepath.Join(dir, "m.onnx"), Output: filepath.Join(dir, "m.pt")}
	v := config.VerifyConfig{BatchSizes: []int{1, 4}, Atol: 1e-5, Rtol: 1e-4}
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := m.Paths()
	write(m.Input, "onnx bytes")
	write(filepath.Join(dir, "m.data"), "external weights")
	write(paths.Model, "pt bytes")
	write(paths.StateDict, "state")
	sum := func(path string) string {
		s, err := fileSHA256(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	src := report.Source{SHA256: sum(m.Input), ExternalData: []report.ExternalFile{
		{Location: "m.data", SHA256: sum(filepath.Join(dir, "m.data")), SizeBytes: 16},
	}}
	rep := &report.Report{
		Fingerprint: Fingerprint(src, m, v, "env1"),
		Source:      src,
		Output: report.Output{Path: paths.Model, SHA256: sum(paths.Model),
			StateDictPath: paths.StateDict, StateDictSHA256: sum(paths.StateDict), StateDictSizeBytes: 5},
		Verification: report.Verification{Passed: true},
	}
	if err := report.Write(paths.Report, rep); err != nil {
		t.Fatal(err)
	}
	return m, v
}

func TestUpToDate(t *testing.T) {
	m, v := converted(t)
	if fresh, why := UpToDate(m, v, "env1"); !fresh {
		t.Fatalf("an untouched conversion is not up to date: %s", why)
	}
	for _, c := range []struct {
		name   string
		change func(m *config.Model, v *config.VerifyConfig, env *string)
		why    string
	}{
		{"input changed", func(m *config.Model, _ *config.VerifyConfig, _ *string) {
			os.WriteFile(m.Input, []byte("other"), 0o644)
		}, "m.onnx changed"},
		{"external data changed", func(m *config.Model, _ *config.VerifyConfig, _ *string) {
			os.WriteFile(filepath.Join(filepath.Dir(m.Input), "m.data"), []byte("other weights"), 0o644)
		}, "external data m.data changed"},
		{"external data removed", func(m *config.Model, _ *config.VerifyConfig, _ *string) {
			os.Remove(filepath.Join(filepath.Dir(m.Input), "m.data"))
		}, "external data m.data changed"},
		{"tolerance changed", func(_ *config.Model, v *config.VerifyConfig, _ *string) { v.Atol = 1e-3 }, "settings"},
		{"environment changed", func(_ *config.Model, _ *config.VerifyConfig, env *string) { *env = "env2" }, "Python packages changed"},
		{"output edited", func(m *config.Model, _ *config.VerifyConfig, _ *string) {
			os.WriteFile(m.Output, []byte("edited"), 0o644)
		}, "was changed"},
		{"output removed", func(m *config.Model, _ *config.VerifyConfig, _ *string) { os.Remove(m.Output) }, "is missing"},
		{"state dict removed", func(m *config.Model, _ *config.VerifyConfig, _ *string) { os.Remove(m.Paths().StateDict) }, "state_dict.pt is missing"},
		{"state dict edited, same size", func(m *config.Model, _ *config.VerifyConfig, _ *string) {
			os.WriteFile(m.Paths().StateDict, []byte("STATE"), 0o644)
		}, "state_dict.pt is missing or was changed"},
		{"report removed", func(m *config.Model, _ *config.VerifyConfig, _ *string) { os.Remove(m.Paths().Report) }, "no report"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, v := converted(t)
			env := "env1"
			c.change(&m, &v, &env)
			fresh, why := UpToDate(m, v, env)
			if fresh || !strings.Contains(why, c.why) {
				t.Errorf("fresh=%v why=%q, want stale because %q", fresh, why, c.why)
			}
		})
	}
}
