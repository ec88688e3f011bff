"""onnxruntime's fused transformer ops of the com.microsoft domain, as its
transformer optimizer and optimum write them: Attention,
MultiHeadAttention, GroupQueryAttention, DecoderMaskedMultiHeadAttention,
EmbedLayerNormalization, RotaryEmbedding, BiasAdd and BiasSplitGelu.

Semantics are onnxruntime's contrib-op documentation and its CPU kernels
(the tests compare with them; BiasAdd and BiasSplitGelu have CUDA kernels
only, and are compared with the documented formula). Refused by name:
Attention's rotary and buffer-shared past, past_sequence_length and
beam-search cache_indirection inputs, CUDA's 3 * batch + 2 mask form,
GroupQueryAttention's quantized caches, per-head Q/K normalization,
right-padded query chunks and sliding window cache, RotaryEmbedding's
packed batching and caches wider than rotary_embedding_dim / 2.

Masks follow onnxruntime: a key a padding mask excludes gets
mask_filter_value (default -10000) added to its score, not -inf, so a row
with every key masked still averages over them; a key causality excludes
gets the lowest float, which replaces the padding value.

Values that set a length (total_sequence_length, past_sequence_length)
stay tensors, so that a trace or torch.export keeps them variable.
"""

import math

import torch
import torch.nn.functional as F

from ._common import Module, present, register, result_skipping_absent, static_shape

MICROSOFT = "com.microsoft"


def _used_outputs(node):
    """How many outputs to return: up to the last one the graph names."""
    return max(i + 1 for i, name in enumerate(node.output_values) if name)


def _to_heads(x, num_heads):
    # (batch, seq, heads * size) -> (batch, heads, seq, size)
    return x.reshape(x.shape[0], x.shape[1], num_heads, -1).transpose(1, 2)


def _from_heads(x):
    # (batch, heads, seq, size) -> (batch, seq, heads * size)
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def _refuse_inputs(node, names):
    """NotImplementedError for optional inputs a graph gives that are not
    implemented: names maps input index -> what to call it."""
    for index, name in names.items():
        if present(node, index):
            raise NotImplementedError(f"{node.operation_type} with the {name} input")


def _padding_bias(mask, batch, q_len, total, past_len, filter_value, dtype):
    """onnxruntime's key padding masks as an additive (batch, 1, q, total)
    bias: 0 to keep a key, filter_value to drop it. Forms: (batch) key
    lengths (right padding), (2 * batch) ends then starts (left padding),
    (batch, total) and (batch, q, total) with 0 for a dropped key, and
    Megatron's (batch, 1, max, max), whose rows past_len.. are used."""
    device = mask.device
    if mask.dim() == 1:
        if mask.shape[0] not in (batch, 2 * batch):
            raise NotImplementedError(f"a 1-D mask of {mask.shape[0]} values for batch {batch} (3 * batch + 2 form)")
        j = torch.arange(total, device=device)
        keep = j < mask[:batch].reshape(batch, 1)
        if mask.shape[0] == 2 * batch:
            keep = keep & (j >= mask[batch:].reshape(batch, 1))
        keep = keep.reshape(batch, 1, 1, total)
    elif mask.dim() == 2:
        keep = (mask > 0).reshape(batch, 1, 1, total)
    elif mask.dim() == 3:
        keep = (mask > 0).unsqueeze(1)
    elif mask.dim() == 4:
        keep = mask[:, :, past_len : past_len + q_len, :total] > 0
    else:
        raise ValueError(f"a mask of rank {mask.dim()}")
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(keep, zero, torch.full((), filter_value, dtype=dtype, device=device))


def _causal(bias, q_len, total, past_len, device):
    """bias with the keys after each query's position (past_len + i) set to
    the lowest float, as onnxruntime's unidirectional masking does. Its
    kernels leave the last query row unmasked: the same thing where the
    keys are the past and the queries' own (total = past_len + q_len), all
    keys where there are more (cross attention)."""
    i = torch.arange(q_len, device=device).reshape(q_len, 1)
    j = torch.arange(total, device=device).reshape(1, total)
    lowest = torch.full((), torch.finfo(bias.dtype).min, dtype=bias.dtype, device=device)
    return torch.where((j <= i + past_len) | (i == q_len - 1), bias, lowest)


