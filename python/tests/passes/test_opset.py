import numpy as np
import onnx
import onnx2torch
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx2torch.node_converters.registry import OperationDescription
from pass_helpers import (
    applied,
    assert_matches_ort,
    make_model,
    ort_run,
    squeezenet,
    tensor_info,
    torch_run,
)

from onnx2pt_py.passes import constants, opset


def version_of(model):
    return {o.domain: o.version for o in model.opset_import}[""]


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def dynamo_like_model(channels=4):
    """What torch's dynamo exporter writes at opset 20: Split-18 with
    num_outputs, ReduceMean-18 with axes as an input and the default
    noop_with_empty_axes spelled out."""
    nodes = [
        helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2),
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Concat", ["b", "ra"], ["c"], axis=1),
        helper.make_node("ReduceMean", ["c", "axes"], ["y"], keepdims=0, noop_with_empty_axes=0),
    ]
    return make_model(
        nodes,
        [tensor_info("x", ["batch", channels, 5, 5])],
        [tensor_info("y", ["batch", channels])],
        [ints("axes", [2, 3])],
        opset=20,
    )


@pytest.mark.parametrize("channels", [4, 5])  # 5: Split-18 makes the last chunk smaller
def test_newer_model_goes_down(channels):
    model = dynamo_like_model(channels)
    with pytest.raises(NotImplementedError, match="operation_type='Split', version=18"):
        onnx2torch.convert(model)

    out, counts = applied(opset.apply, model)

    # ReduceMean-18 (axes as an input) has a converter only from 13 down.
    assert counts == {"opset_from": 20, "opset_to": 17}
    assert version_of(out) == 17
    split = out.graph.node[0]
    assert "num_outputs" not in {a.name for a in split.attribute}
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def test_split_goes_below_13_with_an_attribute():
    # version_converter lacks down-adapters below 13 for most ops (Relu,
    # Concat, ...), so the graph is Split alone.
    nodes = [helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2)]
    outputs = [tensor_info("a", ["N", 3, 2]), tensor_info("b", ["N", 2, 2])]
    model = make_model(nodes, [tensor_info("x", ["N", 5, 2])], outputs, opset=18)
    out = opset.convert(model, 11)
    assert out is not None and version_of(out) == 11
    split = out.graph.node[0]
    assert [helper.get_attribute_value(a) for a in split.attribute if a.name == "split"] == [[3, 2]]
    x = np.random.default_rng(0).standard_normal((2, 5, 2)).astype(np.float32)
    for got, want in zip(ort_run(out, {"x": x}), ort_run(model, {"x": x})):
        np.testing.assert_array_equal(got, want)


def test_cast_saturate_at_its_default_is_dropped():
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT, saturate=1),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    model = make_model(nodes, [tensor_info("x", ["N", 3], TensorProto.INT64)], [tensor_info("y", ["N", 3])], opset=19)
    out, counts = applied(opset.apply, model)
    assert counts == {"opset_from": 19, "opset_to": 18}  # Cast-13 has a converter
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    np.testing.assert_array_equal(torch_run(onnx2torch.convert(out).eval(), [x])[0], ort_run(model, {"x": x})[0])


