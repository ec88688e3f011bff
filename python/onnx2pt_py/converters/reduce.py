"""Reduce* ops from opset 18, where `axes` moved from an attribute to an input.

onnx2torch has these up to version 13 (ReduceSum, whose axes became an input
at 13, it has). From 18 on:
- `axes` is an optional int64 input: an initializer or Constant (read once
  here) or a tensor computed at run time (read in forward);
- absent or empty `axes` reduces over all dimensions, unless
  `noop_with_empty_axes` is 1: then nothing is reduced but the elementwise
  parts still apply (ReduceSumSquare squares, ReduceLogSum takes the log);
- reducing over an empty set of values gives the operation's identity
  (0 for sums, 1 for ReduceProd, -inf / the type's minimum for ReduceMax, ...).
ReduceMax/ReduceMin 20 only add bool; ReduceLogSum/ReduceLogSumExp 28 only
drop the integer types.
"""

import torch

from ._common import Module, as_int_list, constant, normalize_axis, present, register, result


def _sum(x, dims, keepdim):
    out = torch.sum(x, dim=dims, keepdim=keepdim)
    return out.to(x.dtype)  # torch widens integer sums to int64


def _prod(x, dims, keepdim):
    # torch.prod takes one dimension at a time
    out = x
    for d in sorted(dims, reverse=True):
        out = torch.prod(out, dim=d, keepdim=True)
    if not keepdim:
        out = out.reshape([s for i, s in enumerate(x.shape) if i not in dims])
    return out.to(x.dtype)


def _in_float(fn):
    """Run `fn` in floating point for integer inputs and cast back, as the
    ONNX reference does (numpy computes in float64 and the result is cast)."""

    def run(x, dims, keepdim):
        if x.is_floating_point() or x.is_complex():
            return fn(x, dims, keepdim)
        return fn(x.to(torch.float64), dims, keepdim).to(x.dtype)

    return run


def _max(x, dims, keepdim):
    return torch.amax(x, dim=dims, keepdim=keepdim)


def _min(x, dims, keepdim):
    return torch.amin(x, dim=dims, keepdim=keepdim)


def _lowest(dtype):
    if dtype == torch.bool:
        return False
    if dtype.is_floating_point:
        return float("-inf")
    return torch.iinfo(dtype).min


def _highest(dtype):
    if dtype == torch.bool:
        return True
    if dtype.is_floating_point:
        return float("inf")
    return torch.iinfo(dtype).max


# op: (elementwise step before reducing, reduction, step after, value of an empty reduction)
_OPS = {
    "ReduceSum": (None, _sum, None, lambda dtype: 0),
    "ReduceMean": (
        None,
        _in_float(lambda x, d, k: torch.mean(x, dim=d, keepdim=k)),
        None,
        lambda dtype: float("nan") if dtype.is_floating_point else 0,
    ),
    "ReduceMax": (None, _max, None, _lowest),
    "ReduceMin": (None, _min, None, _highest),
    "ReduceProd": (None, _prod, None, lambda dtype: 1),
    "ReduceL1": (torch.abs, _sum, None, lambda dtype: 0),
    "ReduceL2": (lambda x: x * x, _sum, _in_float(lambda x, d, k: torch.sqrt(x)), lambda dtype: 0),
    "ReduceSumSquare": (lambda x: x * x, _sum, None, lambda dtype: 0),
    "ReduceLogSum": (None, _sum, _in_float(lambda x, d, k: torch.log(x)), lambda dtype: float("-inf")),
    "ReduceLogSumExp": (
        None,
        _in_float(lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k)),
        None,
        lambda dtype: float("-inf"),
    ),
}


def reduce(op, x, axes, keepdims, noop_with_empty_axes):
    before, reduction, after, empty_value = _OPS[op]
    rank = x.dim()
    if axes:
        dims = sorted({normalize_axis(a, rank) for a in axes})
    elif noop_with_empty_axes:
        dims = []
    else:
        dims = list(range(rank))
    if before is not None:
        x = before(x)
    if not dims:
        # Reducing over no dimension: the elementwise steps only (torch would
        # read an empty dim list as "all dimensions").
        out = x  # log(exp(x)) for ReduceLogSumExp, without the overflow
    elif any(x.shape[d] == 0 for d in dims):
        shape = [1 if i in dims else s for i, s in enumerate(x.shape)]
        if not keepdims:
            shape = [s for i, s in enumerate(x.shape) if i not in dims]
        return torch.full(shape, empty_value(x.dtype), dtype=x.dtype, device=x.device)
    else:
        out = reduction(x, dims, keepdims)
    if after is not None:
        out = after(out, None, None)
    return out


class OnnxReduce(Module):
    def __init__(self, op, keepdims, noop_with_empty_axes, axes=None, axes_from_input=False):
        super().__init__()
        self.op = op
        self.keepdims = bool(keepdims)
        self.noop_with_empty_axes = bool(noop_with_empty_axes)
        self.axes = axes
        self.axes_from_input = axes_from_input

    def forward(self, data, axes=None):
        if self.axes_from_input:
            axes = None if axes is None else as_int_list(axes)
        else:
            axes = self.axes
        return reduce(self.op, data, axes, self.keepdims, self.noop_with_empty_axes)


@register("ReduceL1", [18])
@register("ReduceL2", [18])
@register("ReduceLogSum", [18, 28])
@register("ReduceLogSumExp", [18, 28])
@register("ReduceMax", [18, 20])
@register("ReduceMean", [18])
@register("ReduceMin", [18, 20])
@register("ReduceProd", [18])
@register("ReduceSumSquare", [18])
def convert_reduce(node, graph):
    keepdims = node.attributes.get("keepdims", 1)
    noop = node.attributes.get("noop_with_empty_axes", 0)
    if not present(node, 1):
        module = OnnxReduce(node.operation_type, keepdims, noop)
        return result(module, node, inputs=node.input_values[:1])
    axes = constant(node, 1, graph)
    if axes is not None:
        module = OnnxReduce(node.operation_type, keepdims, noop, axes=as_int_list(axes))
        return result(module, node, inputs=node.input_values[:1])
    module = OnnxReduce(node.operation_type, keepdims, noop, axes_from_input=True)
    return result(module, node)
