"""Control flow (If, Loop, Scan, SequenceMap), the Sequence ops, Optional,
and an Identity that passes sequences and optionals.

Each subgraph (If's branches, Loop's, Scan's and SequenceMap's bodies) is
converted by onnx2torch as a model of its own and kept as a submodule that
returns its outputs as a tuple. ONNX subgraphs read values of the scopes
around them by name; every such name (found through nested subgraphs too)
becomes an explicit input of the node's module, after the node's own
inputs; except the outer graph's constants (initializers, Constant
nodes), which are copied into the subgraph, so that its converters see
constants where onnx2torch's need them (a Conv's weights, a Reshape's
target shape), as they would in the outer graph. (onnx2torch copies an
initializer into each module that uses it anyway.)

Sequences are Python lists of tensors and an empty optional is None; the
node's module returns a new list rather than changing the one it was given,
as a value in ONNX never changes once made.
"""

import inspect
import operator

import onnx
import onnx2torch
import torch
from onnx import helper
from onnx2torch.onnx_tensor import OnnxTensor

from ..passes.constants import constant_tensor
from ._common import Module, constant, register, replace, result, result_skipping_absent, torch_dtype

# --- subgraphs ---------------------------------------------------------------


def _subgraphs(node):
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def outer_names(graph):
    """The names a GraphProto reads without defining them (values of the
    scopes around it), in the order of first use."""
    defined = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    defined |= {i.values.name for i in graph.sparse_initializer}
    defined |= {o for n in graph.node for o in n.output}
    used = []
    for node in graph.node:
        used += node.input
        for sub in _subgraphs(node):
            used += outer_names(sub)
    used += [o.name for o in graph.output]
    return [name for name in dict.fromkeys(used) if name and name not in defined]


def _outer_model(graph):
    """The ModelProto whose graph onnx2torch (or the pre-flight, which calls
    converters the same way) is converting. A converter is given the graph
    alone, but a subgraph's nodes must be looked up at the model's opsets:
    the caller that wrapped the graph holds the model in a local variable."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            values = list(frame.f_locals.values())
            if any(v is graph for v in values):
                models = [v for v in values if isinstance(v, onnx.ModelProto)]
                if models:
                    return models[-1]
            frame = frame.f_back
    finally:
        del frame
    raise NotImplementedError("converting a subgraph needs the model's opsets; convert with onnx2torch.convert")


def _copied_constant(name, graph):
    """A constant of the outer graph as a TensorProto named `name`, or None."""
    if name in graph.initializers:
        tensor = onnx.TensorProto()
        tensor.CopyFrom(graph.initializers[name].proto)
    else:
        try:
            node, _ = graph.value_as_node_output(name)
        except KeyError:
            return None
        if node.operation_type != "Constant" or node.domain not in ("", "ai.onnx"):
            return None
        tensor = constant_tensor(node.proto)
        if tensor is None:
            return None
    if tensor.data_type == onnx.TensorProto.STRING:
        return None
    tensor.name = name
    return tensor


def _value_info(name, graph):
    """The outer value's declared type, or an untyped ValueInfoProto."""
    info = onnx.ValueInfoProto(name=name)
    if name in graph.value_info:
        info.CopyFrom(graph.value_info[name])
    return info


def convert_subgraph(body, graph, what):
    """(GraphModule, outer names it takes after its own inputs) for the
    GraphProto `body` of a node in `graph` (an OnnxGraph). The GraphModule
    returns the subgraph's outputs as a tuple."""
    model = _outer_model(graph)
    names = outer_names(body)
    sub = onnx.GraphProto()
    sub.CopyFrom(body)
    passed = []
    for name in names:
        copied = _copied_constant(name, graph)
        if copied is not None:
            sub.initializer.append(copied)
        else:
            sub.input.append(_value_info(name, graph))
            passed.append(name)
    # onnx2torch returns node outputs only (not inputs or initializers
    # passed through, and a multi-output node's whole tuple): it is given
    # no outputs, and the outputs are wired below. Their types stay known.
    outputs = [o.name for o in sub.output]
    typed = {v.name for v in sub.value_info} | {v.name for v in sub.input}
    sub.value_info.extend(o for o in sub.output if o.name not in typed and o.type.WhichOneof("value"))
    del sub.output[:]
    sub_model = helper.make_model(sub, opset_imports=model.opset_import, ir_version=max(model.ir_version, 4))
    try:
        graph_module = onnx2torch.convert(sub_model, attach_onnx_mapping=True)
        _wire_outputs(graph_module, sub_model.graph, outputs)
    except Exception as e:
        reason = str(e) if isinstance(e, NotImplementedError) else f"{type(e).__name__}: {e}"
        raise NotImplementedError(f"{what}: {reason}") from e
    return graph_module, passed