def old_model():
    """opset 6, IR 3: BatchNormalization-6 and AveragePool-1, below onnx2torch's
    oldest converters (9 and 7); weights listed as inputs, as IR 3 requires."""
    rng = np.random.default_rng(0)
    arrays = {
        "s": rng.random(3) + 0.5,
        "b": rng.standard_normal(3),
        "m": rng.standard_normal(3),
        "v": rng.random(3) + 0.5,
    }
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn"], is_test=1, epsilon=1e-5),
        helper.make_node("AveragePool", ["bn"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inputs = [tensor_info("x", ["N", 3, 8, 8])] + [tensor_info(n, [3]) for n in arrays]
    return make_model(nodes, inputs, [tensor_info("y", ["N", 3, 4, 4])], inits, opset=6, ir_version=3)


def test_older_model_goes_up():
    model = old_model()
    onnx.checker.check_model(model)
    with pytest.raises(NotImplementedError, match="operation_type='BatchNormalization', version=6"):
        onnx2torch.convert(model)

    out, counts = applied(opset.apply, model)

    assert counts == {"opset_from": 6, "opset_to": 9}
    assert out.ir_version >= 4  # opset 9 needs IR 4
    # onnxruntime has no BatchNormalization-6 kernel: compare with the reference.
    module = onnx2torch.convert(out).eval()
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
        np.testing.assert_allclose(torch_run(module, [x])[0], want, rtol=1e-3, atol=1e-4)


def test_upsample_becomes_resize():
    # No converter for Upsample at any version; version_converter makes it Resize-10.
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    nodes = [helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")]
    model = make_model(nodes, [tensor_info("x", ["N", 2, 3, 3])], [tensor_info("y", ["N", 2, 6, 6])], [scales], opset=9)
    with pytest.raises(NotImplementedError, match="operation_type='Upsample'"):
        onnx2torch.convert(model)

    out, counts = applied(opset.apply, model)

    assert counts == {"opset_from": 9, "opset_to": 10}
    assert [n.op_type for n in out.graph.node] == ["Resize"]
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def test_exported_model_at_a_newer_opset():
    # squeezenet brought to opset 21, where Flatten-21 has no converter.
    base, _ = constants.apply(squeezenet(), use_library=False)
    model = onnx.version_converter.convert_version(base, 21)
    with pytest.raises(NotImplementedError, match="operation_type='Flatten', version=21"):
        onnx2torch.convert(model)

    out, counts = applied(opset.apply, model)

    assert counts == {"opset_from": 21, "opset_to": 20}
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def hard_sigmoid_model(extra_op=None):
    nodes = [helper.make_node("HardSigmoid", ["x"], ["h"]), helper.make_node(extra_op or "Relu", ["h"], ["y"])]
    return make_model(nodes, [tensor_info("x", ["N", 4])], [tensor_info("y", ["N", 4])], opset=22)


def test_reads_the_registry_at_call_time():
    model = hard_sigmoid_model()
    assert applied(opset.apply, model)[1] == {"opset_from": 22, "opset_to": 21}

    key = OperationDescription(domain="", operation_type="HardSigmoid", version=22)
    registry = onnx2torch.node_converters.registry
    assert key not in registry._CONVERTER_REGISTRY
    registry.add_converter("HardSigmoid", 22)(lambda node, graph: None)
    try:
        out, counts = opset.apply(model)
        assert counts == {} and out is model
    finally:
        del registry._CONVERTER_REGISTRY[key]


def test_fewest_unconvertible_nodes_when_none_is_complete():
    # Shrink has no converter at any opset; HardSigmoid-22 has none, -6 has one.
    model = hard_sigmoid_model("Shrink")
    out, counts = applied(opset.apply, model)
    assert counts == {"opset_from": 22, "opset_to": 21, "unconvertible_nodes": 1}

    out, counts = applied(opset.apply, model, extra_converters=[("", "Shrink", 9)])
    assert counts == {"opset_from": 22, "opset_to": 21}


def test_candidates_that_fail_are_skipped():
    # Pad-18 with an axes input has no older form; no candidate converts.
    nodes = [helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"])]
    model = make_model(
        nodes,
        [tensor_info("x", ["N", 3, 4])],
        [tensor_info("y", ["N", 3, 6])],
        [ints("pads", [1, 1]), ints("axes", [2])],
        opset=18,
    )
    out, counts = applied(opset.apply, model)
    assert counts == {} and out is model


def test_pad_without_axes_goes_down():
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"), helper.make_node("Relu", ["p"], ["y"])]
    model = make_model(
        nodes,
        [tensor_info("x", ["N", 3, 4])],
        [tensor_info("y", ["N", 3, 6])],
        [ints("pads", [0, 0, 1, 0, 0, 1])],
        opset=19,
    )
    out, counts = applied(opset.apply, model)
    assert counts == {"opset_from": 19, "opset_to": 17}
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def test_convertible_model_is_left_alone():
    model = dynamo_like_model()
    model.opset_import[0].version = 17
    model.graph.node[0].attribute.pop()  # num_outputs is not in Split-13
    del model.graph.node[3].attribute[:]
    model.graph.node[3].input.pop()
    model.graph.node[3].attribute.extend([helper.make_attribute("axes", [2, 3]), helper.make_attribute("keepdims", 0)])
    del model.graph.initializer[:]
    onnx.checker.check_model(model)
    out, counts = opset.apply(model)
    assert counts == {} and out is model
