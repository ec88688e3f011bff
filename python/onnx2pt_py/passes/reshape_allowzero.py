"""Reshape allowzero=1 -> 0 where the two mean the same.

torch's dynamo exporter writes ``allowzero=1`` on every Reshape; onnx2torch
raises NotImplementedError for it. allowzero only decides what a 0 in the
target shape means (copy the input's dim, or a dim of size 0), so with a
constant target shape that holds no 0 the attribute can go. Reshapes whose
shape is computed at run time, or holds a 0, are left and counted under
``allowzero_left``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from . import _graph
from .constants import constant_tensor


def _targets(graph: onnx.GraphProto):
    for node in graph.node:
        if node.op_type == "Reshape" and node.domain in _graph.DEFAULT_DOMAINS:
            if _graph.get_attribute(node, "allowzero", 0) == 1:
                yield node


def apply(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    if not any(True for _ in _targets(model.graph)):
        return model, {}
    result = _graph.copy_model(model)
    graph = result.graph
    values = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _graph.DEFAULT_DOMAINS:
            tensor = constant_tensor(node)
            if tensor is not None:
                values[node.output[0]] = tensor
    counts = {"allowzero_cleared": 0, "allowzero_left": 0}
    for node in _targets(graph):
        shape = values.get(node.input[1])
        if shape is not None and np.all(numpy_helper.to_array(shape) != 0):
            _graph.remove_attribute(node, "allowzero")
            counts["allowzero_cleared"] += 1
        else:
            counts["allowzero_left"] += 1
    counts = {k: v for k, v in counts.items() if v}
    if not counts.get("allowzero_cleared"):
        return model, counts
    return result, counts
