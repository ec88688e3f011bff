package main

// End-to-end tests of user converters (the converters setting): a model
// with an op of the user's own domain converts through a converter file,
// verified against the user's expected outputs; the converter's content is
// part of the up-to-date check; a converter that does not import stops the
// run with one line naming it.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// myScaleModel writes the README's example: my_scale.onnx computing
// y = MyScale(x, alpha=2.5) + 1, MyScale from the domain my.ops, which
// onnxruntime cannot run; the inputs and the outputs expected for them,
// computed in numpy; and the config converting it with ops/my_ops.py.
const myScaleModel = `
import numpy as np, onnx
from onnx import TensorProto, helper
nodes = [
    helper.make_node("MyScale", ["x"], ["scaled"], name="scale", domain="my.ops", alpha=2.5),
    helper.make_node("Add", ["scaled", "one"], ["y"], name="plus_one"),
]
one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
graph = helper.make_graph(nodes, "my_scale",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [one])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)])
onnx.save(model, "my_scale.onnx")
x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
np.savez("inputs.npz", x=x)
np.savez("expected.npz", y=x * np.float32(2.5) + np.float32(1))
`

// myOps is the README's converter file for MyScale.
const myOps = `import torch
from onnx2torch.node_converters.registry import add_converter
from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node


class MyScale(torch.nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha


@add_converter(operation_type="MyScale", version=1, domain="my.ops")
def convert_my_scale(node, graph):
    alpha = node.attributes.get("alpha", 1.0)
    return OperationConverterResult(torch_module=MyScale(alpha), onnx_mapping=onnx_mapping_from_node(node))
`

const myScaleConfig = `converters: [ops/my_ops.py]
models:
  - input: my_scale.onnx
    output: my_scale.pt
    data: {inputs: inputs.npz, expected: expected.npz}
`

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAUserConverterConvertsACustomOp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, myScaleModel)
	ops := filepath.Join(dir, "ops", "my_ops.py")
	writeText(t, ops, myOps)
	writeText(t, filepath.Join(dir, "onnx2pt.yaml"), myScaleConfig)
	// Run from elsewhere: the converter's path is relative to the config file.
	elsewhere := t.TempDir()
	args := []string{"convert", "-c", filepath.Join(dir, "onnx2pt.yaml"), "-v"}

	r := onnx2pt(t, elsewhere, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`User converter \S*ops/my_ops.py converted 1 node: scale`,
		`Max abs diff vs the expected outputs: \d`,
		`Saved to \S*my_scale.pt`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stderr) {
			t.Errorf("log lacks %q:\n%s", want, r.stderr)
		}
	}
	var rep struct {
		Converters []struct {
			Path   string `json:"path"`
			Module string `json:"module"`
			SHA256 string `json:"sha256"`
			Ops    []struct {
				Domain  string `json:"domain"`
				Op      string `json:"op"`
				Version int    `json:"version"`
			} `json:"ops"`
			Nodes []string `json:"nodes"`
		} `json:"converters"`
		Verification struct {
			Passed bool `json:"passed"`
		} `json:"verification"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "my_scale.report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Converters) != 1 {
		t.Fatalf("report's converters: %+v", rep.Converters)
	}
	c := rep.Converters[0]
	if c.Path != ops || c.Module != "my_ops" || c.SHA256 != fileSHA256(t, ops) || strings.Join(c.Nodes, ",") != "scale" ||
		len(c.Ops) != 1 || c.Ops[0].Domain != "my.ops" || c.Ops[0].Op != "MyScale" || c.Ops[0].Version != 1 || !rep.Verification.Passed {
		t.Errorf("report: %+v, verified %v", c, rep.Verification.Passed)
	}
	// The checkpoint loads where the converter's module imports, as the
	// README says; the TorchScript needs nothing of it.
	python(t, dir, `
import sys, numpy as np, torch
sys.path.insert(0, "ops")
x = np.load("inputs.npz")["x"]
want = np.load("expected.npz")["y"]
for model in (torch.load("my_scale.pt", weights_only=False)["model"], torch.jit.load("my_scale.torchscript.pt")):
    got = model(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got - want).max() <= 1e-6, (got, want)
`)

	r = onnx2pt(t, elsewhere, args...)
	if r.code != 0 || !strings.Contains(r.stderr, "Up to date:") {
		t.Fatalf("unchanged: not up to date (exit %d):\n%s", r.code, r.stderr)
	}
	// A change to the converter's file is a change to the conversion.
	writeText(t, ops, myOps+"# edited\n")
	r = onnx2pt(t, elsewhere, args...)
	if r.code != 0 || !strings.Contains(r.stderr, "user converter "+ops+" changed") || strings.Contains(r.stderr, "Up to date:") {
		t.Fatalf("a changed converter left the model up to date (exit %d):\n%s", r.code, r.stderr)
	}

	// inspect sees the converter too.
	r = onnx2pt(t, dir, "inspect", "my_scale.onnx", "--converters", "ops/my_ops.py")
	if r.code != 0 || !strings.Contains(r.stdout, "converts as it is") ||
		!strings.Contains(r.stderr, "User converter ops/my_ops.py converts 1 node: scale") {
		t.Errorf("inspect with the converter: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestAConverterThatDoesNotImportIsNamed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, myScaleModel)
	writeText(t, filepath.Join(dir, "bad_ops.py"), "import torch\n\ndef convert(node, graph)\n    pass\n")
	r := onnx2pt(t, dir, "convert", "my_scale.onnx", "--converters", "bad_ops.py", "-v")
	last := lastLine(r.stderr)
	if r.code != 3 || !strings.Contains(last, "user converter bad_ops.py failed to import: SyntaxError: ") ||
		!strings.Contains(last, "(bad_ops.py, line 3)") {
		t.Fatalf("exit %d, last line %q:\n%s", r.code, last, r.stderr)
	}
	// The traceback is in the verbose log, not in the error.
	if !strings.Contains(r.stderr, "Traceback (most recent call last)") || strings.Contains(last, "Traceback") {
		t.Errorf("no traceback with --verbose:\n%s", r.stderr)
	}
	assertOnly(t, dir, "my_scale.onnx", "inputs.npz", "expected.npz", "bad_ops.py")
}
