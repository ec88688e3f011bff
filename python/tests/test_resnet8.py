import collections
import os

import onnx

from conftest import REPO
from onnx2pt_py import resnet8


def test_committed_model_is_what_the_generator_makes():
    with open(os.path.join(REPO, "models", "resnet8.onnx"), "rb") as f:
        committed = f.read()
    assert resnet8.build(seed=0).SerializeToString() == committed


def test_seed_changes_weights_only():
    a, b = resnet8.build(seed=0), resnet8.build(seed=1)
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    assert a.graph.initializer[0].raw_data != b.graph.initializer[0].raw_data


def test_topology():
    model = resnet8.build()
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(model.graph.input[0]) == ["batch", 32, 32, 3]
    assert dims(model.graph.output[0]) == ["batch", 10]
    assert model.opset_import[0].version == 13
    ops = collections.Counter(n.op_type for n in model.graph.node)
    # stem + 2 per stack + 2 projection shortcuts; BN after every 3x3 conv
    assert ops["Conv"] == 9 and ops["BatchNormalization"] == 7
    assert ops["Add"] == 4  # three residual adds and the dense bias
    assert model.graph.node[0].op_type == "Transpose"
    assert model.graph.node[-1].op_type == "Softmax"
    strides = [
        list(a.ints) for n in model.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "strides"
    ]
    assert strides.count([2, 2]) == 4  # two 3x3 and two 1x1 projections


def test_weights_are_not_trivial():
    model = resnet8.build()
    for init in model.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        if values.dtype.kind == "f" and values.size > 1:
            assert values.std() > 0, init.name


def test_same_pads_match_tensorflow():
    assert resnet8.same_pads(3, 1) == [1, 1, 1, 1]
    assert resnet8.same_pads(3, 2) == [0, 0, 1, 1]
    assert resnet8.same_pads(1, 2) == [0, 0, 0, 0]
