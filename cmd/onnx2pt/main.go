// Command onnx2pt converts ONNX models to PyTorch through an embedded
// CPython, verifies them against onnxruntime and reports what it did.
package main

import (
	"os"

	"github.com/onnx2pt/onnx2pt/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
