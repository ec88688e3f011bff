package progress

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/onnx2pt/onnx2pt/report"
)

func outcome(input string, r report.Result) report.Outcome {
	return report.Outcome{Input: input, Result: r}
}

func TestBatchTerminal(t *testing.T) {
	s := openScreen(t, 120, 24)
	b := NewBatch(s.tty, 5, Options{Color: true})
	b.Started("models/a.onnx")
	b.Started("models/b.onnx")
	s.waitFor(t, "now: models/a.onnx, models/b.onnx") // parallel models, in one line
	w := b.Writer()
	fmt.Fprint(w, "level=info msg=") // half a line waits for its end...
	b.Finished(outcome("models/a.onnx", report.ResultConverted))
	s.waitFor(t, "1/5") // ...while a frame is drawn
	fmt.Fprint(w, "\"loaded config\"\n")
	b.Finished(outcome("models/b.onnx", report.ResultFailed))
	for _, m := range []string{"models/c.onnx", "models/d.onnx", "models/e.onnx"} {
		b.Started(m)
		b.Finished(outcome(m, report.ResultConverted))
	}
	// Written once the bar is complete and nothing else would draw it:
	// Stop's last frame must print it.
	fmt.Fprintln(w, "level=info msg=done")
	b.Stop()
	out := s.close()

	for _, want := range []string{"5/5", "level=info msg=done", "\x1b[31m1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%q", want, out)
		}
	}
	if !redraw.MatchString(out) {
		t.Errorf("no redraw (cursor up, erase) in the output, not a live display:\n%q", out)
	}
	// The log line went above the bar, not into it.
	text := lines(out)
	i := slices.Index(text, `level=info msg="loaded config"`)
	if i < 0 {
		t.Fatalf("log line not on a line of its own:\n%q", text)
	}
	if last := lastIndexContaining(text, "5/5"); last < i {
		t.Errorf("final bar (line %d) above the log line (line %d)", last, i)
	}
	// The last frame names no model: all are done.
	if last := text[lastIndexContaining(text, "5/5"):]; slices.ContainsFunc(last, func(l string) bool { return strings.Contains(l, "now:") }) {
		t.Errorf("models still shown as current after all finished: %q", last)
	}
}

func lastIndexContaining(lines []string, s string) int {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return i
		}
	}
	return -1
}

func TestBatchNoColor(t *testing.T) {
	s := openScreen(t, 120, 24)
	b := NewBatch(s.tty, 2, Options{})
	b.Started("a.onnx")
	b.Finished(outcome("a.onnx", report.ResultCrashed))
	b.Stop()
	out := s.close()
	if !strings.Contains(out, "1 failed") {
		t.Errorf("no failed count:\n%q", out)
	}
	if m := sgr.FindString(out); m != "" {
		t.Errorf("colour %q without Options.Color:\n%q", m, out)
	}
}

func TestBatchCurrentFitsTheWidth(t *testing.T) {
	const cols = 50
	s := openScreen(t, cols, 24)
	b := NewBatch(s.tty, 3, Options{})
	for _, m := range []string{"zoo/vision/classification/resnet50.onnx", "zoo/text/bert-base.onnx", "zoo/x.onnx"} {
		b.Started(m)
	}
	s.waitFor(t, "now: zoo/vision")
	b.Stop()
	out := s.close()
	for _, l := range lines(out) {
		if n := utf8.RuneCountInString(l); n > cols {
			t.Errorf("line of %d columns on a %d-column terminal: %q", n, cols, l)
		}
		if strings.Contains(l, "now:") && !strings.HasSuffix(l, "…") {
			t.Errorf("current models cut without a mark: %q", l)
		}
	}
}

