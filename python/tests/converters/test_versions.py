"""Version aliases: each aliased (op, version) converts and runs like
onnxruntime at that version."""

import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import TensorProto, helper

from onnx2pt_py.converters import versions


def _unary(op, **attrs):
    def build(opset):
        x = random((3, 4), low=-0.9, high=0.9)
        return make_model(helper.make_node(op, ["x"], ["y"], **attrs), {"x": x}, ["y"], opset), {"x": x}

    return build


def _binary(op, dtype=np.float32):
    def build(opset):
        a, b = random((3, 4), dtype=dtype, low=0, high=3), random((4,), dtype=dtype, seed=1, low=0, high=3)
        return make_model(helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b}, ["y"], opset), {"a": a, "b": b}

    return build


def _variadic(op):
    def build(opset):
        # same shapes: before opset 8 these ops did not broadcast
        feeds = {f"x{i}": random((2, 3), seed=i) for i in range(3)}
        return make_model(helper.make_node(op, list(feeds), ["y"]), feeds, ["y"], opset), feeds

    return build


def _with_weights(op, shapes, feeds_shape, **attrs):
    def build(opset):
        x = random(feeds_shape)
        weights = {name: random(shape, seed=i + 1) for i, (name, shape) in enumerate(shapes.items())}
        node = helper.make_node(op, ["x", *weights], ["y"], **attrs)
        return make_model(node, {"x": x}, ["y"], opset, initializers=weights), {"x": x}

    return build


def _constant(opset):
    value = helper.make_tensor("v", TensorProto.FLOAT, [2, 3], np.arange(6, dtype=np.float32))
    x = random((2, 3))
    nodes = [helper.make_node("Constant", [], ["c"], value=value), helper.make_node("Add", ["x", "c"], ["y"])]
    return make_model(nodes, {"x": x}, ["y"], opset), {"x": x}


def _constant_of_shape(opset):
    shape = np.array([2, 3], np.int64)
    value = helper.make_tensor("v", TensorProto.INT32, [1], [7])
    return (
        make_model(helper.make_node("ConstantOfShape", ["s"], ["y"], value=value), {"s": shape}, ["y"], opset),
        {"s": shape},
    )


def _reshape(opset):
    x = random((2, 3, 4))
    shape = np.array([4, -1], np.int64)
    return make_model(
        helper.make_node("Reshape", ["x", "s"], ["y"]), {"x": x}, ["y"], opset, initializers={"s": shape}
    ), {"x": x}


def _axes_input(op, shape, axes):
    def build(opset):
        x = random(shape)
        node = helper.make_node(op, ["x", "axes"], ["y"])
        model = make_model(node, {"x": x}, ["y"], opset, initializers={"axes": np.array(axes, np.int64)})
        return model, {"x": x}

    return build


def _shape(opset):
    x = random((2, 3, 4, 5))
    return make_model(helper.make_node("Shape", ["x"], ["y"], start=1, end=-1), {"x": x}, ["y"], opset), {"x": x}


def _topk(opset):
    x = random((3, 6))
    model = make_model(
        helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=1),
        {"x": x},
        ["values", "indices"],
        opset,
        initializers={"k": np.array([2], np.int64)},
    )
    return model, {"x": x}


def _is(op):
    def build(opset):
        x = np.array([1.0, np.nan, np.inf, -np.inf, 0.0], np.float32)
        return make_model(helper.make_node(op, ["x"], ["y"]), {"x": x}, ["y"], opset), {"x": x}

    return build


def _quantize_round_trip(op):
    def build(opset):
        x = random((2, 5)) * 3
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"]),
        ]
        initializers = {"scale": np.array(0.05, np.float32), "zero": np.array(-3, np.int8)}
        return make_model(nodes, {"x": x}, ["y"], opset, initializers=initializers), {"x": x}

    return build


def _scatter_nd(opset):
    data = random((4, 3))
    indices = np.array([[1], [3]], np.int64)
    updates = random((2, 3), seed=1)
    feeds = {"data": data, "indices": indices, "updates": updates}
    return make_model(helper.make_node("ScatterND", list(feeds), ["y"]), feeds, ["y"], opset), feeds


