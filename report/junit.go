package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"
)

// WriteJUnit writes s as a JUnit XML report to path, atomically: one
// suite, one test case per model, so that CI shows each model's result.
func WriteJUnit(path string, s *Summary) error {
	suite := junit.Testsuite{Name: "onnx2pt convert", Time: seconds(s.Seconds)}
	if s.Shard != nil {
		suite.Name += fmt.Sprintf(" shard %d/%d", s.Shard.Index, s.Shard.Count)
	}
	if !s.StartedAt.IsZero() {
		// The Ant schema's timestamp has no zone, so give it in UTC.
		suite.Timestamp = s.StartedAt.UTC().Format("2006-01-02T15:04:05")
	}
	suite.AddProperty("tool.version", s.Tool.Version)
	suite.AddProperty("jobs", strconv.Itoa(s.Jobs))
	for _, m := range s.Models {
		suite.AddTestcase(testcase(m)) // AddTestcase keeps the suite's counts
	}
	var suites junit.Testsuites
	suites.AddSuite(suite)

	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := suites.WriteXML(&buf); err != nil {
		return err
	}
	return WriteFileAtomic(path, buf.Bytes())
}

// testcase maps one model's outcome to a JUnit test case.
func testcase(m Outcome) junit.Testcase {
	tc := junit.Testcase{Name: m.Input, Classname: "onnx2pt", Time: seconds(m.Seconds)}
	var report string
	if m.Report != "" {
		report = "report: " + m.Report
	}
	switch m.Result {
	case ResultConverted:
		lines := []string{"output: " + m.Output}
		if m.MaxAbsDiff != nil {
			lines = append(lines, fmt.Sprintf("max abs diff: %g", *m.MaxAbsDiff))
		}
		for _, a := range m.ArtifactsMissing {
			lines = append(lines, fmt.Sprintf("artifact missing: %s: %s", a.Format, a.Reason))
		}
		tc.SystemOut = &junit.Output{Data: text(append(lines, report)...)}
	case ResultFailed:
		tc.Failure = &junit.Result{Message: m.Reason, Type: m.Stage, Data: text(m.Reason, report)}
	case ResultCrashed:
		msg := "worker killed by " + m.Signal
		if m.Signal == "" {
			msg = "worker crashed"
		}
		tc.Error = &junit.Result{Message: join(msg, m.Reason), Type: string(m.Result),
			Data: text(strings.Join(m.LastLines, "\n"), report)}
	case ResultTimedOut:
		tc.Error = &junit.Result{Message: join("timed out", m.Reason), Type: string(m.Result),
			Data: text(strings.Join(m.LastLines, "\n"), report)}
	case ResultUpToDate:
		tc.Skipped = &junit.Result{Message: "up to date"}
	case ResultNotRun:
		tc.Skipped = &junit.Result{Message: join("not run", m.Reason)}
	default:
		// An unknown result must not pass silently.
		tc.Error = &junit.Result{Message: "unknown result " + strconv.Quote(string(m.Result)), Type: string(m.Result)}
	}
	return tc
}

// seconds formats a duration in seconds as JUnit wants it.
func seconds(s float64) string {
	return strconv.FormatFloat(max(s, 0), 'f', 3, 64)
}

// join appends ": reason" to msg when there is a reason.
func join(msg, reason string) string {
	if reason == "" {
		return msg
	}
	return msg + ": " + reason
}

// text joins the non-empty lines for an element's character data. The
// encoder escapes attributes but writes CDATA as is, so characters XML
// cannot hold (NUL, ESC from a worker's terminal output, bad UTF-8) are
// replaced here, or the file would not parse.
func text(lines ...string) string {
	var kept []string
	for _, l := range lines {
		if l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF {
			return r
		}
		return '\uFFFD'
	}, strings.Join(kept, "\n"))
}
