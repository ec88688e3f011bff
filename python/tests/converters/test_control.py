"""If, Loop, Scan, SequenceMap, the Sequence ops and Optional, against
onnxruntime: subgraphs that read outer values, nested control flow,
sequences carried through loops, and models as torch's exporter writes them."""

import io
import warnings

import numpy as np
import onnx
import onnx2torch
import pytest
import torch
from convert_check import assert_same, check, make_model, random, run_ort, run_reference, run_torch
from onnx import TensorProto, helper

from onnx2pt_py import preflight
from onnx2pt_py.converters import control

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def value(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def graph(nodes, inputs, outputs, name="body", initializers=()):
    return helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))


def check_by_reference(model, feeds):
    """check against onnx's reference evaluator, without onnx.checker:
    onnx.checker and onnxruntime refuse a subgraph output that names an
    outer value, which the reference evaluator runs."""
    assert_same(run_reference(model, feeds), run_torch(model, feeds))


def roundtrip(module):
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False).eval()


# --- If ----------------------------------------------------------------------


def _if_model(opset, else_shape=(3, 4)):
    """y = If(sum(x) > 0): then x * w + b (w an outer initializer, b an outer
    input), else x - b, of which rows 1 and 2 where else_shape is (2, 4)."""
    then_branch = graph(
        [helper.make_node("Mul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["then_y"])],
        [],
        [value("then_y", F, [3, 4])],
        "then",
    )
    else_nodes = [helper.make_node("Sub", ["x", "b"], ["diff"])]
    if else_shape != (3, 4):
        else_nodes.append(helper.make_node("Slice", ["diff", "starts", "ends"], ["else_y"]))
    else_out = "else_y" if else_shape != (3, 4) else "diff"
    else_branch = graph(else_nodes, [], [value(else_out, F, list(else_shape))], "else")
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch),
    ]
    x, b = random((3, 4)), random((4,), seed=1)
    initializers = {
        "w": random((3, 4), seed=2),
        "zero": np.array(0, np.float32),
        "starts": np.array([1], np.int64),
        "ends": np.array([3], np.int64),
    }
    return make_model(nodes, {"x": x, "b": b}, ["y"], opset, initializers=initializers), x, b


@pytest.mark.parametrize("opset", [11, 13, 16, 21, 25])
@pytest.mark.parametrize("sign", [1, -1])
def test_if_reads_outer_values(opset, sign):
    model, x, b = _if_model(opset)
    x = np.abs(x) * sign
    check(model, {"x": x, "b": b})


@pytest.mark.parametrize("sign", [1, -1])
def test_if_branches_of_different_shapes(sign):
    model, x, b = _if_model(13, else_shape=(2, 4))
    x = np.abs(x) * sign
    check(model, {"x": x, "b": b})


@pytest.mark.parametrize("cond", [True, False])
def test_if_passes_outer_values_and_constants_through(cond):
    # Branch outputs that are an outer input, an outer constant, the
    # branch's own initializer and a node output, several at once.
    then_branch = graph(
        [helper.make_node("Neg", ["x"], ["neg"])],
        [],
        [value("x", F, [2, 3]), value("w", F, [2, 3]), value("neg", F, [2, 3])],
        "then",
    )
    own = onnx.numpy_helper.from_array(np.full((2, 3), 7, np.float32), "seven")
    else_branch = graph(
        [helper.make_node("Abs", ["x"], ["abs"])],
        [],
        [value("seven", F, [2, 3]), value("abs", F, [2, 3]), value("x", F, [2, 3])],
        "else",
        initializers=[own],
    )
    node = helper.make_node("If", ["c"], ["a", "b", "d"], then_branch=then_branch, else_branch=else_branch)
    feeds = {"c": np.array(cond), "x": random((2, 3))}
    model = make_model(node, feeds, ["a", "b", "d"], 13, initializers={"w": random((2, 3), seed=3)})
    check_by_reference(model, feeds)


