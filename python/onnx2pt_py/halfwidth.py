"""16-bit float models on torch's CPU kernels: the few ops torch has no
float16 or bfloat16 kernel for (LU-based ones such as Det, the FFT) run in
float32 and their results are cast back, node by node, and the nodes are
named in the report."""

import re

import torch

from .converters._common import Module

HALF = (torch.float16, torch.bfloat16)
# How torch says a kernel lacks a type.
_MISSING_KERNEL = re.compile(r"not implemented for '(Half|BFloat16)'|Unsupported dtype (Half|BFloat16)")
# More nodes than this without a 16-bit kernel: something else is wrong.
MAX_NODES = 64


class InFloat32(Module):
    """inner computed in float32: 16-bit float inputs widened, float32
    results cast back to the inputs' type. inner's own weights are widened
    once (exactly) when it is wrapped."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner.float()

    def forward(self, *args):
        dtype = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.dtype in HALF), None)
        out = self.inner(*[a.float() if isinstance(a, torch.Tensor) and a.dtype in HALF else a for a in args])
        if dtype is None:
            return out
        if isinstance(out, (tuple, list)):
            return type(out)(o.to(dtype) if _is_float32(o) else o for o in out)
        return out.to(dtype) if _is_float32(out) else out


def _is_float32(value):
    return isinstance(value, torch.Tensor) and value.dtype == torch.float32


class _Failing(Exception):
    def __init__(self, node, error):
        super().__init__(str(error))
        self.node, self.error = node, error


class _Interpreter(torch.fx.Interpreter):
    def run_node(self, node):
        try:
            return super().run_node(node)
        except Exception as e:
            raise _Failing(node, e) from e


def fall_back(model, inputs):
    """Run model (an fx GraphModule) on inputs; wrap each call_module node
    that fails for want of a 16-bit kernel in InFloat32, until it runs.
    Returns the wrapped nodes' names. Other failures are left for the
    caller's own run to report."""
    wrapped = []
    while len(wrapped) < MAX_NODES:
        try:
            with torch.no_grad():
                _Interpreter(model).run(*inputs)
            return wrapped
        except _Failing as failing:
            node = failing.node
            if node.op != "call_module" or not _MISSING_KERNEL.search(str(failing.error)):
                return wrapped
            model.set_submodule(node.target, InFloat32(model.get_submodule(node.target)))
            wrapped.append(node.name)
    return wrapped
