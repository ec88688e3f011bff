"""Portable artifacts: TorchScript and torch.export programs, checked with
torch alone at a batch size their trace or export never saw."""

import hashlib
import json
import os
import subprocess

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnx2pt_py import artifacts, exportable, job


def reshape_model(path, computed):
    """y = Reshape(x, shape) for x (n, 4): shape is a constant [-1, 2, 2], or
    computed from x's own shape (Shape -> Slice -> Concat), which a trace
    records as the example's batch size."""
    nodes = []
    inits = []
    if computed:
        inits += [
            numpy_helper.from_array(np.array([0], np.int64), "start"),
            numpy_helper.from_array(np.array([1], np.int64), "end"),
            numpy_helper.from_array(np.array([2, 2], np.int64), "tail"),
        ]
        nodes += [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Slice", ["s", "start", "end"], ["n"], name="take_batch"),
            helper.make_node("Concat", ["n", "tail"], ["shape"], axis=0),
        ]
    else:
        inits.append(numpy_helper.from_array(np.array([-1, 2, 2], np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["x", "shape"], ["y"], name="the_reshape"))
    graph = helper.make_graph(
        nodes,
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def converted(path):
    j = job.ConversionJob(path, batch_sizes=[1, 4])
    j.load()
    j.normalise()
    j.convert()
    return j


@pytest.mark.parametrize("fmt", artifacts.FORMATS)
def test_constant_reshape_exports_at_every_batch(tmp_path, fmt):
    j = converted(reshape_model(tmp_path / "m.onnx", computed=False))
    out = tmp_path / f"m.{fmt}"
    result = j.export(fmt, str(out), {"source": "m.onnx"})
    assert result["error"] is None, result
    assert result["batches"] == [1, 4, 7]  # 7: a size neither the trace nor the export saw
    assert result["verification"]["passed"]
    assert result["rewrites"] == {"OnnxReshape": 1}
    assert result["sha256"] and out.exists()


def test_torch_export_fails_on_onnx2torch_reshape_without_the_rewrite(tmp_path):
    j = converted(reshape_model(tmp_path / "m.onnx", computed=False))
    example = (torch.zeros(4, 4),)
    shapes = artifacts.dynamic_shapes(j.info["inputs"])
    with pytest.raises(Exception, match="data-dependent"):
        torch.export.export(j.torch_model, example, dynamic_shapes=shapes, strict=False)
    assert exportable.make_exportable(j.torch_model) == {"OnnxReshape": 1}
    torch.export.export(j.torch_model, example, dynamic_shapes=shapes, strict=False)


def batch_range_model(path):
    """y = x + [0, 1, ..., n-1] as a column, for x (n, 4): the Range's limit
    is read from x's shape as a number, which a trace records as the
    example's batch size."""
    inits = [numpy_helper.from_array(np.array(v, np.int64), name) for name, v in (("zero", 0), ("one", 1))]
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"]),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["rf", "one"], ["column"]),
        helper.make_node("Add", ["x", "column"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "batch_range",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_a_trace_bound_to_its_batch_is_caught(tmp_path):
    j = converted(batch_range_model(tmp_path / "m.onnx"))
    result = j.export("torchscript", str(tmp_path / "m.ts"), {})
    # Traced at batch 4, the range became the constant [0, 1, 2, 3]: it does
    # not broadcast against batch 7.
    assert result["error"].startswith("running it with torch alone: RuntimeError"), result
    assert result["verification"] is None


def test_a_trace_of_a_shape_computed_from_the_input_stays_dynamic(tmp_path):
    # Shape -> Slice -> Concat -> Reshape: the trace keeps the batch symbolic.
    j = converted(reshape_model(tmp_path / "m.onnx", computed=True))
    result = j.export("torchscript", str(tmp_path / "m.ts"), {})
    assert result["error"] is None and result["verification"]["passed"], result
    assert len(result["batches"]) >= 3  # the probes' batch sizes and one unseen


def test_an_export_that_fails_names_the_node(tmp_path):
    j = converted(reshape_model(tmp_path / "m.onnx", computed=True))
    result = j.export("exported", str(tmp_path / "m.pt2"), {})
    assert result["error"].startswith("exporting failed: ")
    # The Slice has constant bounds and is rewritten; the Reshape's target is
    # computed from the input's shape, a data-dependent value for torch.export.
    assert result["node"] == "the_reshape (OnnxReshape)"
    assert result["rewrites"] == {"OnnxSlice": 1}
    assert not (tmp_path / "m.pt2").exists() or result["sha256"] == ""


def test_checker_blocks_onnx2torch():
    proc = subprocess.run(
        [artifacts.python_executable(), "-I", artifacts.CHECK_SCRIPT],
        input="",
        capture_output=True,
        text=True,
        check=True,
    )
    ready = json.loads(proc.stdout.splitlines()[0])
    assert ready["ready"] is True  # it refuses to run when onnx2torch imports


def test_checker_answers_for_a_broken_artifact(tmp_path):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not an archive")
    sha256 = hashlib.sha256(b"not an archive").hexdigest()
    outputs, error = artifacts.check("exported", str(bad), [[np.zeros((1, 4), np.float32)]], sha256)
    assert outputs is None and error.startswith("running it with torch alone: ")


def test_checker_refuses_an_artifact_other_than_the_one_written(tmp_path):
    """The checker hashes the bytes it reads and loads those same bytes: a
    file that is not the one written is never loaded."""
    j = converted(reshape_model(tmp_path / "m.onnx", computed=False))
    out = tmp_path / "m.pt2"
    result = j.export("exported", str(out), {})
    assert result["error"] is None, result
    out.write_bytes(out.read_bytes() + b"tampered")
    outputs, error = artifacts.check("exported", str(out), [[np.zeros((1, 4), np.float32)]], result["sha256"])
    assert outputs is None and "changed after it was written" in error


@pytest.mark.parametrize("fmt", artifacts.FORMATS)
def test_an_artifact_swapped_right_after_writing_is_refused(tmp_path, monkeypatch, fmt):
    """The reported hash is of the bytes written, and the check refuses a file
    swapped in before it reads it back."""
    j = converted(reshape_model(tmp_path / "m.onnx", computed=False))
    out = tmp_path / f"m.{fmt}"
    real_write = artifacts.write
    written = {}

    def write_then_swap(fmt, model, example, specs, path, metadata):
        sha256 = real_write(fmt, model, example, specs, path, metadata)
        written["bytes"] = open(path, "rb").read()
        (tmp_path / "swap").write_bytes(b"swapped in")
        os.replace(tmp_path / "swap", path)
        return sha256

    monkeypatch.setattr(artifacts, "write", write_then_swap)
    result = j.export(fmt, str(out), {})
    assert "changed after it was written" in result["error"], result
    assert result["sha256"] == hashlib.sha256(written["bytes"]).hexdigest()
    assert result["verification"] is None


def test_constant_slices_and_squeezes_export(tmp_path):
    """Slice (with a negative step and a negative axis) and Squeeze with
    constant inputs are rewritten and export at every batch size."""
    inits = [
        numpy_helper.from_array(np.array([0, 5], np.int64), "starts"),
        numpy_helper.from_array(np.array([3, -9], np.int64), "ends"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "axes"),
        numpy_helper.from_array(np.array([1, -2], np.int64), "steps"),
        numpy_helper.from_array(np.array([2], np.int64), "squeeze_axes"),
    ]
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"]),
        helper.make_node("Unsqueeze", ["s", "squeeze_axes"], ["u"]),
        helper.make_node("Squeeze", ["u", "squeeze_axes"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slices",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = str(tmp_path / "slices.onnx")
    onnx.save(model, path)
    j = converted(path)
    result = j.export("exported", str(tmp_path / "slices.pt2"), {})
    assert result["error"] is None, result
    assert result["verification"]["passed"] and result["batches"] == [1, 4, 7]
    assert result["rewrites"] == {"OnnxSlice": 1, "OnnxSqueezeDynamicAxes": 1}
