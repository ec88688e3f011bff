package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/protocol"
	"github.com/onnx2pt/onnx2pt/report"
	workerside "github.com/onnx2pt/onnx2pt/worker"
)

// The test binary doubles as a worker (worker.Serve over a fake converter)
// when this variable is set, so the supervisor is tested against real
// processes that really crash and hang, without Python.
const fakeWorkerEnv = "ONNX2PT_FAKE_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeWorkerEnv) != "" {
		ctx, stop := signalContext()
		defer stop()
		err := workerside.Serve(ctx, os.NewFile(protocol.RequestFD, "req"), os.NewFile(protocol.MessageFD, "msg"), openFake)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// fake converts by the model's name: "ok*" converts, "fail*" fails, "abort*"
// kills its process with SIGABRT, "hang*" never returns, "slow*" takes a
// second unless interrupted, "publish*" spends 1.5 s publishing, which
// nothing interrupts, after "wait" milliseconds (publish-wait2500), and
// "sigterm*" is sent SIGTERM from outside and then is like slow.
type fake struct {
	log     logrus.FieldLogger
	onStage func(string)
}

func openFake(ctx context.Context, _ protocol.Start, log logrus.FieldLogger, onStage func(string)) (workerside.Converter, map[string]string, error) {
	return fake{log, onStage}, map[string]string{"fake": "1"}, nil
}

func (f fake) Convert(ctx context.Context, j config.Job) (*report.Report, error) {
	m := j.Model
	f.log.WithField("model", m.Input).Infof("converting %s", m.Input)
	switch {
	case strings.HasPrefix(m.Input, "fail"):
		return nil, fmt.Errorf("%s: cannot", m.Input)
	case strings.HasPrefix(m.Input, "abort"):
		syscall.Kill(os.Getpid(), syscall.SIGABRT)
		time.Sleep(time.Minute)
	case strings.HasPrefix(m.Input, "hang"):
		// Not interruptible, like a long native call.
		time.Sleep(time.Hour)
	case strings.HasPrefix(m.Input, "publish"):
		var wait int
		fmt.Sscanf(strings.TrimPrefix(m.Input, "publish-wait"), "%d", &wait)
		time.Sleep(time.Duration(wait) * time.Millisecond)
		f.onStage(convert.StagePublish)
		time.Sleep(1500 * time.Millisecond)
	case strings.HasPrefix(m.Input, "sigterm"):
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		<-ctx.Done()
		return nil, ctx.Err()
	case strings.HasPrefix(m.Input, "slow"):
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return &report.Report{Status: report.StatusConverted}, nil
}

func fakeOptions(jobs int) Options {
	self, _ := os.Executable()
	return Options{
		Command: func() *exec.Cmd {
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), fakeWorkerEnv+"=1")
			return cmd
		},
		Jobs: jobs, Timeout: 3 * time.Second, Grace: 300 * time.Millisecond,
		Log: logrus.New(),
	}
}

func tasks(names ...string) []Task {
	var out []Task
	for _, n := range names {
		out = append(out, Task{Model: config.Model{Input: n, Output: os.TempDir() + "/" + n + ".pt"}})
	}
	return out
}

// events records what the supervisor reports.
type events struct {
	mu       sync.Mutex
	started  []int
	logs     map[int][]string
	finished map[int]report.Outcome
}

func newEvents() *events {
	return &events{logs: map[int][]string{}, finished: map[int]report.Outcome{}}
}

func (e *events) Starting(i int) {}
func (e *events) Started(i int)  { e.mu.Lock(); e.started = append(e.started, i); e.mu.Unlock() }
func (e *events) Log(i int, l protocol.Log) {
	e.mu.Lock()
	e.logs[i] = append(e.logs[i], l.Message)
	e.mu.Unlock()
}
func (e *events) Finished(i int, o report.Outcome) { e.mu.Lock(); e.finished[i] = o; e.mu.Unlock() }

func results(outcomes []report.Outcome) []report.Result {
	var out []report.Result
	for _, o := range outcomes {
		out = append(out, o.Result)
	}
	return out
}

