package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/report"
)

// startTimeout bounds a worker's start: importing torch from a cold disk
// takes seconds, never minutes.
const startTimeout = 5 * time.Minute

// worker is one running worker process.
type worker struct {
	cmd   *exec.Cmd
	req   *os.File // its fd 3
	send  *protocol.Writer
	msgs  chan protocol.Message // from its fd 4; closed at the end
	done  chan struct{}         // closed once it has exited
	err   error                 // how it exited, once done is closed
	tail  *tail
	tmp   string // its TMPDIR, removed when it is gone
	ready protocol.Ready

	models int   // models converted so far
	rss    int64 // resident memory after the last model
}

// startWorker starts a worker and waits until its interpreter is warm.
func startWorker(ctx context.Context, opts Options) (*worker, error) {
	tmp, lock, err := newWorkerTemp()
	if err != nil {
		return nil, err
	}
	removeTemp := func() {
		lock.Close()
		os.RemoveAll(tmp)
	}
	w := &worker{cmd: opts.Command(), tail: newTail(), tmp: tmp,
		msgs: make(chan protocol.Message, 64), done: make(chan struct{})}
	cmd := w.cmd
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	// Its temporary files go where they are removed with it, even when it
	// is killed.
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = w.tail, w.tail
	// Its own process group: a Ctrl-C at the terminal reaches the
	// supervisor alone, which then stops the workers in its own way.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild holding stdout open must not keep Wait from returning.
	cmd.WaitDelay = time.Second
	reqR, reqW, err := os.Pipe()
	if err != nil {
		removeTemp()
		return nil, err
	}
	msgR, msgW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		removeTemp()
		return nil, err
	}
	// fds 3 and 4, and 5: the TMPDIR's lock, held while the worker lives.
	cmd.ExtraFiles = []*os.File{reqR, msgW, lock}
	err = cmd.Start()
	reqR.Close()
	msgW.Close()
	if err != nil {
		reqW.Close()
		msgR.Close()
		removeTemp()
		return nil, err
	}
	w.req, w.send = reqW, protocol.NewWriter(reqW)
	go w.read(msgR)
	go func() {
		w.err = cmd.Wait()
		removeTemp()
		close(w.done)
	}()

	w.send.Send(protocol.Message{Type: protocol.TypeStart, Start: &opts.Start})
	timeout := time.After(startTimeout)
	for {
		select {
		case m, ok := <-w.msgs:
			switch {
			case !ok:
				w.kill()
				return nil, fmt.Errorf("the worker exited (%s)%s", w.exitReason(), w.tail.lastLine())
			case m.Type == protocol.TypeReady && m.Ready != nil:
				w.ready = *m.Ready
				opts.Log.Debugf("Worker %d ready in %.2fs", w.ready.PID, w.ready.Seconds)
				return w, nil
			case m.Type == protocol.TypeFatal && m.Fatal != nil:
				w.kill()
				return nil, errors.New(m.Fatal.Message)
			case m.Type == protocol.TypeLog && m.Log != nil:
				Emit(opts.Log, *m.Log)
			}
		case <-timeout:
			w.kill()
			return nil, fmt.Errorf("the worker was not ready after %s", startTimeout)
		case <-ctx.Done():
			w.kill()
			return nil, ctx.Err()
		}
	}
}

// read passes the worker's messages on until its fd 4 ends.
func (w *worker) read(r io.ReadCloser) {
	defer close(w.msgs)
	defer r.Close()
	msgs := protocol.NewReader(r)
	for {
		m, err := msgs.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.tail.add("supervisor: " + err.Error())
			}
			return
		}
		if m.Type == protocol.TypeLog && m.Log != nil {
			w.tail.add(m.Log.Level + ": " + m.Log.Message)
		}
		w.msgs <- m
	}
}

func (w *worker) pid() int { return w.cmd.Process.Pid }

// publishLimit is how long a worker that is publishing a model (renaming
// its verified files into place) is given to finish before an interrupt or
// a timeout kills it: a publish cut short is rolled back, which costs the
// finished conversion.
const publishLimit = time.Minute

