"""Quantized graphs.

QDQ: QuantizeLinear / DequantizeLinear (10, 13, 19, 21, 23, 24, 25, and
onnxruntime's com.microsoft versions). Dynamic quantization:
DynamicQuantizeLinear, MatMulInteger, ConvInteger, and onnxruntime's fused
DynamicQuantizeMatMul and MatMulIntegerToFloat. QOperator: QLinearConv,
QLinearMatMul and onnxruntime's QGemm, QLinearAdd, QLinearMul,
QLinearSigmoid, QLinearLeakyRelu, QLinearConcat, QLinearWhere,
QLinearAveragePool, QLinearGlobalAveragePool, QLinearSoftmax, NhwcMaxPool
(see the QOperator section below).

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

import math

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
from .contrib import MICROSOFT
from .conv import OnnxConv
from .pooling import OnnxPool, _geometry, _pad, _windows, average_divisor

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


def _auto_pad(node):
    auto_pad = node.attributes.get("auto_pad", "NOTSET")
    return auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad


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

    def __init__(self, strides, pads, dilations, group, auto_pad="NOTSET"):
        super().__init__()
        self.conv = OnnxConv(strides, pads, dilations, group, auto_pad)

    def forward(self, x, w, x_zero_point=None, w_zero_point=None):
        x, w = _offset(x, x_zero_point, 1), _offset(w, w_zero_point, 0)
        return self.conv(x.to(torch.float64), w.to(torch.float64)).round().to(torch.int32)


@register("ConvInteger", [10])
def convert_conv_integer(node, graph):
    a = node.attributes
    module = OnnxConvInteger(a.get("strides"), a.get("pads"), a.get("dilations"), a.get("group", 1), _auto_pad(node))
    return result_skipping_absent(module, node)


# --- QOperator graphs --------------------------------------------------------
#
# onnxruntime's quantization tool writes these (QuantFormat.QOperator): the
# ONNX ops QLinearConv and QLinearMatMul, and onnxruntime's com.microsoft ops
# (QGemm, QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu,
# QLinearConcat, QLinearAveragePool, QLinearGlobalAveragePool,
# QLinearSoftmax, QLinearWhere); its graph optimizer writes
# DynamicQuantizeMatMul, MatMulIntegerToFloat and com.microsoft Q/DQ.
#
# Integer sums are exact (float64 holds them). Where the specification
# leaves the float arithmetic of a requantisation open, it is done in
# float32 in the order onnxruntime's CPU kernels use on x86-64 (with AVX2
# and FMA), so that the 8-bit results agree exactly, not only to a rounding
# step, with the onnxruntime session verification compares against:
# requantise(v) = saturate(round_half_even(v) + zero_point).


def _per_tensor(param, what):
    """A scale or zero point that must hold one value, as a 0-d tensor."""
    if param.numel() != 1:
        raise NotImplementedError(f"{what} with {param.numel()} values (per-tensor only)")
    return param.reshape(())


def _float(param):
    return param.to(torch.float32)


def _zero_point(param, what):
    """A per-tensor zero point in float32; 0 where it is left out."""
    return torch.zeros((), dtype=torch.float32) if param is None else _float(_per_tensor(param, what))


def _saturate(q, dtype):
    low, high = _INTEGER_RANGES[dtype]
    return q.clamp(low, high).to(dtype)


def _requantize(scaled, zero_point, dtype):
    """int32 sums already times their float32 scale, as MLAS requantises."""
    q = torch.round(scaled)
    if zero_point is not None:
        q = q + _float(zero_point)
    return _saturate(q, dtype)


def _dequantize(x, scale, zero_point):
    """x_scale * (x - x_zero_point) in float32, per tensor."""
    dx = _float(x)
    if zero_point is not None:
        dx = dx - _float(zero_point)
    return _float(scale) * dx


def _quantize(x, scale, zero_point, dtype):
    """Saturate(round(x / scale) + zero_point), per tensor, in float32."""
    return _requantize(x / _float(scale), zero_point, dtype)


def _requantized(x, x_scale, x_zero_point, y_scale, y_zero_point, dtype):
    """x from its own quantisation to the output's (QLinearConcat, QLinearWhere)."""
    return _quantize(_dequantize(x, x_scale, x_zero_point), y_scale, y_zero_point, dtype)


