package progress

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Provisioning is the spinner shown while the virtualenv is set up:
// "Provisioning virtualenv: 45 packages, 1.2 GiB downloaded — <latest line>",
// from the installer's (uv's or pip's) output. On anything but a terminal
// it draws nothing.
type Provisioning struct {
	l  *live
	mu sync.Mutex // guards st; never held while calling mpb
	st installerState
}

// NewProvisioning starts the spinner on out.
func NewProvisioning(out io.Writer, opt Options) *Provisioning {
	p := &Provisioning{}
	p.l = newLive(out, func(c *mpb.Progress) *mpb.Bar {
		spin := decor.Meta(decor.Spinner(nil), func(s string) string { return paint(opt.Color, green, s) })
		return c.New(0, mpb.NopStyle(), mpb.BarFillerTrim(),
			mpb.PrependDecorators(
				decor.OnAbort(spin, "•"), // a spinner frozen mid-turn would look like a hang
				decor.Name(" "),
				// mpb cuts this to the terminal's width: the latest line goes first.
				decor.Any(func(decor.Statistics) string { return p.status() })))
	})
	return p
}

func (p *Provisioning) status() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("Provisioning virtualenv: %d packages, %s downloaded", p.st.packages(), formatBytes(p.st.bytes))
	if p.st.latest != "" {
		s += " — " + p.st.latest
	}
	return s
}

// Line takes one line of the installer's output.
func (p *Provisioning) Line(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.apply(parseInstallerLine(text))
}

// Writer prints lines above the spinner; after Stop it writes straight to
// out. A line not yet ended waits for its newline
// (or Stop). It is safe for concurrent use.
func (p *Provisioning) Writer() io.Writer { return p.l }

// Stop draws the last frame and ends the display. It is idempotent.
func (p *Provisioning) Stop() { p.l.stop() }

// lineKind is what an installer's line tells.
type lineKind int

const (
	otherLine     lineKind = iota
	downloadStart          // uv starts downloading Name, of Bytes
	downloadDone           // uv has downloaded Name
	downloaded             // pip downloads Bytes (it prints no line when done)
	packageCount           // a total: Count packages resolved, prepared or installed
	onePackage             // one more package: pip's "Collecting", uv's " + name==version"
)

// installerLine is one line of uv's or pip's output, parsed.
type installerLine struct {
	Kind  lineKind
	Name  string
	Bytes int64
	Count int
	Text  string // the line as shown: trimmed, without escapes
}

var (
	escapes      = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	downloading  = regexp.MustCompile(`^Downloading (\S+)(?: \(([^)]*)\))?$`)
	uvDownloaded = regexp.MustCompile(`^Downloaded (\S+)$`)
	uvTotal      = regexp.MustCompile(`^(?:Resolved|Prepared|Installed|Audited) (\d+) packages? in `)
	size         = regexp.MustCompile(`^([0-9.]+) ?([kKMGT]?)(i?)B$`)
)

// parseInstallerLine tells what a line of uv's or pip's output says.
func parseInstallerLine(line string) installerLine {
	// Keep what a carriage return last overwrote, as a terminal would show it.
	if i := strings.LastIndexByte(strings.TrimRight(line, "\r\n"), '\r'); i >= 0 {
		line = line[i+1:]
	}
	text := strings.TrimSpace(escapes.ReplaceAllString(line, ""))
	l := installerLine{Text: text}
	if m := downloading.FindStringSubmatch(text); m != nil {
		l.Name, l.Bytes = m[1], parseSize(m[2])
		// pip names a file or a URL; uv names a package, and its names
		// (normalised) have neither dots nor slashes.
		l.Kind = downloadStart
		if strings.ContainsAny(l.Name, "./") {
			l.Kind = downloaded
		}
	} else if m := uvDownloaded.FindStringSubmatch(text); m != nil {
		l.Kind, l.Name = downloadDone, m[1]
	} else if m := uvTotal.FindStringSubmatch(text); m != nil {
		l.Kind, l.Count = packageCount, atoi(m[1])
	} else if rest, ok := strings.CutPrefix(text, "Installing collected packages: "); ok {
		l.Kind, l.Count = packageCount, len(strings.Split(rest, ","))
	} else if rest, ok := strings.CutPrefix(text, "Successfully installed "); ok {
		l.Kind, l.Count = packageCount, len(strings.Fields(rest))
	} else if rest, ok := strings.CutPrefix(text, "Collecting "); ok {
		l.Kind, l.Name = onePackage, firstField(rest)
	} else if rest, ok := strings.CutPrefix(text, "Requirement already satisfied: "); ok {
		l.Kind, l.Name = onePackage, firstField(rest)
	} else if rest, ok := strings.CutPrefix(text, "+ "); ok {
		l.Kind, l.Name = onePackage, firstField(rest)
	}
	return l
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// parseSize reads uv's "846.9MiB" and pip's "906.4 MB" or "12 kB"; 0 when it can't.
func parseSize(s string) int64 {
	m := size.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0
	}
	base := 1000.0
	if m[3] == "i" {
		base = 1024
	}
	exp := 0
	if m[2] != "" {
		exp = strings.Index("KMGT", strings.ToUpper(m[2])) + 1
	}
	return int64(v * math.Pow(base, float64(exp)))
}

// installerState is what the spinner line shows, built up line by line.
type installerState struct {
	counted int              // the largest total an installer printed
	ones    int              // packages named one by one
	pending map[string]int64 // uv downloads under way, by name
	bytes   int64
	latest  string
}

// packages is the best count so far: uv prints its totals, pip mostly
// names packages one by one.
func (s *installerState) packages() int { return max(s.counted, s.ones) }

func (s *installerState) apply(l installerLine) {
	switch l.Kind {
	case downloadStart:
		if s.pending == nil {
			s.pending = map[string]int64{}
		}
		s.pending[l.Name] = l.Bytes
	case downloadDone:
		s.bytes += s.pending[l.Name]
		delete(s.pending, l.Name)
	case downloaded:
		s.bytes += l.Bytes
	case packageCount:
		s.counted = max(s.counted, l.Count)
		// A total comes after the downloads ("Prepared"): count any whose
		// end uv didn't print.
		for name, n := range s.pending {
			s.bytes += n
			delete(s.pending, name)
		}
	case onePackage:
		s.ones++
	}
	if l.Text != "" {
		s.latest = l.Text
	}
}

// formatBytes is n in binary units with one decimal: "846.9 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}
