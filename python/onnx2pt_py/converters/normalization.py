"""Normalizations onnx2torch 1.5.15 lacks: RMSNormalization (23),
GroupNormalization (18, 21), MeanVarianceNormalization (9, 13),
LpNormalization (1, 22), BatchNormalization 6/7 (inference) of old
opset-6/7 files and BatchNormalization 14/15 in training mode. LayerNormalization has a single schema (17), which
onnx2torch has.
"""

import torch
from onnx import defs

from ._common import (
    Module,
    constant,
    normalize_axis,
    output_count,
    present,
    register,
    register_unchecked,
    replace,
    replaced,
    result,
    static_shape,
    torch_dtype,
)


def _stash_dtype(node):
    stash_type = node.attributes.get("stash_type", 1)
    return torch_dtype(stash_type, f"{node.operation_type} stash_type")


class OnnxRMSNormalization(Module):
    """X / sqrt(mean(X^2 over axis..rank-1) + epsilon) * scale, stage one
    (up to the division) in the stash type, then cast back to X's type."""

    def __init__(self, axis, epsilon, stash_dtype):
        super().__init__()
        self.axis = axis
        self.epsilon = epsilon
        self.stash_dtype = stash_dtype

    def forward(self, x, scale):
        axis = normalize_axis(self.axis, x.dim())
        xu = x.to(self.stash_dtype)
        dims = list(range(axis, x.dim()))
        mean_square = torch.mean(xu * xu, dim=dims, keepdim=True)
        epsilon = torch.tensor(self.epsilon, dtype=torch.float32).to(self.stash_dtype)
        normalized = (xu / torch.sqrt(mean_square + epsilon)).to(x.dtype)
        return normalized * scale


@register("RMSNormalization", [23])
def convert_rms_normalization(node, graph):
    module = OnnxRMSNormalization(
        node.attributes.get("axis", -1), node.attributes.get("epsilon", 1e-5), _stash_dtype(node)
    )
    return result(module, node)


