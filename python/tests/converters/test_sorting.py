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


@pytest.mark.parametrize("flip", ["none", "x", "y", "both", "mixed"])
def test_non_max_suppression_boxes_by_any_corners(flip):
    rng = np.random.default_rng(5)
    corner = rng.uniform(0, 10, (2, 20, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + rng.uniform(0.5, 4, (2, 20, 2)).astype(np.float32)], axis=-1)
    swap = {"none": [], "x": [1], "y": [0], "both": [0, 1], "mixed": [0]}[flip]
    rows = slice(None) if flip != "mixed" else slice(0, 20, 2)
    for axis in swap:  # exchange the two corners' coordinate on that axis
        boxes[:, rows, [axis, axis + 2]] = boxes[:, rows, [axis + 2, axis]]
    scores = rng.random((2, 3, 20)).astype(np.float32)
    feeds = {"boxes": boxes, "scores": scores}
    limits = {"m": np.array([5], np.int64), "iou": np.array([0.3], np.float32), "score": np.array([0.2], np.float32)}
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "m", "iou", "score"], ["selected"])
    model = make_model(node, feeds, ["selected"], 11, initializers=limits)
    check(model, feeds)
