package main

// End-to-end tests of what "up to date", "verified" and "nothing was
// written" promise: each would pass a stale, damaged or wrongly failed
// result if the promise broke.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// python runs code in the test virtualenv's python, in dir.
func python(t *testing.T, dir, code string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(venvDir, "bin", "python"), append([]string{"-c", code}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// externalModel writes ext.onnx computing y = x * w, whose w (4 floats,
// all equal to value) lives in weights.bin beside it.
const externalModel = `
import os, sys, numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
if os.path.exists("weights.bin"):
    os.remove("weights.bin")
w = numpy_helper.from_array(np.full(4, float(sys.argv[1]), np.float32), "w")
graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "ext",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, "ext.onnx", save_as_external_data=True, location="weights.bin", size_threshold=0)
`

func TestChangedExternalDataIsConvertedAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, externalModel, "2")
	onnxBytes, _ := os.ReadFile(filepath.Join(dir, "ext.onnx"))
	args := []string{"convert", "--input", "ext.onnx", "-v"}
	if r := onnx2pt(t, dir, args...); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	if r := onnx2pt(t, dir, args...); !strings.Contains(r.stderr, "Up to date: ext.pt") {
		t.Fatalf("second run was not up to date:\n%s", r.stderr)
	}
	python(t, dir, externalModel, "3")
	if again, _ := os.ReadFile(filepath.Join(dir, "ext.onnx")); string(again) != string(onnxBytes) {
		t.Fatal("test premise: the .onnx file should not change, only its external data")
	}
	r := onnx2pt(t, dir, args...)
	if r.code != 0 || !strings.Contains(r.stderr, "external data weights.bin changed") || !strings.Contains(r.stderr, "Saved to ext.pt") {
		t.Fatalf("changed weights were not converted again (exit %d):\n%s", r.code, r.stderr)
	}
	// The new .pt computes with the new weights.
	python(t, dir, `
import torch
m = torch.load("ext.pt", weights_only=False)["model"]
y = m(torch.ones(1, 4))
assert torch.allclose(y, torch.full((1, 4), 3.0)), y
`)
}

func TestChangedPackagesConvertAgain(t *testing.T) {
	dir := workdir(t)
	args := []string{"convert", "--input", "resnet8.onnx", "-v"}
	if r := onnx2pt(t, dir, args...); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	// A package installed into the venv behind onnx2pt's back, as
	// `pip install` would leave it.
	sitePackages, err := filepath.Glob(filepath.Join(venvDir, "lib", "python3*", "site-packages"))
	if err != nil || len(sitePackages) != 1 {
		t.Fatalf("site-packages: %v %v", sitePackages, err)
	}
	dist := filepath.Join(sitePackages[0], "onnx2pt_test_marker-1.0.dist-info")
	if err := os.Mkdir(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dist) })
	os.WriteFile(filepath.Join(dist, "METADATA"), []byte("Metadata-Version: 2.1\nName: onnx2pt-test-marker\nVersion: 1.0\n"), 0o644)
	r := onnx2pt(t, dir, args...)
	if r.code != 0 || strings.Contains(r.stderr, "Up to date") || !strings.Contains(r.stderr, "Saved to resnet8.pt") {
		t.Fatalf("outputs from other package versions were kept (exit %d):\n%s", r.code, r.stderr)
	}
}

func TestFailedPublishKeepsEarlierOutputs(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	earlier := map[string]string{"resnet8.pt": "earlier model", "resnet8.state_dict.pt": "earlier weights"}
	for name, content := range earlier {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The report's path is taken by a directory: the last file cannot be
	// published, so none may be.
	if err := os.MkdirAll(filepath.Join(dir, "resnet8.report.json", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := onnx2pt(t, dir, "convert", "--input", "resnet8.onnx")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "previous outputs were kept") {
		t.Fatalf("exit %d, last line %q", r.code, lastLine(r.stderr))
	}
	for name, content := range earlier {
		if data, _ := os.ReadFile(filepath.Join(dir, name)); string(data) != content {
			t.Errorf("%s was replaced although the run failed", name)
		}
	}
	assertOnly(t, dir, "resnet8.onnx", "resnet8.pt", "resnet8.state_dict.pt", "resnet8.report.json", "resnet8.failed.report.json")
}

// reluLog writes m.onnx: y = log(relu(x)), which is -inf wherever x <= 0,
// in onnxruntime and torch alike.
const reluLog = `
import onnx
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Log", ["r"], ["y"])], "relu_log",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, "m.onnx")
`

func TestInfiniteOutputsVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, reluLog)
	r := onnx2pt(t, dir, "convert", "--input", "m.onnx")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	rep := readJSON(t, filepath.Join(dir, "m.report.json"))
	if rep["status"] != "converted" {
		t.Errorf("status %v", rep["status"])
	}
}

func TestFailedVerificationWritesAFailureReport(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	r := onnx2pt(t, dir, "convert", "--input", "resnet8.onnx", "--atol", "1e-12", "--rtol", "1e-12")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "resnet8.failed.report.json") {
		t.Fatalf("exit %d, last line %q", r.code, lastLine(r.stderr))
	}
	assertOnly(t, dir, "resnet8.onnx", "resnet8.failed.report.json")
	rep := readJSON(t, filepath.Join(dir, "resnet8.failed.report.json"))
	failure, _ := rep["failure"].(map[string]any)
	verification, _ := rep["verification"].(map[string]any)
	if rep["status"] != "failed" || failure["stage"] != "verify" || verification["passed"] != false {
		t.Errorf("failure report: status %v, failure %v, verification %v", rep["status"], failure, verification)
	}
	// A later success removes it.
	if r := onnx2pt(t, dir, "convert", "--input", "resnet8.onnx"); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	assertOnly(t, dir, "resnet8.onnx", "resnet8.pt", "resnet8.state_dict.pt", "resnet8.report.json",
		"resnet8.torchscript.pt", "resnet8.pt2", "resnet8")
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// logMatMul writes m.onnx: y = log(x) · w, NaN everywhere for inputs drawn
// around zero.
const logMatMul = `
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "w")
graph = helper.make_graph([helper.make_node("Log", ["x"], ["l"]), helper.make_node("MatMul", ["l", "w"], ["y"])],
    "log_matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, "m.onnx")
`

