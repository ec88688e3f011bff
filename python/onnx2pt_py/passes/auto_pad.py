"""auto_pad=SAME_UPPER/SAME_LOWER -> explicit pads.

onnx2torch raises NotImplementedError for SAME_* auto_pad (utils/padding.py)
but converts explicit pads, symmetric or not (Conv and MaxPool get a padding
module in front). Hand-written and older Keras exporters use SAME_UPPER.

The pads need the input's spatial size, so they come from shape inference; a
node whose input has a symbolic spatial dim is left as it is and counted under
``auto_pad_dynamic_left``.

Conv and the pools (ONNX spec, and onnxruntime's ComputePadAndOutputShape):
    out = ceil(in / stride)
    total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - in)
    SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the beginning.

ConvTranspose (spec and onnxruntime's ComputeTransposePadAndOutputShape):
    out = output_shape if given, else in * stride
    total = stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - out
    begin = total // 2 for SAME_UPPER, total - total // 2 for SAME_LOWER.
Cropping `begin` and ending `out` later is the same as symmetric pads `begin`
with output_padding grown by begin - end; that form is used where valid
(output_padding < stride), because onnx2torch and torch's ConvTranspose take
only symmetric padding.

Left alone and counted under ``auto_pad_ambiguous_left``, because runtimes
disagree and no rewrite can match them all:
- pools whose kernel is smaller than the stride, where the needed padding is
  negative: onnxruntime's MaxPool refuses these, its AveragePool and LpPool
  start their windows one pixel in;
- pools with dilations other than 1: onnxruntime computes their SAME padding
  from the undilated kernel, the spec from the dilated one;
- ConvTranspose whose needed padding is negative.
"""

from __future__ import annotations

import onnx

from . import _graph

_FORWARD = {"Conv", "AveragePool", "MaxPool", "LpPool"}
_OPS = _FORWARD | {"ConvTranspose"}
_SAME = ("SAME_UPPER", "SAME_LOWER")


def _mode(node: onnx.NodeProto) -> str:
    value = _graph.get_attribute(node, "auto_pad", b"NOTSET")
    return value.decode() if isinstance(value, bytes) else str(value)


def _targets(graph: onnx.GraphProto):
    for node in graph.node:
        if node.op_type in _OPS and node.domain in _graph.DEFAULT_DOMAINS and _mode(node) in _SAME:
            yield node


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    if not any(True for _ in _targets(model.graph)):
        return model, {}
    result = _graph.copy_model(model)
    shapes = _graph.value_shapes(_graph.infer_shapes(result))
    counts = {"auto_pad_explicit": 0, "auto_pad_dynamic_left": 0, "auto_pad_ambiguous_left": 0}
    for node in _targets(result.graph):
        counts[_rewrite(node, shapes)] += 1
    counts = {k: v for k, v in counts.items() if v}
    if not counts.get("auto_pad_explicit"):
        return model, counts
    return result, counts


def _rewrite(node: onnx.NodeProto, shapes) -> str:
    x = shapes.get(node.input[0])
    if x is None or len(x) < 3 or not _graph.is_static(x[2:]):
        return "auto_pad_dynamic_left"
    spatial = list(x[2:])
    rank = len(spatial)
    kernel = _graph.get_attribute(node, "kernel_shape")
    if kernel is None and node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
        w = shapes.get(node.input[1])
        kernel = w[2:] if w is not None and len(w) == rank + 2 and _graph.is_static(w) else None
    if kernel is None or len(kernel) != rank:
        return "auto_pad_dynamic_left"
    strides = list(_graph.get_attribute(node, "strides", None) or [1] * rank)
    dilations = list(_graph.get_attribute(node, "dilations", None) or [1] * rank)
    if len(strides) != rank or len(dilations) != rank:
        return "auto_pad_ambiguous_left"  # malformed: leave it to the converter's error
    upper = _mode(node) == "SAME_UPPER"
    if node.op_type == "ConvTranspose":
        return _conv_transpose(node, spatial, kernel, strides, dilations, upper)
    return _forward(node, spatial, kernel, strides, dilations, upper)


def same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int, int]:
    """(begin, end, raw) for Conv and pools; raw is the unclamped total."""
    out = -(-size // stride)
    raw = (out - 1) * stride + (kernel - 1) * dilation + 1 - size
    total = max(0, raw)
    begin = total // 2 if upper else total - total // 2
    return begin, total - begin, raw


def _forward(node, spatial, kernel, strides, dilations, upper) -> str:
    is_pool = node.op_type != "Conv"
    if is_pool and any(d != 1 for d in dilations):
        return "auto_pad_ambiguous_left"
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        begin, end, raw = same_pads(n, k, s, d, upper)
        if is_pool and raw < 0:
            return "auto_pad_ambiguous_left"
        begins.append(begin)
        ends.append(end)
    _graph.remove_attribute(node, "auto_pad")
    _graph.set_attribute(node, "pads", begins + ends)
    if is_pool:
        # With SAME padding the windows tile the padded input exactly, so
        # ceil_mode cannot change the output; dropping it spares converters
        # the corner cases of ceil_mode with padding.
        _graph.remove_attribute(node, "ceil_mode")
    return "auto_pad_explicit"


def _conv_transpose(node, spatial, kernel, strides, dilations, upper) -> str:
    rank = len(spatial)
    output_padding = list(_graph.get_attribute(node, "output_padding", None) or [0] * rank)
    output_shape = _graph.get_attribute(node, "output_shape")
    if output_shape is not None:
        output_shape = list(output_shape)[-rank:]  # some writers include N and C
    if len(output_padding) != rank or (output_shape is not None and len(output_shape) != rank):
        return "auto_pad_ambiguous_left"
    begins, ends, paddings = [], [], []
    for i, (n, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations)):
        out = output_shape[i] if output_shape is not None else n * s
        total = s * (n - 1) + output_padding[i] + (k - 1) * d + 1 - out
        if total < 0:
            return "auto_pad_ambiguous_left"
        begin = total // 2 if upper else total - total // 2
        end = total - begin
        extra = output_padding[i] + begin - end
        if begin >= end and extra < s:
            begins.append(begin)
            ends.append(begin)
            paddings.append(extra)
        else:
            begins.append(begin)
            ends.append(end)
            paddings.append(output_padding[i])
    _graph.remove_attribute(node, "auto_pad")
    _graph.remove_attribute(node, "output_shape")
    _graph.set_attribute(node, "pads", begins + ends)
    if any(paddings):
        _graph.set_attribute(node, "output_padding", paddings)
    else:
        _graph.remove_attribute(node, "output_padding")
    return "auto_pad_explicit"
