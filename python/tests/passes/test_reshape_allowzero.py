import numpy as np
import onnx
import onnx2torch
import pytest
from onnx import helper, numpy_helper
from pass_helpers import applied, assert_matches_ort, make_model, squeezenet, tensor_info

from onnx2pt_py.passes import constants, reshape_allowzero


def reshape_model(shape, as_constant=False):
    shape_tensor = numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], allowzero=1), helper.make_node("Relu", ["r"], ["y"])]
    inits = [shape_tensor]
    if as_constant:
        nodes.insert(0, helper.make_node("Constant", [], ["shape"], value=shape_tensor))
        inits = []
    out_shape = ["N"] + [d for d in shape[1:]]
    return make_model(nodes, [tensor_info("x", ["N", 2, 3])], [tensor_info("y", out_shape)], inits, opset=14)


@pytest.mark.parametrize("as_constant", [False, True])
def test_constant_shape_without_zeros(as_constant):
    model = reshape_model([-1, 6], as_constant)
    with pytest.raises(NotImplementedError, match='"allowzero=1" is not implemented'):
        onnx2torch.convert(model)

    out, counts = applied(reshape_allowzero.apply, model)

    assert counts == {"allowzero_cleared": 1}
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def test_shape_with_a_zero_is_left():
    # With allowzero=1 the 0 means a dim of size 0, not "copy the input's".
    model = reshape_model([-1, 0])
    out, counts = applied(reshape_allowzero.apply, model)
    assert counts == {"allowzero_left": 1}
    assert out is model


def test_shape_computed_at_run_time_is_left():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1),
    ]
    model = make_model(nodes, [tensor_info("x", ["N", 2])], [tensor_info("y", ["N", 2])], opset=14)
    out, counts = applied(reshape_allowzero.apply, model)
    assert counts == {"allowzero_left": 1}


def test_exported_model_with_allowzero():
    # The legacy export's Flatten written as dynamo writes it: Reshape, allowzero=1.
    model, _ = constants.apply(squeezenet(14), use_library=False)
    (flatten,) = [n for n in model.graph.node if n.op_type == "Flatten"]
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1, 1000], dtype=np.int64), "flat_shape"))
    reshape = helper.make_node("Reshape", [flatten.input[0], "flat_shape"], list(flatten.output), allowzero=1)
    flatten.CopyFrom(reshape)
    onnx.checker.check_model(model)
    with pytest.raises(NotImplementedError, match='"allowzero=1" is not implemented'):
        onnx2torch.convert(model)

    out, counts = applied(reshape_allowzero.apply, model)

    assert counts == {"allowzero_cleared": 1}
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def test_nothing_to_do_returns_the_model():
    model = reshape_model([-1, 6])
    for attr in model.graph.node[0].attribute:
        attr.i = 0
    out, counts = reshape_allowzero.apply(model)
    assert counts == {} and out is model