def _wire_outputs(graph_module, sub, outputs):
    """Make graph_module return the values named `outputs` as a tuple."""
    producers = {}
    for name, module in graph_module.named_modules():
        mapping = module.__dict__.pop("onnx_mapping", None)
        if mapping is not None:
            for index, value in enumerate(mapping.outputs):
                producers[value] = (name, index, len(mapping.outputs))
    fx_graph = graph_module.graph
    calls = {n.target: n for n in fx_graph.nodes if n.op == "call_module"}
    placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
    input_names = [v.name for v in sub.input]
    initializers = {i.name: i for i in sub.initializer}
    output = next(n for n in fx_graph.nodes if n.op == "output")
    values = []
    with fx_graph.inserting_before(output):
        for name in outputs:
            if name in producers:
                module, index, count = producers[name]
                node = calls[module]
                values.append(fx_graph.call_function(operator.getitem, (node, index)) if count > 1 else node)
            elif name in input_names:
                values.append(placeholders[input_names.index(name)])
            elif name in initializers:
                buffer = f"constant_output_{len(values)}"
                graph_module.register_buffer(buffer, OnnxTensor(initializers[name]).to_torch())
                values.append(fx_graph.get_attr(buffer))
            else:
                raise ValueError(f"subgraph output {name!r} is not computed in it")
    output.args = (tuple(values),)
    fx_graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()


def _outputs(values, count):
    """A node's result as onnx2torch expects it: a tuple only for several outputs."""
    return tuple(values) if count > 1 else values[0]


def _tensor_types(graph_proto):
    """The element types of a GraphProto's outputs, or None where one is not
    a tensor (a sequence, an optional) or has no recorded type."""
    types = []
    for output in graph_proto.output:
        if output.type.WhichOneof("value") != "tensor_type" or not output.type.tensor_type.elem_type:
            return None
        types.append(output.type.tensor_type.elem_type)
    return types


def _scan_element(info):
    """(dtype, shape) of one element of a scan output, from the body's
    output: for a scan of zero iterations, which has none to stack (0 for
    the dimensions the body does not fix)."""
    tensor = info.type.tensor_type
    dtype = torch_dtype(tensor.elem_type, "a scan output") if tensor.elem_type else torch.float32
    return dtype, [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]


def _stack(values, axis, element, device):
    """values stacked along a new axis; an empty tensor of the element's
    type and shape where there are none."""
    if values:
        rank = values[0].dim() + 1
        return torch.stack(values, dim=axis + rank if axis < 0 else axis)
    dtype, shape = element
    shape = list(shape)
    shape.insert(axis + len(shape) + 1 if axis < 0 else axis, 0)
    return torch.zeros(shape, dtype=dtype, device=device)


def _device(values):
    """The device of the first tensor among values (the module's own
    tensors must follow its inputs to an accelerator)."""
    return next((v.device for v in values if isinstance(v, torch.Tensor)), None)


# --- If ----------------------------------------------------------------------


class OnnxIf(Module):
    """Runs one branch. Under torch.export or torch.compile, torch.cond where
    the branches give tensors of the same types, so that both are captured;
    a Python `if` on the condition otherwise."""

    def __init__(self, then_branch, else_branch, then_picks, else_picks, outputs, capturable):
        super().__init__()
        self.then_branch, self.else_branch = then_branch, else_branch
        self.then_picks, self.else_picks = then_picks, else_picks  # outer values each branch takes
        self.outputs, self.capturable = outputs, capturable

    def forward(self, cond, *outer):
        if self.capturable and torch.compiler.is_compiling() and all(isinstance(v, torch.Tensor) for v in outer):
            values = torch.cond(cond.reshape(()), self._then_unaliased, self._else_unaliased, tuple(outer))
        else:
            values = self._then(*outer) if bool(cond) else self._else(*outer)
        return _outputs(values, self.outputs)

    def _then(self, *outer):
        return tuple(self.then_branch(*[outer[i] for i in self.then_picks]))

    def _else(self, *outer):
        return tuple(self.else_branch(*[outer[i] for i in self.else_picks]))

    # torch.cond refuses branches that return one of their inputs, or
    # tensors whose storage offsets or strides differ: it gets fresh,
    # contiguous copies.
    def _then_unaliased(self, *outer):
        return tuple(v.clone(memory_format=torch.contiguous_format) for v in self._then(*outer))

    def _else_unaliased(self, *outer):
        return tuple(v.clone(memory_format=torch.contiguous_format) for v in self._else(*outer))


