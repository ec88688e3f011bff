package pyembed

/*
#include "pyembed.h"
*/
import "C"

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"unsafe"

	python3 "github.com/go-python/cpy3"
)

// maxDepth bounds nesting in conversions, so a self-referencing structure
// fails cleanly instead of exhausting the stack.
const maxDepth = 64

// toPython converts a Go value into a new Python reference: nil, bools,
// integers, floats, strings, []byte, slices and arrays (to lists), maps
// with string keys and structs (to dicts, structs as encoding/json sees
// them) and *Object (the object itself). Strings become str as
// stringToPython describes.
func toPython(v any, depth int) (*python3.PyObject, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("value nested deeper than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		python3.Py_None.IncRef()
		return python3.Py_None, nil
	case *Object:
		if err := x.live(); err != nil {
			return nil, err
		}
		x.ptr.IncRef()
		return x.ptr, nil
	case []byte:
		return bytesToPython(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		// Returns a new reference to Py_True or Py_False: cannot fail.
		if rv.Bool() {
			return python3.PyBool_FromLong(1), nil
		}
		return python3.PyBool_FromLong(0), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return newRef(python3.PyLong_FromLongLong(rv.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return newRef(python3.PyLong_FromUnsignedLongLong(rv.Uint()))
	case reflect.Float32, reflect.Float64:
		return newRef(python3.PyFloat_FromDouble(rv.Float()))
	case reflect.String:
		return stringToPython(rv.String())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			python3.Py_None.IncRef()
			return python3.Py_None, nil
		}
		list, err := newRef(python3.PyList_New(rv.Len()))
		if err != nil {
			return nil, err
		}
		for i := 0; i < rv.Len(); i++ {
			item, err := toPython(rv.Index(i).Interface(), depth+1)
			if err != nil {
				list.DecRef()
				return nil, err
			}
			if python3.PyList_SetItem(list, i, item) != 0 { // steals item, even on failure
				list.DecRef()
				return nil, fetchError()
			}
		}
		return list, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("cannot convert %T to Python: map keys must be strings", v)
		}
		if rv.IsNil() {
			python3.Py_None.IncRef()
			return python3.Py_None, nil
		}
		dict, err := newRef(python3.PyDict_New())
		if err != nil {
			return nil, err
		}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			if err := setItem(dict, k.String(), rv.MapIndex(k).Interface(), depth); err != nil {
				dict.DecRef()
				return nil, err
			}
		}
		return dict, nil
	case reflect.Pointer:
		if rv.IsNil() {
			python3.Py_None.IncRef()
			return python3.Py_None, nil
		}
		return toPython(rv.Elem().Interface(), depth+1)
	case reflect.Struct:
		plain, err := structToMap(v)
		if err != nil {
			return nil, err
		}
		return toPython(plain, depth+1)
	}
	return nil, fmt.Errorf("cannot convert %T to Python", v)
}

// setItem sets dict[key] = value. The key goes through stringToPython, not
// PyDict_SetItemString, so keys that are not UTF-8 or hold NUL bytes keep
// their bytes.
func setItem(dict *python3.PyObject, key string, value any, depth int) error {
	k, err := stringToPython(key)
	if err != nil {
		return err
	}
	defer k.DecRef()
	item, err := toPython(value, depth+1)
	if err != nil {
		return err
	}
	defer item.DecRef()
	if python3.PyDict_SetItem(dict, k, item) != 0 { // does not steal
		return fetchError()
	}
	return nil
}

// newRef passes on the result of a C-API call that returns a new reference,
// or NULL with an exception set, which it turns into an error.
func newRef(obj *python3.PyObject) (*python3.PyObject, error) {
	if obj == nil {
		return nil, fetchError()
	}
	return obj, nil
}

