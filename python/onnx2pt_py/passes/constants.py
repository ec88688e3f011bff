"""Make every weight an initializer.

onnx2torch's Conv, Gemm, BatchNormalization, LayerNormalization, ... converters
read their weights with ``graph.initializers[name]``, so a weight that a node
produces raises ``KeyError``. Exporters produce weights with nodes in three
ways this pass undoes:

- ``Constant`` nodes (older and hand-written exporters) become initializers;
- ``Identity`` nodes over an initializer (torch's legacy exporter deduplicates
  equal initializers, such as the zero biases of a freshly initialised model,
  by feeding one initializer through an Identity to each user) are removed and
  their consumers read the initializer;
- subgraphs computed from constants only (shape arithmetic, a transposed or
  dequantized weight) and ``Shape``/``Size`` of a tensor whose inferred shape
  is fully static are folded into initializers.

onnxslim does the work where it is installed (it also folds ``Shape`` ->
``Gather`` of the static dims of a tensor whose batch dim is symbolic, which
turns a dynamic reshape into a constant one with -1); its fusions, common
subexpression elimination and weight tying are left off, as they change the
model's structure without helping conversion. A built-in pass then handles
what is left, and does everything when onnxslim is missing or fails.

Graph outputs keep their names: a graph output that is a constant stays, or
becomes, produced by a node (an Identity over the initializer, or its
Constant), since onnx2torch only returns node outputs. Inputs that are backed by an initializer
(pre-IR-4 exports list every weight as an input) are treated as constants, as
onnx2torch does; they stay listed while their initializer survives.
"""

from __future__ import annotations

import collections
import importlib.util

import numpy as np
import onnx
from onnx import numpy_helper

from . import _graph

# Folding these would freeze one random draw into the model.
_NONDETERMINISTIC = {
    "Bernoulli",
    "Dropout",
    "Multinomial",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
}
# A folded output larger than this, and larger than 4 times its inputs
# together (ConstantOfShape, Tile, Expand, Range), stays a node: folding it
# would trade a small node for a large stored weight.
_MAX_EXPANSION = 1 << 20

_SLIM_SKIP = ["graph_fusion", "subexpression_elimination", "weight_tying"]


def apply(model: onnx.ModelProto, *, use_library: bool = True) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Return (new model, counts); counts are empty and the model is returned
    as is where there is nothing to do."""
    if not _has_work(model.graph):
        return model, {}
    result = _with_onnxslim(model) if use_library else None
    if result is None:
        result = _graph.copy_model(model)
    wrapped = _builtin(result)
    counts = _census_diff(model, result, wrapped)
    if not counts:
        return model, {}
    return result, counts


def onnxslim_available() -> bool:
    return importlib.util.find_spec("onnxslim") is not None


def _has_work(graph: onnx.GraphProto) -> bool:
    constants = _graph.constant_names(graph)
    if any(o.name in constants for o in graph.output):
        return True
    for node in graph.node:
        if node.domain not in _graph.DEFAULT_DOMAINS:
            continue
        if node.op_type in ("Constant", "Identity", "Shape", "Size"):
            return True
        inputs = [i for i in node.input if i]
        if inputs and all(i in constants for i in inputs):
            return True
    return False


def _census(model: onnx.ModelProto) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node)


def _census_diff(before: onnx.ModelProto, after: onnx.ModelProto, wrapped: int) -> dict[str, int]:
    b, a = _census(before), _census(after)
    counts = {
        "constants_to_initializers": b["Constant"] - a["Constant"],
        "identities_removed": b["Identity"] - a["Identity"] + wrapped,
        "constant_outputs_given_a_node": wrapped,
    }
    others_b = sum(b.values()) - b["Constant"] - b["Identity"]
    others_a = sum(a.values()) - a["Constant"] - a["Identity"]
    # Folded into initializers, or dropped by onnxslim as no-ops (Dropout,
    # Cast to the same type, Reshape to the same shape).
    counts["nodes_folded"] = others_b - others_a
    return {k: v for k, v in counts.items() if v > 0}


# --- onnxslim ---------------------------------------------------------------


def _with_onnxslim(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """onnxslim's result with the original interface restored, or None."""
    try:
        import onnxslim
    except ImportError:
        return None
    work = _graph.copy_model(model)  # slim() edits the model it is given
    try:
        out = onnxslim.slim(work, skip_optimizations=_SLIM_SKIP)
    except Exception:
        return None
    if not isinstance(out, onnx.ModelProto):
        return None
    return _restore_interface(model, out)


