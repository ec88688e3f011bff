package pyembed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/onnx2pt/onnx2pt/venv/pyvenv"
)

// CheckVenv returns the path of the venv's python executable after making
// sure the venv was made by the Python version this binary links.
func CheckVenv(venv string) (string, error) {
	version, err := pyvenv.Version(venv)
	if os.IsNotExist(err) {
		return "", fmt.Errorf("%s: not a virtualenv (no pyvenv.cfg): run 'onnx2pt venv' to create it", venv)
	} else if err != nil {
		return "", fmt.Errorf("%v: remove the virtualenv so it is made again", err)
	}
	if pyvenv.MajorMinor(version) != LinkedVersion() {
		return "", fmt.Errorf("virtualenv %s is Python %s but onnx2pt was built for Python %s: remove the virtualenv so it is made again, or rebuild with PYTHON=python%s go tool task build",
			venv, version, LinkedVersion(), pyvenv.MajorMinor(version))
	}
	python := filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return "", fmt.Errorf("virtualenv %s has no bin/python: remove it so it is made again", venv)
	}
	return python, nil
}

// CheckInterpreter makes sure python (a path or a name on PATH) is the
// Python version this binary embeds, so a virtualenv made with it will do.
func CheckInterpreter(ctx context.Context, python string) error {
	out, err := exec.CommandContext(ctx, python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
	if err != nil {
		return fmt.Errorf("python interpreter %s does not run (%v): set python.interpreter to a working one", python, err)
	}
	if v := strings.TrimSpace(string(out)); v != LinkedVersion() {
		return fmt.Errorf("python interpreter %s is Python %s but onnx2pt embeds Python %s: rebuild with PYTHON=%s go tool task build, or unset python.interpreter",
			python, v, LinkedVersion(), python)
	}
	return nil
}
