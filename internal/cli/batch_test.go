package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/report"
	"github.com/onnx2pt/onnx2pt/supervisor"
)

// Parallel workers finish in any order; the log must not.
func TestBatchLogsFollowTheConfigOrder(t *testing.T) {
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
	if strings.Join(got, " ") != "a1 a2 b1 b2 c1" {
		t.Errorf("log order %v, want a1 a2 b1 b2 c1:\n%s", got, stderr.String())
	}
}