def _along(param, axis, rank):
    """A scale or zero point of one value per index of `axis`, shaped to
    broadcast over a tensor of `rank`; a single value as a 0-d tensor."""
    if param.numel() == 1:
        return param.reshape(())
    if param.dim() != 1:
        return param
    shape = [1] * rank
    shape[axis] = -1
    return param.reshape(shape)


def _eight_bit(onnx_type, what):
    if onnx_type is None:
        return None
    return _checked_type(onnx_type, {TensorProto.UINT8: torch.uint8, TensorProto.INT8: torch.int8}, what)


def _input_type(node, index, graph, what):
    """The torch dtype of an 8-bit input, or None where the graph does not say."""
    if not present(node, index):
        return None
    return _eight_bit(elem_type(node.input_values[index], graph), what)


def _to_channels_first(x):
    return x.movedim(-1, 1)


def _to_channels_last(x):
    return x.movedim(1, -1)


class OnnxQLinearConv(Module):
    """Conv of (x - x_zero_point) and (w - w_zero_point) (per output channel)
    plus the int32 bias, requantised with x_scale * w_scale / y_scale."""

    def __init__(self, strides, pads, dilations, group, auto_pad, dtype, channels_last=False):
        super().__init__()
        self.conv = OnnxConv(strides, pads, dilations, group, auto_pad)
        self.dtype, self.channels_last = dtype, channels_last

    def forward(self, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, bias=None):
        if self.channels_last:
            x = _to_channels_first(x)
        x = _offset(x, _per_tensor(x_zero_point, "QLinearConv x_zero_point"), 1)
        acc = self.conv(x.to(torch.float64), _offset(w, w_zero_point, 0).to(torch.float64))
        if bias is not None:
            acc = acc + _along(bias.to(torch.float64), 1, acc.dim())
        scale = _float(_per_tensor(x_scale, "QLinearConv x_scale")) * _along(_float(w_scale), 1, acc.dim())
        scale = scale / _float(_per_tensor(y_scale, "QLinearConv y_scale"))
        y = _requantize(
            acc.to(torch.float32) * scale,
            _per_tensor(y_zero_point, "QLinearConv y_zero_point"),
            self.dtype or y_zero_point.dtype,
        )
        return _to_channels_last(y) if self.channels_last else y


@register("QLinearConv", [10])
@register("QLinearConv", [1], domain=MICROSOFT)
def convert_qlinear_conv(node, graph):
    a = node.attributes
    module = OnnxQLinearConv(
        a.get("strides"),
        a.get("pads"),
        a.get("dilations"),
        a.get("group", 1),
        _auto_pad(node),
        _input_type(node, 7, graph, "QLinearConv"),
        bool(a.get("channels_last", 0)),
    )
    return result_skipping_absent(module, node)


def _matmul_offset(x, zero_point, axis):
    """x - zero_point as float64, the zero point per row of A (axis -2) or
    per column of B (axis -1) where it has several values."""
    x = x.to(torch.float64)
    if zero_point is None:
        return x
    zero_point = zero_point.to(torch.float64)
    if zero_point.numel() == 1:
        return x - zero_point.reshape(())
    if zero_point.dim() == 1 and axis == -2:
        return x - zero_point.reshape(-1, 1)
    return x - zero_point


def _row_param(param):
    return param.reshape(()) if param.numel() == 1 else (param.reshape(-1, 1) if param.dim() == 1 else param)


