import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import TensorProto, helper

ZERO_POINT_TYPES = [np.uint8, np.int8]


def _params(dtype, count, seed=1):
    scale = random((count,), seed=seed, low=0.01, high=0.1) if count else np.array(0.05, np.float32)
    info = np.iinfo(dtype)
    low, high = max(info.min, -20), min(info.max, 20)
    zero = random((count,), dtype=dtype, seed=seed + 1, low=low, high=high) if count else np.array(3, dtype)
    return scale, zero


@pytest.mark.parametrize("opset", [10, 13, 19, 21, 23, 24, 25])
@pytest.mark.parametrize("dtype", ZERO_POINT_TYPES)
def test_quantize_per_tensor(opset, dtype):
    x = random((3, 4, 5)) * 80  # some values saturate
    x.reshape(-1)[:4] = [0.25, 0.75, -0.25, 1.25]  # exact halves of the scale: round to even
    _, zero = _params(dtype, 0)
    scale = np.array(0.5, np.float32)
    model = make_model(
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["y"]),
        {"x": x},
        ["y"],
        opset,
        initializers={"scale": scale, "zero": zero},
    )
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [13, 19, 21, 23, 25])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", ZERO_POINT_TYPES)
def test_quantize_dequantize_per_axis(opset, axis, dtype):
    x = random((3, 4, 5)) * 3
    scale, zero = _params(dtype, x.shape[axis])
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], axis=axis),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], axis=axis),
    ]
    model = make_model(nodes, {"x": x}, ["y"], opset, initializers={"scale": scale, "zero": zero})
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [10, 13, 19, 21, 23, 25])
def test_quantize_without_zero_point_is_uint8(opset):
    x = random((4, 6)) * 5
    model = make_model(
        helper.make_node("QuantizeLinear", ["x", "scale"], ["y"]),
        {"x": x, "scale": np.array(0.1, np.float32)},
        ["y"],
        opset,
    )
    (y,) = check(model, {"x": x, "scale": np.array(0.1, np.float32)})
    assert y.dtype == np.uint8


@pytest.mark.parametrize("output_dtype", [TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16])
def test_quantize_21_output_dtype(output_dtype):
    x = random((4, 6)) * 500
    feeds = {"x": x, "scale": np.array(0.5, np.float32)}
    model = make_model(
        helper.make_node("QuantizeLinear", ["x", "scale"], ["y"], output_dtype=output_dtype), feeds, ["y"], 21
    )
    check(model, feeds)


@pytest.mark.parametrize("opset", [10, 13, 19, 21, 23, 24, 25])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_dequantize_per_tensor(opset, dtype):
    x = random((3, 7), dtype=dtype, low=-100 if dtype != np.uint8 else 0, high=100)
    inputs = ["x", "scale"] if dtype == np.int32 else ["x", "scale", "zero"]
    initializers = {"scale": np.array(0.02, np.float32)}
    if dtype != np.int32:
        initializers["zero"] = np.array(5, dtype)
    model = make_model(
        helper.make_node("DequantizeLinear", inputs, ["y"]), {"x": x}, ["y"], opset, initializers=initializers
    )
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [21, 23, 25])
@pytest.mark.parametrize("block_size, axis", [(2, 1), (3, 1), (4, 0), (2, -1)])
def test_blocked_quantization(opset, block_size, axis):
    x = random((4, 6, 5)) * 2
    blocks = -(-x.shape[axis] // block_size)
    shape = list(x.shape)
    shape[axis] = blocks
    scale = random(shape, seed=3, low=0.01, high=0.05)
    zero = random(shape, dtype=np.int8, seed=4, low=-5, high=5)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], axis=axis, block_size=block_size),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], axis=axis, block_size=block_size),
    ]
    model = make_model(nodes, {"x": x}, ["y", "q"], opset, initializers={"scale": scale, "zero": zero})
    check(model, {"x": x})


