"""Attention (opsets 23, 24, 25): scaled dot-product attention with optional
mask, causal masking, KV cache, grouped/multi-query heads, softcap and the
debug output `qk_matmul_output`.

Semantics follow the ONNX spec and its reference implementation:
- 3-D Q/K/V are (batch, seq, heads * head_size) and split with the
  `q_num_heads` / `kv_num_heads` attributes; the output goes back to 3-D;
- Q and K are each scaled by sqrt(scale) (scale defaults to 1/sqrt(head_size));
- past_key/past_value are concatenated in front of K/V (they are the
  present_key/present_value outputs);
- the attention bias is the sum of the mask's bias (a bool mask gives 0 /
  -inf, a numeric one is added as is; one shorter than the keys is padded
  with False / -inf), the causal bias (query i sees key j iff j <= i + offset,
  offset being the past length, or per batch nonpad_kv_seqlen - q_len for an
  external cache), the sliding window (25) and the padding given by
  nonpad_kv_seqlen (24);
- softcap (softcap * tanh(x / softcap)) comes before the bias;
- a query row whose bias is -inf everywhere gives zeros, not NaN;
- fewer KV heads than query heads repeat each KV head (h0, h0, h1, h1, ...).

FlexAttention (ai.onnx.preview 1): the same attention over 4-D inputs, with
no mask but the optional subgraphs score_mod (applied to the scaled scores)
and prob_mod (to the probabilities), each converted as a model of its own;
the scores are in the softmax precision (float32 for inputs narrower than
float32 by default), and a row of -inf scores gives NaN as in the reference.
"""

import math

import onnx
import torch

from ._common import Module, output_count, register, result, torch_dtype
from .control import convert_subgraph


def _neg_inf_where(allowed, dtype, device):
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(allowed, zero, torch.full((), float("-inf"), dtype=dtype, device=device))


def _to_heads(x, num_heads):
    # (batch, seq, heads * size) -> (batch, heads, seq, size)
    return x.reshape(x.shape[0], x.shape[1], num_heads, -1).transpose(1, 2)


