package progress

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// screen is a pseudo-terminal whose tty end is what a display writes to;
// it collects everything written there.
type screen struct {
	tty  *os.File
	ptmx *os.File
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func openScreen(t *testing.T, cols, rows int) *screen {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	// A pty starts at 0x0, where mpb would draw no rows at all.
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		t.Fatal(err)
	}
	s := &screen{tty: tty, ptmx: ptmx, done: make(chan struct{})}
	// Read all along: a full pty buffer would block the display's writes.
	go func() {
		defer close(s.done)
		b := make([]byte, 4096)
		for {
			n, err := ptmx.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { s.close() })
	return s
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the terminal got want: the display draws on its own
// clock. The deadline only catches a display that never draws it.
func (s *screen) waitFor(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(s.String(), want) {
			return
		}
	}
	t.Fatalf("terminal never showed %q; got:\n%q", want, s.String())
}

// close closes the tty end and returns all that was written to it.
func (s *screen) close() string {
	s.tty.Close() // the master then reads what is left, then EIO
	<-s.done
	s.ptmx.Close()
	return s.String()
}

var (
	anyEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	sgr       = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	// What mpb writes to redraw in place: cursor up n lines, erase below.
	redraw = regexp.MustCompile(`\x1b\[\d+A\x1b\[J`)
)

// lines is the terminal output as text lines, without escapes.
func lines(out string) []string {
	out = anyEscape.ReplaceAllString(out, "")
	return strings.Split(strings.ReplaceAll(out, "\r", ""), "\n")
}

// within fails the test if fn doesn't return in time: a deadlock.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still running after 30s, deadlocked", what)
	}
}

func TestIsTerminal(t *testing.T) {
	s := openScreen(t, 80, 24)
	if !IsTerminal(s.tty) {
		t.Error("IsTerminal(tty) = false")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"pipe": w, "bytes.Buffer": new(bytes.Buffer), "nil": nil} {
		if IsTerminal(out) {
			t.Errorf("IsTerminal(%s) = true", name)
		}
	}
}
