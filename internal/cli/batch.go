package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/internal/progress"
	"github.com/onnx2pt/onnx2pt/onnxfile"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/pyembed"
	"github.com/onnx2pt/onnx2pt/python"
	"github.com/onnx2pt/onnx2pt/report"
	"github.com/onnx2pt/onnx2pt/supervisor"
	"github.com/onnx2pt/onnx2pt/venv"
)

// stopGrace is how long an interrupted worker may take to stop the model
// under way before it is killed: Python stops within milliseconds, a long
// native call never does.
const stopGrace = 800 * time.Millisecond

// convertAll converts every model of this shard that is not up to date, in
// supervised workers, and reports the outcomes. When all are up to date,
// no worker starts.
func (a *app) convertAll(cmd *cobra.Command, cfg *config.Config, failFast, force bool) error {
	ctx := cmd.Context()
	start := time.Now()
	shard, _ := config.ParseShard(cfg.Run.Shard) // validated
	models := shard.Select(cfg.Models)
	if shard != nil {
		a.log.Infof("Shard %d/%d: %d of %d models", shard.Index, shard.Count, len(models), len(cfg.Models))
	}
	// Before any work: a summary that cannot be written would be lost at
	// the end of the batch.
	if err := summaryFolders(cfg); err != nil {
		return withCode(exitUsage, err)
	}
	env, err := a.provision(ctx, cfg)
	if err != nil {
		return err
	}

	if n := supervisor.SweepWorkerTemps(); n > 0 {
		a.log.Debugf("Removed %d temporary folders of workers that were killed", n)
	}
	outcomes := make([]report.Outcome, len(models))
	var tasks []supervisor.Task
	var taskIndex []int // tasks[k] is models[taskIndex[k]]
	for i, m := range models {
		// A run killed while it published m is rolled back first.
		if err := convert.RecoverStale(m); err != nil {
			a.log.WithField("model", m.Input).Warnf("Cleaning up after an earlier run: %v", err)
		}
		if !force && a.upToDate(cfg.Job(m), env.ID) {
			outcomes[i] = report.Outcome{Input: m.Input, Output: m.Output, Result: report.ResultUpToDate, Report: m.Paths().Report}
			continue
		}
		// What is plainly not an ONNX model fails here, without a worker
		// (which takes seconds to start) and in the words Python would use.
		if _, err := onnxfile.Read(m.Input); errors.Is(err, onnxfile.ErrNotONNX) {
			outcomes[i] = a.rejected(m, start, err)
			if len(models) > 1 { // one model's error is the run's last line
				a.log.WithField("model", m.Input).Error(outcomes[i].Reason)
			}
			continue
		}
		tasks = append(tasks, cfg.Job(m))
		taskIndex = append(taskIndex, i)
	}
	if failFast && slices.ContainsFunc(outcomes, func(o report.Outcome) bool { return o.Result.Failed() }) {
		tasks, taskIndex = nil, nil
		for i, m := range models {
			if outcomes[i].Result == "" {
				outcomes[i] = report.Outcome{Input: m.Input, Output: m.Output, Result: report.ResultNotRun, Reason: "an earlier model failed (--fail-fast)"}
			}
		}
	}

	jobs := cfg.Run.Jobs
	newSummary := func(outcomes []report.Outcome) *report.Summary {
		s := &report.Summary{Tool: report.Tool{Name: "onnx2pt", Version: toolVersion(), GoVersion: runtime.Version(),
			LinkedPython: pyembed.LinkedVersion(), HelperVersion: python.Version()},
			StartedAt: start.UTC(), Seconds: time.Since(start).Seconds(), Jobs: jobs, Models: outcomes}
		if shard != nil {
			s.Shard = &report.Shard{Index: shard.Index, Count: shard.Count}
		}
		return s
	}
	var runErr error
	var view *batchView
	if len(tasks) > 0 {
		if jobs == 0 {
			jobs = a.defaultJobs(env, tasks)
		}
		jobs = min(jobs, len(tasks))
		progress := &partialSummary{path: cfg.Run.Summary, outcomes: slices.Clone(outcomes), newSummary: newSummary}
		var done []report.Outcome
		done, view, runErr = a.supervise(cmd, cfg, env, tasks, jobs, failFast, func(k int, o report.Outcome) {
			progress.finished(taskIndex[k], o)
		})
		progress.stop()
		for k, t := range tasks {
			o := report.Outcome{Input: t.Model.Input, Output: t.Model.Output, Result: report.ResultNotRun, Reason: "no worker could start"}
			if done != nil {
				o = done[k]
			}
			outcomes[taskIndex[k]] = o
		}
	}
	if view != nil { // the table and counts cover every model, up to date or not
		view.finish(outcomes, time.Since(start))
	}

	writeErr := a.writeSummaries(cfg, newSummary(outcomes))
	supervisor.RememberPeaks(env.Dir, outcomes)

	switch {
	case errors.Is(runErr, supervisor.ErrWorkerStart):
		return withCode(exitEnvironment, runErr)
	case runErr != nil: // before any worker started
		return runErr
	case ctx.Err() != nil:
		return withCode(exitInterrupted, interruptedError(outcomes))
	}
	if err := batchError(outcomes); err != nil {
		return err
	}
	if writeErr != nil {
		return withCode(exitFailed, writeErr)
	}
	return nil
}

