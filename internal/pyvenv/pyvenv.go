// Package pyvenv reads what a virtualenv says about itself in pyvenv.cfg.
package pyvenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Version is the full Python version the virtualenv in dir was made with,
// as pyvenv.cfg records it ("version" for venv, "version_info" for uv).
func Version(dir string) (string, error) {
	cfg := filepath.Join(dir, "pyvenv.cfg")
	f, err := os.Open(cfg)
	if err != nil {
		return "", err
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
	return "", fmt.Errorf("%s names no Python version", cfg)
}

// MajorMinor shortens a version to major.minor: 3.11.7 → 3.11.
func MajorMinor(version string) string {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return version
	}
	return parts[0] + "." + parts[1]
}
