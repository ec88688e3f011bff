import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper

# (input shape, attributes): symmetric pads (torch's own pooling), asymmetric
# pads, pads larger than half the kernel, ceil_mode with and without pads,
# strides larger than the kernel, 1-D and 3-D.
GEOMETRIES = [
    ((2, 3, 7, 8), {"kernel_shape": [3, 3]}),
    ((2, 3, 7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 7, 8), {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [0, 1, 2, 0]}),
    ((1, 2, 6, 6), {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 7, 8), {"kernel_shape": [3, 3], "strides": [2, 3], "ceil_mode": 1}),
    ((1, 2, 7, 9), {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}),
    ((1, 2, 9, 9), {"kernel_shape": [2, 2], "strides": [4, 3]}),
    ((1, 2, 6, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [2, 2, 2, 2]}),
    ((2, 3, 10), {"kernel_shape": [4], "strides": [3], "pads": [2, 1]}),
    ((1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 0, 1, 1, 1]}),
]
AUTO_PADS = [
    ((1, 2, 7, 8), {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 7, 8), {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 6, 6), {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 7, 8), {"kernel_shape": [3, 2], "strides": [2, 3], "auto_pad": "VALID"}),
]
DILATED = [
    ((1, 2, 9, 10), {"kernel_shape": [3, 3], "dilations": [2, 2]}),
    ((1, 2, 9, 10), {"kernel_shape": [2, 3], "dilations": [2, 1], "strides": [2, 2], "pads": [1, 2, 1, 0]}),
    ((1, 2, 9, 10), {"kernel_shape": [3, 2], "dilations": [2, 3], "strides": [2, 2], "ceil_mode": 1}),
]


def _model(op, shape, attrs, opset, outputs=("y",)):
    x = random(shape)
    return make_model(helper.make_node(op, ["x"], list(outputs), **attrs), {"x": x}, list(outputs), opset), {"x": x}


@pytest.mark.parametrize("opset", [19, 22])
@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("shape, attrs", GEOMETRIES + AUTO_PADS + DILATED)
def test_average_pool(opset, count_include_pad, shape, attrs):
    check(*_model("AveragePool", shape, dict(attrs, count_include_pad=count_include_pad), opset))


@pytest.mark.parametrize("opset", [22])
@pytest.mark.parametrize("shape, attrs", GEOMETRIES + AUTO_PADS + DILATED)
def test_max_pool(opset, shape, attrs):
    check(*_model("MaxPool", shape, attrs, opset))


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("shape, attrs", GEOMETRIES[:6] + AUTO_PADS[:2] + DILATED)
def test_max_pool_indices(shape, attrs, storage_order):
    model, feeds = _model("MaxPool", shape, dict(attrs, storage_order=storage_order), 22, outputs=("y", "indices"))
    check(model, feeds)


@pytest.mark.parametrize("pads", [[1, 0, 0, 1], [1, 1, 1, 1]])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_integers(dtype, pads):
    x = random((1, 2, 6, 7), dtype=dtype)
    model = make_model(helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=pads), {"x": x}, ["y"], 22)
    check(model, {"x": x})


@pytest.mark.parametrize(
    "opset, attrs", [(11, {"p": 2}), (18, {"p": 3}), (18, {"p": 1, "ceil_mode": 1}), (22, {"p": 2})]
)
@pytest.mark.parametrize("shape, geometry", GEOMETRIES[:4])
def test_lp_pool(opset, attrs, shape, geometry):
    check(*_model("LpPool", shape, dict(geometry, **attrs), opset))


@pytest.mark.parametrize("opset", [18, 22])
def test_lp_pool_dilations(opset):
    shape, geometry = DILATED[1]
    check(*_model("LpPool", shape, dict(geometry, p=2), opset))


@pytest.mark.parametrize("opset", [1, 22])
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (2, 3, 7), (1, 2, 3, 4, 5)])
def test_global_max_pool(opset, shape):
    check(*_model("GlobalMaxPool", shape, {}, max(opset, 7)))


@pytest.mark.parametrize("p", [1, 2, 3])
def test_global_lp_pool(p):
    check(*_model("GlobalLpPool", (2, 3, 4, 5), {"p": p}, 7))


def test_global_lp_pool_22():
    # Neither onnxruntime 1.32 nor the reference evaluator runs
    # GlobalLpPool-22: compare with numpy.
    from convert_check import run_torch

    model, feeds = _model("GlobalLpPool", (2, 3, 4, 5), {"p": 3}, 22)
    (y,) = run_torch(model, feeds)
    expected = (np.abs(feeds["x"]) ** 3).sum(axis=(2, 3), keepdims=True) ** (1 / 3)
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_average_pool_1():
    # Opset-1 AveragePool: no count_include_pad (pads not counted), no
    # ceil_mode. onnxruntime starts at opset 7, whose defaults are the same:
    # run the model there.
    shape, attrs = GEOMETRIES[2]
    model, feeds = _model("AveragePool", shape, attrs, 1)
    from convert_check import assert_same, run_ort, run_torch

    reference_model, _ = _model("AveragePool", shape, attrs, 7)
    assert_same(run_ort(reference_model, feeds), run_torch(model, feeds))


@pytest.mark.parametrize("op, opset", [("AveragePool", 7), ("AveragePool", 11), ("MaxPool", 8), ("MaxPool", 12)])
@pytest.mark.parametrize("shape, attrs", GEOMETRIES[:4] + GEOMETRIES[8:] + AUTO_PADS)
def test_versions_onnx2torch_converts_in_part(op, opset, shape, attrs):
    # torch.nn pooling where onnx2torch's converter takes the node, this
    # package's where it refuses it (asymmetric pads, SAME with strides).
    attrs = {k: v for k, v in attrs.items() if opset >= 10 or k != "ceil_mode"}
    check(*_model(op, shape, attrs, opset))
