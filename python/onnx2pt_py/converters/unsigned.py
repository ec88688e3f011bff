"""uint16, uint32 and uint64 in the arithmetic, comparison and selection
ops. torch has these types but few kernels for them (no add, sub, div,
remainder, comparison or where), so onnx2torch's modules fail on them at run
time. Each op's converter is replaced by one that wraps onnx2torch's module
when an input is of such a type (per the graph's types) and computes in a
signed type:

- uint16 and uint32 are widened to int64, where every value and every
  result of these ops is exact, and results are cast back (which wraps
  modulo 2**bits, as ONNX's unsigned arithmetic does);
- uint64 keeps its 64 bits as int64: sums and differences are the same
  bits; order is kept by flipping the sign bit; division and remainder are
  computed as unsigned 64-bit division.

Other types go to onnx2torch's module untouched.
"""

import torch
from onnx import TensorProto
from onnx2torch.utils.common import OperationConverterResult

from ._common import Module, elem_type, replace, replaced

_WIDE_UNSIGNED = {TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
_TORCH_WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)
_SIGN = -(2**63)  # int64 with only the sign bit set


def _flip(x):
    """uint64 bits as int64 in the same order: x XOR 2**63."""
    return x ^ _SIGN


def _unsigned_less(a, b):
    """a < b for uint64 values held as int64 bits."""
    return _flip(a) < _flip(b)


def _unsigned_divide(a, b):
    """Quotient and remainder of uint64 values held as int64 bits. Halving
    the dividend makes it a nonnegative int64; the quotient of that,
    doubled, is at most one short of the true one. A divisor of 2**63 or
    more divides at most once. (Division by zero is undefined in ONNX; it
    gives 0 here rather than raising.)"""
    big = b < 0
    safe = torch.where((b == 0) | big, torch.ones_like(b), b)
    half = (a >> 1) & (2**63 - 1)  # logical shift
    q = torch.div(half, safe, rounding_mode="trunc") << 1
    r = a - q * safe
    short = ~_unsigned_less(r, safe)
    q = q + short.to(q.dtype)
    q = torch.where(big, (~_unsigned_less(a, b)).to(q.dtype), q)
    q = torch.where(b == 0, torch.zeros_like(q), q)
    return q, a - q * b


class Unsigned(Module):
    """inner, computed in a signed type for uint16/32/64 inputs; `kind` is
    how uint64 is handled: "wrap" (sums), "order" (comparisons, min, max),
    "divide" (Div, Mod: `op`) or "select" (Where)."""

    def __init__(self, inner, kind, op=""):
        super().__init__()
        self.inner, self.kind, self.op = inner, kind, op

    def forward(self, *args):
        dtype = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.dtype in _TORCH_WIDE_UNSIGNED), None)
        if dtype is None:
            return self.inner(*args)
        ours = [isinstance(a, torch.Tensor) and a.dtype == dtype for a in args]
        if dtype != torch.uint64:
            widened = [a.to(torch.int64) if mine else a for a, mine in zip(args, ours)]
            return _each(self.inner(*widened), lambda out: out.to(dtype) if out.dtype == torch.int64 else out)
        bits = [a.view(torch.int64) if mine else a for a, mine in zip(args, ours)]
        if self.kind == "divide":
            quotient, remainder = _unsigned_divide(*torch.broadcast_tensors(*bits))
            return (quotient if self.op == "Div" else remainder).view(dtype)
        if self.kind == "order":
            bits = [_flip(a) if mine else a for a, mine in zip(bits, ours)]
            return _each(self.inner(*bits), lambda out: _flip(out).view(dtype) if out.dtype == torch.int64 else out)
        return _each(self.inner(*bits), lambda out: out.view(dtype) if out.dtype == torch.int64 else out)


def _each(out, fn):
    if isinstance(out, (tuple, list)):
        return type(out)(fn(o) for o in out)
    return fn(out)


def wrap_if_unsigned(converter_result, node, graph, kind, op=""):
    """converter_result, its module wrapped in Unsigned when an input of the
    node is uint16/32/64 (or of an unknown type: the check at run time is
    cheap, a failure there is not)."""
    types = [elem_type(name, graph) for name in node.input_values if name]
    if not any(t in _WIDE_UNSIGNED or t is None for t in types):
        return converter_result
    return OperationConverterResult(
        torch_module=Unsigned(converter_result.torch_module, kind, op), onnx_mapping=converter_result.onnx_mapping
    )


# op -> (how uint64 is computed, onnx2torch's versions whose types include
# uint16/32/64)
_OPS = {
    "Add": ("wrap", [7, 13, 14]),
    "Sub": ("wrap", [7, 13, 14]),
    "Div": ("divide", [7, 13, 14]),
    "Mod": ("divide", [10, 13]),
    "Greater": ("order", [9, 13]),
    "Less": ("order", [9, 13]),
    "GreaterOrEqual": ("order", [12]),  # 16: aliased to 12 by versions
    "LessOrEqual": ("order", [12]),
    "Max": ("order", [12, 13]),
    "Min": ("order", [12, 13]),
    "Where": ("select", [9, 16]),
}


def _converter(op, version, kind):
    def convert(node, graph):
        return wrap_if_unsigned(replaced(op, version)(node, graph), node, graph, kind, op)

    convert.__name__ = f"convert_{op.lower()}_{version}"
    return convert


for _op, (_kind, _versions) in _OPS.items():
    for _version in _versions:
        replace(_op, [_version])(_converter(_op, _version, _kind))
