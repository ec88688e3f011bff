"""Pooling at the versions onnx2torch 1.5.15 lacks: AveragePool 1/19/22,
MaxPool 1/22, LpPool, GlobalMaxPool and GlobalLpPool; and at the versions
it has, the nodes its converters refuse.

AveragePool 19 added `dilations`, which torch's avg_pool lacks; version 22
only added bfloat16 (MaxPool 22 likewise, with a clarified but unchanged
ceil_mode rule). Beyond onnx2torch's own pooling these converters handle
`auto_pad` SAME_UPPER/SAME_LOWER, asymmetric pads and MaxPool's Indices output.

Geometry, per spatial axis with effective kernel e = (k - 1) * d + 1:
- explicit pads (b, a): out = floor_or_ceil((in + b + a - e) / s) + 1, and
  with ceil_mode a window may not start in the end padding;
- SAME_*: out = ceil(in / s), total padding (out - 1) * s + e - in, the odd
  unit at the end (UPPER) or the start (LOWER); VALID: no padding;
- AveragePool divides by the number of input elements in the window, or with
  count_include_pad by the elements inside the padded input (never the part
  of a ceil_mode window beyond the end padding); LpPool counts pads as 0.

torch's pooling is used where it computes exactly that (symmetric pads no
larger than half the kernel, no dilation for averages); otherwise windows are
read with Tensor.unfold.
"""

import math

import torch
import torch.nn.functional as F

from ._common import Module, output_count, register, replace, replaced, result


