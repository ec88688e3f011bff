package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/onnx2pt/onnx2pt/report"
)

func TestPrintableEscapesWhatATerminalWouldObey(t *testing.T) {
	for in, want := range map[string]string{
		"models/resnet8.onnx":     "models/resnet8.onnx",
		"ünïcode näme.onnx":       "ünïcode näme.onnx",
		"\x1b[2J\x1b[31mred.onnx": `\x1b[2J\x1b[31mred.onnx`,
		"over\rwrite.onnx":        `over\rwrite.onnx`,
		"bell\a\x7f.onnx":         `bell\a\x7f.onnx`,
		"line\nbreak.onnx":        `line\nbreak.onnx`,
		"bidi\u202eoverride.onnx": `bidi\u202eoverride.onnx`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTheTableShowsNamesEscaped(t *testing.T) {
	var b strings.Builder
	Table(&b, []report.Outcome{{Input: "\x1b[2Jevil.onnx", Result: report.ResultConverted}}, time.Second, Options{})
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), `\x1b[2Jevil.onnx`) {
		t.Errorf("table:\n%q", b.String())
	}
}
