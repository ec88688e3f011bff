"""Conv and ConvTranspose whose weights are not constants of the graph
(given at run time, or computed), and the ConvTranspose cases onnx2torch
refuses or gets wrong (asymmetric pads, auto_pad, output_shape).

Where the weights are initializers and the attributes are ones onnx2torch
handles, its converter stays: it makes torch.nn.ConvNd modules, which
train like any other. The rest is computed with torch.nn.functional from
the ONNX attributes.
"""

import torch.nn.functional as F

from ._common import Module, present, replace, replaced, result

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _spread(value, rank, default):
    return [default] * rank if value is None else [int(v) for v in value]


def _auto_pads(auto_pad, totals):
    """Begin and end padding from each axis's total padding: SAME_UPPER puts
    the odd one at the end, SAME_LOWER at the start."""
    if auto_pad == "SAME_UPPER":
        begins = [t // 2 for t in totals]
    else:
        begins = [t - t // 2 for t in totals]
    return begins, [t - b for t, b in zip(totals, begins)]


def _pad_arguments(begins, ends):
    """F.pad's argument, last axis first; negative values crop."""
    out = []
    for begin, end in zip(reversed(begins), reversed(ends)):
        out += [begin, end]
    return out


class OnnxConv(Module):
    def __init__(self, strides, pads, dilations, group, auto_pad):
        super().__init__()
        self.strides, self.pads, self.dilations = strides, pads, dilations
        self.group, self.auto_pad = group, auto_pad

    def forward(self, x, w, b=None):
        rank = w.dim() - 2
        strides = _spread(self.strides, rank, 1)
        dilations = _spread(self.dilations, rank, 1)
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            totals = []
            for size, k, s, d in zip(x.shape[2:], w.shape[2:], strides, dilations):
                out = -(-int(size) // s)
                totals.append(max(0, (out - 1) * s + (int(k) - 1) * d + 1 - int(size)))
            begins, ends = _auto_pads(self.auto_pad, totals)
        elif self.auto_pad == "VALID":
            begins = ends = [0] * rank
        else:
            pads = _spread(self.pads, 2 * rank, 0)
            begins, ends = pads[:rank], pads[rank:]
        padding = begins
        if begins != ends:
            x = F.pad(x, _pad_arguments(begins, ends))
            padding = 0
        return _CONV[rank](x, w, b, strides, padding, dilations, self.group)


class OnnxConvTranspose(Module):
    """The full transposed convolution, then cropped by the pads (or grown
    by output_padding, with zeros that get the bias alone), as ONNX's
    output size formula says."""

    def __init__(self, strides, pads, dilations, group, auto_pad, output_padding, output_shape):
        super().__init__()
        self.strides, self.pads, self.dilations = strides, pads, dilations
        self.group, self.auto_pad = group, auto_pad
        self.output_padding, self.output_shape = output_padding, output_shape

    def forward(self, x, w, b=None):
        rank = w.dim() - 2
        strides = _spread(self.strides, rank, 1)
        dilations = _spread(self.dilations, rank, 1)
        extra = _spread(self.output_padding, rank, 0)
        sizes = [int(n) for n in x.shape[2:]]
        full = [s * (n - 1) + (int(k) - 1) * d + 1 for n, k, s, d in zip(sizes, w.shape[2:], strides, dilations)]
        if self.output_shape is not None or self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            wanted = (
                self.output_shape[-rank:] if self.output_shape is not None else [n * s for n, s in zip(sizes, strides)]
            )
            totals = [f + e - o for f, e, o in zip(full, extra, wanted)]
            begins, ends = _auto_pads("SAME_UPPER" if self.auto_pad == "SAME_UPPER" else "", totals)
        elif self.auto_pad == "VALID":
            begins = ends = [0] * rank
        else:
            pads = _spread(self.pads, 2 * rank, 0)
            begins, ends = pads[:rank], pads[rank:]
        y = _CONV_TRANSPOSE[rank](x, w, None, strides, 0, 0, self.group, dilations)
        y = F.pad(y, _pad_arguments([-p for p in begins], [e - p for e, p in zip(extra, ends)]))
        if b is not None:
            y = y + b.reshape(1, -1, *([1] * rank))
        return y


def _constant_weights(node, graph):
    return all(node.input_values[i] in graph.initializers for i in (1, 2) if present(node, i))


def _attributes(node):
    a = node.attributes
    auto_pad = a.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    return a.get("strides"), a.get("pads"), a.get("dilations"), a.get("group", 1), auto_pad


@replace("Conv", [1, 11])
def convert_conv(node, graph):
    if _constant_weights(node, graph):
        return replaced("Conv", 11)(node, graph)
    inputs = [name for name in node.input_values if name]
    return result(OnnxConv(*_attributes(node)), node, inputs=inputs)


@replace("ConvTranspose", [1, 11])
def convert_conv_transpose(node, graph):
    a = node.attributes
    pads = a.get("pads")
    symmetric = pads is None or list(pads[: len(pads) // 2]) == list(pads[len(pads) // 2 :])
    plain = _attributes(node)[4] == "NOTSET" and "output_shape" not in a and symmetric
    if plain and _constant_weights(node, graph):
        return replaced("ConvTranspose", 11)(node, graph)
    inputs = [name for name in node.input_values if name]
    module = OnnxConvTranspose(*_attributes(node), a.get("output_padding"), a.get("output_shape"))
    return result(module, node, inputs=inputs)
