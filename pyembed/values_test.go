package pyembed

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	python3 "github.com/go-python/cpy3"
)

// importNumpy imports numpy into the shared interpreter. The test venv is
// bare, so where it lacks numpy the site-packages of the project's venv
// (ONNX2PT_TEST_VENV, else the repository's .venv) are added when that venv
// is the same Python. It skips only when numpy cannot be imported at all.
func importNumpy(t *testing.T) *Object {
	t.Helper()
	if np, err := ip.Import("numpy"); err == nil {
		t.Cleanup(np.Close)
		return np
	}
	venv := os.Getenv("ONNX2PT_TEST_VENV")
	if venv == "" {
		venv, _ = filepath.Abs(filepath.Join("..", ".venv"))
	}
	if _, err := CheckVenv(venv); err != nil {
		t.Skipf("numpy is not importable in the test venv, and no venv to borrow it from: %v", err)
	}
	site := filepath.Join(venv, "lib", "python"+LinkedVersion(), "site-packages")
	sys := importOrFatal(t, "sys")
	path, err := sys.Attr("path")
	if err != nil {
		t.Fatal(err)
	}
	defer path.Close()
	res, err := path.CallMethod("append", site)
	if err != nil {
		t.Fatal(err)
	}
	res.Close()
	np, err := ip.Import("numpy")
	if err != nil {
		t.Skipf("numpy is not importable from %s either: %v", site, err)
	}
	t.Cleanup(np.Close)
	return np
}

func importOrFatal(t *testing.T, name string) *Object {
	t.Helper()
	mod, err := ip.Import(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mod.Close)
	return mod
}

// callOrFatal calls obj.name(args...) and closes the result with the test.
func callOrFatal(t *testing.T, obj *Object, name string, args ...any) *Object {
	t.Helper()
	res, err := obj.CallMethod(name, args...)
	if err != nil {
		t.Fatalf("%s%v: %v", name, args, err)
	}
	t.Cleanup(res.Close)
	return res
}

func valueOrFatal(t *testing.T, obj *Object) any {
	t.Helper()
	v, err := obj.Value()
	if err != nil {
		t.Fatalf("Value of %s: %v", obj, err)
	}
	return v
}

func sameValue(got, want any) bool {
	if g, ok := got.(float64); ok {
		if w, ok := want.(float64); ok && math.IsNaN(w) {
			return math.IsNaN(g)
		}
	}
	return reflect.DeepEqual(got, want)
}

func TestNumpyScalars(t *testing.T) {
	np := importNumpy(t)
	cases := []struct {
		typ  string
		in   any
		want any
	}{
		{"bool_", true, true},
		{"bool_", false, false},
		{"int8", -8, int64(-8)},
		{"int32", 1 << 30, int64(1 << 30)},
		{"int64", int64(math.MinInt64), int64(math.MinInt64)},
		{"uint8", 255, int64(255)},
		{"uint64", uint64(math.MaxInt64), int64(math.MaxInt64)},
		{"float16", 0.5, 0.5},
		{"float32", 1.25, 1.25},
		{"float32", math.Inf(1), math.Inf(1)},
		{"float32", math.Inf(-1), math.Inf(-1)},
		{"float32", math.NaN(), math.NaN()},
		{"float64", -2.5, -2.5},
		{"longdouble", 0.75, 0.75}, // its item() is itself, not a float
		{"array", 3.5, 3.5},        // a 0-d array
		{"array", true, true},
		{"array", 7, int64(7)},
	}
	for _, c := range cases {
		scalar := callOrFatal(t, np, c.typ, c.in)
		got, err := scalar.Value()
		if err != nil {
			t.Errorf("numpy.%s(%v): %v", c.typ, c.in, err)
			continue
		}
		if !sameValue(got, c.want) {
			t.Errorf("numpy.%s(%v) = %#v, want %#v", c.typ, c.in, got, c.want)
		}
	}

	// Inside containers, and decoded into a struct as Go types.
	record := map[string]any{
		"ok":    callOrFatal(t, np, "bool_", true),
		"count": callOrFatal(t, np, "int64", 3),
		"size":  callOrFatal(t, np, "uint32", 4),
		"scale": callOrFatal(t, np, "float32", 0.5),
		"max":   callOrFatal(t, np, "float32", math.Inf(1)),
		"list":  []any{callOrFatal(t, np, "int16", 1), callOrFatal(t, np, "int16", 2)},
	}
	var got struct {
		OK    bool    `json:"ok"`
		Count int     `json:"count"`
		Size  uint32  `json:"size"`
		Scale float32 `json:"scale"`
		Max   float64 `json:"max"`
		List  []int   `json:"list"`
	}
	if err := callOrFatal(t, testmod(t), "echo", record).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !got.OK || got.Count != 3 || got.Size != 4 || got.Scale != 0.5 || !math.IsInf(got.Max, 1) || !reflect.DeepEqual(got.List, []int{1, 2}) {
		t.Errorf("decoded %+v", got)
	}

	// What has no Go equivalent stays an error.
	for _, c := range []struct {
		typ  string
		in   any
		want string
	}{
		{"uint64", uint64(math.MaxUint64), "does not fit in int64"},
		{"complex64", 1.0, "numpy.complex64"},
		{"array", []int{1}, "numpy.ndarray"}, // one element, but not a scalar
	} {
		_, err := callOrFatal(t, np, c.typ, c.in).Value()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("numpy.%s(%v): got error %v, want one mentioning %q", c.typ, c.in, err, c.want)
		}
	}
}

