import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper

SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5.5, -5.5, 3.0, -3.0, 7.25], np.float32)
SPECIAL_DIVISORS = np.array([2.0, -2.0, 3.0, 3.0, 3.0, np.inf, np.inf, -np.inf, 0.0, -0.0], np.float32)


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.int8])
def test_mod_28(fmod, dtype):
    a = random((4, 5), dtype=dtype, low=-50, high=50)
    b = random((5,), dtype=dtype, low=1, high=7, seed=1) * np.where(np.arange(5) % 2, 1, -1).astype(dtype)
    model = make_model(helper.make_node("Mod", ["a", "b"], ["y"], fmod=fmod), {"a": a, "b": b}, ["y"], 28)
    check(model, {"a": a, "b": b})


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_28_special_values(fmod):
    model = make_model(
        helper.make_node("Mod", ["a", "b"], ["y"], fmod=fmod), {"a": SPECIAL, "b": SPECIAL_DIVISORS}, ["y"], 28
    )
    (y,) = check(model, {"a": SPECIAL, "b": SPECIAL_DIVISORS})
    if fmod == 0:  # a zero result takes the divisor's sign
        assert np.signbit(y[:2]).tolist() == [False, True]


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_bitshift_unsigned(direction, dtype):
    bits = np.dtype(dtype).itemsize * 8
    x = random((3, 8), dtype=dtype)
    y = np.array([0, 1, 3, bits - 1, 2, 5, 7, 1], dtype=dtype)
    model = make_model(
        helper.make_node("BitShift", ["x", "y"], ["z"], direction=direction), {"x": x, "y": y}, ["z"], 11
    )
    check(model, {"x": x, "y": y})


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32])
def test_bitshift_28_signed_and_out_of_range(direction, dtype):
    # Arithmetic right shifts of signed types, and shift amounts outside
    # [0, bits): onnxruntime 1.32 has no kernel for the signed types of
    # BitShift-28, so compare with the reference evaluator.
    bits = np.dtype(dtype).itemsize * 8
    x = random((2, 8), dtype=dtype)
    x[0, :4] = [1, 5, np.iinfo(dtype).max, np.iinfo(dtype).min]
    shifts = [0, 1, 3, bits - 1, bits, bits + 3, 2, 5]
    if np.dtype(dtype).kind == "i":
        shifts[-1] = -1
    y = np.array(shifts, dtype=dtype)
    model = make_model(
        helper.make_node("BitShift", ["x", "y"], ["z"], direction=direction), {"x": x, "y": y}, ["z"], 28
    )
    check(model, {"x": x, "y": y}, reference=True)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.uint16, np.uint32, np.uint64, np.int64])
def test_bitwise(op, dtype):
    a = random((3, 4), dtype=dtype)
    b = random((4,), dtype=dtype, seed=2)
    feeds = {"a": a} if op == "BitwiseNot" else {"a": a, "b": b}
    model = make_model(helper.make_node(op, list(feeds), ["y"]), feeds, ["y"], 18)
    check(model, feeds)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    x = random((4, 6)) * 3
    model = make_model(helper.make_node("Gelu", ["x"], ["y"], approximate=approximate), {"x": x}, ["y"], 20)
    check(model, {"x": x})


@pytest.mark.parametrize(
    "op, opset, attrs",
    [
        ("Mish", 18, {}),
        ("Mish", 22, {}),
        ("Sinh", 9, {}),
        ("Cosh", 22, {}),
        ("Asinh", 22, {}),
        ("Swish", 24, {}),
        ("Swish", 24, {"alpha": 0.5}),
        ("ThresholdedRelu", 10, {}),
        ("ThresholdedRelu", 22, {"alpha": 0.3}),
        ("Shrink", 9, {}),
        ("Shrink", 9, {"lambd": 0.8, "bias": 0.25}),
    ],
)
def test_unary(op, opset, attrs):
    x = random((5, 6)) * 2
    model = make_model(helper.make_node(op, ["x"], ["y"], **attrs), {"x": x}, ["y"], opset)
    check(model, {"x": x})


@pytest.mark.parametrize("op, low, high", [("Acosh", 1.0, 5.0), ("Atanh", -0.95, 0.95)])
def test_unary_domain(op, low, high):
    x = random((5, 6), low=low, high=high)
    model = make_model(helper.make_node(op, ["x"], ["y"]), {"x": x}, ["y"], 22)
    check(model, {"x": x})


def test_shrink_integers():
    x = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    model = make_model(helper.make_node("Shrink", ["x"], ["y"], lambd=1.5, bias=1.5), {"x": x}, ["y"], 9)
    check(model, {"x": x})


@pytest.mark.parametrize("alpha", [None, 1.702])
def test_swiglu(alpha):
    a, b = random((2, 3, 8)), random((2, 3, 8), seed=1)
    attrs = {} if alpha is None else {"alpha": alpha}
    node = helper.make_node("SwiGLU", ["a", "b"], ["y"], **attrs)
    check(make_model(node, {"a": a, "b": b}, ["y"], 28), {"a": a, "b": b}, reference=True)


@pytest.mark.parametrize("base", [np.int32, np.int64, np.float32])
@pytest.mark.parametrize("exponent", [np.float32, np.int64, np.int32])
def test_pow_result_has_the_base_type(base, exponent):
    x = np.array([2, 3, -4, 5, 0, 7], base)
    y = (
        np.array([0.5, 2, 3, 1.5, 2, 0], exponent)
        if np.dtype(exponent).kind == "f"
        else np.array([0, 2, 3, 1, 2, 4], exponent)
    )
    model = make_model(helper.make_node("Pow", ["x", "y"], ["z"]), {"x": x, "y": y}, ["z"], 15)
    (z,) = check(model, {"x": x, "y": y}, reference=np.dtype(base).kind == "i")
    assert z.dtype == base


@pytest.mark.parametrize("opset", [6, 22])
@pytest.mark.parametrize("attrs", [{}, {"alpha": 2.0}, {"gamma": 3.0}, {"alpha": 0.5, "gamma": 1.5}])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_selu(opset, attrs, dtype):
    x = random((3, 5), dtype=dtype, seed=4)
    model = make_model(helper.make_node("Selu", ["x"], ["y"], **attrs), {"x": x}, ["y"], opset)
    # onnxruntime runs Selu 6 in float32 alone
    check(model, {"x": x}, reference=opset != 6 or dtype != np.float32)
