package pyembed

import (
	"errors"
	"strings"

	python3 "github.com/go-python/cpy3"
)

// Error is a Python exception seen from Go.
type Error struct {
	// Type is the exception's qualified type name, e.g. "ValueError" or
	// "onnx.onnx_cpp2py_export.checker.ValidationError".
	Type string
	// Message is str() of the exception.
	Message string
	// Traceback is the formatted traceback, as Python would print it.
	Traceback string
}

// Error is "Type: Message", one line for logs and users; the traceback is
// in the Traceback field.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Type
	}
	return e.Type + ": " + e.Message
}

// fetchError takes the pending Python exception and returns it as an
// *Error, leaving no exception set. Call it on the interpreter's thread.
func fetchError() error {
	typ, val, tb := python3.PyErr_Fetch()
	if typ == nil {
		return errors.New("pyembed: a Python call failed without setting an exception")
	}
	typ, val, tb = python3.PyErr_NormalizeException(typ, val, tb)
	defer typ.DecRef()
	defer val.DecRef()
	defer tb.DecRef()
	e := &Error{Type: typeName(typ), Message: strOf(val)}
	e.Traceback = formatTraceback(typ, val, tb)
	// The helpers above clear what they raise; an exception left set would
	// make the next call fail with SystemError.
	python3.PyErr_Clear()
	return e
}

// typeName is the exception type's name, qualified by its module unless it
// is a builtin.
func typeName(typ *python3.PyObject) string {
	name := attrString(typ, "__qualname__")
	if mod := attrString(typ, "__module__"); mod != "" && mod != "builtins" {
		name = mod + "." + name
	}
	return name
}

// attrString is the str attribute name of obj, or "" when it is missing or
// not a str; it leaves no exception set.
func attrString(obj *python3.PyObject, name string) string {
	attr := obj.GetAttrString(name)
	if attr == nil {
		python3.PyErr_Clear()
		return ""
	}
	defer attr.DecRef()
	if !python3.PyUnicode_Check(attr) {
		return ""
	}
	return textOf(attr)
}

// strOf is str(obj), or a placeholder when str() itself fails; it leaves no
// exception set.
func strOf(obj *python3.PyObject) string {
	if obj == nil {
		return ""
	}
	s := obj.Str()
	if s == nil {
		python3.PyErr_Clear()
		return "<unprintable>"
	}
	defer s.DecRef()
	return textOf(s)
}

func formatTraceback(typ, val, tb *python3.PyObject) string {
	mod := python3.PyImport_ImportModule("traceback")
	if mod == nil {
		python3.PyErr_Clear()
		return ""
	}
	defer mod.DecRef()
	if tb == nil {
		tb = python3.Py_None
	}
	lines := mod.CallMethodArgs("format_exception", typ, val, tb)
	if lines == nil {
		python3.PyErr_Clear()
		return ""
	}
	defer lines.DecRef()
	if !python3.PyList_Check(lines) {
		return ""
	}
	var b strings.Builder
	for i := 0; i < python3.PyList_Size(lines); i++ {
		b.WriteString(strOf(python3.PyList_GetItem(lines, i))) // borrowed
	}
	return strings.TrimRight(b.String(), "\n")
}
