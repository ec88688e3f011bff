import io

import numpy as np
import onnx2torch
import pytest
import torch
from convert_check import assert_same, check, make_model, random, run_torch
from onnx import helper


def _node_model(op, names, feeds, outputs, opset, **attrs):
    """A one-node model over `names` (an empty name leaves an input out),
    each output through an Identity so that each is a graph output of its own."""
    raw = [f"{o}_raw" for o in outputs]
    nodes = [helper.make_node(op, names, raw, **attrs)]
    nodes += [helper.make_node("Identity", [r], [o]) for r, o in zip(raw, outputs)]
    return make_model(nodes, feeds, outputs, opset)


# --- CausalConvWithState ------------------------------------------------------


def _conv_feeds(batch=2, channels=3, length=6, k=4, bias=False, past=False, dtype=np.float32):
    feeds = {"x": random((batch, channels, length), dtype, seed=1), "w": random((channels, 1, k), dtype, seed=2)}
    if bias:
        feeds["b"] = random((channels,), dtype, seed=3)
    if past:
        feeds["past"] = random((batch, channels, k - 1), dtype, seed=4)
    return feeds


def _conv_model(feeds, **attrs):
    names = ["x", "w", "b" if "b" in feeds else "", "past" if "past" in feeds else ""]
    while names[-1] == "":
        names.pop()
    return _node_model("CausalConvWithState", names, feeds, ["y", "state"], 27, **attrs)


