"""Resize 18 and 19 (onnx2torch has 10, 11 and 13), Upsample (7, 9 and the
deprecated 10) and GridSample.

Written as a separable resampler that follows the ONNX definition axis by
axis instead of mapping onto torch.nn.functional.interpolate, whose
coordinate conventions cover only some ONNX combinations. Every ONNX mode is
supported: nearest (all four nearest_mode values), linear and cubic (any
cubic_coeff_a, exclude_outside, antialias), every coordinate_transformation_mode
(half_pixel, half_pixel_symmetric, pytorch_half_pixel, align_corners,
asymmetric, tf_crop_and_resize with extrapolation_value), the `axes`
attribute, keep_aspect_ratio_policy, and any rank.

Coordinates are computed in float32, as onnxruntime does, so that ties in
nearest rounding fall the same way (the reference evaluator uses float64 and
can differ there).
"""

import math

import torch
import torch.nn.functional as F

from ._common import Module, as_int_list, normalize_axis, register, result

_MODES = ("nearest", "linear", "cubic")
_COORDINATE_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
)
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_POLICIES = ("stretch", "not_larger", "not_smaller")


def _source_coordinates(mode, out_len, in_len, scale, roi):
    """Where each output index samples the input (float32), per the
    coordinate_transformation_mode formulas of the spec."""
    y = torch.arange(out_len, dtype=torch.float32)
    scale = torch.tensor(scale, dtype=torch.float32)
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        # onnxruntime computes the offset in float32 and the rest in float64
        length = torch.tensor(in_len, dtype=torch.float32)
        adjustment = torch.tensor(out_len, dtype=torch.float32) / (scale * length)
        offset = ((length / 2) * (1 - adjustment)).double()
        return (offset + (y.double() + 0.5) / scale.double() - 0.5).float()
    if mode == "pytorch_half_pixel":
        return (y + 0.5) / scale - 0.5 if out_len > 1 else torch.zeros_like(y)
    if mode == "align_corners":
        return y * (in_len - 1) / (out_len - 1) if out_len > 1 else torch.zeros_like(y)
    if mode == "asymmetric":
        return y / scale
    start, end = roi  # tf_crop_and_resize
    if out_len > 1:
        return start * (in_len - 1) + y * (end - start) * (in_len - 1) / (out_len - 1)
    return torch.full_like(y, 0.5 * (start + end) * (in_len - 1))


def _nearest_index(x, nearest_mode):
    if nearest_mode == "floor":
        return torch.floor(x)
    if nearest_mode == "ceil":
        return torch.ceil(x)
    if nearest_mode == "round_prefer_ceil":
        return torch.floor(x + 0.5)
    return torch.ceil(x - 0.5)  # round_prefer_floor


def _cubic_kernel(d, a):
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


