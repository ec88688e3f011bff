#ifndef ONNX2PT_PYEMBED_H
#define ONNX2PT_PYEMBED_H

#include "Python.h"

char *pyembed_initialize(const char *program);
const char *pyembed_build_executable(void);
int pyembed_bytes(PyObject *o, char **buf, Py_ssize_t *len);
void pyembed_record_owner(void);
void pyembed_clear_interrupt(void);
int pyembed_raise_interrupt(void);

#endif
