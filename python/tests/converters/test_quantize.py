import numpy as np
import pytest
import torch
from convert_check import assert_same, check, make_model, random, run_torch
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


@pytest.mark.parametrize(
    "attrs", [{}, {"pads": [1, 1, 1, 1], "strides": [2, 2]}, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}]
)
def test_conv_integer(attrs):
    rng = np.random.default_rng(2)
    x, w = rng.integers(0, 255, (1, 2, 6, 6), dtype=np.uint8), rng.integers(0, 255, (3, 2, 3, 3), dtype=np.uint8)
    feeds = {"x": x, "w": w, "x_zero": np.array(100, np.uint8)}
    node = helper.make_node("ConvInteger", ["x", "w", "x_zero"], ["y"], **attrs)
    check(make_model(node, feeds, ["y"], 10), feeds)


# --- QOperator graphs: QLinear*, QGemm, com.microsoft ops ---------------------
#
# Compared with onnxruntime without graph optimisations, so that each node
# runs its own kernel (a default session fuses and swaps kernels); integer
# outputs must be equal.

MS = [helper.make_opsetid("com.microsoft", 1)]
TYPES = {"u8": np.uint8, "s8": np.int8}


def run_ort_unoptimised(model, feeds):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def check_q(nodes, feeds, initializers, opset=13, outputs=("y",), atol=1e-5, rtol=1e-4):
    """Convert and compare with unoptimised onnxruntime; the converted outputs."""
    model = make_model(nodes, feeds, list(outputs), opset, initializers=initializers, extra_opsets=MS)
    expected = run_ort_unoptimised(model, feeds)
    actual = run_torch(model, feeds)
    assert_same(expected, actual, atol=atol, rtol=rtol)
    return actual


def assert_saturates(y):
    """Some values at each end of the type's range (the edge was tested)."""
    info = np.iinfo(y.dtype)
    assert (y == info.min).any() and (y == info.max).any()


def ms_node(op, inputs, outputs=("y",), **attrs):
    return helper.make_node(op, inputs, list(outputs), domain="com.microsoft", **attrs)


def zero_point(dtype, value):
    """A zero point of the type, negative ones folded into uint8's range."""
    return np.array(value if dtype == np.int8 else abs(value) + 100, dtype)


def conv_case(x_type, w_type, per_channel, seed=0):
    x = random((2, 4, 7, 6), TYPES[x_type], seed=seed)
    w = random((6, 4, 3, 3), TYPES[w_type], seed=seed + 1)
    inits = {
        "x_scale": np.array(0.05, np.float32),
        "x_zero_point": zero_point(TYPES[x_type], -7),
        "y_scale": np.array(0.1, np.float32),
        "y_zero_point": zero_point(TYPES[x_type], 3),
    }
    if per_channel:
        inits["w_scale"] = random((6,), seed=seed + 2, low=0.002, high=0.02)
        inits["w_zero_point"] = (
            (np.arange(6) - 3).astype(TYPES[w_type]) if w_type == "s8" else np.arange(6, dtype=np.uint8) + 120
        )
    else:
        inits["w_scale"] = np.array(0.01, np.float32)
        inits["w_zero_point"] = zero_point(TYPES[w_type], -2)
    return x, w, inits


