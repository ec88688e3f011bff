import numpy as np
import pytest
from convert_check import check, make_model
from onnx import TensorProto, helper


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_windows(op, periodic, dtype):
    size = np.array(10, np.int64)
    node = helper.make_node(op, ["size"], ["y"], periodic=periodic, output_datatype=dtype)
    check(make_model(node, {"size": size}, ["y"], 17), {"size": size})
