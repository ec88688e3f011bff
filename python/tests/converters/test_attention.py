import numpy as np
import pytest
from convert_check import check, make_model, random
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
