/*
 * Compatibility wrapper around the interpreter's Python.h.
 *
 * go-python/cpy3 v0.2.0 was written for CPython 3.7 and refers to C-API
 * functions that later releases removed. This header sits before the
 * interpreter's include directory (see cmd/pybuild), includes the real
 * Python.h, and declares what the running version no longer declares.
 * The definitions of the functions libpython no longer exports live in
 * pyembed/compat.c.
 */
#ifndef ONNX2PT_COMPAT_PYTHON_H
#define ONNX2PT_COMPAT_PYTHON_H

#include_next <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

#if PY_VERSION_HEX >= 0x03080000
/* Removed from the public headers in CPython 3.8 (the symbol left libpython too). */
void PyEval_ReInitThreads(void);
#endif

#if PY_VERSION_HEX >= 0x03090000
/* Removed in CPython 3.9: the free lists became per-interpreter. */
int PyDict_ClearFreeList(void);
int PyFloat_ClearFreeList(void);
int PyList_ClearFreeList(void);
#endif

#if PY_VERSION_HEX >= 0x030D0000
/* Removed from the headers in CPython 3.13 (still exported by libpython). */
void Py_SetPath(const wchar_t *);
void PySys_SetPath(const wchar_t *);
void PySys_AddWarnOption(const wchar_t *);
void PySys_AddXOption(const wchar_t *);
int PyEval_ThreadsInitialized(void);
/* Removed in CPython 3.13, header and library both. */
int Py_SetStandardStreamEncoding(const char *encoding, const char *errors);
#endif

#ifdef __cplusplus
}
#endif

#endif /* ONNX2PT_COMPAT_PYTHON_H */
