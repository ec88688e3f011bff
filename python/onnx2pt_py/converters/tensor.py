"""Tensor ops onnx2torch 1.5.15 lacks: Hardmax, Trilu, Size, Dropout
(versions 1, 6, 7, 22), NonZero 9, Reshape 19+, Split 18, Pad 18+,
ScatterElements, OneHot, SpaceToDepth and Det, BitCast, Compress,
ReverseSequence, ScatterND 18 (and its reductions at every version),
CenterCropPad, Range 27, Unique; and where onnx2torch's differ from the
specification: Unsqueeze's negative axes and a scalar axes input, Pad 2's
fill value, Reshape 14's allowzero, Flatten at every axis, NonZero 13's layout, Shape's type
when the range is empty, GatherElements' and GatherND's negative indices
and GatherND's batch_dims, DepthToSpace's DCR mode, Range's output type,
Split's parts where the axis is empty (2, 11, 13)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    Module,
    as_int_list,
    constant,
    normalize_axis,
    output_count,
    register,
    replace,
    replaced,
    result,
    torch_dtype,
)


class OnnxHardmax(Module):
    """1 at the first maximum along the axis, 0 elsewhere.

    Before opset 13 the input is read as a 2-D matrix [prod(d < axis),
    prod(d >= axis)] and the maximum is taken over each whole row.
    """

    def __init__(self, axis, coerce_2d):
        super().__init__()
        self.axis = axis
        self.coerce_2d = coerce_2d

    def forward(self, x):
        if x.dim() == 0:
            return torch.ones_like(x)
        axis = normalize_axis(self.axis, x.dim())
        if self.coerce_2d:
            rows = x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
            return self._one_hot(rows, 1).reshape(x.shape)
        return self._one_hot(x, axis)

    @staticmethod
    def _one_hot(x, axis):
        if x.shape[axis] == 0:
            return torch.zeros_like(x)
        index = torch.argmax(x, dim=axis, keepdim=True)  # first maximum on ties
        return torch.zeros_like(x).scatter(axis, index, 1)


@register("Hardmax", [1, 11])
def convert_hardmax_v1(node, graph):
    return result(OnnxHardmax(node.attributes.get("axis", 1), coerce_2d=True), node)


@register("Hardmax", [13])
def convert_hardmax(node, graph):
    return result(OnnxHardmax(node.attributes.get("axis", -1), coerce_2d=False), node)


class OnnxTrilu(Module):
    def __init__(self, upper):
        super().__init__()
        self.upper = bool(upper)

    def forward(self, x, k=None):
        diagonal = 0 if k is None else int(k)
        return torch.triu(x, diagonal) if self.upper else torch.tril(x, diagonal)


@register("Trilu", [14])
def convert_trilu(node, graph):
    return result(OnnxTrilu(node.attributes.get("upper", 1)), node)


class OnnxSize(Module):
    def forward(self, x):
        return torch.tensor(x.numel(), dtype=torch.int64, device=x.device)


@register("Size", [1, 13, 19, 21, 23, 24, 25])
def convert_size(node, graph):
    return result(OnnxSize(), node)


class OnnxDropout(Module):
    """Dropout; the identity in inference.

    It drops when ONNX's `training_mode` input says so, or, without that
    input, when the torch module is in training mode (as onnx2torch's own
    Dropout does), so that a converted model can be fine-tuned. The optional
    mask is all True in inference (bool from opset 10, the input's type before).
    """

    def __init__(self, ratio, outputs, mask_like_input):
        super().__init__()
        self.ratio = ratio
        self.outputs = outputs
        self.mask_like_input = mask_like_input

    def forward(self, x, ratio=None, training_mode=None):
        p = self.ratio if ratio is None else float(ratio)
        training = self.training if training_mode is None else bool(training_mode)
        if training and p > 0:
            keep = torch.rand(x.shape, device=x.device) >= p
            out = x * keep / (1.0 - p)
        else:
            keep = torch.ones(x.shape, dtype=torch.bool, device=x.device)
            out = x
        if self.outputs == 1:
            return out
        return out, keep.to(x.dtype) if self.mask_like_input else keep


@register("Dropout", [1, 6, 7])
def convert_dropout_v1(node, graph):
    # `is_test` (1, 6) only said what inference already means.
    return result(OnnxDropout(node.attributes.get("ratio", 0.5), output_count(node), mask_like_input=True), node)


@register("Dropout", [22])
def convert_dropout(node, graph):
    # `seed` only matters for training-mode randomness, which nothing compares.
    return result(OnnxDropout(0.5, output_count(node), mask_like_input=False), node)


class OnnxNonZero(Module):
    """Indices of the non-zero elements, shape (rank, count)."""

    def forward(self, x):
        return torch.nonzero(x).transpose(0, 1)


@register("NonZero", [9])
@replace("NonZero", [13])
def convert_nonzero(node, graph):
    """onnx2torch's NonZero 13 returns torch.nonzero's (count, rank)."""
    return result(OnnxNonZero(), node)


class OnnxScatterElements(Module):
    """data with `updates` written (or combined, by `reduction`) at `indices`
    along `axis`; negative indices count from the end."""

    _REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}

    def __init__(self, axis, reduction):
        super().__init__()
        if reduction != "none" and reduction not in self._REDUCE:
            raise NotImplementedError(f"ScatterElements: reduction={reduction!r} is not implemented")
        self.axis = axis
        self.reduction = reduction

    def forward(self, data, indices, updates):
        axis = normalize_axis(self.axis, data.dim())
        indices = indices.to(torch.int64)
        indices = torch.where(indices < 0, indices + data.shape[axis], indices)
        if self.reduction == "none":
            return data.scatter(axis, indices, updates)
        return data.scatter_reduce(axis, indices, updates, self._REDUCE[self.reduction], include_self=True)


@register("ScatterElements", [11, 13, 16, 18])
def convert_scatter_elements(node, graph):
    a = node.attributes
    return result(OnnxScatterElements(a.get("axis", 0), a.get("reduction", "none")), node)


class OnnxOneHot(Module):
    """One-hot along a new axis; indices outside [-depth, depth) give all off."""

    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, indices, depth, values):
        depth = int(depth.reshape(-1)[0])
        indices = indices.to(torch.int64)
        indices = torch.where(indices < 0, indices + depth, indices)
        classes = torch.arange(depth, device=indices.device)
        hot = indices.unsqueeze(-1) == classes  # out-of-range indices match nothing
        axis = normalize_axis(self.axis, indices.dim() + 1)
        hot = hot.movedim(-1, axis)
        off, on = values.reshape(-1)[0], values.reshape(-1)[1]
        return torch.where(hot, on, off)


@register("OneHot", [9, 11, 28])
def convert_one_hot(node, graph):
    return result(OnnxOneHot(node.attributes.get("axis", -1)), node)


class OnnxSpaceToDepth(Module):
    """Blocks of blocksize x blocksize pixels moved into channels, ordered
    (row, column, channel) in DCR mode (the only one before opset 28) or
    (channel, row, column) in CRD mode."""

    def __init__(self, blocksize, mode):
        super().__init__()
        if mode not in ("DCR", "CRD"):
            raise ValueError(f"SpaceToDepth: mode must be DCR or CRD, got {mode!r}")
        self.blocksize = blocksize
        self.mode = mode

    def forward(self, x):
        b, c, h, w = x.shape
        bs = self.blocksize
        blocks = x.reshape(b, c, h // bs, bs, w // bs, bs)
        order = (0, 3, 5, 1, 2, 4) if self.mode == "DCR" else (0, 1, 3, 5, 2, 4)
        return blocks.permute(order).reshape(b, c * bs * bs, h // bs, w // bs)


@register("SpaceToDepth", [1, 13, 28])
def convert_space_to_depth(node, graph):
    return result(OnnxSpaceToDepth(node.attributes["blocksize"], node.attributes.get("mode", "DCR")), node)


class OnnxDet(Module):
    def forward(self, x):
        return torch.linalg.det(x)


@register("Det", [11, 22])
def convert_det(node, graph):
    return result(OnnxDet(), node)


class OnnxReshape(Module):
    """Reshape; a 0 in the shape copies the input's dimension, or with
    `allowzero` (which onnx2torch's Reshape 14 refuses) means a zero-size one."""

    def __init__(self, allowzero):
        super().__init__()
        self.allowzero = bool(allowzero)

    def forward(self, x, shape):
        sizes = [int(s) for s in shape.reshape(-1).tolist()]
        if not self.allowzero:
            sizes = [x.shape[i] if s == 0 else s for i, s in enumerate(sizes)]
        return x.reshape(sizes)


@register("Reshape", [19, 21, 23, 24, 25])
def convert_reshape(node, graph):
    return result(OnnxReshape(node.attributes.get("allowzero", 0)), node)


@replace("Reshape", [14])
def convert_reshape_14(node, graph):
    """onnx2torch's refuses allowzero=1, which torch's dynamo exporter writes
    on every Reshape, also where the shape is computed at run time."""
    if node.attributes.get("allowzero", 0):
        return convert_reshape(node, graph)
    return replaced("Reshape", 14)(node, graph)


class OnnxSplit(Module):
    """Split: sizes from the `split` input (13+) or attribute (2, 11), or
    else `num_outputs` (18; at other versions the node's output count) parts
    of ceil(dim / n) counted from the front and clamped to the axis, as the
    ONNX reference evaluator slices them: the last parts are short or empty
    (5 in 4 is [2, 2, 1, 0]). Before 18 the axis must split evenly; the
    reference's sizes hold there too."""

    def __init__(self, axis, num_outputs, outputs, split=None):
        super().__init__()
        self.axis = axis
        self.num_outputs = num_outputs
        self.outputs = outputs
        self.split = split

    def forward(self, x, split=None):
        axis = normalize_axis(self.axis, x.dim())
        if split is not None and split.numel() > 0:
            sizes = as_int_list(split)
        elif self.split:
            sizes = list(self.split)
        else:
            sizes = split_sizes(x.shape[axis], self.num_outputs or self.outputs)
        parts = torch.split(x, sizes, dim=axis)
        return parts[0] if self.outputs == 1 else tuple(parts)


def split_sizes(dim, n):
    """n parts of ceil(dim / n), the last ones short or empty."""
    part = -(-dim // n)
    return [max(0, min(part, dim - i * part)) for i in range(n)]


@register("Split", [18])
def convert_split(node, graph):
    a = node.attributes
    return result(OnnxSplit(a.get("axis", 0), a.get("num_outputs"), output_count(node)), node)


@replace("Split", [2, 11, 13])
def convert_split_13(node, graph):
    """onnx2torch's splits into parts of floor(dim / n), more parts than
    outputs where the axis does not split evenly, and one part of an empty
    axis (torch.split's chunking) where ONNX has one empty part an output."""
    a = node.attributes
    split = a.get("split")
    return result(OnnxSplit(a.get("axis", 0), None, output_count(node), list(split) if split else None), node)


def _source_index(positions, size, mode):
    """Where each position of a padded axis reads from the input axis."""
    if mode == "edge":
        return positions.clamp(0, size - 1)
    if mode == "wrap":
        return positions.remainder(size)
    period = 2 * (size - 1)  # reflect: mirrored on the first and last values
    if period == 0:
        return torch.zeros_like(positions)
    folded = positions.remainder(period)
    return torch.where(folded >= size, period - folded, folded)


class OnnxPad(Module):
    """Pad 18+: `pads` for the listed `axes` (all by default), negative pads
    crop; constant, reflect, edge and wrap (19) modes on any rank."""

    def __init__(self, mode):
        super().__init__()
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise NotImplementedError(f"Pad: mode={mode!r} is not implemented")
        self.mode = mode

    def forward(self, data, pads, constant_value=None, axes=None):
        rank = data.dim()
        pads = as_int_list(pads)
        axes = list(range(rank)) if axes is None else [normalize_axis(a, rank) for a in as_int_list(axes)]
        if len(pads) != 2 * len(axes):
            raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes")
        begin, end = [0] * rank, [0] * rank
        for i, axis in enumerate(axes):
            begin[axis], end[axis] = pads[i], pads[i + len(axes)]
        for axis in range(rank):  # crop first
            if begin[axis] < 0 or end[axis] < 0:
                start = max(0, -begin[axis])
                stop = data.shape[axis] - max(0, -end[axis])
                data = data.narrow(axis, start, stop - start)
        begin = [max(0, b) for b in begin]
        end = [max(0, e) for e in end]
        if self.mode == "constant":
            value = 0 if constant_value is None or constant_value.numel() == 0 else constant_value.reshape(-1)[0].item()
            flat = []
            for axis in reversed(range(rank)):  # F.pad lists the last axis first
                flat += [begin[axis], end[axis]]
            return F.pad(data, flat, value=value) if any(flat) else data
        for axis in range(rank):
            if begin[axis] or end[axis]:
                size = data.shape[axis]
                positions = torch.arange(-begin[axis], size + end[axis], device=data.device)
                data = data.index_select(axis, _source_index(positions, size, self.mode))
        return data


@register("Pad", [18, 19, 21, 23, 24, 25])
def convert_pad(node, graph):
    return result(OnnxPad(node.attributes.get("mode", "constant")), node)


class OnnxFlatten(Module):
    """x as a matrix: the dimensions before axis times each other, then the
    rest; axis 0 gives one row, axis = rank one column."""

    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        axis = self.axis + x.dim() if self.axis < 0 else self.axis
        return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@replace("Flatten", [9, 11, 13])
def convert_flatten(node, graph):
    """onnx2torch's fails for axis 0 and for negative axes at or before the
    first dimension (IndexError: Dimension out of range)."""
    axis = node.attributes.get("axis", 1)
    rank = _rank(node.input_values[0], graph)
    # nn.Flatten reads best, but flattens nothing from axis 1 of a vector.
    return result(nn.Flatten() if axis == 1 and rank is not None and rank >= 2 else OnnxFlatten(axis), node)


def _rank(name, graph):
    """A value's rank where the graph records it, else None."""
    info = graph.value_info.get(name)
    if info is None or not info.type.tensor_type.HasField("shape"):
        return None
    return len(info.type.tensor_type.shape.dim)


class OnnxBitCast(Module):
    """The same bits read as another type of the same width (little endian,
    as torch stores tensors on every platform it runs on)."""

    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return x.contiguous().view(self.dtype)


@register("BitCast", [26])
def convert_bitcast(node, graph):
    return result(OnnxBitCast(torch_dtype(node.attributes["to"], "BitCast to")), node)


class OnnxCompress(Module):
    """numpy.compress: the slices along axis where condition is true (the
    flattened input without an axis); a condition shorter than the axis
    leaves the rest out."""

    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, x, condition):
        if self.axis is None:
            x, axis = x.reshape(-1), 0
        else:
            axis = normalize_axis(self.axis, x.dim())
        kept = torch.nonzero(condition[: x.shape[axis]]).reshape(-1)
        return torch.index_select(x, axis, kept)


@register("Compress", [9, 11])
def convert_compress(node, graph):
    return result(OnnxCompress(node.attributes.get("axis")), node)


class OnnxReverseSequence(Module):
    """Along the time axis, each batch item's first sequence_lens[i] steps
    reversed, the rest as they were."""

    def __init__(self, batch_axis, time_axis):
        super().__init__()
        self.batch_axis, self.time_axis = batch_axis, time_axis

    def forward(self, x, lengths):
        steps = x.shape[self.time_axis]
        t = torch.arange(steps, device=x.device).unsqueeze(0)  # [1, time]
        n = lengths.to(torch.int64).unsqueeze(1)  # [batch, 1]
        source = torch.where(t < n, n - 1 - t, t)  # [batch, time]
        # Put the index where batch and time sit in x, broadcast over the rest.
        shape = [1] * x.dim()
        shape[self.batch_axis], shape[self.time_axis] = x.shape[self.batch_axis], steps
        if self.batch_axis > self.time_axis:
            source = source.transpose(0, 1)
        return torch.gather(x, self.time_axis, source.reshape(shape).expand(x.shape))


@register("ReverseSequence", [10])
def convert_reverse_sequence(node, graph):
    a = node.attributes
    return result(OnnxReverseSequence(a.get("batch_axis", 1), a.get("time_axis", 0)), node)


_SCATTER_REDUCE = {"mul": "prod", "max": "amax", "min": "amin"}


class OnnxScatterND(Module):
    """data with the slices that indices' last axis points at replaced by (or
    reduced with) updates."""

    def __init__(self, reduction):
        super().__init__()
        self.reduction = reduction

    def forward(self, data, indices, updates):
        k = indices.shape[-1]
        leading = data.shape[:k]
        index = indices.reshape(-1, k).to(torch.int64)
        flat = torch.zeros(index.shape[0], dtype=torch.int64, device=data.device)
        for axis in range(k):  # row-major position among the first k axes; negative from the end
            flat = flat * leading[axis] + index[:, axis] % leading[axis]
        out = data.clone().reshape(math.prod(leading), *data.shape[k:])
        values = updates.reshape(-1, *data.shape[k:]).to(data.dtype)
        if self.reduction == "none":
            out[flat] = values
        elif self.reduction == "add":
            out.index_add_(0, flat, values)
        else:
            out.index_reduce_(0, flat, values, _SCATTER_REDUCE[self.reduction], include_self=True)
        return out.reshape(data.shape)


@replace("ScatterND", [11, 13, 16])
@register("ScatterND", [18])
def convert_scatter_nd(node, graph):
    """onnx2torch's refuses reductions and has no version 18."""
    reduction = node.attributes.get("reduction", "none")
    reduction = reduction.decode() if isinstance(reduction, bytes) else reduction
    return result(OnnxScatterND(reduction), node)


class OnnxCenterCropPad(Module):
    """Each of axes cropped around its centre (the window's start rounded
    down) or padded with zeros on both sides (the odd one at the end) to
    the size shape gives."""

    def __init__(self, axes):
        super().__init__()
        self.axes = axes

    def forward(self, x, shape):
        sizes = [int(n) for n in shape.reshape(-1)]
        axes = self.axes if self.axes is not None else list(range(x.dim()))
        for axis, size in zip(axes, sizes):
            axis = normalize_axis(axis, x.dim())
            have = x.shape[axis]
            if have > size:
                x = x.narrow(axis, (have - size) // 2, size)
            elif have < size:
                before = (size - have) // 2
                pads = [0, 0] * (x.dim() - 1 - axis) + [before, size - have - before]
                x = F.pad(x, pads)
        return x


@register("CenterCropPad", [18])
def convert_center_crop_pad(node, graph):
    return result(OnnxCenterCropPad(node.attributes.get("axes")), node)


class OnnxShape(Module):
    """The dimensions start:end (clamped, as Python slices are) as int64,
    also when there are none."""

    def __init__(self, start, end):
        super().__init__()
        self.start, self.end = start, end

    def forward(self, x):
        if torch.jit.is_tracing():
            # A TorchScript trace keeps this symbolic; torch.tensor(x.shape)
            # would freeze the traced sizes (torch.export, though, needs
            # the latter).
            return torch._shape_as_tensor(x)[self.start : self.end].to(x.device)
        return torch.tensor(x.shape[self.start : self.end], dtype=torch.int64, device=x.device)


@replace("Shape", [1, 13, 15])
def convert_shape(node, graph):
    """onnx2torch's gives float32 for an empty range (start after end)."""
    return result(OnnxShape(node.attributes.get("start", 0), node.attributes.get("end")), node)


def _wrap_negative(indices, size):
    indices = indices.to(torch.int64)
    return torch.where(indices < 0, indices + size, indices)


class OnnxGatherElements(Module):
    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, x, indices):
        axis = normalize_axis(self.axis, x.dim())
        return torch.gather(x, axis, _wrap_negative(indices, x.shape[axis]))


@replace("GatherElements", [11, 13])
def convert_gather_elements(node, graph):
    """onnx2torch's passes negative indices to torch.gather, which refuses them."""
    return result(OnnxGatherElements(node.attributes.get("axis", 0)), node)


class OnnxGatherND(Module):
    """Slices of data at index tuples, the first batch_dims dimensions of data
    and indices paired one to one. Negative indices count from the end."""

    def __init__(self, batch_dims):
        super().__init__()
        self.batch_dims = batch_dims

    def forward(self, data, indices):
        b = self.batch_dims
        m = indices.shape[-1]
        batch = data.shape[:b]
        count = math.prod(batch)
        flat_data = data.reshape((count,) + tuple(data.shape[b:]))
        flat_indices = indices.reshape(count, -1, m).to(torch.int64)
        rows = torch.arange(count, device=data.device).unsqueeze(1)
        picked = flat_data[(rows,) + tuple(flat_indices[..., i] for i in range(m))]
        return picked.reshape(tuple(indices.shape[:-1]) + tuple(data.shape[b + m :]))


@replace("GatherND", [11, 12, 13])
def convert_gather_nd(node, graph):
    """onnx2torch's refuses batch_dims other than 0."""
    return result(OnnxGatherND(node.attributes.get("batch_dims", 0)), node)


class OnnxDepthToSpace(Module):
    """Depth moved into blocks of space: DCR reads the channels as
    (block row, block column, channel), CRD as (channel, block row, block
    column), which is torch's pixel_shuffle."""

    def __init__(self, blocksize, mode):
        super().__init__()
        self.blocksize, self.mode = blocksize, mode

    def forward(self, x):
        if self.mode == "CRD":
            return F.pixel_shuffle(x, self.blocksize)
        n, c, h, w = x.shape
        bs = self.blocksize
        x = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(n, c // (bs * bs), h * bs, w * bs)


@replace("DepthToSpace", [11, 13])
def convert_depth_to_space(node, graph):
    """onnx2torch's refuses DCR, the default mode."""
    mode = node.attributes.get("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ValueError(f"DepthToSpace: mode must be DCR or CRD, got {mode!r}")
    return result(OnnxDepthToSpace(node.attributes["blocksize"], mode), node)


@register("DepthToSpace", [1])
def convert_depth_to_space_v1(node, graph):
    return result(OnnxDepthToSpace(node.attributes["blocksize"], "DCR"), node)


class OnnxRange(Module):
    """start + i * delta for i < max(ceil((limit - start) / delta), 0), in the
    inputs' type. Floats are computed in float64 and rounded once, as the
    reference implementation does; 16-bit floats of Range 27 in the type its
    stash_type names."""

    def __init__(self, stash=torch.float64):
        super().__init__()
        self.stash = stash

    def forward(self, start, limit, delta):
        dtype = start.dtype
        compute = torch.int64
        if dtype.is_floating_point:
            compute = self.stash if dtype in (torch.float16, torch.bfloat16) else torch.float64
        span = limit.to(torch.float64) - start.to(torch.float64)
        count = max(math.ceil((span / delta.to(torch.float64)).item()), 0)
        steps = torch.arange(count, device=start.device, dtype=compute)
        return (start.to(compute) + steps * delta.to(compute)).to(dtype)


@replace("Range", [11])
def convert_range(node, graph):
    """onnx2torch's returns torch.arange's default types (float32, int64)
    whatever the inputs' type."""
    return result(OnnxRange(), node)


_STASH_TYPES = {1: torch.float32, 11: torch.float64}  # TensorProto.FLOAT, DOUBLE


@register("Range", [27])
def convert_range_27(node, graph):
    stash_type = node.attributes.get("stash_type", 1)
    if stash_type not in _STASH_TYPES:
        raise ValueError(f"Range: stash_type must be 1 (float) or 11 (double), got {stash_type}")
    return result(OnnxRange(_STASH_TYPES[stash_type]), node)


class OnnxUnique(Module):
    """Unique values (axis None: of the flattened input) or subtensors along
    an axis, sorted ascending or in the order of first occurrence, with the
    first occurrence's index, each element's index in Y, and counts."""

    def __init__(self, axis, sort, outputs):
        super().__init__()
        self.axis, self.sort, self.outputs = axis, sort, outputs

    def forward(self, x):
        if self.axis is None:
            x, axis = x.reshape(-1), 0
        else:
            axis = normalize_axis(self.axis, x.dim())
        y, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True, dim=axis)
        positions = torch.arange(inverse.numel(), device=x.device)
        first = torch.full((counts.numel(),), inverse.numel(), dtype=torch.int64, device=x.device)
        first = first.scatter_reduce(0, inverse, positions, reduce="amin")
        if not self.sort:  # in the order of first occurrence
            order = torch.argsort(first)
            rank = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=x.device))
            y, first, counts, inverse = y.index_select(axis, order), first[order], counts[order], rank[inverse]
        return (y, first, inverse, counts)[: self.outputs]


@register("Unique", [11])
def convert_unique(node, graph):
    return result(OnnxUnique(node.attributes.get("axis"), node.attributes.get("sorted", 1), output_count(node)), node)


class OnnxUnsqueeze(Module):
    """Size-1 dimensions inserted at `axes` of the output (negative ones
    counted from the output's end); `axes` None: given at run time."""

    def __init__(self, axes=None):
        super().__init__()
        self.axes = axes

    def forward(self, x, axes=None):
        axes = self.axes if axes is None else axes.reshape(-1).tolist()
        rank = x.dim() + len(axes)
        for axis in sorted(normalize_axis(a, rank) for a in axes):
            x = x.unsqueeze(axis)
        return x


@replace("Unsqueeze", [1, 11, 13])
def convert_unsqueeze(node, graph):
    """onnx2torch's inserts negative axes one at a time, each counted from
    the end of the tensor so far rather than of the output ([-2, -1] on a
    vector gives (1, n, 1), not (n, 1, 1)); and fails on a scalar axes
    constant."""
    if "axes" in node.attributes:
        return result(OnnxUnsqueeze(as_int_list(node.attributes["axes"])), node, inputs=node.input_values[:1])
    axes = constant(node, 1, graph)
    if axes is not None:
        return result(OnnxUnsqueeze(axes.reshape(-1).tolist()), node, inputs=node.input_values[:1])
    return result(OnnxUnsqueeze(), node)


@replace("Pad", [2])
def convert_pad_2(node, graph):
    """onnx2torch's reads the fill value from `constant_value`, an attribute
    Pad 2 does not have (it is `value`), and always pads with 0."""
    from onnx2torch.node_converters.pad import OnnxPadStatic

    module = OnnxPadStatic.create_from_onnx_params(
        onnx_pads=node.attributes["pads"],
        onnx_mode=node.attributes.get("mode", "constant"),
        constant_value=node.attributes.get("value", 0.0),
    )
    return result(module, node)