def _attend(q, k, v, scale, biases=(), softcap=0.0, sink=None):
    """softmax(scale * q @ k^T (softcapped) + biases) @ v over (batch,
    heads, seq, size) tensors, in float32 like onnxruntime's CPU kernels;
    sink: one extra logit per head in the softmax's denominator. The biases
    (None for an absent one) are added one by one, the mask first, as
    onnxruntime does. (A score beside the -10000 filter value keeps about
    three decimals in float32: in a row whose keys are all masked, the
    rounding differs from onnxruntime's by up to about 1e-3 of the result,
    both being that far from the exact one.)
    Returns the result in q's dtype and the scores before the softmax."""
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if softcap > 0:
        scores = softcap * torch.tanh(scores / softcap)
    for bias in biases:
        if bias is not None:
            scores = scores + bias.float()
    return torch.matmul(_softmax(scores, sink), v.float()).to(q.dtype), scores


def _softmax(scores, sink=None):
    """softmax over the last axis of (batch, heads, q, k) scores; sink: one
    more logit per head, counted in the denominator only."""
    if sink is None:
        return torch.softmax(scores, dim=-1)
    extra = sink.float().reshape(1, -1, 1, 1).expand(scores.shape[0], -1, scores.shape[2], 1)
    return torch.softmax(torch.cat((scores, extra), dim=-1), dim=-1)[..., :-1]


def _rotate(x, cos, sin, interleaved):
    """Rotary embedding of x (batch, heads, seq, size) with cos and sin of
    (batch or 1, seq, rotary_dim / 2): pairs (i, i + dim/2), or (2i, 2i+1)
    when interleaved; features past rotary_dim pass through."""
    half = cos.shape[-1]
    cos, sin = cos.unsqueeze(1).to(x.dtype), sin.unsqueeze(1).to(x.dtype)
    rotate, keep = x[..., : 2 * half], x[..., 2 * half :]
    if interleaved:
        x1, x2 = rotate[..., 0::2], rotate[..., 1::2]
    else:
        x1, x2 = rotate[..., :half], rotate[..., half:]
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    if interleaved:
        rotated = torch.stack((real, imag), dim=-1).reshape(rotate.shape)
    else:
        rotated = torch.cat((real, imag), dim=-1)
    return torch.cat((rotated, keep), dim=-1)


def _scale(node):
    """The scale attribute; None (1 / sqrt(head size)) where absent or 0,
    which onnxruntime's kernels also read as the default."""
    return node.attributes.get("scale") or None


def _float_attribute(node, name, default):
    value = node.attributes.get(name)
    return default if value is None else float(value)


class OnnxMsAttention(Module):
    """Attention: Q, K and V projected from one input by merged weights
    (input @ weights + bias, split by qkv_hidden_sizes), num_heads heads,
    the legacy past state (2, batch, heads, past, size) concatenated before
    K and V (and returned, stacked, as present)."""

    def __init__(self, num_heads, sizes, unidirectional, scale, filter_value, outputs):
        super().__init__()
        self.num_heads, self.sizes, self.unidirectional = num_heads, sizes, unidirectional
        self.scale, self.filter_value, self.outputs = scale, filter_value, outputs

    def forward(self, x, weights, bias=None, mask_index=None, past=None, attention_bias=None):
        qkv = torch.matmul(x, weights)
        if bias is not None:
            qkv = qkv + bias
        sizes = self.sizes or [weights.shape[1] // 3] * 3
        q, k, v = (_to_heads(t, self.num_heads) for t in torch.split(qkv, sizes, dim=-1))
        past_len = 0
        if past is not None:
            past_len = past.shape[3]
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        batch, q_len, total = q.shape[0], q.shape[2], k.shape[2]
        bias_ = None
        if mask_index is not None:
            bias_ = _padding_bias(mask_index, batch, q_len, total, past_len, self.filter_value, torch.float32)
        if self.unidirectional:
            base = bias_ if bias_ is not None else torch.zeros((1, 1, q_len, total), device=x.device)
            bias_ = _causal(base, q_len, total, past_len, x.device)
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[3])
        y = _from_heads(_attend(q, k, v, scale, (bias_, attention_bias))[0])
        if self.outputs == 1:
            return y
        return y, torch.stack((k, v))


