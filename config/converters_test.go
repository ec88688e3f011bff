package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each entry of converters is a .py file (relative to the config file's
// folder, as other paths) or a module name; what cannot be either, a file
// that is missing or a folder, and an entry listed twice are reported with
// the other problems, each at its index.
func TestConvertersValidation(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "my_ops.py", "# converters\n")
	if err := os.Mkdir(filepath.Join(dir, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, dir, "c.yaml", `converters:
  - my_ops.py
  - my_package.converters
  - missing.py
  - pkg/
  - my-ops
  - ""
  - ./my_ops.py
  - my_package.converters
  - 2fast.ops
verify: {atol: 2}
`)
	cfg, err := Load(NewViper(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Converters[0], filepath.Join(dir, "my_ops.py"); got != want {
		t.Errorf("converters[0] = %q, want it relative to the config file: %q", got, want)
	}
	if cfg.Converters[1] != "my_package.converters" {
		t.Errorf("a module name was rebased: %q", cfg.Converters[1])
	}
	if !strings.Contains(strings.Join(cfg.Rebased, "\n"), "converters: my_ops.py → "+filepath.Join(dir, "my_ops.py")) {
		t.Errorf("rebased %q", cfg.Rebased)
	}
	cfg.Models = []Model{validModel(t, dir, "m")}
	problems := problemsOf(t, cfg.Validate())
	want := []string{
		"verify.atol: 2 is not in [0, 1)",
		"converters[2]: " + filepath.Join(dir, "missing.py") + " does not exist",
		"converters[3]: " + filepath.Join(dir, "pkg") + " is a folder, not a .py file (name a package by its module name, e.g. my_package.converters)",
		`converters[4]: "my-ops" is neither a .py file nor a module name (a dotted Python name such as my_package.converters)`,
		"converters[5]: empty (name a .py file or a module)",
		"converters[6]: " + filepath.Join(dir, "my_ops.py") + " is also converters[0]; list each converter once",
		"converters[7]: my_package.converters is also converters[1]; list each converter once",
		`converters[8]: "2fast.ops" is neither a .py file nor a module name (a dotted Python name such as my_package.converters)`,
	}
	if strings.Join(sorted(problems), "\n") != strings.Join(sorted(want), "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
	// inspect checks the converters alone.
	if got := problemsOf(t, cfg.ValidateConverters()); len(got) != len(want)-1 {
		t.Errorf("ValidateConverters: %q", got)
	}
	cfg.Converters = cfg.Converters[:2]
	if err := cfg.ValidateConverters(); err != nil {
		t.Errorf("good converters: %v", err)
	}
}

// From flags and the environment (comma-separated), converter files stay
// relative to the working directory.
func TestConvertersFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "c.yaml", "converters: [from_file.py]\n")
	t.Setenv("ONNX2PT_CONVERTERS", "a.py,my_package.ops")
	cfg, err := Load(NewViper(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Converters, ",") != "a.py,my_package.ops" {
		t.Errorf("from the environment: %q", cfg.Converters)
	}
	t.Setenv("ONNX2PT_CONVERTERS", "")
	os.Unsetenv("ONNX2PT_CONVERTERS")
	v := NewViper()
	v.Set("converters", []string{"ops/b.py"})
	cfg, err = Load(v, file, func(key string) bool { return key == "converters" })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Converters, ",") != "ops/b.py" {
		t.Errorf("from a flag: %q", cfg.Converters)
	}
	if j := cfg.Job(Model{Input: "m.onnx", Output: "m.pt"}); strings.Join(j.Converters, ",") != "ops/b.py" {
		t.Errorf("the job lacks the converters: %q", j.Converters)
	}
}

func TestIsConverterFile(t *testing.T) {
	for entry, want := range map[string]bool{
		"my_ops.py": true, "ops/my_ops": true, "/abs/ops.PY": true,
		"my_package.converters": false, "ops": false,
	} {
		if IsConverterFile(entry) != want {
			t.Errorf("IsConverterFile(%q) = %v", entry, !want)
		}
	}
}