// fromPython converts a Python object into plain Go values; see
// Object.Value. Runs on the interpreter's thread.
func fromPython(obj *python3.PyObject, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("pyembed: Python value nested deeper than %d levels", maxDepth)
	}
	switch {
	case obj == python3.Py_None:
		return nil, nil
	case python3.PyBool_Check(obj):
		return obj == python3.Py_True, nil
	case python3.PyLong_Check(obj):
		n, overflow := python3.PyLong_AsLongLongAndOverflow(obj)
		if overflow != 0 {
			return nil, fmt.Errorf("pyembed: Python int %s does not fit in int64", strOf(obj))
		}
		if n == -1 && python3.PyErr_Occurred() != nil {
			return nil, fetchError()
		}
		return n, nil
	case python3.PyFloat_Check(obj):
		f := python3.PyFloat_AsDouble(obj)
		if f == -1 && python3.PyErr_Occurred() != nil {
			return nil, fetchError()
		}
		return f, nil
	case python3.PyUnicode_Check(obj):
		return goString(obj)
	case python3.PyBytes_Check(obj):
		var buf *C.char
		var n C.Py_ssize_t
		if C.pyembed_bytes(cObj(obj), &buf, &n) != 0 {
			return nil, fetchError()
		}
		return C.GoBytes(unsafe.Pointer(buf), C.int(n)), nil
	case python3.PyList_Check(obj), python3.PyTuple_Check(obj):
		size, get := python3.PyList_Size, python3.PyList_GetItem
		if python3.PyTuple_Check(obj) {
			size, get = python3.PyTuple_Size, python3.PyTuple_GetItem
		}
		out := make([]any, 0, size(obj))
		// Decoding a numpy scalar runs Python code, which could change the
		// list: the size is read again each time and each item is held.
		for i := 0; i < size(obj); i++ {
			item := get(obj, i) // borrowed
			if item == nil {
				return nil, fetchError()
			}
			item.IncRef()
			v, err := fromPython(item, depth+1)
			item.DecRef()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case python3.PyDict_Check(obj):
		out := make(map[string]any, python3.PyDict_Size(obj))
		var key, value *python3.PyObject
		pos := 0
		for python3.PyDict_Next(obj, &pos, &key, &value) { // borrowed
			k, v, err := dictEntry(key, value, depth)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	if v, ok, err := numpyScalar(obj, depth); ok {
		return v, err
	}
	typ := obj.Type()
	defer typ.DecRef()
	return nil, fmt.Errorf("pyembed: cannot convert a Python %s to a Go value", typeName(typ))
}

// dictEntry converts one dict entry; keys that are not str become their
// str(). Both are held while converting: see the list case of fromPython.
func dictEntry(key, value *python3.PyObject, depth int) (string, any, error) {
	key.IncRef()
	defer key.DecRef()
	value.IncRef()
	defer value.DecRef()
	var k string
	if python3.PyUnicode_Check(key) {
		var err error
		if k, err = goString(key); err != nil {
			return "", nil, err
		}
	} else {
		k = strOf(key)
	}
	v, err := fromPython(value, depth+1)
	return k, v, err
}

// numpyScalar decodes numpy scalars (numpy.bool_, numpy.int64,
// numpy.float32, ...) and 0-d arrays of those types: bool to bool, integers
// to int64 (an error when they do not fit), floats to float64. It goes
// through Python's own conversions (item(), float()) and recognises numpy
// by the type's module, so pyembed works where numpy is not installed.
// Arrays with dimensions, even of one element, are left alone: ok is false
// for anything it does not decode.
func numpyScalar(obj *python3.PyObject, depth int) (v any, ok bool, err error) {
	typ := obj.Type()
	module := attrString(typ, "__module__")
	typ.DecRef()
	if module != "numpy" {
		return nil, false, nil
	}
	ndim := obj.GetAttrString("ndim")
	if ndim == nil {
		python3.PyErr_Clear()
		return nil, false, nil
	}
	scalar := false
	if python3.PyLong_Check(ndim) {
		n, overflow := python3.PyLong_AsLongLongAndOverflow(ndim)
		scalar = n == 0 && overflow == 0
	}
	ndim.DecRef()
	if !scalar {
		return nil, false, nil
	}
	dtype := obj.GetAttrString("dtype")
	if dtype == nil {
		python3.PyErr_Clear()
		return nil, false, nil
	}
	kind := attrString(dtype, "kind")
	dtype.DecRef()
	var plain *python3.PyObject
	switch kind {
	case "b", "i", "u":
		plain = obj.CallMethodArgs("item")
	case "f":
		// float() rather than item(): numpy.longdouble's item() returns
		// itself, float() a Python float for every size.
		plain = goObj(C.PyNumber_Float(cObj(obj)))
	default:
		return nil, false, nil
	}
	if plain == nil {
		return nil, true, fetchError()
	}
	defer plain.DecRef()
	if !python3.PyBool_Check(plain) && !python3.PyLong_Check(plain) && !python3.PyFloat_Check(plain) {
		return nil, false, nil
	}
	v, err = fromPython(plain, depth+1)
	return v, true, err
}

// structToMap turns a struct into a map as encoding/json sees it (json tags
// and omitempty apply), keeping integers as integers.
func structToMap(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %T to Python: %w", v, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("cannot convert %T to Python: %w", v, err)
	}
	return numbersToGo(m).(map[string]any), nil
}

func numbersToGo(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbersToGo(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbersToGo(x[k])
		}
	}
	return v
}

