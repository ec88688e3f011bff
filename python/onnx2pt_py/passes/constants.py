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
import math

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
# would trade a small node for a large stored weight. The model file is not
# trusted (a few bytes declare a ConstantOfShape of 2**40 elements), so the
# size is checked before evaluating, from shape inference over the inputs'
# values; where that gives none, the ops below, whose output size follows
# from their inputs' values rather than their sizes, stay nodes.
_MAX_EXPANSION = 1 << 20
_EXPANDING = {
    "AffineGrid", "BlackmanWindow", "CenterCropPad", "Col2Im", "ConstantOfShape", "DFT", "Expand",
    "HammingWindow", "HannWindow", "ImageDecoder", "MaxRoiPool", "MaxUnpool", "MelWeightMatrix", "OneHot",
    "Pad", "Range", "Resize", "RoiAlign", "STFT", "TfIdfVectorizer", "Tile", "Upsample",
}  # fmt: skip
# Inputs up to this size are given to shape inference as values (a shape,
# repeats, pads, scales); larger ones by their type alone.
_INFERENCE_DATA = 1 << 12
# Everything folded together holds at most _BUDGET_FACTOR times the elements
# stored in the model's constants, plus _BUDGET_EXTRA times _MAX_EXPANSION: a
# chain of folds, each within 4 times its inputs, cannot grow geometrically.
_BUDGET_FACTOR = 8
_BUDGET_EXTRA = 16
# A sparse constant whose dense form holds more elements stays sparse (and
# its node unconverted).
_MAX_DENSE = 1 << 28

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
    if not _library_may_fold(model):
        return None
    work = _graph.copy_model(model)  # slim() edits the model it is given
    try:
        out = onnxslim.slim(work, skip_optimizations=_SLIM_SKIP)
    except Exception:
        return None
    if not isinstance(out, onnx.ModelProto):
        return None
    return _restore_interface(model, out)


def _library_may_fold(model: onnx.ModelProto) -> bool:
    """Whether onnxslim may be given the model. It evaluates with onnxruntime
    whatever is computed from constants alone, and checks sizes only where
    its own inference gives them: not where some such output is over the
    built-in pass's bounds (_too_large, against the budget), or is an
    expanding op's (_EXPANDING) whose size shape inference cannot give, or
    a sparse constant's dense form is over _MAX_DENSE. The built-in pass
    then folds alone."""
    graph = model.graph
    shapes = _graph.value_shapes(_graph.infer_shapes(_for_inference(model)))
    sizes = {t.name: math.prod(t.dims) for t in graph.initializer}
    sizes.update((t.values.name, math.prod(t.dims)) for t in graph.sparse_initializer)
    room = _fold_budget(graph)
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if not all(i in sizes for i in inputs):
            continue
        if node.op_type == "Constant" and node.domain in _graph.DEFAULT_DOMAINS:
            dense = [math.prod(a.sparse_tensor.dims) for a in node.attribute if a.name == "sparse_value"]
            if any(n > _MAX_DENSE for n in dense):
                return False
        dims = [shapes.get(o) for o in node.output if o]
        if not all(_graph.is_static(d) for d in dims):
            if node.op_type in _EXPANDING or node.op_type == "Loop":  # (a constant trip count: any number of steps)
                return False
            sizes.update((o, 0) for o in node.output if o)  # (no larger than its inputs, then)
            continue
        out = [math.prod(d) for d in dims]
        if node.op_type != "Constant":  # (stored in the model, and counted in the budget)
            if _too_large(out, sum(sizes[i] for i in inputs), room):
                return False
            room -= sum(out)
        sizes.update(zip([o for o in node.output if o], out))
    return True


def _for_inference(model: onnx.ModelProto) -> onnx.ModelProto:
    """A light copy of model for shape inference: initializers over
    _INFERENCE_DATA elements become inputs of their type, and the declared
    value_info and output types, which a hostile file can set as it likes,
    are left out."""
    graph = model.graph
    light = onnx.helper.make_graph(
        list(graph.node),
        graph.name,
        list(graph.input),
        [onnx.ValueInfoProto(name=o.name) for o in graph.output],
        [t for t in graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL and _small(t)],
    )
    listed = {v.name for v in graph.input} | {t.name for t in light.initializer}
    light.input.extend(
        onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in graph.initializer
        if t.name not in listed
    )
    light.input.extend(
        onnx.helper.make_tensor_value_info(t.values.name, t.values.data_type, list(t.dims))
        for t in graph.sparse_initializer
        if t.values.name not in listed
    )
    out = onnx.helper.make_model(light, opset_imports=list(model.opset_import), functions=list(model.functions))
    out.ir_version = model.ir_version
    return out


