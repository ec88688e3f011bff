import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper


def _feeds(shape, with_weight, seed=0):
    scores = random(shape, seed=seed)
    target_shape = (shape[0],) + tuple(shape[2:])
    target = random(target_shape, dtype=np.int64, seed=seed + 1, low=0, high=shape[1] - 1)
    target.reshape(-1)[0] = 1  # the ignored class occurs
    feeds = {"scores": scores, "target": target}
    if with_weight:
        feeds["weight"] = random((shape[1],), seed=seed + 2, low=0.1, high=2.0)
    return feeds


@pytest.mark.parametrize("opset", [12, 13, 22])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 1])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4)])
def test_negative_log_likelihood_loss(opset, reduction, with_weight, ignore_index, shape):
    feeds = _feeds(shape, with_weight)
    attrs = {"reduction": reduction}
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    model = make_model(
        helper.make_node("NegativeLogLikelihoodLoss", list(feeds), ["loss"], **attrs), feeds, ["loss"], opset
    )
    check(model, feeds)


@pytest.mark.parametrize("opset", [12, 13])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 1])
@pytest.mark.parametrize("log_prob", [False, True])
def test_softmax_cross_entropy_loss(opset, reduction, with_weight, ignore_index, log_prob):
    feeds = _feeds((3, 4, 2), with_weight, seed=5)
    attrs = {"reduction": reduction}
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    outputs = ["loss", "log_prob"] if log_prob else ["loss"]
    model = make_model(
        helper.make_node("SoftmaxCrossEntropyLoss", list(feeds), outputs, **attrs), feeds, outputs, opset
    )
    check(model, feeds)