def _roi_align(opset):
    x = random((1, 2, 8, 8))
    rois = np.array([[0.5, 0.5, 5.0, 6.0], [1.0, 2.0, 7.0, 7.5]], np.float32)
    batch = np.array([0, 0], np.int64)
    feeds = {"x": x, "rois": rois, "batch": batch}
    node = helper.make_node(
        "RoiAlign", list(feeds), ["y"], output_height=3, output_width=2, sampling_ratio=2, spatial_scale=1.0
    )
    return make_model(node, feeds, ["y"], opset), feeds


def _arg(op):
    def build(opset):
        x = random((3, 5))
        return make_model(helper.make_node(op, ["x"], ["y"], axis=1, keepdims=0), {"x": x}, ["y"], opset), {"x": x}

    return build


def _einsum(opset):
    a, b = random((2, 3)), random((3, 4), seed=1)
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")
    return make_model(node, {"a": a, "b": b}, ["y"], opset), {"a": a, "b": b}


def _nonzero(opset):
    x = np.array([[0, 1.5, 0], [2.0, 0, -1]], np.float32)
    return make_model(helper.make_node("NonZero", ["x"], ["y"]), {"x": x}, ["y"], opset), {"x": x}


def _unique(opset):
    x = np.array([[2, 1], [1, 3], [2, 1]], np.int64)
    names = ["y", "indices", "inverse", "counts"]
    return make_model(helper.make_node("Unique", ["x"], names, sorted=0), {"x": x}, names, opset), {"x": x}


def _compress(opset):
    x, condition = random((3, 4)), np.array([True, False, True])
    model = make_model(helper.make_node("Compress", ["x", "c"], ["y"], axis=0), {"x": x, "c": condition}, ["y"], opset)
    return model, {"x": x, "c": condition}


def _reverse_sequence(opset):
    x, lengths = random((4, 3)), np.array([1, 4, 2], np.int64)
    node = helper.make_node("ReverseSequence", ["x", "n"], ["y"], batch_axis=1, time_axis=0)
    return make_model(node, {"x": x, "n": lengths}, ["y"], opset), {"x": x, "n": lengths}


BUILDERS = {
    "Compress": _compress,
    "ReverseSequence": _reverse_sequence,
    "Acos": _unary("Acos"),
    "Asin": _unary("Asin"),
    "Atan": _unary("Atan"),
    "Cos": _unary("Cos"),
    "Sin": _unary("Sin"),
    "Tan": _unary("Tan"),
    "Celu": _unary("Celu", alpha=0.7),
    "Elu": _unary("Elu", alpha=0.5),
    "Selu": _unary("Selu"),
    "Softplus": _unary("Softplus"),
    "Softsign": _unary("Softsign"),
    "HardSigmoid": _unary("HardSigmoid", alpha=0.3),
    "HardSwish": _unary("HardSwish"),
    "Round": _unary("Round"),
    "Identity": _unary("Identity"),
    "Flatten": _unary("Flatten", axis=1),
    "Transpose": _unary("Transpose", perm=[1, 0]),
    "DepthToSpace": _with_weights("DepthToSpace", {}, (1, 8, 2, 3), blocksize=2, mode="CRD"),
    "EyeLike": _unary("EyeLike", k=1),
    "GlobalAveragePool": _with_weights("GlobalAveragePool", {}, (2, 3, 4, 5)),
    "ArgMax": _arg("ArgMax"),
    "ArgMin": _arg("ArgMin"),
    "Equal": _binary("Equal", np.int32),
    "GreaterOrEqual": _binary("GreaterOrEqual"),
    "LessOrEqual": _binary("LessOrEqual"),
    "Max": _variadic("Max"),
    "Min": _variadic("Min"),
    "Mean": _variadic("Mean"),
    "Sum": _variadic("Sum"),
    "PRelu": _with_weights("PRelu", {"slope": (3, 1, 1)}, (2, 3, 4, 4)),
    "Gemm": _with_weights("Gemm", {"b": (4, 5), "c": (5,)}, (3, 4), alpha=0.5, beta=2.0),
    "Conv": _with_weights("Conv", {"w": (4, 3, 3, 3), "b": (4,)}, (1, 3, 6, 6), pads=[1, 1, 1, 1]),
    "ConvTranspose": _with_weights("ConvTranspose", {"w": (3, 2, 3, 3)}, (1, 3, 4, 4), strides=[2, 2]),
    "InstanceNormalization": _with_weights("InstanceNormalization", {"s": (3,), "b": (3,)}, (2, 3, 4, 5)),
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Reshape": _reshape,
    "Shape": _shape,
    "Squeeze": _axes_input("Squeeze", (2, 1, 3, 1), [1, -1]),
    "Unsqueeze": _axes_input("Unsqueeze", (2, 3), [0, -1]),
    "TopK": _topk,
    "IsInf": _is("IsInf"),
    "IsNaN": _is("IsNaN"),
    "NonZero": _nonzero,
    "Unique": _unique,
    "QuantizeLinear": _quantize_round_trip("QuantizeLinear"),
    "DequantizeLinear": _quantize_round_trip("DequantizeLinear"),
    "ScatterND": _scatter_nd,
    "RoiAlign": _roi_align,
    "Einsum": _einsum,
}