// TestNumpyLikeWithoutNumpy checks the same decoding with stand-ins, so it
// is covered where numpy is not installed.
func TestNumpyLikeWithoutNumpy(t *testing.T) {
	mod := testmod(t)
	for _, c := range []struct {
		kind string
		in   any
		want any
	}{
		{"b", true, true},
		{"i", -3, int64(-3)},
		{"u", 3, int64(3)},
		{"f", math.Inf(-1), math.Inf(-1)},
		{"f", 2, 2.0}, // float(), whatever item() gives
	} {
		got, err := callOrFatal(t, mod, "NumpyLike", c.kind, c.in).Value()
		if err != nil || !sameValue(got, c.want) {
			t.Errorf("NumpyLike(%q, %v) = %#v, %v; want %#v", c.kind, c.in, got, err, c.want)
		}
	}
	for _, obj := range []*Object{
		callOrFatal(t, mod, "NumpyLike", "u", uint64(math.MaxUint64)),
		callOrFatal(t, mod, "NumpyLike", "i", 1, 1), // an array
		callOrFatal(t, mod, "NumpyLike", "c", 1),    // complex
		callOrFatal(t, mod, "NumberLike"),           // not numpy
	} {
		if v, err := obj.Value(); err == nil {
			t.Errorf("%s decoded to %#v", obj, v)
		}
	}
}

// TestNonUTF8Strings passes a file name that is not UTF-8 between Go and
// Python: Go strings are bytes, Python decodes such names with
// surrogateescape.
func TestNonUTF8Strings(t *testing.T) {
	mod := testmod(t)
	dir := t.TempDir()
	name := "données-\xff.txt" // UTF-8, then a byte that is not
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := valueOrFatal(t, callOrFatal(t, mod, "read_file", path)); !reflect.DeepEqual(got, []byte("content")) {
		t.Errorf("read_file(%q) = %q", path, got)
	}
	if got := valueOrFatal(t, callOrFatal(t, mod, "fsencode", path)); !reflect.DeepEqual(got, []byte(path)) {
		t.Errorf("os.fsencode(%q) = %q", path, got)
	}
	// A name Python read from the file system comes back as the same bytes.
	if got := valueOrFatal(t, callOrFatal(t, mod, "list_dir", dir)); !reflect.DeepEqual(got, []any{name}) {
		t.Errorf("os.listdir = %q, want [%q]", got, name)
	}
	// Round trips, as values, map keys and keyword arguments; NUL included.
	for _, in := range []any{
		path,
		"",
		"nul\x00byte",
		map[string]any{name: name},
	} {
		if got := valueOrFatal(t, callOrFatal(t, mod, "echo", in)); !reflect.DeepEqual(got, in) {
			t.Errorf("echo(%q) = %q", in, got)
		}
	}
	var kw struct {
		Kwargs map[string]string `json:"kwargs"`
	}
	if err := callOrFatal(t, mod, "echo", Kwargs{name: path}).Decode(&kw); err != nil || kw.Kwargs[name] != path {
		t.Errorf("echo(**{%q: %q}) = %q, %v", name, path, kw.Kwargs, err)
	}
	// Names are not cut at a NUL byte.
	if attr, err := mod.Attr("echo\x00junk"); err == nil {
		attr.Close()
		t.Error(`Attr("echo\x00junk") found echo`)
	}
	if m, err := ip.Import("json\x00junk"); err == nil { // not os: CPython finds frozen modules by C string
		m.Close()
		t.Error(`Import("json\x00junk") imported json`)
	}
}

func TestNonUTF8ErrorMessages(t *testing.T) {
	mod := testmod(t)
	for _, c := range []struct {
		fn   string
		args []any
		want string
	}{
		// Made in Python, as from a file name: not through stringToPython.
		{"fail_fsdecode", []any{[]byte("bad \xff byte")}, "bad \xff byte"},
		{"fail", []any{"bad \xff byte"}, "bad \xff byte"},
		{"fail_surrogate", nil, `bad \ud800`},
	} {
		_, err := mod.CallMethod(c.fn, c.args...)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("%s: got %v, want *Error", c.fn, err)
		}
		if pe.Type != "ValueError" || pe.Message != c.want {
			t.Errorf("%s: got type %q message %q, want ValueError %q", c.fn, pe.Type, pe.Message, c.want)
		}
		if !strings.Contains(pe.Traceback, "ValueError: "+c.want) {
			t.Errorf("%s: traceback lacks the message:\n%s", c.fn, pe.Traceback)
		}
		if pending() {
			t.Errorf("%s: a Python exception was left set", c.fn)
		}
	}
	// Python's own error for a string that cannot be encoded.
	if _, err := callOrFatal(t, mod, "lone_surrogate").Value(); err == nil || !strings.Contains(err.Error(), "UnicodeEncodeError") {
		t.Errorf("a str with a lone surrogate: %v", err)
	}
}

// pending reports whether a Python exception is set between calls, where
// the next call would trip over it, clearing it.
func pending() bool {
	var set bool
	_ = ip.do(func() error {
		set = python3.PyErr_Occurred() != nil
		python3.PyErr_Clear()
		return nil
	})
	return set
}