class OnnxQLinearMatMul(Module):
    """(a - a_zero_point) @ (b - b_zero_point), requantised with
    a_scale * b_scale / y_scale; a's parameters may be per row, b's per
    column."""

    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
        acc = torch.matmul(_matmul_offset(a, a_zero_point, -2), _matmul_offset(b, b_zero_point, -1))
        b_scale = b_scale.reshape(()) if b_scale.numel() == 1 else b_scale
        scale = _float(_row_param(a_scale)) * _float(b_scale) / _float(_per_tensor(y_scale, "QLinearMatMul y_scale"))
        y_zero_point = _per_tensor(y_zero_point, "QLinearMatMul y_zero_point")
        return _requantize(acc.to(torch.float32) * scale, y_zero_point, self.dtype or y_zero_point.dtype)


@register("QLinearMatMul", [10, 21])
def convert_qlinear_matmul(node, graph):
    return result(OnnxQLinearMatMul(_input_type(node, 7, graph, "QLinearMatMul")), node)


class OnnxQGemm(Module):
    """(A - a_zero_point) @ (B - b_zero_point) + C in int32 (C quantized at
    scale alpha * a_scale * b_scale), times that scale: the float output
    where y_scale is left out, else requantised with the scale divided by
    y_scale. b's parameters may be per column."""

    def __init__(self, alpha, trans_a, trans_b, dtype):
        super().__init__()
        self.trans_a, self.trans_b, self.dtype = trans_a, trans_b, dtype
        # float32, as the kernel multiplies: alpha * a_scale * b_scale
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32), persistent=False)

    def forward(self, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c=None, y_scale=None, y_zero_point=None):
        a = _offset(a, _per_tensor(a_zero_point, "QGemm a_zero_point"), 0).to(torch.float64)
        a = a.t() if self.trans_a else a
        b = b.t() if self.trans_b else b
        acc = torch.matmul(a, _matmul_offset(b, b_zero_point, -1))
        if c is not None:
            acc = acc + c.to(torch.float64)
        b_scale = b_scale.reshape(()) if b_scale.numel() == 1 else b_scale
        scale = self.alpha * _float(_per_tensor(a_scale, "QGemm a_scale")) * _float(b_scale)
        if y_scale is None:
            return acc.to(torch.float32) * scale
        scale = scale / _float(_per_tensor(y_scale, "QGemm y_scale"))
        y_zero_point = _per_tensor(y_zero_point, "QGemm y_zero_point")
        return _requantize(acc.to(torch.float32) * scale, y_zero_point, self.dtype or y_zero_point.dtype)


@register("QGemm", [1], domain=MICROSOFT)
def convert_qgemm(node, graph):
    a = node.attributes
    if present(node, 7) != present(node, 8):
        raise NotImplementedError("QGemm with only one of y_scale and y_zero_point")
    module = OnnxQGemm(
        float(a.get("alpha", 1.0)),
        bool(a.get("transA", 0)),
        bool(a.get("transB", 0)),
        _input_type(node, 8, graph, "QGemm"),
    )
    return result_skipping_absent(module, node)


def _one_per_run(shape, other):
    """Whether onnxruntime's broadcasting loop gives this operand one value
    per run along the output's innermost axis longer than 1 (or it has one
    element): the add kernel then takes it as its second operand."""
    rank = max(len(shape), len(other))
    shape = [1] * (rank - len(shape)) + list(shape)
    other = [1] * (rank - len(other)) + list(other)
    for mine, theirs in zip(reversed(shape), reversed(other)):
        if max(mine, theirs) > 1:
            return mine == 1
    return True


def _fma(x, y, z):
    """x * y + z rounded to float32 as an FMA instruction does: the float64
    product of two float32 values is exact, and so is the sum for operands
    of this size (a rounding step or two of float32 apart at most)."""
    return (x.to(torch.float64) * y.to(torch.float64) + z.to(torch.float64)).to(torch.float32)