class OnnxFixedIf(Module):
    """An If whose condition is a constant of the graph: only that branch."""

    def __init__(self, branch, outputs):
        super().__init__()
        self.branch, self.outputs = branch, outputs

    def forward(self, *outer):
        return _outputs(self.branch(*outer), self.outputs)


@register("If", [1, 11, 13, 16, 19, 21, 23, 24, 25])
def convert_if(node, graph):
    # (11 let the branches' output shapes differ, later versions add types)
    fixed = constant(node, 0, graph)
    then_proto, else_proto = node.attributes["then_branch"].g, node.attributes["else_branch"].g
    count = len(node.output_values)
    if fixed is not None:
        chosen = then_proto if bool(fixed.reshape(-1)[0]) else else_proto
        module, names = convert_subgraph(chosen, graph, "If branch")
        return result(OnnxFixedIf(module, count), node, inputs=names)
    then_branch, then_names = convert_subgraph(then_proto, graph, "If then_branch")
    else_branch, else_names = convert_subgraph(else_proto, graph, "If else_branch")
    names = list(dict.fromkeys(then_names + else_names))
    then_types, else_types = _tensor_types(then_proto), _tensor_types(else_proto)
    capturable = then_types is not None and then_types == else_types
    module = OnnxIf(
        then_branch,
        else_branch,
        [names.index(n) for n in then_names],
        [names.index(n) for n in else_names],
        count,
        capturable,
    )
    return result(module, node, inputs=[node.input_values[0], *names])


# --- Loop --------------------------------------------------------------------


class OnnxLoop(Module):
    """ONNX Loop: runs the body while the iteration count is below the trip
    count (if given) and the condition holds; the body gets the
    iteration number, the condition and the loop-carried values, and returns
    the condition, the new carried values and one element of each scan
    output, which are stacked along a new first axis."""

    def __init__(self, body, trip_count, has_trip_count, has_cond, carried, scan_elements, outputs):
        super().__init__()
        self.body = body
        self.trip_count = trip_count  # a Python int where the graph holds it as a constant
        self.has_trip_count, self.has_cond = has_trip_count, has_cond
        self.carried, self.scan_elements, self.outputs = carried, scan_elements, outputs

    def forward(self, *args):
        args = list(args)
        trip_count = self.trip_count
        if self.has_trip_count and trip_count is None:
            trip_count = int(args.pop(0).reshape(-1)[0])
        device = _device(args)
        cond = args.pop(0) if self.has_cond else torch.tensor(True, device=device)
        carried, outer = args[: self.carried], args[self.carried :]
        scans = [[] for _ in self.scan_elements]
        keep_going = bool(cond)
        iteration = 0
        while keep_going and (trip_count is None or iteration < trip_count):
            out = self.body(torch.tensor(iteration, dtype=torch.int64, device=device), cond, *carried, *outer)
            cond, carried = out[0], list(out[1 : 1 + self.carried])
            for scan, value in zip(scans, out[1 + self.carried :]):
                scan.append(value)
            iteration += 1
            # (even without a condition input: the specification calls the
            # body's condition ignored then, but onnxruntime and onnx's
            # reference evaluator stop when it turns false)
            keep_going = bool(cond)
        stacked = [_stack(s, 0, element, device) for s, element in zip(scans, self.scan_elements)]
        return _outputs(carried + stacked, self.outputs)


