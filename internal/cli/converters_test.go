package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --converters (comma-separated, repeatable) sets the converters setting,
// on convert and inspect alike, and a bad entry stops either before Python
// starts, with the other problems.
func TestConvertersFlag(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	os.WriteFile(model, []byte("x"), 0o644)
	ops := filepath.Join(dir, "my_ops.py")
	os.WriteFile(ops, []byte("# converters\n"), 0o644)
	missing := filepath.Join(dir, "missing.py")

	a, code, _, stderr := runApp(t, "convert", "-i", model, "--converters", ops+",my_package.ops", "--converters", missing, "--atol", "2")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d:\n%s", code, exitUsage, stderr)
	}
	if got := a.v.GetStringSlice("converters"); strings.Join(got, ",") != ops+",my_package.ops,"+missing {
		t.Errorf("converters = %q", got)
	}
	for _, want := range []string{"converters[2]: " + missing + " does not exist", "verify.atol: 2 is not in [0, 1)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	code, _, stderr = runCLI(t, "inspect", model, "--converters", "my-ops")
	if code != exitUsage || !strings.Contains(stderr, `converters[0]: "my-ops" is neither a .py file nor a module name`) {
		t.Errorf("inspect: exit %d:\n%s", code, stderr)
	}

	// From a config file, relative to its folder.
	cfgFile := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfgFile, []byte("converters: [my_ops.py, gone.py]\n"), 0o644)
	code, _, stderr = runCLI(t, "convert", "-c", cfgFile, "-i", model)
	if code != exitUsage || !strings.Contains(stderr, "converters[1]: "+filepath.Join(dir, "gone.py")+" does not exist") ||
		strings.Contains(stderr, "converters[0]") {
		t.Errorf("from the config file: exit %d:\n%s", code, stderr)
	}
}