class OnnxResize(Module):
    def __init__(
        self,
        mode="nearest",
        coordinate_transformation_mode="half_pixel",
        nearest_mode="round_prefer_floor",
        cubic_coeff_a=-0.75,
        exclude_outside=0,
        extrapolation_value=0.0,
        antialias=0,
        axes=None,
        keep_aspect_ratio_policy="stretch",
    ):
        super().__init__()
        self.mode = mode
        self.coordinate_transformation_mode = coordinate_transformation_mode
        self.nearest_mode = nearest_mode
        self.cubic_coeff_a = cubic_coeff_a
        self.exclude_outside = bool(exclude_outside)
        self.extrapolation_value = extrapolation_value
        self.antialias = bool(antialias)
        self.axes = axes
        self.keep_aspect_ratio_policy = keep_aspect_ratio_policy

    def forward(self, x, roi=None, scales=None, sizes=None):
        rank = x.dim()
        axes = list(range(rank)) if self.axes is None else [normalize_axis(a, rank) for a in self.axes]
        in_sizes = [x.shape[a] for a in axes]
        if sizes is not None and sizes.numel() > 0:
            out_sizes = as_int_list(sizes)
            axis_scales = [o / i for o, i in zip(out_sizes, in_sizes)]
            if self.keep_aspect_ratio_policy != "stretch":
                scale = min(axis_scales) if self.keep_aspect_ratio_policy == "not_larger" else max(axis_scales)
                axis_scales = [scale] * len(axes)
                out_sizes = [int(scale * i + 0.5) for i in in_sizes]  # round half up
        elif scales is not None and scales.numel() > 0:
            axis_scales = [float(s) for s in scales.reshape(-1).tolist()]
            out_sizes = [int(math.floor(i * s)) for i, s in zip(in_sizes, axis_scales)]
        else:
            raise ValueError("Resize: one of scales and sizes must be given")
        if len(axis_scales) != len(axes):
            raise ValueError(f"Resize: {len(axis_scales)} scales/sizes for {len(axes)} axes")

        crop = self.coordinate_transformation_mode == "tf_crop_and_resize"
        rois = [None] * len(axes)
        if crop:
            if roi is None or roi.numel() != 2 * len(axes):
                raise ValueError("Resize: tf_crop_and_resize needs roi with a start and an end per resized axis")
            values = [float(v) for v in roi.reshape(-1).tolist()]
            rois = [(values[i], values[i + len(axes)]) for i in range(len(axes))]

        dtype = x.dtype
        work = x if dtype in (torch.float32, torch.float64) else x.to(torch.float32)
        for axis, in_len, out_len, scale, axis_roi in zip(axes, in_sizes, out_sizes, axis_scales, rois):
            if not crop and out_len == in_len and scale == 1.0:
                continue  # every mode maps an unscaled axis onto itself
            work = self._resample(work, axis, in_len, out_len, scale, axis_roi)
        if work.dtype == dtype:
            return work
        if dtype.is_floating_point:
            return work.to(dtype)
        if dtype == torch.bool:
            return work != 0
        # Integers: truncated and saturated, as onnxruntime does (the
        # reference evaluator rounds instead; the spec does not say).
        info = torch.iinfo(dtype)
        return torch.trunc(work).clamp(info.min, info.max).to(dtype)

    def _resample(self, x, axis, in_len, out_len, scale, roi):
        coords = _source_coordinates(self.coordinate_transformation_mode, out_len, in_len, scale, roi)
        if self.mode == "nearest":
            index = _nearest_index(coords, self.nearest_mode).to(torch.int64).clamp(0, in_len - 1)
            out = x.index_select(axis, index.to(x.device))
        else:
            out = self._interpolate(x, axis, in_len, out_len, scale, coords)
        if roi is not None:
            outside = (coords < 0) | (coords > in_len - 1)
            if bool(outside.any()):
                shape = [1] * x.dim()
                shape[axis] = out_len
                fill = torch.tensor(self.extrapolation_value, dtype=out.dtype, device=out.device)
                out = torch.where(outside.reshape(shape).to(out.device), fill, out)
        return out

    def _interpolate(self, x, axis, in_len, out_len, scale, coords):
        support = 1 if self.mode == "linear" else 2
        # Antialiasing widens the kernel by 1/scale when downsampling.
        stretch = min(scale, 1.0) if self.antialias else 1.0
        first = math.floor(-support / stretch) + 1
        taps = torch.arange(first, 2 - first, dtype=torch.float32)  # offsets from floor(coordinate)
        base = torch.floor(coords)
        fraction = coords - base
        distance = (taps.reshape(1, -1) - fraction.reshape(-1, 1)) * stretch  # (out, taps)
        if self.mode == "linear":
            weights = (1 - distance.abs()).clamp(min=0)
        else:
            weights = _cubic_kernel(distance, self.cubic_coeff_a)
        if self.antialias:
            weights = weights / weights.sum(dim=1, keepdim=True)
        positions = base.reshape(-1, 1) + taps.reshape(1, -1)
        if self.exclude_outside:
            inside = (positions >= 0) & (positions <= in_len - 1)
            weights = torch.where(inside, weights, torch.zeros_like(weights))
            total = weights.sum(dim=1, keepdim=True)
            weights = weights / torch.where(total == 0, torch.ones_like(total), total)
        index = positions.to(torch.int64).clamp(0, in_len - 1)  # edge padding
        gathered = x.index_select(axis, index.reshape(-1).to(x.device))
        shape = list(x.shape)
        shape[axis : axis + 1] = [out_len, index.shape[1]]
        gathered = gathered.reshape(shape)
        weight_shape = [1] * len(shape)
        weight_shape[axis], weight_shape[axis + 1] = out_len, index.shape[1]
        return (gathered * weights.to(x.dtype).reshape(weight_shape).to(x.device)).sum(dim=axis + 1)