// bytesToPython copies b into a new Python bytes object.
func bytesToPython(b []byte) (*python3.PyObject, error) {
	var p *C.char
	if len(b) > 0 {
		p = (*C.char)(unsafe.Pointer(&b[0]))
	}
	return newRef(goObj(C.PyBytes_FromStringAndSize(p, C.Py_ssize_t(len(b)))))
}

// Error handler and codec names for the C API; never freed.
var (
	cUTF8             = C.CString("utf-8")
	cSurrogateEscape  = C.CString("surrogateescape")
	cBackslashReplace = C.CString("backslashreplace")
)

// stringToPython decodes s as UTF-8 into a new str. A Go string is bytes
// and may be a file name that is not UTF-8: those bytes become lone
// surrogates (surrogateescape, PEP 383), as Python decodes file names
// itself, so open() and os.fsencode() see the original bytes. NUL bytes are
// kept.
func stringToPython(s string) (*python3.PyObject, error) {
	p := (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
	return newRef(goObj(C.PyUnicode_DecodeUTF8(p, C.Py_ssize_t(len(s)), cSurrogateEscape)))
}

// goString is the inverse of stringToPython for a str (or subclass): its
// UTF-8 bytes, with surrogateescape's lone surrogates turned back into the
// bytes they stand for. Other lone surrogates cannot be encoded: an error.
func goString(obj *python3.PyObject) (string, error) {
	s, ok := encodeUTF8(obj, cSurrogateEscape)
	if !ok {
		return "", fetchError()
	}
	return s, nil
}

// textOf is str obj for messages: like goString, but it never fails and
// leaves no exception set; what cannot be encoded is written as
// backslash escapes.
func textOf(obj *python3.PyObject) string {
	for _, handler := range []*C.char{cSurrogateEscape, cBackslashReplace} {
		if s, ok := encodeUTF8(obj, handler); ok {
			return s
		}
		python3.PyErr_Clear()
	}
	return "<unprintable>"
}

// encodeUTF8 encodes the str obj as UTF-8 with the given error handler. It
// returns false with a Python exception set when that fails.
func encodeUTF8(obj *python3.PyObject, errors *C.char) (string, bool) {
	var n C.Py_ssize_t
	// Most strings are plain Unicode; their UTF-8 form is cached in the str.
	if p := C.PyUnicode_AsUTF8AndSize(cObj(obj), &n); p != nil {
		return goStringN(p, n), true
	}
	if !python3.PyErr_ExceptionMatches(python3.PyExc_UnicodeEncodeError) {
		return "", false
	}
	python3.PyErr_Clear()
	b := C.PyUnicode_AsEncodedString(cObj(obj), cUTF8, errors)
	if b == nil {
		return "", false
	}
	defer C.Py_DecRef(b)
	var p *C.char
	if C.pyembed_bytes(b, &p, &n) != 0 {
		return "", false
	}
	return goStringN(p, n), true
}

// goStringN copies n bytes at p; unlike C.GoStringN its length is not
// limited to a C int.
func goStringN(p *C.char, n C.Py_ssize_t) string {
	return string(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
}

func cObj(obj *python3.PyObject) *C.PyObject { return (*C.PyObject)(unsafe.Pointer(obj)) }

func goObj(obj *C.PyObject) *python3.PyObject { return (*python3.PyObject)(unsafe.Pointer(obj)) }
