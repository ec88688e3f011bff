"""QuantizeLinear / DequantizeLinear (10, 13, 19, 21, 23, 24, 25), and the
integer ops of dynamic quantization: DynamicQuantizeLinear, MatMulInteger,
ConvInteger.

y = saturate(round_half_even(x / scale) + zero_point) and
x = (q - zero_point) * scale, per tensor (scalar scale), per axis (1-D
scale along `axis`, from 13) or blocked (21: scale of the input's rank, each
value repeated `block_size` times along `axis`).

The quantized type comes from the zero point, else the `output_dtype`
attribute (21), else uint8. Integer types torch has are supported (uint8,
int8, uint16, int16, int32 for DequantizeLinear). float8 quantization needs
float8 tensors onnx2torch cannot load from initializers, and 4-bit/2-bit/
float4/float6 types have no torch dtype: those raise NotImplementedError at
conversion where the type is known from the graph.
"""

import torch
from onnx import TensorProto

from ._common import (
    Module,
    elem_type,
    normalize_axis,
    onnx_type_name,
    present,
    register,
    result,
    result_skipping_absent,
    torch_dtype,
)
from .conv import OnnxConv

_INTEGER_RANGES = {
    torch.uint8: (0, 255),
    torch.int8: (-128, 127),
    torch.uint16: (0, 65535),
    torch.int16: (-32768, 32767),
}
_QUANTIZED_TYPES = {
    TensorProto.UINT8: torch.uint8,
    TensorProto.INT8: torch.int8,
    TensorProto.UINT16: torch.uint16,
    TensorProto.INT16: torch.int16,
}
_DEQUANTIZABLE_TYPES = {**_QUANTIZED_TYPES, TensorProto.INT32: torch.int32}


def _broadcast_param(param, x, axis, block_size):
    """Shape a scale or zero point so that it broadcasts over x."""
    if param.dim() == 0 or param.numel() == 1:
        return param.reshape(())
    axis = normalize_axis(axis, x.dim())
    if block_size:
        if param.dim() != x.dim():
            raise ValueError(f"blocked quantization needs a scale of rank {x.dim()}, got shape {list(param.shape)}")
        expanded = param.repeat_interleave(block_size, dim=axis)
        return expanded.narrow(axis, 0, x.shape[axis])  # the last block may be short
    if param.dim() != 1:
        raise ValueError(f"per-axis quantization needs a 1-D scale, got shape {list(param.shape)}")
    shape = [1] * x.dim()
    shape[axis] = param.shape[0]
    return param.reshape(shape)


def _checked_type(onnx_type, supported, what):
    if onnx_type not in supported:
        raise NotImplementedError(f"{what} with type {onnx_type_name(onnx_type)} is not implemented")
    return supported[onnx_type]


class OnnxQuantizeLinear(Module):
    def __init__(self, out_dtype, axis, block_size, precision_dtype):
        super().__init__()
        self.out_dtype = out_dtype
        self.axis = axis
        self.block_size = block_size
        self.precision_dtype = precision_dtype

    def forward(self, x, y_scale, y_zero_point=None):
        out_dtype = self.out_dtype if y_zero_point is None else y_zero_point.dtype
        if out_dtype not in _INTEGER_RANGES:
            raise NotImplementedError(f"QuantizeLinear to {out_dtype} is not implemented")
        scale = _broadcast_param(y_scale, x, self.axis, self.block_size)
        # The division runs in the scale's type, or the `precision` attribute's.
        compute = self.precision_dtype or scale.dtype
        scaled = torch.round(x.to(compute) / scale.to(compute))  # round half to even
        q = scaled.to(torch.float64)
        if y_zero_point is not None:
            q = q + _broadcast_param(y_zero_point, x, self.axis, self.block_size).to(torch.float64)
        low, high = _INTEGER_RANGES[out_dtype]
        return q.clamp(low, high).to(out_dtype)


@register("QuantizeLinear", [10, 13, 19, 21, 23, 24, 25])
def convert_quantize_linear(node, graph):
    a = node.attributes
    if present(node, 2):
        zero_point_type = elem_type(node.input_values[2], graph)
    else:
        zero_point_type = None
    onnx_type = zero_point_type or a.get("output_dtype") or TensorProto.UINT8
    out_dtype = _checked_type(onnx_type, _QUANTIZED_TYPES, "QuantizeLinear")
    precision = a.get("precision")
    precision_dtype = torch_dtype(precision, "QuantizeLinear precision") if precision else None
    module = OnnxQuantizeLinear(out_dtype, a.get("axis", 1), a.get("block_size", 0), precision_dtype)
    return result(module, node)


