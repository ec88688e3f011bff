import numpy as np
import pytest
from convert_check import check, make_model, random, run_torch
from onnx import TensorProto, helper


@pytest.mark.parametrize("shape, axis", [((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0)])
def test_hardmax_13(shape, axis):
    x = random(shape)
    x.reshape(-1)[::3] = 1.5  # ties: the first maximum wins
    model = make_model(helper.make_node("Hardmax", ["x"], ["y"], axis=axis), {"x": x}, ["y"], 13)
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [11])
@pytest.mark.parametrize("shape, axis", [((3, 4), 1), ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), 0), ((2, 3, 4), -1)])
def test_hardmax_11_flattens_from_axis(opset, shape, axis):
    # Before 13 the maximum is taken over all dimensions from `axis` on.
    x = random(shape, seed=axis + 5)
    model = make_model(helper.make_node("Hardmax", ["x"], ["y"], axis=axis), {"x": x}, ["y"], opset)
    check(model, {"x": x})


def test_hardmax_11_default_axis_is_1():
    x = random((2, 3, 4), seed=4)
    model = make_model(helper.make_node("Hardmax", ["x"], ["y"]), {"x": x}, ["y"], 11)
    (y,) = check(model, {"x": x})
    assert y.reshape(2, -1).sum(axis=1).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 1, -1, 3, -4])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 5, 3)])
def test_trilu(shape, k, upper):
    x = random(shape)
    inputs = {"x": x}
    names = ["x"]
    if k is not None:
        inputs["k"] = np.array(k, np.int64)
        names.append("k")
    model = make_model(helper.make_node("Trilu", names, ["y"], upper=upper), inputs, ["y"], 14)
    check(model, inputs)


def test_trilu_integer_k_from_initializer():
    x = random((4, 6), dtype=np.int32)
    model = make_model(
        helper.make_node("Trilu", ["x", "k"], ["y"], upper=0),
        {"x": x},
        ["y"],
        14,
        initializers={"k": np.array(2, np.int64)},
    )
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [13, 19, 21, 23, 24, 25])
@pytest.mark.parametrize("shape", [(), (0, 3), (2, 3, 4)])
def test_size(opset, shape):
    x = random(shape)
    model = make_model(helper.make_node("Size", ["x"], ["y"]), {"x": x}, ["y"], opset)
    check(model, {"x": x})


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("inputs", [["x"], ["x", "ratio"], ["x", "ratio", "training_mode"], ["x", "", "training_mode"]])
def test_dropout_22_inference(inputs, with_mask):
    x = random((3, 4))
    feeds = {"x": x}
    if "ratio" in inputs:
        feeds["ratio"] = np.array(0.3, np.float32)
    if "training_mode" in inputs:
        feeds["training_mode"] = np.array(False)
    outputs = ["y", "mask"] if with_mask else ["y"]
    model = make_model(helper.make_node("Dropout", inputs, outputs), feeds, outputs, 22)
    check(model, feeds)


def test_dropout_22_training_mode_drops():
    x = np.ones((200, 50), np.float32)
    feeds = {"x": x, "ratio": np.array(0.25, np.float32), "training_mode": np.array(True)}
    model = make_model(
        helper.make_node("Dropout", ["x", "ratio", "training_mode"], ["y", "mask"]), feeds, ["y", "mask"], 22
    )
    y, mask = run_torch(model, feeds)
    assert mask.dtype == np.bool_
    np.testing.assert_allclose(y[mask], 1 / 0.75, rtol=1e-6)
    assert (y[~mask] == 0).all()
    assert 0.2 < 1 - mask.mean() < 0.3


def test_dropout_7_inference():
    x = random((3, 4))
    model = make_model(helper.make_node("Dropout", ["x"], ["y"], ratio=0.4), {"x": x}, ["y"], 7)
    check(model, {"x": x})


@pytest.mark.parametrize("opset, attrs", [(1, {"is_test": 1, "consumed_inputs": [0]}), (6, {"is_test": 1}), (7, {})])
def test_dropout_before_10_mask_is_all_kept(opset, attrs):
    # Before opset 10 the mask has the input's type. In inference every
    # element is kept, so it is all ones (as the reference evaluator says,
    # though it answers in bool; onnxruntime fills zeros, and neither runs
    # opsets 1 and 6).
    x = random((3, 4))
    model = make_model(helper.make_node("Dropout", ["x"], ["y", "mask"], **attrs), {"x": x}, ["y", "mask"], opset)
    y, mask = run_torch(model, {"x": x})
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == np.float32 and (mask == 1).all()


