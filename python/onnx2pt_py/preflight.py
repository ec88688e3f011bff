"""Which nodes of a model onnx2torch would fail on, asked of onnx2torch itself.

Rather than keep a list of what onnx2torch supports, the pre-flight does
what `onnx2torch.convert` does up to building the torch graph: the same
shape inference, the same graph wrapper, and each node's converter called
on it. Every node whose converter is missing or raises is reported, not
only the first, with onnx2torch's own reason.
"""

from .errors import first_line


def prepare(model):
    """The model as onnx2torch.convert sees it before converting nodes."""
    from onnx2torch.converter import _remove_initializers_from_input
    from onnx2torch.utils.safe_shape_inference import safe_shape_inference

    return _remove_initializers_from_input(safe_shape_inference(model))


def check(model):
    """Every node onnx2torch cannot convert: a list of dicts with the node's
    name, op, domain, opset and the reason, in graph order (empty: all
    convert)."""
    from onnx2torch.node_converters import get_converter
    from onnx2torch.onnx_graph import OnnxGraph

    from . import converters  # noqa: F401  (registers ours alongside onnx2torch's)

    try:
        prepared = prepare(model)
    except Exception as e:  # shape inference rejects the model as a whole
        return [failure("", "", "", 0, e)]
    if prepared.ir_version < 3:
        return [failure("", "", "", 0, f"IR version {prepared.ir_version} is too old (onnx2torch needs 3 or newer)")]
    opsets = {o.domain: o.version for o in prepared.opset_import}
    graph = OnnxGraph(prepared.graph)
    failures = []
    for index, node in enumerate(graph.nodes.values()):
        version = opsets.get(node.domain, 0)
        try:
            converter = get_converter(domain=node.domain, operation_type=node.operation_type, version=version)
            converter(node, graph)
        except Exception as e:  # whatever a converter raises is a reason
            failures.append(failure(node_name(node.proto, index), node.operation_type, node.domain, version, e))
    return failures


def node_name(node, index):
    """The node's name as the ONNX file has it; for an unnamed node, its op
    and position in the graph: "Conv#12"."""
    return node.name or f"{node.op_type}#{index}"


def failure(node, op, domain, opset, reason):
    if isinstance(reason, BaseException):
        text = first_line(reason)
        reason = text if text.startswith(type(reason).__name__) else f"{type(reason).__name__}: {text}"
    return {"node": node, "op": op, "domain": domain or "ai.onnx", "opset": opset, "reason": reason}
