"""QuantizeLinear / DequantizeLinear (10, 13, 19, 21, 23, 24, 25).

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

from ._common import Module, elem_type, normalize_axis, onnx_type_name, present, register, result, torch_dtype

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