CONV_ATTRS = [
    {},
    {"pads": [1, 2, 0, 1], "strides": [2, 1], "dilations": [1, 2]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
]


@pytest.mark.parametrize("x_type, w_type", [("u8", "u8"), ("u8", "s8"), ("s8", "s8")])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("attrs", CONV_ATTRS)
def test_qlinear_conv(x_type, w_type, per_channel, attrs):
    x, w, inits = conv_case(x_type, w_type, per_channel)
    inits["bias"] = random((6,), np.int32, seed=5, low=-3000, high=3000)
    names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point", "bias"]
    (y,) = check_q(helper.make_node("QLinearConv", names, ["y"], **attrs), {"x": x, "w": w}, inits, opset=10)
    assert_saturates(y)


def test_qlinear_conv_groups_without_bias():
    x, w, inits = conv_case("u8", "s8", per_channel=True, seed=3)
    w = w[:, :2]  # 2 groups of 2 input channels, 3 output channels each
    names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point"]
    check_q(helper.make_node("QLinearConv", names, ["y"], group=2), {"x": x, "w": w}, inits, opset=10)


def test_microsoft_qlinear_conv_channels_last():
    x, w, inits = conv_case("u8", "s8", per_channel=True, seed=4)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point"]
    check_q(ms_node("QLinearConv", names, channels_last=1, pads=[1, 1, 1, 1]), {"x": x, "w": w}, inits)


def matmul_case(a_type, b_type, a_shape, b_shape, per_column):
    a, b = random(a_shape, TYPES[a_type], seed=1), random(b_shape, TYPES[b_type], seed=2)
    n = b_shape[-1]
    inits = {
        "a_scale": np.array(0.03, np.float32),
        "a_zero_point": zero_point(TYPES[a_type], -5),
        "y_scale": np.array(0.1, np.float32),
        "y_zero_point": zero_point(TYPES[a_type], 9),
    }
    if per_column:  # 1-D, or for a batch of matrices (batch, 1, n)
        shape = (n,) if len(b_shape) == 2 else (b_shape[0], 1, n)
        inits["b_scale"] = random(shape, seed=3, low=0.01, high=0.05)
        inits["b_zero_point"] = np.full(shape, -4 if b_type == "s8" else 130, TYPES[b_type])
    else:
        inits["b_scale"] = np.array(0.02, np.float32)
        inits["b_zero_point"] = zero_point(TYPES[b_type], 6)
    return a, b, inits


MATMUL_NAMES = ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale", "y_zero_point"]


@pytest.mark.parametrize("opset", [10, 21])
@pytest.mark.parametrize("a_type, b_type", [("u8", "u8"), ("u8", "s8"), ("s8", "s8")])
@pytest.mark.parametrize(
    "a_shape, b_shape", [((3, 17), (17, 5)), ((2, 3, 17), (17, 5)), ((1, 3, 17), (2, 17, 5)), ((2, 3, 17), (2, 17, 5))]
)
@pytest.mark.parametrize("per_column", [False, True])
def test_qlinear_matmul(opset, a_type, b_type, a_shape, b_shape, per_column):
    a, b, inits = matmul_case(a_type, b_type, a_shape, b_shape, per_column)
    (y,) = check_q(helper.make_node("QLinearMatMul", MATMUL_NAMES, ["y"]), {"a": a, "b": b}, inits, opset=opset)
    assert_saturates(y)


def test_qlinear_matmul_per_row_a():
    # The specification allows a's scale and zero point per row; neither
    # onnxruntime nor the reference evaluator takes them: the formula in
    # float64, with scales that are powers of two (every product exact).
    a, b = random((3, 6), np.uint8, seed=1), random((6, 4), np.int8, seed=2)
    inits = {
        "a_scale": np.array([2**-6, 2**-5, 2**-7], np.float32),
        "a_zero_point": np.array([100, 128, 90], np.uint8),
        "b_scale": np.array(2**-5, np.float32),
        "b_zero_point": np.array(-3, np.int8),
        "y_scale": np.array(2**-1, np.float32),
        "y_zero_point": np.array(120, np.uint8),
    }
    model = make_model(
        helper.make_node("QLinearMatMul", MATMUL_NAMES, ["y"]), {"a": a, "b": b}, ["y"], 13, initializers=inits
    )
    (y,) = run_torch(model, {"a": a, "b": b})
    acc = (a.astype(np.float64) - inits["a_zero_point"][:, None]) @ (b.astype(np.float64) - inits["b_zero_point"])
    real = acc * inits["a_scale"][:, None].astype(np.float64) * float(inits["b_scale"]) / float(inits["y_scale"])
    np.testing.assert_array_equal(y, np.clip(np.round(real) + 120, 0, 255).astype(np.uint8))


QGEMM_NAMES = ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "c", "y_scale", "y_zero_point"]