def _restore_interface(original: onnx.ModelProto, out: onnx.ModelProto) -> onnx.ModelProto | None:
    graph = out.graph
    available = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    available |= {o for n in graph.node for o in n.output}
    if any(o.name not in available for o in original.graph.output):
        return None
    initializers = {i.name for i in graph.initializer}
    backed = _graph.initializer_inputs(original.graph)
    # onnxslim drops unused inputs and inputs backed by initializers; callers
    # feed the original list, so it comes back (backed ones where they survive).
    inputs = [v for v in original.graph.input if v.name not in backed or v.name in initializers]
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.output[:]
    graph.output.extend(original.graph.output)
    for field in ("doc_string", "model_version", "domain", "producer_name", "producer_version"):
        setattr(out, field, getattr(original, field))
    del out.metadata_props[:]
    out.metadata_props.extend(original.metadata_props)
    if original.functions and not out.functions:
        out.functions.extend(original.functions)
    if _graph.io_signature(out) != _graph.io_signature(original):
        return None
    try:
        onnx.checker.check_model(out)
    except Exception:
        return None
    return out


# --- built-in ----------------------------------------------------------------


def _builtin(model: onnx.ModelProto) -> int:
    """In place: Constant -> initializer, Identity over constants, folding.
    Returns how many initializer outputs were given an Identity."""
    graph = model.graph
    added = _constants_to_initializers(graph)
    _drop_identities(graph)
    _fold(model)
    _drop_unused_initializers(graph)
    wrapped = _wrap_initializer_outputs(graph)
    if added and model.ir_version < 4:
        # IR 3 requires every initializer to be an input; IR 4 lifted that.
        model.ir_version = 4
    return wrapped


def _wrap_initializer_outputs(graph: onnx.GraphProto) -> int:
    """A graph output that is an initializer (valid ONNX, and what onnxoptimizer
    and onnxscript's optimizer make of an Identity over a weight) is read by
    onnx2torch as a node output and fails; give it an Identity over a renamed
    initializer."""
    inputs = {v.name for v in graph.input}
    by_name = {i.name: i for i in graph.initializer}
    targets = [o.name for o in graph.output if o.name in by_name and o.name not in inputs]
    if not targets:
        return 0
    taken = set(by_name) | inputs | {o for n in graph.node for o in n.output} | _graph.used_names(graph)
    renames, nodes = {}, []
    for name in dict.fromkeys(targets):
        new = f"{name}_value"
        while new in taken:
            new += "_"
        taken.add(new)
        by_name[name].name = new
        renames[name] = new
        nodes.append(onnx.helper.make_node("Identity", [new], [name]))
    _graph.rename_uses(graph, renames)
    graph.node.extend(nodes)
    return len(nodes)


def _constants_to_initializers(graph: onnx.GraphProto) -> int:
    outputs = {o.name for o in graph.output}
    keep, added = [], 0
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _graph.DEFAULT_DOMAINS and node.output[0] not in outputs:
            tensor = constant_tensor(node)
            if tensor is not None:
                tensor.name = node.output[0]
                graph.initializer.append(tensor)
                added += 1
                continue
        keep.append(node)
    if added:
        del graph.node[:]
        graph.node.extend(keep)
    return added


def constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The value of a Constant node as a TensorProto, or None (strings)."""
    if len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    if attr.name == "value":
        tensor = onnx.TensorProto()
        tensor.CopyFrom(attr.t)
        if tensor.data_type == onnx.TensorProto.STRING:
            return None  # onnx2torch cannot turn a string initializer into a tensor
        return tensor
    if attr.name == "value_float":
        return numpy_helper.from_array(np.array(attr.f, dtype=np.float32))
    if attr.name == "value_floats":
        return numpy_helper.from_array(np.array(list(attr.floats), dtype=np.float32))
    if attr.name == "value_int":
        return numpy_helper.from_array(np.array(attr.i, dtype=np.int64))
    if attr.name == "value_ints":
        return numpy_helper.from_array(np.array(list(attr.ints), dtype=np.int64))
    if attr.name == "sparse_value":
        return _densify(attr.sparse_tensor)
    return None


def _densify(sparse: onnx.SparseTensorProto) -> onnx.TensorProto | None:
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    shape = tuple(sparse.dims)
    if values.dtype == object:
        return None
    dense = np.zeros(shape, dtype=values.dtype)
    if indices.ndim == 1:  # linearised indices
        dense.reshape(-1)[indices] = values
    else:  # [NNZ, rank] coordinates
        dense[tuple(indices.T)] = values
    return numpy_helper.from_array(dense)


def _drop_identities(graph: onnx.GraphProto) -> None:
    outputs = {o.name for o in graph.output}
    constants = _graph.constant_names(graph)
    renames: dict[str, str] = {}
    keep = []
    for node in graph.node:  # topological order: a chain resolves front to back
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        if node.op_type == "Identity" and node.domain in _graph.DEFAULT_DOMAINS and node.input[0] in constants:
            if node.output[0] not in outputs:  # a graph output needs a node
                renames[node.output[0]] = node.input[0]
                continue
        keep.append(node)
    if renames:
        del graph.node[:]
        graph.node.extend(keep)
        _graph.rename_uses(graph, renames)
        _drop_value_info(graph, renames)


def _drop_value_info(graph: onnx.GraphProto, names) -> None:
    keep = [v for v in graph.value_info if v.name not in names]
    if len(keep) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(keep)


def _fold(model: onnx.ModelProto) -> None:
    graph = model.graph
    outputs = {o.name for o in graph.output}
    constants = _graph.constant_names(graph)
    opsets = {(o.domain or ""): o.version for o in model.opset_import}
    if "ai.onnx" in opsets:
        opsets.setdefault("", opsets.pop("ai.onnx"))
    shapes = None
    values: dict[str, np.ndarray] = {}
    by_name = {i.name: i for i in graph.initializer}

    def value(name):
        if name not in values:
            values[name] = numpy_helper.to_array(by_name[name])
        return values[name]

    keep, folded = [], []
    for node in graph.node:
        result = None
        if (
            node.domain in _graph.DEFAULT_DOMAINS
            and node.op_type not in _NONDETERMINISTIC
            and not any(True for _ in _graph.subgraphs(node))
            and not any(o in outputs for o in node.output)
        ):
            inputs = [i for i in node.input if i]
            if node.op_type in ("Shape", "Size") and inputs and inputs[0] not in constants:
                if shapes is None:
                    shapes = _graph.value_shapes(_graph.infer_shapes(model))
                result = _static_shape(node, shapes.get(inputs[0]))
            elif inputs and all(i in constants for i in inputs):
                result = _evaluate(node, {i: value(i) for i in inputs}, opsets)
        tensors = _to_tensors(node.output, result) if result is not None else None
        if tensors is None:
            keep.append(node)
            continue
        for tensor, array in tensors:
            graph.initializer.append(tensor)
            by_name[tensor.name] = tensor
            values[tensor.name] = array
            constants.add(tensor.name)
        folded.append(node)
    if folded:
        del graph.node[:]
        graph.node.extend(keep)
        _drop_value_info(graph, {o for n in folded for o in n.output})


def _to_tensors(names, arrays):
    try:
        return [(numpy_helper.from_array(a, n), a) for n, a in zip(names, arrays) if n]
    except Exception:
        return None  # a dtype numpy_helper cannot store


def _static_shape(node: onnx.NodeProto, dims) -> list[np.ndarray] | None:
    if not _graph.is_static(dims):
        return None
    if node.op_type == "Size":
        return [np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)]
    start = _graph.get_attribute(node, "start", 0)
    end = _graph.get_attribute(node, "end", None)
    # Python slicing clamps out-of-range bounds the way Shape-15 specifies.
    return [np.array(dims[start:end], dtype=np.int64)]


def _evaluate(node: onnx.NodeProto, inputs: dict[str, np.ndarray], opsets) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    try:
        session = ReferenceEvaluator(node, opsets=opsets)
        results = [np.asarray(r) for r in session.run(None, inputs)]
    except Exception:
        return None  # an op the reference cannot run stays a node
    if len(results) != len(node.output):
        return None
    size_in = sum(int(v.size) for v in inputs.values())
    for r in results:
        if r.dtype == object or (r.size > _MAX_EXPANSION and r.size > 4 * size_in):
            return None
    return results


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    needed = _graph.used_names(graph) | {o.name for o in graph.output} | {i.name for i in graph.input}
    keep = [i for i in graph.initializer if i.name in needed]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