func TestAWrongConversionIsNotVerified(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, logMatMul)
	args := []string{"convert", "--input", "m.onnx", "--artifacts", "checkpoint,state_dict"}
	// MatMul's converter negates its result (the test hooks'
	// ONNX2PT_TEST_MUTATION): the probes must reach values where log is
	// finite, or nothing is compared and the model passes.
	cmd := hooked(t, dir, t.TempDir(), args...)
	cmd.Env = append(cmd.Env, "ONNX2PT_TEST_MUTATION=sign_flip@y")
	r := runCmd(t, cmd)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "differ from onnxruntime beyond tolerance") {
		t.Fatalf("a negated MatMul was not refused: exit %d\n%s", r.code, r.stderr)
	}
	assertOnly(t, dir, "m.onnx", "m.failed.report.json")
	// The same model converted correctly verifies, every element compared.
	if r := onnx2pt(t, dir, args...); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	verification, _ := readJSON(t, filepath.Join(dir, "m.report.json"))["verification"].(map[string]any)
	outputs, _ := verification["outputs"].([]any)
	if len(outputs) != 1 || outputs[0].(map[string]any)["finite_share"] != 1.0 {
		t.Errorf("verification %v", verification)
	}
}

// alwaysNaN writes m.onnx: y = sqrt(-(x²) - 1), NaN for every input.
const alwaysNaN = `
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
nodes = [helper.make_node("Mul", ["x", "x"], ["s"]), helper.make_node("Neg", ["s"], ["n"]),
    helper.make_node("Sub", ["n", "one"], ["b"]), helper.make_node("Sqrt", ["b"], ["y"])]
graph = helper.make_graph(nodes, "nan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [one])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, "m.onnx")
`

func TestAnOutputWithNothingToCompareIsNotVerified(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, alwaysNaN)
	r := onnx2pt(t, dir, "convert", "--input", "m.onnx", "--artifacts", "checkpoint,state_dict")
	last := lastLine(r.stderr)
	if r.code != 1 || !strings.Contains(last, "not verified: too few finite values to compare in 'y' (0% finite)") || !strings.Contains(last, "data.inputs") {
		t.Fatalf("exit %d, last line %q", r.code, last)
	}
	assertOnly(t, dir, "m.onnx", "m.failed.report.json")
}

// raising writes m.onnx, whose one node (the test hooks' Raise) converts
// but raises a plain Python error when run, with the input data and the
// expected outputs beside it (onnxruntime cannot run the test domain).
const raising = `
import numpy as np, onnx
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Raise", ["x"], ["y"], domain="onnx2pt.test")], "raising",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("onnx2pt.test", 1)])
model.ir_version = 8
onnx.save(model, "m.onnx")
np.savez("in.npz", x=np.zeros((2, 3), np.float32))
np.savez("out.npz", y=np.zeros((2, 3), np.float32))
open("c.yaml", "w").write("artifacts: [checkpoint]\nmodels:\n  - {input: m.onnx, output: m.pt, data: {inputs: in.npz, expected: out.npz}}\n")
`

func TestVerboseShowsThePythonTraceback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, raising)
	r := runCmd(t, hooked(t, dir, t.TempDir(), "convert", "-c", "c.yaml"))
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "(run with --verbose for the traceback)") || strings.Contains(r.stderr, "Traceback (most recent call last)") {
		t.Fatalf("exit %d, without --verbose:\n%s", r.code, r.stderr)
	}
	r = runCmd(t, hooked(t, dir, t.TempDir(), "convert", "-c", "c.yaml", "--verbose"))
	if r.code != 1 || !strings.Contains(r.stderr, "Traceback (most recent call last)") || !strings.Contains(r.stderr, "raised by the test hooks") {
		t.Fatalf("exit %d, --verbose printed no traceback:\n%s", r.code, r.stderr)
	}
}

// det16 writes m.onnx: a float16 model whose Det torch computes in float32
// alone (no float16 LU kernel on the CPU).
const det16 = `
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 3)).astype(np.float16), "w")
nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Det", ["m"], ["y"], name="det")]
graph = helper.make_graph(nodes, "det16", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["n", 3, 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["n"])], [w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, "m.onnx")
`

func TestAFloat16ModelIsVerifiedAtItsPrecision(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, det16)
	r := onnx2pt(t, dir, "convert", "--input", "m.onnx", "--artifacts", "checkpoint,state_dict")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "1 nodes compute in float32") {
		t.Errorf("no warning about the node computed in float32:\n%s", r.stderr)
	}
	rep := readJSON(t, filepath.Join(dir, "m.report.json"))
	source, _ := rep["source"].(map[string]any)
	verification, _ := rep["verification"].(map[string]any)
	nodes, _ := rep["float32_nodes"].([]any)
	if source["precision"] != "float16" || len(nodes) != 1 || nodes[0] != "det" {
		t.Errorf("precision %v, float32_nodes %v", source["precision"], rep["float32_nodes"])
	}
	// rtol from float16's machine epsilon, not the float32 default
	if rtol, _ := verification["rtol"].(float64); rtol != 16*0.0009765625 {
		t.Errorf("rtol %v", verification["rtol"])
	}
}
