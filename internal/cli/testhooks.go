//go:build !onnx2pt_testhooks

package cli

// testHooks is off in every build but the end-to-end tests' (see
// testhooks_on.go).
func testHooks() (dir, module string) { return "", "" }