class OnnxDequantizeLinear(Module):
    def __init__(self, axis, block_size, out_dtype):
        super().__init__()
        self.axis = axis
        self.block_size = block_size
        self.out_dtype = out_dtype

    def forward(self, x, x_scale, x_zero_point=None):
        scale = _broadcast_param(x_scale, x, self.axis, self.block_size)
        # As the reference: the difference in float32, then times the scale.
        dx = x.to(torch.float32)
        if x_zero_point is not None:
            dx = dx - _broadcast_param(x_zero_point, x, self.axis, self.block_size).to(torch.float32)
        out_dtype = self.out_dtype or x_scale.dtype
        return (dx * scale).to(out_dtype)


@register("DequantizeLinear", [10, 13, 19, 21, 23, 24, 25])
def convert_dequantize_linear(node, graph):
    a = node.attributes
    x_type = elem_type(node.input_values[0], graph)
    if x_type is not None:
        _checked_type(x_type, _DEQUANTIZABLE_TYPES, "DequantizeLinear")
    output_dtype = a.get("output_dtype")
    out_dtype = torch_dtype(output_dtype, "DequantizeLinear output_dtype") if output_dtype else None
    module = OnnxDequantizeLinear(a.get("axis", 1), a.get("block_size", 0), out_dtype)
    return result(module, node)


class OnnxDynamicQuantizeLinear(Module):
    """uint8 quantization with the scale and zero point of x's own range
    (widened to include 0), computed in float32: scale = (max - min) / 255
    (1 where the range is empty, as onnxruntime has it), zero point
    round(clip(-min / scale)), y = clip(round(x / scale) + zero point)."""

    def forward(self, x):
        x = x.to(torch.float32)
        high = torch.clamp(x.max(), min=0)
        low = torch.clamp(x.min(), max=0)
        scale = torch.where(high == low, torch.ones_like(high), (high - low) / 255)
        zero_point = torch.round(torch.clamp(-low / scale, 0, 255))
        y = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)
        return y.to(torch.uint8), scale, zero_point.to(torch.uint8)


@register("DynamicQuantizeLinear", [11])
def convert_dynamic_quantize_linear(node, graph):
    return result(OnnxDynamicQuantizeLinear(), node)


def _offset(x, zero_point, axis):
    """x - zero_point as int64; a zero point of several values applies along
    axis (MatMulInteger's A per row: -2; B per column: -1; ConvInteger's W
    per output channel: 0)."""
    x = x.to(torch.int64)
    if zero_point is None:
        return x
    zero_point = zero_point.to(torch.int64)
    if zero_point.numel() == 1:
        return x - zero_point.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return x - zero_point.reshape(shape)


class OnnxMatMulInteger(Module):
    """(A - a_zero_point) @ (B - b_zero_point), exact, as int32."""

    def forward(self, a, b, a_zero_point=None, b_zero_point=None):
        a, b = _offset(a, a_zero_point, -2), _offset(b, b_zero_point, -1)
        # float64 holds every sum of 8-bit products exactly; integer matmul
        # is not implemented on every torch backend.
        return torch.matmul(a.to(torch.float64), b.to(torch.float64)).round().to(torch.int32)


@register("MatMulInteger", [10])
def convert_matmul_integer(node, graph):
    return result_skipping_absent(OnnxMatMulInteger(), node)


class OnnxConvInteger(Module):
    """Conv of (x - x_zero_point) and (w - w_zero_point), exact, as int32."""

    def __init__(self, strides, pads, dilations, group):
        super().__init__()
        self.conv = OnnxConv(strides, pads, dilations, group, "NOTSET")

    def forward(self, x, w, x_zero_point=None, w_zero_point=None):
        x, w = _offset(x, x_zero_point, 1), _offset(w, w_zero_point, 0)
        return self.conv(x.to(torch.float64), w.to(torch.float64)).round().to(torch.int32)


@register("ConvInteger", [10])
def convert_conv_integer(node, graph):
    a = node.attributes
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise NotImplementedError("ConvInteger with auto_pad")
    module = OnnxConvInteger(a.get("strides"), a.get("pads"), a.get("dilations"), a.get("group", 1))
    return result_skipping_absent(module, node)
