"""Models whose tensors live in external data files, every one of them (as
onnx.save_model(..., save_as_external_data=True, size_threshold=0) and some
exporters of large models write them): onnxruntime, given such a model by
path, cannot infer the shapes that need a tensor's values (a Reshape's
target shape), and onnx's shape inference, which onnx2torch runs, leaves
them unknown."""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from onnx2pt_py import job, model_info


def conv_reshape_gemm(folder, same_upper=False):
    """y = Gemm(Reshape(Conv(x), shape)) for x (n, 3, 8, 8), every tensor in
    folder/m.data. same_upper: the Conv pads with auto_pad=SAME_UPPER, which
    onnx2torch refuses and the auto_pad pass rewrites, so that
    normalisation's check runs too."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),  # 432 bytes
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),  # 16
        numpy_helper.from_array(np.array([-1, 4 * 8 * 8], np.int64), "shape"),  # 16
        numpy_helper.from_array(rng.standard_normal((10, 256)).astype(np.float32), "fc"),  # 10240
        numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fcb"),  # 40
    ]
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["c"], **({"auto_pad": "SAME_UPPER"} if same_upper else {"pads": [1] * 4})
        ),
        helper.make_node("Reshape", ["c", "shape"], ["r"]),
        helper.make_node("Gemm", ["r", "fc", "fcb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_reshape_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = str(folder / "m.onnx")
    onnx.save_model(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data", size_threshold=0
    )
    return path


def external_names(model):
    return {t.name for t in external_data_helper._get_all_tensors(model) if external_data_helper.uses_external_data(t)}


@pytest.fixture
def sessions(monkeypatch):
    """The models onnxruntime is given, as ModelProtos (external tensors left
    external), or paths."""
    given = []
    real = onnxruntime.InferenceSession

    def spy(model, *args, **kwargs):
        given.append(onnx.load_from_string(model) if isinstance(model, bytes) else model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    return given


def convert_and_verify(path, tmp_path, **kwargs):
    j = job.ConversionJob(path, batch_sizes=[1, 3], locate=True, **kwargs)
    info = j.load()
    assert info["external_data"][0]["location"] == "m.data"
    plan = j.normalise()
    assert not plan["remaining"], plan
    j.convert()
    assert [p["output_shapes"] for p in j.probe()] == [[[1, 10]], [[3, 10]], [[3, 10]]]
    out = str(tmp_path / "m.pt")
    saved = j.save(out, None, {})
    result = j.verify(out, saved["sha256"])
    assert result["passed"], result
    assert result["divergence"] is None  # locate ran its own onnxruntime session, and found nothing
    return j, plan


@pytest.mark.parametrize("same_upper", [False, True])
def test_a_model_with_every_tensor_external_converts_and_verifies(tmp_path, sessions, same_upper):
    path = conv_reshape_gemm(tmp_path, same_upper)
    j, plan = convert_and_verify(path, tmp_path)
    if same_upper:
        assert [p["name"] for p in plan["passes"]] == ["auto_pad"] and plan["check"]["passed"]
    # Small tensors are read in when the model is loaded: shape inference
    # (onnx's and onnxruntime's) sees the Reshape's target.
    assert external_names(j.onnx_model) == set()
    assert sessions and all(not isinstance(m, str) and external_names(m) == set() for m in sessions)


def test_a_model_too_large_to_read_in_keeps_its_large_tensors_external(tmp_path, sessions, monkeypatch):
    """What a model over protobuf's 2 GiB goes through, at a smaller scale:
    tensors over INLINE_TENSOR_BYTES stay in their file, onnxruntime reads
    them there, and the small ones (the Reshape's shape) are read in."""
    monkeypatch.setattr(model_info, "INLINE_TENSOR_BYTES", 64)
    path = conv_reshape_gemm(tmp_path, same_upper=True)
    j, plan = convert_and_verify(path, tmp_path)
    assert plan["check"]["passed"]
    assert external_names(j.onnx_model) == {"w", "fc"}
    # Every session: the original's, the normalisation check's and locate's.
    assert len(sessions) == 3
    for model in sessions:
        assert external_names(model) == {"w", "fc"}
        assert {t.name for t in model.graph.initializer} >= {"w", "fc", "shape"}


def test_small_tensors_are_read_in_smallest_first_up_to_the_total(tmp_path, monkeypatch):
    path = conv_reshape_gemm(tmp_path)
    monkeypatch.setattr(model_info, "INLINE_TOTAL_BYTES", 40)
    model, _ = model_info.load_model(path)
    # shape and b (16 bytes each) fit; fcb (40) would go over.
    assert external_names(model) == {"w", "fc", "fcb"}
    by_name = {t.name: t for t in model.graph.initializer}
    assert list(numpy_helper.to_array(by_name["shape"])) == [-1, 256]