// rejected is the outcome of a model whose input is not an ONNX model at
// all, with its failure report written as a worker would.
func (a *app) rejected(m config.Model, start time.Time, err error) report.Outcome {
	o := report.Outcome{Input: m.Input, Output: m.Output, Result: report.ResultFailed, Stage: "load",
		Reason: fmt.Sprintf("%s: %v", m.Input, err)}
	rep := &report.Report{StartedAt: start.UTC(), Status: report.StatusFailed,
		Failure: &report.Failure{Stage: o.Stage, Message: o.Reason}, Source: report.Source{Path: m.Input}}
	rep.Output.Path = m.Output
	if werr := report.Write(m.Paths().FailedReport, rep); werr == nil {
		o.Report = m.Paths().FailedReport
	}
	return o
}

// upToDate tells whether m's outputs match its input, logging it if so.
func (a *app) upToDate(j config.Job, envID string) bool {
	m := j.Model
	log := a.log.WithField("model", m.Input)
	fresh, why := convert.UpToDate(j, envID)
	if !fresh {
		log.Debugf("Converting %s: %s", m.Input, why)
		return false
	}
	log.Infof("Up to date: %s (--force converts it again)", m.Output)
	return true
}

// supervise runs the tasks in jobs workers, showing progress on a terminal
// and logs elsewhere.
func (a *app) supervise(cmd *cobra.Command, cfg *config.Config, env *venv.Env, tasks []supervisor.Task, jobs int, failFast bool,
	finished func(int, report.Outcome)) ([]report.Outcome, *batchView, error) {
	helpers, err := python.Install(filepath.Join(env.Dir, "onnx2pt"))
	if err != nil {
		return nil, nil, withCode(exitEnvironment, err)
	}
	if err := python.Expose(env.Dir, helpers); err != nil {
		a.log.Warnf("The venv's python will not load checkpoints that use onnx2pt's converters: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, withCode(exitEnvironment, err)
	}
	maxRSS, _ := cfg.Run.MaxWorkerBytes() // validated
	opts := supervisor.Options{
		Command: func() *exec.Cmd { return workerCommand(self, jobs) },
		Start: protocol.Start{Venv: env.Dir, EnvID: env.ID, Helpers: helpers, LogLevel: a.log.GetLevel().String(),
			Portable: slices.ContainsFunc(tasks, wantsPortable), Converters: cfg.Converters},
		Jobs:      jobs,
		Timeout:   cfg.Run.Timeout,
		MaxModels: cfg.Run.MaxModelsPerWorker,
		MaxRSS:    maxRSS,
		Grace:     stopGrace,
		FailFast:  failFast,
		Log:       a.log,
	}
	view := a.newBatchView(tasks, jobs)
	view.finished = finished
	a.log.Debugf("Converting %d models with %d workers", len(tasks), jobs)
	outcomes, err := supervisor.Run(cmd.Context(), opts, tasks, view)
	return outcomes, view, err
}

// workerCommand starts a worker. With several workers, each gets its share
// of the cores for torch's and onnxruntime's thread pools (unless
// OMP_NUM_THREADS says otherwise): by default each would use every core,
// and N workers would fight over them.
func workerCommand(self string, jobs int) *exec.Cmd {
	cmd := exec.Command(self, "worker")
	cmd.Env = os.Environ()
	if _, set := os.LookupEnv("OMP_NUM_THREADS"); !set && jobs > 1 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("OMP_NUM_THREADS=%d", max(1, runtime.NumCPU()/jobs)))
	}
	return cmd
}

