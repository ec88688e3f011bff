import pytest
from convert_check import check, make_model, random
from onnx import helper


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"pads": [1, 2, 0, 1], "strides": [2, 1]},
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
        {"auto_pad": "SAME_LOWER", "strides": [2, 2]},  # (onnxruntime refuses dilations with SAME)
        {"pads": [1, 1, 1, 1], "dilations": [2, 1]},
        {"auto_pad": "VALID", "group": 2},
    ],
)
@pytest.mark.parametrize("opset", [11, 22])
def test_conv_with_weights_given_at_run_time(attrs, opset):
    x, w, b = random((2, 4, 9, 8)), random((6, 4 // attrs.get("group", 1), 3, 3), seed=1), random((6,), seed=2)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    check(make_model(node, {"x": x, "w": w, "b": b}, ["y"], opset), {"x": x, "w": w, "b": b})


def test_conv_1d_and_3d_without_bias():
    for shape, kernel in (((2, 3, 10), (5, 3, 3)), ((1, 2, 5, 6, 4), (3, 2, 2, 3, 2))):
        x, w = random(shape), random(kernel, seed=1)
        check(make_model(helper.make_node("Conv", ["x", "w"], ["y"]), {"x": x, "w": w}, ["y"], 11), {"x": x, "w": w})


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"strides": [2, 2], "pads": [0, 1, 1, 0]},  # asymmetric
        {"strides": [2, 2], "output_padding": [1, 1]},
        {"strides": [3, 2], "output_shape": [10, 8]},
        {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
        {"strides": [2, 1], "dilations": [1, 2], "group": 2},
    ],
)
@pytest.mark.parametrize("constant", [True, False])
def test_conv_transpose(attrs, constant):
    x, w, b = random((2, 4, 4, 4)), random((4, 6 // attrs.get("group", 1), 3, 3), seed=1), random((6,), seed=2)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    if constant:
        model = make_model(node, {"x": x}, ["y"], 11, initializers={"w": w, "b": b})
        check(model, {"x": x})
    else:
        check(make_model(node, {"x": x, "w": w, "b": b}, ["y"], 22), {"x": x, "w": w, "b": b})