@register("Loop", [1, 11, 13, 16, 19, 21, 23, 24, 25])
def convert_loop(node, graph):
    # (11 made the trip count and condition optional inputs, 13 allowed
    # sequences as carried values, 16 optionals; later versions add types)
    inputs = node.input_values
    has_trip_count = len(inputs) > 0 and inputs[0] != ""
    has_cond = len(inputs) > 1 and inputs[1] != ""
    trip = constant(node, 0, graph)
    trip_count = int(trip.reshape(-1)[0]) if trip is not None else None
    body_proto = node.attributes["body"].g
    carried = len(inputs) - 2
    scan_infos = list(body_proto.output)[1 + carried :]
    body, names = convert_subgraph(body_proto, graph, "Loop body")
    module = OnnxLoop(
        body,
        trip_count,
        has_trip_count,
        has_cond,
        carried,
        [_scan_element(info) for info in scan_infos],
        len(node.output_values),
    )
    given = ([inputs[0]] if has_trip_count and trip_count is None else []) + ([inputs[1]] if has_cond else [])
    return result(module, node, inputs=[*given, *inputs[2:], *names])


# --- Scan --------------------------------------------------------------------


class OnnxScan(Module):
    """ONNX Scan (opset 9 on): the body runs once per slice of the scan
    inputs along their axes, forwards or backwards, carrying the state
    variables; its scan outputs are stacked along their axes, in order or
    reversed."""

    def __init__(self, body, states, input_axes, input_reverse, output_axes, output_reverse, scan_elements, outputs):
        super().__init__()
        self.body, self.states = body, states
        self.input_axes, self.input_reverse = input_axes, input_reverse
        self.output_axes, self.output_reverse = output_axes, output_reverse
        self.scan_elements, self.outputs = scan_elements, outputs

    def forward(self, *args):
        states = list(args[: self.states])
        xs = args[self.states : self.states + len(self.input_axes)]
        outer = args[self.states + len(self.input_axes) :]
        states, scans = self.run(states, xs, outer)
        return _outputs(states + scans, self.outputs)

    def run(self, states, xs, outer):
        """(final states, scan outputs)."""
        axes = [a + x.dim() if a < 0 else a for a, x in zip(self.input_axes, xs)]
        steps = xs[0].shape[axes[0]] if xs else 0
        if any(x.shape[a] != steps for x, a in zip(xs, axes)):
            raise ValueError("Scan inputs differ in length along their scan axes")
        elements = [[] for _ in self.scan_elements]
        for t in range(steps):
            sliced = [x.select(a, steps - 1 - t if r else t) for x, a, r in zip(xs, axes, self.input_reverse)]
            out = self.body(*states, *sliced, *outer)
            states = list(out[: self.states])
            for collected, value in zip(elements, out[self.states :]):
                collected.append(value)
        device = _device([*states, *xs])
        scans = [
            _stack(collected[::-1] if reverse else collected, axis, element, device)
            for collected, axis, reverse, element in zip(
                elements, self.output_axes, self.output_reverse, self.scan_elements
            )
        ]
        return states, scans


class OnnxScan8(Module):
    """ONNX Scan 8: a batch axis first, the sequence axis second, and
    optional sequence lengths per batch item; scan outputs past an item's
    length are zeros."""

    def __init__(self, scan, has_lengths):
        super().__init__()
        self.scan, self.has_lengths = scan, has_lengths

    def forward(self, *args):
        args = list(args)
        lengths = args.pop(0) if self.has_lengths else None
        count = self.scan.states + len(self.scan.input_axes)
        states, xs, outer = args[: self.scan.states], args[self.scan.states : count], args[count:]
        batch = (states + xs)[0].shape[0]
        finals, scans = [], []
        for b in range(batch):
            length = None if lengths is None else int(lengths[b])
            item = [x[b] for x in xs]
            if length is not None:
                item = [x.narrow(0, 0, length) for x in item]
            final, scan = self.scan.run([s[b] for s in states], item, outer)
            if length is not None:
                steps = xs[0].shape[1]
                scan = [torch.cat([s, s.new_zeros(steps - length, *s.shape[1:])]) for s in scan]
            finals.append(final)
            scans.append(scan)
        stacked = [torch.stack(values) for values in zip(*finals)] + [torch.stack(values) for values in zip(*scans)]
        return _outputs(stacked, self.scan.outputs)


def _scan_attribute(node, name, count, default):
    values = list(node.attributes.get(name, []))
    return values if values else [default] * count


@register("Scan", [8])
def convert_scan8(node, graph):
    return _convert_scan(node, graph, opset8=True)


