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
char *pyembed_initialize(const char *program) {
	PyConfig config;
	PyConfig_InitIsolatedConfig(&config);
	config.install_signal_handlers = 0;
	config.parse_argv = 0;
	PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, program);
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