@pytest.mark.parametrize("outer_cond, inner_cond", [(True, True), (True, False), (False, True)])
def test_nested_if_reads_values_two_scopes_out(outer_cond, inner_cond):
    inner_then = graph([helper.make_node("Add", ["x", "y"], ["s"])], [], [value("s", F, [3])], "inner_then")
    inner_else = graph([helper.make_node("Mul", ["x", "t"], ["p"])], [], [value("p", F, [3])], "inner_else")
    outer_then = graph(
        [
            helper.make_node("Neg", ["x"], ["t"]),
            helper.make_node("If", ["c2"], ["r"], then_branch=inner_then, else_branch=inner_else),
        ],
        [],
        [value("r", F, [3])],
        "outer_then",
    )
    outer_else = graph([helper.make_node("Sub", ["x", "y"], ["d"])], [], [value("d", F, [3])], "outer_else")
    node = helper.make_node("If", ["c1"], ["out"], then_branch=outer_then, else_branch=outer_else)
    feeds = {"c1": np.array(outer_cond), "c2": np.array(inner_cond), "x": random((3,)), "y": random((3,), seed=1)}
    check(make_model(node, feeds, ["out"], 13), feeds)


@pytest.mark.parametrize("cond", [True, False])
def test_if_on_a_constant_converts_the_branch_taken_alone(cond):
    # The other branch holds an op no converter knows: it must not be converted.
    unknown = graph(
        [helper.make_node("NoSuchOp", ["x"], ["u"], domain="test.unknown")], [], [value("u", F, [2])], "unknown"
    )
    known = graph([helper.make_node("Neg", ["x"], ["n"])], [], [value("n", F, [2])], "known")
    branches = (
        {"then_branch": known, "else_branch": unknown} if cond else {"then_branch": unknown, "else_branch": known}
    )
    node = helper.make_node("If", ["c"], ["y"], **branches)
    x = random((2,))
    model = make_model(
        node,
        {"x": x},
        ["y"],
        13,
        initializers={"c": np.array(cond)},
        extra_opsets=[helper.make_opsetid("test.unknown", 1)],
    )
    (y,) = run_torch(model, {"x": x})
    np.testing.assert_array_equal(y, -x)


def test_if_is_captured_by_torch_export():
    model, x, b = _if_model(17)
    module = onnx2torch.convert(model).eval()
    program = torch.export.export(module, (torch.from_numpy(x), torch.from_numpy(b)), strict=False)
    assert "torch.ops.higher_order.cond" in program.graph_module.code
    exported = program.module()
    for sign in (1, -1):
        xs = np.abs(x) * sign
        (expected,) = run_ort(model, {"x": xs, "b": b})
        got = exported(torch.from_numpy(xs), torch.from_numpy(b))
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_if_with_a_failing_branch_is_reported_by_the_preflight():
    bad = graph([helper.make_node("NoSuchOp", ["x"], ["u"], domain="test.unknown")], [], [value("u", F, [2])], "bad")
    good = graph([helper.make_node("Neg", ["x"], ["n"])], [], [value("n", F, [2])], "good")
    node = helper.make_node("If", ["c"], ["y"], then_branch=good, else_branch=bad, name="choose")
    feeds = {"c": np.array(True), "x": random((2,))}
    model = make_model(node, feeds, ["y"], 13, extra_opsets=[helper.make_opsetid("test.unknown", 1)])
    (failure,) = preflight.check(model)
    assert failure["node"] == "choose" and "If else_branch" in failure["reason"] and "NoSuchOp" in failure["reason"]
    ok = make_model(helper.make_node("If", ["c"], ["y"], then_branch=good, else_branch=good), feeds, ["y"], 13)
    assert preflight.check(ok) == []


# --- Loop --------------------------------------------------------------------