def _small(tensor: onnx.TensorProto) -> bool:
    return math.prod(tensor.dims) <= _INFERENCE_DATA


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
    budget = _fold_budget(graph)  # before sparse constants are densified
    added = _constants_to_initializers(graph)
    _drop_identities(graph)
    _fold(model, budget)
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
    """The dense tensor, or None: strings, indices that do not fit, or a dense
    form over _MAX_DENSE elements (checked before allocating it: a few
    stored values can declare any dims)."""
    shape = tuple(int(d) for d in sparse.dims)
    if any(d < 0 for d in shape) or math.prod(shape) > _MAX_DENSE:
        return None
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    if values.dtype == object:
        return None
    dense = np.zeros(shape, dtype=values.dtype)
    try:
        if indices.ndim == 1:  # linearised indices
            dense.reshape(-1)[indices] = values
        else:  # [NNZ, rank] coordinates
            dense[tuple(indices.T)] = values
    except (IndexError, ValueError):
        return None
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


def _fold(model: onnx.ModelProto, budget: int) -> None:
    """budget: the elements all folded outputs may hold together (_fold_budget)."""
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
                result = _evaluate(node, {i: value(i) for i in inputs}, opsets, budget)
        tensors = _to_tensors(node.output, result) if result is not None else None
        if tensors is None:
            keep.append(node)
            continue
        budget -= sum(int(array.size) for _, array in tensors)
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


def _evaluate(node: onnx.NodeProto, inputs: dict[str, np.ndarray], opsets, room: int) -> list[np.ndarray] | None:
    """The node's outputs, or None where it stays a node: an op the reference
    cannot run, or outputs too large to fold (_too_large), checked before
    evaluating where shape inference gives their sizes."""
    from onnx.reference import ReferenceEvaluator

    size_in = sum(int(v.size) for v in inputs.values())
    sizes = _output_sizes(node, inputs, opsets)
    if sizes is None and node.op_type in _EXPANDING:
        return None
    if sizes is not None and _too_large(sizes, size_in, room):
        return None
    try:
        session = ReferenceEvaluator(node, opsets=opsets)
        results = [np.asarray(r) for r in session.run(None, inputs)]
    except Exception:
        return None  # an op the reference cannot run stays a node
    if len(results) != len(node.output):
        return None
    if any(r.dtype == object for r in results) or _too_large([int(r.size) for r in results], size_in, room):
        return None
    return results


def _too_large(sizes: list[int], size_in: int, room: int) -> bool:
    """Outputs of these sizes: one over _MAX_EXPANSION and over 4 times the
    inputs together, or all over what the budget has left."""
    return sum(sizes) > room or any(n > _MAX_EXPANSION and n > 4 * size_in for n in sizes)


def _output_sizes(node: onnx.NodeProto, inputs: dict[str, np.ndarray], opsets) -> list[int] | None:
    """The element count of each output of node, from shape inference over
    the inputs' types and (small ones) values; None where inference gives
    no static shape for some output."""
    try:
        domain = "" if node.domain in _graph.DEFAULT_DOMAINS else node.domain
        schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
        types = {
            name: onnx.helper.make_tensor_type_proto(onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for name, a in inputs.items()
        }
        data = {name: numpy_helper.from_array(a, name) for name, a in inputs.items() if a.size <= _INFERENCE_DATA}
        imports = [onnx.helper.make_opsetid(domain, version) for domain, version in opsets.items()]
        inferred = onnx.shape_inference.infer_node_outputs(schema, node, types, data, opset_imports=imports)
    except Exception:
        return None
    sizes = []
    for name in node.output:
        if not name:
            continue
        value = inferred.get(name)
        if value is None or not value.HasField("tensor_type") or not value.tensor_type.HasField("shape"):
            return None
        dims = value.tensor_type.shape.dim
        if not all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
            return None
        sizes.append(math.prod(d.dim_value for d in dims))
    return sizes


def _fold_budget(graph: onnx.GraphProto) -> int:
    """What all folded outputs may hold together, in elements: a multiple of
    what the model's constants store (their data, not their declared dims;
    sparse ones by their stored values)."""
    stored = sum(_stored_elements(t) for t in graph.initializer)
    for node in graph.node:
        if node.op_type != "Constant" or node.domain not in _graph.DEFAULT_DOMAINS:
            continue
        for attr in node.attribute:
            if attr.name == "value":
                stored += _stored_elements(attr.t)
            elif attr.name == "sparse_value":
                stored += _stored_elements(attr.sparse_tensor.values)
            else:
                stored += max(1, len(attr.floats), len(attr.ints))
    return _BUDGET_FACTOR * stored + _BUDGET_EXTRA * _MAX_EXPANSION


def _stored_elements(tensor: onnx.TensorProto) -> int:
    """The elements a tensor's data holds: by the bytes of its raw data or the
    length of its typed field; external data by its dims (the loader checked
    its file)."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return math.prod(tensor.dims)
    if tensor.raw_data:
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except Exception:
            itemsize = 1
        return len(tensor.raw_data) // max(itemsize, 1)
    fields = (tensor.float_data, tensor.int32_data, tensor.int64_data, tensor.double_data, tensor.uint64_data)
    return max(len(tensor.string_data), *(len(f) for f in fields))


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    needed = _graph.used_names(graph) | {o.name for o in graph.output} | {i.name for i in graph.input}
    keep = [i for i in graph.initializer if i.name in needed]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
