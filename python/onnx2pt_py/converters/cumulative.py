"""CumSum and CumProd, with exclusive and reverse as ONNX defines them.

onnx2torch's CumSum takes reverse as 1 when the attribute is absent (ONNX's
default is 0), so every plain cumulative sum came out summed from the end;
CumProd (opset 26) it lacks.
"""

import torch

from ._common import Module, constant, normalize_axis, register, replace, result


class OnnxCumulative(Module):
    def __init__(self, product, exclusive, reverse, axis=None):
        super().__init__()
        self.product, self.exclusive, self.reverse, self.axis = product, exclusive, reverse, axis

    def forward(self, x, axis=None):
        dim = normalize_axis(self.axis if self.axis is not None else int(axis.reshape(-1)[0]), x.dim())
        if self.reverse:
            x = torch.flip(x, dims=(dim,))
        # (torch sums and multiplies integers as int64)
        y = (torch.cumprod(x, dim=dim) if self.product else torch.cumsum(x, dim=dim)).to(x.dtype)
        if self.exclusive:  # shifted by one, the identity first: exact, unlike y - x
            first = torch.full_like(x.narrow(dim, 0, 1), 1 if self.product else 0)
            y = torch.cat([first, y.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)
        if self.reverse:
            y = torch.flip(y, dims=(dim,))
        return y


def _convert(node, graph, product):
    axis = constant(node, 1, graph)
    axis = int(axis.reshape(-1)[0]) if axis is not None else None
    module = OnnxCumulative(
        product, bool(node.attributes.get("exclusive", 0)), bool(node.attributes.get("reverse", 0)), axis
    )
    return result(module, node, inputs=node.input_values[:1] if axis is not None else None)


@replace("CumSum", [11, 14])
def convert_cumsum(node, graph):
    return _convert(node, graph, product=False)


@register("CumProd", [26])
def convert_cumprod(node, graph):
    return _convert(node, graph, product=True)
