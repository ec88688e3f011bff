import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper

OPS = [
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
]
AXES = [None, [], [0], [1], [-1], [0, 2], [2, 0], [-3, -1], [0, 1, 2]]


def _data(op, shape=(3, 4, 5)):
    # positive for ReduceLogSum, small for ReduceProd (no overflow)
    if op == "ReduceLogSum":
        return random(shape, low=0.1, high=2.0)
    if op == "ReduceProd":
        return random(shape, low=0.5, high=1.5)
    return random(shape)


def _model(op, x, opset, keepdims, noop, axes_as="initializer", axes=None):
    attrs = {"keepdims": keepdims, "noop_with_empty_axes": noop}
    inputs = {"x": x}
    initializers = {}
    nodes = []
    names = ["x"]
    if axes is not None:
        value = np.array(axes, dtype=np.int64)
        if axes_as == "initializer":
            initializers["axes"] = value
        elif axes_as == "constant":
            nodes.append(
                helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("c", 7, value.shape, value))
            )
        else:  # a graph input: known only at run time
            inputs["axes"] = value
        names.append("axes")
    nodes.append(helper.make_node(op, names, ["y"], **attrs))
    shapes = {"axes": ["n_axes"]}
    return make_model(nodes, inputs, ["y"], opset, initializers=initializers, shapes=shapes), inputs


@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [1, 0])
@pytest.mark.parametrize("op", OPS)
def test_reduce_18(op, keepdims, axes):
    x = _data(op)
    model, feeds = _model(op, x, 18, keepdims, 0, axes=axes)
    check(model, feeds)


@pytest.mark.parametrize("axes", [None, []], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_reduce_noop_with_empty_axes(op, axes):
    # Nothing is reduced, but ReduceSumSquare still squares, ReduceL1 takes |x|, ...
    x = _data(op)
    model, feeds = _model(op, x, 18, 1, 1, axes=axes)
    check(model, feeds)


@pytest.mark.parametrize("axes_as", ["constant", "input"])
@pytest.mark.parametrize("op", OPS)
def test_reduce_axes_constant_or_computed(op, axes_as):
    x = _data(op)
    for axes in ([1], [0, -1]):
        model, feeds = _model(op, x, 18, 0, 0, axes_as=axes_as, axes=axes)
        check(model, feeds)


def test_dynamic_axes_change_between_runs():
    # The same converted module, fed different axes.
    from convert_check import assert_same, run_ort, run_torch

    x = random([2, 3, 4])
    model, _ = _model("ReduceMax", x, 18, 0, 0, axes_as="input", axes=[0])
    for axes in ([0], [1, 2], [], [-1]):
        feeds = {"x": x, "axes": np.array(axes, dtype=np.int64)}
        assert_same(run_ort(model, feeds), run_torch(model, feeds))


@pytest.mark.parametrize("opset", [18, 20])
@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.uint8])
def test_reduce_max_min_integers(op, dtype, opset):
    x = random([4, 5], dtype=dtype)
    model, feeds = _model(op, x, opset, 0, 0, axes=[1])
    check(model, feeds)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_max_min_bool_20(op):
    x = random([4, 5], dtype=np.bool_)
    x[0] = True
    x[1] = False
    model, feeds = _model(op, x, 20, 1, 0, axes=[1])
    check(model, feeds)


@pytest.mark.parametrize("op", ["ReduceProd", "ReduceSumSquare", "ReduceL1"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_integer_sums_keep_the_type(op, dtype):
    x = random([3, 4], dtype=dtype, low=-3, high=3)
    model, feeds = _model(op, x, 18, 1, 0, axes=[0])
    check(model, feeds)


@pytest.mark.parametrize("opset", [18, 28])
@pytest.mark.parametrize("op", ["ReduceLogSum", "ReduceLogSumExp"])
def test_reduce_log_28(op, opset):
    x = _data(op, (2, 3, 4))
    model, feeds = _model(op, x, opset, 0, 0, axes=[1, 2])
    check(model, feeds)


def test_reduce_float16():
    x = random([4, 8], dtype=np.float16)
    model, feeds = _model("ReduceMean", x, 18, 1, 0, axes=[1])
    check(model, feeds, atol=1e-3, rtol=1e-3)  # half precision


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_over_empty_set(op):
    # Reducing a zero-length axis gives the operation's identity value.
    # onnxruntime 1.32 rejects some of these shapes; the reference evaluator
    # implements the spec's values.
    x = np.zeros([2, 0, 3], np.float32)
    model, feeds = _model(op, x, 18, 1, 0, axes=[1])
    check(model, feeds, reference=True)


def test_reduce_scalar_input():
    x = np.array(3.5, np.float32)
    model, feeds = _model("ReduceSumSquare", x, 18, 0, 0)
    check(model, feeds)