func TestCrashesAndHangsCostOneModelEach(t *testing.T) {
	ev := newEvents()
	out, err := Run(context.Background(), fakeOptions(2), tasks("ok1", "abort", "ok2", "hang", "fail", "ok3"), ev)
	if err != nil {
		t.Fatal(err)
	}
	want := []report.Result{report.ResultConverted, report.ResultCrashed, report.ResultConverted,
		report.ResultTimedOut, report.ResultFailed, report.ResultConverted}
	if fmt.Sprint(results(out)) != fmt.Sprint(want) {
		t.Fatalf("results %v, want %v", results(out), want)
	}
	if out[1].Signal != "SIGABRT" {
		t.Errorf("crash signal %q, want SIGABRT (%s)", out[1].Signal, out[1].Reason)
	}
	if out[4].Reason != "fail: cannot" {
		t.Errorf("failure reason %q", out[4].Reason)
	}
	for i, o := range out {
		if ev.finished[i].Result != o.Result {
			t.Errorf("task %d: event %v, outcome %v", i, ev.finished[i].Result, o.Result)
		}
		if len(ev.logs[i]) == 0 || ev.logs[i][0] != "converting "+o.Input {
			t.Errorf("task %d: logs %q", i, ev.logs[i])
		}
	}
}

func TestRecyclingAfterNModels(t *testing.T) {
	opts := fakeOptions(1)
	opts.MaxModels = 2
	var buf strings.Builder
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetLevel(logrus.DebugLevel)
	opts.Log = log
	out, err := Run(context.Background(), opts, tasks("ok1", "ok2", "ok3", "ok4", "ok5"), newEvents())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.Result != report.ResultConverted {
			t.Errorf("%s: %s", o.Input, o.Result)
		}
	}
	if n := strings.Count(buf.String(), "Recycling worker"); n != 2 {
		t.Errorf("recycled %d times, want 2 (after models 2 and 4):\n%s", n, buf.String())
	}
}

func TestFailFastStartsNoMoreModels(t *testing.T) {
	opts := fakeOptions(1)
	opts.FailFast = true
	out, _ := Run(context.Background(), opts, tasks("ok1", "fail", "ok2"), newEvents())
	want := []report.Result{report.ResultConverted, report.ResultFailed, report.ResultNotRun}
	if fmt.Sprint(results(out)) != fmt.Sprint(want) {
		t.Errorf("results %v, want %v", results(out), want)
	}
}

func TestInterruptStopsWorkersWithinTheGrace(t *testing.T) {
	for _, name := range []string{"slow", "hang"} { // Python-like, then native-like
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			ev := newEvents()
			opts := fakeOptions(1)
			opts.Timeout = time.Minute
			done := make(chan []report.Outcome)
			go func() {
				out, _ := Run(ctx, opts, tasks(name, "ok"), ev)
				done <- out
			}()
			for {
				ev.mu.Lock()
				n := len(ev.logs[0])
				ev.mu.Unlock()
				if n > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			start := time.Now()
			cancel()
			out := <-done
			if took := time.Since(start); took > opts.Grace+time.Second {
				t.Errorf("stopping took %v (grace %v)", took, opts.Grace)
			}
			if out[0].Result != report.ResultNotRun || out[1].Result != report.ResultNotRun {
				t.Errorf("results %v, want not run", results(out))
			}
		})
	}
}

