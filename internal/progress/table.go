package progress

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onnx2pt/onnx2pt/report"
)

// Table writes the summary of a batch: one row per model (input, result,
// max abs diff, time) in aligned columns, then the totals line. Only the
// result column is coloured, and only with opt.Color.
func Table(w io.Writer, outcomes []report.Outcome, total time.Duration, opt Options) {
	rows := [][]string{{"MODEL", "RESULT", "MAX ABS DIFF", "TIME"}}
	colours := []string{""}
	for _, o := range outcomes {
		diff := "-"
		if o.MaxAbsDiff != nil {
			diff = formatDiff(*o.MaxAbsDiff)
		}
		rows = append(rows, []string{Printable(o.Input), resultCell(o), diff,
			formatDuration(time.Duration(o.Seconds * float64(time.Second)))})
		colours = append(colours, resultColour(o.Result))
	}
	rightAligned := []bool{false, false, true, true}

	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for r, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i == 1 {
				// Colour the text only, so the escapes don't upset the padding.
				cell = paint(opt.Color, colours[r], cell)
			}
			switch {
			case rightAligned[i]:
				line.WriteString(pad + cell)
			case i < len(row)-1:
				line.WriteString(cell + pad)
			default:
				line.WriteString(cell)
			}
			if i < len(row)-1 {
				line.WriteString("  ")
			}
		}
		fmt.Fprintln(w, line.String())
	}
	fmt.Fprintln(w, totals(outcomes, total))
}

// resultCell names the result, with the failed stage or the killing signal.
func resultCell(o report.Outcome) string {
	s := label(o.Result)
	switch {
	case o.Result == report.ResultFailed && o.Stage != "":
		s += " (" + o.Stage + ")"
	case o.Result == report.ResultCrashed && o.Signal != "":
		s += " (" + o.Signal + ")"
	case len(o.ArtifactsMissing) > 0:
		var formats []string
		for _, a := range o.ArtifactsMissing {
			formats = append(formats, a.Format)
		}
		s += " (no " + strings.Join(formats, ", ") + ")"
	}
	return s
}

func resultColour(r report.Result) string {
	switch {
	case r.Failed():
		return red
	case r == report.ResultConverted:
		return green
	case r == report.ResultNotRun:
		return yellow
	}
	return ""
}

// label is a result in words: "up to date" rather than "up_to_date".
func label(r report.Result) string { return strings.ReplaceAll(string(r), "_", " ") }

// totals is "12 converted, 1 failed, 2 up to date in 34.5s": the results
// that occurred, in a fixed order.
func totals(outcomes []report.Outcome, total time.Duration) string {
	counts := map[report.Result]int{}
	for _, o := range outcomes {
		counts[o.Result]++
	}
	order := []report.Result{report.ResultConverted, report.ResultFailed, report.ResultCrashed,
		report.ResultTimedOut, report.ResultUpToDate, report.ResultNotRun}
	var parts []string
	for _, r := range order {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[r], label(r)))
			delete(counts, r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(counts)) { // a result added to report later still counts
		parts = append(parts, fmt.Sprintf("%d %s", counts[r], label(r)))
	}
	if len(parts) == 0 {
		parts = []string{"0 models"}
	}
	line := strings.Join(parts, ", ") + " in " + formatDuration(total)
	if n := report.MissingArtifacts(outcomes); n > 0 {
		line += fmt.Sprintf("; %d %s not written (see the table)", n, plural(n, "artifact", "artifacts"))
	}
	return line
}

// formatDiff is a max abs diff with two significant digits: "3.2e-07".
func formatDiff(d float64) string {
	if d == 0 {
		return "0"
	}
	return fmt.Sprintf("%.1e", d)
}

// formatDuration is "1.4s" under a minute, "2m03s" under an hour, else "1h02m".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
