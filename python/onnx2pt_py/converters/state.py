"""Ops that carry state between decoding steps: CausalConvWithState (27),
LinearAttention (27) and TensorScatter (24).

- CausalConvWithState: a depthwise causal Conv1d over past_state (zeros when
  absent) followed by the input, with an optional fused SiLU; present_state
  is the last k - 1 positions of that concatenation.
- LinearAttention: the recurrence of the update rule ('linear', 'gated',
  'delta', 'gated_delta') run token by token, in float32 as the reference
  does; the state of a key/value head is read by its group of query heads
  (h0, h0, h1, h1, ...).
- TensorScatter: writes `update` into the cache at each batch's write index
  along `axis`, modulo the cache length in 'circular' mode.
"""

import math

import torch
import torch.nn.functional as F

from ._common import Module, normalize_axis, present, register, result_skipping_absent

_ACTIVATIONS = ("none", "silu", "swish")


class OnnxCausalConvWithState(Module):
    def __init__(self, silu):
        super().__init__()
        self.silu = silu

    def forward(self, x, weight, bias=None, past_state=None):
        if x.dim() != 3 or weight.dim() != 3 or weight.shape[1] != 1:
            raise ValueError(
                f"CausalConvWithState: input must be (batch, channels, length) and weight (channels, 1, k), "
                f"got {list(x.shape)} and {list(weight.shape)}"
            )
        channels, k = x.shape[1], weight.shape[2]
        if past_state is None:
            past_state = x.new_zeros((x.shape[0], channels, k - 1))
        padded = torch.cat((past_state, x), dim=2)
        y = F.conv1d(padded, weight, bias, groups=channels)
        if self.silu:  # in float32 for half inputs, as the reference does
            y = F.silu(y.float()).to(x.dtype)
        # The last k - 1 positions: past values too when the input is shorter.
        return y, padded[:, :, x.shape[2] :]


@register("CausalConvWithState", [27])
def convert_causal_conv_with_state(node, graph):
    activation = node.attributes.get("activation", "none")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"CausalConvWithState: activation must be one of {_ACTIVATIONS}, got {activation!r}")
    return result_skipping_absent(OnnxCausalConvWithState(activation != "none"), node)


_UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")


def _heads(x, num_heads):
    # (batch, time, heads * size) -> (batch, heads, time, size), in float32
    return x.reshape(x.shape[0], x.shape[1], num_heads, -1).transpose(1, 2).float()


class OnnxLinearAttention(Module):
    def __init__(self, q_num_heads, kv_num_heads, update_rule, scale):
        super().__init__()
        self.q_num_heads, self.kv_num_heads = q_num_heads, kv_num_heads
        self.gated = update_rule in ("gated", "gated_delta")
        self.delta = update_rule in ("delta", "gated_delta")
        self.scale = scale

    def forward(self, query, key, value, past_state=None, decay=None, beta=None):
        batch, steps = query.shape[0], query.shape[1]
        hq, hkv = self.q_num_heads, self.kv_num_heads
        group = hq // hkv
        d_k = query.shape[2] // hq
        d_v = value.shape[2] // hkv
        # Query head h reads the state of key/value head h // group.
        q = _heads(query, hq).reshape(batch, hkv, group, steps, d_k)
        k, v = _heads(key, hkv), _heads(value, hkv)
        if self.gated:
            if decay.shape[2] not in (hkv, hkv * d_k):
                raise ValueError(f"LinearAttention: decay's last dimension must be {hkv} or {hkv * d_k}")
            # (batch, kv heads, time, 1 or d_k): per head or per key feature
            decay = _heads(decay, hkv).exp()
        if self.delta:
            if beta.shape[2] not in (hkv, 1):
                raise ValueError(f"LinearAttention: beta's last dimension must be {hkv} or 1")
            beta = beta.float().transpose(1, 2).unsqueeze(-1)  # (batch, kv heads or 1, time, 1)
        if past_state is None:
            state = query.new_zeros((batch, hkv, d_k, d_v), dtype=torch.float32)
            state_dtype = query.dtype
        else:
            if tuple(past_state.shape) != (batch, hkv, d_k, d_v):
                raise ValueError(
                    f"LinearAttention: past_state is {list(past_state.shape)}, expected {[batch, hkv, d_k, d_v]}"
                )
            state, state_dtype = past_state.float(), past_state.dtype
        scale = self.scale if self.scale else 1.0 / math.sqrt(d_k)

        outputs = []
        for t in range(steps):
            k_t, v_t = k[:, :, t], v[:, :, t]
            if self.gated:
                state = state * decay[:, :, t].unsqueeze(-1)
            if self.delta:  # write the error against what the state recalls for k_t
                recalled = torch.matmul(k_t.unsqueeze(-2), state).squeeze(-2)
                v_t = beta[:, :, t] * (v_t - recalled)
            state = state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
            outputs.append(torch.matmul(q[:, :, :, t], state) * scale)  # (batch, kv heads, group, d_v)
        y = torch.stack(outputs, dim=1).reshape(batch, steps, hq * d_v)
        return y.to(query.dtype), state.to(state_dtype)