def _loop_body(nested_if=True):
    """Loop-carried s (+= x[i] * scale, x and scale outer values), a scan
    output (s; with nested_if, max(x) - s on odd iterations, through an If
    that reads x two scopes out), and the condition i < limit (limit an
    outer input)."""
    nodes = [
        helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
        helper.make_node("Mul", ["row", "scale"], ["scaled"]),
        helper.make_node("Add", ["s_in", "scaled"], ["s_out"]),
        helper.make_node("Less", ["i", "limit"], ["c_out"]),
    ]
    if nested_if:
        odd_then = graph(
            [
                helper.make_node("Neg", ["s_out"], ["neg"]),
                helper.make_node("ReduceMax", ["x"], ["xmax"], keepdims=0),
                helper.make_node("Add", ["neg", "xmax"], ["odd_y"]),
            ],
            [],
            [value("odd_y", F, [4])],
            "odd",
        )
        odd_else = graph([helper.make_node("Identity", ["s_out"], ["even_y"])], [], [value("even_y", F, [4])], "even")
        nodes += [
            helper.make_node("Mod", ["i", "two"], ["parity"]),
            helper.make_node("Cast", ["parity"], ["odd"], to=B),
            helper.make_node("If", ["odd"], ["scan"], then_branch=odd_then, else_branch=odd_else),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["s_out"], ["scan"]))
    return graph(
        nodes,
        [value("i", I64, []), value("c_in", B, []), value("s_in", F, [4])],
        [value("c_out", B, []), value("s_out", F, [4]), value("scan", F, [4])],
    )


def _loop_model(opset, trip_count=True, cond=True, nested_if=True, constant_trip=False):
    node = helper.make_node(
        "Loop",
        ["m" if trip_count else "", "cond" if cond else "", "s0"],
        ["s", "scans"],
        body=_loop_body(nested_if=nested_if),
    )
    feeds = {"x": random((6, 4)), "s0": random((4,), seed=1), "limit": np.array(3, np.int64)}
    initializers = {"scale": random((4,), seed=2), "two": np.array(2, np.int64)}
    if trip_count:
        (initializers if constant_trip else feeds)["m"] = np.array(5, np.int64)
    if cond:
        feeds["cond"] = np.array(True)
    return make_model(node, feeds, ["s", "scans"], opset, initializers=initializers), feeds


@pytest.mark.parametrize("opset", [11, 13, 16, 21, 25])
@pytest.mark.parametrize("trip_count, cond", [(True, True), (True, False), (False, True), (False, False)])
def test_loop_with_outer_reads_and_a_nested_if(opset, trip_count, cond):
    model, feeds = _loop_model(opset, trip_count, cond)
    check(model, feeds)


@pytest.mark.parametrize("limit, trip", [(10, 2), (0, 5), (10, 0)])
def test_loop_stops_at_the_trip_count_or_the_condition(limit, trip):
    model, feeds = _loop_model(13, nested_if=False)
    feeds.update(limit=np.array(limit, np.int64), m=np.array(trip, np.int64))
    check(model, feeds)


def test_loop_that_never_starts_has_empty_scan_outputs():
    model, feeds = _loop_model(13)
    feeds["cond"] = np.array(False)
    s, scans = check(model, feeds)
    assert scans.shape == (0, 4)


def test_loop_with_a_constant_trip_count():
    model, feeds = _loop_model(13, cond=False, constant_trip=True, nested_if=False)
    feeds["limit"] = np.array(10, np.int64)
    check(model, feeds)


