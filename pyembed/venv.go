package pyembed

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CheckVenv returns the path of the venv's python executable after making
// sure the venv was made by the Python version this binary links.
func CheckVenv(venv string) (string, error) {
	cfg := filepath.Join(venv, "pyvenv.cfg")
	version, err := venvVersion(cfg)
	if err != nil {
		return "", err
	}
	if majorMinor(version) != LinkedVersion() {
		return "", fmt.Errorf("virtualenv %s is Python %s but onnx2pt was built for Python %s: remove the virtualenv so it is made again, or rebuild with PYTHON=python%s go tool task build",
			venv, version, LinkedVersion(), majorMinor(version))
	}
	python := filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return "", fmt.Errorf("virtualenv %s has no bin/python: remove it so it is made again", venv)
	}
	return python, nil
}

func venvVersion(cfg string) (string, error) {
	f, err := os.Open(cfg)
	if err != nil {
		return "", fmt.Errorf("%s: not a virtualenv (%v): run 'onnx2pt venv' to create it", filepath.Dir(cfg), err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "version", "version_info":
			return strings.TrimSpace(value), nil
		}
	}
	return "", fmt.Errorf("%s names no Python version: remove the virtualenv so it is made again", cfg)
}

func majorMinor(version string) string {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return version
	}
	return parts[0] + "." + parts[1]
}