@pytest.mark.parametrize("a_type, b_type", [("u8", "s8"), ("u8", "u8"), ("s8", "s8")])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 1), (0, 1)])
@pytest.mark.parametrize("c_shape", [None, (), (5,), (4, 5), (4, 1)])
@pytest.mark.parametrize("quantized_output", [True, False])
def test_qgemm(a_type, b_type, trans_a, trans_b, c_shape, quantized_output):
    a_shape, b_shape = ((19, 4) if trans_a else (4, 19)), ((5, 19) if trans_b else (19, 5))
    a, b, inits = matmul_case(a_type, b_type, a_shape, b_shape if not trans_b else (19, 5), per_column=trans_b)
    b = random(b_shape, TYPES[b_type], seed=2)
    names = list(QGEMM_NAMES)
    if c_shape is None:
        names[6] = ""
    else:
        inits["c"] = random(c_shape, np.int32, seed=7, low=-5000, high=5000)
    if not quantized_output:
        names = names[:7]
        del inits["y_scale"], inits["y_zero_point"]
    node = ms_node("QGemm", names, transA=trans_a, transB=trans_b, alpha=0.75 if trans_a else 1.0)
    check_q(node, {"a": a, "b": b}, inits)


BINARY_NAMES = ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "c_scale", "c_zero_point"]


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
@pytest.mark.parametrize("dtype", ["u8", "s8"])
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((2, 3, 40, 50), (2, 3, 40, 50)),
        ((2, 3, 40, 50), (1, 3, 1, 1)),  # b broadcast along the innermost axes
        ((1, 3, 1, 1), (2, 3, 40, 50)),
        ((2, 3, 40, 50), ()),
        ((40, 50), (50,)),
        ((2, 40, 1), (1, 1, 50)),
    ],
)
def test_qlinear_binary(op, dtype, a_shape, b_shape):
    t = TYPES[dtype]
    a, b = random(a_shape, t, seed=1), random(b_shape, t, seed=2)
    inits = {
        "a_scale": np.array(0.0173, np.float32),
        "a_zero_point": zero_point(t, -11),
        "b_scale": np.array(0.0291, np.float32),
        "b_zero_point": zero_point(t, 4),
        "c_scale": np.array(0.0237 if op == "QLinearAdd" else 0.0113, np.float32),
        "c_zero_point": zero_point(t, -2),
    }
    (y,) = check_q(ms_node(op, BINARY_NAMES), {"a": a, "b": b}, inits)
    if b.size > 16:
        assert_saturates(y)


@pytest.mark.parametrize("dtype", ["u8", "s8"])
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((4, 64), (4, 64)),
        ((4, 64), ()),
        ((), (4, 64)),
        ((4, 64), (4, 1)),
        ((3, 1), (3, 40)),
        ((5, 33), (33,)),
        ((), ()),
    ],
)
def test_qlinear_add_rounds_ties_as_onnxruntime(dtype, a_shape, b_shape):
    # Scales in simple ratios put many exact sums at half a step: which way
    # they round depends on the float32 operations' order and fusion.
    t = TYPES[dtype]
    a, b = random(a_shape, t, seed=1), random(b_shape, t, seed=2)
    inits = {
        "a_scale": np.array(0.5, np.float32),
        "a_zero_point": zero_point(t, -3),
        "b_scale": np.array(0.25, np.float32),
        "b_zero_point": zero_point(t, 5),
        "c_scale": np.array(0.7, np.float32),
        "c_zero_point": zero_point(t, 1),
    }
    check_q(ms_node("QLinearAdd", BINARY_NAMES), {"a": a, "b": b}, inits)


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_qlinear_binary_without_zero_points(op):
    # onnxruntime refuses the node without them: zero points of 0 are what
    # their absence means.
    a, b = random((3, 70), np.uint8, seed=1), random((70,), np.uint8, seed=2)
    inits = {
        "a_scale": np.array(0.5, np.float32),
        "b_scale": np.array(0.25, np.float32),
        "c_scale": np.array(0.7, np.float32),
    }
    zeros = {name: np.array(0, np.uint8) for name in ("a_zero_point", "b_zero_point", "c_zero_point")}
    explicit = make_model(ms_node(op, BINARY_NAMES), {"a": a, "b": b}, ["y"], 13, {**inits, **zeros}, extra_opsets=MS)
    absent = make_model(
        ms_node(op, ["a", "a_scale", "", "b", "b_scale", "", "c_scale"]),
        {"a": a, "b": b},
        ["y"],
        13,
        inits,
        extra_opsets=MS,
    )
    assert_same(run_ort_unoptimised(explicit, {"a": a, "b": b}), run_torch(absent, {"a": a, "b": b}))