@register("Attention", [1], domain=MICROSOFT)
def convert_ms_attention(node, graph):
    a = node.attributes
    if a.get("do_rotary", 0):
        raise NotImplementedError("Attention with do_rotary=1 (onnxruntime's CPU kernel refuses it too)")
    if a.get("past_present_share_buffer", 0):
        raise NotImplementedError("Attention with past_present_share_buffer=1")
    _refuse_inputs(node, {6: "past_sequence_length (buffer sharing)"})
    sizes = [int(s) for s in a.get("qkv_hidden_sizes", [])] or None
    module = OnnxMsAttention(
        int(a["num_heads"]),
        sizes,
        bool(a.get("unidirectional", 0)),
        _scale(node),
        _float_attribute(node, "mask_filter_value", -10000.0),
        _used_outputs(node),
    )
    return result_skipping_absent(module, node, inputs=node.input_values[:6])


class OnnxMultiHeadAttention(Module):
    """MultiHeadAttention: Q, K, V already projected (the bias of the
    projection still to add). K and V come as (batch, kv_seq, hidden), packed
    in the key as (batch, kv_seq, heads, 2, size), packed with Q in the
    query as (batch, seq, heads, 3, size), or as (batch, heads, kv_seq,
    size) ready to use (cross attention's cached keys: no bias added).
    past_key and past_value are concatenated before K and V. The fourth
    output is the scores before the softmax, masks and bias added."""

    def __init__(self, num_heads, unidirectional, scale, filter_value, outputs):
        super().__init__()
        self.num_heads, self.unidirectional = num_heads, unidirectional
        self.scale, self.filter_value, self.outputs = scale, filter_value, outputs

    def forward(
        self,
        query,
        key=None,
        value=None,
        bias=None,
        key_padding_mask=None,
        attention_bias=None,
        past_key=None,
        past_value=None,
    ):
        heads = self.num_heads
        if key is None:  # packed Q, K, V: (batch, seq, heads, 3, size)
            q, k, v = (t.transpose(1, 2) for t in query.unbind(dim=3))
        elif key.dim() == 5:  # packed K, V: (batch, kv_seq, heads, 2, size)
            q = _to_heads(query, heads)
            k, v = (t.transpose(1, 2) for t in key.unbind(dim=3))
        else:
            q = _to_heads(query, heads)
            k, v = key, value
            if key.dim() == 3:
                k, v = _to_heads(key, heads), _to_heads(value, heads)
        if bias is not None:
            hidden = q.shape[1] * q.shape[3]
            q = q + bias[:hidden].reshape(1, heads, 1, -1)
            if key is None or key.dim() != 4:
                k = k + bias[hidden : 2 * hidden].reshape(1, heads, 1, -1)
                v = v + bias[2 * hidden :].reshape(1, heads, 1, -1)
        past_len = 0
        if past_key is not None:
            past_len = past_key.shape[2]
            k, v = torch.cat((past_key, k), dim=2), torch.cat((past_value, v), dim=2)
        batch, q_len, total = q.shape[0], q.shape[2], k.shape[2]
        bias_ = None
        if key_padding_mask is not None:
            bias_ = _padding_bias(key_padding_mask, batch, q_len, total, past_len, self.filter_value, torch.float32)
        if self.unidirectional:
            base = bias_ if bias_ is not None else torch.zeros((1, 1, q_len, total), device=query.device)
            bias_ = _causal(base, q_len, total, past_len, query.device)
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[3])
        y, qk = _attend(q, k, v, scale, (bias_, attention_bias))
        y = _from_heads(y)
        if self.outputs == 1:
            return y
        return (y, k, v, qk.to(query.dtype))[: self.outputs]


@register("MultiHeadAttention", [1], domain=MICROSOFT)
def convert_multi_head_attention(node, graph):
    a = node.attributes
    _refuse_inputs(node, {8: "past_sequence_length (buffer sharing)", 9: "cache_indirection (beam search)"})
    module = OnnxMultiHeadAttention(
        int(a["num_heads"]),
        bool(a.get("unidirectional", 0)),
        _scale(node),
        _float_attribute(node, "mask_filter_value", -10000.0),
        _used_outputs(node),
    )
    return result_skipping_absent(module, node, inputs=node.input_values[:8])


