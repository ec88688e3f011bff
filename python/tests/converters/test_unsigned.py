"""uint16/32/64 in arithmetic, comparisons, Min/Max and Where, over their
whole range: sums that wrap, uint64 values of 2**63 and more (where a signed
view would misorder or misdivide them), divisors of every size."""

import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper

UNSIGNED = [np.uint16, np.uint32, np.uint64]


def operands(dtype):
    """Pairs that cover the extremes: 0, 1, the largest value, values with
    the top bit set, and random ones of the whole range."""
    top = np.iinfo(dtype).max
    half = (top >> 1) + 1  # only the top bit set
    edges = np.array([0, 1, top, top - 1, half, half + 3, half - 1, 7, top, half], dtype=dtype)
    divisors = np.array([1, top, 1, half, half + 1, 2, 3, top, half - 1, top], dtype=dtype)
    a = np.concatenate([edges, random((40,), dtype=dtype, seed=1)])
    b = np.concatenate([divisors, random((40,), dtype=dtype, seed=2, low=1)])
    # small divisors too, and dividends below them
    b[-10:] = np.arange(1, 11, dtype=dtype)
    return a, b


@pytest.mark.parametrize("dtype", UNSIGNED)
@pytest.mark.parametrize(
    "op,opset",
    [("Add", 14), ("Sub", 14), ("Div", 14), ("Greater", 13), ("Less", 13), ("GreaterOrEqual", 16), ("LessOrEqual", 16)],
)
def test_binary(op, opset, dtype):
    a, b = operands(dtype)
    model = make_model(helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b}, ["y"], opset)
    # numpy's unsigned arithmetic is exact and wraps: the reference evaluator's.
    check(model, {"a": a, "b": b}, reference=True)


@pytest.mark.parametrize("dtype", UNSIGNED)
@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("opset", [13, 28])
def test_mod(dtype, fmod, opset):
    a, b = operands(dtype)
    model = make_model(helper.make_node("Mod", ["a", "b"], ["y"], fmod=fmod), {"a": a, "b": b}, ["y"], opset)
    check(model, {"a": a, "b": b}, reference=True)


@pytest.mark.parametrize("dtype", UNSIGNED)
@pytest.mark.parametrize("op", ["Max", "Min"])
def test_max_min_of_three_broadcast(op, dtype):
    a, b = operands(dtype)
    c = np.array([np.iinfo(dtype).max >> 1], dtype=dtype)
    model = make_model(helper.make_node(op, ["a", "b", "c"], ["y"]), {"a": a, "b": b, "c": c}, ["y"], 13)
    check(model, {"a": a, "b": b, "c": c}, reference=True)


@pytest.mark.parametrize("dtype", UNSIGNED)
def test_where(dtype):
    a, b = operands(dtype)
    cond = random(a.shape, dtype=bool, seed=3)
    model = make_model(helper.make_node("Where", ["c", "a", "b"], ["y"]), {"c": cond, "a": a, "b": b}, ["y"], 16)
    check(model, {"c": cond, "a": a, "b": b}, reference=True)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.uint8])
def test_other_types_are_untouched(dtype):
    # Same converter, other types: onnx2torch's module alone, against onnxruntime.
    a = random((3, 4), dtype=dtype, seed=1)
    b = random((4,), dtype=dtype, seed=2, low=1 if np.dtype(dtype).kind != "f" else None)
    for op in ("Add", "Sub", "Div", "Greater", "Max"):
        model = make_model(
            helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b}, ["y"], 14 if op in ("Add", "Sub", "Div") else 13
        )
        check(model, {"a": a, "b": b})


def test_chain_keeps_the_type():
    # (a + b) then a comparison and a Where: every intermediate stays uint32.
    a, b = operands(np.uint32)
    nodes = [
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Greater", ["s", "a"], ["g"]),
        helper.make_node("Where", ["g", "s", "b"], ["y"]),
    ]
    model = make_model(nodes, {"a": a, "b": b}, ["y"], 16)
    (y,) = check(model, {"a": a, "b": b}, reference=True)
    assert y.dtype == np.uint32
