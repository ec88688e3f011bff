import numpy as np
import onnx2torch
import pytest
from convert_check import check, make_model, random
from onnx import helper

COORDINATE_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
# (input shape, scales or sizes): up, down, fractional, one-pixel outputs
SCALES = [
    ((1, 2, 4, 5), [1, 1, 2.0, 2.0]),
    ((1, 2, 6, 9), [1, 1, 0.5, 1.0 / 3.0]),
    ((2, 1, 5, 4), [1, 1, 1.7, 0.6]),
]
SIZES = [((1, 2, 4, 5), [1, 2, 7, 3]), ((1, 1, 6, 6), [1, 1, 1, 4]), ((2, 3, 3, 5), [2, 3, 9, 10])]


def _model(x_shape, opset, scales=None, sizes=None, **attrs):
    x = random(x_shape)
    names = ["x", "", "scales"] if scales is not None else ["x", "", "", "sizes"]
    initializers = {}
    if scales is not None:
        initializers["scales"] = np.array(scales, np.float32)
    else:
        initializers["sizes"] = np.array(sizes, np.int64)
    model = make_model(
        helper.make_node("Resize", names, ["y"], **attrs), {"x": x}, ["y"], opset, initializers=initializers
    )
    return model, {"x": x}


@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize(
    "opset, coordinate_mode",
    [(19, mode) for mode in COORDINATE_MODES]
    + [(18, mode) for mode in COORDINATE_MODES if mode != "half_pixel_symmetric"],
)
@pytest.mark.parametrize("shape, scales", SCALES)
def test_resize_nearest_scales(opset, nearest_mode, coordinate_mode, shape, scales):
    model, feeds = _model(
        shape,
        opset,
        scales=scales,
        mode="nearest",
        nearest_mode=nearest_mode,
        coordinate_transformation_mode=coordinate_mode,
    )
    check(model, feeds)


@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
@pytest.mark.parametrize("shape, sizes", SIZES)
def test_resize_nearest_sizes(nearest_mode, coordinate_mode, shape, sizes):
    model, feeds = _model(
        shape,
        19,
        sizes=sizes,
        mode="nearest",
        nearest_mode=nearest_mode,
        coordinate_transformation_mode=coordinate_mode,
    )
    check(model, feeds)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
@pytest.mark.parametrize("shape, scales", SCALES)
def test_resize_linear_cubic_scales(mode, coordinate_mode, shape, scales):
    model, feeds = _model(shape, 19, scales=scales, mode=mode, coordinate_transformation_mode=coordinate_mode)
    check(model, feeds)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
@pytest.mark.parametrize("shape, sizes", SIZES)
def test_resize_linear_cubic_sizes(mode, coordinate_mode, shape, sizes):
    model, feeds = _model(
        shape,
        18 if coordinate_mode != "half_pixel_symmetric" else 19,
        sizes=sizes,
        mode=mode,
        coordinate_transformation_mode=coordinate_mode,
    )
    check(model, feeds)


@pytest.mark.parametrize("a, exclude_outside", [(-0.5, 0), (-0.75, 1), (-0.5, 1)])
def test_resize_cubic_coefficient_and_exclude_outside(a, exclude_outside):
    model, feeds = _model(
        (1, 1, 5, 6), 19, scales=[1, 1, 1.5, 0.8], mode="cubic", cubic_coeff_a=a, exclude_outside=exclude_outside
    )
    check(model, feeds)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("shape, sizes", [((1, 2, 12, 10), [1, 2, 5, 3]), ((1, 1, 8, 8), [1, 1, 3, 12])])
