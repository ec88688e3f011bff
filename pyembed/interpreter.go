// Package pyembed runs an embedded CPython interpreter inside the Go process
// and offers a small API over it: import modules, get attributes, call
// functions with Go values, and decode results into Go values and structs.
//
// # Threads
//
// CPython's thread state belongs to one OS thread. pyembed therefore gives
// the interpreter a single owner goroutine locked to its OS thread; every
// Python operation, whichever goroutine asks for it, is handed to that
// goroutine and runs there while it holds the GIL. Between operations the
// GIL is released, so threads started by Python code keep running. All
// exported methods are safe to call from any goroutine.
//
// # Lifetime
//
// CPython can be started once per process. Close stops accepting work but
// deliberately does not finalise the interpreter: Py_Finalize is known to
// crash once torch or numpy are loaded, and the process is about to exit.
//
// # Building
//
// pyembed links against the interpreter chosen at build time through the
// files that cmd/pybuild generates (see README); the compatibility layer in
// include/ and compat.c lets go-python/cpy3 build on CPython 3.9 to 3.13.
package pyembed

/*
#cgo pkg-config: python3
#include <stdlib.h>
#include "pyembed.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	python3 "github.com/go-python/cpy3"
)

// ErrClosed is returned by operations on a closed interpreter.
var ErrClosed = errors.New("pyembed: interpreter is closed")

// Options says how to start the interpreter.
type Options struct {
	// Venv is the virtualenv to run in. Its Python must be the version this
	// binary was built against.
	Venv string
	// Path lists directories to put first on sys.path.
	Path []string
}

// Interpreter is the embedded CPython. Create it with Start.
type Interpreter struct {
	calls chan func()
	busy  atomic.Bool // a call is running on the owner thread; changed with the GIL held

	mu     sync.RWMutex
	closed bool
}

var started sync.Mutex

// LinkedVersion is the CPython major.minor this binary was compiled against.
func LinkedVersion() string {
	return fmt.Sprintf("%d.%d", int(C.PY_MAJOR_VERSION), int(C.PY_MINOR_VERSION))
}

// BuildInterpreter is the path of the python executable this binary was
// built against; its version matches LinkedVersion.
func BuildInterpreter() string {
	return C.GoString(C.pyembed_build_executable())
}

// Start checks that the virtualenv matches this binary and starts the
// interpreter in it. It can succeed once per process.
func Start(opts Options) (*Interpreter, error) {
	python, err := CheckVenv(opts.Venv)
	if err != nil {
		return nil, err
	}
	if !started.TryLock() {
		return nil, errors.New("pyembed: the interpreter was already started in this process")
	}
	ip := &Interpreter{calls: make(chan func())}
	ready := make(chan error)
	go ip.own(python, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	if len(opts.Path) > 0 {
		if err := ip.prependPath(opts.Path); err != nil {
			ip.Close()
			return nil, err
		}
	}
	return ip, nil
}

// own is the owner goroutine: it starts Python on its locked OS thread and
// then runs every operation there, holding the GIL only while one runs.
func (ip *Interpreter) own(program string, ready chan<- error) {
	// Never unlocked: this thread carries the interpreter's main thread state.
	runtime.LockOSThread()
	cprog := C.CString(program)
	msg := C.pyembed_initialize(cprog)
	C.free(unsafe.Pointer(cprog))
	if msg != nil {
		ready <- fmt.Errorf("pyembed: starting Python %s from %s: %s", LinkedVersion(), program, C.GoString(msg))
		C.free(unsafe.Pointer(msg))
		return
	}
	// The loaded libpython must be the one the headers described; a wrong
	// rpath or LD_LIBRARY_PATH would otherwise mix two versions.
	if v := python3.Py_GetVersion(); !strings.HasPrefix(v, LinkedVersion()+".") {
		ready <- fmt.Errorf("pyembed: built for Python %s but loaded libpython %s; rebuild with 'go tool task build'", LinkedVersion(), strings.Fields(v)[0])
		return
	}
	C.pyembed_record_owner()
	state := python3.PyEval_SaveThread()
	ready <- nil
	for fn := range ip.calls {
		python3.PyEval_RestoreThread(state)
		C.pyembed_clear_interrupt()
		ip.busy.Store(true)
		fn()
		ip.busy.Store(false)
		state = python3.PyEval_SaveThread()
	}
}

// do runs fn on the interpreter's thread with the GIL held and waits for it.
// A panic in fn is returned as an error so the GIL is always released.
func (ip *Interpreter) do(fn func() error) error {
	ip.mu.RLock()
	defer ip.mu.RUnlock()
	if ip.closed {
		return ErrClosed
	}
	var err error
	done := make(chan struct{})
	ip.calls <- func() {
		defer close(done)
		// Not busy once the caller can go on: an Interrupt right after this
		// call returned must not report it as running.
		defer ip.busy.Store(false)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("pyembed: panic during a Python call: %v", r)
			}
		}()
		err = fn()
	}
	<-done
	return err
}

// Interrupt raises KeyboardInterrupt in the Python code running now, if
// any, the next time it executes Python bytecode; the call then returns an
// *Error of that type. Long native operations (one big tensor op, a
// protobuf parse) finish first. It reports whether a call was running.
func (ip *Interpreter) Interrupt() bool {
	return ip.interrupt(nil)
}

// beforeInterrupt, when set (by tests), runs in interrupt between seeing a
// call under way and taking the GIL: the moment an interruption can be
// overtaken by the end of that call, a stop and the start of another.
var beforeInterrupt atomic.Pointer[func()]

// interrupt is Interrupt, withdrawn once withdrawn (if not nil) is set.
// Whether a call is running and whether the interruption was withdrawn are
// decided with the GIL held, and the interruption is raised before the GIL
// is let go: the owner takes the GIL to start a call, and drops an
// interruption left pending by the previous one then, so one withdrawn
// before a call started never reaches it.
func (ip *Interpreter) interrupt(withdrawn *atomic.Bool) bool {
	if !ip.busy.Load() || withdrawn != nil && withdrawn.Load() {
		return false // the common case, without waiting for the GIL
	}
	if hook := beforeInterrupt.Load(); hook != nil {
		(*hook)()
	}
	// PyGILState_Release must run on the thread that called Ensure.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	gil := C.PyGILState_Ensure()
	defer C.PyGILState_Release(gil)
	if !ip.busy.Load() || withdrawn != nil && withdrawn.Load() {
		return false
	}
	return C.pyembed_raise_interrupt() > 0
}

// InterruptOn keeps interrupting Python calls once ctx is done, until the
// returned stop is called: a call that starts just after the cancellation
// is stopped as well as the one running at that moment. Once stop has
// returned, no call that starts afterwards is interrupted, even by an
// interruption that was on its way.
func (ip *Interpreter) InterruptOn(ctx context.Context) (stop func()) {
	var stopped atomic.Bool
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			ip.interrupt(&stopped)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return sync.OnceFunc(func() {
		stopped.Store(true)
		close(done)
	})
}

// Close stops the interpreter from taking more work and waits for the
// operations under way. It does not finalise CPython (see the package doc).
func (ip *Interpreter) Close() {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	ip.closed = true
}

// Import imports a module by its dotted name.
func (ip *Interpreter) Import(name string) (*Object, error) {
	var obj *Object
	err := ip.do(func() error {
		// Not PyImport_ImportModule: it would cut the name at a NUL byte.
		pyName, err := stringToPython(name)
		if err != nil {
			return err
		}
		defer pyName.DecRef()
		ptr, err := newRef(python3.PyImport_Import(pyName))
		if err != nil {
			return err
		}
		obj = &Object{ip: ip, ptr: ptr}
		return nil
	})
	return obj, err
}

func (ip *Interpreter) prependPath(dirs []string) error {
	sys, err := ip.Import("sys")
	if err != nil {
		return err
	}
	defer sys.Close()
	path, err := sys.Attr("path")
	if err != nil {
		return err
	}
	defer path.Close()
	for i := len(dirs) - 1; i >= 0; i-- {
		res, err := path.CallMethod("insert", 0, dirs[i])
		if err != nil {
			return err
		}
		res.Close()
	}
	return nil
}