class OnnxGroupNormalization(Module):
    """Statistics per instance and group of channels. Version 18 has one
    scale/bias per group, 21 one per channel and the `stash_type` attribute."""

    def __init__(self, num_groups, epsilon, stash_dtype, per_group_affine):
        super().__init__()
        self.num_groups = num_groups
        self.epsilon = epsilon
        self.stash_dtype = stash_dtype
        self.per_group_affine = per_group_affine

    def forward(self, x, scale, bias):
        n, c = x.shape[0], x.shape[1]
        groups = x.to(self.stash_dtype).reshape(n, self.num_groups, -1)
        mean = groups.mean(dim=2, keepdim=True)
        var = (groups * groups).mean(dim=2, keepdim=True) - mean * mean
        epsilon = torch.tensor(self.epsilon, dtype=torch.float32).to(self.stash_dtype)
        normalized = ((groups - mean) / torch.sqrt(var + epsilon)).reshape(x.shape).to(x.dtype)
        if self.per_group_affine:
            scale = scale.repeat_interleave(c // self.num_groups)
            bias = bias.repeat_interleave(c // self.num_groups)
        shape = [1, c] + [1] * (x.dim() - 2)
        return normalized * scale.to(x.dtype).reshape(shape) + bias.to(x.dtype).reshape(shape)


@register("GroupNormalization", [18])
def convert_group_normalization_18(node, graph):
    module = OnnxGroupNormalization(
        node.attributes["num_groups"], node.attributes.get("epsilon", 1e-5), torch.float32, per_group_affine=True
    )
    return result(module, node)


@register("GroupNormalization", [21])
def convert_group_normalization(node, graph):
    module = OnnxGroupNormalization(
        node.attributes["num_groups"], node.attributes.get("epsilon", 1e-5), _stash_dtype(node), per_group_affine=False
    )
    return result(module, node)


class OnnxMeanVarianceNormalization(Module):
    """(X - mean) / (sqrt(E[X^2] - mean^2) + 1e-9) over `axes`, as the
    function body computes it (the epsilon is added to the deviation)."""

    def __init__(self, axes):
        super().__init__()
        self.axes = axes

    def forward(self, x):
        dims = sorted({normalize_axis(a, x.dim()) for a in self.axes})
        mean = torch.mean(x, dim=dims, keepdim=True)
        variance = torch.mean(x * x, dim=dims, keepdim=True) - mean * mean
        return (x - mean) / (torch.sqrt(variance) + 1e-9)


@register("MeanVarianceNormalization", [9, 13])
def convert_mean_variance_normalization(node, graph):
    return result(OnnxMeanVarianceNormalization(list(node.attributes.get("axes", [0, 2, 3]))), node)


class OnnxLpNormalization(Module):
    def __init__(self, axis, p):
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"LpNormalization: p must be 1 or 2, got {p}")
        self.axis = axis
        self.p = p

    def forward(self, x):
        axis = normalize_axis(self.axis, x.dim())
        if self.p == 1:
            norm = x.abs().sum(dim=axis, keepdim=True)
        else:
            norm = torch.sqrt((x * x).sum(dim=axis, keepdim=True))
        # A zero vector stays zero, as in onnxruntime and the reference
        # implementation (not 0 / 0 = NaN).
        return x / torch.where(norm == 0, torch.ones_like(norm), norm)


@register("LpNormalization", [1, 22])
def convert_lp_normalization(node, graph):
    return result(OnnxLpNormalization(node.attributes.get("axis", -1), node.attributes.get("p", 2)), node)


class OnnxBatchNormInference(Module):
    """(X - mean) / sqrt(var + epsilon) * scale + B with the given statistics.

    With `spatial` 1 the parameters have shape (C); with 0 (opset 6/7 only)
    they hold one value per activation, shape (C, D1, ...)."""

    def __init__(self, epsilon, spatial):
        super().__init__()
        self.epsilon = epsilon
        self.spatial = spatial

    def forward(self, x, scale, bias, mean, var):
        if self.spatial:
            shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        else:
            shape = [1] + list(x.shape[1:])
        return self.normalize(x, scale, bias, mean, var, self.epsilon, shape)

    @staticmethod
    def normalize(x, scale, bias, mean, var, epsilon, shape):
        scale, bias, mean, var = (t.reshape(shape) for t in (scale, bias, mean, var))
        return (x - mean) / torch.sqrt(var + epsilon) * scale + bias


@register("BatchNormalization", [6, 7])
def convert_batch_norm_old(node, graph):
    if output_count(node) > 1:
        raise NotImplementedError(
            "BatchNormalization 6/7 with the training outputs (mean, var, saved_mean, saved_var) is not implemented"
        )
    module = OnnxBatchNormInference(node.attributes.get("epsilon", 1e-5), node.attributes.get("spatial", 1))
    return result(module, node)


class OnnxBatchNormTraining(Module):
    """BatchNormalization with training_mode=1: normalized with the batch's
    own mean and (biased) variance over every axis but the channels, and the
    running statistics updated with `momentum`, as its outputs."""

    def __init__(self, epsilon, momentum):
        super().__init__()
        self.epsilon, self.momentum = epsilon, momentum

    def forward(self, x, scale, bias, mean, var):
        axes = [0] + list(range(2, x.dim()))
        batch_mean = x.mean(dim=axes)
        batch_var = x.var(dim=axes, unbiased=False)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        y = OnnxBatchNormInference.normalize(x, scale, bias, batch_mean, batch_var, self.epsilon, shape)
        running_mean = mean * self.momentum + batch_mean * (1 - self.momentum)
        running_var = var * self.momentum + batch_var * (1 - self.momentum)
        return y, running_mean, running_var


@replace("BatchNormalization", [14, 15])
def convert_batch_norm(node, graph):
    """onnx2torch's refuses training_mode=1 (the running statistics outputs)."""
    if not node.attributes.get("training_mode", 0):
        return replaced("BatchNormalization", 15)(node, graph)
    epsilon, momentum = node.attributes.get("epsilon", 1e-5), node.attributes.get("momentum", 0.9)
    return result(OnnxBatchNormTraining(epsilon, momentum), node)


class OnnxLayerNormalization(Module):
    """LayerNormalization with all three outputs (Y, Mean, InvStdDev), the
    statistics in the stash type over axis..rank-1 (kept as size-1
    dimensions), and scale and bias broadcast as ONNX broadcasts them."""

    def __init__(self, axis, epsilon, stash_dtype, outputs):
        super().__init__()
        self.axis, self.epsilon, self.stash_dtype, self.outputs = axis, epsilon, stash_dtype, outputs

    def forward(self, x, scale, bias=None):
        axis = normalize_axis(self.axis, x.dim())
        dims = tuple(range(axis, x.dim()))
        stashed = x.to(self.stash_dtype)
        mean = stashed.mean(dim=dims, keepdim=True)
        centred = stashed - mean
        inv_std = torch.rsqrt((centred * centred).mean(dim=dims, keepdim=True) + self.epsilon)
        y = (centred * inv_std).to(x.dtype) * scale
        if bias is not None:
            y = y + bias
        return y if self.outputs == 1 else (y, mean, inv_std)[: self.outputs]


@replace("LayerNormalization", [17])
def convert_layer_normalization(node, graph):
    """onnx2torch's converter returns Y alone, and needs scale and bias of
    the normalised shape itself: it stays for that case (an nn.LayerNorm,
    trainable as usual); this one takes the rest."""
    used = max(i + 1 for i, name in enumerate(node.output_values) if name)
    scale, bias = constant(node, 1, graph), constant(node, 2, graph)
    shape = static_shape(node.input_values[0], graph)
    axis = node.attributes.get("axis", -1)
    plain = used == 1 and shape is not None and scale is not None and (bias is not None or not present(node, 2))
    if plain:
        normalized = list(shape[normalize_axis(axis, len(shape)) :])
        plain = list(scale.shape) == normalized and (bias is None or list(bias.shape) == normalized)
    if plain:
        return replaced("LayerNormalization", 17)(node, graph)
    stash = _stash_dtype(node)
    module = OnnxLayerNormalization(axis, node.attributes.get("epsilon", 1e-5), stash, used)
    inputs = [name for name in node.input_values if name]
    return result(module, node, inputs=inputs)


# onnxruntime's own LayerNormalization before opset 17, and its
# SimplifiedLayerNormalization (RMS) at any, both in the ONNX domain (see
# model_info.ONNXRUNTIME_ONNX_DOMAIN_OPS): onnx2torch looks them up at the
# model's opset, for want of a schema.
@register_unchecked("LayerNormalization", range(1, 17))
def convert_onnxruntime_layer_normalization(node, graph):
    return convert_layer_normalization(node, graph)


@register_unchecked("SimplifiedLayerNormalization", range(1, defs.onnx_opset_version() + 1))
def convert_simplified_layer_normalization(node, graph):
    if len([name for name in node.output_values if name]) > 1:
        raise NotImplementedError("SimplifiedLayerNormalization with its inv_std_var output")
    a = node.attributes
    module = OnnxRMSNormalization(a.get("axis", -1), a.get("epsilon", 1e-5), _stash_dtype(node))
    return result(module, node)
