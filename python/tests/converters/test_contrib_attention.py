"""onnxruntime's fused transformer ops (com.microsoft), against onnxruntime's
CPU kernels; BiasAdd and BiasSplitGelu, which have CUDA kernels only,
against their documented formula; and whole transformers exported,
optimised by onnxruntime's transformer optimizer and converted."""

import math

import numpy as np
import onnx
import pytest
from convert_check import assert_same, random, run_ort, run_torch
from onnx import TensorProto, helper

from onnx2pt_py import preflight

MS = "com.microsoft"


def ms_model(node, inputs, outputs, initializers=None):
    """A model of one com.microsoft node. inputs: {name: array}; outputs:
    {name: numpy dtype} (the ONNX checker knows no com.microsoft schemas,
    and onnxruntime wants the outputs' types)."""
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(np.dtype(t)), None)
            for k, t in outputs.items()
        ],
        [onnx.numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], ir_version=8
    )


def node_and_feeds(op, inputs, outputs, attrs):
    """inputs: [(name, array or None)] in the op's order, None for an
    omitted optional input; outputs: names, "" for an omitted one."""
    names = [name if value is not None else "" for name, value in inputs]
    node = helper.make_node(op, names, outputs, domain=MS, **attrs)
    return node, {name: value for name, value in inputs if value is not None}


def compare(op, inputs, outputs=("y",), attrs=None, types=None, valid=None, atol=1e-5, rtol=1e-4):
    """Convert the node and compare each named output with onnxruntime's;
    valid: {output index: function} picking the part onnxruntime specifies."""
    node, feeds = node_and_feeds(op, inputs, list(outputs), attrs or {})
    dtype = next(v.dtype for v in feeds.values() if v.dtype.kind == "f")
    model = ms_model(node, feeds, {o: (types or {}).get(o, dtype) for o in outputs if o})
    expected, actual = run_ort(model, feeds), run_torch(model, feeds)
    for index, pick in (valid or {}).items():
        expected[index], actual[index] = pick(expected[index]), pick(actual[index])
    assert_same(expected, actual, atol=atol, rtol=rtol)
    return actual


def convert_only(op, inputs, outputs=("y",), attrs=None):
    node, feeds = node_and_feeds(op, inputs, list(outputs), attrs or {})
    dtype = next(v.dtype for v in feeds.values() if v.dtype.kind == "f")
    model = ms_model(node, feeds, {o: dtype for o in outputs if o})
    return model, feeds


def refusal(op, inputs, outputs=("y",), attrs=None):
    """The pre-flight's reason for refusing the node."""
    model, _ = convert_only(op, inputs, outputs, attrs)
    failures = preflight.check(model)
    assert len(failures) == 1, failures
    return failures[0]["reason"]


def i32(*values):
    return np.array(values, dtype=np.int32)


def half(inputs):
    return [(n, v.astype(np.float16) if v is not None and v.dtype == np.float32 else v) for n, v in inputs]


# --- Attention: merged Q/K/V projection, legacy past state -------------------

B, S, D, N = 2, 3, 8, 2
X, W, BIAS = random((B, S, D)), random((D, 3 * D), seed=1), random((3 * D,), seed=2)

MASKS = {
    "lengths": i32(2, 3),
    "lengths_zero_and_past_end": i32(0, 7),
    "ends_then_starts": i32(3, 2, 1, 0),
    "raw_2d": np.array([[1, 1, 0], [1, 0, 1]], np.int32),
    "raw_2d_not_binary": np.array([[2, -1, 1], [0, 0, 0]], np.int32),
    "raw_3d": (random((B, S, S), seed=3) > 0).astype(np.int32),
}


@pytest.mark.parametrize("unidirectional", [0, 1])
@pytest.mark.parametrize("mask", [None, *MASKS])
def test_attention_masks(mask, unidirectional):
    inputs = [("x", X), ("w", W), ("b", BIAS), ("mask", MASKS.get(mask))]
    compare("Attention", inputs, attrs={"num_heads": N, "unidirectional": unidirectional})


