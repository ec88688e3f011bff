//go:build !linux

package progress

import "io"

// quietEcho is Linux only; elsewhere the terminal echoes as it likes.
func quietEcho(io.Writer) (restore func()) { return func() {} }
