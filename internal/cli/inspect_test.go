package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/report"
)

// A model that does not exist, is empty or is a folder is refused before
// Python starts, with the message convert gives for it.
func TestInspectRefusesWhatConvertRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.onnx")
	os.WriteFile(empty, nil, 0o644)
	os.Mkdir(filepath.Join(dir, "folder.onnx"), 0o755)
	for _, c := range []struct {
		name string
		args []string
		says []string
	}{
		{"missing", []string{filepath.Join(dir, "nope.onnx")}, []string{filepath.Join(dir, "nope.onnx") + " does not exist"}},
		{"empty", []string{empty}, []string{empty + " is empty, not an ONNX model"}},
		{"a glob's folder", []string{filepath.Join(dir, "f*.onnx")}, []string{filepath.Join(dir, "folder.onnx") + " is a directory, not an ONNX file"}},
		{"a glob without matches", []string{filepath.Join(dir, "x*.onnx")}, []string{filepath.Join(dir, "x*.onnx") + ": matches no file"}},
		{"each problem", []string{filepath.Join(dir, "a.onnx"), empty}, []string{
			"2 problems:", filepath.Join(dir, "a.onnx") + " does not exist", empty + " is empty"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"inspect", "--venv", filepath.Join(dir, "no-venv")}, c.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			for _, want := range c.says {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stderr, "readable") || stdout != "" {
				t.Errorf("stdout %q, stderr:\n%s", stdout, stderr)
			}
		})
	}
	// convert's own message, word for word.
	missing := filepath.Join(dir, "nope.onnx")
	_, _, inspectErr := runCLI(t, "inspect", missing)
	_, _, convertErr := runCLI(t, "convert", missing)
	if inspectErr != convertErr {
		t.Errorf("inspect says\n%s\nconvert says\n%s", inspectErr, convertErr)
	}
}

func TestInspectInputsExpandsLikeConvert(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.onnx", "a.onnx", "notes.txt"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	got, err := inspectInputs([]string{dir, filepath.Join(dir, "b.onnx")})
	want := []string{filepath.Join(dir, "a.onnx"), filepath.Join(dir, "b.onnx"), filepath.Join(dir, "b.onnx")}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("inspectInputs = %v, %v; want %v", got, err, want)
	}
}

func failure(node, fixedBy string) report.NodeFailure {
	return report.NodeFailure{Node: node, Op: "Reshape", Domain: "ai.onnx", Opset: 17, Reason: "NotImplementedError: allowzero", FixedBy: fixedBy}
}

func TestVerdict(t *testing.T) {
	fixed := []report.NodeFailure{failure("r", "reshape_allowzero")}
	left := []report.NodeFailure{failure("r", "")}
	pass := []report.Pass{{Name: "reshape_allowzero", Fixed: 1}}
	for _, c := range []struct {
		name string
		n    report.Normalisation
		want string
	}{
		{"nothing fails", report.Normalisation{}, convert.VerdictConverts},
		{"a pass fixes every node", report.Normalisation{Failures: fixed, Passes: pass}, convert.VerdictConvertsAfterNormalisation},
		{"no pass fixes it", report.Normalisation{Failures: left, Remaining: left}, convert.VerdictCannotConvert},
		{"a pass fixes some", report.Normalisation{Failures: append(fixed, left...), Passes: pass, Remaining: left}, convert.VerdictCannotConvert},
	} {
		if got := convert.Verdict(c.n); got != c.want {
			t.Errorf("%s: verdict %q, want %q", c.name, got, c.want)
		}
	}
	if in := convert.FailedInspection("m.onnx", errors.New("m.onnx: not an ONNX model")); in.Verdict != convert.VerdictCannotConvert || in.Error != "m.onnx: not an ONNX model" || in.Source.Path != "m.onnx" {
		t.Errorf("FailedInspection = %+v", in)
	}
}

func inspection(verdict string, n report.Normalisation) *convert.Inspection {
	return &convert.Inspection{Source: report.Source{Path: "m.onnx", Nodes: 1}, Normalisation: n, Verdict: verdict}
}