def _check_choice(name, value, choices, op="Resize"):
    if value not in choices:
        raise NotImplementedError(f"{op}: {name}={value!r} is not implemented (expected one of {', '.join(choices)})")


@register("Resize", [18, 19])
def convert_resize(node, graph):
    a = node.attributes
    mode = a.get("mode", "nearest")
    coordinate_mode = a.get("coordinate_transformation_mode", "half_pixel")
    nearest_mode = a.get("nearest_mode", "round_prefer_floor")
    policy = a.get("keep_aspect_ratio_policy", "stretch")
    _check_choice("mode", mode, _MODES)
    _check_choice("coordinate_transformation_mode", coordinate_mode, _COORDINATE_MODES)
    _check_choice("nearest_mode", nearest_mode, _NEAREST_MODES)
    _check_choice("keep_aspect_ratio_policy", policy, _POLICIES)
    axes = a.get("axes")
    module = OnnxResize(
        mode=mode,
        coordinate_transformation_mode=coordinate_mode,
        nearest_mode=nearest_mode,
        cubic_coeff_a=a.get("cubic_coeff_a", -0.75),
        exclude_outside=a.get("exclude_outside", 0),
        extrapolation_value=a.get("extrapolation_value", 0.0),
        antialias=a.get("antialias", 0),
        axes=None if axes is None else list(axes),
        keep_aspect_ratio_policy=policy,
    )
    return result(module, node)


class OnnxUpsample(Module):
    """Upsample (before Resize): asymmetric coordinates, nearest takes the
    floor; scales from the attribute (7) or the second input (9, 10)."""

    def __init__(self, mode, scales=None):
        super().__init__()
        if mode not in ("nearest", "linear", "bilinear"):
            raise NotImplementedError(f"Upsample: mode={mode!r} is not implemented (expected nearest or linear)")
        self.scales = scales
        self.resize = OnnxResize(
            mode="nearest" if mode == "nearest" else "linear",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )

    def forward(self, x, scales=None):
        if self.scales is not None:
            scales = torch.tensor(self.scales, dtype=torch.float32)
        return self.resize(x, scales=scales)


@register("Upsample", [7])
def convert_upsample_7(node, graph):
    return result(OnnxUpsample(node.attributes.get("mode", "nearest"), list(node.attributes["scales"])), node)


@register("Upsample", [9, 10])
def convert_upsample(node, graph):
    return result(OnnxUpsample(node.attributes.get("mode", "nearest")), node)


_GRID_MODES = {
    "bilinear": "bilinear",
    "linear": "bilinear",
    "nearest": "nearest",
    "bicubic": "bicubic",
    "cubic": "bicubic",
}


class OnnxGridSample(Module):
    """torch.nn.functional.grid_sample, which GridSample was modelled on
    (nearest rounds half to even in both); a 1-D sample runs as 2-D with a
    single row."""

    def __init__(self, mode, padding_mode, align_corners):
        super().__init__()
        self.mode = _GRID_MODES[mode]
        self.padding_mode = padding_mode
        self.align_corners = bool(align_corners)

    def forward(self, x, grid):
        one_d = x.dim() == 3
        if one_d:
            x = x.unsqueeze(2)
            grid = torch.stack((grid[..., 0], torch.zeros_like(grid[..., 0])), dim=-1).unsqueeze(1)
        if x.dim() == 5 and self.mode == "bicubic":
            raise NotImplementedError("GridSample: cubic mode on volumetric (5-D) input is not implemented")
        if x.dim() not in (4, 5):
            raise NotImplementedError(f"GridSample: {x.dim() - 2} spatial dimensions are not implemented")
        y = F.grid_sample(
            x, grid.to(x.dtype), mode=self.mode, padding_mode=self.padding_mode, align_corners=self.align_corners
        )
        return y.squeeze(2) if one_d else y


@register("GridSample", [16, 20, 22])
def convert_grid_sample(node, graph):
    a = node.attributes
    mode = a.get("mode", "bilinear")  # "linear" is the same default from 20 on
    padding_mode = a.get("padding_mode", "zeros")
    _check_choice("mode", mode, tuple(_GRID_MODES), "GridSample")
    _check_choice("padding_mode", padding_mode, ("zeros", "border", "reflection"), "GridSample")
    return result(OnnxGridSample(mode, padding_mode, a.get("align_corners", 0)), node)
