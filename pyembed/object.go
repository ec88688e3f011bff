package pyembed

import (
	"fmt"

	python3 "github.com/go-python/cpy3"
	"github.com/go-viper/mapstructure/v2"
)

// Object is a reference to a Python object. Release it with Close when done;
// until then the object stays alive in Python.
type Object struct {
	ip  *Interpreter
	ptr *python3.PyObject
}

// Kwargs passed as the last argument of Call or CallMethod become keyword
// arguments.
type Kwargs map[string]any

// Close releases the reference. It is safe to call more than once, on a nil
// Object, and after the interpreter was closed.
func (o *Object) Close() {
	if o == nil || o.ptr == nil {
		return
	}
	ptr := o.ptr
	o.ptr = nil
	_ = o.ip.do(func() error {
		ptr.DecRef()
		return nil
	})
}

// Attr returns the attribute name of the object.
func (o *Object) Attr(name string) (*Object, error) {
	var out *Object
	err := o.ip.do(func() error {
		if err := o.live(); err != nil {
			return err
		}
		ptr, err := getAttr(o.ptr, name)
		if err != nil {
			return err
		}
		out = &Object{ip: o.ip, ptr: ptr}
		return nil
	})
	return out, err
}

// Call calls the object with args converted to Python (see ToPython); a
// trailing Kwargs becomes keyword arguments.
func (o *Object) Call(args ...any) (*Object, error) {
	var out *Object
	err := o.ip.do(func() error {
		if err := o.live(); err != nil {
			return err
		}
		ptr, err := call(o.ptr, args)
		if err != nil {
			return err
		}
		out = &Object{ip: o.ip, ptr: ptr}
		return nil
	})
	return out, err
}

// CallMethod calls the object's method name, like Attr followed by Call.
func (o *Object) CallMethod(name string, args ...any) (*Object, error) {
	var out *Object
	err := o.ip.do(func() error {
		if err := o.live(); err != nil {
			return err
		}
		method, err := getAttr(o.ptr, name)
		if err != nil {
			return err
		}
		defer method.DecRef()
		ptr, err := call(method, args)
		if err != nil {
			return err
		}
		out = &Object{ip: o.ip, ptr: ptr}
		return nil
	})
	return out, err
}

// Value converts the object into plain Go values: nil, bool, int64,
// float64, string, []byte, []any (lists and tuples) and map[string]any.
// numpy's bool, integer and floating scalars (and 0-d arrays of them)
// become bool, int64 and float64. A str's bytes are its UTF-8 form, except
// that lone surrogates from surrogateescape become the bytes they stand for,
// so a file name that is not UTF-8 comes back as it is on disk.
func (o *Object) Value() (any, error) {
	var v any
	err := o.ip.do(func() error {
		if err := o.live(); err != nil {
			return err
		}
		var err error
		v, err = fromPython(o.ptr, 0)
		return err
	})
	return v, err
}

// Decode converts the object into target, a pointer to a Go value or
// struct; struct fields are matched by their json tag, or by name.
func (o *Object) Decode(target any) error {
	v, err := o.Value()
	if err != nil {
		return err
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:   "json",
		Result:    target,
		MatchName: func(key, field string) bool { return key == field },
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("pyembed: decoding Python value into %T: %w", target, err)
	}
	return nil
}

// String is str() of the object, for logs and messages.
func (o *Object) String() string {
	var s string
	_ = o.ip.do(func() error {
		if o.ptr != nil {
			s = strOf(o.ptr)
		}
		return nil
	})
	return s
}

func (o *Object) live() error {
	if o == nil || o.ptr == nil {
		return fmt.Errorf("pyembed: use of a released Object")
	}
	return nil
}

// call calls callable with Go arguments. Runs on the interpreter's thread.
func call(callable *python3.PyObject, args []any) (*python3.PyObject, error) {
	var kwargs Kwargs
	if n := len(args); n > 0 {
		if kw, ok := args[n-1].(Kwargs); ok {
			kwargs, args = kw, args[:n-1]
		}
	}
	tuple, err := newRef(python3.PyTuple_New(len(args)))
	if err != nil {
		return nil, err
	}
	defer tuple.DecRef()
	for i, arg := range args {
		item, err := toPython(arg, 0)
		if err != nil {
			return nil, fmt.Errorf("pyembed: argument %d: %w", i+1, err)
		}
		if python3.PyTuple_SetItem(tuple, i, item) != 0 { // steals item, even on failure
			return nil, fetchError()
		}
	}
	var kw *python3.PyObject
	if kwargs != nil {
		if kw, err = toPython(map[string]any(kwargs), 0); err != nil {
			return nil, fmt.Errorf("pyembed: keyword arguments: %w", err)
		}
		defer kw.DecRef()
	}
	res := callable.Call(tuple, kw)
	if res == nil {
		return nil, fetchError()
	}
	return res, nil
}

// getAttr is getattr(obj, name). The name goes through stringToPython:
// GetAttrString would cut it at a NUL byte.
func getAttr(obj *python3.PyObject, name string) (*python3.PyObject, error) {
	key, err := stringToPython(name)
	if err != nil {
		return nil, err
	}
	defer key.DecRef()
	return newRef(obj.GetAttr(key))
}
