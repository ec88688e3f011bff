"""Deliberately broken converters, for proving that verification catches them.

A mutation wraps onnx2torch's converter lookup (the same registry onnx2pt's
own converters are added to) so that one node of a model, named by its
first output, is converted wrongly: its module's result negated, scaled,
shifted, one element changed; its weights permuted or its bias dropped; or
the node converted with a wrong attribute (axis, pads, strides, epsilon).
Every other node converts as usual.

    with mutations.installed(mutation, target):   # target: the node's first output
        model = onnx2torch.convert(graph)

candidates(mutation, graph) lists the nodes of a graph that a mutation can
break. The wrapper modules are defined here, at module level, so that a
converted model holding them pickles and reloads like any other.
"""

import contextlib
import copy

import numpy as np
import torch
from onnx import numpy_helper
from onnx2torch import converter as onnx2torch_converter

# Ops that compute floating values (not shapes or indices): where a wrong
# result is a wrong model.
NUMERIC = {
    "Add", "Sub", "Mul", "Div", "MatMul", "Gemm", "Conv", "ConvTranspose", "Relu", "LeakyRelu", "PRelu", "Sigmoid",
    "HardSigmoid", "HardSwish", "Tanh", "Softmax", "LogSoftmax", "Gelu", "Erf", "Exp", "Log", "Sqrt", "Pow",
    "Reciprocal", "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
    "LpNormalization", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "GlobalAveragePool",
    "AveragePool", "MaxPool", "Concat", "Clip", "Neg", "Abs", "Softplus", "Elu", "Selu", "Mish",
}  # fmt: skip
ACTIVATIONS = {
    "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Gelu", "Erf", "Softplus", "Elu", "Selu",
    "Mish", "Clip", "Softmax", "LogSoftmax",
}  # fmt: skip
WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
BIASED = {"Conv", "ConvTranspose", "Gemm", "Add"}
AXIS_OPS = {
    "Softmax", "LogSoftmax", "Concat", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceProd",
    "LpNormalization", "ArgMax", "ArgMin", "Hardmax", "CumSum", "LayerNormalization", "Flatten",
}  # fmt: skip
WINDOWED = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"}
NORMALIZATIONS = {"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"}


class Mutation:
    """One way of converting a node wrongly. ops: the op types it applies to;
    needs(node, graph_facts) narrows that to nodes it can break."""

    def __init__(self, name, description, ops, needs=None):
        self.name, self.description, self.ops, self.needs = name, description, ops, needs

    def applies(self, node, facts):
        return node.op_type in self.ops and (self.needs is None or self.needs(node, facts))


def _float_output(node, facts):
    return facts.is_float(node.output[0])


def _has_constant_weight(node, facts):
    if node.op_type == "MatMul":
        return len(node.input) > 1 and node.input[1] in facts.initializers and facts.rank(node.input[1]) >= 2
    return len(node.input) > 1 and node.input[1] in facts.initializers


def _has_bias(node, facts):
    if node.op_type == "Add":  # a bias add: one side a constant
        return any(i in facts.initializers for i in node.input) and facts.is_float(node.output[0])
    return len(node.input) > 2 and node.input[2] in facts.initializers and facts.any_nonzero(node.input[2])


def _has_window(node, facts):
    kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
    if kernel is None and node.input[1:] and node.input[1] in facts.initializers:
        kernel = facts.initializers[node.input[1]].shape[2:]
    explicit = _attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    return kernel is not None and any(k > 1 for k in kernel) and explicit


def _has_outputs(node, facts):
    used = [o for o in node.output if o and o in facts.consumed]
    return len(used) >= 2


def _has_axis(node, facts):
    return facts.rank(node.input[0]) is None or facts.rank(node.input[0]) >= 2


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