class OnnxQLinearBinary(Module):
    """QLinearAdd: C = (A_scale * (A - A_zp) + B_scale * (B - B_zp)) / C_scale + C_zp;
    QLinearMul: C = A_scale * B_scale / C_scale * (A - A_zp) * (B - B_zp) + C_zp;
    with numpy broadcasting, rounded half to even and saturated.

    In float32, as MLAS computes it on x86 with AVX2. Add: with ratios
    r = scale / C_scale, the zero points folded into one constant
    C_zp - (r0 * zp0 + r1 * zp1), then r1 * X1 and r0 * X0 added with FMAs
    (X0 the operand that is not broadcast along the innermost axis, else
    A). Mul: the exact integer product times A_scale * B_scale / C_scale,
    plus C_zp."""

    def __init__(self, op, dtype):
        super().__init__()
        self.op, self.dtype = op, dtype

    def forward(self, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point=None):
        name = f"QLinear{self.op}"
        dtype = self.dtype or a.dtype
        a_scale, b_scale = _float(_per_tensor(a_scale, name)), _float(_per_tensor(b_scale, name))
        c_scale = _float(_per_tensor(c_scale, name))
        za, zb = _zero_point(a_zero_point, name), _zero_point(b_zero_point, name)
        zc = _zero_point(c_zero_point, name)
        if self.op == "Mul":
            product = (_float(a) - za) * (_float(b) - zb)  # exact: |product| < 2^17
            return _saturate(torch.round(product * (a_scale * b_scale / c_scale) + zc), dtype)
        terms = [(_float(a), a_scale / c_scale, za), (_float(b), b_scale / c_scale, zb)]
        if _one_per_run(a.shape, b.shape):
            terms.reverse()
        (x0, r0, z0), (x1, r1, z1) = terms
        fixed = zc - _fma(r0, z0, r1 * z1)
        return _saturate(torch.round(_fma(x0, r0, _fma(x1, r1, fixed))), dtype)


def _binary_converter(op):
    def convert(node, graph):
        module = OnnxQLinearBinary(op, _input_type(node, 0, graph, f"QLinear{op}"))
        return result_skipping_absent(module, node)

    return convert


register("QLinearAdd", [1], domain=MICROSOFT)(_binary_converter("Add"))
register("QLinearMul", [1], domain=MICROSOFT)(_binary_converter("Mul"))


class OnnxQLinearLookup(Module):
    """y = quantize(f(dequantize(x))) elementwise, per tensor: the table of
    256 values onnxruntime builds, computed for each element.
    f: sigmoid, or leaky_relu (x if x >= 0 else alpha * x)."""

    def __init__(self, kind, alpha=0.01):
        super().__init__()
        self.kind = kind
        # float32, as the kernel multiplies
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32), persistent=False)

    def forward(self, x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None):
        name = f"QLinear{self.kind}"
        v = _dequantize(
            x, _per_tensor(x_scale, name), None if x_zero_point is None else _per_tensor(x_zero_point, name)
        )
        v = torch.sigmoid(v) if self.kind == "Sigmoid" else torch.where(v >= 0, v, self.alpha * v)
        y_zero_point = None if y_zero_point is None else _per_tensor(y_zero_point, name)
        return _quantize(v, _per_tensor(y_scale, name), y_zero_point, x.dtype)


@register("QLinearSigmoid", [1], domain=MICROSOFT)
def convert_qlinear_sigmoid(node, graph):
    _input_type(node, 0, graph, "QLinearSigmoid")
    return result_skipping_absent(OnnxQLinearLookup("Sigmoid"), node)


@register("QLinearLeakyRelu", [1], domain=MICROSOFT)
def convert_qlinear_leaky_relu(node, graph):
    _input_type(node, 0, graph, "QLinearLeakyRelu")
    return result_skipping_absent(OnnxQLinearLookup("LeakyRelu", float(node.attributes.get("alpha", 0.01))), node)


class OnnxQLinearConcat(Module):
    """Concat of the inputs, each requantised from its own scale and zero
    point to the output's. Inputs: y_scale, y_zero_point, then (x, scale,
    zero point) per tensor."""

    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, y_scale, y_zero_point, *tuples):
        y_scale = _per_tensor(y_scale, "QLinearConcat y_scale")
        y_zero_point = _per_tensor(y_zero_point, "QLinearConcat y_zero_point")
        parts = []
        for i in range(0, len(tuples), 3):
            x, x_scale, x_zero_point = tuples[i : i + 3]
            x_scale = _per_tensor(x_scale, "QLinearConcat scale")
            x_zero_point = _per_tensor(x_zero_point, "QLinearConcat zero point")
            parts.append(_requantized(x, x_scale, x_zero_point, y_scale, y_zero_point, y_zero_point.dtype))
        return torch.cat(parts, dim=normalize_axis(self.axis, parts[0].dim()))


