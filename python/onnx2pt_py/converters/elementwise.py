"""Elementwise ops onnx2torch 1.5.15 lacks: Mod 28, BitShift, Bitwise*, Gelu,
Mish, Swish, ThresholdedRelu, Shrink and the hyperbolic functions; Clip
with bounds given at run time or left out by an empty name; IsInf with its
detect_negative and detect_positive; SwiGLU; Pow's result type; Selu with
its own alpha and gamma."""

import torch
import torch.nn.functional as F
from torch import nn

from ._common import Module, constant, present, register, replace, replaced, result
from .unsigned import wrap_if_unsigned


class OnnxMod(Module):
    """Mod-28: `fmod=0` floors the quotient (Python's %), now for floats too;
    `fmod=1` truncates it (C fmod), now for integers too."""

    def __init__(self, fmod):
        super().__init__()
        if fmod not in (0, 1):
            raise ValueError(f"Mod: fmod must be 0 or 1, got {fmod}")
        self.fmod = fmod

    def forward(self, a, b):
        if self.fmod:
            return torch.fmod(a, b)
        out = torch.remainder(a, b)
        if out.is_floating_point():
            # A zero result carries the divisor's sign (0 % -2 is -0), which
            # torch.remainder leaves positive.
            out = torch.where(out == 0, torch.copysign(torch.zeros_like(out), b), out)
        return out


@register("Mod", [28])
def convert_mod(node, graph):
    return wrap_if_unsigned(result(OnnxMod(node.attributes.get("fmod", 0)), node), node, graph, "divide", "Mod")


_SIGNED_OF_UNSIGNED = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}
_BITS = {
    torch.uint8: 8,
    torch.int8: 8,
    torch.uint16: 16,
    torch.int16: 16,
    torch.uint32: 32,
    torch.int32: 32,
    torch.uint64: 64,
    torch.int64: 64,
}


def _as_signed(x):
    """uint16/32/64 reinterpreted as the signed type of the same width: torch
    has few kernels for them, and bitwise results only depend on the bits."""
    signed = _SIGNED_OF_UNSIGNED.get(x.dtype)
    return x if signed is None else x.view(signed)


class OnnxBitShift(Module):
    """Shifts with ONNX's rules for shift amounts out of [0, bits): the result
    is what sign extension alone gives (-1 for a negative X shifted right,
    else 0). Right shifts of signed types are arithmetic, of unsigned logical."""

    def __init__(self, left):
        super().__init__()
        self.left = left

    def forward(self, x, y):
        x, y = torch.broadcast_tensors(x, y)
        dtype = x.dtype
        bits = _BITS[dtype]
        unsigned = dtype in _SIGNED_OF_UNSIGNED or dtype == torch.uint8
        xs, ys = _as_signed(x), _as_signed(y).to(torch.int64)
        valid = (ys >= 0) & (ys < bits)
        shift = torch.where(valid, ys, torch.zeros_like(ys)).to(xs.dtype)
        if self.left:
            out = torch.bitwise_left_shift(xs, shift)
            fill = torch.zeros_like(xs)
        else:
            out = torch.bitwise_right_shift(xs, shift)
            if unsigned and dtype != torch.uint8:
                # An arithmetic shift of the signed view: clear the copies of the sign bit.
                keep = torch.bitwise_left_shift(torch.ones_like(xs), (bits - shift.to(torch.int64)).to(xs.dtype)) - 1
                out = torch.where(shift == 0, out, out & keep)
            fill = torch.zeros_like(xs) if unsigned else torch.where(xs < 0, -torch.ones_like(xs), torch.zeros_like(xs))
        out = torch.where(valid, out, fill)
        return out.view(dtype) if dtype in _SIGNED_OF_UNSIGNED else out


@register("BitShift", [11, 28])
def convert_bitshift(node, graph):
    direction = node.attributes["direction"]
    if direction not in ("LEFT", "RIGHT"):
        raise ValueError(f"BitShift: direction must be LEFT or RIGHT, got {direction!r}")
    return result(OnnxBitShift(direction == "LEFT"), node)


class OnnxBitwise(Module):
    _FUNCTIONS = {"BitwiseAnd": torch.bitwise_and, "BitwiseOr": torch.bitwise_or, "BitwiseXor": torch.bitwise_xor}

    def __init__(self, op):
        super().__init__()
        self.op = op

    def forward(self, a, b=None):
        dtype = a.dtype
        if self.op == "BitwiseNot":
            out = torch.bitwise_not(_as_signed(a))
        else:
            out = self._FUNCTIONS[self.op](_as_signed(a), _as_signed(b))
        return out.view(dtype) if dtype in _SIGNED_OF_UNSIGNED else out


@register("BitwiseAnd", [18])
@register("BitwiseOr", [18])
@register("BitwiseXor", [18])
@register("BitwiseNot", [18])
def convert_bitwise(node, graph):
    return result(OnnxBitwise(node.operation_type), node)


class OnnxGelu(Module):
    def __init__(self, approximate):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"Gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)


@register("Gelu", [20])
def convert_gelu(node, graph):
    return result(OnnxGelu(node.attributes.get("approximate", "none")), node)


class OnnxUnary(Module):
    """A parameter-free unary op given by name (the name keeps the module picklable)."""

    _FUNCTIONS = {
        "Mish": F.mish,
        "Sinh": torch.sinh,
        "Cosh": torch.cosh,
        "Asinh": torch.asinh,
        "Acosh": torch.acosh,
        "Atanh": torch.atanh,
    }

    def __init__(self, op):
        super().__init__()
        self.op = op

    def forward(self, x):
        return self._FUNCTIONS[self.op](x)