@pytest.mark.parametrize("mask", [None, "raw", "lengths"])
def test_attention_past(mask):
    past_len = 4
    past = random((2, B, N, past_len, D // N), seed=5)
    mask = {
        None: None,
        "raw": (random((B, past_len + S), seed=6) > -0.5).astype(np.int32),
        "lengths": i32(5, 7),
    }[mask]
    inputs = [("x", X), ("w", W), ("b", BIAS), ("mask", mask), ("past", past)]
    compare("Attention", inputs, ("y", "present"), {"num_heads": N, "unidirectional": 1})


@pytest.mark.parametrize("sizes", [[8, 8, 16], [6, 6, 10]])  # different V width; odd head sizes 3 and 5
def test_attention_qkv_hidden_sizes(sizes):
    w, b = random((D, sum(sizes)), seed=7), random((sum(sizes),), seed=8)
    inputs = [("x", X), ("w", w), ("b", b), ("mask", i32(2, 3))]
    compare("Attention", inputs, attrs={"num_heads": N, "qkv_hidden_sizes": sizes})


def test_attention_bias_scale_filter_value():
    # a fully padded row averages its keys (the filter value is added, not -inf)
    inputs = [("x", X), ("w", W), ("b", None), ("mask", i32(0, 2)), ("past", None), ("bias", random((B, N, S, S)))]
    attrs = {"num_heads": N, "scale": 0.3, "mask_filter_value": -5.0}
    compare("Attention", inputs, attrs=attrs)
    compare("Attention", inputs, attrs={**attrs, "unidirectional": 1})
    # a bias broadcast over batch and heads (no fully padded row: beside
    # -10000, float32 keeps three decimals of a score)
    inputs[3:] = [("mask", i32(1, 2)), ("past", None), ("bias", random((1, 1, S, S), seed=9))]
    compare("Attention", inputs, attrs={"num_heads": N})


def test_attention_float16():
    inputs = half([("x", X), ("w", W), ("b", BIAS), ("mask", np.array([[1, 1, 0], [1, 1, 1]], np.int32))])
    compare("Attention", inputs, attrs={"num_heads": N, "unidirectional": 1}, atol=2e-3, rtol=2e-3)


def test_attention_megatron_4d_mask():
    # (batch, 1, max, max), rows past.. past + seq used: onnxruntime's CPU
    # kernel refuses it, so the same mask as (batch, seq, total) is its reference
    past_len, longest = 2, 8
    past = random((2, B, N, past_len, D // N), seed=5)
    full = np.tril(np.ones((longest, longest), np.int32))[None, None].repeat(B, axis=0)
    full[1, :, :, 0] = 0
    as_3d = full[:, 0, past_len : past_len + S, : past_len + S]
    outputs, attrs = {"y": np.float32, "present": np.float32}, {"num_heads": N}
    inputs = [("x", X), ("w", W), ("b", BIAS), ("m", full), ("p", past)]
    node, feeds = node_and_feeds("Attention", inputs, list(outputs), attrs)
    ours = run_torch(ms_model(node, feeds, outputs), feeds)
    inputs[3] = ("m", as_3d)
    node, feeds = node_and_feeds("Attention", inputs, list(outputs), attrs)
    assert_same(run_ort(ms_model(node, feeds, outputs), feeds), ours)


def test_attention_refusals():
    base = [("x", X), ("w", W), ("b", BIAS)]
    assert "do_rotary" in refusal("Attention", base, attrs={"num_heads": N, "do_rotary": 1})
    assert "past_present_share_buffer" in refusal(
        "Attention", base, attrs={"num_heads": N, "past_present_share_buffer": 1}
    )
    # the 3 * batch + 2 mask form is CUDA's: refused when the model runs
    model, feeds = convert_only("Attention", base + [("mask", np.ones(3 * B + 2, np.int32))], attrs={"num_heads": N})
    with pytest.raises(NotImplementedError, match="3 \\* batch \\+ 2"):
        run_torch(model, feeds)


# --- MultiHeadAttention: projected Q/K/V, past_key/past_value ----------------

L = 4  # key/value length
Q, K, V = random((B, S, D)), random((B, L, D), seed=1), random((B, L, D), seed=2)
PK, PV = random((B, N, 5, D // N), seed=7), random((B, N, 5, D // N), seed=8)


@pytest.mark.parametrize(
    "mask",
    [
        None,
        i32(2, 4),
        i32(0, 4),
        np.array([[1, 1, 0, 1], [0, 1, 1, 1]], np.int32),
        (random((B, S, L), seed=3) > 0).astype(np.int32),
    ],
    ids=["none", "lengths", "fully_padded", "raw_2d", "raw_3d"],
)
@pytest.mark.parametrize("unidirectional", [0, 1])
def test_multi_head_attention_masks(mask, unidirectional):
    # cross attention (kv length 4 for 3 queries): onnxruntime's causal mask
    # spares the last query row
    inputs = [("q", Q), ("k", K), ("v", V), ("b", random((3 * D,), seed=3)), ("mask", mask)]
    compare("MultiHeadAttention", inputs, attrs={"num_heads": N, "unidirectional": unidirectional})


@pytest.mark.parametrize("unidirectional", [0, 1])
def test_multi_head_attention_past_and_outputs(unidirectional):
    mask = (random((B, 5 + L), seed=4) > -0.3).astype(np.int32)
    inputs = [("q", Q), ("k", K), ("v", V), ("b", random((3 * D,), seed=3)), ("mask", mask)]
    inputs += [("bias", random((1, N, S, 5 + L), seed=5)), ("pk", PK), ("pv", PV)]
    compare(
        "MultiHeadAttention",
        inputs,
        ("y", "present_key", "present_value", "qk"),
        {"num_heads": N, "unidirectional": unidirectional},
    )


def test_multi_head_attention_self_causal_past():
    # (onnxruntime's kernel needs both present outputs to read the past right)
    inputs = [("q", Q), ("k", Q), ("v", Q), ("b", None), ("mask", None), ("bias", None), ("pk", PK), ("pv", PV)]
    compare("MultiHeadAttention", inputs, ("y", "present_key", "present_value"), {"num_heads": N, "unidirectional": 1})


def test_multi_head_attention_cross_cache_and_widths():
    # keys and values already (batch, heads, kv_seq, size): the bias is for Q alone
    k, v = random((B, N, L, D // N), seed=4), random((B, N, L, D // N), seed=5)
    compare(
        "MultiHeadAttention", [("q", Q), ("k", k), ("v", v), ("b", random((3 * D,), seed=3))], attrs={"num_heads": N}
    )
    # V twice as wide as Q and K; odd head size 5; a scale; float16
    compare("MultiHeadAttention", [("q", Q), ("k", K), ("v", random((B, L, 2 * D)))], attrs={"num_heads": N})
    odd = [("q", random((B, S, 10))), ("k", random((B, L, 10), seed=1)), ("v", random((B, L, 10), seed=2))]
    compare("MultiHeadAttention", odd, attrs={"num_heads": N, "scale": 0.7})
    compare("MultiHeadAttention", half([("q", Q), ("k", K), ("v", V)]), attrs={"num_heads": N}, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("packed", ["qkv", "kv"])
def test_multi_head_attention_packed(packed):
    # onnxruntime's CPU kernel has no packed forms: the unpacked node is the reference
    bias = random((3 * D,), seed=3)

    def heads(x):
        return x.reshape(B, -1, N, D // N)

    if packed == "qkv":
        k, v = random((B, S, D), seed=1), random((B, S, D), seed=2)
        packed_inputs = [("q", np.stack([heads(Q), heads(k), heads(v)], axis=3)), ("k", None), ("v", None), ("b", bias)]
    else:
        k, v = K, V
        packed_inputs = [("q", Q), ("k", np.stack([heads(k), heads(v)], axis=3)), ("v", None), ("b", bias)]
    attrs = {"num_heads": N, "unidirectional": 1}
    node, feeds = node_and_feeds("MultiHeadAttention", packed_inputs, ["y"], attrs)
    ours = run_torch(ms_model(node, feeds, {"y": np.float32}), feeds)
    node, feeds = node_and_feeds("MultiHeadAttention", [("q", Q), ("k", k), ("v", v), ("b", bias)], ["y"], attrs)
    assert_same(run_ort(ms_model(node, feeds, {"y": np.float32}), feeds), ours)


def test_multi_head_attention_refusals():
    inputs = [("q", Q), ("k", K), ("v", V)] + [(n, None) for n in ("b", "m", "ab", "pk", "pv", "psl")]
    reason = refusal("MultiHeadAttention", inputs + [("ci", np.zeros((B, 1, 8), np.int32))], attrs={"num_heads": N})
    assert "cache_indirection" in reason


# --- GroupQueryAttention: grouped KV heads, KV cache, rotary ------------------

GN, KVN, GH = 4, 2, 8  # query heads, KV heads, head size (onnxruntime's CPU kernel wants a multiple of 8)
GQ, GK, GV = random((B, S, GN * GH)), random((B, S, KVN * GH), seed=1), random((B, S, KVN * GH), seed=2)
CAP = 5
GPK, GPV = random((B, KVN, CAP, GH), seed=3), random((B, KVN, CAP, GH), seed=4)


def rows(lengths):
    """The output rows onnxruntime specifies: the first lengths[b] of entry b."""
    return lambda y: np.concatenate([y[b, : lengths[b]].reshape(-1) for b in range(len(lengths))])


def cached(lengths):
    """The cache rows onnxruntime specifies: the first lengths[b] of entry b."""
    return lambda y: np.concatenate([y[b, :, : lengths[b]].reshape(-1) for b in range(len(lengths))])


def gqa(q, k, v, past, seqlens, total, extra=()):
    past_k, past_v = past if past is not None else (None, None)
    return [("q", q), ("k", k), ("v", v), ("pk", past_k), ("pv", past_v), ("sl", seqlens), ("tl", i32(total))] + list(
        extra
    )


PROMPT = gqa(GQ, GK, GV, None, i32(S - 1, S - 1), S)
OUTS = ("y", "present_key", "present_value")


@pytest.mark.parametrize(
    "attrs",
    [{}, {"scale": 0.2}, {"softcap": 0.5}, {"causal": 0}, {"local_window_size": 2}, {"smooth_softmax": 1}],
    ids=["plain", "scale", "softcap", "not_causal", "window", "smooth_softmax"],
)
def test_group_query_attention_prompt(attrs):
    compare("GroupQueryAttention", PROMPT, OUTS, {"num_heads": GN, "kv_num_heads": KVN, **attrs})


def test_group_query_attention_padded_prompt():
    # entry 1 holds 2 tokens: its padding row and cache row are unspecified
    inputs = gqa(GQ, GK, GV, None, i32(S - 1, S - 2), S)
    valid = {0: rows([3, 2]), 1: cached([3, 2]), 2: cached([3, 2])}
    for causal in (1, 0):
        compare(
            "GroupQueryAttention", inputs, OUTS, {"num_heads": GN, "kv_num_heads": KVN, "causal": causal}, valid=valid
        )


@pytest.mark.parametrize("window", [-1, 2])
def test_group_query_attention_decode_ragged(window):
    # one new token; entry 1 has 2 tokens fewer in its cache
    q, k, v = GQ[:, :1], GK[:, :1], GV[:, :1]
    inputs = gqa(q, k, v, (GPK, GPV), i32(CAP, CAP - 2), CAP + 1)
    valid = {1: cached([6, 4]), 2: cached([6, 4])}
    attrs = {"num_heads": GN, "kv_num_heads": KVN, "local_window_size": window}
    compare("GroupQueryAttention", inputs, OUTS, attrs, valid=valid)


def test_group_query_attention_shared_buffer():
    # the cache buffer is the capacity long; rows after each entry's tokens are zeros
    q, k, v = GQ[:, :1], GK[:, :1], GV[:, :1]
    inputs = gqa(q, k, v, (GPK, GPV), i32(2, 3), CAP)
    compare("GroupQueryAttention", inputs, OUTS, {"num_heads": GN, "kv_num_heads": KVN})
    # several new tokens after a cache (onnxruntime allows it for batch 1)
    inputs = gqa(GQ[:1], GK[:1], GV[:1], (GPK[:1], GPV[:1]), i32(CAP - 1), CAP)
    compare("GroupQueryAttention", inputs, OUTS, {"num_heads": GN, "kv_num_heads": KVN})


def test_group_query_attention_bias_sink_and_qk():
    extra = [("cos", None), ("sin", None), ("pos", None), ("bias", random((B, 1, S, S), seed=9) * 3)]
    attrs = {"num_heads": GN, "kv_num_heads": KVN, "softcap": 0.7}
    compare("GroupQueryAttention", PROMPT + extra, OUTS + ("qk",), {**attrs, "qk_output": 1})
    extra.append(("sink", random((GN,), seed=10)))
    compare("GroupQueryAttention", PROMPT + extra, OUTS + ("qk",), {**attrs, "qk_output": 2})
    # a bias over total_sequence_length keys while the cache buffer is longer
    q, k, v = GQ[:, :1], GK[:, :1], GV[:, :1]
    inputs = gqa(q, k, v, (GPK, GPV), i32(2, 3), 4, [("cos", None), ("sin", None), ("pos", None)])
    inputs.append(("bias", random((1, GN, 1, 4), seed=11)))
    valid = {1: cached([3, 4]), 2: cached([3, 4])}
    compare(
        "GroupQueryAttention",
        inputs,
        OUTS + ("qk",),
        {"num_heads": GN, "kv_num_heads": KVN, "qk_output": 1},
        valid=valid,
    )


def test_group_query_attention_packed_mqa_and_float16():
    packed = gqa(np.concatenate([GQ, GK, GV], axis=-1), None, None, None, i32(S - 1, S - 1), S)
    compare("GroupQueryAttention", packed, OUTS, {"num_heads": GN, "kv_num_heads": KVN})
    mqa = gqa(GQ, GK[..., :GH], GV[..., :GH], None, i32(S - 1, S - 1), S)
    compare("GroupQueryAttention", mqa, OUTS, {"num_heads": GN, "kv_num_heads": 1})
    attrs = {"num_heads": GN, "kv_num_heads": KVN}
    compare("GroupQueryAttention", half(PROMPT), OUTS, attrs, atol=2e-3, rtol=2e-3)


RH = 32  # rotary needs a head size that is a multiple of 16 in onnxruntime's CPU kernel
RQ, RK, RV = random((B, S, GN * RH)), random((B, S, KVN * RH), seed=1), random((B, S, KVN * RH), seed=2)
RPK, RPV = random((1, KVN, CAP, RH), seed=3), random((1, KVN, CAP, RH), seed=4)


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_width", [RH // 2, RH // 4])  # all of each head, or its first half
@pytest.mark.parametrize(
    "case", ["prompt", "prompt_position_ids", "chunk_after_cache", "chunk_position_ids", "decode", "packed"]
)
def test_group_query_attention_rotary(case, rotary_width, interleaved):
    cos, sin = random((16, rotary_width), seed=5), random((16, rotary_width), seed=6)
    # a first prompt reads the first position id alone, for every entry
    position_ids = np.array([[3, 4, 5], [0, 2, 4]], np.int64)
    if case.startswith("prompt"):
        inputs = gqa(RQ, RK, RV, None, i32(S - 1, S - 1), S, [("cos", cos), ("sin", sin)])
    elif case.startswith("chunk"):  # three tokens after five cached ones (batch 1)
        inputs = gqa(RQ[:1], RK[:1], RV[:1], (RPK, RPV), i32(CAP + S - 1), CAP + S, [("cos", cos), ("sin", sin)])
        position_ids = np.array([[1, 3, 9]], np.int64)
    elif case == "decode":
        past = (np.repeat(RPK, B, axis=0), np.repeat(RPV, B, axis=0))
        inputs = gqa(RQ[:, :1], RK[:, :1], RV[:, :1], past, i32(CAP, CAP - 1), CAP + 1, [("cos", cos), ("sin", sin)])
    else:
        packed = np.concatenate([RQ, RK, RV], axis=-1)
        inputs = gqa(packed, None, None, None, i32(S - 1, S - 1), S, [("cos", cos), ("sin", sin)])
    if case.endswith("position_ids"):
        inputs.append(("pos", position_ids))
    attrs = {"num_heads": GN, "kv_num_heads": KVN, "do_rotary": 1, "rotary_interleaved": interleaved}
    valid = {1: cached([6, 5]), 2: cached([6, 5])} if case == "decode" else None
    compare("GroupQueryAttention", inputs, OUTS, attrs, valid=valid)


def test_group_query_attention_refusals():
    attrs = {"num_heads": GN, "kv_num_heads": KVN}
    assert "local_window_size=0" in refusal("GroupQueryAttention", PROMPT, OUTS, {**attrs, "local_window_size": 0})
    assert "quantized" in refusal("GroupQueryAttention", PROMPT, OUTS, {**attrs, "k_quant_type": "PER_TENSOR"})
    assert "sliding_window_cache" in refusal(
        "GroupQueryAttention", PROMPT, OUTS, {**attrs, "local_window_size": 2, "sliding_window_cache": 1}
    )
    nothing = [(n, None) for n in ("cos", "sin", "pos", "bias", "sink", "ks", "vs", "qn", "kn")]
    reason = refusal("GroupQueryAttention", PROMPT + nothing + [("qs", i32(S, S))], OUTS, attrs)
    assert "query_seqlens" in reason


# --- DecoderMaskedMultiHeadAttention: one token, shared cache buffers ----------

DQ, DK, DV = random((B, 1, D)), random((B, 1, D), seed=1), random((B, 1, D), seed=2)
DPK, DPV = random((B, N, 6, D // N), seed=3), random((B, N, 6, D // N), seed=4)


@pytest.mark.parametrize("extra", ["none", "mask", "attention_bias", "projection_bias"])
@pytest.mark.parametrize("past_len", [0, 3, 5])  # the new token lands in the buffer's last row at 5
def test_decoder_masked_multi_head_attention_self(extra, past_len):
    total = past_len + 1
    mask = (random((B, total), seed=5) > -0.5).astype(np.int32) if extra == "mask" else None
    bias = random((1, N, 1, total), seed=6) if extra == "attention_bias" else None
    inputs = [
        ("q", DQ),
        ("k", DK),
        ("v", DV),
        ("m", mask),
        ("ab", bias),
        ("pk", DPK),
        ("pv", DPV),
        ("psl", i32(past_len)),
    ]
    if extra == "projection_bias":
        inputs += [("bw", None), ("ci", None), ("b", random((3 * D,), seed=7))]
    attrs = {"num_heads": N, "past_present_share_buffer": 1}
    compare("DecoderMaskedMultiHeadAttention", inputs, OUTS, attrs)


def test_decoder_masked_multi_head_attention_cross():
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.int32)
    compare("DecoderMaskedMultiHeadAttention", [("q", DQ), ("k", DPK), ("v", DPV), ("m", mask)], attrs={"num_heads": N})
    nothing = [(n, None) for n in ("m", "ab", "pk", "pv", "psl", "bw", "ci")]
    inputs = [("q", DQ), ("k", DPK), ("v", DPV)] + nothing + [("b", random((3 * D,), seed=7))]
    compare("DecoderMaskedMultiHeadAttention", inputs, attrs={"num_heads": N, "scale": 0.5})


def test_decoder_masked_multi_head_attention_refusals():
    inputs = [("q", DQ), ("k", DK), ("v", DV), ("m", None), ("ab", None), ("pk", DPK), ("pv", DPV), ("psl", i32(2))]
    inputs += [("bw", i32(1)), ("ci", np.zeros((B, 1, 6), np.int32))]
    reason = refusal("DecoderMaskedMultiHeadAttention", inputs, OUTS, {"num_heads": N, "past_present_share_buffer": 1})
    assert "cache_indirection" in reason


# --- RotaryEmbedding (com.microsoft) -------------------------------------------

RX = random((B, S, N * 8))
COS, SIN = random((10, 4), seed=1), random((10, 4), seed=2)


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("positions", ["start", "scalar_start", "per_token"])
@pytest.mark.parametrize("layout", ["3d", "3d_num_heads", "3d_partial", "4d", "4d_partial"])
def test_ms_rotary_embedding(layout, positions, interleaved):
    x = random((B, N, S, 8)) if layout.startswith("4d") else RX
    position_ids = {
        "start": np.array([2], np.int64),
        "scalar_start": np.array(4, np.int64),
        "per_token": np.array([[0, 5, 1], [9, 2, 3]], np.int64),
    }[positions]
    cos, sin, attrs = COS, SIN, {"interleaved": interleaved}
    if layout.endswith("partial"):  # the first 4 of each head's 8 features
        cos, sin, attrs = COS[:, :2], SIN[:, :2], {**attrs, "rotary_embedding_dim": 4, "num_heads": N}
    elif layout == "3d_num_heads":
        attrs["num_heads"] = N
    compare("RotaryEmbedding", [("x", x), ("p", position_ids), ("c", cos), ("s", sin)], attrs=attrs)


def test_ms_rotary_embedding_float16_and_refusal():
    inputs = half([("x", RX), ("p", np.array([2], np.int64)), ("c", COS), ("s", SIN)])
    compare("RotaryEmbedding", inputs, atol=2e-3, rtol=2e-3)
    inputs = [("x", RX), ("p", np.array([2], np.int64)), ("c", COS), ("s", SIN)]
    reason = refusal("RotaryEmbedding", inputs, attrs={"rotary_embedding_dim": 4, "num_heads": N})
    assert "4 wide" in reason


# --- EmbedLayerNormalization ---------------------------------------------------

VOCAB, POSITIONS = 20, 12
IDS = random((B, S), np.int32, low=0, high=VOCAB - 1)
SEGMENTS = random((B, S), np.int32, seed=1, low=0, high=1)
TABLES = {
    "word": random((VOCAB, D), seed=1),
    "position": random((POSITIONS, D), seed=2),
    "segment": random((2, D), seed=3),
    "gamma": random((D,), seed=4),
    "beta": random((D,), seed=5),
}


@pytest.mark.parametrize("segments", [True, False])
@pytest.mark.parametrize("mask", [None, np.array([[1, 1, 0], [1, 2, 1]], np.int32)], ids=["no_mask", "mask"])
@pytest.mark.parametrize(
    "position_ids",
    [None, np.array([[3, 1, 2], [0, 5, 4]], np.int32), np.array([[3, 1, 2]], np.int32)],
    ids=["no_positions", "positions", "shared_positions"],
)
def test_embed_layer_normalization(segments, mask, position_ids):
    t = TABLES
    inputs = [("ids", IDS), ("seg", SEGMENTS if segments else None), ("word", t["word"]), ("pos", t["position"])]
    inputs += [("segemb", t["segment"] if segments else None), ("gamma", t["gamma"]), ("beta", t["beta"])]
    inputs += [("mask", mask), ("position_ids", position_ids)]
    compare(
        "EmbedLayerNormalization",
        inputs,
        ("y", "mask_index", "sum"),
        {"epsilon": 1e-5},
        types={"mask_index": np.int32},
    )


def test_embed_layer_normalization_epsilon_and_float16():
    t = TABLES
    small = [("ids", IDS), ("seg", None), ("word", t["word"] * 1e-3), ("pos", t["position"] * 1e-3)]
    small += [("segemb", None), ("gamma", t["gamma"]), ("beta", t["beta"])]
    compare("EmbedLayerNormalization", small, ("y", "mask_index"), {"epsilon": 1e-3}, types={"mask_index": np.int32})
    compare("EmbedLayerNormalization", small, ("y", "mask_index"), types={"mask_index": np.int32})  # 1e-12
    compare(
        "EmbedLayerNormalization",
        half(small),
        ("y", "mask_index"),
        types={"mask_index": np.int32},
        atol=3e-3,
        rtol=3e-3,
    )


# --- BiasAdd, BiasSplitGelu (CUDA kernels only: the documented formula) --------


def _gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_bias_add_and_bias_split_gelu(dtype):
    x, bias, skip = random((2, 5, 8), dtype), random((8,), dtype, seed=1), random((2, 5, 8), dtype, seed=2)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == np.float32 else {"atol": 2e-3, "rtol": 2e-3}
    node, feeds = node_and_feeds("BiasAdd", [("x", x), ("b", bias), ("s", skip)], ["y"], {})
    got = run_torch(ms_model(node, feeds, {"y": dtype}), feeds)
    assert_same([x + bias + skip], got, **tol)
    node, feeds = node_and_feeds("BiasSplitGelu", [("x", x), ("b", bias)], ["y"], {})
    got = run_torch(ms_model(node, feeds, {"y": dtype}), feeds)
    summed = (x + bias).astype(np.float64)
    want = (summed[..., :4] * _gelu(summed[..., 4:])).astype(dtype)
    assert_same([want], got, **tol)


# --- Whole graphs through a conversion: saved, reloaded, verified ---------------


def run_job(tmp_path, model, data=None, **options):
    """The conversion steps the host runs, up to verifying the reloaded file."""
    from onnx2pt_py.job import ConversionJob

    path = str(tmp_path / "model.onnx")
    onnx.save(model, path)
    if data is not None:
        np.savez(str(tmp_path / "data.npz"), **data)
        options["data"] = str(tmp_path / "data.npz")
    job = ConversionJob(path, **options)
    job.load()
    job.convert()
    job.probe()
    out = str(tmp_path / "model.pt")
    result = job.verify(out, job.save(out, None, {})["sha256"])
    assert result["passed"], result
    return result


def test_decoder_graph_with_group_query_attention(tmp_path):
    # as onnxruntime's LLaMA recipe writes it: packed QKV projection, the
    # sequence lengths from the attention mask, rotary inside the op
    hidden, heads, kv_heads, size, capacity = 64, 4, 2, 16, 32
    width = (heads + 2 * kv_heads) * size
    nodes = [
        helper.make_node("MatMul", ["x", "wqkv"], ["qkv"]),
        helper.make_node("ReduceSum", ["mask", "one"], ["lengths"], keepdims=0),
        helper.make_node("Sub", ["lengths", "one"], ["seqlens64"]),
        helper.make_node("Cast", ["seqlens64"], ["seqlens"], to=TensorProto.INT32),
        helper.make_node("Shape", ["mask"], ["mask_shape"]),
        helper.make_node("Gather", ["mask_shape", "one"], ["total64"], axis=0),
        helper.make_node("Cast", ["total64"], ["total"], to=TensorProto.INT32),
        helper.make_node(
            "GroupQueryAttention",
            ["qkv", "", "", "past_key", "past_value", "seqlens", "total", "cos", "sin"],
            ["attended", "present_key", "present_value"],
            domain=MS,
            num_heads=heads,
            kv_num_heads=kv_heads,
            do_rotary=1,
        ),
        helper.make_node("MatMul", ["attended", "wo"], ["y"]),
    ]
    cache = ["batch", kv_heads, "past", size]
    graph = helper.make_graph(
        nodes,
        "decoder",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "total"]),
            helper.make_tensor_value_info("past_key", TensorProto.FLOAT, cache),
            helper.make_tensor_value_info("past_value", TensorProto.FLOAT, cache),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", hidden]),
            helper.make_tensor_value_info("present_key", TensorProto.FLOAT, ["batch", kv_heads, "total", size]),
            helper.make_tensor_value_info("present_value", TensorProto.FLOAT, ["batch", kv_heads, "total", size]),
        ],
        [
            onnx.numpy_helper.from_array(random((hidden, width), seed=1) * 0.2, "wqkv"),
            onnx.numpy_helper.from_array(random((heads * size, hidden), seed=2) * 0.2, "wo"),
            onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
            onnx.numpy_helper.from_array(
                np.cos(np.outer(np.arange(capacity), 0.5 ** np.arange(8))).astype(np.float32), "cos"
            ),
            onnx.numpy_helper.from_array(
                np.sin(np.outer(np.arange(capacity), 0.5 ** np.arange(8))).astype(np.float32), "sin"
            ),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], ir_version=8
    )
    for seq, past in ((5, 0), (1, 4)):  # the prompt, then one token after four
        data = {
            "x": random((2, seq, hidden), seed=3),
            "mask": np.ones((2, past + seq), np.int64),
            "past_key": random((2, kv_heads, past, size), seed=4),
            "past_value": random((2, kv_heads, past, size), seed=5),
        }
        run_job(tmp_path, model, data)


def test_gpt2_graph_with_attention_and_past(tmp_path):
    # as onnxruntime's GPT-2 recipe writes it: EmbedLayerNormalization, then
    # Attention over the legacy past state with the raw attention mask
    hidden, heads, vocab, positions = 32, 4, 50, 64
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32),
        helper.make_node("Cast", ["position_ids"], ["positions32"], to=TensorProto.INT32),
        helper.make_node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32),
        helper.make_node(
            "EmbedLayerNormalization",
            ["ids32", "", "wte", "wpe", "", "gamma", "beta", "", "positions32"],
            ["embedded", "", "embedding_sum"],
            domain=MS,
            epsilon=1e-5,
        ),
        helper.make_node(
            "Attention",
            ["embedded", "wqkv", "bqkv", "mask32", "past"],
            ["attended", "present"],
            domain=MS,
            num_heads=heads,
            unidirectional=1,
            mask_filter_value=-3.4028234663852886e38,
        ),
        helper.make_node(
            "SkipLayerNormalization", ["attended", "embedding_sum", "gamma", "beta"], ["y"], domain=MS, epsilon=1e-5
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "gpt2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
            helper.make_tensor_value_info("past", TensorProto.FLOAT, [2, "batch", heads, "past", hidden // heads]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", hidden]),
            helper.make_tensor_value_info("present", TensorProto.FLOAT, [2, "batch", heads, "total", hidden // heads]),
        ],
        [
            onnx.numpy_helper.from_array(random((vocab, hidden), seed=1), "wte"),
            onnx.numpy_helper.from_array(random((positions, hidden), seed=2), "wpe"),
            onnx.numpy_helper.from_array(random((hidden,), seed=3), "gamma"),
            onnx.numpy_helper.from_array(random((hidden,), seed=4), "beta"),
            onnx.numpy_helper.from_array(random((hidden, 3 * hidden), seed=5) * 0.3, "wqkv"),
            onnx.numpy_helper.from_array(random((3 * hidden,), seed=6), "bqkv"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], ir_version=8
    )
    # random probes: ids below the tables' sizes, masks of random 0..9, a
    # past of 4 tokens and 3 new ones
    run_job(tmp_path, model, batch_sizes=[1, 3], dims={"seq": 3, "past": 4, "total": 7})


# --- transformers models, optimised by onnxruntime's transformer optimizer -----

HF_CASES = {
    # model family: (onnxruntime optimizer model_type, ops the fusions must write)
    "bert": ("bert", {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization"}),
    "gpt2": ("gpt2", {"SkipLayerNormalization"}),
    "llama": ("gpt2", {"SkipSimplifiedLayerNormalization"}),
}


def export_transformer(family, path):
    """A 2-layer, 32-wide, 4-head model with random weights, exported by
    TorchScript (dynamo=False) with dynamic batch and sequence; returns the
    integer inputs' bounds (segment ids index a 2-row table)."""
    import torch
    import transformers

    torch.manual_seed(0)
    shared = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}
    shared.update(vocab_size=100, max_position_embeddings=64)
    names, bounds = ["input_ids", "attention_mask"], {}
    if family == "bert":
        model = transformers.BertModel(transformers.BertConfig(**shared, attn_implementation="eager"))
        names.append("token_type_ids")
        bounds["token_type_ids"] = 2
    elif family == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False, attn_implementation="eager"
        )
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(**shared, num_key_value_heads=2, use_cache=False, attn_implementation="eager")
        model = transformers.LlamaForCausalLM(config)
    model.eval()

    class Tuple(torch.nn.Module):  # plain tensors out
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            out = self.inner(**dict(zip(names, args)), return_dict=True)
            return tuple(v for k, v in out.items() if k in ("last_hidden_state", "pooler_output", "logits"))

    args = tuple(
        torch.randint(0, 2, (2, 5)) if n != "attention_mask" else torch.ones(2, 5, dtype=torch.int64) for n in names
    )
    dynamic = {n: {0: "batch", 1: "seq"} for n in names}
    torch.onnx.export(Tuple(model), args, path, input_names=names, dynamic_axes=dynamic, opset_version=14, dynamo=False)
    return bounds


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "float16"])
@pytest.mark.parametrize("family", list(HF_CASES))
def test_transformers_optimized_by_onnxruntime(tmp_path, family, precision):
    pytest.importorskip("transformers")
    from onnxruntime.transformers.optimizer import optimize_model

    model_type, fused = HF_CASES[family]
    exported = str(tmp_path / "exported.onnx")
    bounds = export_transformer(family, exported)
    optimized = optimize_model(exported, model_type=model_type, num_heads=4, hidden_size=32, opt_level=0)
    if precision == "float16":
        optimized.convert_float_to_float16(keep_io_types=False)
    optimized.save_model_to_file(str(tmp_path / "optimized.onnx"))  # (which adds the com.microsoft opset)
    model = onnx.load(str(tmp_path / "optimized.onnx"))
    written = {n.op_type for n in model.graph.node}
    assert fused <= written, written
    tolerances = {"atol": 1e-5, "rtol": 1e-4} if precision == "float32" else {"atol": 1e-3, "rtol": 1e-2}
    run_job(tmp_path, model, batch_sizes=[1, 3], int_bounds=bounds, dims={"seq": 5}, **tolerances)