@register("QLinearConcat", [1], domain=MICROSOFT)
def convert_qlinear_concat(node, graph):
    count = len(node.input_values)
    if count < 5 or (count - 2) % 3:
        raise ValueError(
            f"QLinearConcat needs y_scale, y_zero_point and (tensor, scale, zero point) triples, got {count} inputs"
        )
    if "axis" not in node.attributes:
        raise ValueError("QLinearConcat: the axis attribute is required")
    return result(OnnxQLinearConcat(node.attributes["axis"]), node)


class OnnxQLinearWhere(Module):
    """where(condition, X, Y), X and Y requantised to the output's scale and
    zero point."""

    def forward(self, condition, x, x_scale, x_zero_point, y, y_scale, y_zero_point, z_scale, z_zero_point):
        name = "QLinearWhere"
        z_scale, z_zero_point = _per_tensor(z_scale, name), _per_tensor(z_zero_point, name)
        x = _requantized(
            x, _per_tensor(x_scale, name), _per_tensor(x_zero_point, name), z_scale, z_zero_point, z_zero_point.dtype
        )
        y = _requantized(
            y, _per_tensor(y_scale, name), _per_tensor(y_zero_point, name), z_scale, z_zero_point, z_zero_point.dtype
        )
        return torch.where(condition.to(torch.bool), x, y)


@register("QLinearWhere", [1], domain=MICROSOFT)
def convert_qlinear_where(node, graph):
    return result(OnnxQLinearWhere(), node)


class OnnxQLinearGlobalAveragePool(Module):
    """The int32 sum over the spatial axes less x_zero_point per element,
    requantised with x_scale / (y_scale * spatial size), as MLAS does.
    channels_last: the channels are the last axis."""

    def __init__(self, channels_last):
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x, x_scale, x_zero_point, y_scale, y_zero_point):
        name = "QLinearGlobalAveragePool"
        if self.channels_last:
            x = _to_channels_first(x)
        dims = tuple(range(2, x.dim()))
        size = 1
        for d in dims:
            size *= x.shape[d]
        x_zero_point = _per_tensor(x_zero_point, name)
        acc = x.to(torch.int64).sum(dim=dims, keepdim=True) - x_zero_point.to(torch.int64) * size
        size = torch.tensor(float(size), dtype=torch.float32)
        scale = _float(_per_tensor(x_scale, name)) / (_float(_per_tensor(y_scale, name)) * size)
        y_zero_point = _per_tensor(y_zero_point, name)
        y = _requantize(acc.to(torch.float32) * scale, y_zero_point, y_zero_point.dtype)
        return _to_channels_last(y) if self.channels_last else y


@register("QLinearGlobalAveragePool", [1], domain=MICROSOFT)
def convert_qlinear_global_average_pool(node, graph):
    return result(OnnxQLinearGlobalAveragePool(bool(node.attributes.get("channels_last", 0))), node)


