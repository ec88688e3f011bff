import io

import numpy as np
import onnx2torch
import pytest
import torch
from convert_check import assert_same, check, make_model, random, run_reference, run_torch
from onnx import TensorProto, helper

INPUTS = ["q", "k", "v", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen"]


def _attention(feeds, opset, outputs=("y",), **attrs):
    """An Attention node over the given inputs (missing ones left empty), each
    output through an Identity, so that each is a graph output of its own
    (onnx2torch returns a multi-output node's whole tuple otherwise)."""
    names = [name if name in feeds else "" for name in INPUTS]
    while names[-1] == "":
        names.pop()
    raw = [f"{o}_raw" if o else "" for o in outputs]
    nodes = [helper.make_node("Attention", names, raw, **attrs)]
    nodes += [helper.make_node("Identity", [r], [o]) for r, o in zip(raw, outputs) if o]
    return make_model(nodes, feeds, [o for o in outputs if o], opset)


def _qkv(batch=2, q_heads=4, kv_heads=4, q_len=5, kv_len=5, head=8, v_head=None, layout="4d", seed=0):
    v_head = v_head or head
    if layout == "4d":
        shapes = [(batch, q_heads, q_len, head), (batch, kv_heads, kv_len, head), (batch, kv_heads, kv_len, v_head)]
    else:
        shapes = [(batch, q_len, q_heads * head), (batch, kv_len, kv_heads * head), (batch, kv_len, kv_heads * v_head)]
    return {name: random(shape, seed=seed + i) for i, (name, shape) in enumerate(zip("qkv", shapes))}


@pytest.mark.parametrize("opset", [23, 24, 25])
@pytest.mark.parametrize("q_len, kv_len", [(5, 5), (3, 7), (1, 6)])
@pytest.mark.parametrize("is_causal", [0, 1])
def test_attention_4d(opset, q_len, kv_len, is_causal):
    feeds = _qkv(q_len=q_len, kv_len=kv_len, v_head=6)
    check(_attention(feeds, opset, is_causal=is_causal), feeds)


@pytest.mark.parametrize("q_heads, kv_heads", [(4, 4), (4, 2), (6, 1)])  # MHA, GQA, MQA
@pytest.mark.parametrize("layout", ["4d", "3d"])
def test_attention_heads(layout, q_heads, kv_heads):
    feeds = _qkv(q_heads=q_heads, kv_heads=kv_heads, q_len=4, kv_len=6, layout=layout)
    attrs = {"q_num_heads": q_heads, "kv_num_heads": kv_heads} if layout == "3d" else {}
    check(_attention(feeds, 23, **attrs), feeds)


@pytest.mark.parametrize("mask_shape", [(5, 7), (2, 1, 5, 7), (1, 4, 5, 7), (5, 4)])  # (5, 4): shorter, padded
@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("is_causal", [0, 1])
def test_attention_masks(kind, mask_shape, is_causal):
    feeds = _qkv(q_len=5, kv_len=7)
    if kind == "bool":
        mask = random(mask_shape, dtype=np.bool_, seed=9)
        mask[..., 0] = True  # keep a key for every query
    else:
        mask = random(mask_shape, seed=9)
    feeds["attn_mask"] = mask
    # onnxruntime 1.32 refuses a mask shorter than the keys (the spec pads
    # it with False / -inf): the reference evaluator does that.
    check(_attention(feeds, 23, is_causal=is_causal), feeds, reference=mask_shape[-1] < 7)


def test_attention_fully_masked_rows_are_zero():
    feeds = _qkv(q_len=3, kv_len=4)
    mask = np.ones((3, 4), np.bool_)
    mask[1] = False
    feeds["attn_mask"] = mask
    outputs = ("y", "", "", "qk")
    model = _attention(feeds, 23, outputs=outputs, qk_matmul_output_mode=3)
    y, qk = check(model, feeds)
    assert (y[:, :, 1] == 0).all() and (qk[:, :, 1] == 0).all()


@pytest.mark.parametrize("is_causal", [0, 1])
@pytest.mark.parametrize("layout", ["4d", "3d"])
def test_attention_kv_cache(layout, is_causal):
    # past_key/past_value go in front of K/V and come back as present_*;
    # causal masking is offset by the past length.
    feeds = _qkv(q_heads=4, kv_heads=2, q_len=2, kv_len=2, layout=layout)
    feeds["past_key"] = random((2, 2, 3, 8), seed=7)
    feeds["past_value"] = random((2, 2, 3, 8), seed=8)
    attrs = {"q_num_heads": 4, "kv_num_heads": 2} if layout == "3d" else {}
    outputs = ("y", "present_key", "present_value")
    check(_attention(feeds, 23, outputs=outputs, is_causal=is_causal, **attrs), feeds)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("softcap", [0.0, 2.0])
def test_attention_qk_matmul_output(mode, softcap):
    feeds = _qkv(q_len=4, kv_len=5)
    feeds["attn_mask"] = random((4, 5), seed=3)
    outputs = ("y", "", "", "qk")
    model = _attention(feeds, 23, outputs=outputs, qk_matmul_output_mode=mode, softcap=softcap, is_causal=1)
    # In mode 2 (scores plus bias) onnxruntime 1.32 writes the lowest finite
    # float where the spec's bias is -inf: the reference evaluator has -inf.
    check(model, feeds, reference=mode == 2)


@pytest.mark.parametrize("scale", [0.05, 1.0])
def test_attention_scale(scale):
    feeds = _qkv(q_len=3, kv_len=4)
    check(_attention(feeds, 23, scale=scale), feeds)


def test_attention_float16_with_float_softmax():
    feeds = {k: v.astype(np.float16) for k, v in _qkv(q_len=4, kv_len=6).items()}
    model = _attention(feeds, 23, softmax_precision=TensorProto.FLOAT, is_causal=1)
    check(model, feeds, atol=2e-3, rtol=2e-3)  # half precision


@pytest.mark.parametrize("is_causal", [0, 1])
def test_attention_24_nonpad_kv_seqlen(is_causal):
    # An external cache: K/V hold the whole cache, nonpad_kv_seqlen says how
    # much of it is valid per batch; causal masking aligns the queries to
    # the end of the valid part.
    feeds = _qkv(q_len=2, kv_len=6)
    feeds["nonpad_kv_seqlen"] = np.array([4, 6], np.int64)
    check(_attention(feeds, 24, is_causal=is_causal), feeds)


@pytest.mark.parametrize("left, right", [(2, 0), (1, 1), (-1, 0), (0, -1)])
@pytest.mark.parametrize("is_causal", [0, 1])
def test_attention_25_sliding_window(left, right, is_causal):
    feeds = _qkv(q_len=5, kv_len=6)
    model = _attention(feeds, 25, is_causal=is_causal, left_window_size=left, right_window_size=right)
    check(model, feeds)


def test_attention_25_window_with_cache_offset():
    feeds = _qkv(q_len=2, kv_len=2)
    feeds["past_key"] = random((2, 4, 4, 8), seed=7)
    feeds["past_value"] = random((2, 4, 4, 8), seed=8)
    outputs = ("y", "present_key", "present_value")
    check(_attention(feeds, 25, outputs=outputs, is_causal=1, left_window_size=2), feeds)


# --- FlexAttention (ai.onnx.preview) ----------------------------------------------
# onnxruntime 1.32 has no FlexAttention kernel: checked against the reference evaluator.

PREVIEW = [helper.make_opsetid("ai.onnx.preview", 1)]


def _flex(feeds, score_mod=None, prob_mod=None, **attrs):
    node = helper.make_node("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", **attrs)
    for name, graph in (("score_mod", score_mod), ("prob_mod", prob_mod)):
        if graph is not None:
            node.attribute.append(helper.make_attribute(name, graph))
    return make_model(node, feeds, ["y"], 26, extra_opsets=PREVIEW)


def _modifier(nodes, dtype=TensorProto.FLOAT, initializers=()):
    """A modifier subgraph from its nodes: input "x", output "out"."""
    dims = ["B", "H", "L", "S"]
    return helper.make_graph(
        nodes,
        "modifier",
        [helper.make_tensor_value_info("x", dtype, dims)],
        [helper.make_tensor_value_info("out", dtype, dims)],
        list(initializers),
    )


def _scalar(name, value, dtype=TensorProto.FLOAT):
    return helper.make_tensor(name, dtype, [], [value])


@pytest.mark.parametrize("q_heads, kv_heads", [(4, 4), (8, 2), (6, 1)])
@pytest.mark.parametrize("q_len, kv_len", [(5, 5), (3, 7), (1, 4)])
def test_flex_attention(q_heads, kv_heads, q_len, kv_len):
    feeds = _qkv(q_heads=q_heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, v_head=6)
    check(_flex(feeds), feeds, reference=True)


@pytest.mark.parametrize("scale", [0.05, 1.0, 3.0])
def test_flex_attention_scale(scale):
    feeds = _qkv(q_len=3, kv_len=4)
    check(_flex(feeds, scale=scale), feeds, reference=True)


@pytest.mark.parametrize(
    "dtype, precision, tolerance",
    [
        (np.float16, None, 2e-3),  # softmax in float32 by default
        (np.float16, TensorProto.FLOAT16, 5e-3),
        (np.float32, TensorProto.DOUBLE, 1e-5),
        (np.float64, None, 1e-10),
    ],
)
def test_flex_attention_precision(dtype, precision, tolerance):
    feeds = {k: v.astype(dtype) for k, v in _qkv(q_len=4, kv_len=6).items()}
    attrs = {} if precision is None else {"softmax_precision": precision}
    # a score_mod in the softmax precision, as the spec requires
    compute = precision or (TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT)
    mod = _modifier([helper.make_node("Add", ["x", "c"], ["out"])], compute, [_scalar("c", 0.5, compute)])
    check(_flex(feeds, score_mod=mod, **attrs), feeds, reference=True, atol=tolerance, rtol=tolerance)


def test_flex_attention_score_mod_causal():
    # Causal masking written as exporters do: Where(k_idx <= q_idx, x, -inf).
    nodes = [
        helper.make_node("Shape", ["x"], ["l"], start=2, end=3),
        helper.make_node("Shape", ["x"], ["s"], start=3, end=4),
        helper.make_node("Squeeze", ["l"], ["l0"]),
        helper.make_node("Squeeze", ["s"], ["s0"]),
        helper.make_node("Range", ["zero", "l0", "one"], ["qi"]),
        helper.make_node("Range", ["zero", "s0", "one"], ["ki"]),
        helper.make_node("Unsqueeze", ["qi", "last"], ["qcol"]),
        helper.make_node("LessOrEqual", ["ki", "qcol"], ["keep"]),
        helper.make_node("Where", ["keep", "x", "neg_inf"], ["out"]),
    ]
    constants = [
        helper.make_tensor("zero", TensorProto.INT64, [], [0]),
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("last", TensorProto.INT64, [1], [1]),
        _scalar("neg_inf", float("-inf")),
    ]
    feeds = _qkv(q_heads=4, kv_heads=2, q_len=5, kv_len=5)
    y = check(_flex(feeds, score_mod=_modifier(nodes, initializers=constants)), feeds, reference=True)[0]
    # The first query sees the first value only.
    np.testing.assert_allclose(y[:, :, 0], np.repeat(feeds["v"][:, :, 0], 2, axis=1), rtol=1e-6)


def test_flex_attention_soft_cap_and_prob_mod():
    cap = _modifier(
        [
            helper.make_node("Div", ["x", "cap"], ["d"]),
            helper.make_node("Tanh", ["d"], ["t"]),
            helper.make_node("Mul", ["t", "cap"], ["out"]),
        ],
        initializers=[_scalar("cap", 1.5)],
    )
    dropout_like = _modifier([helper.make_node("Mul", ["x", "keep"], ["out"])], initializers=[_scalar("keep", 0.8)])
    feeds = _qkv(q_len=4, kv_len=6)
    check(_flex(feeds, score_mod=cap, prob_mod=dropout_like, scale=2.0), feeds, reference=True)


def _bias_mod_model(feeds, bias, outer):
    """FlexAttention whose score_mod adds `bias`: read from the outer graph's
    input "bias" when `outer`, else held inside the subgraph."""
    mod = _modifier(
        [helper.make_node("Add", ["x", "bias"], ["out"])],
        initializers=[] if outer else [helper.make_tensor("bias", TensorProto.FLOAT, bias.shape, bias.reshape(-1))],
    )
    return _flex(dict(feeds, bias=bias) if outer else feeds, score_mod=mod)


@pytest.mark.parametrize("bias_shape", [(3, 5), (1, 4, 3, 5)])
def test_flex_attention_score_mod_reads_outer_scope(bias_shape):
    # A subgraph may read a value of the graph around it; the reference
    # evaluator cannot, so it runs the same bias held inside the subgraph.
    feeds = _qkv(q_len=3, kv_len=5)
    bias = random(bias_shape, seed=11)
    bias[..., 1, 2:] = -np.inf
    expected = run_reference(_bias_mod_model(feeds, bias, outer=False), feeds)
    assert_same(expected, run_torch(_bias_mod_model(feeds, bias, outer=True), dict(feeds, bias=bias)))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's -inf - -inf
def test_flex_attention_fully_masked_row_is_nan():
    # Unlike Attention, FlexAttention gives a row with no attendable key NaN (softmax of -inf).
    feeds = _qkv(q_len=3, kv_len=5)
    bias = random((3, 5), seed=11)
    bias[1] = -np.inf
    model = _bias_mod_model(feeds, bias, outer=False)
    y = check(model, feeds, reference=True)[0]
    assert np.isnan(y[:, :, 1]).all() and not np.isnan(y[:, :, [0, 2]]).any()


def test_flex_attention_saved_and_reloaded():
    feeds = _qkv(q_heads=4, kv_heads=2, q_len=3, kv_len=5)
    bias = random((3, 5), seed=11)
    model = _bias_mod_model(feeds, bias, outer=True)
    module = onnx2torch.convert(model)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=False).eval()
    with torch.no_grad():
        y = reloaded(*[torch.from_numpy(v) for v in (feeds["q"], feeds["k"], feeds["v"], bias)]).numpy()
    assert_same(run_reference(_bias_mod_model(feeds, bias, outer=False), feeds), [y])


def test_flex_attention_refuses_integer_softmax_precision():
    feeds = _qkv(q_len=3, kv_len=4)
    model = _flex(feeds)
    # after the model is made: ONNX's shape inference refuses it too
    model.graph.node[0].attribute.append(helper.make_attribute("softmax_precision", TensorProto.INT32))
    with pytest.raises(ValueError, match="softmax_precision"):
        onnx2torch.convert(model)