func wantsPortable(t supervisor.Task) bool {
	return slices.ContainsFunc(t.Artifacts.Formats, config.Portable)
}

// batchError is the error a batch ends with: nil when no model failed, the
// model's own message when it was the only one, a count otherwise, with the
// failed model's message when one failed (beside models up to date, no
// table says which).
func batchError(outcomes []report.Outcome) error {
	var failed []report.Outcome
	notRun := 0
	for _, o := range outcomes {
		if o.Result.Failed() {
			failed = append(failed, o)
		}
		if o.Result == report.ResultNotRun {
			notRun++
		}
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(outcomes) == 1:
		return withCode(exitFailed, errors.New(oneLine(failed[0])))
	}
	msg := fmt.Sprintf("%d of %d models failed", len(failed), len(outcomes))
	if notRun > 0 {
		msg += fmt.Sprintf(", %d not converted (--fail-fast)", notRun)
	}
	if len(failed) == 1 {
		msg += ": " + oneLine(failed[0])
	}
	return withCode(exitFailed, errors.New(msg))
}

// interruptedError says what an interrupted batch did: the models that
// finished (one may finish publishing after the interrupt) are whole, the
// others wrote nothing.
func interruptedError(outcomes []report.Outcome) error {
	converted := 0
	for _, o := range outcomes {
		if o.Result == report.ResultConverted {
			converted++
		}
	}
	if converted == 0 {
		return errors.New("interrupted; models under way were stopped and nothing of theirs was written")
	}
	return fmt.Errorf("interrupted after %d of %d models were converted; models under way were stopped and nothing of theirs was written",
		converted, len(outcomes))
}

// oneLine says what happened to a model that did not convert.
func oneLine(o report.Outcome) string {
	switch o.Result {
	case report.ResultCrashed, report.ResultTimedOut:
		return fmt.Sprintf("%s: %s", o.Input, o.Reason)
	}
	return o.Reason
}

// summaryFolders makes the folders --summary and --junit write into, as
// -o dir/ does for models.
func summaryFolders(cfg *config.Config) error {
	for _, out := range []struct{ flag, path string }{{"--summary", cfg.Run.Summary}, {"--junit", cfg.Run.JUnit}} {
		if out.path == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(out.path), 0o755); err != nil {
			return fmt.Errorf("%s %s: cannot create its folder: %w", out.flag, out.path, err)
		}
	}
	return nil
}

// writeSummaries writes --summary and --junit, when asked for; the first
// failure is returned (the batch then exits non-zero), after trying both.
func (a *app) writeSummaries(cfg *config.Config, s *report.Summary) error {
	var first error
	for _, out := range []struct {
		path  string
		write func(string, *report.Summary) error
	}{{cfg.Run.Summary, report.WriteSummary}, {cfg.Run.JUnit, report.WriteJUnit}} {
		if out.path == "" {
			continue
		}
		if err := out.write(out.path, s); err != nil {
			a.log.Errorf("Writing %s: %v", out.path, err)
			if first == nil {
				first = fmt.Errorf("%s was not written: %w", out.path, err)
			}
			continue
		}
		a.log.Debugf("Wrote %s", out.path)
	}
	return first
}

