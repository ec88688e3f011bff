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
	v, ok, err := value(dir, "version", "version_info")
	if err == nil && !ok {
		err = fmt.Errorf("%s names no Python version", filepath.Join(dir, "pyvenv.cfg"))
	}
	return v, err
}

// Home is the directory of the interpreter the virtualenv in dir was made
// from, as pyvenv.cfg records it.
func Home(dir string) (string, error) {
	v, ok, err := value(dir, "home")
	if err == nil && (!ok || v == "") {
		err = fmt.Errorf("%s names no home", filepath.Join(dir, "pyvenv.cfg"))
	}
	return v, err
}

// value is the first setting in dir's pyvenv.cfg named one of keys; ok is
// false when there is none.
func value(dir string, keys ...string) (v string, ok bool, err error) {
	f, err := os.Open(filepath.Join(dir, "pyvenv.cfg"))
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		for _, k := range keys {
			if strings.TrimSpace(key) == k {
				return strings.TrimSpace(v), true, nil
			}
		}
	}
	return "", false, sc.Err()
}

// MajorMinor shortens a version to major.minor: 3.11.7 → 3.11.
func MajorMinor(version string) string {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return version
	}
	return parts[0] + "." + parts[1]
}
