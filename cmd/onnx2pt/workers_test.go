package main

// End-to-end tests of supervised workers: a model that crashes or hangs
// its worker costs that model alone, an interrupt does not wait for a
// native call, shards split a batch, and the summary and JUnit files say
// what happened to every model.

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// customOpModel writes name.onnx: one node of op from the test hooks'
// domain (Abort crashes the worker that converts it, Hang hangs it in a
// native call).
const customOpModel = `
import sys, onnx
from onnx import TensorProto, helper
op, path = sys.argv[1], sys.argv[2]
node = helper.make_node(op, ["x"], ["y"], domain="onnx2pt.test")
graph = helper.make_graph([node], op.lower(),
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("onnx2pt.test", 1)])
onnx.save(model, path)
`

// hooked runs the binary like onnx2pt, with the test hooks loaded in its
// workers and TMPDIR set to tmp.
func hooked(t *testing.T, dir, tmp string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	hooks, _ := filepath.Abs("testdata/onnx2pt_test_hooks.py")
	cmd.Env = append(os.Environ(), "ONNX2PT_PYTHON_VENV="+venvDir, "NO_COLOR=1",
		"ONNX2PT_TEST_HOOKS="+hooks, "TMPDIR="+tmp)
	return cmd
}

// writeConfig writes a config converting models beside themselves, without
// the portable artifacts (these tests are about workers, not formats).
func writeConfig(t *testing.T, path string, models ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("artifacts: [checkpoint, state_dict]\nmodels:\n")
	for _, m := range models {
		fmt.Fprintf(&b, "  - {input: %s, output: %s.pt}\n", m, strings.TrimSuffix(m, ".onnx"))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copies puts n copies of the reference model in dir and returns their names.
func copies(t *testing.T, dir string, n int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range n {
		name := fmt.Sprintf("m%d.onnx", i)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

type summaryFile struct {
	Jobs   int            `json:"jobs"`
	Counts map[string]int `json:"counts"`
	Shard  *struct {
		Index int `json:"index"`
		Count int `json:"count"`
	} `json:"shard"`
	Models []struct {
		Input      string   `json:"input"`
		Result     string   `json:"result"`
		Stage      string   `json:"stage"`
		Reason     string   `json:"reason"`
		Signal     string   `json:"signal"`
		LastLines  []string `json:"last_lines"`
		Seconds    float64  `json:"seconds"`
		MaxAbsDiff *float64 `json:"max_abs_diff"`
		Report     string   `json:"report"`
		PeakRSS    int64    `json:"peak_rss_bytes"`
	} `json:"models"`
}

func readSummary(t *testing.T, path string) summaryFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s summaryFile
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCrashingAndHangingModelsCostOnlyThemselves(t *testing.T) {
	dir, tmp := workdir(t), t.TempDir()
	python(t, dir, customOpModel, "Abort", "abort.onnx")
	python(t, dir, customOpModel, "Hang", "hang.onnx")
	good := copies(t, dir, 2)
	writeConfig(t, filepath.Join(dir, "batch.yaml"), good[0], "abort.onnx", "hang.onnx", good[1])
	r := runCmd(t, hooked(t, dir, tmp, "convert", "-c", "batch.yaml", "--jobs", "2", "--timeout", "6s",
		"--summary", "summary.json", "--junit", "junit.xml"))
	if r.code != 1 || lastLine(r.stderr) != "onnx2pt: 2 of 4 models failed" {
		t.Fatalf("exit %d, last line %q, want 1 and 2 of 4 failed\n%s", r.code, lastLine(r.stderr), r.stderr)
	}
	s := readSummary(t, filepath.Join(dir, "summary.json"))
	want := []string{"converted", "crashed", "timed_out", "converted"}
	if len(s.Models) != len(want) {
		t.Fatalf("summary has %d models, want %d", len(s.Models), len(want))
	}
	for i, m := range s.Models {
		if m.Result != want[i] {
			t.Errorf("%s: %s, want %s (%s)", m.Input, m.Result, want[i], m.Reason)
		}
	}
	crash, hang := s.Models[1], s.Models[2]
	if crash.Signal != "SIGABRT" || crash.Stage != "normalise" || len(crash.LastLines) == 0 {
		t.Errorf("crash reported as signal %q stage %q, last lines %q", crash.Signal, crash.Stage, crash.LastLines)
	}
	if !strings.Contains(hang.Reason, "6s") || hang.Seconds < 6 || hang.Seconds > 30 {
		t.Errorf("timeout reported as %q after %.1fs", hang.Reason, hang.Seconds)
	}
	if s.Models[0].MaxAbsDiff == nil || s.Models[0].PeakRSS == 0 {
		t.Errorf("converted model lacks max diff or peak memory: %+v", s.Models[0])
	}
	for _, m := range []int{1, 2} {
		rep := readJSON(t, filepath.Join(dir, s.Models[m].Report))
		if rep["status"] != want[m] {
			t.Errorf("%s: failure report status %v, want %s", s.Models[m].Report, rep["status"], want[m])
		}
	}
	checkJUnit(t, filepath.Join(dir, "junit.xml"), map[string]string{
		good[0]: "", "abort.onnx": "error", "hang.onnx": "error", good[1]: ""})
	assertOnly(t, dir, "resnet8.onnx", "abort.onnx", "hang.onnx", good[0], good[1], "batch.yaml", "summary.json", "junit.xml",
		"m0.pt", "m0.state_dict.pt", "m0.report.json", "m1.pt", "m1.state_dict.pt", "m1.report.json",
		"abort.failed.report.json", "hang.failed.report.json")
	assertOnly(t, tmp) // the workers' temporary folders went with them
}

// junitSuites follows the common JUnit XML schema (Ant/Jenkins):
// testsuites > testsuite > testcase, with at most one of failure, error or
// skipped per case.
type junitSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name     string `xml:"name,attr"`
		Tests    *int   `xml:"tests,attr"`
		Failures *int   `xml:"failures,attr"`
		Errors   *int   `xml:"errors,attr"`
		Skipped  int    `xml:"skipped,attr"`
		Time     string `xml:"time,attr"`
		Cases    []struct {
			Name      string     `xml:"name,attr"`
			Classname string     `xml:"classname,attr"`
			Time      string     `xml:"time,attr"`
			Failure   *junitNote `xml:"failure"`
			Error     *junitNote `xml:"error"`
			Skipped   *junitNote `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitNote struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
}

// checkJUnit parses a JUnit file, checks it against the schema's rules and
// that each named case has the wanted kind ("" passed, "failure",
// "error", "skipped").
func checkJUnit(t *testing.T, path string, want map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s is not valid XML: %v", path, err)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d test suites, want 1", len(doc.Suites))
	}
	suite := doc.Suites[0]
	if suite.Name == "" || suite.Tests == nil || suite.Failures == nil || suite.Errors == nil {
		t.Errorf("suite lacks a required attribute: %+v", suite)
	}
	if _, err := strconv.ParseFloat(suite.Time, 64); err != nil {
		t.Errorf("suite time %q", suite.Time)
	}
	counts := map[string]int{}
	for _, c := range suite.Cases {
		kind := ""
		n := 0
		for k, note := range map[string]*junitNote{"failure": c.Failure, "error": c.Error, "skipped": c.Skipped} {
			if note != nil {
				kind, n = k, n+1
				if k != "skipped" && note.Message == "" {
					t.Errorf("%s: %s without a message", c.Name, k)
				}
			}
		}
		if n > 1 {
			t.Errorf("%s has %d results", c.Name, n)
		}
		counts[kind]++
		if sec, err := strconv.ParseFloat(c.Time, 64); err != nil || sec < 0 {
			t.Errorf("%s: time %q", c.Name, c.Time)
		}
		if c.Classname == "" {
			t.Errorf("%s: no classname", c.Name)
		}
		if w, ok := want[c.Name]; !ok || w != kind {
			t.Errorf("case %q is %q, want %q", c.Name, kind, w)
		}
	}
	if len(suite.Cases) != len(want) || *suite.Tests != len(suite.Cases) || *suite.Failures != counts["failure"] ||
		*suite.Errors != counts["error"] || suite.Skipped != counts["skipped"] {
		t.Errorf("suite counts tests=%d failures=%d errors=%d skipped=%d, cases %v", *suite.Tests, *suite.Failures, *suite.Errors, suite.Skipped, counts)
	}
}

func TestInterruptDuringANativeCall(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	python(t, dir, customOpModel, "Hang", "hang.onnx")
	cmd := hooked(t, dir, tmp, "convert", "--input", "hang.onnx", "-v")
	// The pre-flight reaches the hanging converter's sleep(600) at once.
	code, took, log := interruptAt(t, cmd, "Loading ONNX model from hang.onnx", time.Second)
	if code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, log)
	}
	t.Logf("stopped %v after the interrupt", took)
	if took > 2*time.Second {
		t.Errorf("stopping took %v, want about a second", took)
	}
	assertOnly(t, dir, "hang.onnx")
	assertOnly(t, tmp)
}

func TestWorkersAreRecycled(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	names := copies(t, dir, 3)
	writeConfig(t, filepath.Join(dir, "batch.yaml"), names...)
	r := onnx2pt(t, dir, "convert", "-c", "batch.yaml", "--jobs", "1", "-v", "--summary", "summary.json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	// The same batch with a worker per model.
	cfg, _ := os.ReadFile(filepath.Join(dir, "batch.yaml"))
	cfg = append([]byte("run: {max_models_per_worker: 1}\n"), cfg...)
	if err := os.WriteFile(filepath.Join(dir, "recycled.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := onnx2pt(t, dir, "convert", "-c", "recycled.yaml", "--jobs", "1", "-v", "--force", "--summary", "summary.json")
	if r2.code != 0 {
		t.Fatalf("exit %d\n%s", r2.code, r2.stderr)
	}
	ready := regexp.MustCompile(`Worker (\d+) ready`)
	for _, c := range []struct {
		r       result
		workers int
	}{{r, 1}, {r2, 3}} {
		pids := map[string]bool{}
		for _, m := range ready.FindAllStringSubmatch(c.r.stderr, -1) {
			pids[m[1]] = true
		}
		if len(pids) != c.workers {
			t.Errorf("%d workers started, want %d", len(pids), c.workers)
		}
	}
	if n := strings.Count(r2.stderr, "Recycling worker"); n != 2 {
		t.Errorf("%d workers recycled, want 2 (the last one simply ends)", n)
	}
	s := readSummary(t, filepath.Join(dir, "summary.json"))
	if s.Counts["converted"] != 3 {
		t.Errorf("counts %v", s.Counts)
	}
}

func TestShardsSplitTheBatch(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	names := copies(t, dir, 5)
	writeConfig(t, filepath.Join(dir, "batch.yaml"), names...)
	seen := map[string]int{}
	for i := range 2 {
		shard := fmt.Sprintf("%d/2", i)
		summary := fmt.Sprintf("shard%d.json", i)
		cmd := exec.Command(binary, "convert", "-c", "batch.yaml", "--summary", summary)
		cmd.Dir = dir
		// The shard from the environment, as a scheduler would set it.
		cmd.Env = append(os.Environ(), "ONNX2PT_PYTHON_VENV="+venvDir, "ONNX2PT_RUN_SHARD="+shard)
		if r := runCmd(t, cmd); r.code != 0 {
			t.Fatalf("shard %s: exit %d\n%s", shard, r.code, r.stderr)
		}
		s := readSummary(t, filepath.Join(dir, summary))
		if s.Shard == nil || s.Shard.Index != i || s.Shard.Count != 2 {
			t.Errorf("shard %s: summary says %+v", shard, s.Shard)
		}
		for _, m := range s.Models {
			if m.Result != "converted" {
				t.Errorf("%s: %s", m.Input, m.Result)
			}
			seen[m.Input]++
		}
	}
	for _, n := range names {
		if seen[n] != 1 {
			t.Errorf("%s converted by %d shards, want exactly 1", n, seen[n])
		}
	}
	if len(seen) != len(names) {
		t.Errorf("shards converted %v", seen)
	}
}

// TestFuzzBatch converts a few hundred damaged copies of the reference
// model in one run: whatever each does to its worker, the run finishes and
// every file has an outcome.
func TestFuzzBatch(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	orig, err := os.ReadFile(filepath.Join(dir, "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 240
	var names []string
	for i := range n {
		data := append([]byte(nil), orig...)
		switch i % 3 {
		case 0: // bit flips
			for range 1 + rng.IntN(16) {
				data[rng.IntN(len(data))] ^= 1 << rng.IntN(8)
			}
		case 1: // truncation (never to nothing, which validation refuses up front)
			data = data[:1+rng.IntN(len(data)-1)]
		case 2: // bytes from elsewhere in the file spliced in
			from, at := rng.IntN(len(orig)), rng.IntN(len(data))
			chunk := orig[from:min(len(orig), from+1+rng.IntN(4096))]
			data = append(data[:at], append(append([]byte(nil), chunk...), data[at:]...)...)
		}
		name := fmt.Sprintf("fuzz%03d.onnx", i)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	writeConfig(t, filepath.Join(dir, "fuzz.yaml"), names...)
	r := onnx2pt(t, dir, "convert", "-c", "fuzz.yaml", "--jobs", "2", "-q", "--summary", "summary.json", "--timeout", "2m")
	if r.code != 0 && r.code != 1 {
		t.Fatalf("exit %d, want 0 or 1\n%s", r.code, r.stderr)
	}
	s := readSummary(t, filepath.Join(dir, "summary.json"))
	if len(s.Models) != n {
		t.Fatalf("%d outcomes for %d models", len(s.Models), n)
	}
	for i, m := range s.Models {
		if m.Input != names[i] || m.Result == "" || m.Result == "not_run" {
			t.Errorf("model %d: %s has outcome %q", i, m.Input, m.Result)
		}
		if m.Result != "converted" && m.Reason == "" {
			t.Errorf("%s: %s without a reason", m.Input, m.Result)
		}
	}
	t.Logf("outcomes: %v", s.Counts)
}

func TestProgressOnATerminal(t *testing.T) {
	dir := workdir(t)
	names := copies(t, dir, 3)
	writeConfig(t, filepath.Join(dir, "batch.yaml"), names...)
	cmd := exec.Command(binary, "convert", "-c", "batch.yaml", "--jobs", "2")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ONNX2PT_PYTHON_VENV="+venvDir)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out, _ := io.ReadAll(tty) // ends with EIO once the process is gone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	screen := string(out)
	// While the workers start, the first models show as starting.
	for _, want := range []string{"now: m0.onnx (starting Python, importing torch: ", "Converting 3/3", "\x1b[", "MODEL", "MAX ABS DIFF", "3 converted in"} {
		if !strings.Contains(screen, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, "Loading ONNX model") {
		t.Errorf("per-model log lines shown under the progress display:\n%s", screen)
	}
	var rows []string
	for _, line := range strings.Split(screen, "\n") {
		for _, n := range names {
			if strings.HasPrefix(strings.TrimSpace(line), n+" ") {
				rows = append(rows, n)
			}
		}
	}
	if !sort.StringsAreSorted(rows) || len(rows) != len(names) {
		t.Errorf("summary table rows %v, want %v in order", rows, names)
	}
}

func TestSummaryIntoAMissingFolderIsWritten(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	args := []string{"convert", "--input", "resnet8.onnx", "--artifacts", "checkpoint"}
	if r := onnx2pt(t, dir, args...); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	// Up to date now: the summary of a batch that ran nothing is written too.
	r := onnx2pt(t, dir, append(args, "--summary", "results/2026/summary.json", "--junit", "results/junit.xml")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if s := readSummary(t, filepath.Join(dir, "results", "2026", "summary.json")); s.Counts["up_to_date"] != 1 {
		t.Errorf("summary counts %v", s.Counts)
	}
	if _, err := os.Stat(filepath.Join(dir, "results", "junit.xml")); err != nil {
		t.Error(err)
	}
	// A folder that cannot be made: refused before any work, naming the flag.
	r = onnx2pt(t, dir, append(args, "--force", "--summary", "resnet8.onnx/summary.json")...)
	if r.code != 2 || !strings.Contains(lastLine(r.stderr), "--summary resnet8.onnx/summary.json: cannot create its folder") {
		t.Fatalf("exit %d, last line %q", r.code, lastLine(r.stderr))
	}
	if strings.Contains(r.stderr, "Saved to") {
		t.Errorf("converted before refusing:\n%s", r.stderr)
	}
}
