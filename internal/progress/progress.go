// Package progress is live progress on a terminal: the bar of a batch of
// conversions, the spinner of a virtualenv being provisioned, and the
// summary table printed when a batch ends.
package progress

import (
	"bytes"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"golang.org/x/term"
)

// IsTerminal reports whether w is an *os.File attached to a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Options are how the displays look.
type Options struct {
	// Color allows ANSI colours; the caller turns it off for NO_COLOR or
	// when the output is not a terminal.
	Color bool
}

// SGR colour codes.
const (
	red    = "31"
	green  = "32"
	yellow = "33"
)

// paint wraps s in an SGR colour when on.
func paint(on bool, code, s string) string {
	if !on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

const refreshEvery = 150 * time.Millisecond

// live is an mpb container with one bar, drawn on a terminal, and the
// writer that prints lines above it. On anything but a terminal nothing is
// drawn and writes go straight to out (mpb would keep them in a buffer it
// only flushes when it draws).
type live struct {
	out io.Writer
	p   *mpb.Progress // nil when out is not a terminal
	bar *mpb.Bar

	// We refresh mpb ourselves rather than let it tick, so that stop can
	// ask for a last frame: that frame is what prints log lines still
	// buffered in mpb and the final counts.
	refresh chan any
	quit    chan struct{} // closed by stop: the ticker ends
	down    chan any      // closed by mpb once it has shut down, even on a render error

	mu      sync.Mutex // orders writes against stop
	stopped bool
	partial []byte // the start of a line not yet ended: mpb must get whole lines
	echo    func() // restores the terminal's echo of control characters
}

func newLive(out io.Writer, add func(*mpb.Progress) *mpb.Bar) *live {
	l := &live{out: out}
	if !IsTerminal(out) {
		return l
	}
	l.refresh, l.quit, l.down = make(chan any), make(chan struct{}), make(chan any)
	l.echo = quietEcho(out)
	l.p = mpb.New(mpb.WithOutput(out), mpb.WithManualRefresh(l.refresh), mpb.WithShutdownNotifier(l.down))
	l.bar = add(l.p)
	go l.tick()
	return l
}

func (l *live) tick() {
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			select {
			case l.refresh <- now:
			case <-l.quit:
				return
			case <-l.down:
				return
			}
		case <-l.quit:
			return
		case <-l.down:
			return
		}
	}
}

// Write prints whole lines above the bar; the rest of a line waits for its end.
func (l *live) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p == nil || l.stopped {
		return l.out.Write(b)
	}
	l.partial = append(l.partial, b...)
	i := bytes.LastIndexByte(l.partial, '\n')
	if i < 0 {
		return len(b), nil
	}
	if _, err := l.p.Write(l.partial[:i+1]); err != nil {
		// mpb gave up drawing (the terminal failed): don't lose the lines.
		if _, err := l.out.Write(l.partial[:i+1]); err != nil {
			return 0, err
		}
	}
	l.partial = append(l.partial[:0], l.partial[i+1:]...)
	return len(b), nil
}

// stop draws a last frame and ends the display; later writes go to out.
func (l *live) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	if l.p == nil {
		return
	}
	close(l.quit)
	// Abort, unless complete, so that Wait doesn't wait for a total never reached.
	l.bar.Abort(false)
	select {
	case l.refresh <- time.Now():
	case <-l.down:
	}
	l.p.Wait()
	l.echo()
	if len(l.partial) > 0 {
		_, _ = l.out.Write(l.partial)
		l.partial = nil
	}
}