def test_loop_carries_a_sequence():
    # The legacy torch exporter's list building: SequenceEmpty, a Loop that
    # inserts one tensor per iteration, ConcatFromSequence after it.
    body = graph(
        [
            helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
            helper.make_node("Mul", ["row", "row"], ["sq"]),
            helper.make_node("SequenceInsert", ["seq_in", "sq"], ["seq_out"]),
            helper.make_node("Identity", ["c_in"], ["c_out"]),
        ],
        [value("i", I64, []), value("c_in", B, []), helper.make_tensor_sequence_value_info("seq_in", F, None)],
        [value("c_out", B, []), helper.make_tensor_sequence_value_info("seq_out", F, None)],
    )
    nodes = [
        helper.make_node("SequenceEmpty", [], ["empty"], dtype=F),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Loop", ["n", "true", "empty"], ["seq"], body=body),
        helper.make_node("ConcatFromSequence", ["seq"], ["y"], axis=0, new_axis=1),
        helper.make_node("SequenceLength", ["seq"], ["count"]),
    ]
    initializers = {"zero": np.array(0, np.int64), "true": np.array(True)}
    for rows in (1, 4):
        x = random((rows, 3), seed=rows)
        model = make_model(nodes, {"x": x}, ["y", "count"], 13, initializers=initializers, shapes={"x": ["n", 3]})
        check(model, {"x": x})