MUTATIONS = [
    Mutation("sign_flip", "the node's result negated", NUMERIC, _float_output),
    Mutation("scale_up_1e-3", "the node's result times 1 + 1e-3", NUMERIC, _float_output),
    Mutation("scale_down_1e-3", "the node's result times 1 - 1e-3", NUMERIC, _float_output),
    Mutation("scale_up_1e-2", "the node's result times 1 + 1e-2", NUMERIC, _float_output),
    Mutation("scale_down_1e-2", "the node's result times 1 - 1e-2", NUMERIC, _float_output),
    Mutation("offset", "a constant added to the node's result: 1e-2 of its mean magnitude", NUMERIC, _float_output),
    Mutation("shifted_activation", "the activation applied to its input + 0.25", ACTIVATIONS, _float_output),
    Mutation("permuted_weight", "two output units' weights swapped", WEIGHTED, _has_constant_weight),
    Mutation("dropped_bias", "the bias left out", BIASED, _has_bias),
    Mutation("wrong_axis", "the axis (or axes) moved by one", AXIS_OPS, _has_axis),
    Mutation("pad_off_by_one", "the window's padding shifted by one", WINDOWED, _has_window),
    Mutation("stride_off_by_one", "the stride one larger", WINDOWED, _has_window),
    Mutation("wrong_epsilon", "epsilon 1e-3 where it is 1e-5, 1e-5 elsewhere", NORMALIZATIONS),
    Mutation("swapped_outputs", "the node's first two used outputs swapped", {"Split", "TopK", "LayerNormalization", "MaxPool", "Dropout", "BatchNormalization"}, _has_outputs),
    Mutation("one_element", "one element of the node's result changed", NUMERIC, _float_output),
]  # fmt: skip
BY_NAME = {m.name: m for m in MUTATIONS}


class GraphFacts:
    """What mutations need to know about a graph's values."""

    def __init__(self, model):
        import onnx

        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:
            inferred = model
        graph = inferred.graph
        self.initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer if not i.external_data}
        self.types = {}
        for v in list(graph.input) + list(graph.value_info) + list(graph.output):
            t = v.type.tensor_type
            rank = len(t.shape.dim) if t.HasField("shape") else None
            self.types[v.name] = (t.elem_type, rank)
        for name, array in self.initializers.items():
            self.types[name] = (onnx.helper.np_dtype_to_tensor_dtype(array.dtype), array.ndim)
        self.consumed = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}

    def is_float(self, name):
        from onnx import TensorProto

        elem = self.types.get(name, (None, None))[0]
        return elem in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)

    def rank(self, name):
        return self.types.get(name, (None, None))[1]

    def any_nonzero(self, name):
        return bool(np.any(self.initializers[name] != 0))


def candidates(mutation, model):
    """The nodes of model (a ModelProto) that mutation can break, in graph
    order, as (first output, op type)."""
    facts = GraphFacts(model)
    return [(n.output[0], n.op_type) for n in model.graph.node if mutation.applies(n, facts)]


def install(mutation, target):
    """Make onnx2torch convert the node whose first output is target wrongly,
    as mutation says; returns the function that undoes it."""
    original = onnx2torch_converter.get_converter

    def get_converter(domain, operation_type, version):
        convert = original(domain=domain, operation_type=operation_type, version=version)

        def mutated(node, graph):
            if not node.output_values or node.output_values[0] != target:
                return convert(node, graph)
            return _mutate(mutation.name, convert, node, graph)

        return mutated

    onnx2torch_converter.get_converter = get_converter

    def undo():
        onnx2torch_converter.get_converter = original

    return undo


@contextlib.contextmanager
def installed(mutation, target):
    """install, for the duration of a with block."""
    undo = install(mutation, target)
    try:
        yield
    finally:
        undo()


# -- how each mutation breaks a node -----------------------------------------


def _mutate(name, convert, node, graph):
    if name in ("wrong_axis", "pad_off_by_one", "stride_off_by_one", "wrong_epsilon"):
        return _with_attributes(name, convert, node, graph)
    result = convert(node, graph)
    module = result.torch_module
    if name == "permuted_weight":
        module = _permute_weight(module)
    elif name == "dropped_bias":
        module = _drop_bias(module, node)
    elif name == "shifted_activation":
        module = ShiftedInput(module, 0.25)
    elif name == "swapped_outputs":
        module = SwappedOutputs(module)
    else:
        module = MutatedOutput(module, name)
    return type(result)(torch_module=module, onnx_mapping=result.onnx_mapping)


