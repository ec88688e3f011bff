// Package supervisor runs a batch of conversions in worker processes (see
// package protocol) and turns whatever happens to them into one outcome
// per model: a worker that crashes, hangs past the timeout or is
// interrupted costs its model, never the batch. Workers are kept warm from
// one model to the next and recycled after a number of models or above a
// memory limit, so memory stays bounded over long batches.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/report"
)

// Options says how to run workers.
type Options struct {
	// Command makes the command that starts one worker.
	Command func() *exec.Cmd
	// Start is sent to each worker first.
	Start protocol.Start
	// Jobs is how many workers convert at once.
	Jobs int
	// Timeout bounds one model's conversion; the worker is killed when it
	// runs out. Zero means no limit.
	Timeout time.Duration
	// MaxModels recycles a worker after that many models; zero never.
	MaxModels int
	// MaxRSS recycles a worker whose resident memory exceeds it after a
	// model; zero never.
	MaxRSS int64
	// Grace is how long a worker may take to stop after an interrupt
	// before it is killed.
	Grace time.Duration
	// FailFast starts no more models after the first one that fails.
	FailFast bool
	Log      logrus.FieldLogger
}

// Task is one model to convert.
type Task = config.Job

// Events hears what happens to each task, by its index. The methods are
// called from several goroutines, but those of one task in order:
// Starting when a worker must start for it first (importing torch takes
// seconds), then Started, then Log any number of times, then Finished.
type Events interface {
	Starting(i int)
	Started(i int)
	Log(i int, l protocol.Log)
	Finished(i int, o report.Outcome)
}

// ErrWorkerStart wraps the reason a worker could not start: the
// environment, not a model, is at fault.
var ErrWorkerStart = errors.New("starting a conversion worker")

// Run converts the tasks and returns their outcomes in the tasks' order.
// Tasks not started (interrupted, --fail-fast, or a worker that could not
// start) are ResultNotRun. The error is non-nil only when a worker could
// not start (wrapping ErrWorkerStart).
func Run(ctx context.Context, opts Options, tasks []Task, ev Events) ([]report.Outcome, error) {
	s := &supervisor{opts: opts, tasks: tasks, ev: ev, outcomes: make([]report.Outcome, len(tasks))}
	if s.opts.Log == nil {
		s.opts.Log = logrus.New()
	}
	jobs := min(max(opts.Jobs, 1), len(tasks))
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.slot(ctx)
		}()
	}
	wg.Wait()
	for i := s.next; i < len(tasks); i++ {
		reason := "an earlier model failed (--fail-fast)"
		switch {
		case ctx.Err() != nil:
			reason = "interrupted"
		case s.startErr != nil:
			reason = "no worker could start"
		}
		s.outcomes[i] = s.notRun(i, reason)
	}
	return s.outcomes, s.startErr
}

type supervisor struct {
	opts  Options
	tasks []Task
	ev    Events

	mu       sync.Mutex
	next     int  // the next task to hand out
	stopped  bool // --fail-fast hit a failure
	startErr error
	outcomes []report.Outcome
}

// take hands out the next task, if work is to go on.
func (s *supervisor) take(ctx context.Context) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil || s.stopped || s.startErr != nil || s.next >= len(s.tasks) {
		return 0, false
	}
	s.next++
	return s.next - 1, true
}

// slot runs tasks one after another in its worker, starting a fresh worker
// whenever the last one is gone.
func (s *supervisor) slot(ctx context.Context) {
	var w *worker
	defer func() {
		if w != nil {
			w.close()
		}
	}()
	for {
		i, ok := s.take(ctx)
		if !ok {
			return
		}
		if w != nil {
			if w.exited() { // died while idle (the OOM killer, say): not this model's doing
				s.opts.Log.Warnf("Worker %d exited between models (%s); starting another", w.pid(), w.exitReason())
				w.kill()
				w = nil
			} else if why := s.recycle(w); why != "" {
				s.opts.Log.Debugf("Recycling worker %d %s", w.pid(), why)
				w.close()
				w = nil
			}
		}
		if w == nil {
			s.ev.Starting(i)
			var err error
			if w, err = startWorker(ctx, s.opts); err != nil {
				s.mu.Lock()
				reason := "interrupted"
				if ctx.Err() == nil {
					reason = "no worker could start"
					if s.startErr == nil {
						s.startErr = fmt.Errorf("%w: %v", ErrWorkerStart, err)
					}
				}
				s.outcomes[i] = s.notRun(i, reason)
				s.mu.Unlock()
				s.ev.Finished(i, s.outcomes[i])
				return
			}
		}
		s.ev.Started(i)
		o, healthy := s.convert(ctx, w, i)
		s.mu.Lock()
		s.outcomes[i] = o
		if o.Result.Failed() && s.opts.FailFast {
			s.stopped = true
		}
		s.mu.Unlock()
		s.ev.Finished(i, o)
		if !healthy {
			w.kill()
			w = nil
		}
	}
}

// recycle says why w should be replaced, or "".
func (s *supervisor) recycle(w *worker) string {
	switch {
	case s.opts.MaxModels > 0 && w.models >= s.opts.MaxModels:
		return fmt.Sprintf("after %d models", w.models)
	case s.opts.MaxRSS > 0 && w.rss > s.opts.MaxRSS:
		return fmt.Sprintf("at %d MiB resident (limit %d MiB)", w.rss>>20, s.opts.MaxRSS>>20)
	}
	return ""
}

func (s *supervisor) notRun(i int, reason string) report.Outcome {
	m := s.tasks[i].Model
	return report.Outcome{Input: m.Input, Output: m.Output, Result: report.ResultNotRun, Reason: reason}
}
