import numpy as np
import onnx2torch
import pytest
import torch
from convert_check import assert_same, check, make_model, random, run_ort, run_torch
from onnx import helper


def _inputs(values, runtime):
    """(graph inputs, initializers): the values named in `runtime` are fed,
    the others are constants."""
    feeds = {k: v for k, v in values.items() if k in runtime}
    inits = {k: v for k, v in values.items() if k not in runtime}
    return feeds, inits


@pytest.mark.parametrize("size", [(2, 3, 5, 6), (3, 1, 4, 3, 5), (2, 1, 1, 4), (1, 2, 1, 1, 3)])
@pytest.mark.parametrize("align_corners", [None, 0, 1])
@pytest.mark.parametrize("size_runtime", [False, True])
def test_affine_grid(size, align_corners, size_runtime):
    spatial = len(size) - 2
    theta = random((size[0], spatial, spatial + 1))
    attrs = {} if align_corners is None else {"align_corners": align_corners}
    node = helper.make_node("AffineGrid", ["theta", "size"], ["grid"], **attrs)
    feeds, inits = _inputs({"theta": theta, "size": np.array(size, np.int64)}, ["theta"] + ["size"] * size_runtime)
    check(make_model(node, feeds, ["grid"], 20, initializers=inits), feeds)


def test_affine_grid_double():
    theta = random((2, 3, 4), np.float64)
    node = helper.make_node("AffineGrid", ["theta", "size"], ["grid"], align_corners=1)
    model = make_model(node, {"theta": theta}, ["grid"], 20, initializers={"size": np.array([2, 1, 3, 4, 5], np.int64)})
    check(model, {"theta": theta})