@register("Mish", [18, 22])
@register("Sinh", [9, 22])
@register("Cosh", [9, 22])
@register("Asinh", [9, 22])
@register("Acosh", [9, 22])
@register("Atanh", [9, 22])
def convert_unary(node, graph):
    return result(OnnxUnary(node.operation_type), node)


class OnnxSwish(Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return x * torch.sigmoid(self.alpha * x)


@register("Swish", [24])
def convert_swish(node, graph):
    return result(OnnxSwish(node.attributes.get("alpha", 1.0)), node)


class OnnxThresholdedRelu(Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return torch.where(x > self.alpha, x, torch.zeros_like(x))


@register("ThresholdedRelu", [10, 22])
def convert_thresholded_relu(node, graph):
    return result(OnnxThresholdedRelu(node.attributes.get("alpha", 1.0)), node)


class OnnxShrink(Module):
    def __init__(self, lambd, bias):
        super().__init__()
        self.lambd = lambd
        self.bias = bias

    def forward(self, x):
        # Compare and shift in a wide type: for unsigned and small integer
        # inputs `x + bias` must not wrap before the result is chosen.
        wide = x.to(torch.float64)
        out = torch.where(
            wide < -self.lambd,
            wide + self.bias,
            torch.where(wide > self.lambd, wide - self.bias, torch.zeros_like(wide)),
        )
        return out.to(x.dtype)


@register("Shrink", [9])
def convert_shrink(node, graph):
    return result(OnnxShrink(node.attributes.get("lambd", 0.5), node.attributes.get("bias", 0.0)), node)


class OnnxClip(Module):
    """x clamped to [min, max]; each bound a number, absent (None), or an
    input given at run time ("input"). min > max gives max, as in ONNX."""

    def __init__(self, low, high):
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x, *bounds):
        given = iter(bounds)
        low = next(given) if self.low == "input" else self.low
        high = next(given) if self.high == "input" else self.high
        if low is not None:
            x = torch.maximum(x, torch.as_tensor(low, dtype=x.dtype))
        if high is not None:
            x = torch.minimum(x, torch.as_tensor(high, dtype=x.dtype))
        return x


@replace("Clip", [11, 12, 13])
def convert_clip(node, graph):
    """onnx2torch's refuses bounds computed at run time, and an absent min
    written as an empty input name (as torch's exporter writes clamp(max=))."""
    bounds, inputs = [], [node.input_values[0]]
    for index in (1, 2):
        value = constant(node, index, graph)
        if value is not None:
            bounds.append(value.item())
        elif present(node, index):
            bounds.append("input")
            inputs.append(node.input_values[index])
        else:
            bounds.append(None)
    low, high = bounds
    floating = all(isinstance(b, float) or b is None for b in bounds)
    if floating and low == 0 and high is None:
        module = nn.ReLU()
    elif floating and low == 0 and high == 6:
        module = nn.ReLU6()
    else:
        module = OnnxClip(low, high)
    return result(module, node, inputs=inputs)


class OnnxIsInf(Module):
    def __init__(self, negative, positive):
        super().__init__()
        self.negative, self.positive = negative, positive

    def forward(self, x):
        if self.negative and self.positive:
            return torch.isinf(x)
        if self.negative:
            return torch.isneginf(x)
        if self.positive:
            return torch.isposinf(x)
        return torch.zeros_like(x, dtype=torch.bool)


@replace("IsInf", [10])
@register("IsInf", [20])
def convert_isinf(node, graph):
    """onnx2torch's ignores detect_negative and detect_positive; SwiGLU."""
    a = node.attributes
    return result(OnnxIsInf(bool(a.get("detect_negative", 1)), bool(a.get("detect_positive", 1))), node)


class OnnxSwiGLU(Module):
    """Swish of the gate (a * sigmoid(alpha * a)) times the value."""

    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, gate, value):
        return gate * torch.sigmoid(self.alpha * gate) * value


@register("SwiGLU", [28])
def convert_swiglu(node, graph):
    return result(OnnxSwiGLU(float(node.attributes.get("alpha", 1.0))), node)


class OnnxPow(Module):
    """x ** y in x's type (an integer base with a float exponent gives an
    integer, truncated as a cast does)."""

    def forward(self, x, y):
        return torch.pow(x, y).to(x.dtype)


@replace("Pow", [12, 13, 15])
def convert_pow(node, graph):
    """onnx2torch's returns torch's promoted type (float for an integer base
    and a float exponent)."""
    return result(OnnxPow(), node)


_SELU_ALPHA, _SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875


class OnnxSelu(Module):
    """gamma * x for x > 0, gamma * alpha * (exp(x) - 1) otherwise."""

    def __init__(self, alpha, gamma):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, x):
        return self.gamma * torch.where(x > 0, x, self.alpha * torch.expm1(x))


@replace("Selu", [6])
def convert_selu(node, graph):
    """onnx2torch's refuses any alpha and gamma but torch's own (nn.SELU),
    which it keeps converting."""
    alpha = float(node.attributes.get("alpha", _SELU_ALPHA))
    gamma = float(node.attributes.get("gamma", _SELU_GAMMA))
    if (alpha, gamma) == (_SELU_ALPHA, _SELU_GAMMA):
        return replaced("Selu", 6)(node, graph)
    return result(OnnxSelu(alpha, gamma), node)
