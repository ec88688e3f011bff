"""Ops that sample or scatter over a spatial grid: AffineGrid, Col2Im,
DeformConv, MaxUnpool, and RoiAlign's max mode, which onnx2torch refuses.

Shapes given as constant inputs (AffineGrid's size, Col2Im's image and block
shapes, MaxUnpool's output_shape) are read once at conversion, so the
module holds Python ints that tracing and torch.export keep.
"""

import math
import warnings

import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from ._common import Module, as_int_list, constant, register, replace, replaced, result, result_skipping_absent


def _ints(value):
    return None if value is None else as_int_list(value)


def _constant_ints(node, graph, position, inputs):
    """The ints of input `position` when it is a constant (then left out of
    `inputs`, by an empty name), else None."""
    value = _ints(constant(node, position, graph))
    if value is not None:
        inputs[position] = ""
    return value


def _compute_dtype(x):
    """Half-precision inputs are computed in float32: several of the kernels
    used here have no half-precision CPU version."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


class OnnxAffineGrid(Module):
    """F.affine_grid: the same grid of [-1, 1] positions (pixel centres or
    corners by align_corners) times theta, for 2-D and 3-D sizes."""

    def __init__(self, align_corners, size=None):
        super().__init__()
        self.align_corners, self.size = align_corners, size

    def forward(self, theta, size=None):
        size = self.size if self.size is not None else as_int_list(size)
        matrix = theta.to(_compute_dtype(theta))
        # With align_corners, where an axis has size 1 (both corners in one
        # pixel), torch puts it at 0 and onnxruntime at 1 (ONNX's reference
        # at -1): onnxruntime's is followed, by adding theta's column for
        # that axis to the translation. (theta's columns are x, y, z: the
        # spatial axes from the last)
        unit = [i for i, n in enumerate(reversed(size[2:])) if n == 1]
        if self.align_corners and unit:
            shift = matrix[..., unit].sum(dim=-1, keepdim=True)
            matrix = torch.cat([matrix[..., :-1], matrix[..., -1:] + shift], dim=-1)
        with warnings.catch_warnings():  # torch's warning about that case
            warnings.filterwarnings("ignore", message=".*unit-size grids", category=UserWarning)
            grid = F.affine_grid(matrix, size, align_corners=self.align_corners)
        return grid.to(theta.dtype)


@register("AffineGrid", [20])
def convert_affine_grid(node, graph):
    inputs = list(node.input_values)
    size = _constant_ints(node, graph, 1, inputs)
    module = OnnxAffineGrid(bool(node.attributes.get("align_corners", 0)), size)
    return result_skipping_absent(module, node, inputs=inputs)


class OnnxCol2Im(Module):
    """Sums the column blocks [N, C * prod(block), L] back into an image
    [N, C, *image_shape]: F.fold for 2-D images, a scatter-add over the
    flattened padded image otherwise. Asymmetric pads: the padded image is
    folded, then cropped."""

    def __init__(self, dilations, pads, strides, image_shape=None, block_shape=None):
        super().__init__()
        self.dilations, self.pads, self.strides = dilations, pads, strides
        self.image_shape, self.block_shape = image_shape, block_shape

    def forward(self, x, image_shape=None, block_shape=None):
        image = self.image_shape if self.image_shape is not None else as_int_list(image_shape)
        block = self.block_shape if self.block_shape is not None else as_int_list(block_shape)
        rank = len(image)
        dilations = self.dilations or [1] * rank
        strides = self.strides or [1] * rank
        pads = self.pads or [0] * (2 * rank)
        padded = [image[i] + pads[i] + pads[i + rank] for i in range(rank)]
        blocks = [(padded[i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1 for i in range(rank)]
        if x.shape[-1] != math.prod(blocks) or min(blocks) < 1:
            raise ValueError(f"Col2Im: {x.shape[-1]} blocks given, the shapes make {blocks}")
        if rank == 2:
            y = F.fold(x, padded, block, dilation=dilations, stride=strides)
        else:
            y = self._scatter(x, padded, block, blocks, dilations, strides)
        return y[(slice(None), slice(None)) + tuple(slice(pads[i], pads[i] + image[i]) for i in range(rank))]

    @staticmethod
    def _scatter(x, padded, block, blocks, dilations, strides):
        # The flat position in the padded image of each (kernel offset,
        # block), kernel offsets first: the columns' order.
        rank = len(padded)
        index, step = torch.zeros((), dtype=torch.int64), 1
        for axis in reversed(range(rank)):
            offsets = torch.arange(block[axis]) * dilations[axis]
            starts = torch.arange(blocks[axis]) * strides[axis]
            along = offsets.unsqueeze(1) + starts
            shape = [1] * (2 * rank)
            shape[axis], shape[rank + axis] = block[axis], blocks[axis]
            index = index + along.reshape(shape) * step
            step *= padded[axis]
        n, kernel = x.shape[0], math.prod(block)
        columns = x.reshape(n, x.shape[1] // kernel, kernel * x.shape[-1])
        out = x.new_zeros(n, columns.shape[1], step).index_add(2, index.reshape(-1).to(x.device), columns)
        return out.reshape(n, columns.shape[1], *padded)


@register("Col2Im", [18])
def convert_col2im(node, graph):
    a = node.attributes
    inputs = list(node.input_values)
    image = _constant_ints(node, graph, 1, inputs)
    block = _constant_ints(node, graph, 2, inputs)
    module = OnnxCol2Im(_ints(a.get("dilations")), _ints(a.get("pads")), _ints(a.get("strides")), image, block)
    return result_skipping_absent(module, node, inputs=inputs)


class OnnxDeformConv(Module):
    """torchvision's deform_conv2d, which samples like ONNX (bilinear, zero
    outside the image) with the same offset layout ((y, x) per kernel
    position, per offset group) and mask layout. Asymmetric pads: the
    input is zero-padded first, which samples the same zeros."""

    def __init__(self, strides, pads, dilations, group, offset_group, kernel_shape):
        super().__init__()
        self.strides, self.pads, self.dilations = strides, pads, dilations
        self.group, self.offset_group, self.kernel_shape = group, offset_group, kernel_shape

    def forward(self, x, weight, offset, bias=None, mask=None):
        if x.dim() != 4:
            raise NotImplementedError(f"DeformConv: only 2-D images are converted, got a rank {x.dim()} input")
        kernel = list(weight.shape[2:])
        if self.kernel_shape is not None and self.kernel_shape != kernel:
            raise ValueError(f"DeformConv: kernel_shape {self.kernel_shape} differs from the weights' {kernel}")
        if weight.shape[1] * self.group != x.shape[1]:
            raise ValueError(f"DeformConv: {x.shape[1]} channels, weights for {weight.shape[1]} x group {self.group}")
        if offset.shape[1] != self.offset_group * 2 * kernel[0] * kernel[1]:
            raise ValueError(f"DeformConv: {offset.shape[1]} offset channels for offset_group {self.offset_group}")
        pads = self.pads or [0, 0, 0, 0]
        padding = pads[:2]
        if pads[:2] != pads[2:]:
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
            padding = [0, 0]
        dtype = _compute_dtype(x)
        y = deform_conv2d(
            x.to(dtype),
            offset.to(dtype),
            weight.to(dtype),
            None if bias is None else bias.to(dtype),
            stride=tuple(self.strides or [1, 1]),
            padding=tuple(padding),
            dilation=tuple(self.dilations or [1, 1]),
            mask=None if mask is None else mask.to(dtype),
        )
        return y.to(x.dtype)


@register("DeformConv", [19, 22])
def convert_deform_conv(node, graph):
    a = node.attributes
    module = OnnxDeformConv(
        _ints(a.get("strides")),
        _ints(a.get("pads")),
        _ints(a.get("dilations")),
        int(a.get("group", 1)),
        int(a.get("offset_group", 1)),
        _ints(a.get("kernel_shape")),
    )
    return result_skipping_absent(module, node)


class OnnxMaxUnpool(Module):
    """X's values scattered to the positions I gives, into zeros. I holds
    indices into the whole output tensor flattened (N and C included), as
    MaxPool returns them; F.max_unpool takes per-channel indices.

    With output_shape, the output has that shape and I indexes it, as
    onnxruntime does (microsoft/onnxruntime#2193, after onnx/onnx#2398).
    ONNX's reference instead unpools into the shape the attributes give and
    pads that at the end, which its node test expects."""

    def __init__(self, kernel_shape, pads, strides, output_shape=None):
        super().__init__()
        self.kernel_shape, self.pads, self.strides = kernel_shape, pads, strides
        self.output_shape = output_shape

    def forward(self, x, indices, output_shape=None):
        if self.output_shape is not None:
            shape = self.output_shape
        elif output_shape is not None:
            shape = as_int_list(output_shape)
        else:
            rank = len(self.kernel_shape)
            strides = self.strides or [1] * rank
            pads = self.pads or [0] * (2 * rank)
            shape = list(x.shape[:2]) + [
                (x.shape[2 + i] - 1) * strides[i] - pads[i] - pads[rank + i] + self.kernel_shape[i] for i in range(rank)
            ]
        out = x.new_zeros(math.prod(shape))
        return out.scatter(0, indices.reshape(-1), x.reshape(-1)).reshape(shape)


@register("MaxUnpool", [9, 11, 22])
def convert_max_unpool(node, graph):
    a = node.attributes
    inputs = list(node.input_values)
    output_shape = _constant_ints(node, graph, 2, inputs)
    module = OnnxMaxUnpool(as_int_list(a["kernel_shape"]), _ints(a.get("pads")), _ints(a.get("strides")), output_shape)
    return result_skipping_absent(module, node, inputs=inputs)


class OnnxRoiAlignMax(Module):
    """RoiAlign with mode="max" as onnxruntime and ONNX's reference compute
    it: each bin is the largest, over its sampling points, of the four
    bilinear terms weight * corner value taken one by one (not the largest
    interpolated value). A sample outside the image counts as 0, a bin
    without samples is 0."""

    def __init__(self, output_height, output_width, sampling_ratio, spatial_scale, half_pixel):
        super().__init__()
        self.output_height, self.output_width = output_height, output_width
        self.sampling_ratio, self.spatial_scale, self.half_pixel = sampling_ratio, spatial_scale, half_pixel

    def _axis(self, start, end, bins, size):
        """Per ROI, bin and sampling point along one axis: the low and high
        pixel indices, their weights, whether the point is outside the
        image, and whether it is one of the ROI's sampling points."""
        length = end - start
        if not self.half_pixel:  # the legacy mode makes every ROI at least 1 pixel
            length = length.clamp(min=1.0)
        bin_size = length / bins
        if self.sampling_ratio > 0:
            grid = torch.full_like(length, self.sampling_ratio, dtype=torch.int64)
            count = self.sampling_ratio
        else:
            if torch.jit.is_tracing():  # a trace would keep this example's count for every box
                raise NotImplementedError("RoiAlign max with sampling_ratio 0: the sampling grid depends on the boxes")
            grid = torch.ceil(length / bins).to(torch.int64)
            count = max(int(grid.max()) if grid.numel() else 0, 0)
        b = torch.arange(bins, dtype=length.dtype).reshape(1, bins, 1)
        i = torch.arange(count, dtype=length.dtype).reshape(1, 1, count)
        start, bin_size, points = (t.reshape(-1, 1, 1) for t in (start, bin_size, grid.clamp(min=1).to(length.dtype)))
        point = start + b * bin_size + (i + 0.5) * bin_size / points
        used = i < grid.reshape(-1, 1, 1)
        outside = (point < -1.0) | (point > size)
        point = point.clamp(min=0)
        low = point.to(torch.int64)
        last = low >= size - 1
        low = torch.where(last, size - 1, low)
        high = torch.where(last, low, low + 1)
        point = torch.where(last, low.to(point.dtype), point)
        frac = point - low
        return low, high, 1 - frac, frac, outside, used

    def forward(self, x, rois, batch_indices):
        n, c, height, width = x.shape
        offset = 0.5 if self.half_pixel else 0.0
        box = rois.to(x.dtype) * self.spatial_scale - offset
        ylow, yhigh, yw_low, yw_high, yout, yused = self._axis(box[:, 1], box[:, 3], self.output_height, height)
        xlow, xhigh, xw_low, xw_high, xout, xused = self._axis(box[:, 0], box[:, 2], self.output_width, width)

        # Broadcast to [roi, bin_y, sample_y, bin_x, sample_x].
        def ys(t):
            return t.unsqueeze(-1).unsqueeze(-1)

        def xs(t):
            return t.unsqueeze(1).unsqueeze(1)

        outside = ys(yout) | xs(xout)
        used = ys(yused) & xs(xused)
        base = batch_indices.to(torch.int64).reshape(-1, 1, 1, 1, 1) * (height * width)
        pixels = x.permute(0, 2, 3, 1).reshape(n * height * width, c)
        best = None
        for row, row_weight in ((ylow, yw_low), (yhigh, yw_high)):
            for col, col_weight in ((xlow, xw_low), (xhigh, xw_high)):
                position = torch.where(outside, 0, base + ys(row) * width + xs(col))
                weight = torch.where(outside, 0.0, ys(row_weight) * xs(col_weight))
                term = weight.unsqueeze(-1) * pixels[position]  # [..., c]
                best = term if best is None else torch.maximum(best, term)
        best = best.masked_fill(~used.unsqueeze(-1), -math.inf)
        y = best.amax(dim=(2, 4)) if best.numel() else best.new_zeros(best.shape[0], *best.shape[1::2])
        y = torch.where(torch.isneginf(y), 0.0, y)  # bins without sampling points
        return y.permute(0, 3, 1, 2).to(x.dtype)


def _convert_roi_align(node, graph, version, default_mode):
    a = node.attributes
    if a.get("mode", "avg") != "max":
        return replaced("RoiAlign", version)(node, graph)
    module = OnnxRoiAlignMax(
        int(a.get("output_height", 1)),
        int(a.get("output_width", 1)),
        int(a.get("sampling_ratio", 0)),
        float(a.get("spatial_scale", 1.0)),
        a.get("coordinate_transformation_mode", default_mode) == "half_pixel",
    )
    return result(module, node)


# onnx2torch's RoiAlign refuses mode="max"; the average stays theirs
# (torchvision's roi_align).
@replace("RoiAlign", [10])
def convert_roi_align_10(node, graph):
    return _convert_roi_align(node, graph, 10, "output_half_pixel")


@replace("RoiAlign", [16])
def convert_roi_align_16(node, graph):
    return _convert_roi_align(node, graph, 16, "half_pixel")