class OnnxDecoderMaskedMultiHeadAttention(Module):
    """DecoderMaskedMultiHeadAttention: one query token. Self attention
    takes Q, K, V (batch, 1, hidden), or packed in the query, plus the
    projection's bias; with past_present_share_buffer the caches are
    (batch, heads, max_seq, size) buffers holding past_sequence_length
    tokens, the new K/V written at that row, else they are concatenated.
    Cross attention takes the keys and values as (batch, heads, kv_seq,
    size) and gives no present outputs. mask_index (batch, total) drops a
    key where 0; attention_bias is added."""

    def __init__(self, num_heads, scale, filter_value, share_buffer, outputs):
        super().__init__()
        self.num_heads, self.scale, self.filter_value = num_heads, scale, filter_value
        self.share_buffer, self.outputs = share_buffer, outputs

    def forward(
        self,
        query,
        key=None,
        value=None,
        mask_index=None,
        attention_bias=None,
        past_key=None,
        past_value=None,
        past_sequence_length=None,
        beam_width=None,
        cache_indirection=None,
        bias=None,
    ):
        heads = self.num_heads
        cross = key is not None and key.dim() == 4
        if key is None:  # packed Q, K, V of one width: (batch, 1, 3 * hidden)
            query, key, value = query.chunk(3, dim=2)
        if bias is not None:
            hidden = query.shape[2]
            query = query + bias[:hidden]
            if not cross:
                key, value = key + bias[hidden : 2 * hidden], value + bias[2 * hidden :]
        q = _to_heads(query, heads)
        present_k = present_v = unused = None
        if cross:
            k, v = key, value
        else:
            k, v = _to_heads(key, heads), _to_heads(value, heads)
            if past_key is not None and self.share_buffer:
                # the buffer's rows after the new one stay out, by a bias: a
                # slice to past_sequence_length + 1 would fix it in a trace
                past_len = past_sequence_length.reshape(()).to(torch.int64)
                j = torch.arange(past_key.shape[2], device=q.device)
                row = (j == past_len).reshape(1, 1, -1, 1)
                k, v = torch.where(row, k, past_key), torch.where(row, v, past_value)
                unused = torch.where(j <= past_len, 0.0, float("-inf"))
            elif past_key is not None:
                k, v = torch.cat((past_key, k), dim=2), torch.cat((past_value, v), dim=2)
            present_k, present_v = k, v
        batch, length = q.shape[0], k.shape[2]
        j = torch.arange(length, device=q.device)
        bias_ = None
        if mask_index is not None:  # (batch, total): total is past_sequence_length + 1
            width = mask_index.shape[-1] if mask_index.dim() > 1 else length
            bias_ = _padding_bias(mask_index, batch, 1, width, 0, self.filter_value, torch.float32)
            bias_ = _fit_last(bias_, j, 0.0)
        if attention_bias is not None:
            attention_bias = _fit_last(attention_bias.float(), j, 0.0)
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[3])
        y = _from_heads(_attend(q, k, v, scale, (bias_, attention_bias, unused))[0])
        if self.outputs == 1:
            return y
        return (y, present_k, present_v)[: self.outputs]


@register("DecoderMaskedMultiHeadAttention", [1], domain=MICROSOFT)
def convert_decoder_masked_multi_head_attention(node, graph):
    a = node.attributes
    # (beam_width alone changes nothing: it serves cache_indirection)
    _refuse_inputs(node, {9: "cache_indirection (beam search)"})
    if a.get("output_qk", 0):
        raise NotImplementedError("DecoderMaskedMultiHeadAttention with output_qk=1")
    share = bool(a.get("past_present_share_buffer", 0))
    if share and not present(node, 7):
        raise ValueError("DecoderMaskedMultiHeadAttention: past_present_share_buffer needs past_sequence_length")
    module = OnnxDecoderMaskedMultiHeadAttention(
        int(a["num_heads"]),
        _scale(node),
        _float_attribute(node, "mask_filter_value", -10000.0),
        share,
        _used_outputs(node),
    )
    return result_skipping_absent(module, node)


