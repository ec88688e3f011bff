import numpy as np
import onnx
import pytest
from convert_check import check, make_model, random
from onnx import helper

from onnx2pt_py.job import ConversionJob


@pytest.mark.parametrize(
    "bounds, constants",
    [
        (["lo", "hi"], {}),  # both at run time
        (["", "hi"], {}),  # min left out by an empty name, max at run time
        (["", "hi"], {"hi": 0.5}),  # min left out, max a constant (clamp(max=))
        (["lo"], {}),  # min alone, at run time
        (["lo", "hi"], {"lo": -0.3}),  # one constant, one at run time
        (["lo", "hi"], {"lo": 0.0, "hi": 6.0}),  # ReLU6
        (["lo", "hi"], {"lo": 1.0, "hi": -1.0}),  # min > max: everything max
    ],
)
def test_clip_bounds_at_run_time_absent_or_constant(bounds, constants):
    x = random((3, 8)) * 4
    feeds = {"x": x}
    values = {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}
    for name in bounds:
        if name and name not in constants:
            feeds[name] = values[name]
    initializers = {k: np.array(v, np.float32) for k, v in constants.items()}
    model = make_model(helper.make_node("Clip", ["x", *bounds], ["y"]), feeds, ["y"], 13, initializers=initializers)
    check(model, feeds)


def test_clip_of_integers_keeps_their_type():
    x = np.arange(-6, 6, dtype=np.int64).reshape(3, 4)
    model = make_model(
        helper.make_node("Clip", ["x", "lo", "hi"], ["y"]),
        {"x": x},
        ["y"],
        13,
        initializers={"lo": np.array(-2, np.int64), "hi": np.array(3, np.int64)},
    )
    check(model, {"x": x})


@pytest.mark.parametrize("axis", [-1, 1, 0])
@pytest.mark.parametrize("outputs", [["y", "mean", "inv_std"], ["y", "mean"]])
def test_layer_normalization_returns_its_statistics(axis, outputs):
    x = random((2, 3, 5)) * 3 + 1
    shape = x.shape[axis:] if axis else x.shape
    scale, bias = random(shape, seed=1), random(shape, seed=2)
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], outputs, axis=axis, epsilon=1e-3)
    model = make_model(node, {"x": x}, [o for o in outputs if o], 17, initializers={"scale": scale, "bias": bias})
    check(model, {"x": x})


def test_layer_normalization_with_broadcast_scale_and_run_time_weights():
    x = random((2, 4, 6))
    scale, bias = random((1, 6), seed=1), random((6,), seed=2)
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], axis=-2)
    check(make_model(node, {"x": x, "scale": scale, "bias": bias}, ["y"], 17), {"x": x, "scale": scale, "bias": bias})


def test_layer_normalization_inverse_std_alone_through_a_conversion(tmp_path):
    # Mean left out by an empty name: the graph's outputs still come back in
    # their order (onnx2pt matches a multi-output node's outputs by name).
    x = random((2, 3, 5))
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y", "", "inv_std"])
    inits = {"scale": random((5,), seed=1), "bias": random((5,), seed=2)}
    model = make_model(node, {"x": x}, ["y", "inv_std"], 17, initializers=inits, shapes={"x": ["n", 3, 5]})
    path = str(tmp_path / "ln.onnx")
    onnx.save(model, path)
    job = ConversionJob(path)
    job.load()
    job.convert()
    job.probe()
    out = str(tmp_path / "ln.pt")
    assert job.verify(out, job.save(out, None, {})["sha256"])["passed"]


def test_layer_normalization_of_a_symbolic_shape_returns_y_alone():
    # The normalised shape unknown at conversion: not onnx2torch's nn.LayerNorm,
    # and still one output, not a tuple of one.
    x = random((2, 3, 5))
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"])
    inits = {"scale": random((5,), seed=1), "bias": random((5,), seed=2)}
    check(make_model(node, {"x": x}, ["y"], 17, initializers=inits, shapes={"x": ["n", "t", "d"]}), {"x": x})