class OnnxQLinearAveragePool(Module):
    """AveragePool of the dequantized input (float32, each window summed in
    row-major order as onnxruntime does), then round(y / y_scale + y_zp).
    Windows and divisors as AveragePool's (pooling.py): with
    count_include_pad, a ceil_mode window past the end padding divides by
    the padded input it covers (onnxruntime's kernel by the whole kernel)."""

    def __init__(self, kernel, strides, pads, auto_pad, ceil_mode, count_include_pad, channels_last):
        super().__init__()
        n = len(kernel)
        self.kernel, self.strides = list(kernel), list(strides or [1] * n)
        self.pads, self.auto_pad = list(pads or [0] * (2 * n)), auto_pad
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.channels_last = channels_last

    def forward(self, x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None):
        name = "QLinearAveragePool"
        dtype = x.dtype
        if self.channels_last:
            x = _to_channels_first(x)
        x_zero_point = None if x_zero_point is None else _per_tensor(x_zero_point, name)
        v = _dequantize(x, _per_tensor(x_scale, name), x_zero_point)
        spatial = list(v.shape[2:])
        ones = [1] * len(self.kernel)
        geometry = _geometry(spatial, self.kernel, self.strides, ones, self.pads, self.auto_pad, self.ceil_mode)
        windows = _windows(_pad(v, geometry, 0), geometry, self.kernel, self.strides, ones).flatten(-len(self.kernel))
        total = windows[..., 0]
        for i in range(1, windows.shape[-1]):  # one at a time: float32 sums in the kernel's order
            total = total + windows[..., i]
        divisor = average_divisor(
            spatial, geometry, self.kernel, self.strides, ones, self.count_include_pad, torch.float32, v.device
        )
        y = (total / divisor) / _float(_per_tensor(y_scale, name))
        if y_zero_point is not None:
            y = y + _float(_per_tensor(y_zero_point, name))
        y = _saturate(torch.round(y), dtype)
        return _to_channels_last(y) if self.channels_last else y


@register("QLinearAveragePool", [1], domain=MICROSOFT)
def convert_qlinear_average_pool(node, graph):
    a = node.attributes
    if "kernel_shape" not in a:
        raise ValueError("QLinearAveragePool: kernel_shape is required")
    module = OnnxQLinearAveragePool(
        a["kernel_shape"],
        a.get("strides"),
        a.get("pads"),
        _auto_pad(node),
        a.get("ceil_mode", 0),
        a.get("count_include_pad", 0),
        bool(a.get("channels_last", 0)),
    )
    return result_skipping_absent(module, node)


# Keeps the sum of a softmax row of exponentials below float32's largest
# value: onnxruntime scales them up to that range, less this margin (e^5).
_SOFTMAX_RESERVE = 5.0
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


# Up to this many terms, a float32 sum is added up one term at a time, in
# the kernel's order (its rounding then matches); longer rows are summed in
# float64, within a few float32 units of the kernel's sum.
_SEQUENTIAL_SUM = 1024


def _float32_sum(x, axis):
    length = x.shape[axis]
    if length > _SEQUENTIAL_SUM:
        return x.to(torch.float64).sum(dim=axis, keepdim=True).to(torch.float32)
    total = x.narrow(axis, 0, 1)
    for i in range(1, length):
        total = total + x.narrow(axis, i, 1)
    return total


class OnnxQLinearSoftmax(Module):
    """Softmax of the dequantized input, quantized: y = saturate(round(p /
    y_scale) + y_zero_point). As onnxruntime computes it: exponentials
    exp((x - max) * x_scale + c) in float64 stored as float32 (c raises them
    towards float32's range), their float32 sum, then round(e * (1 /
    y_scale) / sum); onnxruntime multiplies by floor(1 / y_scale), the same
    for the quantization tool's y_scale of 1/256. Before opset 13 the input
    is taken as 2-D at axis."""

    def __init__(self, axis, opset):
        super().__init__()
        self.axis, self.opset = axis, opset

    def forward(self, x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None):
        name = "QLinearSoftmax"
        axis = normalize_axis(self.axis, x.dim())
        shape = x.shape
        if self.opset < 13:
            x = x.reshape(list(shape[:axis]) + [-1])
            axis = x.dim() - 1
        length = x.shape[axis]
        xs = _per_tensor(x_scale, name).to(torch.float64)
        # (x - x_zero_point cancels: only differences to the maximum count)
        d = x.to(torch.float64) - x.amax(dim=axis, keepdim=True).to(torch.float64)
        c = max(0.0, math.log(_FLOAT32_MAX / length) - _SOFTMAX_RESERVE)
        e = torch.exp((d + c / xs) * xs).to(torch.float32)
        total = _float32_sum(e, axis)
        scaled = (e * (1.0 / _float(_per_tensor(y_scale, name)))) / total
        y = _requantize(scaled, None if y_zero_point is None else _per_tensor(y_zero_point, name), x.dtype)
        return y.reshape(shape)


