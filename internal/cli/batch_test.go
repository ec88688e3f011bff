package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/report"
	"github.com/onnx2pt/onnx2pt/supervisor"
)

// Parallel workers finish in any order: each model's lines come out
// together, the first model's live, every other's as soon as it finishes
// (never held back behind a slow first model).
func TestBatchLogsComeOutPerModelAsEachFinishes(t *testing.T) {
	var stderr bytes.Buffer
	a := newApp(&bytes.Buffer{}, &stderr)
	a.log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableColors: true})
	tasks := []supervisor.Task{{Model: config.Model{Input: "a.onnx"}}, {Model: config.Model{Input: "b.onnx"}}, {Model: config.Model{Input: "c.onnx"}}}
	v := a.newBatchView(tasks, 3)
	log := func(i int, msg string) { v.Log(i, protocol.Log{ID: i, Level: "info", Message: msg}) }
	done := func(i int) {
		v.Finished(i, report.Outcome{Input: tasks[i].Model.Input, Result: report.ResultConverted})
	}
	v.Started(0)
	v.Started(1)
	v.Started(2)
	log(2, "c1")
	log(1, "b1")
	log(0, "a1") // the head streams at once
	done(2)
	log(1, "b2")
	done(1)
	log(0, "a2")
	done(0)
	var got []string
	for _, m := range regexp.MustCompile(`msg=(\w\d)`).FindAllStringSubmatch(stderr.String(), -1) {
		got = append(got, m[1])
	}
	if strings.Join(got, " ") != "a1 c1 b1 b2 a2" {
		t.Errorf("log order %v, want a1 c1 b1 b2 a2:\n%s", got, stderr.String())
	}
}

func TestTheSummaryIsRewrittenAsModelsFinish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.json")
	p := &partialSummary{path: path, outcomes: make([]report.Outcome, 3),
		newSummary: func(o []report.Outcome) *report.Summary { return &report.Summary{Models: o} }}
	read := func() report.Summary {
		t.Helper()
		var s report.Summary
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &s)
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	p.finished(1, report.Outcome{Input: "b.onnx", Result: report.ResultConverted})
	if s := read(); !s.InProgress || s.Pending != 2 || len(s.Models) != 1 || s.Models[0].Input != "b.onnx" {
		t.Fatalf("after the first model: %+v", s)
	}
	// The next one within a second is written a second later, unasked.
	p.finished(0, report.Outcome{Input: "a.onnx", Result: report.ResultFailed})
	if s := read(); len(s.Models) != 1 {
		t.Fatalf("rewritten at once: %+v", s)
	}
	time.Sleep(minRewrite + 200*time.Millisecond)
	if s := read(); s.Pending != 1 || len(s.Models) != 2 || s.Models[0].Input != "a.onnx" {
		t.Fatalf("a second later: %+v", s)
	}
	p.stop()
}