def test_loop_body_convolves_with_an_outer_weight():
    # The body's weight is an outer initializer; copied into the body, it
    # makes the body's Conv a torch.nn.Conv2d, as the outer one is.
    body = graph(
        [
            helper.make_node("Conv", ["h_in", "w_body"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Tanh", ["conv"], ["h_out"]),
            helper.make_node("Identity", ["c_in"], ["c_out"]),
        ],
        [value("i", I64, []), value("c_in", B, []), value("h_in", F, [1, 4, 5, 5])],
        [value("c_out", B, []), value("h_out", F, [1, 4, 5, 5])],
    )
    nodes = [
        helper.make_node("Conv", ["x", "w_in"], ["h0"], pads=[1, 1, 1, 1]),
        helper.make_node("Loop", ["m", "", "h0"], ["h"], body=body),
    ]
    feeds = {"x": random((1, 3, 5, 5))}
    initializers = {"w_in": random((4, 3, 3, 3), seed=5), "w_body": random((4, 4, 3, 3), seed=6)}
    initializers["m"] = np.array(3, np.int64)
    model = make_model(nodes, feeds, ["h"], 13, initializers=initializers)
    check(model, feeds, atol=1e-4)
    convs = [m for m in onnx2torch.convert(model).modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(tuple(c.weight.shape) for c in convs) == [(4, 3, 3, 3), (4, 4, 3, 3)]


def test_loop_model_pickles():
    model, feeds = _loop_model(16)
    module = onnx2torch.convert(model).eval()
    reloaded = roundtrip(module)
    inputs = [torch.from_numpy(feeds[i.name]) for i in model.graph.input]
    with torch.no_grad():
        for got, want in zip(reloaded(*inputs), module(*inputs)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    expected = run_ort(model, feeds)
    with torch.no_grad():
        for got, want in zip(reloaded(*inputs), expected):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_loop_with_a_failing_body_names_it():
    body = graph(
        [
            helper.make_node("NoSuchOp", ["s_in"], ["s_out"], domain="test.unknown"),
            helper.make_node("Identity", ["c_in"], ["c_out"]),
        ],
        [value("i", I64, []), value("c_in", B, []), value("s_in", F, [2])],
        [value("c_out", B, []), value("s_out", F, [2])],
    )
    node = helper.make_node("Loop", ["m", "", "s0"], ["s"], body=body)
    feeds = {"m": np.array(2, np.int64), "s0": random((2,))}
    model = make_model(node, feeds, ["s"], 13, extra_opsets=[helper.make_opsetid("test.unknown", 1)])
    with pytest.raises(NotImplementedError, match="Loop body.*NoSuchOp"):
        onnx2torch.convert(model)


# --- models as torch's exporter writes them ----------------------------------


class _Scripted(torch.nn.Module):
    def forward(self, x):
        acc = torch.zeros_like(x[0])
        rows = []
        for i in range(x.shape[0]):
            acc = acc + x[i]
            if bool(acc.sum() > 0):
                rows.append(acc * 2)
            else:
                rows.append(acc - 1)
        if bool(x.sum() > 0):
            y = acc + x.mean()
        else:
            y = acc * x.max()
        return y, torch.stack(rows)


def _scripted_model(opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buffer = io.BytesIO()
        torch.onnx.export(
            torch.jit.script(_Scripted()),
            (torch.randn(3, 4),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["y", "rows"],
            dynamic_axes={"x": {0: "n"}, "rows": {0: "n"}},
        )
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("opset", [13, 17])
def test_torch_scripted_loop_and_if(opset):
    model = _scripted_model(opset)
    ops = {n.op_type for n in model.graph.node}
    assert {"Loop", "If"} <= ops
    for rows, seed in ((1, 0), (3, 1), (5, 2)):
        for sign in (1, -1):
            x = np.abs(random((rows, 4), seed=seed)) * sign
            check(model, {"x": x})


def test_torch_scripted_model_pickles():
    model = _scripted_model(17)
    module = roundtrip(onnx2torch.convert(model).eval())
    x = random((4, 4), seed=3)
    expected = run_ort(model, {"x": x})
    with torch.no_grad():
        got = module(torch.from_numpy(x))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-5)


# --- Scan --------------------------------------------------------------------


def _scan_body(state_shape, element_shape):
    """State s += x_t * outer w; scan outputs s and x_t + s."""
    return graph(
        [
            helper.make_node("Mul", ["x_t", "w"], ["xw"]),
            helper.make_node("Add", ["s_in", "xw"], ["s_out"]),
            helper.make_node("Add", ["x_t", "s_out"], ["y_t"]),
            helper.make_node("Identity", ["s_out"], ["s_copy"]),
        ],
        [value("s_in", F, state_shape), value("x_t", F, element_shape)],
        [value("s_out", F, state_shape), value("s_copy", F, state_shape), value("y_t", F, element_shape)],
    )


@pytest.mark.parametrize("opset", [9, 11, 16, 25])
@pytest.mark.parametrize("input_axis, input_direction", [(0, 0), (1, 1), (-1, 0), (1, 0)])
@pytest.mark.parametrize("output_axes, output_directions", [((0, 0), (0, 0)), ((1, -1), (1, 0)), ((0, 1), (0, 1))])
def test_scan(opset, input_axis, input_direction, output_axes, output_directions):
    if opset < 11 and (input_axis < 0 or min(output_axes) < 0):
        pytest.skip("negative axes came with Scan 11")
    xs = random((4, 4))
    node = helper.make_node(
        "Scan",
        ["s0", "xs"],
        ["s", "ys1", "ys2"],
        body=_scan_body([4], [4]),
        num_scan_inputs=1,
        scan_input_axes=[input_axis],
        scan_input_directions=[input_direction],
        scan_output_axes=list(output_axes),
        scan_output_directions=list(output_directions),
    )
    feeds = {"s0": random((4,), seed=1), "xs": xs}
    model = make_model(node, feeds, ["s", "ys1", "ys2"], opset, initializers={"w": random((4,), seed=2)})
    check(model, feeds)


def test_scan_with_two_inputs_and_states():
    body = graph(
        [
            helper.make_node("Add", ["a_in", "x_t"], ["a_out"]),
            helper.make_node("Mul", ["b_in", "y_t"], ["b_out"]),
            helper.make_node("Sub", ["a_out", "b_out"], ["z_t"]),
        ],
        [value("a_in", F, [3]), value("b_in", F, [3]), value("x_t", F, [3]), value("y_t", F, [3])],
        [value("a_out", F, [3]), value("b_out", F, [3]), value("z_t", F, [3])],
    )
    node = helper.make_node(
        "Scan",
        ["a0", "b0", "xs", "ys"],
        ["a", "b", "zs"],
        body=body,
        num_scan_inputs=2,
        scan_input_axes=[0, 1],
        scan_input_directions=[1, 0],
    )
    feeds = {"a0": random((3,)), "b0": random((3,), seed=1), "xs": random((5, 3), seed=2), "ys": random((3, 5), seed=3)}
    check(make_model(node, feeds, ["a", "b", "zs"], 16), feeds)


@pytest.mark.parametrize("lengths", [None, [3, 1, 2]])
@pytest.mark.parametrize("direction", [0, 1])
def test_scan8_batch_and_sequence_lengths(lengths, direction):
    node = helper.make_node(
        "Scan",
        ["lens" if lengths else "", "s0", "xs"],
        ["s", "ys1", "ys2"],
        body=_scan_body([2], [2]),
        num_scan_inputs=1,
        directions=[direction],
    )
    feeds = {"s0": random((3, 2)), "xs": random((3, 3, 2), seed=1)}
    if lengths:
        feeds["lens"] = np.array(lengths, np.int64)
    check(make_model(node, feeds, ["s", "ys1", "ys2"], 8, initializers={"w": random((2,), seed=2)}), feeds)


# --- sequences ---------------------------------------------------------------


def _split(split, axis=0, keepdims=None):
    attrs = {"axis": axis} if keepdims is None else {"axis": axis, "keepdims": keepdims}
    return helper.make_node("SplitToSequence", ["x"] + (["split"] if split is not None else []), ["seq"], **attrs)


@pytest.mark.parametrize("opset", [11, 24])
@pytest.mark.parametrize(
    "split, axis, keepdims",
    [
        (None, 0, None),
        (None, 1, 0),
        (None, -1, 1),
        (np.array(2, np.int64), 1, None),  # 5 columns: pieces of 2, 2 and 1
        (np.array([1, 3, 1], np.int64), 1, 0),  # keepdims is ignored with a split
        (np.array([2, 2], np.int32), 0, None),
    ],
)
@pytest.mark.parametrize("constant_split", [True, False])
def test_split_to_sequence(opset, split, axis, keepdims, constant_split):
    if split is None and not constant_split:
        pytest.skip("no split to give")
    x = random((4, 5))
    nodes = [
        _split(split, axis, keepdims),
        helper.make_node("SequenceLength", ["seq"], ["count"]),
        helper.make_node("SequenceAt", ["seq", "last"], ["tail"]),
        helper.make_node("ConcatFromSequence", ["seq"], ["joined"], axis=axis),
    ]
    feeds = {"x": x}
    initializers = {"last": np.array(-1, np.int64)}
    if split is not None:
        (initializers if constant_split else feeds)["split"] = split
    if split is None and keepdims == 0:  # pieces lost the axis: stack them back
        nodes[-1] = helper.make_node("ConcatFromSequence", ["seq"], ["joined"], axis=axis, new_axis=1)
    check(make_model(nodes, feeds, ["count", "tail", "joined"], opset, initializers=initializers), feeds)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat_from_sequence_new_axis(axis):
    feeds = {"a": random((2, 3)), "b": random((2, 3), seed=1), "c": random((2, 3), seed=2)}
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["seq"]),
        helper.make_node("ConcatFromSequence", ["seq"], ["y"], axis=axis, new_axis=1),
    ]
    check(make_model(nodes, feeds, ["y"], 11), feeds)


@pytest.mark.parametrize("position", [None, 0, 1, 3, -1, -3])
def test_sequence_insert(position):
    feeds = {"a": random((2,)), "b": random((2,), seed=1), "c": random((2,), seed=2), "z": random((2,), seed=3)}
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["seq"]),
        helper.make_node("SequenceInsert", ["seq", "z"] + (["pos"] if position is not None else []), ["more"]),
        helper.make_node("ConcatFromSequence", ["more"], ["y"], axis=0, new_axis=1),
        # the sequence inserted into is unchanged
        helper.make_node("ConcatFromSequence", ["seq"], ["before"], axis=0),
    ]
    initializers = {} if position is None else {"pos": np.array(position, np.int64)}
    check(make_model(nodes, feeds, ["y", "before"], 11, initializers=initializers), feeds)


@pytest.mark.parametrize("position", [None, 0, 1, -1, -3])
def test_sequence_erase_and_at(position):
    feeds = {"a": random((2,)), "b": random((3,), seed=1), "c": random((1,), seed=2)}
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["seq"]),
        helper.make_node("SequenceErase", ["seq"] + (["pos"] if position is not None else []), ["fewer"]),
        helper.make_node("ConcatFromSequence", ["fewer"], ["y"], axis=0),
        helper.make_node("SequenceLength", ["fewer"], ["count"]),
        helper.make_node("SequenceAt", ["seq", "at"], ["picked"]),
    ]
    initializers = {"at": np.array(-2 if position is None else position, np.int64)}
    if position is not None:
        initializers["pos"] = np.array(position, np.int64)
    check(make_model(nodes, feeds, ["y", "count", "picked"], 11, initializers=initializers), feeds)


