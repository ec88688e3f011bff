#ifndef ONNX2PT_PYEMBED_H
#define ONNX2PT_PYEMBED_H

#include "Python.h"

char *pyembed_initialize(const char *program);
const char *pyembed_build_executable(void);
int pyembed_bytes(PyObject *o, char **buf, Py_ssize_t *len);

#endif
