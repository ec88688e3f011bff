import numpy as np
import onnx
import onnx2torch
import pytest
from onnx import TensorProto, helper, numpy_helper
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

from onnx2pt_py.passes import constants

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64

# With onnxslim (where installed) and with the built-in pass alone.
PATHS = [
    pytest.param(
        True, id="onnxslim", marks=pytest.mark.skipif(not constants.onnxslim_available(), reason="no onnxslim")
    ),
    pytest.param(False, id="builtin"),
]


def ops(model):
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("use_library", PATHS)
def test_legacy_export_identity_deduplicated_weights(use_library):
    model = squeezenet()
    # The exporter fed one zero bias to many Convs through Identity nodes.
    identities = {n.output[0] for n in model.graph.node if n.op_type == "Identity"}
    with pytest.raises(KeyError) as error:
        onnx2torch.convert(model)
    assert error.value.args[0] in identities

    out, counts = applied(constants.apply, model, use_library=use_library)

    assert counts["identities_removed"] == len(identities) == 17
    assert "Identity" not in ops(out)
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def weights_in_constant_nodes(model):
    """The same model as older exporters write it: weights in Constant nodes."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    consts = [helper.make_node("Constant", [], [i.name], value=i) for i in graph.initializer]
    nodes = consts + list(graph.node)
    del graph.initializer[:]
    del graph.node[:]
    graph.node.extend(nodes)
    return out


@pytest.mark.parametrize("use_library", PATHS)
def test_weights_in_constant_nodes(use_library):
    model = weights_in_constant_nodes(squeezenet())
    onnx.checker.check_model(model)
    with pytest.raises(KeyError, match="features.0.weight"):
        onnx2torch.convert(model)

    out, counts = applied(constants.apply, model, use_library=use_library)

    assert counts == {"constants_to_initializers": 35, "identities_removed": 17}
    assert not {"Constant", "Identity"} & set(ops(out))
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def test_constant_attribute_forms():
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0, 7.0], dtype=np.float32), "v"),
        numpy_helper.from_array(np.array([1, 4], dtype=np.int64), "i"),
        [2, 3],
    )
    forms = {
        "t": {"value": numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "t")},
        "f": {"value_float": 2.5},
        "fs": {"value_floats": [1.0, 2.0, 3.0]},
        "i": {"value_int": 3},
        "is": {"value_ints": [4, 5, 6]},
        "s": {"sparse_value": sparse},
    }
    nodes = [helper.make_node("Constant", [], [name], **attr) for name, attr in forms.items()]
    # Each constant feeds a node, so it is a weight and not a graph output.
    nodes += [helper.make_node("Identity", [name], [name + "_out"]) for name in forms]
    types = {
        "t": (FLOAT, [2, 3]),
        "f": (FLOAT, []),
        "fs": (FLOAT, [3]),
        "i": (INT64, []),
        "is": (INT64, [3]),
        "s": (FLOAT, [2, 3]),
    }
    outputs = [tensor_info(name + "_out", shape, elem) for name, (elem, shape) in types.items()]
    model = make_model(nodes, [], outputs)

    out, counts = applied(constants.apply, model, use_library=False)

    assert counts == {"constants_to_initializers": 6}
    want = [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array(2.5, dtype=np.float32),
        np.array([1, 2, 3], dtype=np.float32),
        np.array(3, dtype=np.int64),
        np.array([4, 5, 6], dtype=np.int64),
        np.array([[0, 5, 0], [0, 7, 0]], dtype=np.float32),
    ]
    for w, g in zip(want, ReferenceEvaluator(out).run(None, {})):
        np.testing.assert_array_equal(g, w)
        assert g.dtype == w.dtype and g.shape == w.shape


def outputs_model():
    """Graph outputs that are constants or pass-throughs, beside a real op."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    nodes = [
        helper.make_node("Identity", ["W"], ["W1"]),
        helper.make_node("Identity", ["W1"], ["W2"]),
        helper.make_node("Constant", [], ["B"], value=numpy_helper.from_array(np.arange(4, dtype=np.float32))),
        helper.make_node("Conv", ["x", "W2", "B"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Identity", ["W1"], ["wout"]),
        helper.make_node("Constant", [], ["cout"], value_floats=[1.0, 2.0]),
        helper.make_node("Identity", ["x"], ["xout"]),
    ]
    return make_model(
        nodes,
        [tensor_info("x", ["N", 3, 8, 8])],
        [
            tensor_info("y", ["N", 4, 8, 8]),
            tensor_info("wout", [4, 3, 3, 3]),
            tensor_info("cout", [2]),
            tensor_info("xout", ["N", 3, 8, 8]),
        ],
        [w],
    )


@pytest.mark.parametrize("use_library", PATHS)
def test_graph_outputs_keep_their_names_and_producers(use_library):
    model = outputs_model()
    with pytest.raises(KeyError, match="W2"):
        onnx2torch.convert(model)

    out, counts = applied(constants.apply, model, use_library=use_library)

    assert counts["constants_to_initializers"] == 1  # B; cout is an output
    assert counts["identities_removed"] == 2  # W1 and W2; wout is an output
    producers = {o: n for n in out.graph.node for o in n.output}
    assert set(producers) >= {"y", "wout", "cout", "xout"}
    assert_matches_ort(model, onnx2torch.convert(out).eval())


@pytest.mark.parametrize("use_library", PATHS)
def test_initializer_graph_output_gets_a_node(use_library):
    # What onnxoptimizer and onnxscript's optimizer leave of Identity(W) -> output.
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    model = make_model(nodes, [tensor_info("x", ["N", 2])], [tensor_info("y", ["N", 3]), tensor_info("w", [2, 3])], [w])
    with pytest.raises(KeyError, match="w"):
        onnx2torch.convert(model)

    out, counts = applied(constants.apply, model, use_library=use_library)

    assert counts == {"constant_outputs_given_a_node": 1}
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def shape_arithmetic_model():
    """Reshape whose target comes from Shape -> Gather -> Concat."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), dtype=np.float32), "W")
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["y"]),
        helper.make_node("Shape", ["W"], ["wshape"]),  # over an initializer
        helper.make_node("Constant", [], ["zero"], value_ints=[0]),
        helper.make_node("Gather", ["wshape", "zero"], ["channels"], axis=0),
        helper.make_node("Shape", ["y"], ["yshape"]),  # batch is symbolic: not static
        helper.make_node("Gather", ["yshape", "zero"], ["batch"], axis=0),
        helper.make_node("Constant", [], ["hw"], value_ints=[64]),
        helper.make_node("Concat", ["batch", "channels", "hw"], ["target"], axis=0),
        helper.make_node("Reshape", ["y", "target"], ["z"]),
        helper.make_node("Shape", ["W"], ["static"], start=1, end=-2),
        helper.make_node("Cast", ["static"], ["static_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["z", "static_f"], ["out"]),
    ]
    return make_model(nodes, [tensor_info("x", ["N", 3, 8, 8])], [tensor_info("out", ["N", 4, 64])], [w], opset=15)


def test_folds_constant_subgraphs_and_static_shapes():
    model = shape_arithmetic_model()
    out, counts = applied(constants.apply, model, use_library=False)

    # Shape(W), its Gather, Shape(W)[1:-2] and its Cast fold; the batch
    # branch stays because the batch is symbolic.
    assert counts == {"constants_to_initializers": 2, "nodes_folded": 4}
    assert ops(out).count("Shape") == 1
    values = {i.name: numpy_helper.to_array(i) for i in out.graph.initializer}
    assert "static" not in values  # only the folded Cast read it
    np.testing.assert_array_equal(values["static_f"], np.array([3.0], dtype=np.float32))
    assert_matches_ort(model, onnx2torch.convert(out).eval())


def test_shape_of_fully_static_tensor_folds():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Reshape", ["x", "s"], ["y"]),
    ]
    model = make_model(nodes, [tensor_info("x", [2, 3])], [tensor_info("y", [2, 3])])
    out, counts = applied(constants.apply, model, use_library=False)
    assert counts == {"nodes_folded": 1}
    assert ops(out) == ["Relu", "Reshape"]


@pytest.mark.parametrize("use_library", PATHS)
def test_library_result_matches_builtin_on_shape_arithmetic(use_library):
    model = shape_arithmetic_model()
    out, _ = applied(constants.apply, model, use_library=use_library)
    feeds = {"x": np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(ort_run(out, feeds)[0], ort_run(model, feeds)[0], rtol=1e-6)


def test_random_ops_are_not_folded():
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.zeros((2, 2), np.float32))),
        helper.make_node("RandomUniformLike", ["c"], ["r"], seed=1.0),
        helper.make_node("Add", ["x", "r"], ["y"]),
    ]
    model = make_model(nodes, [tensor_info("x", [2, 2])], [tensor_info("y", [2, 2])])
    out, counts = applied(constants.apply, model, use_library=False)
    assert counts == {"constants_to_initializers": 1}
    assert ops(out) == ["RandomUniformLike", "Add"]


def test_initializers_listed_as_inputs_stay_listed():
    # Old exporters (IR 3) list every weight as a graph input too.
    w = numpy_helper.from_array(np.full((2, 2), 3.0, dtype=np.float32), "W")
    nodes = [helper.make_node("Identity", ["W"], ["W1"]), helper.make_node("MatMul", ["x", "W1"], ["y"])]
    model = make_model(
        nodes,
        [tensor_info("x", ["N", 2]), tensor_info("W", [2, 2])],
        [tensor_info("y", ["N", 2])],
        [w],
        opset=8,
        ir_version=3,
    )
    onnx.checker.check_model(model)
    for use_library in (False, True) if constants.onnxslim_available() else (False,):
        out, counts = applied(constants.apply, model, use_library=use_library)
        assert counts == {"identities_removed": 1}
        assert [v.name for v in out.graph.input] == ["x", "W"]
        x = np.ones((3, 2), dtype=np.float32)
        np.testing.assert_array_equal(torch_run(onnx2torch.convert(out).eval(), [x])[0], np.full((3, 2), 6.0))


def test_constant_nodes_in_an_ir3_model_raise_its_ir_version():
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(2, np.float32))),
        helper.make_node("Add", ["x", "c"], ["y"]),
    ]
    model = make_model(nodes, [tensor_info("x", [2])], [tensor_info("y", [2])], opset=8, ir_version=3)
    out, counts = applied(constants.apply, model, use_library=False)
    assert counts == {"constants_to_initializers": 1}
    assert out.ir_version == 4  # IR 3 would require the new initializer as an input


def test_nothing_to_do_returns_the_model():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [tensor_info("x", ["N", 2])], [tensor_info("y", ["N", 2])])
    out, counts = constants.apply(model)
    assert counts == {} and out is model
