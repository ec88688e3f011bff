// Package worker is the worker side of the protocol: it hosts a conversion
// session (convert.Session) and answers a supervisor's requests with it,
// one model at a time. See package protocol for the conversation.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/report"
)

// Converter converts one model; convert.Session is the real one.
type Converter interface {
	Convert(ctx context.Context, j config.Job) (*report.Report, error)
}

// Opener starts the session a worker hosts, logging to log, and says how
// it went: versions for the Ready message, or an error for Fatal.
type Opener func(ctx context.Context, start protocol.Start, log logrus.FieldLogger, onStage func(string)) (Converter, map[string]string, error)

// orphanGrace is how long a worker whose supervisor is gone lets the model
// under way stop before it exits anyway.
const orphanGrace = 2 * time.Second

// Serve reads requests from in and writes messages to out until in ends or
// ctx is cancelled (SIGINT or SIGTERM); an interrupted model's result says
// so and the worker then stops. The error from open is returned when the
// session could not start, after Fatal was sent.
func Serve(ctx context.Context, in io.Reader, out io.Writer, open Opener) error {
	w := &server{out: protocol.NewWriter(out), current: -1}
	reqs := protocol.NewReader(in)
	first, err := reqs.Next()
	if err != nil || first.Type != protocol.TypeStart || first.Start == nil {
		return fmt.Errorf("worker: expected a start message first (%v)", err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	if lvl, err := logrus.ParseLevel(first.Start.LogLevel); err == nil {
		log.SetLevel(lvl)
	}
	log.AddHook(w)

	t := time.Now()
	conv, versions, err := open(ctx, *first.Start, log, w.stage)
	if err != nil {
		w.send(protocol.Message{Type: protocol.TypeFatal, Fatal: &protocol.Fatal{Message: err.Error()}})
		return err
	}
	w.send(protocol.Message{Type: protocol.TypeReady, Ready: &protocol.Ready{
		PID: os.Getpid(), Versions: versions, Seconds: time.Since(t).Seconds()}})

	// Requests are read apart from the work, so that the end of in is
	// seen while a model is under way: the supervisor is gone.
	requests := make(chan protocol.Message)
	modelCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(requests)
		for {
			m, err := reqs.Next()
			if err != nil {
				if w.busy() {
					cancel()
					time.AfterFunc(orphanGrace, func() {
						convert.HoldPublishing()
						RemoveOwnTemp()
						// With whatever it started (it leads its group).
						syscall.Kill(-os.Getpid(), syscall.SIGKILL)
						os.Exit(1)
					})
				}
				return
			}
			requests <- m
		}
	}()

	for {
		var req protocol.Message
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case req, ok = <-requests:
		}
		if !ok {
			return nil
		}
		if req.Type != protocol.TypeConvert || req.Convert == nil {
			return fmt.Errorf("worker: unexpected %q request", req.Type)
		}
		res := w.convert(modelCtx, conv, req.Convert)
		w.send(protocol.Message{Type: protocol.TypeResult, Result: res})
		if ctx.Err() != nil || modelCtx.Err() != nil {
			return nil
		}
	}
}

// RemoveOwnTemp removes the worker's TMPDIR, when it is the one a
// supervisor made for it: for a worker whose supervisor is gone and will
// not remove it.
func RemoveOwnTemp() {
	dir := os.Getenv("TMPDIR")
	if strings.HasPrefix(filepath.Base(dir), protocol.TempPrefix) {
		os.RemoveAll(dir)
	}
}

// server is a worker's state: the model under way and the message stream.
type server struct {
	out     *protocol.Writer
	mu      sync.Mutex
	current int // the model under way, -1 when idle
}

func (w *server) busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current >= 0
}

func (w *server) convert(ctx context.Context, conv Converter, req *protocol.Convert) *protocol.Result {
	w.mu.Lock()
	w.current = req.ID
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.current = -1
		w.mu.Unlock()
	}()
	res := &protocol.Result{ID: req.ID}
	rep, err := conv.Convert(ctx, req.Job)
	res.RSSBytes, res.PeakRSSBytes = memory()
	// Its children (the artifact checker) count too: recycling the worker
	// frees them with it.
	var childRSS int64
	childRSS, res.ChildrenPeakRSSBytes = childrenMemory()
	res.RSSBytes += childRSS

	res.Report = rep // also a failed conversion's report, when it has one
	if err == nil {
		return res
	}
	e := &protocol.Error{Message: err.Error(), Interrupted: ctx.Err() != nil}
	var ce *convert.Error
	if errors.As(err, &ce) {
		e.Stage, e.Detail = ce.Stage, ce.Detail
	}
	if !e.Interrupted {
		if failed := req.Job.Model.Paths().FailedReport; fileExists(failed) {
			e.FailedReport = failed
		}
	}
	res.Error = e
	return res
}

// stage tells the supervisor which step the model under way entered.
func (w *server) stage(name string) {
	w.mu.Lock()
	id := w.current
	w.mu.Unlock()
	w.send(protocol.Message{Type: protocol.TypeStage, Stage: &protocol.Stage{ID: id, Stage: name}})
}

// Levels and Fire make the server a logrus hook that sends every entry to
// the supervisor, tagged with the model under way.
func (w *server) Levels() []logrus.Level { return logrus.AllLevels }

func (w *server) Fire(e *logrus.Entry) error {
	w.mu.Lock()
	id := w.current
	w.mu.Unlock()
	fields := make(map[string]any, len(e.Data))
	for k, v := range e.Data {
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		fields[k] = v
	}
	w.send(protocol.Message{Type: protocol.TypeLog, Log: &protocol.Log{
		ID: id, Level: e.Level.String(), Message: e.Message, Fields: fields}})
	return nil
}

// send writes a message; when the supervisor is gone there is no one to
// tell, and the end of the request pipe stops the worker.
func (w *server) send(m protocol.Message) { _ = w.out.Send(m) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