// defaultJobs is as many workers as there are cores, as fit in the memory
// available (the machine's or its cgroup's), and as there are models.
func (a *app) defaultJobs(env *venv.Env, tasks []supervisor.Task) int {
	e := supervisor.EstimateJobs(runtime.NumCPU(), env.Dir, tasks, slices.ContainsFunc(tasks, wantsPortable))
	a.log.Debug(e.String())
	return e.Jobs
}

// batchView shows a batch as it goes: a live display on a terminal, log
// lines elsewhere. Each model's log lines come out together: the first
// unfinished model's stream live, each other model's come out as soon as
// it finishes, so what has finished is never held back behind a slow model.
type batchView struct {
	a       *app
	tasks   []supervisor.Task
	display *progress.Batch // nil when not on a terminal
	logs    logrus.FieldLogger
	// finished, when set, hears each outcome as it comes.
	finished func(int, report.Outcome)

	mu       sync.Mutex
	head     int // the first unfinished model, whose lines stream
	held     map[int][]func()
	done     map[int]bool
	starting map[int]time.Time // models waiting for a worker to start
}

func (a *app) newBatchView(tasks []supervisor.Task, jobs int) *batchView {
	v := &batchView{a: a, tasks: tasks, logs: a.log, held: map[int][]func(){}, done: map[int]bool{}, starting: map[int]time.Time{}}
	if len(tasks) > 1 && progress.IsTerminal(a.stderr) && a.v.GetString("log.format") != "json" {
		v.display = progress.NewBatch(a.stderr, len(tasks), progress.Options{Color: colorWanted()})
		a.log.SetOutput(v.display.Writer())
	}
	return v
}

// Starting shows that model i waits for a worker to start: on the "now:"
// line with the time it has taken, or as a log line.
func (v *batchView) Starting(i int) {
	if v.display != nil {
		v.display.Starting(v.tasks[i].Model.Input)
		return
	}
	v.mu.Lock()
	v.starting[i] = time.Now()
	v.mu.Unlock()
	v.logs.WithField("model", v.tasks[i].Model.Input).Info("Starting a worker: Python, importing torch (a few seconds)...")
}

func (v *batchView) Started(i int) {
	if v.display != nil {
		v.display.Started(v.tasks[i].Model.Input)
		return
	}
	v.mu.Lock()
	since, ok := v.starting[i]
	delete(v.starting, i)
	v.mu.Unlock()
	if ok {
		v.logs.WithField("model", v.tasks[i].Model.Input).Infof("Worker ready in %.1fs", time.Since(since).Seconds())
	}
}

