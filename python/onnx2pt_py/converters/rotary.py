"""RotaryEmbedding (opset 23): rotary position embeddings (RoPE).

X is (batch, heads, seq, head_size), or (batch, seq, heads * head_size) with
the `num_heads` attribute. The first `rotary_embedding_dim` features of each
head (all of them by default) are rotated pairwise, the rest pass through.
Pairs are (i, i + dim/2) by default and (2i, 2i + 1) when `interleaved`.
cos/sin caches are (max_position, dim/2) indexed by `position_ids`, or
already (batch, seq, dim/2) when `position_ids` is omitted.
"""

import torch

from ._common import Module, register, result


class OnnxRotaryEmbedding(Module):
    def __init__(self, interleaved, rotary_embedding_dim, num_heads):
        super().__init__()
        self.interleaved = bool(interleaved)
        self.rotary_embedding_dim = rotary_embedding_dim
        self.num_heads = num_heads

    def forward(self, x, cos_cache, sin_cache, position_ids=None):
        original_shape = x.shape
        if x.dim() == 4:
            x = x.transpose(1, 2)  # (batch, seq, heads, head_size)
        elif x.dim() == 3:
            if not self.num_heads:
                raise ValueError("RotaryEmbedding: a 3-D input needs the num_heads attribute")
            x = x.reshape(x.shape[0], x.shape[1], self.num_heads, -1)
        else:
            raise ValueError(f"RotaryEmbedding: input must be 3-D or 4-D, got shape {list(original_shape)}")
        head_size = x.shape[-1]
        dim = self.rotary_embedding_dim or head_size
        if position_ids is not None:
            cos_cache = cos_cache[position_ids]
            sin_cache = sin_cache[position_ids]
        if cos_cache.shape[-1] != dim // 2 or sin_cache.shape[-1] != dim // 2:
            raise ValueError(
                f"RotaryEmbedding: cos/sin caches have {cos_cache.shape[-1]}/{sin_cache.shape[-1]} features, expected {dim // 2}"
            )
        cos = cos_cache.unsqueeze(2)  # (batch, seq, 1, dim/2)
        sin = sin_cache.unsqueeze(2)
        rotate, keep = x[..., :dim], x[..., dim:]
        if self.interleaved:
            x1, x2 = rotate[..., 0::2], rotate[..., 1::2]
        else:
            x1, x2 = rotate[..., : dim // 2], rotate[..., dim // 2 :]
        real = cos * x1 - sin * x2
        imag = sin * x1 + cos * x2
        if self.interleaved:
            rotated = torch.stack((real, imag), dim=-1).reshape(rotate.shape)
        else:
            rotated = torch.cat((real, imag), dim=-1)
        out = torch.cat((rotated, keep), dim=-1)
        if len(original_shape) == 3:
            return out.reshape(original_shape)
        return out.transpose(1, 2)


@register("RotaryEmbedding", [23])
def convert_rotary_embedding(node, graph):
    module = OnnxRotaryEmbedding(
        node.attributes.get("interleaved", 0),
        node.attributes.get("rotary_embedding_dim", 0),
        node.attributes.get("num_heads", 0),
    )
    return result(module, node)
