import itertools

import numpy as np
import onnx2torch
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from pass_helpers import (
    applied,
    assert_matches_ort,
    make_model,
    ort_run,
    squeezenet,
    tensor_info,
    torch_run,
)

from onnx2pt_py.passes import auto_pad, constants

MODES = ("SAME_UPPER", "SAME_LOWER")
# 7 and 8: an odd and an even spatial size in the same node.
H, W = 7, 8


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def single_node(op, attrs, weight=None, shape=(1, 2, H, W), opset=17):
    rng = np.random.default_rng(0)
    inputs, inits = ["x"], []
    if weight is not None:
        inits.append(numpy_helper.from_array(rng.standard_normal(weight).astype(np.float32), "w"))
        inputs.append("w")
    node = helper.make_node(op, inputs, ["y"], **attrs)
    x = tensor_info("x", list(shape))
    return make_model([node], [x], [tensor_info("y", [None] * len(shape))], inits, opset=opset)


def rewrite(model):
    out, counts = applied(auto_pad.apply, model)
    assert counts == {"auto_pad_explicit": 1}
    node = out.graph.node[0]
    assert attr(node, "auto_pad", b"NOTSET") == b"NOTSET"
    return out, node


def x_for(model, batch=2):
    dims = [d.dim_value or batch for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(batch).standard_normal(dims).astype(np.float32)


def check_against(reference, out, batches=(1, 2)):
    """out matches reference (a callable x -> y) in onnxruntime and, where
    onnx2torch converts it, as torch."""
    module = onnx2torch.convert(out).eval()
    for batch in batches:
        x = x_for(out, batch)
        want = reference(x)
        np.testing.assert_allclose(ort_run(out, {"x": x})[0], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(torch_run(module, [x])[0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode,stride,kernel", list(itertools.product(MODES, (1, 2), (1, 2, 3))))
def test_conv_matches_onnxruntime(mode, stride, kernel):
    model = single_node("Conv", {"auto_pad": mode, "strides": [stride, stride]}, weight=(3, 2, kernel, kernel))
    with pytest.raises(NotImplementedError, match=f'"{mode}" auto_pad is not implemented'):
        onnx2torch.convert(model)
    out, node = rewrite(model)
    check_against(lambda x: ort_run(model, {"x": x})[0], out)


@pytest.mark.parametrize("mode,stride,kernel", list(itertools.product(MODES, (1, 2), (2, 3))))
def test_dilated_conv_matches_the_reference(mode, stride, kernel):
    # onnxruntime refuses SAME with dilations; the reference pads for the
    # dilated kernel, as the spec says.
    attrs = {"auto_pad": mode, "strides": [stride, stride], "dilations": [2, 2]}
    model = single_node("Conv", attrs, weight=(3, 2, kernel, kernel))
    out, node = rewrite(model)
    reference = ReferenceEvaluator(model)
    check_against(lambda x: reference.run(None, {"x": x})[0], out)


def test_pads_formula_examples():
    # (size, kernel, stride, dilation, upper) -> (begin, end)
    assert auto_pad.same_pads(7, 3, 1, 1, True)[:2] == (1, 1)
    assert auto_pad.same_pads(8, 2, 1, 1, True)[:2] == (0, 1)
    assert auto_pad.same_pads(8, 2, 1, 1, False)[:2] == (1, 0)
    assert auto_pad.same_pads(8, 3, 2, 1, True)[:2] == (0, 1)
    assert auto_pad.same_pads(7, 3, 2, 1, True)[:2] == (1, 1)
    assert auto_pad.same_pads(8, 3, 1, 2, False)[:2] == (2, 2)
    assert auto_pad.same_pads(7, 2, 2, 3, False)[:2] == (2, 1)
    assert auto_pad.same_pads(8, 1, 2, 1, True) == (0, 0, -1)  # 1x1 stride-2: clamped


POOLS = [
    ("MaxPool", {}),
    ("MaxPool", {"ceil_mode": 1}),
    ("AveragePool", {"count_include_pad": 0}),
    ("AveragePool", {"count_include_pad": 1}),
    ("LpPool", {"p": 2}),
]


@pytest.mark.parametrize(
    "pool,mode,stride,kernel", [(p, m, s, k) for p, m, s, k in itertools.product(POOLS, MODES, (1, 2), (2, 3))]
)
def test_pools_match_onnxruntime(pool, mode, stride, kernel):
    op, extra = pool
    attrs = {"auto_pad": mode, "strides": [stride, stride], "kernel_shape": [kernel, kernel], **extra}
    model = single_node(op, attrs)
    out, node = rewrite(model)
    pads = attr(node, "pads")
    for batch in (1, 2):
        x = x_for(model, batch)
        np.testing.assert_allclose(ort_run(out, {"x": x})[0], ort_run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)
    symmetric = pads[:2] == pads[2:]
    if op == "MaxPool" or (op == "AveragePool" and symmetric):
        # onnx2torch has no LpPool, and AveragePool only with symmetric pads.
        assert_matches_ort(model, onnx2torch.convert(out).eval(), batches=(1, 2))


def conv_transpose_cases():
    for mode, stride, kernel, output_padding, explicit_shape in itertools.product(
        MODES, (1, 2, 3), (1, 2, 3, 4), (0, 1), (False, True)
    ):
        if output_padding >= stride:
            continue
        for n in (H, W):
            out = n * stride + (1 if explicit_shape else 0)
            if stride * (n - 1) + output_padding + kernel - out < 0:
                break  # negative padding: left alone, tested below
        else:
            yield mode, stride, kernel, output_padding, explicit_shape


@pytest.mark.parametrize("mode,stride,kernel,output_padding,explicit_shape", list(conv_transpose_cases()))
def test_conv_transpose_matches_onnxruntime(mode, stride, kernel, output_padding, explicit_shape):
    attrs = {"auto_pad": mode, "strides": [stride, stride]}
    if output_padding:
        attrs["output_padding"] = [output_padding, output_padding]
    if explicit_shape:
        attrs["output_shape"] = [H * stride + 1, W * stride + 1]
    model = single_node("ConvTranspose", attrs, weight=(2, 3, kernel, kernel))
    out, node = rewrite(model)
    assert attr(node, "output_shape") is None
    pads = attr(node, "pads")
    for batch in (1, 2):
        x = x_for(model, batch)
        np.testing.assert_allclose(ort_run(out, {"x": x})[0], ort_run(model, {"x": x})[0], rtol=1e-5, atol=1e-5)
    if pads[:2] == pads[2:]:
        assert_matches_ort(model, onnx2torch.convert(out).eval(), batches=(1, 2))
    else:
        with pytest.raises(NotImplementedError, match="non symmetrical padding"):
            onnx2torch.convert(out)


def test_conv_transpose_odd_padding_becomes_symmetric_with_output_padding():
    # kernel 3, stride 2: total padding 1. SAME_LOWER crops the first pixel,
    # which torch expresses as padding 1 plus output_padding 1.
    model = single_node("ConvTranspose", {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, weight=(2, 3, 3, 3))
    out, node = rewrite(model)
    assert attr(node, "pads") == [1, 1, 1, 1]
    assert attr(node, "output_padding") == [1, 1]
    assert_matches_ort(model, onnx2torch.convert(out).eval(), batches=(1, 2))


@pytest.mark.parametrize(
    "op,attrs,weight",
    [
        # Kernel smaller than stride: negative padding, which runtimes treat differently.
        ("MaxPool", {"kernel_shape": [1, 1], "strides": [2, 2]}, None),
        ("AveragePool", {"kernel_shape": [1, 1], "strides": [3, 3]}, None),
        # onnxruntime pads dilated pools as if undilated; the spec does not.
        ("MaxPool", {"kernel_shape": [2, 2], "dilations": [2, 2]}, None),
        ("ConvTranspose", {"strides": [3, 3]}, (2, 3, 1, 1)),
    ],
)
def test_ambiguous_cases_are_left(op, attrs, weight):
    model = single_node(op, {"auto_pad": "SAME_UPPER", **attrs}, weight=weight)
    out, counts = applied(auto_pad.apply, model)
    assert counts == {"auto_pad_ambiguous_left": 1}
    assert out is model


def test_kernel_smaller_than_stride_conv_is_rewritten():
    # The common 1x1 stride-2 shortcut of TF ResNets: no padding at all.
    model = single_node("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, weight=(3, 2, 1, 1), shape=(1, 2, 8, 8))
    out, node = rewrite(model)
    assert attr(node, "pads") == [0, 0, 0, 0]
    check_against(lambda x: ort_run(model, {"x": x})[0], out)


def test_dynamic_spatial_dims_are_left():
    model = single_node("Conv", {"auto_pad": "SAME_UPPER"}, weight=(3, 2, 3, 3), shape=("N", 2, "H", "W"))
    out, counts = applied(auto_pad.apply, model)
    assert counts == {"auto_pad_dynamic_left": 1}
    assert out is model


def test_unknown_kernel_is_left():
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER")
    model = make_model(
        [node], [tensor_info("x", [1, 2, 8, 8]), tensor_info("w", ["M", 2, "k", "k"])], [tensor_info("y", [None] * 4)]
    )
    out, counts = applied(auto_pad.apply, model)
    assert counts == {"auto_pad_dynamic_left": 1}


def test_nothing_to_do_returns_the_model():
    model = single_node("Conv", {"pads": [1, 1, 1, 1]}, weight=(3, 2, 3, 3))
    out, counts = auto_pad.apply(model)
    assert counts == {} and out is model


def same_padded_squeezenet():
    """squeezenet with its stride-1 'same' convolutions written the Keras way."""
    model, _ = constants.apply(squeezenet(), use_library=False)
    marked = 0
    for node in model.graph.node:
        if node.op_type != "Conv" or attr(node, "strides") != [1, 1]:
            continue
        pads, kernel = attr(node, "pads"), attr(node, "kernel_shape")
        if pads[:2] == pads[2:] and all(2 * p == k - 1 for p, k in zip(pads, kernel)):
            kept = [a for a in node.attribute if a.name != "pads"]
            del node.attribute[:]
            node.attribute.extend(kept)
            node.attribute.append(helper.make_attribute("auto_pad", MODES[marked % 2]))
            marked += 1
    assert marked == 25  # 8 fire modules (squeeze 1x1, expand 1x1, expand 3x3), classifier 1x1
    return model


def test_exported_model_with_same_padding():
    model = same_padded_squeezenet()
    with pytest.raises(NotImplementedError, match='"SAME_UPPER" auto_pad is not implemented'):
        onnx2torch.convert(model)

    out, counts = applied(auto_pad.apply, model)

    assert counts == {"auto_pad_explicit": 25}
    assert_matches_ort(model, onnx2torch.convert(out).eval())
