"""Reading an ONNX model safely and describing it."""

import collections
import contextlib
import hashlib
import math
import os

import onnx
from onnx import external_data_helper

from .errors import UserError, first_line


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_hashed(path, write):
    """Create path with write(f) and return the sha256 of the bytes written,
    hashed on their way to the file: hashing the file afterwards would vouch
    for whatever someone who can write its folder put there meanwhile."""
    writer = _HashingWriter(path)
    try:
        write(writer)
    finally:
        writer.close()
    return writer.sha256.hexdigest()


class _HashingWriter:
    """A file opened for writing that hashes what goes through it (write and
    flush, all torch.save needs of a file object)."""

    def __init__(self, path):
        self.file = open(path, "wb")
        self.sha256 = hashlib.sha256()

    def write(self, data):
        self.sha256.update(data)
        return self.file.write(data)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()


def read_hashed(path, sha256):
    """The file's bytes, read once, if they hash to sha256 (what this run
    wrote): whoever loads the file loads these bytes, not the path again,
    which could be swapped in between (unpickling runs code)."""
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UserError(f"{path} changed after it was written; refusing to load it")
    return data


# Ops onnxruntime defines in the ONNX domain itself, beyond ONNX's schemas
# (its transformer optimizer writes them), with the opset from which ONNX
# has a schema of its own (None: never). The checker knows neither.
ONNXRUNTIME_ONNX_DOMAIN_OPS = {"LayerNormalization": 17, "SimplifiedLayerNormalization": None}


def checkable(model):
    """model, or a copy in which the nodes of ONNXRUNTIME_ONNX_DOMAIN_OPS sit
    in onnxruntime's own domain, where the checker leaves them be."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    theirs = [
        i
        for i, n in enumerate(model.graph.node)
        if n.domain in ("", "ai.onnx")
        and n.op_type in ONNXRUNTIME_ONNX_DOMAIN_OPS
        and (ONNXRUNTIME_ONNX_DOMAIN_OPS[n.op_type] or opset + 1) > opset
    ]
    if not theirs:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for i in theirs:
        copy.graph.node[i].domain = "com.microsoft"
    if not any(o.domain == "com.microsoft" for o in copy.opset_import):
        copy.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return copy


# External tensors of up to INLINE_TENSOR_BYTES are read into the model
# when it is loaded, smallest first while they total no more than
# INLINE_TOTAL_BYTES: shape inference (onnx's, which onnx2torch and the
# passes run, and onnxruntime's) needs the values of shape-like inputs (a
# Reshape's or Expand's shape, Tile's repeats, Slice's bounds, Pad's pads,
# Resize's sizes, reduction axes...), which it does not read from files, and
# these are always small. Larger tensors (weights) stay in their files, so
# that the ModelProto stays far below protobuf's 2 GiB.
INLINE_TENSOR_BYTES = 1 << 20
INLINE_TOTAL_BYTES = 1 << 28


def has_external_data(model):
    return any(external_data_helper.uses_external_data(t) for t in external_data_helper._get_all_tensors(model))


def small_external_tensors(model):
    """The external tensors of model to read in, smallest first: each of up
    to INLINE_TENSOR_BYTES, together no more than INLINE_TOTAL_BYTES."""
    small = []
    for tensor in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            size = external_size(tensor)
            if size <= INLINE_TENSOR_BYTES:
                small.append((size, tensor))
    small.sort(key=lambda st: st[0])
    total = 0
    for i, (size, _) in enumerate(small):
        total += size
        if total > INLINE_TOTAL_BYTES:
            small = small[:i]
            break
    return [tensor for _, tensor in small]


def inline_small_tensors(model, folder):
    """Read model's small_external_tensors from their files under folder
    into the model itself, in place. Returns how many were read in."""
    tensors = small_external_tensors(model)
    for tensor in tensors:
        external_data_helper.load_external_data_for_tensor(tensor, folder)
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    return len(tensors)


def external_size(tensor):
    """The bytes an external tensor takes in its file: its length entry, or
    what its type and shape take."""
    info = external_data_helper.ExternalDataInfo(tensor)
    if info.length is not None:
        return int(info.length)
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except Exception:  # an unknown type: too large to read in
        return INLINE_TOTAL_BYTES + 1
    return math.prod(tensor.dims) * itemsize


def folder_of(path):
    """The real folder of a model file, where its external data is."""
    return os.path.realpath(os.path.dirname(os.path.abspath(path)))


def load_model(path):
    """Load and check an ONNX model, refusing external data outside its folder.

    Returns the model and the external data files it references, relative to
    its folder, in a stable order. Small external tensors are read into the
    model (INLINE_TENSOR_BYTES); the others stay in their files: loaded into
    the ModelProto, a model over protobuf's 2 GiB could not even be
    measured. Whatever reads them (numpy_helper.to_array, onnx2torch's
    converters) does so in_folder(path); onnxruntime is told the folder
    (parity.onnxruntime_session).
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise UserError(f"{path}: the file is empty, not an ONNX model")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf raises several types for garbage input
        raise UserError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from e
    if not model.graph.node and not model.graph.output:
        raise UserError(f"{path}: not an ONNX model (no graph found)")
    # Both sides resolved: a model folder reached through a symlink (macOS's
    # /tmp) is still the folder its data files are in.
    base = folder_of(path)
    locations = set()
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        target = os.path.realpath(os.path.join(base, info.location))
        if os.path.isabs(info.location) or os.path.commonpath([base, target]) != base:
            raise UserError(
                f"{path}: tensor {tensor.name!r} points at external data outside the model's folder ({info.location}); refusing to read it"
            )
        if not os.path.isfile(target):
            raise UserError(
                f"{path}: tensor {tensor.name!r} needs external data file {info.location}, which is missing"
            )
        locations.add(os.path.relpath(target, base))
    try:
        # By path where there is external data: the checker reads it itself.
        onnx.checker.check_model(path if locations else checkable(model))
    except Exception as e:
        raise UserError(f"{path}: invalid ONNX model: {first_line(e)}") from e
    if locations:
        try:
            inline_small_tensors(model, base)
        except Exception as e:  # a length or offset beyond its file's end
            raise UserError(f"{path}: cannot read its external data: {first_line(e)}") from e
    return model, sorted(locations)


