"""Cast and CastLike at the schema versions onnx2torch 1.5.15 lacks.

onnx2torch has Cast 9 and 13 only. Later versions added types (float8 at 19,
4-bit at 21, float4 at 23, float8e8m0 at 24, 2-bit at 25, float6 at 28) and
the `saturate` (19) and `round_mode` (24) attributes, which only affect
float8 targets. Numeric casts between the types torch has behave as ONNX
specifies: float to integer truncates, integer narrowing wraps, anything to
bool is `!= 0`.
"""

import torch
from onnx import TensorProto

from ._common import FLOAT8_DTYPES, Module, elem_type, onnx_type_name, register, result, torch_dtype


def _float8_limits(dtype):
    """Largest finite value, half the spacing just below it, and whether its
    mantissa is odd (then a tie at max + half rounds up, past max)."""
    bits = torch.tensor(torch.finfo(dtype).max).to(dtype).view(torch.uint8)
    largest = float(bits.view(dtype).float())
    below = float((bits - 1).view(dtype).float())
    return largest, (largest - below) / 2, bool(int(bits) & 1)


_FLOAT8_LIMITS = {dtype: _float8_limits(dtype) for dtype in FLOAT8_DTYPES}


def cast_to(x, dtype, saturate=True):
    if x.dtype == dtype:
        return x
    if dtype in FLOAT8_DTYPES and x.is_floating_point():
        if x.dtype in FLOAT8_DTYPES:  # torch has no arithmetic in float8
            x = x.float()
        largest, half_step, odd = _FLOAT8_LIMITS[dtype]
        clamped = x.clamp(-largest, largest)  # NaN stays NaN
        if saturate:
            # ONNX saturates infinities and out-of-range values to +-max for
            # every float8 type.
            return clamped.to(dtype)
        # Without saturation a value whose rounding passes max becomes NaN,
        # or +-inf in E5M2, the only one of these types with infinities.
        magnitude = x.abs()
        edge = largest + half_step
        overflow = (magnitude > edge) | ((magnitude == edge) & odd)
        if dtype == torch.float8_e5m2:
            special = torch.copysign(torch.full_like(x, float("inf")), x)
        else:
            special = torch.full_like(x, float("nan"))
        return torch.where(overflow, special, clamped).to(dtype)
    return x.to(dtype)


class OnnxCastTo(Module):
    """Cast to a dtype fixed by the `to` attribute."""

    def __init__(self, dtype, saturate=True):
        super().__init__()
        self.to_dtype = dtype
        self.saturate = bool(saturate)

    def forward(self, x):
        return cast_to(x, self.to_dtype, self.saturate)


class OnnxCastLike(Module):
    """Cast to the dtype of the second input, read when the model runs."""

    def __init__(self, saturate=True):
        super().__init__()
        self.saturate = bool(saturate)

    def forward(self, x, target_type):
        return cast_to(x, target_type.dtype, self.saturate)


_CAST1_NAMES = {name: value for name, value in TensorProto.DataType.items()}


@register("Cast", [1, 6, 19, 21, 23, 24, 25, 28])
def convert_cast(node, graph):
    to = node.attributes["to"]
    if isinstance(to, str):  # Cast-1 names the type ("FLOAT")
        if to.upper() not in _CAST1_NAMES:
            raise ValueError(f"Cast: unknown type name {to!r}")
        to = _CAST1_NAMES[to.upper()]
    dtype = torch_dtype(to, f"Cast to {onnx_type_name(to)}")
    return result(OnnxCastTo(dtype, node.attributes.get("saturate", 1)), node)


@register("CastLike", [15, 19, 21, 23, 24, 25])
def convert_cast_like(node, graph):
    target = elem_type(node.input_values[1], graph)
    if target is not None:  # fail at conversion for types torch lacks
        torch_dtype(target, f"CastLike to {onnx_type_name(target)}")
    return result(OnnxCastLike(node.attributes.get("saturate", 1)), node)
