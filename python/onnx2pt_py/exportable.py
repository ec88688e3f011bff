"""Export-friendly replacements for converted modules that torch.export
cannot trace.

Several onnx2torch modules take what ONNX gives as inputs (a Reshape's
target shape, a Slice's starts and ends, a Squeeze's axes) as tensors and
read their values at run time: onnx2torch's Reshape looks for zeros with
`torch.any(shape == 0)` (onnx2torch issue #225), its Slice calls .numpy().
torch.export refuses both, as data-dependent. Where those inputs are
constants of the graph, which is what exporters write almost everywhere,
the module is replaced by one holding them as Python ints. Rewrites change
the model in place, after its checkpoint is saved.
"""

import torch
from onnx2torch.node_converters.reshape import OnnxReshape as TheirReshape
from onnx2torch.node_converters.slice import OnnxSlice
from onnx2torch.node_converters.squeeze import OnnxSqueezeDynamicAxes
from torch import fx, nn

from .converters.tensor import OnnxReshape as OurReshape


class StaticReshape(nn.Module):
    """Reshape to a fixed target; a 0 copies the input's dimension unless
    allowzero says it is a zero-size one (ONNX Reshape's rule)."""

    def __init__(self, shape, allowzero=False):
        super().__init__()
        self.shape = [int(d) for d in shape]
        self.allowzero = bool(allowzero)

    def forward(self, x):
        shape = [x.shape[i] if d == 0 and not self.allowzero else d for i, d in enumerate(self.shape)]
        return torch.reshape(x, shape)


class StaticSlice(nn.Module):
    """ONNX Slice with constant starts, ends, axes and steps."""

    def __init__(self, starts, ends, axes, steps):
        super().__init__()
        self.parts = [(int(a), int(s), int(e), int(st)) for s, e, a, st in zip(starts, ends, axes, steps)]

    def forward(self, x):
        index = [slice(None)] * x.dim()
        flips = []
        for axis, start, end, step in self.parts:
            axis %= x.dim()
            if step < 0:  # as onnx2torch does: flip, then slice forwards
                flips.append(axis)
                start, end, step = -start - 1, -end - 1, -step
            index[axis] = slice(start, end, step)
        if flips:
            x = torch.flip(x, dims=flips)
        return x[tuple(index)]


class StaticSqueeze(nn.Module):
    """ONNX Squeeze with constant axes."""

    def __init__(self, axes):
        super().__init__()
        self.axes = sorted((int(a) for a in axes), reverse=True)

    def forward(self, x):
        for axis in sorted((a % x.dim() for a in self.axes), reverse=True):
            x = torch.squeeze(x, dim=axis)
        return x


def _constant(gm, node):
    """The tensor a get_attr node reads, or None for anything else."""
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    value = gm
    for part in node.target.split("."):
        value = getattr(value, part)
    return value if isinstance(value, torch.Tensor) else None


def _static_reshape(gm, node, module):
    if len(node.args) != 2:
        return False
    shape = _constant(gm, node.args[1])
    if shape is None or shape.dim() != 1:
        return False
    allowzero = bool(getattr(module, "allowzero", False))
    gm.add_submodule(node.target, StaticReshape(shape.tolist(), allowzero))
    node.args = (node.args[0],)
    return True


def _static_slice(gm, node, module):
    if len(node.args) < 3:
        return False
    values = [_constant(gm, a) for a in node.args[1:]]
    if any(v is None or v.dim() != 1 for v in values):
        return False
    starts, ends = values[0].tolist(), values[1].tolist()
    axes = values[2].tolist() if len(values) > 2 else list(range(len(starts)))
    steps = values[3].tolist() if len(values) > 3 else [1] * len(starts)
    gm.add_submodule(node.target, StaticSlice(starts, ends, axes, steps))
    node.args = (node.args[0],)
    return True


def _static_squeeze(gm, node, module):
    if len(node.args) != 2:
        return False
    axes = _constant(gm, node.args[1])
    if axes is None or axes.numel() == 0:
        return False
    gm.add_submodule(node.target, StaticSqueeze(axes.reshape(-1).tolist()))
    node.args = (node.args[0],)
    return True


# module class -> rewrite(gm, node, module) -> whether it rewrote the node
REWRITES = {
    TheirReshape: _static_reshape,
    OurReshape: _static_reshape,
    OnnxSlice: _static_slice,
    OnnxSqueezeDynamicAxes: _static_squeeze,
}


def make_exportable(gm):
    """Apply REWRITES to the nodes of gm and of the GraphModules inside it
    (the branches and bodies of If, Loop and Scan); returns how many nodes
    each rewrote."""
    counts = {}
    for module in list(gm.modules()):
        if isinstance(module, fx.GraphModule):
            for name, count in _make_exportable_one(module).items():
                counts[name] = counts.get(name, 0) + count
    return counts


def _make_exportable_one(gm):
    counts = {}
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        module = gm.get_submodule(node.target)
        rewrite = REWRITES.get(type(module))
        if rewrite and rewrite(gm, node, module):
            counts[type(module).__name__] = counts.get(type(module).__name__, 0) + 1
    if counts:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return counts