def test_size_of_computed_tensor_is_int64():
    x = random((2, 5))
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=TensorProto.INT32),
        helper.make_node("Size", ["c"], ["y"]),
    ]
    model = make_model(nodes, {"x": x}, ["y"], 21)
    (y,) = check(model, {"x": x})
    assert y.dtype == np.int64 and y.shape == ()


@pytest.mark.parametrize("shape", [(2, 3), (5,), (2, 2, 3)])
def test_nonzero_9(shape):
    x = random(shape, dtype=np.int32, low=-1, high=1)
    model = make_model(helper.make_node("NonZero", ["x"], ["y"]), {"x": x}, ["y"], 9)
    check(model, {"x": x})


@pytest.mark.parametrize(
    "opset, reduction", [(11, "none"), (13, "none"), (16, "add"), (16, "mul"), (18, "max"), (18, "min")]
)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements(opset, reduction, axis):
    data = random((4, 5))
    shape = [3, 3]
    indices = random(shape, dtype=np.int64, seed=1, low=-4, high=3)  # negative: from the end
    if reduction == "none":  # distinct targets along the axis: duplicates are unspecified
        indices = np.argsort(random((4, 5) if axis == 0 else (4, 5), seed=2), axis=axis)[:3, :3] - 2
    updates = random(shape, seed=3)
    feeds = {"data": data, "indices": indices, "updates": updates}
    attrs = {"axis": axis} if reduction == "none" else {"axis": axis, "reduction": reduction}
    model = make_model(helper.make_node("ScatterElements", list(feeds), ["y"], **attrs), feeds, ["y"], opset)
    check(model, feeds)


@pytest.mark.parametrize("opset", [9, 11])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("index_type", [np.int64, np.int32, np.float32])
def test_one_hot(opset, axis, index_type):
    indices = np.array([[0, 2, -1], [5, 1, -3]], index_type)  # 5 is out of range: all off
    if opset == 9:
        indices = np.abs(indices) % 5  # negative indices are new in 11
    feeds = {"indices": indices, "depth": np.array(4, np.int64), "values": np.array([-2.0, 3.5], np.float32)}
    model = make_model(helper.make_node("OneHot", list(feeds), ["y"], axis=axis), feeds, ["y"], opset)
    # onnxruntime 1.32 has OneHot kernels for int64 indices only.
    check(model, feeds, reference=index_type != np.int64)


@pytest.mark.parametrize("opset, mode", [(13, None), (28, "DCR"), (28, "CRD")])
@pytest.mark.parametrize("blocksize", [2, 3])
def test_space_to_depth(opset, mode, blocksize):
    x = random((2, 3, 6, 12))
    attrs = {"blocksize": blocksize} if mode is None else {"blocksize": blocksize, "mode": mode}
    model = make_model(helper.make_node("SpaceToDepth", ["x"], ["y"], **attrs), {"x": x}, ["y"], opset)
    # onnxruntime 1.32 has no SpaceToDepth-28 kernel: the reference evaluator.
    check(model, {"x": x}, reference=opset == 28)


@pytest.mark.parametrize("opset", [11, 22])
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4)])
def test_det(opset, shape):
    x = random(shape)
    model = make_model(helper.make_node("Det", ["x"], ["y"]), {"x": x}, ["y"], opset)
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [14, 19, 21, 23, 25])
@pytest.mark.parametrize(
    "in_shape, shape, allowzero",
    [
        ((2, 3, 4), [4, -1], 0),
        ((2, 3, 4), [0, -1], 0),  # 0 copies the input's dimension
        ((2, 3, 4), [0, 0, 2, 2], 0),
        ((2, 3, 4), [6, 4], 1),
        ((2, 0, 4), [0, 4, 5], 1),  # 0 is a zero-size dimension
    ],
)
def test_reshape(opset, in_shape, shape, allowzero):
    x = random(in_shape)
    model = make_model(
        helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=allowzero),
        {"x": x},
        ["y"],
        opset,
        initializers={"shape": np.array(shape, np.int64)},
    )
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [14, 21])
@pytest.mark.parametrize("allowzero", [0, 1])
def test_reshape_shape_computed_at_run_time(opset, allowzero):
    x = random((2, 3, 4))
    feeds = {"x": x, "shape": np.array([4, 3, -1] if allowzero else [4, 0, -1], np.int64)}
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=allowzero)
    model = make_model(node, feeds, ["y"], opset, shapes={"shape": ["n"]})
    check(model, feeds)


