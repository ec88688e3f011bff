"""onnxruntime's com.microsoft ops, against onnxruntime's own kernels."""

import pytest
from convert_check import assert_same, random, run_ort, run_torch
from onnx import helper

MS = [helper.make_opsetid("com.microsoft", 1)]


def check_ms(node, feeds, outputs=("y",), initializers=None, atol=1e-5, rtol=1e-4):
    # (the ONNX checker knows no com.microsoft schemas: compare directly)
    model = make_model_unchecked(node, feeds, list(outputs), initializers)
    assert_same(run_ort(model, feeds), run_torch(model, feeds), atol=atol, rtol=rtol)


def make_model_unchecked(node, feeds, outputs, initializers, shape=None):
    """(outputs float32 of the given shape, or of unknown shape)"""
    from onnx import TensorProto, numpy_helper

    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)] + MS, ir_version=8)


@pytest.mark.parametrize(
    "op, inputs", [("Gelu", 1), ("BiasGelu", 2), ("FastGelu", 1), ("FastGelu", 2), ("QuickGelu", 1)]
)
def test_gelus(op, inputs):
    feeds = {"x": random((2, 3, 8)) * 3}
    if inputs == 2:
        feeds["bias"] = random((8,), seed=1)
    check_ms(helper.make_node(op, list(feeds), ["y"], domain="com.microsoft"), feeds)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("simplified", [False, True])
def test_skip_layer_normalization(with_bias, simplified):
    x, skip = random((2, 4, 8)) * 2, random((2, 4, 8), seed=1)
    params = {"gamma": random((8,), seed=2)}
    names = ["x", "skip", "gamma"]
    if not simplified:
        params["beta"] = random((8,), seed=3)
        names.append("beta")
    if with_bias:
        params["bias"] = random((8,), seed=4)
        names.append("bias")
    op = "SkipSimplifiedLayerNormalization" if simplified else "SkipLayerNormalization"
    node = helper.make_node(op, names, ["y"], domain="com.microsoft", epsilon=1e-5)
    check_ms(node, {"x": x, "skip": skip}, initializers=params)


def test_skip_layer_normalization_sum_output(tmp_path):
    # The sum as a fourth output, the statistics left out: through a
    # conversion, which matches a multi-output node's outputs by name.
    import onnx

    from onnx2pt_py.job import ConversionJob

    x, skip = random((2, 4, 8)), random((2, 4, 8), seed=1)
    params = {"gamma": random((8,), seed=2), "beta": random((8,), seed=3)}
    node = helper.make_node(
        "SkipLayerNormalization", ["x", "skip", "gamma", "beta"], ["y", "", "", "sum"], domain="com.microsoft"
    )
    model = make_model_unchecked(node, {"x": x, "skip": skip}, ["y", "sum"], params, shape=[2, 4, 8])
    path = str(tmp_path / "skip.onnx")
    onnx.save(model, path)
    job = ConversionJob(path, batch_sizes=[2])
    job.load()
    job.convert()
    job.probe()
    out = str(tmp_path / "skip.pt")
    assert job.verify(out, job.save(out, None, {})["sha256"])["passed"]


@pytest.mark.parametrize("attrs", [{}, {"transA": 1}, {"transB": 1, "alpha": 0.125}])
def test_fused_matmul(attrs):
    a = random((2, 5, 3) if attrs.get("transA") else (2, 3, 5))
    b = random((4, 5) if attrs.get("transB") else (5, 4), seed=1)
    check_ms(helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain="com.microsoft", **attrs), {"a": a, "b": b})


@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("batch_a, batch_b", [(1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("batch", [(2,), (2, 3)])
def test_fused_matmul_trans_batch(trans_a, trans_b, batch_a, batch_b, batch):
    # transBatch: a Transpose moving the first axis to the rows' place, fused
    # in by onnxruntime's optimizer ([M, B..., K] read as [B..., M, K]).
    def layout(rows, cols, trans, trans_batch):
        shape = list(batch) + ([cols, rows] if trans else [rows, cols])
        return [shape[-2]] + shape[:-2] + [shape[-1]] if trans_batch else shape

    a = random(layout(4, 5, trans_a, batch_a))
    b = random(layout(5, 6, trans_b, batch_b), seed=1)
    attrs = {"transA": trans_a, "transB": trans_b, "transBatchA": batch_a, "transBatchB": batch_b, "alpha": 0.5}
    check_ms(helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain="com.microsoft", **attrs), {"a": a, "b": b})


def test_onnxruntimes_own_onnx_domain_normalizations(tmp_path):
    # onnxruntime's transformer optimizer writes LayerNormalization into
    # opset-14 models (ONNX has it from 17) and SimplifiedLayerNormalization
    # (RMS) at any opset: the checker knows neither; onnxruntime runs both.
    import onnx
    from onnx import TensorProto

    from onnx2pt_py.job import ConversionJob

    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["n"], epsilon=1e-5),
        helper.make_node("SimplifiedLayerNormalization", ["n", "gamma"], ["y"], epsilon=1e-6),
    ]
    params = {"gamma": random((8,), seed=1), "beta": random((8,), seed=2)}
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8])],
        [onnx.numpy_helper.from_array(v, k) for k, v in params.items()],
    )
    path = str(tmp_path / "optimized.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), path)
    job = ConversionJob(path, batch_sizes=[1, 3])
    job.load()
    job.convert()
    job.probe()
    out = str(tmp_path / "optimized.pt")
    result = job.verify(out, job.save(out, None, {})["sha256"])
    assert result["passed"] and result["outputs"][0]["max_expected"] > 1