def test_resize_antialias(mode, shape, sizes):
    model, feeds = _model(shape, 18, sizes=sizes, mode=mode, antialias=1)
    check(model, feeds)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_tf_crop_and_resize(mode):
    x = random((1, 2, 6, 7))
    roi = np.array([0, 0, 0.2, -0.1, 1, 1, 0.9, 1.3], np.float32)  # partly outside: extrapolated
    model = make_model(
        helper.make_node(
            "Resize",
            ["x", "roi", "", "sizes"],
            ["y"],
            mode=mode,
            coordinate_transformation_mode="tf_crop_and_resize",
            extrapolation_value=-7.0,
        ),
        {"x": x},
        ["y"],
        19,
        initializers={"roi": roi, "sizes": np.array([1, 2, 5, 6], np.int64)},
    )
    check(model, {"x": x})


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_axes_and_aspect_ratio(policy, mode):
    x = random((2, 3, 6, 8))
    model = make_model(
        helper.make_node(
            "Resize", ["x", "", "", "sizes"], ["y"], mode=mode, axes=[3, 2], keep_aspect_ratio_policy=policy
        ),
        {"x": x},
        ["y"],
        19,
        initializers={"sizes": np.array([5, 9], np.int64)},
    )
    check(model, {"x": x})


@pytest.mark.parametrize("shape, scales", [((1, 3, 8), [1, 1, 2.5]), ((1, 1, 3, 4, 5), [1, 1, 2, 0.5, 1.5])])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_1d_3d(shape, scales, mode):
    model, feeds = _model(shape, 19, scales=scales, mode=mode)
    # onnxruntime 1.32 runs cubic on 2-D (or NCHW) resizes only.
    check(model, feeds, reference=mode == "cubic")


def test_resize_uint8_image():
    x = random((1, 3, 5, 6), dtype=np.uint8)
    model = make_model(
        helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear"),
        {"x": x},
        ["y"],
        19,
        initializers={"scales": np.array([1, 1, 2, 1.5], np.float32)},
    )
    check(model, {"x": x})


def test_resize_scales_computed_at_run_time():
    x = random((1, 2, 4, 4))
    feeds = {"x": x, "scales": np.array([1, 1, 2, 3], np.float32)}
    model = make_model(helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear"), feeds, ["y"], 19)
    check(model, feeds)


def test_resize_unknown_mode_names_it():
    x = random((1, 1, 2, 2))
    model = make_model(
        helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", coordinate_transformation_mode="weird"),
        {"x": x},
        ["y"],
        19,
        initializers={"scales": np.array([1, 1, 2, 2], np.float32)},
    )
    with pytest.raises(NotImplementedError, match="coordinate_transformation_mode='weird'"):
        onnx2torch.convert(model)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 1.5, 3.0]])
def test_upsample_7(mode, scales):
    x = random((1, 2, 3, 4))
    model = make_model(helper.make_node("Upsample", ["x"], ["y"], mode=mode, scales=scales), {"x": x}, ["y"], 7)
    check(model, {"x": x})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_9(mode):
    x = random((2, 3, 4, 5))
    model = make_model(
        helper.make_node("Upsample", ["x", "scales"], ["y"], mode=mode),
        {"x": x},
        ["y"],
        9,
        initializers={"scales": np.array([1, 1, 2, 2.5], np.float32)},
    )
    check(model, {"x": x})


@pytest.mark.parametrize(
    "opset, mode", [(16, "bilinear"), (16, "nearest"), (16, "bicubic"), (20, "linear"), (20, "cubic")]
)
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample(opset, mode, padding_mode, align_corners):
    x = random((2, 3, 5, 6))
    grid = random((2, 4, 7, 2), seed=1, low=-1.3, high=1.3)  # some points outside
    feeds = {"x": x, "grid": grid}
    node = helper.make_node(
        "GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding_mode, align_corners=align_corners
    )
    check(make_model(node, feeds, ["y"], opset), feeds)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_grid_sample_volumetric(mode):
    x = random((1, 2, 3, 4, 5))
    grid = random((1, 2, 3, 4, 3), seed=1, low=-1.0, high=1.0)
    feeds = {"x": x, "grid": grid}
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode)
    check(make_model(node, feeds, ["y"], 22), feeds)