@pytest.mark.parametrize(
    "dim, split, num_outputs, outputs",
    [(6, None, 3, 3), (7, None, 3, 3), (5, None, 2, 2), (6, [1, 2, 3], None, 3), (4, [4], None, 1)],
)
@pytest.mark.parametrize("axis", [0, -1])
def test_split_18(dim, split, num_outputs, outputs, axis):
    x = random((dim, dim + 1) if axis == 0 else (3, dim))
    names = [f"y{i}" for i in range(outputs)]
    attrs = {"axis": axis}
    if num_outputs:
        attrs["num_outputs"] = num_outputs
    inputs = ["x"] if split is None else ["x", "split"]
    initializers = {} if split is None else {"split": np.array(split, np.int64)}
    nodes = [helper.make_node("Split", inputs, [f"{n}_raw" for n in names], **attrs)]
    if outputs > 1:  # each output a graph output of its own
        nodes += [helper.make_node("Identity", [f"{n}_raw"], [n]) for n in names]
    else:
        names = ["y0_raw"]
    model = make_model(nodes, {"x": x}, names, 18, initializers=initializers)
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [18, 19, 21, 23, 25])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize(
    "pads, axes",
    [([1, 2, 0, 3], None), ([0, 1, 2, 0, 1, 2], None), ([2, 1], [-1]), ([1, 0, 3, 1], [2, 0]), ([1, -1, 0, 2], None)],
)
def test_pad(opset, mode, pads, axes):
    if mode == "wrap" and opset < 19:
        return  # wrap is new in 19
    x = random((3, 4) if len(pads) == 4 and axes is None else (3, 4, 5))
    inputs = ["x", "pads", "value"]
    initializers = {"pads": np.array(pads, np.int64), "value": np.array(1.5, np.float32)}
    if axes is not None:
        inputs.append("axes")
        initializers["axes"] = np.array(axes, np.int64)
    model = make_model(
        helper.make_node("Pad", inputs, ["y"], mode=mode), {"x": x}, ["y"], opset, initializers=initializers
    )
    check(model, {"x": x})


def test_pad_defaults_to_zero_and_computed_pads():
    x = random((2, 3, 4), dtype=np.int32)
    feeds = {"x": x, "pads": np.array([0, 1, 1, 0, 2, 0], np.int64)}
    model = make_model(helper.make_node("Pad", ["x", "pads"], ["y"]), feeds, ["y"], 21, shapes={"pads": ["n"]})
    check(model, feeds)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1, -3, -4])
def test_flatten_at_every_axis(axis):
    x = random((2, 3, 4, 5))
    check(make_model(helper.make_node("Flatten", ["x"], ["y"], axis=axis), {"x": x}, ["y"], 13), {"x": x})


@pytest.mark.parametrize(
    "dtype, to",
    [
        (np.float32, TensorProto.INT32),
        (np.int32, TensorProto.FLOAT),
        (np.float16, TensorProto.INT16),
        (np.int64, TensorProto.UINT64),
    ],
)
def test_bitcast_keeps_the_bits(dtype, to):
    x = (random((3, 4)) * 100).astype(dtype)
    check(make_model(helper.make_node("BitCast", ["x"], ["y"], to=to), {"x": x}, ["y"], 26), {"x": x}, reference=True)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(axis):
    x = random((3, 4))
    condition = np.array([True, False, True], bool) if axis == 0 else np.array([0, 1, 1, 0], bool)
    attrs = {} if axis is None else {"axis": axis}
    feeds = {"x": x, "condition": condition}
    check(make_model(helper.make_node("Compress", ["x", "condition"], ["y"], **attrs), feeds, ["y"], 11), feeds)


@pytest.mark.parametrize("batch_axis, time_axis, shape", [(1, 0, (4, 3, 2)), (0, 1, (3, 4)), (0, 1, (3, 5, 2))])
def test_reverse_sequence(batch_axis, time_axis, shape):
    x = random(shape)
    lengths = np.array([1, 3, 2][: shape[batch_axis]], np.int64)
    feeds = {"x": x, "lengths": lengths}
    node = helper.make_node("ReverseSequence", ["x", "lengths"], ["y"], batch_axis=batch_axis, time_axis=time_axis)
    check(make_model(node, feeds, ["y"], 10), feeds)