@pytest.mark.parametrize("k, length", [(4, 6), (4, 2), (4, 1), (2, 5), (1, 3)])  # 2, 1: shorter than k - 1
@pytest.mark.parametrize("bias, past", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("activation", ["none", "silu", "swish"])
def test_causal_conv(k, length, bias, past, activation):
    feeds = _conv_feeds(length=length, k=k, bias=bias, past=past)
    check(_conv_model(feeds, activation=activation), feeds)


@pytest.mark.parametrize("activation", ["none", "silu"])
def test_causal_conv_float16(activation):
    feeds = _conv_feeds(bias=True, past=True, dtype=np.float16)
    check(_conv_model(feeds, activation=activation), feeds, atol=2e-3, rtol=2e-3)


def test_causal_conv_default_activation_is_none():
    feeds = _conv_feeds()
    y, _ = check(_conv_model(feeds), feeds)
    assert (y < 0).any()  # no SiLU applied


def test_causal_conv_steps_chain():
    # Decoding in two steps, the first step's present_state passed on, gives
    # the output of one step over the whole input.
    feeds = _conv_feeds(length=7, bias=True, past=True)
    whole, whole_state = run_torch(_conv_model(feeds, activation="silu"), feeds)
    first = dict(feeds, x=feeds["x"][:, :, :5])
    y1, state1 = run_torch(_conv_model(first, activation="silu"), first)
    second = dict(feeds, x=feeds["x"][:, :, 5:], past=state1)
    y2, state2 = run_torch(_conv_model(second, activation="silu"), second)
    assert_same([whole, whole_state], [np.concatenate([y1, y2], axis=2), state2])


def test_causal_conv_refuses_unknown_activation():
    feeds = _conv_feeds()
    model = _conv_model(feeds)
    model.graph.node[0].attribute.append(helper.make_attribute("activation", "gelu"))
    with pytest.raises(ValueError, match="activation"):
        onnx2torch.convert(model)


# --- LinearAttention ------------------------------------------------------------

RULES = ["linear", "gated", "delta", "gated_delta"]


def _linear_feeds(rule, batch=2, steps=5, hq=4, hkv=2, d_k=3, d_v=5, past=False, decay="key", beta="head",
                  dtype=np.float32, state_dtype=None):  # fmt: skip
    feeds = {
        "q": random((batch, steps, hq * d_k), dtype, seed=1),
        "k": random((batch, steps, hkv * d_k), dtype, seed=2),
        "v": random((batch, steps, hkv * d_v), dtype, seed=3),
    }
    if rule in ("delta", "gated_delta"):  # the delta rules expect L2-normalised keys
        k = feeds["k"].reshape(batch, steps, hkv, d_k).astype(np.float32)
        feeds["k"] = (k / np.linalg.norm(k, axis=-1, keepdims=True)).reshape(batch, steps, -1).astype(dtype)
    if past:
        feeds["past"] = (random((batch, hkv, d_k, d_v), seed=4) * 0.5).astype(state_dtype or dtype)
    if rule in ("gated", "gated_delta"):
        width = hkv * d_k if decay == "key" else hkv
        feeds["decay"] = (-np.abs(random((batch, steps, width), seed=5)) * 0.3).astype(dtype)
    if rule in ("delta", "gated_delta"):
        feeds["beta"] = random((batch, steps, hkv if beta == "head" else 1), dtype, seed=6, low=0.0, high=1.0)
    return feeds


def _linear_model(feeds, hq=4, hkv=2, **attrs):
    names = [n if n in feeds else "" for n in ("q", "k", "v", "past", "decay", "beta")]
    while names[-1] == "":
        names.pop()
    return _node_model("LinearAttention", names, feeds, ["y", "state"], 27, q_num_heads=hq, kv_num_heads=hkv, **attrs)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("past", [False, True])
@pytest.mark.parametrize("hq, hkv", [(2, 2), (4, 2), (3, 1)])  # multi-head, grouped, multi-query
def test_linear_attention(rule, past, hq, hkv):
    feeds = _linear_feeds(rule, hq=hq, hkv=hkv, past=past)
    check(_linear_model(feeds, hq, hkv, update_rule=rule), feeds)


@pytest.mark.parametrize("rule", ["gated", "gated_delta"])
def test_linear_attention_per_head_decay(rule):
    feeds = _linear_feeds(rule, decay="head", past=True)
    check(_linear_model(feeds, update_rule=rule), feeds)


@pytest.mark.parametrize("rule", ["delta", "gated_delta"])
def test_linear_attention_shared_beta(rule):
    feeds = _linear_feeds(rule, beta="shared")
    check(_linear_model(feeds, update_rule=rule), feeds)


def test_linear_attention_default_rule_is_gated_delta():
    feeds = _linear_feeds("gated_delta", past=True)
    check(_linear_model(feeds), feeds)


@pytest.mark.parametrize("scale", [0.25, 2.0])
def test_linear_attention_scale(scale):
    feeds = _linear_feeds("linear")
    check(_linear_model(feeds, update_rule="linear", scale=scale), feeds)


@pytest.mark.parametrize("steps", [1, 9])
def test_linear_attention_lengths(steps):
    feeds = _linear_feeds("gated_delta", steps=steps, past=True)
    check(_linear_model(feeds, update_rule="gated_delta"), feeds)


def test_linear_attention_float16():
    feeds = _linear_feeds("gated_delta", past=True, dtype=np.float16)
    check(_linear_model(feeds, update_rule="gated_delta"), feeds, atol=2e-3, rtol=2e-3)


def test_linear_attention_float32_state_with_float16_activations():
    # The state may be wider than the activations; present_state keeps its type.
    feeds = _linear_feeds("gated", past=True, dtype=np.float16, state_dtype=np.float32)
    y, state = check(_linear_model(feeds, update_rule="gated"), feeds, atol=2e-3, rtol=2e-3)
    assert y.dtype == np.float16 and state.dtype == np.float32


@pytest.mark.parametrize("rule", RULES)
def test_linear_attention_steps_chain(rule):
    # A prefill then a decode step, the state passed on, equals one prefill.
    feeds = _linear_feeds(rule, steps=6, past=True)
    whole, whole_state = run_torch(_linear_model(feeds, update_rule=rule), feeds)
    per_step = [n for n in ("q", "k", "v", "decay", "beta") if n in feeds]
    first = dict(feeds, **{n: feeds[n][:, :4] for n in per_step})
    y1, state1 = run_torch(_linear_model(first, update_rule=rule), first)
    second = dict(feeds, past=state1, **{n: feeds[n][:, 4:] for n in per_step})
    y2, state2 = run_torch(_linear_model(second, update_rule=rule), second)
    assert_same([whole, whole_state], [np.concatenate([y1, y2], axis=1), state2])


def _with_rule(model, rule):
    # after the model is made: ONNX's shape inference refuses it too
    for attribute in model.graph.node[0].attribute:
        if attribute.name == "update_rule":
            attribute.s = rule.encode()
    return model


@pytest.mark.parametrize(
    "made_as, rule, message",
    [
        ("linear", "gated", "requires decay"),
        ("linear", "delta", "requires beta"),
        ("gated", "linear", "forbids decay"),
        ("gated_delta", "gated", "forbids beta"),
    ],
)
def test_linear_attention_refuses_inputs_the_rule_does_not_fit(made_as, rule, message):
    feeds = _linear_feeds(made_as)
    model = _with_rule(_linear_model(feeds, update_rule=made_as), rule)
    with pytest.raises(ValueError, match=message):
        onnx2torch.convert(model)


def test_linear_attention_refuses_unknown_rule():
    feeds = _linear_feeds("linear")
    model = _with_rule(_linear_model(feeds, update_rule="linear"), "mamba")
    with pytest.raises(ValueError, match="update_rule"):
        onnx2torch.convert(model)


def test_linear_attention_refuses_heads_that_do_not_group():
    feeds = _linear_feeds("linear", hq=3, hkv=3)
    model = _linear_model(feeds, 3, 3, update_rule="linear")
    for attribute in model.graph.node[0].attribute:
        if attribute.name == "kv_num_heads":
            attribute.i = 2
    with pytest.raises(ValueError, match="multiple"):
        onnx2torch.convert(model)


# --- TensorScatter ----------------------------------------------------------------


def _scatter_model(feeds, **attrs):
    names = ["past", "update"] + (["indices"] if "indices" in feeds else [])
    return _node_model("TensorScatter", names, feeds, ["present"], 24, **attrs)


def _scatter_feeds(shape, axis, length, indices, dtype=np.float32):
    update_shape = list(shape)
    update_shape[axis] = length
    feeds = {"past": random(shape, dtype, seed=1), "update": random(update_shape, dtype, seed=2)}
    if indices is not None:
        feeds["indices"] = np.array(indices, np.int64)
    return feeds


@pytest.mark.parametrize(
    "shape, axis, length, indices",
    [
        ((2, 3, 6, 4), -2, 2, [1, 4]),
        ((2, 3, 6, 4), 2, 1, [5, 0]),
        ((2, 3, 6, 4), -2, 6, [0, 0]),  # the whole cache
        ((2, 6, 3, 4), 1, 3, [3, 2]),  # the sequence axis right after the batch
        ((2, 3, 4, 6), -1, 2, [4, 1]),  # the last axis
        ((3, 5, 2), -2, 2, [0, 3, 1]),
        ((2, 3, 6, 4), -2, 2, None),  # write_indices absent: zeros
    ],
)
@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter(shape, axis, length, indices, mode):
    feeds = _scatter_feeds(shape, axis, length, indices)
    check(_scatter_model(feeds, axis=axis, mode=mode), feeds)


@pytest.mark.parametrize("indices", [[5, 3], [4, 6], [9, 13]])  # 9, 13: past the cache length
def test_tensor_scatter_circular_wraps(indices):
    feeds = _scatter_feeds((2, 3, 6, 4), -2, 3, indices)
    present = check(_scatter_model(feeds, mode="circular"), feeds)[0]
    assert not np.array_equal(present, feeds["past"])


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint16, np.bool_, np.float16, np.float64])
def test_tensor_scatter_types(dtype):
    feeds = _scatter_feeds((2, 2, 5, 3), -2, 2, [2, 3], dtype)
    check(_scatter_model(feeds), feeds)


