// Package onnx2pt holds the files the onnx2pt binary carries with it; the
// program itself is cmd/onnx2pt.
package onnx2pt

import _ "embed"

// Requirements is requirements.txt as built into the binary: what the
// virtualenv gets unless python.requirements names another file.
//
//go:embed requirements.txt
var Requirements []byte

// Lock is requirements.lock as built into the binary: exact versions of
// every package Requirements brings in, used as constraints.
//
//go:embed requirements.lock
var Lock []byte