@pytest.mark.parametrize("op, attrs", [("QLinearSigmoid", {}), ("QLinearLeakyRelu", {"alpha": 0.1})])
@pytest.mark.parametrize("dtype", ["u8", "s8"])
@pytest.mark.parametrize("scales", [(0.05, 1 / 256), (0.2, 0.013)])
def test_qlinear_lookup_ops_over_every_value(op, attrs, dtype, scales):
    t = TYPES[dtype]
    info = np.iinfo(t)
    x = np.arange(info.min, info.max + 1).astype(t).reshape(4, 64)
    inits = {
        "x_scale": np.array(scales[0], np.float32),
        "x_zero_point": zero_point(t, -20),
        "y_scale": np.array(scales[1], np.float32),
        "y_zero_point": zero_point(t, 7),
    }
    check_q(ms_node(op, ["x", "x_scale", "x_zero_point", "y_scale", "y_zero_point"], **attrs), {"x": x}, inits)


def test_qlinear_leaky_relu_default_alpha_without_zero_points():
    x = np.arange(-128, 128).astype(np.int8)
    inits = {"x_scale": np.array(0.5, np.float32), "y_scale": np.array(0.25, np.float32)}
    # (onnxruntime aborts where the trailing y_zero_point is left out entirely)
    (y,) = check_q(ms_node("QLinearLeakyRelu", ["x", "x_scale", "", "y_scale", ""]), {"x": x}, inits)
    assert y.dtype == np.int8 and (y == 127).any()


@pytest.mark.parametrize("dtype", ["u8", "s8"])
@pytest.mark.parametrize("axis", [1, -2, 0])
def test_qlinear_concat(dtype, axis):
    t = TYPES[dtype]
    shapes = [(2, 3, 4), (2, 1, 4), (2, 2, 4)] if axis != 0 else [(2, 3, 4), (1, 3, 4), (3, 3, 4)]
    feeds = {f"x{i}": random(s, t, seed=i) for i, s in enumerate(shapes)}
    inits = {"y_scale": np.array(0.1, np.float32), "y_zero_point": zero_point(t, 5)}
    names = ["y_scale", "y_zero_point"]
    for i, (scale, zp) in enumerate([(0.1, 5), (0.37, -30), (0.02, 12)]):  # the first keeps the output's
        inits[f"s{i}"], inits[f"z{i}"] = np.array(scale, np.float32), zero_point(t, zp)
        names += [f"x{i}", f"s{i}", f"z{i}"]
    check_q(ms_node("QLinearConcat", names, axis=axis), feeds, inits)


@pytest.mark.parametrize("dtype", ["u8", "s8"])
def test_qlinear_where(dtype):
    t = TYPES[dtype]
    feeds = {"cond": random((3, 1), bool, seed=3), "x": random((3, 5), t, seed=1), "y": random((5,), t, seed=2)}
    inits = {
        "xs": np.array(0.04, np.float32),
        "xz": zero_point(t, -9),
        "ys": np.array(0.3, np.float32),
        "yz": zero_point(t, 2),
        "zs": np.array(0.07, np.float32),
        "zz": zero_point(t, 1),
    }
    check_q(
        ms_node("QLinearWhere", ["cond", "x", "xs", "xz", "y", "ys", "yz", "zs", "zz"], ["z"]),
        feeds,
        inits,
        outputs=("z",),
    )


POOL_NAMES = ["x", "x_scale", "x_zero_point", "y_scale", "y_zero_point"]


