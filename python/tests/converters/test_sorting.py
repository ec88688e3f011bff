import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper


def tied(shape):
    """Values with many ties: small integers as floats."""
    return np.random.default_rng(0).integers(0, 3, shape).astype(np.float32)


@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("k_constant", [True, False])
def test_topk_puts_the_lower_index_first_among_ties(largest, axis, k_constant):
    x = tied((6, 7, 8))
    k = np.array([3], np.int64)
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=axis, largest=largest)
    if k_constant:
        model = make_model(node, {"x": x}, ["values", "indices"], 11, initializers={"k": k})
        check(model, {"x": x})
    else:
        model = make_model(node, {"x": x, "k": k}, ["values", "indices"], 11)
        check(model, {"x": x, "k": k})


def test_topk_1_takes_k_as_an_attribute():
    x = tied((4, 9))
    model = make_model(helper.make_node("TopK", ["x"], ["v", "i"], k=4), {"x": x}, ["v", "i"], 1)
    check(model, {"x": x})


def test_topk_without_ties():
    x = random((5, 10))
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"])
    model = make_model(node, {"x": x}, ["values", "indices"], 11, initializers={"k": np.array([10], np.int64)})
    check(model, {"x": x})
