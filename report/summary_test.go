package report

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// batch is a summary with every result, and names and messages that XML
// must escape or cannot hold at all.
func batch() *Summary {
	diff := 1.5e-6
	return &Summary{
		Tool:      Tool{Name: "onnx2pt", Version: "1.2.3"},
		StartedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600)),
		Seconds:   12.5,
		Shard:     &Shard{Index: 1, Count: 3},
		Jobs:      4,
		Models: []Outcome{
			{Input: `a<b&"c".onnx`, Output: "a.pt", Result: ResultConverted, Seconds: 1.25, MaxAbsDiff: &diff, Report: "a.report.json"},
			{Input: "b.onnx", Output: "b.pt", Result: ResultConverted, Seconds: 0.5},
			{Input: "c.onnx", Result: ResultUpToDate},
			{Input: "d.onnx", Result: ResultFailed, Stage: "verify", Reason: "outputs differ\nby <1e-2> & more", Seconds: 3, Report: "d.failure.json"},
			{Input: "e.onnx", Result: ResultCrashed, Signal: "SIGSEGV", Reason: "bad\x00 ptr", LastLines: []string{"loading\x00", "\x1b[31mboom\x1b[0m ]]> done"}, Seconds: 2},
			{Input: "f.onnx", Result: ResultTimedOut, Reason: "after 60s", LastLines: []string{"step 1"}, Seconds: 60},
			{Input: "g.onnx", Result: ResultNotRun, Reason: "interrupted"},
		},
	}
}

func TestTally(t *testing.T) {
	for _, c := range []struct {
		name    string
		results []Result
		want    map[Result]int
	}{
		{"empty", nil, map[Result]int{}},
		{"repeated", []Result{ResultFailed, ResultConverted, ResultFailed}, map[Result]int{ResultFailed: 2, ResultConverted: 1}},
	} {
		// Stale counts must be replaced, not added to.
		s := &Summary{Counts: map[Result]int{ResultFailed: 7, ResultNotRun: 1}}
		for _, r := range c.results {
			s.Models = append(s.Models, Outcome{Result: r})
		}
		s.Tally()
		if !reflect.DeepEqual(s.Counts, c.want) {
			t.Errorf("%s: counts %v, want %v", c.name, s.Counts, c.want)
		}
	}
}

func TestWriteSummaryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.json")
	s := batch()
	s.Counts = map[Result]int{ResultFailed: 99} // stale: WriteSummary must tally
	if err := WriteSummary(path, s); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(data), "}\n") || !strings.Contains(string(data), "\n  \"") {
		t.Errorf("not indented JSON ending in a newline:\n%s", data)
	}
	var back Summary
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	want := batch()
	want.Counts = map[Result]int{ResultConverted: 2, ResultUpToDate: 1, ResultFailed: 1, ResultCrashed: 1, ResultTimedOut: 1, ResultNotRun: 1}
	if !back.StartedAt.Equal(want.StartedAt) {
		t.Errorf("started_at %v, want %v", back.StartedAt, want.StartedAt)
	}
	back.StartedAt = want.StartedAt // same instant; the zone is not kept by value
	if !reflect.DeepEqual(&back, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, *want)
	}
}

// The common JUnit schema (Ant/Jenkins), as far as CI readers use it.
type xSuites struct {
	XMLName xml.Name
	Suites  []xSuite `xml:"testsuite"`
}

type xSuite struct {
	Name       string  `xml:"name,attr"`
	Tests      int     `xml:"tests,attr"`
	Failures   int     `xml:"failures,attr"`
	Errors     int     `xml:"errors,attr"`
	Skipped    int     `xml:"skipped,attr"`
	Time       string  `xml:"time,attr"`
	Timestamp  string  `xml:"timestamp,attr"`
	Properties []xProp `xml:"properties>property"`
	Cases      []xCase `xml:"testcase"`
}

type xProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type xCase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Time      string    `xml:"time,attr"`
	Failure   []xResult `xml:"failure"`
	Error     []xResult `xml:"error"`
	Skipped   []xResult `xml:"skipped"`
	SystemOut string    `xml:"system-out"`
}

type xResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// kind says which result child a case has, failing on more than one.
func (c xCase) kind(t *testing.T) (string, xResult) {
	kind, res, n := "pass", xResult{}, 0
	for name, rs := range map[string][]xResult{"failure": c.Failure, "error": c.Error, "skipped": c.Skipped} {
		for _, r := range rs {
			kind, res, n = name, r, n+1
		}
	}
	if n > 1 {
		t.Errorf("%s: %d result elements, want at most one", c.Name, n)
	}
	return kind, res
}

func nonNegative(t *testing.T, what, s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		t.Errorf("%s: time %q is not a non-negative number", what, s)
	}
	return f
}

func TestWriteJUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junit.xml")
	s := batch()
	if err := WriteJUnit(path, s); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc xSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("not valid XML: %v\n%s", err, data)
	}
	if doc.XMLName.Local != "testsuites" || len(doc.Suites) != 1 {
		t.Fatalf("root <%s> with %d suites, want <testsuites> with 1", doc.XMLName.Local, len(doc.Suites))
	}
	suite := doc.Suites[0]
	if suite.Name != "onnx2pt convert shard 1/3" {
		t.Errorf("suite name %q", suite.Name)
	}
	if f := nonNegative(t, "suite", suite.Time); f != s.Seconds {
		t.Errorf("suite time %v, want %v", f, s.Seconds)
	}
	if ts, err := time.Parse("2006-01-02T15:04:05", suite.Timestamp); err != nil || !ts.Equal(s.StartedAt) {
		t.Errorf("timestamp %q (%v), want %v in UTC", suite.Timestamp, err, s.StartedAt)
	}
	props := map[string]string{}
	for _, p := range suite.Properties {
		props[p.Name] = p.Value
	}
	if props["tool.version"] != "1.2.3" || props["jobs"] != "4" {
		t.Errorf("properties %v, want tool.version 1.2.3 and jobs 4", props)
	}

	want := []struct {
		kind, typ, message string
		text               []string // substrings of the element's text
	}{
		{"pass", "", "", []string{"output: a.pt", "max abs diff: 1.5e-06", "report: a.report.json"}},
		{"pass", "", "", []string{"output: b.pt"}},
		{"skipped", "", "up to date", nil},
		{"failure", "verify", "outputs differ\nby <1e-2> & more", []string{"by <1e-2> & more", "report: d.failure.json"}},
		{"error", "crashed", "worker killed by SIGSEGV: bad\uFFFD ptr", []string{"loading", "boom", "]]> done"}},
		{"error", "timed_out", "timed out: after 60s", []string{"step 1"}},
		{"skipped", "", "not run: interrupted", nil},
	}
	if len(suite.Cases) != len(want) {
		t.Fatalf("%d test cases, want %d", len(suite.Cases), len(want))
	}
	counts := map[string]int{}
	for i, c := range suite.Cases {
		m, w := s.Models[i], want[i]
		if c.Name != m.Input || c.Classname != "onnx2pt" {
			t.Errorf("case %d: name %q classname %q, want %q onnx2pt", i, c.Name, c.Classname, m.Input)
		}
		if f := nonNegative(t, c.Name, c.Time); f != m.Seconds {
			t.Errorf("%s: time %v, want %v", c.Name, f, m.Seconds)
		}
		kind, res := c.kind(t)
		counts[kind]++
		text := res.Text
		if kind == "pass" {
			text = c.SystemOut
		}
		if kind != w.kind || res.Type != w.typ || res.Message != w.message {
			t.Errorf("%s: <%s type=%q message=%q>, want <%s type=%q message=%q>", c.Name, kind, res.Type, res.Message, w.kind, w.typ, w.message)
		}
		for _, sub := range w.text {
			if !strings.Contains(text, sub) {
				t.Errorf("%s: text %q lacks %q", c.Name, text, sub)
			}
		}
	}
	if suite.Tests != len(suite.Cases) || suite.Failures != counts["failure"] || suite.Errors != counts["error"] || suite.Skipped != counts["skipped"] {
		t.Errorf("suite counts tests=%d failures=%d errors=%d skipped=%d, children %d %v",
			suite.Tests, suite.Failures, suite.Errors, suite.Skipped, len(suite.Cases), counts)
	}
}

func TestWriteJUnitUnsharded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := WriteJUnit(path, &Summary{}); err != nil {
		t.Fatal(err)
	}
	var doc xSuites
	data, _ := os.ReadFile(path)
	if err := xml.Unmarshal(data, &doc); err != nil || len(doc.Suites) != 1 {
		t.Fatalf("%v\n%s", err, data)
	}
	if s := doc.Suites[0]; s.Name != "onnx2pt convert" || s.Tests != 0 {
		t.Errorf("suite %q with %d tests, want \"onnx2pt convert\" with 0", s.Name, s.Tests)
	}
}

func TestWritersFailCleanly(t *testing.T) {
	writers := map[string]func(string, *Summary) error{"summary": WriteSummary, "junit": WriteJUnit}
	for name, write := range writers {
		for _, c := range []struct {
			name string
			path func(dir string) string
		}{
			{"missing directory", func(dir string) string { return filepath.Join(dir, "missing", "out") }},
			// The temporary file is written, then the rename fails.
			{"path is a directory", func(dir string) string {
				p := filepath.Join(dir, "taken")
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			}},
		} {
			dir := t.TempDir()
			if err := write(c.path(dir), batch()); err == nil {
				t.Errorf("%s, %s: no error", name, c.name)
			}
			var left []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if !d.IsDir() {
					left = append(left, p)
				}
				return err
			})
			if len(left) > 0 {
				t.Errorf("%s, %s: left %v behind", name, c.name, left)
			}
		}
	}
}
