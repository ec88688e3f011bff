#include <stdlib.h>
#include <string.h>

#include "pyembed.h"

#if defined(__has_include)
#if !__has_include("onnx2pt_build.h")
#error "pyembed: the Python build flags are not generated; build with 'go tool task build' (see README)"
#endif
#endif
#include "onnx2pt_build.h"

const char *pyembed_build_executable(void) { return ONNX2PT_PYTHON_EXECUTABLE; }

// pyembed_initialize starts the interpreter with program as sys.executable,
// so that it finds the virtualenv's pyvenv.cfg beside it. The configuration
// is isolated (PYTHONPATH, PYTHONHOME and user site-packages are ignored) and
// installs no signal handlers: Go owns signals. Returns NULL on success or a
// malloc'd message.
//
// It runs in UTF-8 mode (PEP 540). An isolated configuration does not set
// the locale, so Python would otherwise see the C locale and use ASCII for
// file names: a Go path such as "données.onnx" could not be opened. In
// UTF-8 mode file names are UTF-8 with surrogateescape, the decoding that
// pyembed gives Go strings, so any Go path reaches the file system as the
// same bytes.
char *pyembed_initialize(const char *program) {
	PyPreConfig preconfig;
	PyPreConfig_InitIsolatedConfig(&preconfig);
	preconfig.utf8_mode = 1;
	PyStatus status = Py_PreInitialize(&preconfig);
	if (PyStatus_Exception(status)) {
		return strdup(status.err_msg ? status.err_msg : "unknown pre-initialisation error");
	}
	PyConfig config;
	PyConfig_InitIsolatedConfig(&config);
	config.install_signal_handlers = 0;
	config.parse_argv = 0;
	status = PyConfig_SetBytesString(&config, &config.program_name, program);
	if (!PyStatus_Exception(status)) {
		status = Py_InitializeFromConfig(&config);
	}
	PyConfig_Clear(&config);
	if (PyStatus_Exception(status)) {
		return strdup(status.err_msg ? status.err_msg : "unknown initialisation error");
	}
	return NULL;
}

int pyembed_bytes(PyObject *o, char **buf, Py_ssize_t *len) {
	return PyBytes_AsStringAndSize(o, buf, len);
}


// The thread that started the interpreter and runs every call (see
// interpreter.go); interruptions are aimed at it.
static unsigned long owner_ident;

void pyembed_record_owner(void) { owner_ident = PyThread_get_thread_ident(); }

// pyembed_clear_interrupt drops an interruption that arrived after the call
// it was meant for had finished. Call with the GIL held, on the owner.
void pyembed_clear_interrupt(void) { PyThreadState_SetAsyncExc(owner_ident, NULL); }

// pyembed_raise_interrupt makes the owner thread raise KeyboardInterrupt
// the next time it runs Python bytecode. Call with the GIL held, from any
// thread (interpreter.go's interrupt takes it).
int pyembed_raise_interrupt(void) { return PyThreadState_SetAsyncExc(owner_ident, PyExc_KeyboardInterrupt); }
