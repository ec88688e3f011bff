package progress

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// quietEcho stops the terminal behind out from echoing control characters
// (the "^C" of a Ctrl-C) while a live display draws there: the echo moves
// the cursor the display redraws from, and leaves stray letters in the
// next line. It returns the function that restores the setting.
func quietEcho(out io.Writer) (restore func()) {
	f, ok := out.(*os.File)
	if !ok {
		return func() {}
	}
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil || t.Lflag&unix.ECHOCTL == 0 {
		return func() {}
	}
	old := *t
	t.Lflag &^= unix.ECHOCTL
	if unix.IoctlSetTermios(fd, unix.TCSETS, t) != nil {
		return func() {}
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, &old) }
}