@contextlib.contextmanager
def in_folder(path):
    """Run with the model's real folder as the working directory, where
    readers of external tensors look for their files (onnx refuses absolute
    locations). Paths the caller holds must be absolute meanwhile."""
    before = os.getcwd()
    os.chdir(folder_of(path))
    try:
        yield
    finally:
        os.chdir(before)


def external_files(path, locations):
    """Each external data file with its size and content hash, for fingerprints."""
    base = folder_of(path)
    out = []
    for location in locations:
        full = os.path.join(base, location)
        out.append({"location": location, "sha256": sha256_file(full), "size_bytes": os.path.getsize(full)})
    return out


def dim_of(dim):
    if dim.HasField("dim_value"):
        return dim.dim_value
    if dim.HasField("dim_param"):
        return dim.dim_param
    return None


def value_specs(values, skip=()):
    specs = []
    for value in values:
        if value.name in skip:
            continue
        tensor = value.type.tensor_type
        specs.append(
            {
                "name": value.name,
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "unknown",
                "shape": [dim_of(d) for d in tensor.shape.dim] if tensor.HasField("shape") else None,
            }
        )
    return specs


def opsets(model):
    return {(o.domain or "ai.onnx"): o.version for o in model.opset_import}


def describe(model, path, external=()):
    initializers = {i.name for i in model.graph.initializer}
    return {
        "path": path,
        "sha256": sha256_file(path),
        "size_bytes": os.path.getsize(path),
        "external_data": list(external),
        "ir_version": model.ir_version,
        "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p),
        "opsets": opsets(model),
        "opset": opsets(model).get("ai.onnx", 0),
        "inputs": value_specs(model.graph.input, skip=initializers),
        "outputs": value_specs(model.graph.output),
        "op_histogram": dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items())),
        "nodes": len(model.graph.node),
        "precision": float_precision(model),
        "quantized": quantized(model),
    }


# Ops of quantized graphs: onnxruntime's optimised kernels for them round
# differently from the specification.
QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "QGemm",
    "QAttention",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QEmbedLayerNormalization",
}


def quantized(model):
    """Whether the graph (its subgraphs and functions too) holds quantized
    ops: QDQ pairs, QOperator ops, dynamic quantization."""
    graphs = [model.graph] + [f for f in model.functions]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            if node.op_type in QUANTIZED_OPS or node.op_type.startswith(("QLinear", "DynamicQuantize")):
                return True
            for attribute in node.attribute:
                graphs += [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
    return False


# Floating types, from the coarsest.
_FLOATS = [
    (onnx.TensorProto.BFLOAT16, "bfloat16"),
    (onnx.TensorProto.FLOAT16, "float16"),
    (onnx.TensorProto.FLOAT, "float32"),
    (onnx.TensorProto.DOUBLE, "float64"),
]
_FLOAT_NAMES = dict(_FLOATS)


def float_precision(model):
    """The floating-point type the main graph computes in: the type of most
    of its float weights ("float16" for a model converted to half
    precision, also one that keeps float32 inputs and outputs; a stray Cast
    to float16 in a float32 model does not count); without float weights,
    the coarsest float type of its inputs, outputs, values and casts; ""
    where there is none."""
    graph = model.graph
    weights = collections.Counter()
    for tensor in graph.initializer:
        weights[tensor.data_type] += math.prod(tensor.dims)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                weights[attribute.t.data_type] += math.prod(attribute.t.dims)
    floats = {t: n for t, n in weights.items() if t in _FLOAT_NAMES and n}
    if floats:
        return _FLOAT_NAMES[max(floats, key=floats.get)]
    found = set()
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.type.HasField("tensor_type"):
            found.add(value.type.tensor_type.elem_type)
    found |= {a.i for n in graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"}
    return next((name for elem_type, name in _FLOATS if elem_type in found), "")
