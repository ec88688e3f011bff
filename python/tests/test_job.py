import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO
from onnx2pt_py import job, model_info
from onnx2pt_py.errors import UserError

RESNET8 = os.path.join(REPO, "models", "resnet8.onnx")


def save(model, path):
    onnx.save(model, str(path))
    return str(path)


def tiny_model(op="Relu", domain="", opset=13, shape=("n", 4)):
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def test_resnet8_end_to_end(tmp_path):
    j = job.ConversionJob(RESNET8, batch_sizes=[1, 3])
    info = j.load()
    assert info["inputs"][0]["shape"] == ["batch", 32, 32, 3]
    assert info["unsupported_ops"] == []
    weights = j.convert()
    assert weights == {
        "parameters": 77536,
        "trainable_parameters": 77536,
        "weight_buffers": 650,  # Dense kernel 64x10 + bias 10 kept as buffers
        "normalization_statistics": 480,
        "total": 78186,
    }
    probes = j.probe()
    assert [p["output_shapes"] for p in probes] == [[[1, 10]], [[3, 10]]]
    out = tmp_path / "m.pt"
    saved = j.save(str(out), str(tmp_path / "sd.pt"), {"k": "v"})
    result = j.verify(str(out), saved["sha256"], 1e-5, 1e-4)
    assert result["passed"]
    assert result["outputs"][0]["max_abs_diff"] < 1e-5


def test_verify_refuses_a_file_changed_after_saving(tmp_path):
    j = job.ConversionJob(RESNET8, batch_sizes=[1])
    j.load()
    j.convert()
    j.probe()
    out = tmp_path / "m.pt"
    saved = j.save(str(out), None, {})
    with open(out, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(UserError, match="changed after it was written"):
        j.verify(str(out), saved["sha256"], 1e-5, 1e-4)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"\x08\x01garbage-bytes", "not an ONNX model|invalid ONNX model")],
)
def test_bad_files_are_user_errors(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        model_info.load_model(str(path))


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    model = tiny_model()
    weights = numpy_helper.from_array(np.ones(4, dtype=np.float32), "w")
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("raw_data")
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../secret.bin"
    model.graph.initializer.append(weights)
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    sub = tmp_path / "models"
    sub.mkdir()
    path = save(model, sub / "evil.onnx")
    with pytest.raises(UserError, match="outside the model's folder"):
        model_info.load_model(path)


def test_unsupported_ops_are_listed_before_converting(tmp_path):
    path = save(tiny_model(op="Frobnicate", domain="com.example"), tmp_path / "custom.onnx")
    j = job.ConversionJob(path)
    info = j.load()
    assert info["unsupported_ops"] == [{"domain": "com.example", "op": "Frobnicate", "opset": 1}]
    with pytest.raises(UserError, match="cannot convert Frobnicate"):
        j.convert()


def test_symbolic_dims_take_batch_or_configured_sizes():
    specs = [
        {"name": "a", "dtype": "float32", "shape": ["batch", "seq", 3]},
        {"name": "b", "dtype": "int64", "shape": [None]},
    ]
    a, b = job.make_inputs(specs, batch=2, dims={"seq": 5}, seed=0)
    assert a.shape == (2, 5, 3) and a.dtype == np.float32
    assert b.shape == (2,) and b.dtype == np.int64


def test_absurd_shapes_are_refused_before_allocating():
    specs = [{"name": "x", "dtype": "float32", "shape": [1 << 20, 1 << 20]}]
    with pytest.raises(UserError, match="too large"):
        job.make_inputs(specs, batch=1, dims={}, seed=0)


def test_compare_uses_allclose_semantics():
    stat = {"name": "y", "max_abs_diff": 0.0, "max_rel_diff": 0.0, "within_tolerance": True}
    job.compare(stat, np.array([1.0, 100.0]), np.array([1.0 + 5e-6, 100.0 + 5e-3]), atol=1e-5, rtol=1e-4)
    assert stat["within_tolerance"]  # 5e-3 <= 1e-5 + 1e-4 * 100
    assert stat["max_abs_diff"] == pytest.approx(5e-3)
    job.compare(stat, np.array([1.0]), np.array([1.001]), atol=1e-5, rtol=1e-4)
    assert not stat["within_tolerance"]
    nan = {"name": "y", "max_abs_diff": 0.0, "max_rel_diff": 0.0, "within_tolerance": True}
    job.compare(nan, np.array([1.0]), np.array([np.nan]), atol=1e-5, rtol=1e-4)
    assert not nan["within_tolerance"] and nan["max_abs_diff"] == float("inf")


def test_output_shape_mismatch_is_reported():
    with pytest.raises(UserError, match="declares"):
        job.check_shape({"name": "y", "shape": ["batch", 10]}, (4, 11), {"batch": 4}, "m.onnx")
    job.check_shape({"name": "y", "shape": ["batch", 10]}, (4, 10), {"batch": 4}, "m.onnx")
    job.check_shape({"name": "y", "shape": ["other", 10]}, (7, 10), {"batch": 4}, "m.onnx")