def _col2im(image, block, channels=2, batch=2, runtime=(), **attrs):
    rank = len(image)
    dilations = attrs.get("dilations", [1] * rank)
    strides = attrs.get("strides", [1] * rank)
    pads = attrs.get("pads", [0] * 2 * rank)
    blocks = [
        (image[i] + pads[i] + pads[rank + i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1 for i in range(rank)
    ]
    x = random((batch, channels * int(np.prod(block)), int(np.prod(blocks))))
    node = helper.make_node("Col2Im", ["x", "image_shape", "block_shape"], ["y"], **attrs)
    values = {"x": x, "image_shape": np.array(image, np.int64), "block_shape": np.array(block, np.int64)}
    feeds, inits = _inputs(values, ("x",) + tuple(runtime))
    return make_model(node, feeds, ["y"], 18, initializers=inits), feeds


_COL2IM = [
    ([5, 5], [2, 2], {}),
    ([6, 7], [3, 2], {"dilations": [2, 1]}),
    ([5, 6], [2, 3], {"strides": [2, 3]}),
    ([5, 5], [3, 3], {"pads": [1, 1, 1, 1]}),
    ([5, 6], [2, 3], {"pads": [0, 2, 1, 0], "strides": [2, 1], "dilations": [1, 2]}),
    ([9, 8], [3, 2], {"pads": [2, 0, 1, 3], "strides": [3, 2], "dilations": [2, 3]}),
]


@pytest.mark.parametrize("image, block, attrs", _COL2IM)
def test_col2im(image, block, attrs):
    check(*_col2im(image, block, **attrs))


@pytest.mark.parametrize("runtime", [("image_shape",), ("block_shape",), ("image_shape", "block_shape")])
def test_col2im_with_shapes_computed_at_run_time(runtime):
    check(*_col2im([6, 5], [2, 3], pads=[1, 0, 0, 1], strides=[2, 1], runtime=runtime))


_COL2IM_ND = [
    ([3, 4, 5], [1, 2, 2], {}),
    ([4, 5, 6], [2, 2, 3], {"pads": [1, 0, 2, 0, 1, 1], "strides": [2, 1, 2], "dilations": [1, 2, 1]}),
    ([3, 4, 3, 4], [2, 1, 2, 2], {"strides": [1, 2, 1, 1]}),
]


@pytest.mark.parametrize("image, block, attrs", _COL2IM_ND)
def test_col2im_beyond_two_dimensions(image, block, attrs):
    # onnxruntime's Col2Im is 2-D only: ONNX's reference is the judge.
    check(*_col2im(image, block, **attrs), reference=True)


def _deform_conv(
    x_shape, out_channels, kernel, group=1, offset_group=1, bias=False, mask=False, opset=22, spread=2.0, **attrs
):
    n, c, h, w = x_shape
    pads = attrs.get("pads", [0, 0, 0, 0])
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    out = [
        (size + pads[i] + pads[i + 2] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
        for i, size in enumerate((h, w))
    ]
    values = {
        "x": random(x_shape),
        "w": random((out_channels, c // group, *kernel), seed=1),
        # offsets of a few pixels: some samples fall outside the image
        "offset": random((n, offset_group * 2 * kernel[0] * kernel[1], *out), seed=2) * spread,
    }
    inputs = ["x", "w", "offset"]
    if bias:
        values["b"] = random((out_channels,), seed=3)
    inputs.append("b" if bias else "")
    if mask:
        values["mask"] = random((n, offset_group * kernel[0] * kernel[1], *out), seed=4, low=0.0, high=1.0)
        inputs.append("mask")
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node("DeformConv", inputs, ["y"], group=group, offset_group=offset_group, **attrs)
    return make_model(node, values, ["y"], opset), values


_DEFORM = [
    ((1, 1, 5, 5), 1, [2, 2], {}),
    ((2, 4, 6, 7), 6, [3, 3], {"group": 2, "bias": True}),
    ((2, 4, 6, 7), 4, [3, 2], {"offset_group": 2, "mask": True}),
    ((1, 6, 7, 8), 4, [3, 3], {"group": 2, "offset_group": 3, "mask": True, "bias": True}),
    ((1, 2, 8, 9), 3, [3, 3], {"strides": [2, 3], "dilations": [2, 1], "pads": [1, 2, 1, 2]}),
    ((2, 2, 6, 6), 2, [2, 3], {"pads": [0, 2, 1, 1], "mask": True}),  # asymmetric pads
    ((1, 3, 5, 6), 2, [3, 3], {"kernel_shape": [3, 3], "spread": 6.0}),  # samples far outside
]


@pytest.mark.parametrize("opset", [19, 22])
@pytest.mark.parametrize("x_shape, out_channels, kernel, attrs", _DEFORM)
def test_deform_conv(opset, x_shape, out_channels, kernel, attrs):
    check(*_deform_conv(x_shape, out_channels, kernel, opset=opset, **attrs), atol=1e-4)


def test_deform_conv_with_zero_offsets_is_a_convolution():
    # A deformable convolution without offsets is the plain convolution.
    model, values = _deform_conv((1, 2, 6, 6), 3, [3, 3], pads=[1, 1, 1, 1], bias=True)
    values["offset"] = np.zeros_like(values["offset"])
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    plain = make_model(conv, {k: values[k] for k in ("x", "w", "b")}, ["y"], 22)
    assert_same(run_ort(plain, {k: values[k] for k in ("x", "w", "b")}), run_torch(model, values), atol=1e-5)


def test_deform_conv_refuses_other_ranks():
    values = {"x": random((1, 2, 6)), "w": random((2, 2, 3)), "offset": random((1, 3, 4))}
    node = helper.make_node("DeformConv", ["x", "w", "offset"], ["y"])
    model = make_model(node, values, ["y"], 22)
    with pytest.raises(NotImplementedError, match="2-D"):
        run_torch(model, values)


def _pool_then_unpool(shape, kernel, strides=None, pads=None, output_shape=None, runtime=False):
    """MaxPool's values and indices fed to MaxUnpool, as models use it; the
    output shape, when given, is the pooled input's."""
    x = random(shape)
    attrs = {"kernel_shape": kernel}
    if strides:
        attrs["strides"] = strides
    if pads:
        attrs["pads"] = pads
    nodes = [helper.make_node("MaxPool", ["x"], ["v", "i"], **attrs)]
    unpool_inputs = ["v", "i"]
    feeds, inits = {"x": x}, {}
    if output_shape is not None:
        unpool_inputs.append("shape")
        (feeds if runtime else inits)["shape"] = np.array(output_shape, np.int64)
    nodes.append(helper.make_node("MaxUnpool", unpool_inputs, ["y"], **attrs))
    return make_model(nodes, feeds, ["y"], 22, initializers=inits), feeds


_UNPOOL = [
    ((2, 3, 8), [2], None, None),
    ((2, 3, 6, 8), [2, 2], [2, 2], None),
    ((1, 2, 7, 7), [3, 3], [2, 2], [1, 1, 1, 1]),
    ((1, 2, 7, 6), [3, 2], [1, 2], None),  # overlapping windows
    ((1, 2, 4, 6, 6), [2, 2, 2], [2, 2, 2], None),
]


@pytest.mark.parametrize("shape, kernel, strides, pads", _UNPOOL)
def test_max_unpool(shape, kernel, strides, pads):
    check(*_pool_then_unpool(shape, kernel, strides, pads))


@pytest.mark.parametrize("runtime", [False, True])
@pytest.mark.parametrize("shape", [(1, 2, 5, 5), (2, 1, 7, 6)])
def test_max_unpool_to_the_pooled_shape(shape, runtime):
    # MaxPool drops the last row or column: output_shape brings them back,
    # and the indices point into that shape.
    check(*_pool_then_unpool(shape, [2, 2], [2, 2], output_shape=shape, runtime=runtime))


@pytest.mark.parametrize("opset", [9, 11])
def test_max_unpool_older_versions(opset):
    x = random((1, 1, 2, 2))
    indices = np.array([[[[1, 2], [9, 15]]]], np.int64)
    node = helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    check(make_model(node, {"x": x, "i": indices}, ["y"], opset), {"x": x, "i": indices})


def _roi_align(opset, mode, rois, batch, **attrs):
    x = random((2, 3, 10, 12))
    node = helper.make_node("RoiAlign", ["x", "rois", "batch"], ["y"], mode=mode, **attrs)
    feeds = {"x": x, "rois": np.asarray(rois, np.float32), "batch": np.asarray(batch, np.int64)}
    return make_model(node, feeds, ["y"], opset), feeds


_ROIS = [
    [[0.0, 0.0, 11.0, 9.0], [2.5, 1.2, 7.3, 8.9], [5.0, 4.0, 6.0, 4.5]],
    [[-3.0, -2.0, 4.0, 5.0], [8.0, 6.0, 15.0, 14.0], [11.8, 9.6, 12.5, 10.5]],  # beyond the image
    [[4.0, 4.0, 4.0, 4.0], [6.0, 3.0, 2.0, 1.0]],  # empty and reversed boxes
]


@pytest.mark.parametrize("rois", _ROIS)
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize(
    "opset, mode_attrs", [(10, {}), (16, {}), (16, {"coordinate_transformation_mode": "output_half_pixel"})]
)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_roi_align(rois, sampling_ratio, opset, mode_attrs, mode):
    batch = [i % 2 for i in range(len(rois))]
    attrs = dict(mode_attrs, output_height=3, output_width=4, sampling_ratio=sampling_ratio, spatial_scale=0.9)
    check(*_roi_align(opset, mode, rois, batch, **attrs))


@pytest.mark.parametrize("half_pixel", [True, False])
def test_roi_align_max_opset_22(half_pixel):
    # onnxruntime has no RoiAlign-22 kernel: ONNX's reference is the judge.
    mode = "half_pixel" if half_pixel else "output_half_pixel"
    model, feeds = _roi_align(
        22, "max", _ROIS[0] + _ROIS[1], [0, 1, 1, 0, 1, 0], output_height=2, output_width=3,
        coordinate_transformation_mode=mode,
    )  # fmt: skip
    check(model, feeds, reference=True)


def test_roi_align_max_with_large_boxes():
    # Adaptive sampling grids of different sizes per box.
    rois = [[0.0, 0.0, 40.0, 30.0], [1.0, 2.0, 5.0, 3.0], [10.0, 0.0, 47.0, 39.0]]
    x = random((1, 4, 40, 48))
    node = helper.make_node("RoiAlign", ["x", "rois", "batch"], ["y"], mode="max", output_height=4, output_width=3)
    feeds = {"x": x, "rois": np.asarray(rois, np.float32), "batch": np.zeros(3, np.int64)}
    check(make_model(node, feeds, ["y"], 16), feeds)


@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_max_traces_only_with_a_fixed_sampling_ratio(sampling_ratio):
    # With sampling_ratio 0 the number of sampling points depends on the
    # boxes: a trace would keep the example's, so tracing is refused.
    model, feeds = _roi_align(
        16, "max", _ROIS[0], [0, 1, 0], output_height=2, output_width=2, sampling_ratio=sampling_ratio
    )
    module = onnx2torch.convert(model).eval()
    args = tuple(torch.from_numpy(feeds[k]) for k in ("x", "rois", "batch"))
    if sampling_ratio == 0:
        with pytest.raises(NotImplementedError, match="sampling grid"):
            torch.jit.trace(module, args, check_trace=False)
        return
    traced = torch.jit.trace(module, args, check_trace=False)
    other = (args[0], torch.tensor([[1.0, 2.0, 9.5, 8.0]]), torch.tensor([1]))
    torch.testing.assert_close(traced(*other), module(*other))