// The last line counts the models by verdict: those the normalisation
// fixes are not among those that cannot convert.
func TestInspectSummary(t *testing.T) {
	converts := inspection(convert.VerdictConverts, report.Normalisation{})
	normalised := inspection(convert.VerdictConvertsAfterNormalisation, report.Normalisation{})
	cannot := convert.FailedInspection("bad.onnx", errors.New("bad"))
	for _, c := range []struct {
		models        []*convert.Inspection
		line, failure string
	}{
		{[]*convert.Inspection{converts, converts, converts, converts, converts, normalised, normalised, cannot},
			"8 models: 5 convert, 2 convert after normalisation, 1 cannot convert", "1 of 8 models cannot convert"},
		{[]*convert.Inspection{converts}, "1 model: 1 converts", ""},
		{[]*convert.Inspection{normalised, converts}, "2 models: 1 converts, 1 converts after normalisation", ""},
		{[]*convert.Inspection{cannot}, "1 model: 1 cannot convert", "the model cannot convert"},
		{[]*convert.Inspection{cannot, normalised, cannot}, "3 models: 1 converts after normalisation, 2 cannot convert", "2 of 3 models cannot convert"},
	} {
		s := summarise(c.models)
		if got := s.String(); got != c.line {
			t.Errorf("summary %q, want %q", got, c.line)
		}
		if s.Models != s.Converts+s.ConvertsAfterNormalisation+s.CannotConvert {
			t.Errorf("%+v does not add up", s)
		}
		if c.failure != "" && s.failure() != c.failure {
			t.Errorf("failure %q, want %q", s.failure(), c.failure)
		}
		if (c.failure != "") != (s.CannotConvert > 0) {
			t.Errorf("%q: cannot convert %d", c.line, s.CannotConvert)
		}
	}
}

// Each model's verdict line: singular and plural, and what no pass fixes.
func TestInspectionVerdictLine(t *testing.T) {
	one := []report.NodeFailure{failure("r1", "reshape_allowzero")}
	two := []report.NodeFailure{failure("r1", "reshape_allowzero"), failure("r2", "reshape_allowzero")}
	left := []report.NodeFailure{failure("r1", "")}
	pass := []report.Pass{{Name: "reshape_allowzero", Fixed: 1}}
	for _, c := range []struct {
		n    report.Normalisation
		want string
	}{
		{report.Normalisation{}, "  converts as it is\n"},
		{report.Normalisation{Failures: one, Passes: pass}, "  converts after normalisation (reshape_allowzero); as it is, 1 node fails:\n"},
		{report.Normalisation{Failures: two, Passes: pass}, "  converts after normalisation (reshape_allowzero); as it is, 2 nodes fail:\n"},
		{report.Normalisation{Failures: left, Remaining: left}, "  cannot convert: 1 node fails, and no normalisation pass fixes it:\n"},
		{report.Normalisation{Failures: append(left, left...), Remaining: append(left, left...)}, "  cannot convert: 2 nodes fail, and no normalisation pass fixes them:\n"},
		{report.Normalisation{Failures: append(one, left...), Passes: pass, Remaining: left}, "  cannot convert: 2 nodes fail; after normalisation (reshape_allowzero), 1 still fails:\n"},
	} {
		var out bytes.Buffer
		printInspection(&out, inspection(convert.Verdict(c.n), c.n))
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("output lacks %q:\n%s", c.want, out.String())
		}
		if strings.Contains(out.String(), " 1 nodes") || strings.Contains(out.String(), " 1 node fail\n") {
			t.Errorf("plural for one node:\n%s", out.String())
		}
	}
	var out bytes.Buffer
	printInspection(&out, convert.FailedInspection("bad.onnx", errors.New("bad.onnx: not an ONNX model")))
	if want := "bad.onnx\n  cannot convert: bad.onnx: not an ONNX model\n"; out.String() != want {
		t.Errorf("a model that could not be inspected:\n%s\nwant\n%s", out.String(), want)
	}
}
