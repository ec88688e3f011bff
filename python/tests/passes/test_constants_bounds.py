"""The constants pass on models that declare huge tensors: a tiny file can ask
for a ConstantOfShape of 2**40 elements. Nothing is evaluated (by the
reference evaluator or by onnxslim's onnxruntime session) whose output is
over the folding bound; the bound is checked before, from the inputs' values."""

import numpy as np
import onnx
import onnx.reference
import pytest
from onnx import TensorProto, helper, numpy_helper
from pass_helpers import applied, make_model, tensor_info

from onnx2pt_py.passes import constants

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
HUGE = 1 << 40


def ints(name, *values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def floats(name, shape, fill=1.0):
    return numpy_helper.from_array(np.full(shape, fill, dtype=np.float32), name)


def scalar(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


@pytest.fixture
def evaluated(monkeypatch):
    """The op types the reference evaluator is given; it refuses (and so
    allocates nothing for) a node whose output is named "big*"."""
    seen = []
    real = onnx.reference.ReferenceEvaluator

    class Spy(real):
        def __init__(self, proto, *args, **kwargs):
            if isinstance(proto, onnx.NodeProto):
                seen.append(proto.op_type)
                if any(o.startswith("big") for o in proto.output):
                    raise RuntimeError("a test spy: this node must not be evaluated")
            super().__init__(proto, *args, **kwargs)

    monkeypatch.setattr(onnx.reference, "ReferenceEvaluator", Spy)
    return seen


def expanding(op, inputs, initializers, opset=13, **attrs):
    """op(inputs) -> "big", summed and added to a graph input: "big" is not a
    graph output (those are never folded), and its sum is not a constant."""
    nodes = [
        helper.make_node(op, inputs, ["big"], **attrs),
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        helper.make_node("Add", ["x", "total"], ["y"]),
    ]
    return make_model(nodes, [tensor_info("x", [1])], [tensor_info("y", [1])], initializers, opset=opset)


CASES = {
    "constant_of_shape": lambda: expanding("ConstantOfShape", ["s"], [ints("s", HUGE)]),
    "constant_of_shape_2M": lambda: expanding("ConstantOfShape", ["s"], [ints("s", 2048, 1024)]),
    "expand": lambda: expanding("Expand", ["v", "s"], [floats("v", [1]), ints("s", 1 << 20, 1 << 20)]),
    "tile": lambda: expanding("Tile", ["v", "r"], [floats("v", [2, 2]), ints("r", 1 << 30, 1 << 30)]),
    "range": lambda: expanding("Range", ["a", "b", "d"], [scalar("a", 0), scalar("b", HUGE), scalar("d", 1)]),
    "range_float": lambda: expanding(
        "Range", ["a", "b", "d"], [scalar(n, v, np.float32) for n, v in (("a", 0), ("b", 1e12), ("d", 0.5))]
    ),
    "pad": lambda: expanding("Pad", ["v", "p"], [floats("v", [2, 2]), ints("p", 0, 0, HUGE, 0)]),
    "resize": lambda: expanding(
        "Resize",
        ["v", "", "sc"],
        [floats("v", [1, 1, 2, 2]), numpy_helper.from_array(np.array([1, 1, 1 << 20, 1 << 20], np.float32), "sc")],
    ),
    "upsample": lambda: expanding(
        "Upsample",
        ["v", "sc"],
        [floats("v", [1, 1, 2, 2]), numpy_helper.from_array(np.array([1, 1, 1 << 20, 1 << 20], np.float32), "sc")],
        opset=9,
    ),
    "one_hot": lambda: expanding(
        "OneHot",
        ["i", "d", "vals"],
        [ints("i", *range(1000)), scalar("d", 1 << 30), numpy_helper.from_array(np.array([0, 1], np.float32), "vals")],
    ),
    "center_crop_pad": lambda: expanding(
        "CenterCropPad", ["v", "s"], [floats("v", [2, 2]), ints("s", 1 << 30, 1 << 30)], opset=18
    ),
    # No op of the expanding kind: a broadcast (an outer product) 4096 x 4096.
    "matmul_outer": lambda: expanding("MatMul", ["u", "w"], [floats("u", [4096, 1]), floats("w", [1, 4096])]),
}


@pytest.mark.parametrize("case", CASES)
def test_outputs_over_the_bound_are_not_evaluated(case, evaluated):
    model = CASES[case]()
    out, counts = applied(constants.apply, model, use_library=False)
    assert not evaluated, f"evaluated {evaluated}"
    assert "big" in {o for n in out.graph.node for o in n.output}


@pytest.mark.skipif(not constants.onnxslim_available(), reason="no onnxslim")
@pytest.mark.parametrize("case", ["constant_of_shape", "constant_of_shape_2M", "expand", "tile", "matmul_outer"])
def test_onnxslim_is_not_given_outputs_over_the_bound(case, monkeypatch, evaluated):
    import onnxslim

    given = []
    monkeypatch.setattr(onnxslim, "slim", lambda model, **kwargs: given.append(model) or model)
    out, _ = applied(constants.apply, CASES[case](), use_library=True)
    assert given == [] and not evaluated
    assert "big" in {o for n in out.graph.node for o in n.output}


@pytest.mark.parametrize("use_library", [False, True])
def test_a_size_computed_by_folding_is_checked_before_evaluating(use_library, monkeypatch, evaluated):
    # Concat folds (two small ints, cast there and back); its value then
    # bounds the ConstantOfShape: 2**14 x 2**14, 1 GiB of float32.
    if use_library and not constants.onnxslim_available():
        pytest.skip("no onnxslim")
    given = []
    if constants.onnxslim_available():
        import onnxslim

        monkeypatch.setattr(onnxslim, "slim", lambda model, **kwargs: given.append(model) or model)
    nodes = [
        helper.make_node("Cast", ["a"], ["a_f"], to=FLOAT),
        helper.make_node("Cast", ["a_f"], ["a_i"], to=INT64),
        helper.make_node("Concat", ["a_i", "b"], ["s"], axis=0),
        helper.make_node("ConstantOfShape", ["s"], ["big"]),
        helper.make_node("Add", ["x", "big"], ["y"]),
    ]
    model = make_model(
        nodes, [tensor_info("x", [1])], [tensor_info("y", [1 << 14, 1 << 14])], [ints("a", 1 << 14), ints("b", 1 << 14)]
    )
    out, counts = applied(constants.apply, model, use_library=use_library)
    assert given == [] and evaluated == ["Cast", "Cast", "Concat"] and counts == {"nodes_folded": 3}
    assert "big" in {o for n in out.graph.node for o in n.output}


def test_small_and_proportionate_expansions_still_fold(evaluated):
    # Under the bound; and over it but within 4 times the inputs (a weight
    # tiled twice).
    nodes = [
        helper.make_node("ConstantOfShape", ["s"], ["zeros"]),
        helper.make_node("Range", ["a", "b", "d"], ["steps"]),
        helper.make_node("Tile", ["w", "r"], ["tiled"]),
        helper.make_node("Cast", ["steps"], ["steps_f"], to=FLOAT),
        helper.make_node("Add", ["x", "zeros"], ["y0"]),
        helper.make_node("Add", ["x", "steps_f"], ["y1"]),
        helper.make_node("Add", ["x", "tiled"], ["y2"]),
    ]
    inits = [ints("s", 3, 10), scalar("a", 0), scalar("b", 10), scalar("d", 1), floats("w", [3, 700_000], 0.5)]
    inits.append(ints("r", 1, 2))
    outputs = [tensor_info("y0", [3, 10]), tensor_info("y1", [3, 10]), tensor_info("y2", [3, 1_400_000])]
    model = make_model(nodes, [tensor_info("x", [3, 1])], outputs, inits)
    out, counts = applied(constants.apply, model, use_library=False)
    assert counts == {"nodes_folded": 4}
    values = {i.name: numpy_helper.to_array(i) for i in out.graph.initializer}
    assert values["tiled"].shape == (3, 1_400_000) and values["zeros"].shape == (3, 10)
    np.testing.assert_array_equal(values["steps_f"], np.arange(10, dtype=np.float32))


def test_expanding_ops_whose_size_inference_cannot_give_are_not_folded(monkeypatch, evaluated):
    def unknown(*args, **kwargs):
        raise onnx.shape_inference.InferenceError("a test: no shape")

    monkeypatch.setattr(onnx.shape_inference, "infer_node_outputs", unknown)
    nodes = [
        helper.make_node("ConstantOfShape", ["s"], ["zeros"]),
        helper.make_node("Add", ["c", "c"], ["twice"]),
        helper.make_node("Add", ["x", "zeros"], ["y0"]),
        helper.make_node("Add", ["y0", "twice"], ["y"]),
    ]
    model = make_model(nodes, [tensor_info("x", [2])], [tensor_info("y", [2])], [ints("s", 2), floats("c", [2])])
    out, counts = applied(constants.apply, model, use_library=False)
    # Add cannot give more than its broadcast inputs; its result is checked
    # after evaluating it, as before.
    assert evaluated == ["Add"] and counts == {"nodes_folded": 1}


def test_chains_of_proportionate_expansions_stop_at_the_budget(monkeypatch, evaluated):
    # Each Tile is 4 times its input, within the bound for one node; together
    # they would grow geometrically (4**12 times the weight).
    monkeypatch.setattr(constants, "_MAX_EXPANSION", 64)
    nodes, name = [], "w"
    for i in range(12):
        nodes.append(helper.make_node("Tile", [name, "r"], [f"t{i}"]))
        name = f"t{i}"
    nodes.append(helper.make_node("Add", ["x", name], ["y"]))
    model = make_model(nodes, [tensor_info("x", [1])], [tensor_info("y", ["n"])], [floats("w", [100]), ints("r", 4)])
    out, counts = applied(constants.apply, model, use_library=False)
    folded = sum(numpy_helper.to_array(i).size for i in out.graph.initializer if i.name.startswith("t"))
    assert 0 < counts["nodes_folded"] < 12
    stored = 100 + 1
    assert folded <= constants._BUDGET_FACTOR * stored + constants._BUDGET_EXTRA * 64


def test_a_sparse_constant_too_large_to_densify_stays_sparse():
    huge = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0], dtype=np.float32), "v"),
        numpy_helper.from_array(np.array([7], dtype=np.int64), "i"),
        [HUGE],
    )
    node = helper.make_node("Constant", [], ["big"], sparse_value=huge)
    assert constants.constant_tensor(node) is None  # (np.zeros of 2**40 floats before)
    small = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0], dtype=np.float32), "v"),
        numpy_helper.from_array(np.array([7], dtype=np.int64), "i"),
        [8],
    )
    dense = constants.constant_tensor(helper.make_node("Constant", [], ["small"], sparse_value=small))
    np.testing.assert_array_equal(numpy_helper.to_array(dense), [0, 0, 0, 0, 0, 0, 0, 5])
    # Through the pass: the Constant node stays; the others fold as before.
    nodes = [
        node,
        helper.make_node("Constant", [], ["c"], value_floats=[1.0]),
        helper.make_node("Add", ["x", "c"], ["y0"]),
    ]
    nodes.append(helper.make_node("Add", ["y0", "big"], ["y"]))
    model = make_model(nodes, [tensor_info("x", [1])], [tensor_info("y", [HUGE])])
    for use_library in (False, True) if constants.onnxslim_available() else (False,):
        out, counts = constants.apply(model, use_library=use_library)
        assert any(n.op_type == "Constant" and n.output[0] == "big" for n in out.graph.node)
        assert counts.get("constants_to_initializers") == 1