def test_sequence_position_out_of_range_is_an_error():
    feeds = {"a": random((2,)), "pos": np.array(3, np.int64)}
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "a"], ["seq"]),
        helper.make_node("SequenceAt", ["seq", "pos"], ["y"]),
    ]
    model = make_model(nodes, feeds, ["y"], 11)
    with pytest.raises(IndexError):
        run_torch(model, feeds)


def test_identity_of_a_sequence_and_sequence_map():
    body = graph(
        [helper.make_node("Add", ["piece", "bias"], ["shifted"]), helper.make_node("Shape", ["piece"], ["shape"])],
        [value("piece", F, [None, 3]), value("bias", F, [3])],
        [value("shifted", F, [None, 3]), value("shape", I64, [2])],
    )
    nodes = [
        helper.make_node("SplitToSequence", ["x", "split"], ["seq"]),
        helper.make_node("Identity", ["seq"], ["same"]),
        helper.make_node("SequenceMap", ["same", "bias"], ["mapped", "shapes"], body=body),
        helper.make_node("ConcatFromSequence", ["mapped"], ["y"], axis=0),
        helper.make_node("ConcatFromSequence", ["shapes"], ["s"], axis=0, new_axis=1),
    ]
    feeds = {"x": random((5, 3)), "bias": random((3,), seed=1)}
    model = make_model(nodes, feeds, ["y", "s"], 17, initializers={"split": np.array([1, 4], np.int64)})
    check(model, feeds)


