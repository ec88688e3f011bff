// Package pybuild finds out how to compile and link against a CPython
// interpreter and generates the cgo inputs (a pkg-config file and a header)
// that let pyembed and go-python/cpy3 build against it.
package pybuild

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Info describes an interpreter as it reports itself.
type Info struct {
	Executable string `json:"executable"`
	Version    string `json:"version"`
	Major      int    `json:"major"`
	Minor      int    `json:"minor"`
	IncludeDir string `json:"include"`
	LibDir     string `json:"libdir"`
	LDVersion  string `json:"ldversion"`
	Shared     bool   `json:"shared"`
}

// probeScript prints what the build needs to know, as JSON, using only the
// standard library so that it works on any interpreter.
const probeScript = `
import json, platform, sys, sysconfig
v = sysconfig.get_config_var
print(json.dumps({
    "executable": sys.executable,
    "version": platform.python_version(),
    "major": sys.version_info[0],
    "minor": sys.version_info[1],
    "include": sysconfig.get_path("include"),
    "libdir": v("LIBDIR") or "",
    "ldversion": v("LDVERSION") or "%d.%d" % sys.version_info[:2],
    "shared": bool(v("Py_ENABLE_SHARED") or v("PYTHONFRAMEWORK")),
}))
`

// Probe runs the interpreter named python (a path or a name on PATH) and
// returns what it says about itself.
func Probe(python string) (Info, error) {
	var info Info
	path, err := exec.LookPath(python)
	if err != nil {
		return info, fmt.Errorf("python interpreter %q not found: install Python 3.9+ or set PYTHON to one", python)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, "-I", "-c", probeScript)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return info, fmt.Errorf("python interpreter %s failed to describe itself: %v: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return info, fmt.Errorf("python interpreter %s: unreadable answer: %v", path, err)
	}
	return info, nil
}

// Library is the file name of the shared libpython the linker will look for.
func (i Info) Library() string {
	ext := ".so"
	if runtime.GOOS == "darwin" {
		ext = ".dylib"
	}
	return "libpython" + i.LDVersion + ext
}

// Check reports, as one actionable error, why this interpreter cannot be
// embedded, or nil when it can.
func (i Info) Check() error {
	name := fmt.Sprintf("Python %s (%s)", i.Version, i.Executable)
	if i.Major != 3 || i.Minor < 9 {
		return fmt.Errorf("%s is too old: onnx2pt needs Python 3.9 or newer; set PYTHON to a newer interpreter", name)
	}
	if _, err := os.Stat(filepath.Join(i.IncludeDir, "Python.h")); err != nil {
		return fmt.Errorf("%s has no C headers (no Python.h in %s): install python%d.%d-dev (Debian/Ubuntu) or use a Python from pyenv, Homebrew or python.org", name, i.IncludeDir, i.Major, i.Minor)
	}
	if !i.Shared {
		return fmt.Errorf("%s was built without a shared libpython: reinstall it with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install %s) or set PYTHON to another interpreter", name, i.Version)
	}
	if _, err := os.Stat(filepath.Join(i.LibDir, i.Library())); err != nil {
		return fmt.Errorf("%s: %s not found in %s: install python%d.%d-dev (Debian/Ubuntu) or set PYTHON to another interpreter", name, i.Library(), i.LibDir, i.Major, i.Minor)
	}
	if strings.ContainsAny(i.IncludeDir+i.LibDir+i.Executable, " \t\"'\\") {
		return errors.New(name + ": paths with spaces or quotes cannot be passed to cgo; install Python under a plain path")
	}
	return nil
}
