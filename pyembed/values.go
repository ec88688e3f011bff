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
// them) and *Object (the object itself).
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
		return bytesToPython(x), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		if rv.Bool() {
			return python3.PyBool_FromLong(1), nil
		}
		return python3.PyBool_FromLong(0), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return python3.PyLong_FromLongLong(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return python3.PyLong_FromUnsignedLongLong(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return python3.PyFloat_FromDouble(rv.Float()), nil
	case reflect.String:
		return python3.PyUnicode_FromString(rv.String()), nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			python3.Py_None.IncRef()
			return python3.Py_None, nil
		}
		list := python3.PyList_New(rv.Len())
		for i := 0; i < rv.Len(); i++ {
			item, err := toPython(rv.Index(i).Interface(), depth+1)
			if err != nil {
				list.DecRef()
				return nil, err
			}
			python3.PyList_SetItem(list, i, item) // steals item
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
		dict := python3.PyDict_New()
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			item, err := toPython(rv.MapIndex(k).Interface(), depth+1)
			if err != nil {
				dict.DecRef()
				return nil, err
			}
			python3.PyDict_SetItemString(dict, k.String(), item) // does not steal
			item.DecRef()
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
		return n, nil
	case python3.PyFloat_Check(obj):
		return python3.PyFloat_AsDouble(obj), nil
	case python3.PyUnicode_Check(obj):
		s := python3.PyUnicode_AsUTF8(obj)
		if python3.PyErr_Occurred() != nil {
			return nil, fetchError()
		}
		return s, nil
	case python3.PyBytes_Check(obj):
		var buf *C.char
		var n C.Py_ssize_t
		if C.pyembed_bytes((*C.PyObject)(unsafe.Pointer(obj)), &buf, &n) != 0 {
			return nil, fetchError()
		}
		return C.GoBytes(unsafe.Pointer(buf), C.int(n)), nil
	case python3.PyList_Check(obj), python3.PyTuple_Check(obj):
		size, item := python3.PyList_Size, python3.PyList_GetItem
		if python3.PyTuple_Check(obj) {
			size, item = python3.PyTuple_Size, python3.PyTuple_GetItem
		}
		out := make([]any, size(obj))
		for i := range out {
			v, err := fromPython(item(obj, i), depth+1) // borrowed
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case python3.PyDict_Check(obj):
		out := make(map[string]any, python3.PyDict_Size(obj))
		var key, value *python3.PyObject
		pos := 0
		for python3.PyDict_Next(obj, &pos, &key, &value) { // borrowed
			k := strOf(key)
			if python3.PyUnicode_Check(key) {
				k = python3.PyUnicode_AsUTF8(key)
			}
			v, err := fromPython(value, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	typ := obj.Type()
	defer typ.DecRef()
	return nil, fmt.Errorf("pyembed: cannot convert a Python %s to a Go value", typeName(typ))
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
func bytesToPython(b []byte) *python3.PyObject {
	var p *C.char
	if len(b) > 0 {
		p = (*C.char)(unsafe.Pointer(&b[0]))
	}
	return (*python3.PyObject)(unsafe.Pointer(C.PyBytes_FromStringAndSize(p, C.Py_ssize_t(len(b)))))
}
