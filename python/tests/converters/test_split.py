"""Split: the part sizes at every version against the ONNX reference
evaluator, including uneven splits whose last parts are short or empty."""

import numpy as np
import onnx
import pytest
from convert_check import assert_same, ir_version_for, run_reference, run_torch
from onnx import TensorProto, helper, numpy_helper


def split_model(n, outputs, opset, num_outputs=None, split=None, split_as="input", axis=1):
    """x [2, n, 3] split along axis 1 into `outputs` parts; split: the
    sizes, as an input (13+) or an attribute (2, 11)."""
    inputs, attrs, initializers = ["x"], {"axis": axis}, []
    if num_outputs is not None:
        attrs["num_outputs"] = num_outputs
    if split is not None and split_as == "input":
        inputs.append("split")
        initializers.append(numpy_helper.from_array(np.array(split, dtype=np.int64), "split"))
    elif split is not None:
        attrs["split"] = split
    names = [f"y{i}" for i in range(outputs)]
    graph = helper.make_graph(
        [helper.make_node("Split", inputs, names, **attrs)],
        "split",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, n, 3])],
        [onnx.ValueInfoProto(name=name) for name in names],  # (inference gives a -1 size where a part is empty)
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version_for(opset))


def feeds(n):
    return {"x": np.arange(2 * n * 3, dtype=np.float32).reshape(2, n, 3)}


@pytest.mark.parametrize("n", range(0, 10))
@pytest.mark.parametrize("parts", range(1, 6))
def test_split_18_num_outputs_matches_the_reference(n, parts):
    # ceil(n / parts) a part, the last ones short or empty: 5 in 4 is
    # [2, 2, 1, 0] (parts counted from the front, clamped to the axis).
    model = split_model(n, parts, 18, num_outputs=parts)
    expected = run_reference(model, feeds(n))
    assert [y.shape[1] for y in expected] == [max(0, min(-(-n // parts), n - i * -(-n // parts))) for i in range(parts)]
    assert_same(expected, run_torch(model, feeds(n)))


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("split", [[5], [2, 3], [0, 5], [5, 0], [1, 0, 4], [0, 0, 5]])
def test_split_input_matches_the_reference(opset, split):
    model = split_model(5, len(split), opset, split=split)
    assert_same(run_reference(model, feeds(5)), run_torch(model, feeds(5)))


@pytest.mark.parametrize("opset", [2, 11])
@pytest.mark.parametrize("split", [[2, 3], [0, 5], [1, 0, 4]])
def test_split_attribute_matches_the_reference(opset, split):
    model = split_model(5, len(split), opset, split=split, split_as="attribute")
    assert_same(run_reference(model, feeds(5)), run_torch(model, feeds(5)))


@pytest.mark.parametrize("opset", [2, 11, 13])
@pytest.mark.parametrize("n", range(0, 10))
@pytest.mark.parametrize("parts", range(1, 6))
def test_split_into_the_output_count_matches_the_reference(opset, n, parts):
    # Before 18 the axis must split evenly (onnxruntime refuses other
    # sizes); an empty axis does, into empty parts. Where it does not, the
    # reference's sizes (ceil, as at 18) are followed too.
    model = split_model(n, parts, opset)
    assert_same(run_reference(model, feeds(n)), run_torch(model, feeds(n)))


def test_split_18_on_a_negative_axis_and_one_output():
    model = split_model(5, 1, 18, num_outputs=1, axis=-2)
    assert_same(run_reference(model, feeds(5)), run_torch(model, feeds(5)))
