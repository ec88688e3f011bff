import numpy as np
import pytest
from convert_check import check, make_model, random, run_torch
from onnx import helper


@pytest.mark.parametrize(
    "shape, axis, scale_shape",
    [
        ((2, 5, 8), -1, (8,)),
        ((2, 5, 8), 1, (5, 8)),
        ((2, 5, 8), -2, (1, 8)),
        ((4, 6), 0, (4, 6)),
        ((3, 2, 2, 4), 2, (4,)),
    ],
)
@pytest.mark.parametrize("epsilon", [1e-5, 0.1])
def test_rms_normalization(shape, axis, scale_shape, epsilon):
    x = random(shape)
    scale = random(scale_shape, seed=1)
    node = helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=axis, epsilon=epsilon)
    model = make_model(node, {"x": x, "scale": scale}, ["y"], 23)
    check(model, {"x": x, "scale": scale})


def test_rms_normalization_float16_computes_in_float32():
    # Large values: squaring them in float16 would overflow.
    x = (random((2, 16)) * 300).astype(np.float16)
    scale = np.ones(16, np.float16)
    model = make_model(helper.make_node("RMSNormalization", ["x", "scale"], ["y"]), {"x": x, "scale": scale}, ["y"], 23)
    (y,) = check(model, {"x": x, "scale": scale}, atol=2e-3, rtol=2e-3)  # half precision output
    assert np.isfinite(y).all()


def test_rms_normalization_scale_initializer():
    x = random((3, 7))
    model = make_model(
        helper.make_node("RMSNormalization", ["x", "scale"], ["y"]),
        {"x": x},
        ["y"],
        23,
        initializers={"scale": random((7,), seed=2)},
    )
    check(model, {"x": x})


@pytest.mark.parametrize("shape, groups", [((2, 6, 5), 3), ((2, 4, 3, 3), 2), ((1, 4, 2, 2), 4), ((3, 6, 4), 1)])
def test_group_normalization_21(shape, groups):
    x = random(shape)
    scale = random(shape[1:2], seed=1)
    bias = random(shape[1:2], seed=2)
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=groups, epsilon=1e-3)
    model = make_model(node, {"x": x, "scale": scale, "bias": bias}, ["y"], 21)
    check(model, {"x": x, "scale": scale, "bias": bias})


@pytest.mark.parametrize("shape, groups", [((2, 6, 5), 3), ((2, 4, 3, 3), 2)])
def test_group_normalization_18_scale_per_group(shape, groups):
    # onnxruntime 1.32 rejects GroupNormalization-18 (the per-group scale
    # was deprecated): compare with the reference evaluator.
    x = random(shape)
    scale = random((groups,), seed=1)
    bias = random((groups,), seed=2)
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=groups)
    model = make_model(node, {"x": x, "scale": scale, "bias": bias}, ["y"], 18)
    check(model, {"x": x, "scale": scale, "bias": bias}, reference=True)


@pytest.mark.parametrize(
    "opset, axes",
    # onnx's shape inference of the version-13 function fails without an
    # explicit `axes`, so the default is exercised at opset 9.
    [(9, None), (9, [1]), (13, [0, 2, 3]), (13, [1]), (13, [2, 3])],
)
def test_mean_variance_normalization(opset, axes):
    x = random((2, 3, 4, 5))
    attrs = {} if axes is None else {"axes": axes}
    model = make_model(helper.make_node("MeanVarianceNormalization", ["x"], ["y"], **attrs), {"x": x}, ["y"], opset)
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [1, 22])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_normalization(opset, p, axis):
    x = random((3, 4, 5))
    # A zero vector along every axis: it normalises to zeros, not NaN.
    x[0, 0, :], x[0, :, 0], x[:, 1, 1] = 0, 0, 0
    model = make_model(
        helper.make_node("LpNormalization", ["x"], ["y"], p=p, axis=axis), {"x": x}, ["y"], max(opset, 7)
    )
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [7])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 3), (1, 3, 5)])
def test_batch_normalization_7(opset, shape):
    x = random(shape)
    c = shape[1]
    params = {
        "scale": random((c,), seed=1),
        "bias": random((c,), seed=2),
        "mean": random((c,), seed=3),
        "var": random((c,), seed=4, low=0.5, high=2.0),
    }
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3)
    model = make_model(node, {"x": x}, ["y"], opset, initializers=params)
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [14, 15])
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 3), (2, 3, 7)])
@pytest.mark.parametrize("training_mode", [0, 1])
def test_batch_normalization_training_mode(opset, shape, training_mode):
    x = random(shape, low=-2.0, high=5.0)
    c = shape[1]
    params = {
        "scale": random((c,), seed=1),
        "bias": random((c,), seed=2),
        "mean": random((c,), seed=3),
        "var": random((c,), seed=4, low=0.5, high=2.0),
    }
    names = ["y", "running_mean", "running_var"] if training_mode else ["y"]
    node = helper.make_node(
        "BatchNormalization",
        ["x", "scale", "bias", "mean", "var"],
        names,
        epsilon=1e-3,
        momentum=0.8,
        training_mode=training_mode,
    )
    model = make_model(node, {"x": x}, names, opset, initializers=params)
    # onnxruntime's CPU kernel refuses training mode; the reference evaluator
    # is the specification's code.
    check(model, {"x": x}, reference=True)


def test_batch_normalization_6_spatial_0():
    # One statistic per activation. Neither onnxruntime nor the reference
    # evaluator runs opset 6: compare with numpy.
    x = random((2, 3, 4))
    scale, bias, mean = random((3, 4), seed=1), random((3, 4), seed=2), random((3, 4), seed=3)
    var = random((3, 4), seed=4, low=0.5, high=2.0)
    node = helper.make_node(
        "BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3, is_test=1, spatial=0
    )
    model = make_model(node, {"x": x}, ["y"], 6, initializers={"scale": scale, "bias": bias, "mean": mean, "var": var})
    (y,) = run_torch(model, {"x": x})
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3) * scale + bias, rtol=1e-5, atol=1e-6)
