package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/onnx2pt/onnx2pt/report"
)

func diff(v float64) *float64 { return &v }

var mixed = []report.Outcome{
	{Input: "models/resnet50.onnx", Result: report.ResultConverted, Seconds: 1.43, MaxAbsDiff: diff(3.2e-7)},
	{Input: "models/bert.onnx", Result: report.ResultFailed, Stage: "verify", Seconds: 12.04, MaxAbsDiff: diff(0.5)},
	{Input: "models/yolo.onnx", Result: report.ResultCrashed, Signal: "SIGABRT", Seconds: 83},
	{Input: "a.onnx", Result: report.ResultUpToDate, Seconds: 0},
	{Input: "models/unet.onnx", Result: report.ResultConverted, Seconds: 2.0, MaxAbsDiff: diff(0)},
}

func TestTable(t *testing.T) {
	var buf bytes.Buffer
	Table(&buf, mixed, 34500*time.Millisecond, Options{})
	want := `MODEL                 RESULT             MAX ABS DIFF   TIME
models/resnet50.onnx  converted               3.2e-07   1.4s
models/bert.onnx      failed (verify)         5.0e-01  12.0s
models/yolo.onnx      crashed (SIGABRT)             -  1m23s
a.onnx                up to date                    -   0.0s
models/unet.onnx      converted                     0   2.0s
2 converted, 1 failed, 1 crashed, 1 up to date in 34.5s
`
	if got := buf.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(buf.String(), "\x1b") {
		t.Error("escape sequence without Options.Color")
	}
}

// With colour the result column is coloured and the columns still line up.
func TestTableColor(t *testing.T) {
	var plain, coloured bytes.Buffer
	Table(&plain, mixed, time.Second, Options{})
	Table(&coloured, mixed, time.Second, Options{Color: true})
	for _, want := range []string{"\x1b[32mconverted\x1b[0m", "\x1b[31mfailed (verify)\x1b[0m", "\x1b[31mcrashed (SIGABRT)\x1b[0m"} {
		if !strings.Contains(coloured.String(), want) {
			t.Errorf("coloured table lacks %q:\n%q", want, coloured.String())
		}
	}
	if got := sgr.ReplaceAllString(coloured.String(), ""); got != plain.String() {
		t.Errorf("coloured table, less its colours:\n%s\ndiffers from the plain one:\n%s", got, plain.String())
	}
	if lastLine := strings.TrimSuffix(coloured.String(), "\n"); strings.Contains(lastLine[strings.LastIndexByte(lastLine, '\n'):], "\x1b") {
		t.Error("colour in the totals line")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1400 * time.Millisecond:   "1.4s",
		34500 * time.Millisecond:  "34.5s",
		123 * time.Second:         "2m03s",
		time.Hour + 2*time.Minute: "1h02m",
		0:                         "0.0s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestTotalsEmpty(t *testing.T) {
	if got := totals(nil, 0); got != "0 models in 0.0s" {
		t.Errorf("totals(nil) = %q", got)
	}
}

func TestTableShowsMissingArtifacts(t *testing.T) {
	var buf bytes.Buffer
	Table(&buf, []report.Outcome{
		{Input: "enc.onnx", Result: report.ResultConverted, Seconds: 3, MaxAbsDiff: diff(1e-6),
			ArtifactsMissing: []report.MissingArtifact{{Format: "torchscript", Reason: "trace bound to its batch"}, {Format: "exported", Reason: "OnnxReshape"}}},
		{Input: "ok.onnx", Result: report.ResultConverted, Seconds: 1, MaxAbsDiff: diff(0)},
	}, 4*time.Second, Options{})
	for _, want := range []string{"enc.onnx  converted (no torchscript, exported)", "2 converted in 4.0s; 2 artifacts not written (see the table)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
