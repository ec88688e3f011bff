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

//go:embed onnx2pt_py/*.py
var helpers embed.FS

// Version identifies this build's helpers: a hash of their sources.
func Version() string {
	h := sha256.New()
	names, _ := fs.Glob(helpers, "onnx2pt_py/*.py")
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
