package pyembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// ip is the one interpreter the tests share: CPython starts once a process.
var (
	ip       *Interpreter
	testVenv string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pyembed-test-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	venv := filepath.Join(dir, "venv")
	testVenv = venv
	// A bare venv is enough: these tests use only the standard library.
	out, err := exec.Command(BuildInterpreter(), "-m", "venv", "--without-pip", venv).CombinedOutput()
	if err != nil {
		panic("creating test venv: " + err.Error() + ": " + string(out))
	}
	testdata, _ := filepath.Abs("testdata")
	ip, err = Start(Options{Venv: venv, Path: []string{testdata}})
	if err != nil {
		panic(err)
	}
	defer ip.Close()
	return m.Run()
}

func testmod(t testing.TB) *Object {
	t.Helper()
	mod, err := ip.Import("pyembed_testmod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mod.Close)
	return mod
}

func TestRunsInTheVenv(t *testing.T) {
	sys, err := ip.Import("sys")
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	var prefix, base string
	for name, dst := range map[string]*string{"prefix": &prefix, "base_prefix": &base} {
		attr, err := sys.Attr(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := attr.Decode(dst); err != nil {
			t.Fatal(err)
		}
		attr.Close()
	}
	if !strings.HasPrefix(filepath.Base(filepath.Dir(prefix)), "pyembed-test-") || prefix == base {
		t.Errorf("sys.prefix = %q, base_prefix = %q; want the test venv", prefix, base)
	}
}

func TestRoundTripValues(t *testing.T) {
	mod := testmod(t)
	cases := []struct {
		in   any
		want any
	}{
		{nil, nil},
		{true, true},
		{int32(-7), int64(-7)},
		{uint8(200), int64(200)},
		{2.5, 2.5},
		{"héllo", "héllo"},
		{[]byte{0, 1, 2}, []byte{0, 1, 2}},
		{[]int{1, 2}, []any{int64(1), int64(2)}},
		{map[string]any{"a": []string{"x"}, "b": map[string]int{"c": 3}},
			map[string]any{"a": []any{"x"}, "b": map[string]any{"c": int64(3)}}},
	}
	for _, c := range cases {
		res, err := mod.CallMethod("echo", c.in)
		if err != nil {
			t.Fatalf("echo(%#v): %v", c.in, err)
		}
		got, err := res.Value()
		res.Close()
		if err != nil {
			t.Fatalf("echo(%#v): %v", c.in, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("echo(%#v) = %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestStructsBecomeDicts(t *testing.T) {
	mod := testmod(t)
	type spec struct {
		Name  string `json:"name"`
		Shape []any  `json:"shape"`
		Skip  string `json:"skip,omitempty"`
	}
	res, err := mod.CallMethod("echo", spec{Name: "x", Shape: []any{"batch", 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	got, err := res.Value()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "x", "shape": []any{"batch", int64(3)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestTuplesAndKwargs(t *testing.T) {
	mod := testmod(t)
	res, err := mod.CallMethod("echo", 1, "two", Kwargs{"three": 3.0})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var got struct {
		Args   []any          `json:"args"`
		Kwargs map[string]any `json:"kwargs"`
	}
	if err := res.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Args, []any{int64(1), "two"}) || got.Kwargs["three"] != 3.0 {
		t.Errorf("got %+v", got)
	}
}

func TestDecodeStruct(t *testing.T) {
	mod := testmod(t)
	res, err := mod.CallMethod("echo", map[string]any{"name": "x", "shape": []any{"batch", 3}, "count": 4})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var got struct {
		Name  string  `json:"name"`
		Shape []any   `json:"shape"`
		Count float64 `json:"count"`
	}
	if err := res.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "x" || got.Count != 4 || !reflect.DeepEqual(got.Shape, []any{"batch", int64(3)}) {
		t.Errorf("got %+v", got)
	}
}

func TestObjectsStayInPython(t *testing.T) {
	mod := testmod(t)
	box, err := mod.CallMethod("Box", 21)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	res, err := box.CallMethod("double")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var n int
	if err := res.Decode(&n); err != nil || n != 42 {
		t.Fatalf("Box(21).double() = %d, %v", n, err)
	}
	// An Object passed back in is the same Python object.
	same, err := mod.CallMethod("echo", box)
	if err != nil {
		t.Fatal(err)
	}
	defer same.Close()
	if same.ptr != box.ptr {
		t.Error("echo(box) returned a different object")
	}
}

func TestExceptionsBecomeErrors(t *testing.T) {
	mod := testmod(t)
	for _, c := range []struct{ fn, typ string }{
		{"fail", "ValueError"},
		{"fail_custom", "pyembed_testmod.CustomError"},
	} {
		_, err := mod.CallMethod(c.fn, "it broke")
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("%s: got %v, want *Error", c.fn, err)
		}
		if pe.Type != c.typ || pe.Message != "it broke" {
			t.Errorf("%s: got type %q message %q", c.fn, pe.Type, pe.Message)
		}
		if !strings.Contains(pe.Traceback, "pyembed_testmod.py") || !strings.Contains(pe.Traceback, "Traceback") {
			t.Errorf("%s: traceback lacks the raising frame:\n%s", c.fn, pe.Traceback)
		}
		if err.Error() != c.typ+": it broke" {
			t.Errorf("%s: Error() = %q", c.fn, err.Error())
		}
	}
	if _, err := ip.Import("no_such_module_here"); err == nil || !strings.Contains(err.Error(), "ModuleNotFoundError") {
		t.Errorf("import of a missing module: %v", err)
	}
	if _, err := mod.Attr("missing"); err == nil || !strings.Contains(err.Error(), "AttributeError") {
		t.Errorf("missing attribute: %v", err)
	}
}

func TestUnconvertibleValues(t *testing.T) {
	mod := testmod(t)
	for _, fn := range []string{"unconvertible", "huge"} {
		res, err := mod.CallMethod(fn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.Value(); err == nil {
			t.Errorf("%s(): converted without error", fn)
		}
		res.Close()
	}
	deep, err := mod.CallMethod("nested", maxDepth+5)
	if err != nil {
		t.Fatal(err)
	}
	defer deep.Close()
	if _, err := deep.Value(); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("deep nesting: %v", err)
	}
	if _, err := mod.CallMethod("echo", make(chan int)); err == nil {
		t.Error("a Go channel was passed to Python without error")
	}
	if _, err := mod.CallMethod("echo", map[int]int{1: 1}); err == nil {
		t.Error("a map with int keys was passed to Python without error")
	}
}

func TestReleasesReferences(t *testing.T) {
	mod := testmod(t)
	box, err := mod.CallMethod("Box", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	count := func() int64 {
		res, err := mod.CallMethod("refcount", box)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		var n int64
		if err := res.Decode(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for i := 0; i < 200; i++ {
		same, err := mod.CallMethod("echo", box) // success path
		if err != nil {
			t.Fatal(err)
		}
		same.Close()
		if _, err := mod.CallMethod("fail", box); err == nil { // error path
			t.Fatal("fail() did not fail")
		}
		v, err := box.Attr("value")
		if err != nil {
			t.Fatal(err)
		}
		v.Close()
	}
	if after := count(); after != before {
		t.Errorf("refcount of a Box went from %d to %d after 200 calls", before, after)
	}
}

func TestConcurrentCalls(t *testing.T) {
	mod := testmod(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				res, err := mod.CallMethod("echo", []int{g, i})
				if err != nil {
					errs <- err
					return
				}
				var got []int
				err = res.Decode(&got)
				res.Close()
				if err != nil || len(got) != 2 || got[0] != g || got[1] != i {
					errs <- errors.New("wrong result from a concurrent call")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStartsOnce(t *testing.T) {
	_, err := Start(Options{Venv: testVenv})
	if err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("a second Start: %v", err)
	}
}

func TestCheckVenvRefusesOtherVersions(t *testing.T) {
	dir := t.TempDir()
	if _, err := CheckVenv(dir); err == nil || !strings.Contains(err.Error(), "not a virtualenv") {
		t.Errorf("no pyvenv.cfg: %v", err)
	}
	cfg := filepath.Join(dir, "pyvenv.cfg")
	if err := os.WriteFile(cfg, []byte("home = /x\nversion = 2.7.18\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := CheckVenv(dir)
	if err == nil || !strings.Contains(err.Error(), "is Python 2.7.18 but onnx2pt was built for Python "+LinkedVersion()) {
		t.Errorf("wrong version: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

// TestSoak makes thousands of calls, a third of them raising, and checks
// that the process's resident memory stays flat: a leaked reference per
// call would grow it steadily.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	mod := testmod(t)
	payload := map[string]any{"name": "x", "shape": []any{"batch", 32, 32, 3}, "data": strings.Repeat("y", 4096)}
	round := func(n int) {
		for i := 0; i < n; i++ {
			res, err := mod.CallMethod("echo", payload)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := res.Value(); err != nil {
				t.Fatal(err)
			}
			res.Close()
			if i%3 == 0 {
				if _, err := mod.CallMethod("fail", "soak"); err == nil {
					t.Fatal("fail() did not fail")
				}
			}
		}
	}
	round(2000) // warm up allocators and caches
	before := residentBytes(t)
	round(10000)
	after := residentBytes(t)
	growth := float64(after-before) / (1 << 20)
	t.Logf("resident memory: %.1f MiB before, %.1f MiB after 10000 calls (%+.2f MiB)", float64(before)/(1<<20), float64(after)/(1<<20), growth)
	// 10000 leaked 4 KiB payloads alone would be 40 MiB.
	if growth > 8 {
		t.Errorf("memory grew by %.1f MiB over 10000 calls", growth)
	}
}

func residentBytes(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	var size, resident int64
	fmt.Sscan(string(data), &size, &resident)
	return resident * int64(os.Getpagesize())
}

func TestCheckInterpreter(t *testing.T) {
	if err := CheckInterpreter(context.Background(), BuildInterpreter()); err != nil {
		t.Errorf("the build's own interpreter: %v", err)
	}
	// A stand-in interpreter that reports another version.
	fake := filepath.Join(t.TempDir(), "python")
	os.WriteFile(fake, []byte("#!/bin/sh\necho 2.7\n"), 0o755)
	err := CheckInterpreter(context.Background(), fake)
	if err == nil || !strings.Contains(err.Error(), "is Python 2.7 but onnx2pt embeds Python "+LinkedVersion()) {
		t.Errorf("another version: %v", err)
	}
}

func TestInterruptStopsRunningPython(t *testing.T) {
	mod := testmod(t)
	if ip.Interrupt() {
		t.Error("Interrupt reported a call while none was running")
	}
	go func() {
		for !ip.Interrupt() {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	_, err := mod.CallMethod("spin", 30.0)
	var pe *Error
	if !errors.As(err, &pe) || pe.Type != "KeyboardInterrupt" {
		t.Fatalf("spin(30) returned %v, want KeyboardInterrupt", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("interrupt took %v", d)
	}
	// The interpreter carries on normally afterwards.
	res, err := mod.CallMethod("spin", 0.01)
	if err != nil {
		t.Fatalf("after an interrupt: %v", err)
	}
	res.Close()
}

func TestInterruptOnStopsCallsStartedAfterCancellation(t *testing.T) {
	mod := testmod(t)
	ctx, cancel := context.WithCancel(context.Background())
	stop := ip.InterruptOn(ctx)
	cancel() // before the call starts: a plain Interrupt would find nothing to stop
	_, err := mod.CallMethod("spin", 30.0)
	stop()
	var pe *Error
	if !errors.As(err, &pe) || pe.Type != "KeyboardInterrupt" {
		t.Fatalf("spin(30) returned %v, want KeyboardInterrupt", err)
	}
	res, err := mod.CallMethod("spin", 0.05) // stop() ended the interruptions
	if err != nil {
		t.Fatalf("after stop: %v", err)
	}
	res.Close()
}

// An interruption on its way when stop is called (it saw a call running,
// and that call ended before the interruption got the GIL) must not reach
// a call that starts after stop returned. beforeInterrupt holds the
// interruption at that moment until the next call runs.
func TestInterruptOnStopWithdrawsAnInterruptionUnderWay(t *testing.T) {
	mod := testmod(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	beforeInterrupt.Store(&hold)
	defer beforeInterrupt.Store(nil)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	call := func(seconds float64) <-chan error {
		errc := make(chan error, 1)
		go func() {
			res, err := mod.CallMethod("spin", seconds)
			if err == nil {
				res.Close()
			}
			errc <- err
		}()
		return errc
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stop := ip.InterruptOn(ctx)
	first := call(0.3)
	select {
	case <-entered: // an interruption saw the first call running
	case <-time.After(10 * time.Second):
		t.Fatal("InterruptOn never tried to interrupt the first call")
	}
	if err := <-first; err != nil {
		t.Fatalf("the first call, never interrupted: %v", err)
	}
	stop()
	second := call(0.3)
	for deadline := time.Now().Add(10 * time.Second); !ip.busy.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second call never started")
		}
	}
	close(release) // the interruption goes on while the second call runs
	if err := <-second; err != nil {
		t.Fatalf("a call started after stop returned: %v", err)
	}
}
