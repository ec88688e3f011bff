//go:build onnx2pt_testhooks

package cli

import (
	"os"
	"path/filepath"
	"strings"
)

// testHooks names a Python module that workers import after warming up,
// from ONNX2PT_TEST_HOOKS (a .py file). Only the end-to-end tests build
// with this tag: they register converters there that crash or hang a
// worker, which no model can make a released binary do on purpose.
func testHooks() (dir, module string) {
	file := os.Getenv("ONNX2PT_TEST_HOOKS")
	if file == "" {
		return "", ""
	}
	return filepath.Dir(file), strings.TrimSuffix(filepath.Base(file), ".py")
}