def _repeat_kv(k, v, q_heads, op):
    """K and V with each head repeated for its group of query heads."""
    kv_heads = k.shape[1]
    if q_heads == kv_heads:
        return k, v
    if q_heads % kv_heads:
        raise ValueError(f"{op}: {q_heads} query heads is not a multiple of {kv_heads} key/value heads")
    return k.repeat_interleave(q_heads // kv_heads, dim=1), v.repeat_interleave(q_heads // kv_heads, dim=1)


class OnnxAttention(Module):
    def __init__(
        self,
        outputs,
        scale=None,
        is_causal=False,
        q_num_heads=None,
        kv_num_heads=None,
        softcap=0.0,
        softmax_dtype=None,
        qk_matmul_output_mode=0,
        left_window_size=-1,
        right_window_size=-1,
    ):
        super().__init__()
        self.outputs = outputs
        self.scale = scale
        self.is_causal = bool(is_causal)
        self.q_num_heads = q_num_heads
        self.kv_num_heads = kv_num_heads
        self.softcap = softcap
        self.softmax_dtype = softmax_dtype
        self.qk_matmul_output_mode = qk_matmul_output_mode
        self.left_window_size = left_window_size
        self.right_window_size = right_window_size

    def forward(self, q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None):
        if (past_key is None) != (past_value is None):
            raise ValueError("Attention: past_key and past_value must be given together")
        if nonpad_kv_seqlen is not None and past_key is not None:
            raise ValueError("Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value")
        three_d = q.dim() == 3
        if three_d:
            if not self.q_num_heads or not self.kv_num_heads:
                raise ValueError("Attention: 3-D inputs need the q_num_heads and kv_num_heads attributes")
            q = _to_heads(q, self.q_num_heads)
            k = _to_heads(k, self.kv_num_heads)
            v = _to_heads(v, self.kv_num_heads)
        dtype, device = q.dtype, q.device
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[3])
        root = torch.tensor(math.sqrt(scale), dtype=dtype, device=device)

        if past_key is not None:
            k = torch.cat((past_key, k), dim=2)
            v = torch.cat((past_value, v), dim=2)
        present_key, present_value = k, v

        q_len, kv_len = q.shape[2], k.shape[2]
        bias = self._bias(attn_mask, past_key, nonpad_kv_seqlen, q_len, kv_len, dtype, device)

        k, v = _repeat_kv(k, v, q.shape[1], "Attention")
        qk = torch.matmul(q * root, (k * root).transpose(2, 3))
        qk_out = qk
        if self.softcap > 0:
            qk = self.softcap * torch.tanh(qk / self.softcap)
            if self.qk_matmul_output_mode == 1:
                qk_out = qk
        scores = qk + bias
        if self.qk_matmul_output_mode == 2:
            qk_out = scores
        if self.softmax_dtype is not None:
            scores = scores.to(self.softmax_dtype)
        probs = torch.softmax(scores, dim=-1)
        # Rows with no attendable key: zeros. Decided on the bias, as the
        # reference does, so a NaN score cannot hide it.
        fully_masked = torch.isneginf(bias.amax(dim=-1, keepdim=True))
        probs = torch.where(fully_masked, torch.zeros((), dtype=probs.dtype, device=device), probs).to(dtype)
        if self.qk_matmul_output_mode == 3:
            qk_out = probs

        y = torch.matmul(probs, v)
        if three_d:
            y = y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)
        if self.outputs == 1:
            return y
        return (y, present_key, present_value, qk_out.to(dtype))[: self.outputs]

    def _bias(self, attn_mask, past_key, nonpad_kv_seqlen, q_len, kv_len, dtype, device):
        bias = torch.zeros((q_len, kv_len), dtype=dtype, device=device)
        if attn_mask is not None:
            short = kv_len - attn_mask.shape[-1]
            if attn_mask.dtype == torch.bool:
                if short > 0:
                    attn_mask = torch.nn.functional.pad(attn_mask, (0, short), value=False)
                bias = bias + _neg_inf_where(attn_mask, dtype, device)
            else:
                if short > 0:
                    attn_mask = torch.nn.functional.pad(attn_mask.to(dtype), (0, short), value=float("-inf"))
                bias = bias + attn_mask.to(dtype)

        windowed = self.left_window_size >= 0 or self.right_window_size >= 0
        if self.is_causal or windowed:
            i = torch.arange(q_len, device=device).reshape(q_len, 1)
            j = torch.arange(kv_len, device=device).reshape(1, kv_len)
            if past_key is not None:
                position = i + past_key.shape[2]  # (q, 1)
            elif nonpad_kv_seqlen is not None:
                # An external cache: per batch, the queries are the last q_len valid tokens.
                position = i + (nonpad_kv_seqlen.reshape(-1, 1, 1, 1) - q_len)  # (batch, 1, q, 1)
            else:
                position = i
            allowed = torch.ones(torch.broadcast_shapes(position.shape, j.shape), dtype=torch.bool, device=device)
            if self.is_causal:
                allowed = allowed & (j <= position)
            if self.left_window_size >= 0:
                allowed = allowed & (position - j <= self.left_window_size)
            if self.right_window_size >= 0:
                allowed = allowed & (j - position <= self.right_window_size)
            bias = bias + _neg_inf_where(allowed, dtype, device)

        if nonpad_kv_seqlen is not None:
            valid = torch.arange(kv_len, device=device).reshape(1, kv_len) < nonpad_kv_seqlen.reshape(-1, 1)
            bias = bias + _neg_inf_where(valid, dtype, device).reshape(-1, 1, 1, kv_len)
        return bias


