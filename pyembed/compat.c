// Definitions for the C-API functions go-python/cpy3 v0.2.0 refers to but
// the running CPython no longer exports (declarations: include/Python.h).
// None of them is called by onnx2pt; they exist so the binding links. Each
// returns the value that means "nothing done".
#include "Python.h"

#if PY_VERSION_HEX >= 0x03080000
// Removed in CPython 3.8; only meaningful after fork(), which onnx2pt never
// does while Python runs.
void PyEval_ReInitThreads(void) {}
#endif

#if PY_VERSION_HEX >= 0x03090000
// Removed in CPython 3.9; they returned the number of freed items.
int PyDict_ClearFreeList(void) { return 0; }
int PyFloat_ClearFreeList(void) { return 0; }
int PyList_ClearFreeList(void) { return 0; }
#endif

#if PY_VERSION_HEX < 0x030D0000
// Declared but not exported before CPython 3.13. -1 reports failure: Go,
// not Python, owns signal handling in onnx2pt.
int PySignal_SetWakeupFd(int fd) {
	(void)fd;
	return -1;
}
#endif

#if PY_VERSION_HEX >= 0x030D0000
// Removed in CPython 3.13; the encoding is set through PyConfig instead.
int Py_SetStandardStreamEncoding(const char *encoding, const char *errors) {
	(void)encoding;
	(void)errors;
	return -1;
}
#endif
