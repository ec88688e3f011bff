package progress

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/onnx2pt/onnx2pt/report"
)

// Batch is the live display of a batch of model conversions: a bar with
// done/total, failures, elapsed time and ETA, and below it the models being
// converted right now. On anything but a terminal it draws nothing.
type Batch struct {
	l     *live
	total int
	color bool

	mu      sync.Mutex // guards what the decorators read; never held while calling mpb
	done    int
	failed  int
	current []model // being converted, in the order they started
}

// model is one on the "now:" line; since is set while its worker starts.
type model struct {
	name  string
	since time.Time
}

func (m model) String() string {
	if m.since.IsZero() {
		return m.name
	}
	return fmt.Sprintf("%s (starting Python, importing torch: %s)", m.name, time.Since(m.since).Truncate(time.Second))
}

// NewBatch starts the display of a batch of total models on out.
func NewBatch(out io.Writer, total int, opt Options) *Batch {
	b := &Batch{total: total, color: opt.Color}
	b.l = newLive(out, b.addBar)
	return b
}

func (b *Batch) addBar(p *mpb.Progress) *mpb.Bar {
	eta := decor.AverageETA(decor.ET_STYLE_GO)
	return p.New(int64(b.total), mpb.BarStyle(),
		mpb.BarWidth(30),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			b.mu.Lock()
			defer b.mu.Unlock()
			return fmt.Sprintf("Converting %d/%d", b.done, b.total)
		})),
		mpb.AppendDecorators(
			// Meta colours the text after mpb measured it: escapes take no width.
			decor.Meta(decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%d failed", b.failedCount())
			}), func(s string) string {
				return paint(b.failedCount() > 0 && b.color, red, s)
			}),
			decor.Name(" · "),
			decor.Elapsed(decor.ET_STYLE_GO),
			decor.Name(" · ETA "),
			decor.Any(func(s decor.Statistics) string {
				if s.Current == 0 {
					return "?" // no model done yet: no rate to go by
				}
				if s.Current >= s.Total {
					return "0s"
				}
				str, _ := eta.Decor(s)
				return str
			}),
		),
		mpb.BarExtender(mpb.BarFillerFunc(b.fillCurrent), false),
	)
}

func (b *Batch) failedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

// fillCurrent writes the line naming the models being converted, cut to
// the terminal's width; nothing (no line) when there are none.
func (b *Batch) fillCurrent(w io.Writer, s decor.Statistics) error {
	b.mu.Lock()
	names := make([]string, len(b.current))
	for i, m := range b.current {
		names[i] = m.String()
	}
	b.mu.Unlock()
	line := "  now: " + strings.Join(names, ", ")
	none := len(names) == 0
	if none {
		return nil
	}
	_, err := io.WriteString(w, truncate(line, s.AvailableWidth)+"\n")
	return err
}

// truncate cuts s to width runes, ending in "…" when it cut.
func truncate(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	if width <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// Starting shows input among the models being converted, waiting for its
// worker to start.
func (b *Batch) Starting(input string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.current = append(b.current, model{Printable(input), time.Now()})
}

// Started shows input among the models being converted.
func (b *Batch) Started(input string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := Printable(input)
	if i := slices.IndexFunc(b.current, func(m model) bool { return m.name == name }); i >= 0 {
		b.current[i].since = time.Time{}
		return
	}
	b.current = append(b.current, model{name: name})
}

// Finished counts a model done (and failed, when it failed) and drops it
// from the models being converted.
func (b *Batch) Finished(o report.Outcome) {
	b.mu.Lock()
	// A model not run (interrupted, --fail-fast) is not done: the bar's
	// count then agrees with the table's.
	notRun := o.Result == report.ResultNotRun
	if !notRun {
		b.done++
	}
	if o.Result.Failed() {
		b.failed++
	}
	if i := slices.IndexFunc(b.current, func(m model) bool { return m.name == Printable(o.Input) }); i >= 0 {
		b.current = slices.Delete(b.current, i, i+1)
	}
	b.mu.Unlock()
	// Unlocked: the bar's goroutine may be drawing, which takes b.mu.
	if b.l.bar != nil && !notRun {
		b.l.bar.Increment()
	}
}

// Writer prints lines above the display (log output during the batch);
// after Stop it writes straight to out. A line not yet ended waits for its newline
// (or Stop). It is safe for concurrent use.
func (b *Batch) Writer() io.Writer { return b.l }

// Stop draws the last frame and ends the display. It is idempotent.
func (b *Batch) Stop() { b.l.stop() }