@register("Scan", [9, 11, 16, 19, 21, 23, 24, 25])
def convert_scan(node, graph):
    # (9 dropped the batch axis and sequence lengths and added axes and
    # output directions; 11 negative axes; later versions add types)
    return _convert_scan(node, graph, opset8=False)


def _convert_scan(node, graph, opset8):
    body_proto = node.attributes["body"].g
    num_scan_inputs = node.attributes["num_scan_inputs"]
    inputs = list(node.input_values)
    lengths = None
    if opset8:
        lengths, inputs = inputs[0], inputs[1:]
    states = len(inputs) - num_scan_inputs
    scan_outputs = len(body_proto.output) - states
    if opset8:
        input_axes, input_reverse = [0] * num_scan_inputs, _scan_attribute(node, "directions", num_scan_inputs, 0)
        output_axes, output_reverse = [0] * scan_outputs, [0] * scan_outputs
    else:
        input_axes = _scan_attribute(node, "scan_input_axes", num_scan_inputs, 0)
        input_reverse = _scan_attribute(node, "scan_input_directions", num_scan_inputs, 0)
        output_axes = _scan_attribute(node, "scan_output_axes", scan_outputs, 0)
        output_reverse = _scan_attribute(node, "scan_output_directions", scan_outputs, 0)
    body, names = convert_subgraph(body_proto, graph, "Scan body")
    elements = [_scan_element(info) for info in list(body_proto.output)[states:]]
    module = OnnxScan(
        body,
        states,
        [int(a) for a in input_axes],
        [bool(r) for r in input_reverse],
        [int(a) for a in output_axes],
        [bool(r) for r in output_reverse],
        elements,
        len(node.output_values),
    )
    if opset8:
        module = OnnxScan8(module, bool(lengths))
        inputs = ([lengths] if lengths else []) + inputs
    return result(module, node, inputs=[*inputs, *names])


# --- SequenceMap -------------------------------------------------------------


class OnnxSequenceMap(Module):
    """Runs the body once per element of the input sequence; the other
    inputs give their element at the same position (sequences) or
    themselves (tensors). Each output is the sequence of the body's values."""

    def __init__(self, body, inputs, outputs):
        super().__init__()
        self.body, self.inputs, self.outputs = body, inputs, outputs

    def forward(self, *args):
        given, outer = args[: self.inputs], args[self.inputs :]
        results = [[] for _ in range(self.outputs)]
        for i in range(len(given[0])):
            out = self.body(*[v[i] if isinstance(v, list) else v for v in given], *outer)
            for collected, value in zip(results, out):
                collected.append(value)
        return _outputs(results, self.outputs)


@register("SequenceMap", [17])
def convert_sequence_map(node, graph):
    body, names = convert_subgraph(node.attributes["body"].g, graph, "SequenceMap body")
    module = OnnxSequenceMap(body, len(node.input_values), len(node.output_values))
    return result(module, node, inputs=[*node.input_values, *names])


# --- sequences ---------------------------------------------------------------


def _position(position, length, allow_end):
    """An ONNX sequence position (negative counts from the back) as an index;
    allow_end: the position just past the last element is valid (insertion)."""
    index = int(position.reshape(-1)[0])
    if index < 0:
        index += length
    if not 0 <= index <= (length if allow_end else length - 1):
        raise IndexError(f"position {int(position.reshape(-1)[0])} is out of range for a sequence of {length}")
    return index


class OnnxSequenceEmpty(Module):
    def forward(self):
        return []


class OnnxSequenceConstruct(Module):
    def forward(self, *tensors):
        return list(tensors)


class OnnxSequenceInsert(Module):
    def forward(self, sequence, tensor, position=None):
        index = len(sequence) if position is None else _position(position, len(sequence), allow_end=True)
        return sequence[:index] + [tensor] + sequence[index:]


class OnnxSequenceErase(Module):
    def forward(self, sequence, position=None):
        index = len(sequence) - 1 if position is None else _position(position, len(sequence), allow_end=False)
        if index < 0:
            raise IndexError("SequenceErase on an empty sequence")
        return sequence[:index] + sequence[index + 1 :]


class OnnxSequenceAt(Module):
    def forward(self, sequence, position):
        return sequence[_position(position, len(sequence), allow_end=False)]


class OnnxSequenceLength(Module):
    def forward(self, sequence):
        return torch.tensor(len(sequence), dtype=torch.int64, device=_device(sequence))