def test_dequantize_23_output_dtype():
    x = random((3, 4), dtype=np.int8)
    model = make_model(
        helper.make_node("DequantizeLinear", ["x", "scale"], ["y"], output_dtype=TensorProto.FLOAT16),
        {"x": x},
        ["y"],
        23,
        initializers={"scale": np.array(0.125, np.float32)},
    )
    check(model, {"x": x})


def test_quantize_float16_input():
    x = (random((3, 4)) * 2).astype(np.float16)
    feeds = {"x": x, "scale": np.array(0.01, np.float16)}
    model = make_model(helper.make_node("QuantizeLinear", ["x", "scale"], ["y"]), feeds, ["y"], 19)
    check(model, feeds)


def test_dequantize_computed_zero_point():
    # Zero point produced by a node, known only when the model runs.
    x = random((2, 5), dtype=np.uint8)
    feeds = {"x": x, "z": np.array(7, np.uint8)}
    nodes = [
        helper.make_node("Identity", ["z"], ["zero"]),
        helper.make_node("DequantizeLinear", ["x", "scale", "zero"], ["y"]),
    ]
    model = make_model(nodes, feeds, ["y"], 21, initializers={"scale": np.array(0.5, np.float32)})
    check(model, feeds)


@pytest.mark.parametrize("to", [TensorProto.INT4, TensorProto.FLOAT8E4M3FN])
def test_quantize_to_types_torch_lacks_names_the_type(to):
    import onnx2torch

    x = random((4,))
    feeds = {"x": x, "scale": np.array(0.5, np.float32)}
    model = make_model(helper.make_node("QuantizeLinear", ["x", "scale"], ["y"], output_dtype=to), feeds, ["y"], 21)
    with pytest.raises(NotImplementedError, match=TensorProto.DataType.Name(to)):
        onnx2torch.convert(model)


@pytest.mark.parametrize(
    "x",
    [
        np.array([[-1.5, 0.3, 2.75], [0.0, 4.0, -0.01]], np.float32),
        np.array([0.2, 0.9, 1.4], np.float32),  # all positive: the range widens to 0
        np.zeros((2, 3), np.float32),  # a constant: scale 1 / 255
    ],
)
def test_dynamic_quantize_linear(x):
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero_point"])
    check(make_model(node, {"x": x}, ["y", "scale", "zero_point"], 11), {"x": x})


@pytest.mark.parametrize(
    "a_zero, b_zero", [(None, None), (np.uint8(12), np.uint8(130)), (np.uint8(3), np.arange(4, dtype=np.uint8))]
)
def test_matmul_integer(a_zero, b_zero):
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (3, 5), dtype=np.uint8), rng.integers(0, 255, (5, 4), dtype=np.uint8)
    inputs, feeds = ["a", "b"], {"a": a, "b": b}
    if a_zero is not None:
        inputs += ["a_zero", "b_zero"]
        feeds.update(a_zero=np.asarray(a_zero), b_zero=np.asarray(b_zero))
    check(make_model(helper.make_node("MatMulInteger", inputs, ["y"]), feeds, ["y"], 10), feeds)


def test_matmul_integer_with_only_the_second_zero_point():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 255, (2, 3, 5), dtype=np.uint8), rng.integers(-128, 127, (5, 4), dtype=np.int8)
    feeds = {"a": a, "b": b, "b_zero": np.array(5, np.int8)}
    check(make_model(helper.make_node("MatMulInteger", ["a", "b", "", "b_zero"], ["y"]), feeds, ["y"], 10), feeds)


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1], "strides": [2, 2]}])
def test_conv_integer(attrs):
    rng = np.random.default_rng(2)
    x, w = rng.integers(0, 255, (1, 2, 6, 6), dtype=np.uint8), rng.integers(0, 255, (3, 2, 3, 3), dtype=np.uint8)
    feeds = {"x": x, "w": w, "x_zero": np.array(100, np.uint8)}
    node = helper.make_node("ConvInteger", ["x", "w", "x_zero"], ["y"], **attrs)
    check(make_model(node, feeds, ["y"], 10), feeds)