# --- optionals ---------------------------------------------------------------


@pytest.mark.parametrize("opset", [15, 18])
@pytest.mark.parametrize("empty", [False, True])
def test_optional(opset, empty):
    x = random((2, 3))
    if empty:
        make = helper.make_node("Optional", [], ["opt"], type=helper.make_tensor_type_proto(F, [2, 3]))
    else:
        make = helper.make_node("Optional", ["x"], ["opt"])
    nodes = [make, helper.make_node("OptionalHasElement", ["opt"], ["has"])]
    outputs = ["has"]
    if not empty:
        nodes.append(helper.make_node("OptionalGetElement", ["opt"], ["got"]))
        outputs.append("got")
    check(make_model(nodes, {"x": x}, outputs, opset), {"x": x})


# --- helpers -----------------------------------------------------------------


def test_outer_names_look_through_nested_subgraphs():
    inner = graph([helper.make_node("Add", ["a", "local"], ["r"])], [], [value("far", F, [1])], "inner")
    body = graph(
        [
            helper.make_node("Neg", ["x"], ["local"]),
            helper.make_node("If", ["c"], ["out"], then_branch=inner, else_branch=inner),
        ],
        [value("x", F, [1])],
        [value("out", F, [1])],
    )
    assert control.outer_names(body) == ["c", "a", "far"]
