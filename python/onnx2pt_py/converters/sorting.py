"""TopK, with ties in the specification's order; NonMaxSuppression with
boxes given by any two opposite corners.

onnx2torch's TopK calls torch.topk, which returns equal values in no
particular order; ONNX puts the one with the lower index first (and
onnxruntime does). A stable sort does the same, and k read from a constant
input stays a Python int, which tracing and torch.export keep symbolic-free.
"""

import torch

from ._common import Module, constant, normalize_axis, replace, replaced, result


class OnnxTopK(Module):
    def __init__(self, axis, largest, k=None):
        super().__init__()
        self.axis, self.largest, self.k = axis, largest, k

    def forward(self, x, k=None):
        count = self.k if self.k is not None else int(k.reshape(-1)[0])
        axis = normalize_axis(self.axis, x.dim())
        values, indices = torch.sort(x, dim=axis, descending=self.largest, stable=True)
        return values.narrow(axis, 0, count), indices.narrow(axis, 0, count)


@replace("TopK", [1, 10, 11])
def convert_topk(node, graph):
    if "k" in node.attributes:  # TopK-1
        k = int(node.attributes["k"])
    else:
        k = constant(node, 1, graph)
        k = int(k.reshape(-1)[0]) if k is not None else None
    module = OnnxTopK(node.attributes.get("axis", -1), node.attributes.get("largest", 1) == 1, k)
    # With k a constant, the module takes the data alone.
    return result(module, node, inputs=node.input_values[:1] if k is not None else None)


class OnnxNonMaxSuppressionCorners(Module):
    """onnx2torch's NonMaxSuppression on boxes rewritten as (min, min, max,
    max) corners: ONNX allows any diagonal pair, torchvision's nms reads
    (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2 and finds no overlap in a
    flipped box."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, boxes, *rest):
        first, second = boxes[..., :2], boxes[..., 2:]
        return self.inner(torch.cat([torch.minimum(first, second), torch.maximum(first, second)], dim=-1), *rest)


@replace("NonMaxSuppression", [10, 11])
def convert_non_max_suppression(node, graph):
    converted = replaced("NonMaxSuppression", 11)(node, graph)
    if node.attributes.get("center_point_box", 0):
        return converted  # centres and sizes: no corners to order
    return converted._replace(torch_module=OnnxNonMaxSuppressionCorners(converted.torch_module))