func (v *batchView) Log(i int, l protocol.Log) {
	lvl, _ := logrus.ParseLevel(l.Level)
	// On a terminal the display replaces the models' info lines.
	if v.display != nil && !v.a.verbose && lvl > logrus.WarnLevel {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f := func() { supervisor.Emit(v.logs, l) }
	if i == v.head {
		f()
		return
	}
	v.held[i] = append(v.held[i], f)
}

func (v *batchView) Finished(i int, o report.Outcome) {
	if v.display != nil {
		v.display.Finished(o)
	}
	if v.finished != nil {
		v.finished(i, o)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, f := range v.held[i] {
		f()
	}
	delete(v.held, i)
	v.logOutcome(o)
	v.done[i] = true
	if i != v.head {
		return
	}
	// The next unfinished model streams from now on, after what it held.
	for v.done[v.head] {
		v.head++
	}
	for _, f := range v.held[v.head] {
		f()
	}
	delete(v.held, v.head)
}

// logOutcome logs what happened to a model that did not convert.
func (v *batchView) logOutcome(o report.Outcome) {
	log := v.logs.WithField("model", o.Input)
	switch o.Result {
	case report.ResultFailed:
		if len(v.tasks) > 1 {
			log.Error(o.Reason)
		}
	case report.ResultCrashed, report.ResultTimedOut:
		if o.Signal != "" {
			log = log.WithField("signal", o.Signal)
		}
		log.Error(oneLine(o))
		for _, line := range o.LastLines {
			log.Warnf("  | %s", line)
		}
	}
}

// partialSummary rewrites --summary as models finish, so that a batch that
// is killed leaves what it finished on record.
type partialSummary struct {
	path       string
	newSummary func([]report.Outcome) *report.Summary

	mu       sync.Mutex
	outcomes []report.Outcome // up to date from the start; others as they finish
	written  time.Time
	flush    *time.Timer // a rewrite due, if any
	stopped  bool
}

// minRewrite spaces the rewrites: a batch of thousands of small models
// must not spend its time rewriting a summary of thousands.
const minRewrite = time.Second

func (p *partialSummary) finished(i int, o report.Outcome) {
	if p.path == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outcomes[i] = o
	if wait := minRewrite - time.Since(p.written); wait > 0 {
		if p.flush == nil { // one rewrite soon carries this and what follows
			p.flush = time.AfterFunc(wait, func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				p.write()
			})
		}
		return
	}
	p.write()
}

// write rewrites the summary with the models finished so far; p.mu is held.
func (p *partialSummary) write() {
	p.flush, p.written = nil, time.Now()
	if p.stopped {
		return
	}
	var finished []report.Outcome
	for _, o := range p.outcomes {
		if o.Result != "" {
			finished = append(finished, o)
		}
	}
	s := p.newSummary(finished)
	s.InProgress, s.Pending = true, len(p.outcomes)-len(finished)
	report.WriteSummary(p.path, s) // best effort: the final write reports failures
}

// stop ends the rewrites before the final summary is written.
func (p *partialSummary) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.flush != nil {
		p.flush.Stop()
	}
}

// finish ends the display and shows the outcome of the whole batch.
func (v *batchView) finish(outcomes []report.Outcome, took time.Duration) {
	if v.display != nil {
		v.display.Stop()
		v.a.log.SetOutput(v.a.stderr)
		progress.Table(v.a.stderr, outcomes, took, progress.Options{Color: colorWanted()})
		return
	}
	missing := report.MissingArtifacts(outcomes)
	if len(outcomes) < 2 {
		if missing > 0 { // the last line says so, not only a warning above
			for _, a := range outcomes[0].ArtifactsMissing {
				v.a.log.WithField("artifact", a.Format).Warnf("Converted, but the %s artifact was not written: %s", a.Format, a.Reason)
			}
		}
		return
	}
	counts := map[report.Result]int{}
	for _, o := range outcomes {
		counts[o.Result]++
	}
	for _, o := range outcomes {
		entry := v.a.log.WithFields(logrus.Fields{"model": o.Input, "seconds": fmt.Sprintf("%.2f", o.Seconds)})
		switch {
		case o.Result == report.ResultConverted && len(o.ArtifactsMissing) > 0:
			for _, a := range o.ArtifactsMissing {
				entry.Warnf("  ok        %s → %s, without its %s artifact: %s", o.Input, o.Output, a.Format, a.Reason)
			}
		case o.Result == report.ResultConverted:
			entry.Infof("  ok        %s → %s", o.Input, o.Output)
		default:
			entry.Warnf("  %-9s %s", strings.ReplaceAll(string(o.Result), "_", " "), o.Input)
		}
	}
	line := fmt.Sprintf("Converted %d of %d models in %.1fs", counts[report.ResultConverted], len(outcomes), took.Seconds())
	if missing > 0 {
		v.a.log.Warnf("%s; %d portable artifacts were not written (above)", line, missing)
		return
	}
	v.a.log.Info(line)
}

// colorWanted is false when NO_COLOR is set (https://no-color.org).
func colorWanted() bool {
	_, no := os.LookupEnv("NO_COLOR")
	return !no
}
