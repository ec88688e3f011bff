"""16-bit float models: the precision read from the graph, the tolerances
it sets, and the nodes that compute in float32 where torch has no 16-bit
CPU kernel."""

import numpy as np
import onnx2torch
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnx2pt_py import halfwidth, model_info, parity


def _model(x_type, nodes, initializers=(), y_type=None):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", x_type, ["b", 3, 3])],
        [helper.make_tensor_value_info("y", y_type or x_type, None)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_precision_is_the_coarsest_float_type():
    w16 = numpy_helper.from_array(np.ones((3, 3), np.float16), "w")
    assert (
        model_info.float_precision(_model(TensorProto.FLOAT16, [helper.make_node("MatMul", ["x", "w"], ["y"])], [w16]))
        == "float16"
    )
    # float32 inputs and outputs around float16 weights (keep_io_types)
    nodes = [
        helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("MatMul", ["h", "w"], ["m"]),
        helper.make_node("Cast", ["m"], ["y"], to=TensorProto.FLOAT),
    ]
    assert model_info.float_precision(_model(TensorProto.FLOAT, nodes, [w16])) == "float16"
    # a stray Cast to float16 in a float32 model: its weights decide
    w32 = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    assert model_info.float_precision(_model(TensorProto.FLOAT, nodes, [w32])) == "float32"
    # no weights: the coarsest type of values and casts
    nodes = [
        helper.make_node("Cast", ["x"], ["h"], to=TensorProto.BFLOAT16),
        helper.make_node("Cast", ["h"], ["y"], to=1),
    ]
    assert model_info.float_precision(_model(TensorProto.FLOAT, nodes)) == "bfloat16"
    assert model_info.float_precision(_model(TensorProto.FLOAT, [helper.make_node("Relu", ["x"], ["y"])])) == "float32"
    assert model_info.float_precision(_model(TensorProto.DOUBLE, [helper.make_node("Relu", ["x"], ["y"])])) == "float64"
    assert model_info.float_precision(_model(TensorProto.INT64, [helper.make_node("Neg", ["x"], ["y"])])) == ""


def test_tolerances_follow_the_machine_epsilon():
    assert parity.tolerances(1e-5, 1e-4, "float32") == (1e-5, 1e-4)
    assert parity.tolerances(1e-5, 1e-4, "") == (1e-5, 1e-4)
    assert parity.tolerances(1e-5, 1e-4, "float16") == (1e-5, parity.HALF_ULPS * 2.0**-10)
    assert parity.tolerances(1e-5, 1e-4, "bfloat16") == (1e-5, parity.HALF_ULPS * 2.0**-7)
    # looser tolerances asked for are kept
    assert parity.tolerances(1e-3, 0.5, "float16") == (1e-3, 0.5)
    # quantized models: a few steps of an 8-bit quantization
    assert parity.tolerances(1e-5, 1e-4, "float32", quantized=True) == (1e-5, parity.QUANTIZED_STEPS / 256)


def _det_model():
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Det", ["m"], ["d"], name="determinant"),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    w = numpy_helper.from_array(rng.standard_normal((3, 3)).astype(np.float16), "w")
    return _model(TensorProto.FLOAT16, nodes, [w])


def test_nodes_without_a_16_bit_kernel_compute_in_float32():
    model = _det_model()
    module = onnx2torch.convert(model).eval()
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((4, 3, 3)).astype(np.float16))
    with pytest.raises(RuntimeError, match="Half"):
        module(x)
    assert halfwidth.fall_back(module, [x]) == ["determinant"]
    with torch.no_grad():
        y = module(x)
    assert y.dtype == torch.float16
    w = torch.from_numpy(numpy_helper.to_array(model.graph.initializer[0]).copy())
    want = torch.relu(torch.linalg.det((x @ w).float())).half()
    torch.testing.assert_close(y, want)
    # Already running: nothing more to wrap.
    assert halfwidth.fall_back(module, [x]) == []


def test_other_failures_are_left_alone():
    # A shape error is no missing kernel: nothing is wrapped, and the
    # caller's own run reports it.
    model = _det_model()
    module = onnx2torch.convert(model).eval()
    x = torch.zeros((2, 4, 4), dtype=torch.float16)
    assert halfwidth.fall_back(module, [x]) == []
    assert not any(isinstance(m, halfwidth.InFloat32) for m in module.modules())