func TestAPublishUnderWayIsNotCut(t *testing.T) {
	t.Run("interrupt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		ev := newEvents()
		opts := fakeOptions(1)
		go func() {
			for {
				ev.mu.Lock()
				n := len(ev.logs[0])
				ev.mu.Unlock()
				if n > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // publishing: longer than the grace
			cancel()
		}()
		out, _ := Run(ctx, opts, tasks("publish", "ok"), ev)
		want := []report.Result{report.ResultConverted, report.ResultNotRun}
		if fmt.Sprint(results(out)) != fmt.Sprint(want) {
			t.Errorf("results %v (%s), want %v", results(out), out[0].Reason, want)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		opts := fakeOptions(1)
		opts.Timeout = 2 * time.Second // lands 0.5 s into the publish
		out, _ := Run(context.Background(), opts, tasks("publish-wait1500"), newEvents())
		if out[0].Result != report.ResultConverted {
			t.Errorf("result %v (%s), want converted", out[0].Result, out[0].Reason)
		}
	})
}

func TestASignalFromOutsideIsAFailure(t *testing.T) {
	opts := fakeOptions(1)
	out, _ := Run(context.Background(), opts, tasks("sigterm", "ok"), newEvents())
	want := []report.Result{report.ResultFailed, report.ResultConverted}
	if fmt.Sprint(results(out)) != fmt.Sprint(want) {
		t.Fatalf("results %v, want %v", results(out), want)
	}
	if !strings.Contains(out[0].Reason, "did not send") {
		t.Errorf("reason %q", out[0].Reason)
	}
}

func TestAResultThatCameWithTheTimeoutWins(t *testing.T) {
	w, err := startWorker(context.Background(), fakeOptions(1))
	if err != nil {
		t.Fatal(err)
	}
	w.send.Send(protocol.Message{Type: protocol.TypeConvert, Convert: &protocol.Convert{ID: 7, Job: tasks("ok")[0]}})
	// The result is in the pipe, unread, when the timeout kills the worker.
	time.Sleep(500 * time.Millisecond)
	res := w.killForResult()
	if res == nil || res.ID != 7 || res.Error != nil {
		t.Fatalf("result %+v, want model 7's", res)
	}
}

func TestAWorkerThatCannotStart(t *testing.T) {
	opts := fakeOptions(2)
	opts.Command = func() *exec.Cmd { return exec.Command("false") }
	out, err := Run(context.Background(), opts, tasks("ok1", "ok2", "ok3"), newEvents())
	if err == nil || !strings.Contains(err.Error(), "starting a conversion worker") {
		t.Errorf("error %v", err)
	}
	for _, o := range out {
		if o.Result != report.ResultNotRun || o.Reason != "no worker could start" {
			t.Errorf("%s: %s (%s)", o.Input, o.Result, o.Reason)
		}
	}
}

func TestDefaultJobs(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		cores      int
		avail, per int64
		want       int
	}{
		{8, 0, gib, 8},        // memory unknown: the cores
		{8, 64 * gib, gib, 8}, // plenty of memory
		{8, 3 * gib, gib, 3},  // memory-bound
		{2, gib / 2, gib, 1},  // never fewer than one
	} {
		if got := DefaultJobs(c.cores, c.avail, c.per); got != c.want {
			t.Errorf("DefaultJobs(%d, %d, %d) = %d, want %d", c.cores, c.avail, c.per, got, c.want)
		}
	}
}

func TestTailKeepsWhatCameBeforeACrashDump(t *testing.T) {
	tl := newTail()
	fmt.Fprint(tl, "loading\nconverting\nSIGSEGV: segmentation violation\nPC=0x1 m=0\ngoroutine 1 [running]:\n")
	if got := tl.crashSignal(); got != "SIGSEGV" {
		t.Errorf("signal %q", got)
	}
	if got := strings.Join(tl.last(10), "|"); got != "loading|converting|SIGSEGV: segmentation violation" {
		t.Errorf("lines %q", got)
	}
}

func TestTailWorkIsLinearInWhatTheWorkerPrints(t *testing.T) {
	// 8,000 short lines in one write: splitting them must not copy the rest
	// of the buffer once per line (that was 8,000 × ~200 KB of garbage, and
	// megabytes from native code stalled the supervisor for seconds).
	out := strings.Repeat("a line from native code\n", 8000)
	tl := newTail()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fmt.Fprint(tl, out)
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 20*uint64(len(out)) {
		t.Errorf("splitting %d bytes allocated %d bytes", len(out), allocated)
	}
	if got := tl.last(1); len(got) != 1 || got[0] != "a line from native code" {
		t.Errorf("last line %q", got)
	}
}