// The display must not deadlock, whatever the order of calls.
func TestBatchNeverDeadlocks(t *testing.T) {
	t.Run("stop at once, twice", func(t *testing.T) {
		s := openScreen(t, 80, 24)
		within(t, "Stop after NewBatch", func() {
			b := NewBatch(s.tty, 3, Options{Color: true})
			b.Stop()
			b.Stop()
		})
	})
	t.Run("nothing to do", func(t *testing.T) {
		s := openScreen(t, 80, 24)
		within(t, "total 0", func() { NewBatch(s.tty, 0, Options{}).Stop() })
	})
	t.Run("many goroutines, more than total", func(t *testing.T) {
		s := openScreen(t, 80, 24)
		const total, workers = 10, 20
		var b *Batch
		within(t, "concurrent use", func() {
			b = NewBatch(s.tty, total, Options{Color: true})
			var wg sync.WaitGroup
			for i := range workers {
				wg.Go(func() {
					m := fmt.Sprintf("m%02d.onnx", i)
					b.Started(m)
					fmt.Fprintf(b.Writer(), "log from %s\n", m)
					b.Finished(outcome(m, report.ResultConverted))
				})
			}
			wg.Wait()
			b.Stop()
		})
		fmt.Fprintln(b.Writer(), "after stop") // straight to the terminal
		out := s.close()
		for i := range workers {
			if want := fmt.Sprintf("log from m%02d.onnx", i); !strings.Contains(out, want) {
				t.Errorf("lost log line %q", want)
			}
		}
		if !strings.Contains(out, fmt.Sprintf("%d/%d", workers, total)) || !strings.Contains(out, "after stop") {
			t.Errorf("missing final count or the write after Stop:\n%q", out)
		}
	})
	t.Run("terminal fails", func(t *testing.T) {
		s := openScreen(t, 80, 24)
		within(t, "writes after the terminal closed", func() {
			b := NewBatch(s.tty, 2, Options{})
			s.close() // mpb's next draw fails
			b.Started("a.onnx")
			fmt.Fprintln(b.Writer(), "log")
			b.Finished(outcome("a.onnx", report.ResultConverted))
			b.Stop()
		})
	})
}

// On anything but a terminal nothing is drawn and log lines pass through.
func TestBatchNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	b := NewBatch(&buf, 2, Options{Color: true})
	b.Started("a.onnx")
	fmt.Fprintln(b.Writer(), "log line")
	b.Finished(outcome("a.onnx", report.ResultFailed))
	b.Stop()
	if buf.String() != "log line\n" {
		t.Errorf("output = %q, want only the log line", buf.String())
	}
}

// A model waiting for its worker to start says so, with the time it has
// waited, until the worker is ready.
func TestBatchShowsWorkersStarting(t *testing.T) {
	s := openScreen(t, 120, 24)
	b := NewBatch(s.tty, 2, Options{})
	b.Starting("models/a.onnx")
	s.waitFor(t, "now: models/a.onnx (starting Python, importing torch: 0s)")
	s.waitFor(t, "importing torch: 1s") // the time goes on
	b.Started("models/a.onnx")
	s.waitFor(t, "now: models/a.onnx\r")
	b.Finished(outcome("models/a.onnx", report.ResultConverted))
	b.Starting("models/b.onnx")
	b.Started("models/b.onnx")
	b.Finished(outcome("models/b.onnx", report.ResultConverted))
	b.Stop()
	s.close()
}

// After an interrupt, the bar counts what was done, as the table does,
// and the terminal echoes no "^C" into the display while it draws.
func TestBatchInterrupted(t *testing.T) {
	s := openScreen(t, 120, 24)
	b := NewBatch(s.tty, 3, Options{})
	termios, err := unix.IoctlGetTermios(int(s.tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if termios.Lflag&unix.ECHOCTL != 0 {
		t.Error("the terminal still echoes control characters under the display")
	}
	b.Started("a.onnx")
	b.Finished(outcome("a.onnx", report.ResultConverted))
	b.Started("b.onnx")
	b.Finished(outcome("b.onnx", report.ResultNotRun))
	b.Finished(outcome("c.onnx", report.ResultNotRun))
	b.Stop()
	if termios, _ := unix.IoctlGetTermios(int(s.tty.Fd()), unix.TCGETS); termios.Lflag&unix.ECHOCTL == 0 {
		t.Error("echo of control characters not restored after the display")
	}
	out := s.close()
	if last := lines(out)[lastIndexContaining(lines(out), "Converting")]; !strings.Contains(last, "Converting 1/3") {
		t.Errorf("last bar %q, want 1/3 (one converted, two not run)", last)
	}
}
