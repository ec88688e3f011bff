import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper


@pytest.mark.parametrize("op, opset", [("CumSum", 14), ("CumProd", 26)])
@pytest.mark.parametrize("exclusive", [None, 0, 1])
@pytest.mark.parametrize("reverse", [None, 0, 1])
@pytest.mark.parametrize("axis", [0, -1, 1])
@pytest.mark.parametrize("axis_constant", [True, False])
def test_cumulative(op, opset, exclusive, reverse, axis, axis_constant):
    x = random((3, 4, 5)) * 0.5 + 1  # products stay moderate
    attrs = {k: v for k, v in (("exclusive", exclusive), ("reverse", reverse)) if v is not None}
    node = helper.make_node(op, ["x", "axis"], ["y"], **attrs)
    a = np.array(axis, np.int64)
    if axis_constant:
        check(make_model(node, {"x": x}, ["y"], opset, initializers={"axis": a}), {"x": x})
    else:
        check(make_model(node, {"x": x, "axis": a}, ["y"], opset), {"x": x, "axis": a})


@pytest.mark.parametrize("opset", [10, 20])
@pytest.mark.parametrize("negative, positive", [(1, 1), (0, 1), (1, 0), (0, 0)])
def test_isinf_detects_the_infinities_asked_for(opset, negative, positive):
    x = np.array([1.0, np.inf, -np.inf, np.nan, -2.0], np.float32)
    node = helper.make_node("IsInf", ["x"], ["y"], detect_negative=negative, detect_positive=positive)
    check(make_model(node, {"x": x}, ["y"], opset), {"x": x})


@pytest.mark.parametrize("op, opset", [("CumSum", 14), ("CumProd", 26)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_cumulative_keeps_the_type(op, opset, dtype):
    x = np.arange(1, 7, dtype=dtype).reshape(2, 3)
    node = helper.make_node(op, ["x", "axis"], ["y"], exclusive=1)
    check(make_model(node, {"x": x}, ["y"], opset, initializers={"axis": np.array(1, np.int64)}), {"x": x})
