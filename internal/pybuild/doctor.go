package pybuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/onnx2pt/onnx2pt/venv/pyvenv"
)

// Finding is one line of a diagnosis: what was checked, what was found,
// and, when something is wrong, what to do about it.
type Finding struct {
	Check  string
	Found  string
	OK     bool
	Fix    string
	Detail []string // extra lines, such as the generated flags
}

// Diagnose checks everything onnx2pt needs from the interpreter python and
// the virtualenv venv (which may not exist yet), without changing anything.
func Diagnose(python, venv, compatDir, outDir string) []Finding {
	var out []Finding
	info, err := Probe(python)
	if err != nil {
		return append(out, Finding{Check: "interpreter", Found: err.Error(), Fix: "install Python 3.10+ (3.9 embeds, but onnx ≥ 1.21 needs 3.10) or set PYTHON"})
	}
	out = append(out, Finding{Check: "interpreter", Found: fmt.Sprintf("%s → %s (Python %s)", python, info.Executable, info.Version),
		OK: info.Major == 3 && info.Minor >= 10, Fix: "use Python 3.10 or newer: the requirements (onnx ≥ 1.21) need it"})

	header := filepath.Join(info.IncludeDir, "Python.h")
	_, herr := os.Stat(header)
	out = append(out, Finding{Check: "headers", Found: header, OK: herr == nil,
		Fix: fmt.Sprintf("install the headers: python%d.%d-dev (Debian/Ubuntu), or a Python from pyenv, Homebrew or python.org", info.Major, info.Minor)})

	lib := filepath.Join(info.LibDir, info.Library())
	_, lerr := os.Stat(lib)
	found := lib
	if !info.Shared {
		found = "none: built without --enable-shared"
	}
	out = append(out, Finding{Check: "libpython", Found: found, OK: info.Shared && lerr == nil,
		Fix: fmt.Sprintf("reinstall with a shared library (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install %s; Debian: python%d.%d-dev)", info.Version, info.Major, info.Minor)})

	for _, tool := range []string{"pkg-config", "cc"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			path = "not found"
		}
		out = append(out, Finding{Check: tool, Found: path, OK: err == nil,
			Fix: "install it (Debian/Ubuntu: apt install pkg-config gcc; macOS: xcode-select --install and brew install pkg-config)"})
	}

	if err := info.Check(); err == nil {
		files := Render(info, compatDir, outDir)
		out = append(out, Finding{Check: "build flags", Found: "key " + files.Key(), OK: true,
			Detail: []string{lineStartingWith(files.PkgConfig, "Cflags:"), lineStartingWith(files.PkgConfig, "Libs:")}})
	}

	out = append(out, diagnoseVenv(info, venv))
	return out
}

func diagnoseVenv(info Info, venv string) Finding {
	f := Finding{Check: "virtualenv"}
	version, err := pyvenv.Version(venv)
	if os.IsNotExist(err) {
		f.Found = venv + ": not created yet"
		f.OK = true
		f.Detail = []string{"it is made on the first 'onnx2pt convert' or 'go tool task venv'"}
		return f
	}
	want := fmt.Sprintf("%d.%d", info.Major, info.Minor)
	f.Found = fmt.Sprintf("%s: Python %s", venv, version)
	f.OK = err == nil && pyvenv.MajorMinor(version) == want
	f.Fix = fmt.Sprintf("it is not for Python %s: the next 'onnx2pt venv' or convert remakes it (or remove %s), or build with PYTHON=python%s to keep it", want, venv, pyvenv.MajorMinor(version))
	if _, err := os.Stat(filepath.Join(venv, ".onnx2pt-ready.json")); err != nil && f.OK {
		f.Detail = []string{"not marked ready: the next run completes the install"}
	}
	return f
}

func lineStartingWith(text []byte, prefix string) string {
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