class OnnxGroupQueryAttention(Module):
    """GroupQueryAttention: num_heads query heads over kv_num_heads K/V
    heads (each shared by num_heads / kv_num_heads query heads), with a KV
    cache (batch, kv_heads, capacity, size).

    Batch entry b holds T = seqlens_k[b] + 1 tokens after this step, of
    which the last min(seq, T) are this step's: its P = T - min(seq, T)
    cached ones are kept and the new K/V written after them (a right-padded
    first prompt has P = 0 and T < seq; its padding rows are unspecified).
    present is max(total_sequence_length, capacity) long. Query row s sits
    at position P + s: it sees the keys up to it (causal), the last
    local_window_size of them (itself included) where that is set, and
    never those at or after T. With do_rotary, Q and K are rotated first, at
    P + s or at position_ids (of which a first prompt, seq ==
    total_sequence_length, reads the first alone and counts on from it for
    every entry, as onnxruntime does). Cache rows from P + seq on are zeros.
    qk_output 1 and 2 give the scores before and after the softmax, 0 where
    a key is not seen, over total_sequence_length keys."""

    def __init__(
        self, num_heads, kv_num_heads, scale, softcap, causal, window, rotary, interleaved, smooth, qk_output, outputs
    ):
        super().__init__()
        self.num_heads, self.kv_num_heads, self.scale, self.softcap = num_heads, kv_num_heads, scale, softcap
        self.causal, self.window, self.rotary, self.interleaved = causal, window, rotary, interleaved
        self.smooth, self.qk_output, self.outputs = smooth, qk_output, outputs

    def forward(
        self,
        query,
        key=None,
        value=None,
        past_key=None,
        past_value=None,
        seqlens_k=None,
        total_sequence_length=None,
        cos_cache=None,
        sin_cache=None,
        position_ids=None,
        attention_bias=None,
        head_sink=None,
    ):
        heads, kv_heads = self.num_heads, self.kv_num_heads
        if key is None:  # packed: (batch, seq, (heads + 2 * kv_heads) * size)
            size = query.shape[2] // (heads + 2 * kv_heads)
            query, key, value = torch.split(query, [heads * size, kv_heads * size, kv_heads * size], dim=2)
        q, k, v = _to_heads(query, heads), _to_heads(key, kv_heads), _to_heads(value, kv_heads)
        batch, seq, device = q.shape[0], q.shape[2], q.device
        total = seqlens_k.to(torch.int64).reshape(batch, 1) + 1  # T per batch entry
        past_len = torch.clamp(total - seq, min=0)  # P per batch entry
        s = torch.arange(seq, device=device).reshape(1, seq)
        # The cache's length comes from a value: kept a tensor, so that a
        # trace or an export does not fix it.
        total_length = total_sequence_length.reshape(()).to(torch.int64)
        capacity = past_key.shape[2] if past_key is not None else 0
        j = torch.arange(torch.clamp(total_length, min=capacity), device=device).reshape(1, -1)
        if self.rotary:
            positions = past_len + s
            if position_ids is not None:
                # a first prompt (the whole sequence new) counts from the first id alone
                first = position_ids.reshape(-1)[0] + s
                positions = torch.where(total_length == seq, first, position_ids)
            cos, sin = cos_cache[positions], sin_cache[positions]
            q, k = _rotate(q, cos, sin, self.interleaved), _rotate(k, cos, sin, self.interleaved)
        present_k, present_v = _write_cache(k, past_key, past_len, j), _write_cache(v, past_value, past_len, j)

        j = j.unsqueeze(1)  # (1, 1, length)
        position = (past_len + s).unsqueeze(2)  # (batch, seq, 1)
        allowed = j < total.unsqueeze(2)
        if self.causal:
            allowed = allowed & (j <= position)
        if self.window > 0:
            allowed = allowed & (j > position - self.window)
        bias = torch.where(allowed, 0.0, float("-inf")).unsqueeze(1)  # (batch, 1, seq, length)
        if attention_bias is not None:  # its last axis is total_sequence_length long
            attention_bias = _fit_last(attention_bias.float(), j.reshape(-1), 0.0)

        group = heads // kv_heads
        keys, values = present_k.repeat_interleave(group, dim=1), present_v.repeat_interleave(group, dim=1)
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[3])
        sink = head_sink if head_sink is not None else (torch.zeros(heads, device=device) if self.smooth else None)
        y, scores = _attend(q, keys, values, scale, (attention_bias, bias), self.softcap, sink)
        y = _from_heads(y)
        if self.outputs == 1:
            return y
        qk = None
        if self.qk_output:
            if self.qk_output == 2:
                scores = _softmax(scores, sink)
            qk = torch.where(allowed.unsqueeze(1), scores, 0.0)[..., : int(total_length)].to(query.dtype)
        return (y, present_k, present_v, qk)[: self.outputs]


