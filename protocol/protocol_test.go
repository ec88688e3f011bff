package protocol

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

func TestLogFieldsKeepTheirNumbers(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	log := &Log{ID: 1, Level: "info", Message: "Parameters", Fields: map[string]any{"parameters": int64(11684712), "ratio": 0.25}}
	if err := w.Send(Message{Type: TypeLog, Log: log}); err != nil {
		t.Fatal(err)
	}
	m, err := NewReader(&buf).Next()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(m.Log.Fields["parameters"]); got != "11684712" {
		t.Errorf("parameters logged as %s", got)
	}
	if got := fmt.Sprint(m.Log.Fields["ratio"]); got != "0.25" {
		t.Errorf("ratio logged as %s", got)
	}
	if _, err := NewReader(&buf).Next(); err != io.EOF {
		t.Errorf("after the only message: %v", err)
	}
}