// convert has the worker convert task i and returns its outcome, and
// whether the worker can take another model.
func (s *supervisor) convert(ctx context.Context, w *worker, i int) (o report.Outcome, healthy bool) {
	t := s.tasks[i]
	o = report.Outcome{Input: t.Model.Input, Output: t.Model.Output}
	start := time.Now()
	defer func() { o.Seconds = time.Since(start).Seconds() }()
	w.tail.reset()
	w.send.Send(protocol.Message{Type: protocol.TypeConvert, Convert: &protocol.Convert{ID: i, Job: t}})

	var timeout, grace <-chan time.Time
	if s.opts.Timeout > 0 {
		timer := time.NewTimer(s.opts.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	stage := ""
	extended := false // a publish under way was given publishLimit to finish
	interrupted := ctx.Done()
	for {
		select {
		case m, ok := <-w.msgs:
			if !ok {
				// The worker is gone without a result (its pipe closed
				// as it died; kill makes sure and reaps it).
				if !w.wait(time.Second) {
					w.kill()
				}
				s.recover(i)
				if grace != nil {
					return s.interrupted(i, o), false
				}
				o.Result, o.Stage = report.ResultCrashed, stage
				o.Signal = w.signal()
				o.Reason = fmt.Sprintf("the worker died (%s)", w.exitReason())
				if stage != "" {
					o.Reason += " during " + stage
				}
				o.LastLines = w.tail.last(10)
				o.Report = s.writeFailedReport(i, o, start)
				return o, false
			}
			switch {
			case m.Type == protocol.TypeLog && m.Log != nil:
				s.ev.Log(i, *m.Log)
			case m.Type == protocol.TypeStage && m.Stage != nil:
				stage = m.Stage.Stage
			case m.Type == protocol.TypeResult && m.Result != nil:
				return s.result(i, w, o, m.Result, grace != nil)
			}
		case <-timeout:
			if stage == convert.StagePublish && !extended {
				// Verified and being put in place: let it finish.
				extended, timeout = true, time.After(publishLimit)
				continue
			}
			// A result may have come with the timeout: it wins, the
			// model is converted.
			if res := w.killForResult(); res != nil {
				return s.result(i, w, o, res, grace != nil)
			}
			s.recover(i)
			o.Result, o.Stage = report.ResultTimedOut, stage
			o.Reason = fmt.Sprintf("no result after %s; the worker was killed", s.opts.Timeout)
			if stage != "" {
				o.Reason = fmt.Sprintf("no result after %s in %s; the worker was killed", s.opts.Timeout, stage)
			}
			o.LastLines = w.tail.last(10)
			o.Report = s.writeFailedReport(i, o, start)
			return o, false
		case <-interrupted:
			// Ask the worker to stop the model; kill it if it cannot
			// within the grace period (a long native call), unless it is
			// publishing, which ends soon and must not be cut.
			interrupted = nil
			w.cmd.Process.Signal(os.Interrupt)
			grace = time.After(s.opts.Grace)
		case <-grace:
			if stage == convert.StagePublish && !extended {
				extended, grace = true, time.After(publishLimit)
				continue
			}
			if res := w.killForResult(); res != nil {
				return s.result(i, w, o, res, true)
			}
			s.recover(i)
			return s.interrupted(i, o), false
		}
	}
}

// result is the outcome of task i from its worker's result; stopping says
// whether the supervisor asked the worker to stop.
func (s *supervisor) result(i int, w *worker, o report.Outcome, r *protocol.Result, stopping bool) (report.Outcome, bool) {
	w.models++
	w.rss = r.RSSBytes
	o.PeakRSSBytes, o.CheckerPeakRSSBytes = r.PeakRSSBytes, r.ChildrenPeakRSSBytes
	if e := r.Error; e != nil && e.Interrupted {
		if stopping {
			return s.interrupted(i, o), false
		}
		// Someone else signalled the worker: the model did not finish
		// for a reason the batch did not choose, which is a failure.
		o.Result, o.Stage = report.ResultFailed, e.Stage
		o.Reason = o.Input + ": the worker was stopped by a SIGINT or SIGTERM that onnx2pt did not send; nothing was written"
		o.Report = s.writeFailedReport(i, o, time.Now())
		return o, false
	}
	if e := r.Error; e != nil && e.Detail != "" {
		// The traceback the error line points --verbose at.
		s.ev.Log(i, protocol.Log{ID: r.ID, Level: "debug", Message: "Python traceback:\n" + e.Detail})
	}
	fillFromResult(&o, r)
	return o, !w.exited()
}

// recover puts task i's outputs back in a whole state after its worker
// was killed or died.
func (s *supervisor) recover(i int) {
	if err := convert.Recover(s.tasks[i].Model); err != nil {
		s.opts.Log.Warnf("Cleaning up after %s: %v", s.tasks[i].Model.Input, err)
	}
}

// writeFailedReport writes the failure report of a model whose worker
// crashed or timed out, which could not write its own, and returns its
// path ("" if it could not be written).
func (s *supervisor) writeFailedReport(i int, o report.Outcome, start time.Time) string {
	m := s.tasks[i].Model
	rep := &report.Report{
		StartedAt: start.UTC(), Status: string(o.Result),
		Failure:      &report.Failure{Stage: o.Stage, Message: oneLineOf(o)},
		Source:       report.Source{Path: m.Input},
		TotalSeconds: time.Since(start).Seconds(),
	}
	rep.Output.Path = m.Output
	path := m.Paths().FailedReport
	if err := report.Write(path, rep); err != nil {
		s.opts.Log.Warnf("Writing the failure report %s: %v", path, err)
		return ""
	}
	return path
}

func oneLineOf(o report.Outcome) string {
	msg := o.Input + ": " + o.Reason
	if len(o.LastLines) > 0 {
		msg += "; last output: " + o.LastLines[len(o.LastLines)-1]
	}
	return msg
}

// interrupted is the outcome of a model an interrupt stopped.
func (s *supervisor) interrupted(i int, o report.Outcome) report.Outcome {
	o.Result, o.Reason = report.ResultNotRun, "interrupted"
	return o
}

// fillFromResult sets o from a worker's result.
func fillFromResult(o *report.Outcome, r *protocol.Result) {
	if rep := r.Report; rep != nil {
		o.Report = rep.Output.ReportPath
		o.MaxAbsDiff = rep.Verification.MaxAbsDiff()
		for _, a := range rep.Artifacts {
			if a.Error != "" {
				reason := a.Error
				if a.Node != "" {
					reason = "at " + a.Node + ": " + reason
				}
				o.ArtifactsMissing = append(o.ArtifactsMissing, report.MissingArtifact{Format: a.Format, Reason: reason})
			}
		}
	}
	o.Result = report.ResultConverted
	if e := r.Error; e != nil {
		o.Result, o.Stage, o.Reason, o.Report = report.ResultFailed, e.Stage, e.Message, e.FailedReport
	}
}

// kill ends the worker at once and waits for it.
func (w *worker) kill() {
	if !w.exited() {
		// The whole group: anything the worker started goes with it.
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	}
	w.req.Close()
	<-w.done
	w.drain()
}

// killForResult kills the worker and returns the result it sent before it
// died, if one was still in the pipe.
func (w *worker) killForResult() *protocol.Result {
	if !w.exited() {
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	}
	w.req.Close()
	<-w.done
	var res *protocol.Result
	for m := range w.msgs {
		if m.Type == protocol.TypeResult && m.Result != nil {
			res = m.Result
		}
	}
	return res
}

// close lets an idle worker exit on its own (the end of its requests),
// and kills it if it does not.
func (w *worker) close() {
	w.req.Close()
	if !w.wait(5 * time.Second) {
		w.kill()
	}
	w.drain()
}

// drain reads what is left of a dead worker's messages, so that its
// reading goroutine ends.
func (w *worker) drain() {
	for range w.msgs {
	}
}

// exited tells whether the worker process has ended.
func (w *worker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the worker to exit.
func (w *worker) wait(d time.Duration) bool {
	select {
	case <-w.done:
		return true
	case <-time.After(d):
		return false
	}
}

// goCrash matches the first line Go's runtime prints when a signal kills
// the process, as one raised in native code does: "SIGABRT: abort".
var goCrash = regexp.MustCompile(`^(SIG[A-Z0-9]+): `)

// signal names the signal that ended the worker, if one did.
func (w *worker) signal() string {
	if sig := w.tail.crashSignal(); sig != "" {
		return sig
	}
	var ee *exec.ExitError
	if errors.As(w.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return unix.SignalName(ws.Signal())
		}
	}
	return ""
}

// exitReason says how the worker ended, for messages.
func (w *worker) exitReason() string {
	select {
	case <-w.done:
	default:
		return "still running"
	}
	if sig := w.signal(); sig != "" {
		return "killed by " + sig
	}
	if w.err == nil {
		return "exit status 0"
	}
	return w.err.Error()
}

// tail keeps the last lines a worker printed or logged. Once the Go
// runtime starts its crash dump, it keeps the signal's name and no more:
// the lines before the dump are the ones that say what happened.
type tail struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	signal  string
}

const keepLines = 40

func newTail() *tail { return &tail{} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n') // not string(t.partial): a copy per line is quadratic
		if i < 0 {
			break
		}
		t.addLocked(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 4096 { // a very long line without an end
		t.addLocked(string(t.partial))
		t.partial = nil
	}
	return len(p), nil
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(line)
}

func (t *tail) addLocked(line string) {
	if t.signal != "" {
		return
	}
	if m := goCrash.FindStringSubmatch(line); m != nil {
		t.signal = m[1]
	}
	if line = strings.TrimRight(line, "\r "); line == "" {
		return
	}
	if t.lines = append(t.lines, line); len(t.lines) > keepLines {
		t.lines = t.lines[1:]
	}
}

// reset forgets the lines of earlier models.
func (t *tail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines, t.signal = nil, ""
}

func (t *tail) last(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) > n {
		return append([]string(nil), t.lines[len(t.lines)-n:]...)
	}
	return append([]string(nil), t.lines...)
}

func (t *tail) lastLine() string {
	if l := t.last(1); len(l) == 1 {
		return ": " + l[0]
	}
	return ""
}

func (t *tail) crashSignal() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.signal
}

// Emit logs a worker's log entry to log.
func Emit(log logrus.FieldLogger, l protocol.Log) {
	entry := log.WithFields(logrus.Fields(l.Fields))
	lvl, err := logrus.ParseLevel(l.Level)
	if err != nil {
		lvl = logrus.InfoLevel
	}
	switch lvl {
	case logrus.TraceLevel, logrus.DebugLevel:
		entry.Debug(l.Message)
	case logrus.InfoLevel:
		entry.Info(l.Message)
	case logrus.WarnLevel:
		entry.Warn(l.Message)
	default: // a worker's fatal or panic entry must not end the supervisor
		entry.Error(l.Message)
	}
}