def _write_cache(new, past, past_len, j):
    """The cache after a step, positions j (1, length): past's rows before
    P (past_len, per batch entry), the new rows at P.. P + seq, zeros after."""
    batch, kv_heads, seq, size = new.shape
    rows = new if past is None else torch.cat((past.to(new.dtype), new), dim=2)
    first_new = 0 if past is None else past.shape[2]  # where the new rows start in rows
    offset = j - past_len  # (batch, length): the new row a position takes
    index = torch.where(offset < 0, j, first_new + offset).clamp(0, rows.shape[2] - 1)
    taken = torch.gather(rows, 2, index.reshape(batch, 1, -1, 1).expand(-1, kv_heads, -1, size))
    keep = offset < seq if past is not None else (offset >= 0) & (offset < seq)
    return torch.where(keep.reshape(batch, 1, -1, 1), taken, 0.0)


def _fit_last(x, j, fill):
    """x's last axis cut or padded with fill to the positions j (1-D)."""
    width = x.shape[-1]
    taken = x.index_select(-1, j.clamp(max=width - 1))
    return torch.where(j < width, taken, fill)


@register("GroupQueryAttention", [1], domain=MICROSOFT)
def convert_group_query_attention(node, graph):
    a = node.attributes
    _refuse_inputs(
        node,
        {
            12: "k_scale (quantized KV cache)",
            13: "v_scale (quantized KV cache)",
            14: "q_norm_weight (per-head Q/K RMS normalization)",
            15: "k_norm_weight (per-head Q/K RMS normalization)",
            16: "query_seqlens (right-padded query chunks)",
        },
    )
    for name in ("k_quant_type", "v_quant_type"):
        kind = a.get(name, "NONE")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind != "NONE":
            raise NotImplementedError(f"GroupQueryAttention with {name}={kind} (quantized KV cache)")
    if a.get("sliding_window_cache", 0):
        raise NotImplementedError("GroupQueryAttention with sliding_window_cache=1")
    qk_output = a.get("qk_output", 0)
    if qk_output not in (0, 1, 2):
        raise NotImplementedError(f"GroupQueryAttention with qk_output={qk_output}")
    window = int(a.get("local_window_size", -1))
    if window == 0 or window < -1:
        raise NotImplementedError(f"GroupQueryAttention with local_window_size={window}")
    causal = a.get("causal", 1)
    if causal not in (0, 1):
        raise ValueError(f"GroupQueryAttention: causal must be 0 or 1, got {causal}")
    module = OnnxGroupQueryAttention(
        int(a["num_heads"]),
        int(a["kv_num_heads"]),
        _scale(node),
        float(a.get("softcap", 0.0)),
        bool(causal),
        window,
        bool(a.get("do_rotary", 0)),
        bool(a.get("rotary_interleaved", 0)),
        a.get("smooth_softmax", -1) == 1,
        qk_output,
        _used_outputs(node),
    )
    return result_skipping_absent(module, node, inputs=node.input_values[:12])