@pytest.mark.parametrize("dtype", ["u8", "s8"])
@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 3, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ((2, 3, 7, 6), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
        ((2, 3, 7, 6), {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1], "count_include_pad": 0}),
        ((2, 3, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
        ((2, 3, 9), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
        ((2, 7, 6, 3), {"kernel_shape": [2, 3], "strides": [1, 2], "channels_last": 1}),
        ((1, 2, 5, 5), {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}),
    ],
)
def test_qlinear_average_pool(dtype, shape, attrs):
    t = TYPES[dtype]
    inits = {
        "x_scale": np.array(0.05, np.float32),
        "x_zero_point": zero_point(t, -3),
        "y_scale": np.array(0.05, np.float32),  # the same scale: averages of 2 or 4 values tie exactly
        "y_zero_point": zero_point(t, -3),
    }
    check_q(ms_node("QLinearAveragePool", POOL_NAMES, **attrs), {"x": random(shape, t, seed=4)}, inits)


def test_qlinear_average_pool_ceil_mode_counts_as_average_pool():
    # With count_include_pad, a ceil_mode window running past the end
    # padding divides by the padded input it covers, as AveragePool does
    # (onnxruntime's QLinearAveragePool divides by the whole kernel): the
    # same as DequantizeLinear -> AveragePool -> QuantizeLinear.
    x = random((1, 2, 6, 6), np.uint8, seed=3)
    # (scales apart: no average lands exactly between two steps, where the
    # two float32 sums may round either way)
    inits = {"s": np.array(0.05, np.float32), "z": np.array(100, np.uint8), "ys": np.array(0.037, np.float32)}
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1}
    quantized = ms_node("QLinearAveragePool", ["x", "s", "z", "ys", "z"], **attrs)
    model = make_model(quantized, {"x": x}, ["y"], 19, initializers=inits, extra_opsets=MS)
    float_nodes = [
        helper.make_node("DequantizeLinear", ["x", "s", "z"], ["dx"]),
        helper.make_node("AveragePool", ["dx"], ["dy"], **attrs),
        helper.make_node("QuantizeLinear", ["dy", "ys", "z"], ["y"]),
    ]
    reference = make_model(float_nodes, {"x": x}, ["y"], 19, initializers=inits)
    assert_same(run_ort_unoptimised(reference, {"x": x}), run_torch(model, {"x": x}))


@pytest.mark.parametrize("dtype", ["u8", "s8"])
@pytest.mark.parametrize("channels_last", [0, 1])
def test_qlinear_global_average_pool(dtype, channels_last):
    t = TYPES[dtype]
    middle = 0 if t == np.int8 else 128
    inits = {
        "x_scale": np.array(0.05, np.float32),
        "x_zero_point": np.array(middle, t),
        "y_scale": np.array(0.003, np.float32),
        "y_zero_point": np.array(middle + 4, t),
    }
    x = random((2, 6, 7, 16) if channels_last else (2, 16, 6, 7), t, seed=5)
    node = ms_node("QLinearGlobalAveragePool", POOL_NAMES, channels_last=channels_last)
    (y,) = check_q(node, {"x": x}, inits)
    assert_saturates(y)


@pytest.mark.parametrize("dtype", ["u8", "s8"])
@pytest.mark.parametrize(
    "shape, opset, axis", [((2, 3, 10), 13, -1), ((2, 10, 3), 13, 1), ((2, 3, 4), 12, 1), ((3, 1000), 13, None)]
)
@pytest.mark.parametrize("y_scale", [1 / 256, 0.01])
def test_qlinear_softmax(dtype, shape, opset, axis, y_scale):
    t = TYPES[dtype]
    x = random(shape, t, seed=6)
    x.reshape(-1)[0] = np.iinfo(t).max  # a row with one large value: a probability near 1
    inits = {
        "x_scale": np.array(0.08, np.float32),
        "x_zero_point": zero_point(t, 0),
        "y_scale": np.array(y_scale, np.float32),
        "y_zero_point": np.array(0 if t == np.uint8 else -128, t),
    }
    attrs = {"opset": opset} if axis is None else {"opset": opset, "axis": axis}
    check_q(ms_node("QLinearSoftmax", POOL_NAMES, **attrs), {"x": x}, inits, opset=opset)


