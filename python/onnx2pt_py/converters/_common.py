"""Helpers shared by the converters of this package.

Converters register through onnx2torch's own registry, so that
`onnx2torch.convert` picks them like its built-in ones and still returns an
onnx2torch GraphModule. onnx2torch looks a node up by the op schema's
`since_version` (not the model's opset), so every version registered here is
a real `since_version` of the op in onnx.defs.
"""

import numpy as np
import torch
from onnx import TensorProto, defs
from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult, get_const_value
from torch import nn

# Every key this package registered, with its converter.
REGISTERED = {}
# Keys this package asked for that onnx2torch already had; theirs is kept.
# Empty with the pinned onnx2torch (a test checks it); a newer onnx2torch may
# bring its own converters, and the package must still import.
ALREADY_TAKEN = []
# (op, version) -> the version whose converter versions.py registered for it
ALIASED = {}
# Keys whose onnx2torch converter computes something other than the op's
# specification, replaced by this package's: key -> onnx2torch's converter.
REPLACED = {}


def register(operation_type, versions, domain=defs.ONNX_DOMAIN):
    """Decorator: register one converter for several schema versions of an op."""

    def deco(converter):
        for version in versions:
            key = OperationDescription(domain=domain, operation_type=operation_type, version=version)
            if key in REGISTERED:  # the module ran again (importlib.reload): keep the first
                continue
            try:
                add_converter(operation_type=operation_type, version=version, domain=domain)(converter)
            except ValueError:
                ALREADY_TAKEN.append(key)
                continue
            REGISTERED[key] = converter
        return converter

    return deco


# Keys registered for ops onnxruntime defines in the ONNX domain, at
# versions that are not schema versions (the model's opset): see
# register_unchecked.
UNCHECKED = set()


def register_unchecked(operation_type, versions):
    """register, for an op of onnxruntime's in the ONNX domain without an
    ONNX schema at these versions: onnx2torch then looks it up at the
    model's own opset."""

    def deco(converter):
        register(operation_type, list(versions))(converter)
        UNCHECKED.update(
            OperationDescription(domain=defs.ONNX_DOMAIN, operation_type=operation_type, version=v) for v in versions
        )
        return converter

    return deco


def replace(operation_type, versions, domain=defs.ONNX_DOMAIN):
    """Decorator: take the place of onnx2torch's converter for these schema
    versions of an op, where its result differs from the specification (say
    why at the converter). onnx2torch's is kept in REPLACED."""

    def deco(converter):
        for version in versions:
            key = OperationDescription(domain=domain, operation_type=operation_type, version=version)
            if key in REPLACED:  # the module ran again (importlib.reload)
                _CONVERTER_REGISTRY[key] = converter
                continue
            REPLACED[key] = _CONVERTER_REGISTRY[key]
            _CONVERTER_REGISTRY[key] = converter
        return converter

    return deco


def replaced(operation_type, version, domain=defs.ONNX_DOMAIN):
    """onnx2torch's own converter for a key this package replaced."""
    return REPLACED[OperationDescription(domain=domain, operation_type=operation_type, version=version)]


def static_shape(name, graph):
    """A value's shape as ints, or None where a dimension is not a number."""
    info = graph.value_info.get(name)
    if info is None or not info.type.tensor_type.HasField("shape"):
        return None
    dims = info.type.tensor_type.shape.dim
    return [d.dim_value for d in dims] if all(d.HasField("dim_value") for d in dims) else None


class Module(nn.Module, OnnxToTorchModule):
    """Base of this package's modules (OnnxToTorchModule marks onnx2torch's own)."""


def result(module, node, inputs=None):
    """The converter's answer; `inputs` defaults to all of the node's inputs, in order."""
    mapping = OnnxMapping(
        inputs=tuple(node.input_values if inputs is None else inputs),
        outputs=tuple(node.output_values),
    )
    return OperationConverterResult(torch_module=module, onnx_mapping=mapping)


class Positional(Module):
    """Calls inner with the given inputs at their positions and None for the
    optional inputs left out before them (an empty name in ONNX)."""

    def __init__(self, inner, positions, count):
        super().__init__()
        self.inner, self.positions, self.count = inner, positions, count

    def forward(self, *args):
        full = [None] * self.count
        for position, value in zip(self.positions, args):
            full[position] = value
        return self.inner(*full)


def result_skipping_absent(module, node, inputs=None):
    """result, for a module whose optional inputs may be left out by an
    empty name: it gets None in their place."""
    inputs = list(node.input_values if inputs is None else inputs)
    given = [i for i, name in enumerate(inputs) if name]
    if len(given) == len(inputs):
        return result(module, node, inputs=inputs)
    return result(Positional(module, given, len(inputs)), node, inputs=[inputs[i] for i in given])


def present(node, index):
    """Whether optional input `index` is given (not omitted, not an empty name)."""
    return len(node.input_values) > index and node.input_values[index] != ""


def output_count(node):
    """How many outputs the module must return: a tuple only for several."""
    return len(node.output_values)


def constant(node, index, graph):
    """The value of input `index` as a tensor when it is an initializer or a
    Constant node's output; None when it is computed at run time or absent."""
    if not present(node, index):
        return None
    try:
        value = get_const_value(node.input_values[index], graph)
    except KeyError:
        return None
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float, list, tuple)):
        return torch.tensor(value)
    return None  # a Constant holding a sparse tensor or strings


def elem_type(name, graph):
    """The ONNX element type of a value, or None where no type is recorded."""
    if name in graph.initializers:
        return graph.initializers[name].proto.data_type
    info = graph.value_info.get(name)
    if info is not None and info.type.HasField("tensor_type"):
        return info.type.tensor_type.elem_type or None
    try:
        node, _ = graph.value_as_node_output(name)
    except KeyError:
        return None
    if node.operation_type == "Constant" and "value" in node.attributes:
        return node.attributes["value"].proto.data_type
    return None


_TORCH_DTYPES = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.UINT8: torch.uint8,
    TensorProto.INT8: torch.int8,
    TensorProto.UINT16: torch.uint16,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.BOOL: torch.bool,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.UINT32: torch.uint32,
    TensorProto.UINT64: torch.uint64,
    TensorProto.COMPLEX64: torch.complex64,
    TensorProto.COMPLEX128: torch.complex128,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.FLOAT8E4M3FN: torch.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: torch.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: torch.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: torch.float8_e5m2fnuz,
}

FLOAT8_DTYPES = (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz)


def onnx_type_name(onnx_type):
    try:
        return TensorProto.DataType.Name(onnx_type)
    except ValueError:
        return str(onnx_type)


def torch_dtype(onnx_type, what="this data type"):
    """The torch dtype for an ONNX element type; NotImplementedError naming it
    for the types torch cannot compute with (string, 4-bit, 2-bit, float8e8m0, ...)."""
    try:
        return _TORCH_DTYPES[onnx_type]
    except KeyError:
        raise NotImplementedError(f"{what}: ONNX type {onnx_type_name(onnx_type)} has no torch equivalent") from None


def normalize_axis(axis, rank):
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def as_int_list(value):
    """A list of Python ints from a tensor, a list or a scalar."""
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]
