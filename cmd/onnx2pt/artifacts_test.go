package main

// End-to-end tests of the portable artifacts' rules: by default a format
// that fails is left out and explained; asked for by name, it fails the
// conversion and nothing is written.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// computedReshape writes m.onnx: y = Reshape(x, shape computed from x's
// shape), which torch.export cannot export (the target is data-dependent).
const computedReshape = `
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
inits = [numpy_helper.from_array(np.array(v, np.int64), n)
         for n, v in (("start", [0]), ("end", [1]), ("tail", [2, 2]))]
nodes = [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("Slice", ["s", "start", "end"], ["n"]),
         helper.make_node("Concat", ["n", "tail"], ["shape"], axis=0),
         helper.make_node("Reshape", ["x", "shape"], ["y"], name="the_reshape")]
graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 2])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, "m.onnx")
`

func TestAPortableArtifactThatFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	python(t, dir, computedReshape)

	// Asked for by name: the conversion fails, nothing is written.
	r := onnx2pt(t, dir, "convert", "--input", "m.onnx", "--artifacts", "checkpoint,exported")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "the exported artifact failed at the_reshape (OnnxReshape)") {
		t.Fatalf("exit %d, last line %q", r.code, lastLine(r.stderr))
	}
	assertOnly(t, dir, "m.onnx", "m.failed.report.json")

	// By default: converted without it, and the report, the summary, the
	// JUnit file and the run's last line say why.
	r = onnx2pt(t, dir, "convert", "--input", "m.onnx", "--summary", "out/s.json", "--junit", "out/j.xml")
	if r.code != 0 || !strings.Contains(r.stderr, "No exported artifact at the_reshape (OnnxReshape)") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if last := lastLine(r.stderr); !strings.Contains(last, "the exported artifact was not written: at the_reshape (OnnxReshape)") {
		t.Errorf("last line %q does not name the missing artifact", last)
	}
	if strings.Count(r.stderr, "level=warning") > 3 {
		t.Errorf("the exporter's own output came out as warnings:\n%s", r.stderr)
	}
	summary := readJSON(t, filepath.Join(dir, "out", "s.json"))
	missing := summary["models"].([]any)[0].(map[string]any)["artifacts_missing"]
	if m, _ := missing.([]any); len(m) != 1 || m[0].(map[string]any)["format"] != "exported" {
		t.Errorf("summary artifacts_missing %v", missing)
	}
	if junit, _ := os.ReadFile(filepath.Join(dir, "out", "j.xml")); !strings.Contains(string(junit), "artifact missing: exported: at the_reshape") {
		t.Errorf("JUnit file lacks the missing artifact:\n%s", junit)
	}
	os.RemoveAll(filepath.Join(dir, "out"))
	rep := readJSON(t, filepath.Join(dir, "m.report.json"))
	arts, _ := rep["artifacts"].([]any)
	if len(arts) != 3 {
		t.Fatalf("report artifacts %v", rep["artifacts"])
	}
	exported := arts[1].(map[string]any)
	if exported["format"] != "exported" || exported["path"] != nil || !strings.HasPrefix(exported["error"].(string), "exporting failed") {
		t.Errorf("exported artifact reported as %v", exported)
	}
	files := []string{"m.onnx", "m.pt", "m.state_dict.pt", "m.report.json"}
	if ts := arts[0].(map[string]any); ts["path"] != nil {
		files = append(files, "m.torchscript.pt") // a trace whose check passed
	}
	if src := arts[2].(map[string]any); src["path"] != nil {
		files = append(files, "m") // model.py, which need not export where .pt2 did not
	}
	assertOnly(t, dir, files...)
}

// Formats an earlier conversion wrote and a later one does not are removed
// with it: no file is left that the report does not vouch for.
func TestArtifactsNoLongerAskedForAreRemoved(t *testing.T) {
	t.Parallel()
	dir := workdir(t)
	if r := onnx2pt(t, dir, "convert", "resnet8.onnx"); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	assertOnly(t, dir, "resnet8.onnx", "resnet8.pt", "resnet8.state_dict.pt", "resnet8.report.json", "resnet8.torchscript.pt", "resnet8.pt2", "resnet8")
	// A file of the user's own in the source folder stays, with the folder.
	if err := os.WriteFile(filepath.Join(dir, "resnet8", "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := onnx2pt(t, dir, "convert", "resnet8.onnx", "--artifacts", "checkpoint"); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	assertOnly(t, dir, "resnet8.onnx", "resnet8.pt", "resnet8.report.json", "resnet8")
	assertOnly(t, filepath.Join(dir, "resnet8"), "notes.txt")
}
