"""Move a model to an opset at which onnx2torch has a converter for its ops.

onnx2torch looks a node up under the schema version that the model's opset
selects (``get_converter``: ``onnx.defs.get_schema(op, max_inclusive_version=
opset).since_version``), so a model at opset 18+ fails on ReduceMean-18 and
Reshape-19 and a model at opset 6 on AveragePool-1 and BatchNormalization-6,
though converters exist for other versions of the same ops. This pass picks
the opset, above or below, nearest to the model's at which the fewest nodes
lack a converter (none, where one exists) and converts the model there with
``onnx.version_converter``.

The registry is read at call time, so converters that other code registers
with ``add_converter`` before the pass runs count; ``apply`` also takes extra
keys for converters that are handled outside the registry.

Where ``version_converter`` falls short, the pass helps:
- it has no down-adapter for Split-18, Pad-18+ and ConstantOfShape-20+ (torch's
  dynamo exporter emits Split-18 with ``num_outputs``): these nodes are kept
  out of its way and rewritten here to the target's schema;
- its Reduce*-18 -> 13 adapter keeps ``noop_with_empty_axes`` and its
  Cast/AveragePool adapters keep ``saturate``/``dilations``: an attribute the
  target schema lacks is dropped where it holds the default value, the only
  case in which dropping it changes nothing.
A candidate that still throws or fails ``onnx.checker`` is skipped for the next.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from . import _graph

# Each attempt copies the model through version_converter; bound the cost.
_MAX_ATTEMPTS = 6
# Ops without a down-adapter in version_converter, by the first version that
# lacks one.
_NO_DOWN_ADAPTER = {"Split": 18, "Pad": 18, "ConstantOfShape": 20}
_SHELF = "onnx2pt.shelved"


class _Infeasible(Exception):
    pass


def registered_keys(extra: Iterable = ()) -> set[tuple[str, str, int]]:
    """(domain, op_type, version) for each converter registered now, plus extra."""
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY

    keys = {(k.domain, k.operation_type, k.version) for k in _CONVERTER_REGISTRY}
    keys.update((str(d), str(o), int(v)) for d, o, v in extra)
    return keys


def since_version(op_type: str, opset: int, domain: str = "") -> int:
    """The schema version that opset selects for op_type, as onnx2torch's
    get_converter computes it (the opset itself where there is no schema)."""
    try:
        return onnx.defs.get_schema(op_type, max_inclusive_version=opset, domain=domain).since_version
    except Exception:
        return opset


# Ops that version_converter replaces on the way up, from that opset on.
_REPLACED = {"Upsample": (10, "Resize"), "Scatter": (11, "ScatterElements")}


def unconvertible(ops: collections.Counter, opset: int, keys) -> int:
    """Nodes (counted by op type) that would have no converter at opset."""
    missing = 0
    for op, n in ops.items():
        if op in _REPLACED and opset >= _REPLACED[op][0]:
            op = _REPLACED[op][1]
        if ("", op, since_version(op, opset)) not in keys:
            missing += n
    return missing


def _default_ops(model: onnx.ModelProto) -> collections.Counter:
    # onnx2torch keys converters by node.domain; "" is the one it registers.
    return collections.Counter(n.op_type for n in model.graph.node if n.domain == "")


def apply(model: onnx.ModelProto, extra_converters: Iterable = ()) -> tuple[onnx.ModelProto, dict[str, int]]:
    """extra_converters: (domain, op_type, version) keys to count as convertible."""
    source = _graph.default_opset(model)
    if source is None:
        return model, {}
    keys = registered_keys(extra_converters)
    ops = _default_ops(model)
    now = unconvertible(ops, source, keys)
    if now == 0:
        return model, {}
    latest = onnx.defs.onnx_opset_version()
    predicted = {t: unconvertible(ops, t, keys) for t in range(1, latest + 1) if t != source}
    # Fewest predicted failures first, then nearest; down before up on a tie,
    # as newer versions of an op seldom lose features.
    order = sorted(predicted, key=lambda t: (predicted[t], abs(t - source), t > source))
    best_count, best_opset, best_model = now, None, None
    attempts = 0
    for target in order:
        if predicted[target] >= now or attempts >= _MAX_ATTEMPTS:
            break
        attempts += 1
        converted = convert(model, target)
        if converted is None:
            continue
        count = unconvertible(_default_ops(converted), target, keys)
        if count < best_count:
            best_count, best_opset, best_model = count, target, converted
        if count == 0:
            break
    if best_model is None:
        return model, {}
    counts = {"opset_from": source, "opset_to": best_opset}
    if best_count:
        counts["unconvertible_nodes"] = best_count
    return best_model, counts


def convert(model: onnx.ModelProto, target: int) -> onnx.ModelProto | None:
    """model at opset target, checked, with its interface intact; or None."""
    source = _graph.default_opset(model)
    work = _graph.copy_model(model)
    shelved = _shelve(work, source, target)
    if shelved:
        work.opset_import.append(onnx.helper.make_opsetid(_SHELF, 1))
    try:
        converted = onnx.version_converter.convert_version(work, target)
        if shelved:
            _unshelve(converted, target, model)
        _drop_default_attributes(converted, source, target)
        _restore_interface(model, converted)
        minimum = onnx.helper.find_min_ir_version_for(list(converted.opset_import), ignore_unknown=True)
        converted.ir_version = max(converted.ir_version, minimum)
        onnx.checker.check_model(converted)
    except Exception:
        return None
    if _graph.io_signature(converted) != _graph.io_signature(model):
        return None
    return converted


def _shelve(model: onnx.ModelProto, source: int, target: int) -> int:
    """Move nodes that version_converter cannot take down into a private domain."""
    if target >= source:
        return 0
    count = 0
    for node in model.graph.node:
        gap = _NO_DOWN_ADAPTER.get(node.op_type)
        since = since_version(node.op_type, source)
        if node.domain == "" and gap and since >= gap and since > since_version(node.op_type, target):
            node.domain = _SHELF
            count += 1
    return count


def _unshelve(model: onnx.ModelProto, target: int, original: onnx.ModelProto) -> None:
    graph = model.graph
    shapes = None
    for node in graph.node:
        if node.domain != _SHELF:
            continue
        node.domain = ""
        if node.op_type == "Split":
            if shapes is None:
                shapes = _graph.value_shapes(_graph.infer_shapes(original))
            _split_down(node, target, graph, shapes)
        elif node.op_type == "Pad":
            _pad_down(node, target, graph)
        elif node.op_type == "ConstantOfShape" and target < 9:
            raise _Infeasible("ConstantOfShape")
    keep = [o for o in model.opset_import if o.domain != _SHELF]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _initializer(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def _split_down(node: onnx.NodeProto, target: int, graph: onnx.GraphProto, shapes) -> None:
    """Split-18 (num_outputs, or a split input) -> Split-13 or Split-2/11."""
    if target >= 18:
        return
    if target < 2:
        raise _Infeasible("Split-1")
    num = _graph.get_attribute(node, "num_outputs")
    _graph.remove_attribute(node, "num_outputs")
    split_name = node.input[1] if len(node.input) > 1 else ""
    if not split_name and num is not None:
        dims = shapes.get(node.input[0])
        axis = _graph.get_attribute(node, "axis", 0)
        if dims is None or not dims or not isinstance(dims[axis % len(dims)], int):
            raise _Infeasible("Split with num_outputs over a dim of unknown size")
        size = dims[axis % len(dims)]
        if size % num:
            # Split-18 makes the last chunks smaller (parts of ceil(size / num)
            # from the front, clamped: 5 in 4 is [2, 2, 1, 0]); older
            # versions split evenly unless told the sizes.
            chunk = -(-size // num)
            sizes = [max(0, min(chunk, size - i * chunk)) for i in range(num)]
            split_name = f"{node.output[0]}_split_sizes"
            graph.initializer.append(numpy_helper.from_array(np.array(sizes, dtype=np.int64), split_name))
            del node.input[1:]
            node.input.append(split_name)
    if target < 13 and split_name:
        sizes = _initializer(graph, split_name)
        if sizes is None:
            raise _Infeasible("Split sizes computed at run time cannot become an attribute")
        del node.input[1:]
        _graph.set_attribute(node, "split", [int(s) for s in sizes])


def _pad_down(node: onnx.NodeProto, target: int, graph: onnx.GraphProto) -> None:
    """Pad-18+ -> Pad-18, Pad-11/13 (pads as input) or Pad-2 (pads as attribute);
    later versions only add types, which the checker verifies."""
    if _graph.get_attribute(node, "mode", b"constant") == b"wrap" and target < 19:
        raise _Infeasible("Pad mode wrap")
    if target >= 18:
        return
    if len(node.input) > 3 and node.input[3]:
        raise _Infeasible("Pad with axes")
    del node.input[3:]
    if target >= 11:
        return
    pads = _initializer(graph, node.input[1])
    value = _initializer(graph, node.input[2]) if len(node.input) > 2 and node.input[2] else np.array(0.0)
    if pads is None or value is None:
        raise _Infeasible("Pad amounts computed at run time cannot become an attribute")
    del node.input[1:]
    _graph.set_attribute(node, "pads", [int(p) for p in pads])
    _graph.set_attribute(node, "value", float(value))


def _drop_default_attributes(model: onnx.ModelProto, source: int, target: int) -> None:
    """Remove attributes the target schema lacks where they hold their default."""
    for node in model.graph.node:
        if node.domain != "":
            continue
        try:
            now = onnx.defs.get_schema(node.op_type, max_inclusive_version=target)
            before = onnx.defs.get_schema(node.op_type, max_inclusive_version=max(source, target))
        except Exception:
            continue
        for attr in list(node.attribute):
            if attr.name in now.attributes or attr.name not in before.attributes:
                continue
            value = onnx.helper.get_attribute_value(attr)
            default = before.attributes[attr.name].default_value
            if default.type != onnx.AttributeProto.UNDEFINED:
                neutral = value == onnx.helper.get_attribute_value(default)
            else:  # dilations has no schema default; 1 along every axis is it
                neutral = attr.name == "dilations" and all(v == 1 for v in value)
            if neutral:
                _graph.remove_attribute(node, attr.name)


def _restore_interface(original: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    """version_converter re-infers shapes; give inputs and outputs back the
    declared types (a symbolic batch must stay symbolic)."""
    names_in = [v.name for v in converted.graph.input]
    names_out = [v.name for v in converted.graph.output]
    if names_in == [v.name for v in original.graph.input]:
        del converted.graph.input[:]
        converted.graph.input.extend(original.graph.input)
    if names_out == [v.name for v in original.graph.output]:
        del converted.graph.output[:]
        converted.graph.output.extend(original.graph.output)
