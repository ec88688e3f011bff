"""Small helpers shared by the passes: copying, signatures, shapes, renames."""

from __future__ import annotations

import onnx

DEFAULT_DOMAINS = ("", "ai.onnx")


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def default_opset(model: onnx.ModelProto) -> int | None:
    for opset in model.opset_import:
        if opset.domain in DEFAULT_DOMAINS:
            return opset.version
    return None


def initializer_inputs(graph: onnx.GraphProto) -> set[str]:
    """Graph inputs that are backed by an initializer (old exporters list them)."""
    names = {i.name for i in graph.initializer}
    return {v.name for v in graph.input if v.name in names}


def _value_signature(value: onnx.ValueInfoProto):
    return (value.name, value.type.SerializeToString(deterministic=True))


def io_signature(model: onnx.ModelProto):
    """Names, order and types (shapes and symbolic dims included) of the inputs
    a caller feeds and of all outputs."""
    backed = initializer_inputs(model.graph)
    inputs = [_value_signature(v) for v in model.graph.input if v.name not in backed]
    outputs = [_value_signature(v) for v in model.graph.output]
    return inputs, outputs


def constant_names(graph: onnx.GraphProto) -> set[str]:
    """Initializer names. Those also listed as inputs could in principle be fed
    by a caller; onnx2torch drops them from the inputs and uses the stored
    value, so the passes treat them as constants too."""
    return {i.name for i in graph.initializer}


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Shape-inferred copy, or None where inference fails (custom ops, >2 GiB)."""
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        return None


def value_shapes(inferred: onnx.ModelProto | None) -> dict[str, list[int | str | None]]:
    """Tensor name -> dims (int, symbolic name or None) for every typed tensor."""
    shapes: dict[str, list[int | str | None]] = {}
    if inferred is None:
        return shapes
    graph = inferred.graph
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
            continue
        dims: list[int | str | None] = []
        for d in tensor.shape.dim:
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shapes[value.name] = dims
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def is_static(dims) -> bool:
    return dims is not None and all(isinstance(d, int) and d >= 0 for d in dims)


def subgraphs(node: onnx.NodeProto):
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def rename_uses(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    """Point every node input (subgraphs included: they may read outer names) at
    its new name. Subgraphs that define a name themselves shadow the outer one."""
    if not renames:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for sub in subgraphs(node):
            local = {v.name for v in sub.input} | {i.name for i in sub.initializer}
            local |= {o for n in sub.node for o in n.output}
            rename_uses(sub, {k: v for k, v in renames.items() if k not in local})


def used_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name read by a node of graph or of its subgraphs."""
    used = set()
    for node in graph.node:
        used.update(node.input)
        for sub in subgraphs(node):
            used |= used_names(sub)
            used.update(v.name for v in sub.output)
    return used


def has_attribute(node: onnx.NodeProto, name: str) -> bool:
    return any(a.name == name for a in node.attribute)


def get_attribute(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def set_attribute(node: onnx.NodeProto, name: str, value) -> None:
    remove_attribute(node, name)
    node.attribute.append(onnx.helper.make_attribute(name, value))


def remove_attribute(node: onnx.NodeProto, name: str) -> None:
    keep = [a for a in node.attribute if a.name != name]
    if len(keep) != len(node.attribute):
        del node.attribute[:]
        node.attribute.extend(keep)