@pytest.mark.parametrize(
    "reduction, opset", [(None, 11), ("add", 16), ("mul", 16), ("max", 18), ("min", 18), ("none", 18)]
)
@pytest.mark.parametrize("depth", [1, 2])
def test_scatter_nd(reduction, opset, depth):
    data = random((4, 3, 5))
    # Repeated indices, and a negative one (from the end).
    indices = np.array([[0, 1], [2, -1], [0, 1]], np.int64)[:, :depth]
    if reduction in (None, "none"):
        indices = indices[:2]
    updates = random(indices.shape[:1] + data.shape[depth:], seed=1)
    attrs = {} if reduction is None else {"reduction": reduction}
    node = helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"], **attrs)
    feeds = {"data": data, "indices": indices, "updates": updates}
    check(make_model(node, feeds, ["y"], opset), feeds)


@pytest.mark.parametrize(
    "shape, target, axes",
    [((5, 6, 3), [3, 8], [0, 1]), ((4, 7), [6, 3], None), ((2, 5, 5, 3), [4, 9], [-3, 2]), ((3, 4), [3, 4], None)],
)
def test_center_crop_pad(shape, target, axes):
    x = random(shape)
    attrs = {} if axes is None else {"axes": axes}
    node = helper.make_node("CenterCropPad", ["x", "shape"], ["y"], **attrs)
    model = make_model(node, {"x": x}, ["y"], 18, initializers={"shape": np.array(target, np.int64)})
    check(model, {"x": x}, reference=True)


@pytest.mark.parametrize("shape", [(3, 4), (2, 0, 3), (5,)])
def test_nonzero_13_is_rank_by_count(shape):
    x = random(shape, dtype=np.int32, low=-1, high=1)
    model = make_model(helper.make_node("NonZero", ["x"], ["y"]), {"x": x}, ["y"], 13)
    (y,) = check(model, {"x": x})
    assert y.shape[0] == len(shape)


@pytest.mark.parametrize("start, end", [(None, None), (1, None), (-2, None), (0, -1), (3, 1), (5, 9), (-9, 2)])
@pytest.mark.parametrize("opset", [15, 21])
def test_shape_is_int64_for_every_range(start, end, opset):
    x = random((2, 3, 4, 5))
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    model = make_model(helper.make_node("Shape", ["x"], ["y"], **attrs), {"x": x}, ["y"], opset)
    check(model, {"x": x})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_negative_indices(axis):
    x = random((3, 4, 5))
    size = x.shape[axis]
    indices = random((3, 4, 5), dtype=np.int64, seed=1, low=-size, high=size - 1)
    model = make_model(
        helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis), {"x": x, "i": indices}, ["y"], 13
    )
    check(model, {"x": x, "i": indices})


@pytest.mark.parametrize(
    "data_shape, indices_shape, batch_dims",
    [((4, 5, 6), (3, 2), 0), ((4, 5, 6), (2, 3, 3), 0), ((2, 5, 6), (2, 3, 1), 1), ((2, 3, 5, 6), (2, 3, 4, 2), 2)],
)
def test_gather_nd(data_shape, indices_shape, batch_dims):
    data = random(data_shape)
    m = indices_shape[-1]
    sizes = np.array(data_shape[batch_dims : batch_dims + m])
    rng = np.random.default_rng(3)
    indices = (rng.integers(0, 1 << 30, indices_shape) % sizes - rng.integers(0, 2, indices_shape) * sizes).astype(
        np.int64
    )
    model = make_model(
        helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims), {"x": data, "i": indices}, ["y"], 13
    )
    check(model, {"x": data, "i": indices})


@pytest.mark.parametrize("mode", ["DCR", "CRD", None])
@pytest.mark.parametrize("opset", [11, 13])
def test_depth_to_space(mode, opset):
    x = random((2, 18, 3, 4))
    attrs = {"blocksize": 3} | ({"mode": mode} if mode else {})
    model = make_model(helper.make_node("DepthToSpace", ["x"], ["y"], **attrs), {"x": x}, ["y"], opset)
    check(model, {"x": x})


@pytest.mark.parametrize(
    "start, limit, delta, dtype",
    [
        (3, 9, 3, np.int32),
        (10, 4, -2, np.int64),
        (1, 1, 1, np.int32),
        (5, 2, 1, np.int64),  # empty
        (0.5, 3.7, 0.3, np.float32),
        (1.0, -2.0, -0.25, np.float64),
        (-3.0, 100.0, 0.7, np.float16),
    ],
)
def test_range_keeps_the_type(start, limit, delta, dtype):
    feeds = {k: np.array(v, dtype) for k, v in (("s", start), ("l", limit), ("d", delta))}
    model = make_model(helper.make_node("Range", ["s", "l", "d"], ["y"]), feeds, ["y"], 11)
    # (onnxruntime has no float16 Range)
    (y,) = check(model, feeds, reference=dtype == np.float16)
    assert y.dtype == dtype