def test_tensor_scatter_default_axis_and_mode():
    feeds = _scatter_feeds((2, 3, 6, 4), -2, 2, [1, 4])
    check(_scatter_model(feeds), feeds)


def test_tensor_scatter_refuses_batch_axis():
    feeds = _scatter_feeds((2, 3, 4), -2, 3, [0, 0])
    model = _scatter_model(feeds)
    model.graph.node[0].attribute.append(helper.make_attribute("axis", 0))  # after shape inference
    with pytest.raises(ValueError, match="axis cannot be 0"):
        run_torch(model, feeds)


def test_tensor_scatter_refuses_unknown_mode():
    feeds = _scatter_feeds((2, 3, 6, 4), -2, 2, [1, 4])
    with pytest.raises(ValueError, match="mode"):
        onnx2torch.convert(_scatter_model(feeds, mode="ring"))


# --- saving ----------------------------------------------------------------------


def test_saved_and_reloaded_state_model_runs():
    # A decode step of a Gated DeltaNet layer: conv with state, then linear
    # attention with state; the whole GraphModule pickles.
    batch, steps, heads, d = 2, 3, 2, 4
    feeds = {
        "x": random((batch, heads * d, steps), seed=1),
        "conv_past": random((batch, heads * d, 3), seed=2),
        "past": random((batch, heads, d, d), seed=3) * 0.1,
        "decay": -np.abs(random((batch, steps, heads), seed=4)) * 0.2,
        "beta": random((batch, steps, heads), seed=5, low=0.0, high=1.0),
    }
    nodes = [
        helper.make_node("CausalConvWithState", ["x", "w", "", "conv_past"], ["c", "conv_state"], activation="silu"),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 1]),
        helper.make_node(
            "LinearAttention",
            ["t", "t", "t", "past", "decay", "beta"],
            ["y_raw", "state"],
            q_num_heads=2,
            kv_num_heads=2,
        ),
        helper.make_node("Identity", ["y_raw"], ["y"]),
        helper.make_node("Identity", ["conv_state"], ["conv_state_out"]),
        helper.make_node("Identity", ["state"], ["state_out"]),
    ]
    model = make_model(
        nodes, feeds, ["y", "conv_state_out", "state_out"], 27, initializers={"w": random((heads * d, 1, 4), seed=6)}
    )
    module = onnx2torch.convert(model)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=False).eval()
    names = ["x", "conv_past", "past", "decay", "beta"]
    with torch.no_grad():
        got = [o.numpy() for o in reloaded(*[torch.from_numpy(feeds[n]) for n in names])]
    check(model, feeds)
    assert_same(run_torch(model, feeds), got)