@register("LinearAttention", [27])
def convert_linear_attention(node, graph):
    a = node.attributes
    rule = a.get("update_rule", "gated_delta")
    if rule not in _UPDATE_RULES:
        raise ValueError(f"LinearAttention: update_rule must be one of {_UPDATE_RULES}, got {rule!r}")
    q_heads, kv_heads = a.get("q_num_heads"), a.get("kv_num_heads")
    if not q_heads or not kv_heads or q_heads < 0 or kv_heads < 0 or q_heads % kv_heads:
        raise ValueError(
            f"LinearAttention: q_num_heads ({q_heads}) must be a positive multiple of kv_num_heads ({kv_heads})"
        )
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    # The reference refuses a decay or beta the rule does not use, as well as a missing one.
    if present(node, 4) != gated:
        raise ValueError(f"LinearAttention: update_rule {rule!r} {'requires' if gated else 'forbids'} decay")
    if present(node, 5) != delta:
        raise ValueError(f"LinearAttention: update_rule {rule!r} {'requires' if delta else 'forbids'} beta")
    module = OnnxLinearAttention(q_heads, kv_heads, rule, a.get("scale", 0.0))
    return result_skipping_absent(module, node)


class OnnxTensorScatter(Module):
    def __init__(self, axis, circular):
        super().__init__()
        self.axis, self.circular = axis, circular

    def forward(self, past_cache, update, write_indices=None):
        axis = normalize_axis(self.axis, past_cache.dim())
        if axis == 0:
            raise ValueError("TensorScatter: axis cannot be 0, the batch dimension")
        batch, length = past_cache.shape[0], update.shape[axis]
        if write_indices is None:
            write_indices = torch.zeros(batch, dtype=torch.int64, device=past_cache.device)
        # index[b, ..., s, ...] = write_indices[b] + s along axis
        index = write_indices.reshape(batch, 1) + torch.arange(length, device=past_cache.device)
        if self.circular:
            index = index % past_cache.shape[axis]
        index = index.reshape([batch] + [1] * (axis - 1) + [length] + [1] * (past_cache.dim() - axis - 1))
        index = index.expand(update.shape)
        dtype = past_cache.dtype
        if dtype.is_floating_point and dtype.itemsize == 1:  # float8 has no scatter kernel: move the bytes
            return past_cache.view(torch.uint8).scatter(axis, index, update.view(torch.uint8)).view(dtype)
        return past_cache.scatter(axis, index, update)


@register("TensorScatter", [24])
def convert_tensor_scatter(node, graph):
    mode = node.attributes.get("mode", "linear")
    if mode not in ("linear", "circular"):
        raise ValueError(f"TensorScatter: mode must be 'linear' or 'circular', got {mode!r}")
    module = OnnxTensorScatter(node.attributes.get("axis", -2), mode == "circular")
    return result_skipping_absent(module, node)