def test_qlinear_softmax_divides_by_y_scale():
    # onnxruntime multiplies by floor(1 / y_scale) (254 for a float32 1/255);
    # the documented softmax divides by y_scale: against the formula here.
    x = random((4, 30), np.uint8, seed=7)
    inits = {
        "x_scale": np.array(0.05, np.float32),
        "x_zero_point": np.array(0, np.uint8),
        "y_scale": np.array(1 / 255, np.float32),
        "y_zero_point": np.array(0, np.uint8),
    }
    node = ms_node("QLinearSoftmax", POOL_NAMES, opset=13, axis=-1)
    model = make_model(node, {"x": x}, ["y"], 13, initializers=inits, extra_opsets=MS)
    (y,) = run_torch(model, {"x": x})
    x = x.astype(np.float64)
    e = np.exp((x - x.max(axis=-1, keepdims=True)) * 0.05)
    p = e / e.sum(axis=-1, keepdims=True)
    assert np.abs(y.astype(int) - np.round(p / np.float32(1 / 255))).max() == 0


@pytest.mark.parametrize("b_type", ["u8", "s8"])
@pytest.mark.parametrize(
    "with_zero_points, with_bias, per_column", [(True, True, False), (False, False, False), (True, True, True)]
)
def test_matmul_integer_to_float(b_type, with_zero_points, with_bias, per_column):
    a, b, inits = matmul_case("u8", b_type, (2, 3, 17), (17, 5), per_column)
    names = ["a", "b", "a_scale", "b_scale", "a_zero_point", "b_zero_point", "bias"]
    if not with_zero_points:
        names[4] = names[5] = ""
        del inits["a_zero_point"], inits["b_zero_point"]
    if with_bias:
        inits["bias"] = random((5,), seed=8)
    else:
        names = names[:6]
    del inits["y_scale"], inits["y_zero_point"]
    check_q(ms_node("MatMulIntegerToFloat", names), {"a": a, "b": b}, inits)


@pytest.mark.parametrize("b_type", ["u8", "s8"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_dynamic_quantize_matmul(b_type, with_bias):
    a = random((2, 3, 17)) * 4
    _, b, inits = matmul_case("u8", b_type, (3, 17), (17, 5), per_column=False)
    names = ["a", "b", "b_scale", "b_zero_point"]
    inits = {"b_scale": inits["b_scale"], "b_zero_point": inits["b_zero_point"]}
    if with_bias:
        inits["bias"] = random((5,), seed=8)
        names.append("bias")
    check_q(ms_node("DynamicQuantizeMatMul", names), {"a": a, "b": b}, inits)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_microsoft_quantize_dequantize(dtype, axis):
    x = random((3, 4, 5)) * 3
    count = 0 if axis is None else x.shape[axis]
    scale, zero = _params(dtype, count, seed=2)
    attrs = {} if axis is None else {"axis": axis}
    nodes = [
        ms_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], **attrs),
        ms_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], **attrs),
    ]
    check_q(nodes, {"x": x}, {"scale": scale, "zero": zero}, outputs=("y", "q"))


@pytest.mark.parametrize("dtype", ["u8", "s8"])
def test_nhwc_max_pool(dtype):
    x = random((2, 7, 6, 3), TYPES[dtype], seed=9)
    node = ms_node("NhwcMaxPool", ["x"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1])
    check_q(node, {"x": x}, {})


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearSigmoid"])
def test_per_channel_parameters_where_only_per_tensor_is_defined(op):
    import onnx2torch

    x = random((2, 3), np.uint8)
    inits = {"s": np.array([0.1, 0.2], np.float32), "z": np.array([1, 2], np.uint8)}
    names = BINARY_NAMES if op == "QLinearAdd" else POOL_NAMES
    feeds = {n: x for n in names if n in ("a", "b", "x")}
    mapping = {n: ("s" if "scale" in n else "z") for n in names if n not in feeds}
    node = ms_node(op, [mapping.get(n, n) for n in names])
    model = make_model(node, feeds, ["y"], 13, initializers=inits, extra_opsets=MS)
    module = onnx2torch.convert(model)
    with pytest.raises(NotImplementedError, match="per-tensor"):
        module(*[torch.from_numpy(v) for v in feeds.values()])