class OnnxMsRotaryEmbedding(Module):
    """RotaryEmbedding of the com.microsoft domain: input (batch, seq,
    hidden) or (batch, heads, seq, size), then position_ids, cos_cache,
    sin_cache. position_ids is (batch, seq), or one start position for
    every entry. Without num_heads, a head is as wide as twice the caches;
    rotary_embedding_dim (which needs num_heads) rotates only the first
    features of each head."""

    def __init__(self, num_heads, rotary_dim, interleaved):
        super().__init__()
        self.num_heads, self.rotary_dim, self.interleaved = num_heads, rotary_dim, interleaved

    def forward(self, x, position_ids, cos_cache, sin_cache):
        if self.rotary_dim and cos_cache.shape[1] != self.rotary_dim // 2:
            raise ValueError(_WIDE_CACHE.format(cos_cache.shape[1], self.rotary_dim))
        four_d = x.dim() == 4
        if four_d:
            heads = x
        else:
            size = x.shape[2] // self.num_heads if self.num_heads else 2 * cos_cache.shape[1]
            heads = _to_heads(x, x.shape[2] // size)
        seq = heads.shape[2]
        if position_ids.dim() < 2:  # a start position
            position_ids = position_ids.reshape(1, 1) + torch.arange(seq, device=x.device).reshape(1, seq)
        y = _rotate(heads, cos_cache[position_ids], sin_cache[position_ids], self.interleaved)
        return y if four_d else _from_heads(y)


# onnxruntime's kernel reads a cache row by row rotary_embedding_dim / 2
# apart, whatever its width: a wider cache (head_size / 2, which the
# documentation allows) gives rows that are not the positions'.
_WIDE_CACHE = (
    "RotaryEmbedding with cos/sin caches {} wide and rotary_embedding_dim {} (onnxruntime misreads such caches)"
)


@register("RotaryEmbedding", [1], domain=MICROSOFT)
def convert_ms_rotary_embedding(node, graph):
    a = node.attributes
    if a.get("is_packed_batching", 0):
        raise NotImplementedError("RotaryEmbedding with is_packed_batching=1")
    num_heads, rotary_dim = int(a.get("num_heads", 0)), int(a.get("rotary_embedding_dim", 0))
    if rotary_dim and not num_heads:
        raise ValueError("RotaryEmbedding: rotary_embedding_dim needs num_heads")
    cache = static_shape(node.input_values[2], graph)
    if rotary_dim and cache is not None and len(cache) == 2 and cache[1] != rotary_dim // 2:
        raise NotImplementedError(_WIDE_CACHE.format(cache[1], rotary_dim))
    # (the scale attribute is unused: onnxruntime's kernels ignore it too)
    module = OnnxMsRotaryEmbedding(num_heads, rotary_dim, bool(a.get("interleaved", 0)))
    return result_skipping_absent(module, node)


class OnnxEmbedLayerNormalization(Module):
    """EmbedLayerNormalization: word, position (position_ids, or 0..seq-1)
    and segment embeddings summed, then layer-normalised with gamma and
    beta. Outputs: the result; mask_index, the count of ones in each mask
    row (zeros without a mask); and the sum before normalisation."""

    def __init__(self, epsilon, outputs):
        super().__init__()
        self.epsilon, self.outputs = epsilon, outputs

    def forward(
        self,
        input_ids,
        segment_ids,
        word_embedding,
        position_embedding,
        segment_embedding,
        gamma,
        beta,
        mask=None,
        position_ids=None,
    ):
        batch, seq = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(seq, device=input_ids.device).reshape(1, seq)
        total = word_embedding[input_ids] + position_embedding[position_ids]
        if segment_ids is not None:
            total = total + segment_embedding[segment_ids]
        y = F.layer_norm(total.float(), (total.shape[-1],), gamma.float(), beta.float(), self.epsilon).to(total.dtype)
        if self.outputs == 1:
            return y
        if mask is None:
            mask_index = torch.zeros(batch, dtype=torch.int32, device=input_ids.device)
        else:
            mask_index = (mask == 1).sum(dim=1).to(torch.int32)
        return (y, mask_index, total)[: self.outputs]


@register("EmbedLayerNormalization", [1], domain=MICROSOFT)
def convert_embed_layer_normalization(node, graph):
    epsilon = _float_attribute(node, "epsilon", 1e-12)
    return result_skipping_absent(OnnxEmbedLayerNormalization(epsilon, _used_outputs(node)), node)


class OnnxBiasAdd(Module):
    """BiasAdd: X + bias + skip."""

    def forward(self, x, bias, skip):
        return x + bias + skip


@register("BiasAdd", [1], domain=MICROSOFT)
def convert_bias_add(node, graph):
    return result_skipping_absent(OnnxBiasAdd(), node)


class OnnxBiasSplitGelu(Module):
    """BiasSplitGelu: X + bias split in halves on the last axis, the left
    times the exact (erf) Gelu of the right, in float32."""

    def forward(self, x, bias):
        left, right = (x + bias).float().chunk(2, dim=-1)
        return (left * F.gelu(right)).to(x.dtype)


@register("BiasSplitGelu", [1], domain=MICROSOFT)
def convert_bias_split_gelu(node, graph):
    return result_skipping_absent(OnnxBiasSplitGelu(), node)