@pytest.mark.parametrize("stash_type", [1, 11])
def test_range_27_float16_stash(stash_type):
    feeds = {"s": np.array(1000.0, np.float16), "l": np.array(1100.0, np.float16), "d": np.array(0.7, np.float16)}
    node = helper.make_node("Range", ["s", "l", "d"], ["y"], stash_type=stash_type)
    model = make_model(node, feeds, ["y"], 27)
    # onnxruntime has no Range 27: the reference evaluator is the specification's code.
    check(model, feeds, reference=True)


@pytest.mark.parametrize("sort", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("outputs", [1, 4])
def test_unique(sort, axis, outputs):
    x = random((6, 4), dtype=np.int64, low=0, high=2)
    x[3] = x[1]  # a repeated row, for the axis cases
    attrs = {"sorted": sort} | ({} if axis is None else {"axis": axis})
    names = ["y", "indices", "inverse", "counts"][:outputs]
    model = make_model(helper.make_node("Unique", ["x"], names, **attrs), {"x": x}, names, 11)
    # (the reference evaluator sorts also when told not to)
    check(model, {"x": x})


def test_unique_floats_in_first_occurrence_order():
    x = np.array([2.5, -1.0, 2.5, 0.0, -1.0, 7.0, 0.0], np.float32)
    names = ["y", "indices", "inverse", "counts"]
    model = make_model(helper.make_node("Unique", ["x"], names, sorted=0), {"x": x}, names, 11)
    y, *_ = check(model, {"x": x})
    assert y.tolist() == [2.5, -1.0, 0.0, 7.0]


@pytest.mark.parametrize("shape", [(3,), (2, 3), ()])
@pytest.mark.parametrize("axes", [[0], [-1], [-2, -1], [0, -1], [1, -1], [-3, 0]])
@pytest.mark.parametrize("how", ["attribute", "constant", "scalar", "input"])
def test_unsqueeze_axes_count_from_the_output(shape, axes, how):
    x = random(shape)
    rank = len(shape) + len(axes)
    if not all(-rank <= a < rank for a in axes) or len({a % rank for a in axes}) < len(axes):
        pytest.skip("not valid ONNX: an axis out of range or twice")
    if how == "scalar" and len(axes) > 1:
        pytest.skip("one axis only")
    feeds = {"x": x}
    if how == "attribute":
        model = make_model(helper.make_node("Unsqueeze", ["x"], ["y"], axes=axes), feeds, ["y"], 11)
    elif how == "input":
        feeds["a"] = np.array(axes, np.int64)
        model = make_model(helper.make_node("Unsqueeze", ["x", "a"], ["y"]), feeds, ["y"], 13)
    else:
        value = np.array(axes[0] if how == "scalar" else axes, np.int64)
        model = make_model(
            helper.make_node("Unsqueeze", ["x", "a"], ["y"]), feeds, ["y"], 13, initializers={"a": value}
        )
    check(model, feeds, reference=how == "scalar")


@pytest.mark.parametrize("shape", [(5,), (2, 3), ()])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("opset", [9, 13])
def test_flatten_of_small_ranks(shape, axis, opset):
    if not -len(shape) <= axis <= len(shape) or (opset < 11 and axis < 0):
        pytest.skip("axis out of range")
    x = random(shape)
    check(make_model(helper.make_node("Flatten", ["x"], ["y"], axis=axis), {"x": x}, ["y"], opset), {"x": x})


@pytest.mark.parametrize("mode, value", [("constant", 2.5), ("constant", None), ("reflect", None), ("edge", None)])
def test_pad_2_fills_with_its_value(mode, value):
    # onnxruntime and the reference evaluator lack opset 2: numpy's pad is Pad 2's definition.
    x = random((2, 3, 4, 4))
    attrs = {"mode": mode, "pads": [0, 0, 1, 2, 0, 0, 3, 1]} | ({} if value is None else {"value": value})
    model = make_model(helper.make_node("Pad", ["x"], ["y"], **attrs), {"x": x}, ["y"], 2)
    (y,) = run_torch(model, {"x": x})
    widths = [(0, 0), (0, 0), (1, 3), (2, 1)]
    kwargs = {"constant_values": value or 0.0} if mode == "constant" else {}
    np.testing.assert_array_equal(y, np.pad(x, widths, mode={"edge": "edge"}.get(mode, mode), **kwargs))
