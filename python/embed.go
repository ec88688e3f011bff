// Package python carries onnx2pt's Python helpers (the onnx2pt_py package)
// inside the Go binary and installs them where the embedded interpreter
// can import them.
package python

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// The package and its subpackages (normalisation passes, converters); the
// patterns name .py files so that __init__.py is included and caches are not.
//
//go:embed onnx2pt_py/*.py onnx2pt_py/*/*.py
var helpers embed.FS

// Version identifies this build's helpers: a hash of their sources.
func Version() string {
	h := sha256.New()
	names, _ := fs.Glob(helpers, "onnx2pt_py/*.py")
	sub, _ := fs.Glob(helpers, "onnx2pt_py/*/*.py")
	names = append(names, sub...)
	sort.Strings(names)
	for _, name := range names {
		data, _ := helpers.ReadFile(name)
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Install writes the helpers under dir, once per version, and returns the
// directory to put on sys.path. A partly written copy is never used: the
// files go to a temporary directory that is renamed into place.
func Install(dir string) (string, error) {
	target := filepath.Join(dir, "helpers-"+Version())
	if _, err := os.Stat(filepath.Join(target, "onnx2pt_py", "__init__.py")); err == nil {
		return target, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".helpers-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(helpers, "onnx2pt_py", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(name))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := helpers.ReadFile(path.Clean(name))
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("installing Python helpers: %w", err)
	}
	if err := os.Rename(tmp, target); err != nil {
		// Another run may have installed the same version meanwhile.
		if _, statErr := os.Stat(filepath.Join(target, "onnx2pt_py", "__init__.py")); statErr == nil {
			return target, nil
		}
		return "", fmt.Errorf("installing Python helpers: %w", err)
	}
	return target, nil
}

// pthName is the .pth file through which the virtualenv's own python finds
// the helpers, so that it can load the checkpoints onnx2pt writes (they
// pickle modules of onnx2pt's converters by their import path).
const pthName = "onnx2pt-helpers.pth"

// Expose makes helpers importable by venvDir's python, through a .pth file
// in its site-packages; nothing is written when it already says so.
func Expose(venvDir, helpers string) error {
	sites, _ := filepath.Glob(filepath.Join(venvDir, "lib", "python*", "site-packages"))
	if len(sites) != 1 {
		return fmt.Errorf("exposing the helpers: %d site-packages folders in %s", len(sites), venvDir)
	}
	path := filepath.Join(sites[0], pthName)
	want := helpers + "\n"
	if have, err := os.ReadFile(path); err == nil && string(have) == want {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(want), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