class OnnxConcatFromSequence(Module):
    def __init__(self, axis, new_axis):
        super().__init__()
        self.axis, self.new_axis = axis, new_axis

    def forward(self, sequence):
        if self.new_axis:  # axis counts in the result's rank, one more than the elements'
            rank = sequence[0].dim() + 1
            return torch.stack(sequence, dim=self.axis + rank if self.axis < 0 else self.axis)
        return torch.cat(sequence, dim=self.axis)


class OnnxSplitToSequence(Module):
    """split absent: pieces of size 1 (without the axis unless keepdims);
    a scalar: pieces of that size, the last one smaller where it does not
    divide; a list: the pieces' sizes."""

    def __init__(self, axis, keepdims, split=None):
        super().__init__()
        self.axis, self.keepdims, self.split = axis, keepdims, split

    def forward(self, x, split=None):
        split = self.split if split is None else split.tolist()
        if split is None:
            pieces = torch.split(x, 1, dim=self.axis)
            return list(pieces) if self.keepdims else [p.squeeze(self.axis) for p in pieces]
        return list(torch.split(x, split, dim=self.axis))


@register("SequenceEmpty", [11])
def convert_sequence_empty(node, graph):
    return result(OnnxSequenceEmpty(), node)


@register("SequenceConstruct", [11])
def convert_sequence_construct(node, graph):
    return result(OnnxSequenceConstruct(), node)


@register("SequenceInsert", [11])
def convert_sequence_insert(node, graph):
    return result_skipping_absent(OnnxSequenceInsert(), node)


@register("SequenceErase", [11])
def convert_sequence_erase(node, graph):
    return result_skipping_absent(OnnxSequenceErase(), node)


@register("SequenceAt", [11])
def convert_sequence_at(node, graph):
    return result(OnnxSequenceAt(), node)


@register("SequenceLength", [11])
def convert_sequence_length(node, graph):
    return result(OnnxSequenceLength(), node)


@register("ConcatFromSequence", [11])
def convert_concat_from_sequence(node, graph):
    axis = node.attributes["axis"]
    return result(OnnxConcatFromSequence(int(axis), bool(node.attributes.get("new_axis", 0))), node)


@register("SplitToSequence", [11, 24])
def convert_split_to_sequence(node, graph):
    # (24 adds types)
    axis, keepdims = int(node.attributes.get("axis", 0)), bool(node.attributes.get("keepdims", 1))
    split = constant(node, 1, graph)
    if split is not None:
        module = OnnxSplitToSequence(axis, keepdims, split.tolist())
        return result(module, node, inputs=node.input_values[:1])
    return result_skipping_absent(OnnxSplitToSequence(axis, keepdims), node)


# --- optionals ---------------------------------------------------------------


class OnnxOptional(Module):
    def forward(self, value=None):
        return value


class OnnxOptionalHasElement(Module):
    def forward(self, value=None):
        return torch.tensor(value is not None)


class OnnxOptionalGetElement(Module):
    def forward(self, value):
        if value is None:
            raise ValueError("OptionalGetElement of an empty optional")
        return value


@register("Optional", [15, 28])
def convert_optional(node, graph):
    # (28 adds types)
    return result_skipping_absent(OnnxOptional(), node)


@register("OptionalHasElement", [15, 18, 28])
def convert_optional_has_element(node, graph):
    # (18 accepts plain tensors and sequences too, and a missing input)
    return result_skipping_absent(OnnxOptionalHasElement(), node)


@register("OptionalGetElement", [15, 18, 28])
def convert_optional_get_element(node, graph):
    # (18 accepts plain tensors and sequences too, returned as they are)
    return result(OnnxOptionalGetElement(), node)


# --- Identity ----------------------------------------------------------------


class OnnxIdentity(Module):
    """A copy of a tensor (like onnx2torch's, which only takes tensors), of a
    sequence, or an empty optional."""

    def forward(self, value):
        if isinstance(value, torch.Tensor):
            return value.clone()
        if isinstance(value, list):
            return [v.clone() for v in value]
        return value


@replace("Identity", [1, 13, 14, 16])
def convert_identity(node, graph):
    # onnx2torch's clones a tensor and fails on a sequence (Identity 14)
    # and an optional (Identity 16)
    return result(OnnxIdentity(), node)