def _with_attributes(name, convert, node, graph):
    """Convert a copy of node with a wrong attribute (or a wrong axes input)."""
    attrs = dict(node.attributes)
    op = node.operation_type
    axes_input = None
    if name == "wrong_axis":
        if "axes" in attrs:
            attrs["axes"] = [a + 1 if a >= 0 else a - 1 for a in attrs["axes"]]
        elif op.startswith("Reduce") and len(node.input_values) > 1 and node.input_values[1] in graph.initializers:
            axes_input = node.input_values[1]
        else:
            default = -1 if op in ("Softmax", "LogSoftmax", "LpNormalization", "LayerNormalization", "Hardmax") else 0
            if op in ("Flatten", "Concat", "ArgMax", "ArgMin", "CumSum") and "axis" not in attrs:
                default = 1 if op == "Flatten" else 0
            axis = attrs.get("axis", default)
            attrs["axis"] = axis - 1 if axis < 0 else axis + 1
    elif name == "pad_off_by_one":
        pads = list(attrs.get("pads") or [0] * (2 * _spatial_rank(node, graph)))
        half = len(pads) // 2
        # Shifted: one more at the start, one less at the end where there is one
        # (the output keeps its size), else just one more.
        pads[0] += 1
        if pads[half] > 0:
            pads[half] -= 1
        attrs["pads"] = pads
    elif name == "stride_off_by_one":
        strides = list(attrs.get("strides") or [1] * _spatial_rank(node, graph))
        strides[-1] += 1
        attrs["strides"] = strides
    elif name == "wrong_epsilon":
        default = 1e-5
        attrs["epsilon"] = 1e-5 if abs(attrs.get("epsilon", default) - 1e-5) > 1e-9 else 1e-3
    wrong = copy.copy(node)
    wrong._proto_attributes = attrs
    if axes_input is None:
        return convert(wrong, graph)
    axes = graph.initializers[axes_input].to_numpy()
    swapped = copy.copy(graph)
    swapped._initializers = dict(graph._initializers)
    from onnx2torch.onnx_tensor import OnnxTensor

    swapped._initializers[axes_input] = OnnxTensor.from_numpy(np.where(axes >= 0, axes + 1, axes - 1), axes_input)
    return convert(wrong, swapped)


def _spatial_rank(node, graph):
    kernel = node.attributes.get("kernel_shape")
    if kernel is not None:
        return len(kernel)
    return len(graph.initializers[node.input_values[1]].to_numpy().shape) - 2


def _permute_weight(module):
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() >= 1 and weight.shape[0] >= 2:
        with torch.no_grad():
            weight.data = weight.data[[1, 0, *range(2, weight.shape[0])]].contiguous()
        return module
    return PermutedWeightInput(module)  # the weight reaches the module as an input (MatMul)


def _drop_bias(module, node):
    if node.operation_type == "Add":
        return DroppedAddend(module)
    if getattr(module, "bias", None) is not None:
        with torch.no_grad():
            module.bias.zero_()
        return module
    return DroppedAddend(module, index=2)


def _first_float(out):
    return out.is_floating_point() if isinstance(out, torch.Tensor) else False


class MutatedOutput(torch.nn.Module):
    """The wrapped module's (first) result changed as the mutation says."""

    def __init__(self, inner, kind):
        super().__init__()
        self.inner, self.kind = inner, kind

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        if isinstance(out, tuple):
            return (self.change(out[0]), *out[1:])
        return self.change(out)

    def change(self, y):
        if not _first_float(y) or y.numel() == 0:
            return y
        k = self.kind
        if k == "sign_flip":
            return -y
        if k.startswith("scale_"):
            factor = float(k.rsplit("_", 1)[1])
            return y * (1 + factor if "up" in k else 1 - factor)
        if k == "offset":
            finite = y[torch.isfinite(y)]
            return y + (1e-2 * finite.abs().mean() if finite.numel() else 1e-2)
        if k == "one_element":
            flat = y.reshape(-1).clone()
            i = flat.numel() // 2
            flat[i] = flat[i] + 0.1 * (flat[i].abs() + 1)
            return flat.reshape(y.shape)
        raise ValueError(f"unknown mutation {k}")


class ShiftedInput(torch.nn.Module):
    def __init__(self, inner, shift):
        super().__init__()
        self.inner, self.shift = inner, shift

    def forward(self, x, *args, **kwargs):
        return self.inner(x + self.shift, *args, **kwargs)


class PermutedWeightInput(torch.nn.Module):
    """Two columns of the second input (a MatMul's weight) swapped."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, a, b, *args):
        if b.dim() >= 2 and b.shape[-1] >= 2:
            b = b[..., [1, 0, *range(2, b.shape[-1])]]
        return self.inner(a, b, *args)


class DroppedAddend(torch.nn.Module):
    """The addend (a bias Add's constant side, or a third input) zeroed."""

    def __init__(self, inner, index=None):
        super().__init__()
        self.inner, self.index = inner, index

    def forward(self, *args):
        args = list(args)
        if self.index is not None:
            if len(args) > self.index:
                args[self.index] = torch.zeros_like(args[self.index])
        else:  # Add: zero the smaller side, the bias
            small = 0 if args[0].numel() < args[1].numel() else 1
            args[small] = torch.zeros_like(args[small])
        return self.inner(*args)


class SwappedOutputs(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        if isinstance(out, (tuple, list)) and len(out) >= 2:
            return (out[1], out[0], *out[2:])
        return out
