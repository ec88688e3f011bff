//go:build onnx2pt_testhooks

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onnx2pt/onnx2pt/convert"
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

// ONNX2PT_TEST_PUBLISH_PAUSE (a duration) slows each step of publishing
// down, standing in for a slow fsync on network storage, so that the tests
// can interrupt a publish midway.
func init() {
	if d, err := time.ParseDuration(os.Getenv("ONNX2PT_TEST_PUBLISH_PAUSE")); err == nil {
		convert.PublishPause = func() { time.Sleep(d) }
	}
}