# onnxruntime 1.32 does not run these (op, version)s at all; the reference
# evaluator does.
NO_ORT = {
    ("ArgMax", 1),
    ("ArgMin", 1),
    ("Max", 6),
    ("Min", 6),
    ("Mean", 6),
    ("Sum", 6),
    ("PRelu", 6),
    ("Flatten", 1),
    ("QuantizeLinear", 28),
    ("DequantizeLinear", 28),
    ("RoiAlign", 22),
}
# ... and these neither: the model runs one opset up (same schema semantics
# per versions.py), converted at the old one.
NO_REFERENCE = {("Constant", 1)}


def test_every_alias_has_a_model():
    assert {op for op, _, _ in versions.ALIASES} <= set(BUILDERS)


@pytest.mark.parametrize("op, version, source", versions.ALIASES, ids=[f"{a[0]}-{a[1]}" for a in versions.ALIASES])
def test_alias(op, version, source):
    model, feeds = BUILDERS[op](version)
    assert model.opset_import[0].version == version
    if (op, version) in NO_REFERENCE:
        from convert_check import assert_same, run_ort, run_torch

        newer, _ = BUILDERS[op](source)
        assert_same(run_ort(newer, feeds), run_torch(model, feeds))
        return
    check(model, feeds, reference=(op, version) in NO_ORT)


def test_alias_list_is_reviewed():
    # New onnx releases add schema versions; each new alias must be checked
    # for semantic changes its signature does not show (see versions.py),
    # then added here.
    expected = {
        "Acos": [22], "ArgMax": [1], "ArgMin": [1], "Asin": [22], "Atan": [22], "Celu": [28], "Compress": [28],
        "Constant": [1, 19, 21, 23, 24, 25], "ConstantOfShape": [20, 21, 23, 24, 25], "Conv": [22],
        "ConvTranspose": [22], "Cos": [22], "DepthToSpace": [28], "DequantizeLinear": [28], "Einsum": [28],
        "Elu": [22], "Equal": [19], "EyeLike": [22], "Flatten": [1, 21, 23, 24, 25], "Gemm": [7],
        "GlobalAveragePool": [22], "GreaterOrEqual": [16], "HardSigmoid": [22], "HardSwish": [22],
        "Identity": [19, 21, 23, 24, 25], "InstanceNormalization": [22], "IsNaN": [9, 20],
        "LessOrEqual": [16], "Max": [6], "Mean": [6], "Min": [6], "PRelu": [6],
        "QuantizeLinear": [28], "ReverseSequence": [28], "RoiAlign": [22], "Round": [22], "Selu": [22], "Shape": [19, 21, 23, 24, 25], "Sin": [22], "Softplus": [22],
        "Softsign": [22], "Squeeze": [23, 24, 25], "Sum": [6], "Tan": [22], "TopK": [24],
        "Transpose": [21, 23, 24, 25], "Unique": [28], "Unsqueeze": [21, 23, 24, 25],
    }  # fmt: skip
    got = {}
    for op, version, _ in versions.ALIASES:
        got.setdefault(op, []).append(version)
    assert got == expected


def test_signature_change_breaks_the_chain():
    # Against onnx2torch's converters alone: Pad 18 added the `axes` input
    # and Split 18 `num_outputs`, so their version-13 converters must not
    # serve them (tensor.py has its own).
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY

    from onnx2pt_py.converters import REGISTERED, REPLACED

    onnx2torch_only = {k: v for k, v in _CONVERTER_REGISTRY.items() if k not in REGISTERED}
    onnx2torch_only.update(REPLACED)
    aliased = {(op, version) for op, version, _ in versions.compute_aliases(onnx2torch_only)}
    assert ("Identity", 19) in aliased
    for key in [("Pad", 18), ("Split", 18), ("ReduceMax", 18), ("Mod", 28), ("Resize", 18)]:
        assert key not in aliased