# --- End to end: networks quantized by onnxruntime's quantization tool --------


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        return self.fc(torch.relu(self.conv2(x)).flatten(1))


class SmallMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(20, 32), torch.nn.Linear(32, 32), torch.nn.Linear(32, 5)

    def forward(self, x):
        return self.fc3(torch.sigmoid(self.fc2(torch.relu(self.fc1(x)))))


NETWORKS = {"cnn": (SmallCNN, (2, 3, 12, 12)), "mlp": (SmallMLP, (4, 20))}


def export(name, folder):
    network, shape = NETWORKS[name]
    torch.manual_seed(0)
    path = str(folder / f"{name}.onnx")
    torch.onnx.export(network().eval(), torch.randn(*shape), path, input_names=["x"], output_names=["y"], dynamo=False)
    return path, shape


def quantized(name, how, folder):
    """onnxruntime.quantization's output for a network: `how` is static_qoperator,
    static_qdq (activations u8 or s8, weights per channel or not) or dynamic."""
    from onnxruntime import quantization as q

    path, shape = export(name, folder)
    out = str(folder / f"{name}_{how}.onnx")
    if how == "dynamic":
        q.quantize_dynamic(path, out, weight_type=q.QuantType.QInt8)
        return out, shape

    class Calibration(q.CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    fmt, activations, per_channel = how.split("_")[1:]
    q.quantize_static(
        path,
        out,
        Calibration(),
        quant_format=q.QuantFormat.QOperator if fmt == "qoperator" else q.QuantFormat.QDQ,
        activation_type=q.QuantType.QUInt8 if activations == "u8" else q.QuantType.QInt8,
        weight_type=q.QuantType.QInt8,
        per_channel=per_channel == "pc",
    )
    return out, shape


QUANTIZATIONS = [
    "static_qoperator_u8_pt",
    "static_qoperator_s8_pc",
    "static_qdq_u8_pt",
    "static_qdq_s8_pc",
    "dynamic",
]


@pytest.mark.slow
@pytest.mark.parametrize("how", QUANTIZATIONS)
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_quantized_networks(name, how, tmp_path):
    import onnx
    import onnx2torch

    path, shape = quantized(name, how, tmp_path)
    model = onnx.load(path)
    ops = {n.op_type for n in model.graph.node}
    if "qoperator" in how:
        assert {"QGemm", "QLinearConv" if name == "cnn" else "QLinearSigmoid"} <= ops
    module = onnx2torch.convert(model).eval()
    # the whole module pickles, as the converter saves it
    torch.save(module, tmp_path / "module.pt")
    module = torch.load(tmp_path / "module.pt", weights_only=False)
    for seed in range(5):
        x = (random(shape, seed=seed) * (1 + seed)).astype(np.float32)  # larger inputs saturate
        (expected,) = run_ort_unoptimised(model, {"x": x})
        with torch.no_grad():
            actual = module(torch.from_numpy(x)).numpy()
        if how == "dynamic":
            # float32 sums of the scaled int32 results (and the float ops
            # between them) round in another order than onnxruntime's
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        elif "qdq" in how:
            # float Conv/Gemm between DequantizeLinear and QuantizeLinear:
            # their float32 sums round in another order than onnxruntime's,
            # and a sum at a rounding boundary may quantize one step apart
            step = output_step(model)
            np.testing.assert_allclose(actual, expected, rtol=0, atol=step * 1.01)
            assert np.mean(actual == expected) > 0.95
        else:
            # integer kernels computed exactly as onnxruntime's, then the
            # output's DequantizeLinear: the same integers, the same floats
            np.testing.assert_array_equal(actual, expected)


def output_step(model):
    """The scale of the DequantizeLinear that writes the graph's output."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    (node,) = [n for n in model.graph.node if n.output[0] == model.graph.output[0].name]
    assert node.op_type == "DequantizeLinear"
    return float(numpy_helper.to_array(initializers[node.input[1]]))