@register("QLinearSoftmax", [1], domain=MICROSOFT)
def convert_qlinear_softmax(node, graph):
    a = node.attributes
    if "opset" not in a:
        raise ValueError("QLinearSoftmax: the opset attribute is required")
    opset = int(a["opset"])
    axis = a.get("axis", 1 if opset < 13 else -1)
    _input_type(node, 0, graph, "QLinearSoftmax")
    return result_skipping_absent(OnnxQLinearSoftmax(axis, opset), node)


def _matmul_to_float(a, b, a_scale, b_scale, a_zero_point, b_zero_point, bias):
    """(A - a_zero_point) @ (B - b_zero_point) times a_scale * b_scale (b's
    per column or per tensor), plus bias, in float32."""
    a_zero_point = None if a_zero_point is None else _per_tensor(a_zero_point, "a_zero_point")
    acc = torch.matmul(_matmul_offset(a, a_zero_point, -2), _matmul_offset(b, b_zero_point, -1))
    b_scale = b_scale.reshape(()) if b_scale.numel() == 1 else b_scale
    y = acc.to(torch.float32) * (_float(_per_tensor(a_scale, "a_scale")) * _float(b_scale))
    return y if bias is None else y + bias


class OnnxMatMulIntegerToFloat(Module):
    def forward(self, a, b, a_scale, b_scale, a_zero_point=None, b_zero_point=None, bias=None):
        return _matmul_to_float(a, b, a_scale, b_scale, a_zero_point, b_zero_point, bias)


class OnnxDynamicQuantizeMatMul(Module):
    """MatMulIntegerToFloat of A quantized as DynamicQuantizeLinear does."""

    def __init__(self):
        super().__init__()
        self.quantize = OnnxDynamicQuantizeLinear()

    def forward(self, a, b, b_scale, b_zero_point=None, bias=None):
        a, a_scale, a_zero_point = self.quantize(a)
        return _matmul_to_float(a, b, a_scale, b_scale, a_zero_point, b_zero_point, bias)


@register("MatMulIntegerToFloat", [1], domain=MICROSOFT)
def convert_matmul_integer_to_float(node, graph):
    return result_skipping_absent(OnnxMatMulIntegerToFloat(), node)


@register("DynamicQuantizeMatMul", [1], domain=MICROSOFT)
def convert_dynamic_quantize_matmul(node, graph):
    return result_skipping_absent(OnnxDynamicQuantizeMatMul(), node)


class OnnxNhwcMaxPool(Module):
    """MaxPool of a channels-last tensor (onnxruntime's layout optimizer
    writes it for 8-bit tensors between channels-last QLinearConvs)."""

    def __init__(self, pool):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        return _to_channels_last(self.pool(_to_channels_first(x)))


@register("NhwcMaxPool", [1], domain=MICROSOFT)
def convert_nhwc_max_pool(node, graph):
    a = node.attributes
    if "kernel_shape" not in a:
        raise ValueError("NhwcMaxPool: kernel_shape is required")
    pool = OnnxPool(
        "MaxPool",
        a["kernel_shape"],
        strides=a.get("strides"),
        dilations=a.get("dilations"),
        pads=a.get("pads"),
        auto_pad=_auto_pad(node),
        ceil_mode=a.get("ceil_mode", 0),
    )
    return result(OnnxNhwcMaxPool(pool), node)


# onnxruntime's own QuantizeLinear / DequantizeLinear: the ONNX ops with an
# axis attribute (per-axis parameters), for 8- and 16-bit types.
register("QuantizeLinear", [1], domain=MICROSOFT)(convert_quantize_linear)
register("DequantizeLinear", [1], domain=MICROSOFT)(convert_dequantize_linear)
