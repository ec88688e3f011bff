package main

// End-to-end tests of inspect's verdicts: one model per verdict (and one
// that cannot be loaded), in the text the user reads and in --json.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// verdictModels writes, in dir:
//   - mul.onnx: y = x * x, which converts as it is;
//   - same_pad.onnx: a Conv with auto_pad=SAME_UPPER (onnx2torch refuses
//     it) on a static spatial size, which the auto_pad pass fixes;
//   - dynamic_pad.onnx: two such Convs on a symbolic spatial size, which no
//     pass fixes (auto_pad runs, and leaves them);
//   - custom.onnx: a node of a domain nobody converts.
const verdictModels = `
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper

def save(name, nodes, x, y, domains=()):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((2, 2, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y)], [w] if "w" in str(nodes) else [])
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, name + ".onnx")

def conv(i, o):
    return helper.make_node("Conv", [i, "w"], [o], name="conv_" + o, auto_pad="SAME_UPPER")

def frob(i, o):
    return helper.make_node("Frobnicate", [i], [o], name="frob", domain="com.example")

static, dynamic = ["n", 2, 5, 5], ["n", 2, "h", "w"]
save("mul", [helper.make_node("Mul", ["x", "x"], ["y"], name="square")], static, static)
save("same_pad", [conv("x", "y")], static, static)
save("dynamic_pad", [conv("x", "h"), conv("h", "y")], dynamic, dynamic)
save("custom", [frob("x", "y")], static, static, ["com.example"])
`

func writeVerdictModels(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	python(t, dir, verdictModels)
	if err := os.WriteFile(filepath.Join(dir, "garbage.onnx"), []byte("not an ONNX model"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var verdictArgs = []string{"inspect", "mul.onnx", "same_pad.onnx", "dynamic_pad.onnx", "custom.onnx", "garbage.onnx"}

func TestInspectVerdicts(t *testing.T) {
	t.Parallel()
	dir := writeVerdictModels(t)
	r := onnx2pt(t, dir, verdictArgs...)
	if r.code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"mul.onnx\n  opset 17, IR version 8, 1 node\n",
		"  converts as it is\n",
		"same_pad.onnx\n  opset 17, IR version 8, 1 node\n",
		"  converts after normalisation (auto_pad); as it is, 1 node fails:\n",
		"dynamic_pad.onnx\n  opset 17, IR version 8, 2 nodes\n",
		"  cannot convert: 2 nodes fail, and no normalisation pass fixes them:\n",
		"  cannot convert: 1 node fails, and no normalisation pass fixes it:\n",
		"garbage.onnx\n  cannot convert: garbage.onnx: not an ONNX model",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	// The models the normalisation fixes are not among those that cannot
	// convert, and the count says so.
	if got, want := lastLine(r.stdout), "5 models: 1 converts, 1 converts after normalisation, 3 cannot convert"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	if got, want := lastLine(r.stderr), "onnx2pt: 3 of 5 models cannot convert"; got != want {
		t.Errorf("stderr's last line %q, want %q\n%s", got, want, r.stderr)
	}
	// Inspecting converts nothing, and says nothing of converting.
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(strings.ToLower(out), "converting") || strings.Contains(out, "1 nodes") {
			t.Errorf("output says %q or %q:\n%s", "converting", "1 nodes", out)
		}
	}
	if !strings.Contains(r.stderr, "normalisation fixed no node; the graph stays as it is") {
		t.Errorf("stderr does not say that the passes fixed nothing in dynamic_pad.onnx:\n%s", r.stderr)
	}
	assertOnly(t, dir, "custom.onnx", "dynamic_pad.onnx", "garbage.onnx", "mul.onnx", "same_pad.onnx")
}

func TestInspectJSONVerdicts(t *testing.T) {
	t.Parallel()
	dir := writeVerdictModels(t)
	r := onnx2pt(t, dir, append([]string{verdictArgs[0], "--json"}, verdictArgs[1:]...)...)
	if r.code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	var out struct {
		Models []struct {
			Source struct {
				Path string `json:"path"`
			} `json:"source"`
			Verdict string `json:"verdict"`
			Error   string `json:"error"`
		} `json:"models"`
		Summary map[string]int `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("stdout is not inspect's JSON: %v\n%s", err, r.stdout)
	}
	want := map[string]string{
		"mul.onnx":         "converts",
		"same_pad.onnx":    "converts after normalisation",
		"dynamic_pad.onnx": "cannot convert",
		"custom.onnx":      "cannot convert",
		"garbage.onnx":     "cannot convert",
	}
	if len(out.Models) != len(want) {
		t.Errorf("%d models, want %d", len(out.Models), len(want))
	}
	for _, m := range out.Models {
		if m.Verdict != want[m.Source.Path] {
			t.Errorf("%s: verdict %q, want %q", m.Source.Path, m.Verdict, want[m.Source.Path])
		}
		if (m.Error != "") != (m.Source.Path == "garbage.onnx") {
			t.Errorf("%s: error %q", m.Source.Path, m.Error)
		}
	}
	wantSummary := map[string]int{"models": 5, "converts": 1, "converts_after_normalisation": 1, "cannot_convert": 3}
	for k, v := range wantSummary {
		if out.Summary[k] != v {
			t.Errorf("summary %v, want %v", out.Summary, wantSummary)
			break
		}
	}
}

// A model that does not exist gets convert's message, before Python starts.
func TestInspectMissingModel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inspect := onnx2pt(t, dir, "inspect", "nope.onnx")
	convert := onnx2pt(t, dir, "convert", "nope.onnx")
	if inspect.code != 2 || inspect.stderr != "onnx2pt: nope.onnx does not exist\n" {
		t.Errorf("inspect: exit %d\n%s", inspect.code, inspect.stderr)
	}
	if inspect.stderr != convert.stderr || inspect.code != convert.code {
		t.Errorf("inspect (exit %d) says\n%s\nconvert (exit %d) says\n%s", inspect.code, inspect.stderr, convert.code, convert.stderr)
	}
}