def _geometry(in_sizes, kernel, strides, dilations, pads, auto_pad, ceil_mode):
    """Per axis: (output size, pad at start, pad at end, extra end padding a
    ceil_mode window reads beyond the given pads)."""
    n = len(in_sizes)
    out = []
    for i in range(n):
        size, k, s, d = in_sizes[i], kernel[i], strides[i], dilations[i]
        span = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            count = -(-size // s)
            total = max(0, (count - 1) * s + span - size)
            begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            end = total - begin
        elif auto_pad == "VALID":
            begin = end = 0
            count = (size - span) // s + 1
        elif auto_pad == "NOTSET":
            begin, end = pads[i], pads[i + n]
            reach = size + begin + end - span
            if ceil_mode:
                count = -(-reach // s) + 1
                if (count - 1) * s >= size + begin:
                    count -= 1
            else:
                count = reach // s + 1
        else:
            raise ValueError(f"unknown auto_pad {auto_pad!r}")
        extra = max(0, (count - 1) * s + span - (size + begin + end))
        out.append((count, begin, end, extra))
    return out


def _windows(x, geometry, kernel, strides, dilations):
    """Unfold every spatial axis of a padded (N, C, *spatial) tensor: the result
    is (N, C, *output, *kernel)."""
    for i, (count, _, _, _) in enumerate(geometry):
        span = (kernel[i] - 1) * dilations[i] + 1
        # narrow: the end padding may hold a window that ceil_mode drops
        x = x.unfold(2 + i, span, strides[i]).narrow(2 + i, 0, count)
        if dilations[i] > 1:
            x = x[..., :: dilations[i]]
    return x


def _pad(x, geometry, value):
    pads = []
    for _, begin, end, extra in reversed(geometry):  # F.pad lists the last axis first
        pads += [begin, end + extra]
    return F.pad(x, pads, value=value) if any(pads) else x


def _lowest(dtype):
    return float("-inf") if dtype.is_floating_point else torch.iinfo(dtype).min


_TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


class OnnxPool(Module):
    """AveragePool, MaxPool or LpPool over the trailing spatial axes."""

    def __init__(
        self,
        kind,
        kernel,
        strides=None,
        dilations=None,
        pads=None,
        auto_pad="NOTSET",
        ceil_mode=0,
        count_include_pad=0,
        p=2,
        storage_order=0,
        outputs=1,
    ):
        super().__init__()
        n = len(kernel)
        self.kind = kind
        self.kernel = list(kernel)
        self.strides = list(strides or [1] * n)
        self.dilations = list(dilations or [1] * n)
        self.pads = list(pads or [0] * (2 * n))
        self.auto_pad = auto_pad
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.p = p
        self.storage_order = storage_order
        self.outputs = outputs

    def forward(self, x):
        spatial = list(x.shape[2:])
        if len(spatial) != len(self.kernel):
            raise ValueError(f"{self.kind}: kernel_shape has {len(self.kernel)} axes, the input {len(spatial)}")
        geometry = _geometry(
            spatial, self.kernel, self.strides, self.dilations, self.pads, self.auto_pad, self.ceil_mode
        )
        if self.outputs == 1 and self._torch_can(geometry):
            return self._torch_pool(x, geometry)
        if self.kind == "MaxPool":
            windows = _windows(_pad(x, geometry, _lowest(x.dtype)), geometry, self.kernel, self.strides, self.dilations)
            flat = windows.flatten(-len(self.kernel))
            values, where = flat.max(dim=-1)
            if self.outputs == 1:
                return values
            return values, self._indices(x, geometry, where)
        windows = _windows(_pad(x, geometry, 0), geometry, self.kernel, self.strides, self.dilations)
        dims = tuple(range(-len(self.kernel), 0))
        if self.kind == "LpPool":
            return windows.abs().pow(self.p).sum(dim=dims).pow(1.0 / self.p)
        divisor = average_divisor(
            spatial, geometry, self.kernel, self.strides, self.dilations, self.count_include_pad, x.dtype, x.device
        )
        return windows.sum(dim=dims) / divisor

    def _torch_can(self, geometry):
        n = len(self.kernel)
        if n not in (1, 2, 3) or self.kind == "LpPool":
            return False
        for (_, begin, end, _), k in zip(geometry, self.kernel):
            if begin != end or begin > k // 2:
                return False
        # (auto_pad's symmetric pads give torch's output size without ceil_mode)
        return self.kind == "MaxPool" or all(d == 1 for d in self.dilations)

    def _torch_pool(self, x, geometry):
        n = len(self.kernel)
        padding = [begin for _, begin, _, _ in geometry]
        if self.kind == "MaxPool":
            return _TORCH_MAX[n](
                x,
                self.kernel,
                self.strides,
                padding,
                self.dilations,
                ceil_mode=self.ceil_mode and self.auto_pad == "NOTSET",
            )
        return _TORCH_AVG[n](
            x,
            self.kernel,
            self.strides,
            padding,
            ceil_mode=self.ceil_mode and self.auto_pad == "NOTSET",
            count_include_pad=self.count_include_pad,
        )

    def _indices(self, x, geometry, where):
        """MaxPool's Indices: positions in the flattened input tensor (row-major,
        or column-major over the spatial axes with storage_order 1)."""
        spatial = list(x.shape[2:])
        n = len(spatial)
        grid = torch.arange(math.prod(spatial), dtype=torch.int64, device=x.device)
        if self.storage_order:
            grid = grid.reshape(list(reversed(spatial))).permute(*reversed(range(n)))
        grid = _pad(grid.reshape([1, 1] + spatial), geometry, -1)
        positions = _windows(grid, geometry, self.kernel, self.strides, self.dilations).flatten(-n)
        chosen = positions.expand(list(where.shape) + [positions.shape[-1]]).gather(-1, where.unsqueeze(-1)).squeeze(-1)
        plane = torch.arange(x.shape[0] * x.shape[1], dtype=torch.int64, device=x.device).reshape(
            [x.shape[0], x.shape[1]] + [1] * n
        )
        return chosen + plane * math.prod(spatial)


def average_divisor(spatial, geometry, kernel, strides, dilations, count_include_pad, dtype, device):
    """What AveragePool divides each window's sum by: the input elements in
    the window, or with count_include_pad those inside the padded input
    (the pads count, a ceil_mode overhang does not)."""
    counted = torch.ones([1, 1] + list(spatial), dtype=dtype, device=device)
    if count_include_pad:
        counted = _pad(counted, [(c, b, e, 0) for c, b, e, _ in geometry], 1)
        counted = _pad(counted, [(c, 0, 0, extra) for c, _, _, extra in geometry], 0)
    else:
        counted = _pad(counted, geometry, 0)
    return _windows(counted, geometry, kernel, strides, dilations).flatten(-len(kernel)).sum(-1)


def _pool_converter(kind):
    def convert(node, graph):
        a = node.attributes
        if "kernel_shape" not in a:
            raise ValueError(f"{kind}: kernel_shape is required")
        p = a.get("p", 2)
        module = OnnxPool(
            kind,
            a["kernel_shape"],
            strides=a.get("strides"),
            dilations=a.get("dilations"),
            pads=a.get("pads"),
            auto_pad=a.get("auto_pad", "NOTSET"),
            ceil_mode=a.get("ceil_mode", 0),
            count_include_pad=a.get("count_include_pad", 0),
            p=float(p) if kind == "LpPool" else p,
            storage_order=a.get("storage_order", 0),
            outputs=output_count(node),
        )
        return result(module, node)

    return convert


register("AveragePool", [1, 19, 22])(_pool_converter("AveragePool"))
register("MaxPool", [1, 22])(_pool_converter("MaxPool"))


def _fallback(kind, version):
    """onnx2torch's converter (torch.nn pooling layers) where it takes the
    node; this package's where it refuses it (asymmetric pads, SAME
    padding with a stride, ...)."""

    def convert(node, graph):
        try:
            return replaced(kind, version)(node, graph)
        except (NotImplementedError, KeyError):  # KeyError: no shape recorded for its input
            return _pool_converter(kind)(node, graph)

    return convert


for _version in (7, 10, 11):
    replace("AveragePool", [_version])(_fallback("AveragePool", _version))
for _version in (8, 10, 11, 12):
    replace("MaxPool", [_version])(_fallback("MaxPool", _version))
register("LpPool", [1, 2, 11, 18, 22])(_pool_converter("LpPool"))


class OnnxGlobalPool(Module):
    def __init__(self, kind, p=2.0):
        super().__init__()
        self.kind = kind
        self.p = p

    def forward(self, x):
        dims = tuple(range(2, x.dim()))
        if self.kind == "GlobalMaxPool":
            return torch.amax(x, dim=dims, keepdim=True)
        return x.abs().pow(self.p).sum(dim=dims, keepdim=True).pow(1.0 / self.p)


@register("GlobalMaxPool", [1, 22])
def convert_global_max_pool(node, graph):
    return result(OnnxGlobalPool("GlobalMaxPool"), node)


@register("GlobalLpPool", [1, 2, 22])
def convert_global_lp_pool(node, graph):
    return result(OnnxGlobalPool("GlobalLpPool", float(node.attributes.get("p", 2))), node)