@register("Attention", [23, 24, 25])
def convert_attention(node, graph):
    a = node.attributes
    qk_mode = a.get("qk_matmul_output_mode", 0)
    if qk_mode not in (0, 1, 2, 3):
        raise ValueError(f"Attention: qk_matmul_output_mode must be 0..3, got {qk_mode}")
    softmax_precision = a.get("softmax_precision")
    module = OnnxAttention(
        outputs=output_count(node),
        scale=a.get("scale"),
        is_causal=a.get("is_causal", 0),
        q_num_heads=a.get("q_num_heads"),
        kv_num_heads=a.get("kv_num_heads"),
        softcap=a.get("softcap", 0.0),
        softmax_dtype=None
        if softmax_precision is None
        else torch_dtype(softmax_precision, "Attention softmax_precision"),
        qk_matmul_output_mode=qk_mode,
        left_window_size=a.get("left_window_size", -1),
        right_window_size=a.get("right_window_size", -1),
    )
    return result(module, node)


_FLEX_SOFTMAX_TYPES = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.DOUBLE,
)


class OnnxFlexAttention(Module):
    """score_mod and prob_mod are converted subgraphs (or None); each takes
    the outer values at its picks, out of those after Q, K and V."""

    def __init__(self, scale, softmax_dtype, score_mod, score_picks, prob_mod, prob_picks):
        super().__init__()
        self.scale, self.softmax_dtype = scale, softmax_dtype
        self.score_mod, self.score_picks = score_mod, score_picks
        self.prob_mod, self.prob_picks = prob_mod, prob_picks

    def forward(self, q, k, v, *outer):
        if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
            raise ValueError(
                f"FlexAttention: Q, K and V must be 4-D, got {list(q.shape)}, {list(k.shape)}, {list(v.shape)}"
            )
        k, v = _repeat_kv(k, v, q.shape[1], "FlexAttention")
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[3])
        # Q and K each scaled by sqrt(scale), taken in float32 as the reference does
        root = torch.tensor(scale, dtype=torch.float32, device=q.device).sqrt().to(q.dtype)
        dtype = self.softmax_dtype
        if dtype is None:
            dtype = torch.float32 if q.dtype.itemsize < 4 else q.dtype
        scores = torch.matmul(q * root, (k * root).transpose(2, 3)).to(dtype)
        if self.score_mod is not None:
            scores = self.score_mod(scores, *[outer[i] for i in self.score_picks])[0].to(dtype)
        probs = torch.softmax(scores, dim=-1)
        if self.prob_mod is not None:
            probs = self.prob_mod(probs, *[outer[i] for i in self.prob_picks])[0].to(dtype)
        return torch.matmul(probs, v.to(dtype)).to(v.dtype)


@register("FlexAttention", [1], domain="ai.onnx.preview")
def convert_flex_attention(node, graph):
    a = node.attributes
    precision = a.get("softmax_precision")
    if precision is not None and precision not in _FLEX_SOFTMAX_TYPES:
        raise ValueError(
            f"FlexAttention: softmax_precision must be float, float16, bfloat16 or double, got {precision}"
        )
    softmax_dtype = None if precision is None else torch_dtype(precision, "FlexAttention softmax_precision")
    mods, names = {}, []
    for attribute in node.proto.attribute:
        if attribute.name in ("score_mod", "prob_mod") and attribute.type == onnx.AttributeProto.GRAPH:
            if len(attribute.g.input) != 1 or len(attribute.g.output) != 1:
                raise ValueError(f"FlexAttention: {attribute.name} must have one input and one output")
            mods[attribute.name] = convert_subgraph(attribute.g, graph, f"FlexAttention {attribute.name}")
            names += mods[attribute.name][1]
    names = list(dict.fromkeys(names))  # the outer values the subgraphs read, each passed once
    score_mod, score_names = mods.get("score_mod", (None, []))
    prob_mod, prob_names = mods.get("prob_mod", (None, []))
    module = OnnxFlexAttention(
        a.get("scale"),
        softmax_dtype,
        score_mod,
        [names.index(n) for n in score_names],
        prob_mod,
        [names.index(n) for n in prob_names],
    )
    return result(module, node, inputs=[*node.input_values, *names])
