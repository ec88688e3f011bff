"""Probe inputs: random tensors shaped and ranged to fit the model, or the
user's own data; and the checks of what the model returns for them."""

import math
import os

import numpy as np

from .errors import UserError

# Probes whose inputs together hold more elements than this are refused
# before any memory is allocated for them; declared shapes in a hostile file
# can be absurd.
MAX_INPUT_ELEMENTS = 1 << 28

# Integer inputs nothing bounds are drawn from [0, DEFAULT_INT_BOUND).
DEFAULT_INT_BOUND = 10


def concrete_shape(spec, batch, dims):
    shape = []
    for d in spec["shape"] or []:
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif isinstance(d, str) and d in dims:
            shape.append(int(dims[d]))
        elif isinstance(d, str) and _sum_terms(d):
            shape.append(sum(k * (int(dims[n]) if n in dims else batch) if n else k for k, n in _sum_terms(d)))
        else:  # symbolic or unknown: treat as a batch-like dimension
            shape.append(batch)
    return shape


def _sum_terms(name):
    """A dimension named as a sum ("past_sequence + sequence", which a KV
    cache's attention mask has; "s0 + 1", "2*s1"), as [(factor, name or
    "")]; None for a plain name."""
    if "+" not in name and "*" not in name:
        return None
    terms = []
    for term in name.split("+"):
        factor, _, rest = term.strip().rpartition("*") if "*" in term else ("1", "", term.strip())
        factor, rest = factor.strip(), rest.strip()
        if rest.isdigit():
            factor, rest = str(int(factor) * int(rest)) if factor.isdigit() else None, ""
        if not factor or not factor.isdigit() or not (rest == "" or rest.isidentifier()):
            return None
        terms.append((int(factor), rest))
    return terms


# Sizes tried, in order, for named dimensions other than the batch when a
# model does not run with them equal to the batch size (an audio encoder's
# samples under a convolution of kernel 10, say).
GROWN_SIZES = (16, 64, 256, 1024, 4096, 16000)


def free_dims(specs, dims):
    """The symbolic dimension names of the inputs that never sit on the
    first axis (the batch's) and that dims does not set, in order."""
    leading = {(spec["shape"] or [None])[0] for spec in specs}
    names = []
    for spec in specs:
        for d in (spec["shape"] or [])[1:]:
            if isinstance(d, str) and d not in dims and d not in leading and d not in names and not _sum_terms(d):
                names.append(d)
    return names


# How random probes are drawn, in the order tried: a kind is given up for
# the next when some output of the model is finite on fewer than half its
# elements (a graph whose first op takes the log of its input is NaN
# everywhere on inputs around zero).
KINDS = ("normal", "positive", "uniform")

# The edge probe's large values: rounding, overflow and saturation show
# there, and a converter that clamps or rescales differs. Half precision
# (largest value 65504) gets a smaller factor, so squares stay finite.
LARGE = 1e3
LARGE_HALF = 10.0


def make_inputs(specs, batch, dims, seed, int_bounds=None, kind="normal", positive=(), edge=False):
    """Random inputs for one probe. Integer inputs are drawn below the bound
    int_bounds gives for them (e.g. the rows of the table they index).
    Floating inputs: kind "normal" draws N(0, 1), except the inputs named in
    positive (they feed an op defined for positive values alone, see
    positive_inputs), drawn from |N(0, 1)| + 0.1; "positive" draws every
    floating input that way; "uniform" from U(0, 1). edge: then made edge
    cases (edge_values). Each input is drawn in its own dtype (half precision
    through float32), after the sizes of all of them are checked
    (check_probe_sizes)."""
    shapes = check_probe_sizes(specs, [batch], dims)[0]
    rng = np.random.default_rng(seed)
    int_bounds = int_bounds or {}
    inputs = []
    for spec, shape in zip(specs, shapes):
        dtype = np.dtype(spec["dtype"]) if spec["dtype"] != "unknown" else np.dtype("float32")
        bound = int_bounds.get(spec["name"], DEFAULT_INT_BOUND)
        if dtype.kind in "iu":
            bound = min(bound, int(np.iinfo(dtype).max) + 1)  # (a table longer than an int8 index reaches)
        domain = spec["name"] in positive
        if dtype.kind == "f":
            draw = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
            if kind == "uniform":
                x = rng.random(shape, dtype=draw)
            else:
                x = rng.standard_normal(shape, dtype=draw)
                if kind == "positive" or domain:
                    np.abs(x, out=x)
                    x += 0.1
            x = x.astype(dtype, copy=False)
        elif dtype.kind in "iu" and is_mask(spec["name"], shape):
            inputs.append(padding_mask(shape, rng, dtype))
            continue  # no edge values: a row of zeros masks every position
        elif dtype.kind in "iu":
            x = rng.integers(0, bound, size=shape, dtype=dtype)
        elif dtype.kind == "b":
            x = rng.integers(0, 2, size=shape, dtype=np.bool_)  # a 0-d array, not a numpy.bool
        else:
            raise UserError(f"input {spec['name']!r} has dtype {dtype}, which cannot be probed")
        if edge:
            x = edge_values(x, rng, bound, domain or kind != "normal", copy=False)
        inputs.append(x)
    return inputs


def check_probe_sizes(specs, batches, dims):
    """The input shapes of one probe per batch size in batches (each
    concrete_shape), after checking that all of them together stay within
    MAX_INPUT_ELEMENTS; a UserError naming the largest input says which
    configuration keys set its size."""
    by_probe = [[concrete_shape(spec, batch, dims) for spec in specs] for batch in batches]
    total, largest = 0, None
    for shapes in by_probe:
        for spec, shape in zip(specs, shapes):
            if any(d < 0 for d in shape):
                raise UserError(
                    f"input {spec['name']!r} would have shape {shape}, with a negative dimension: "
                    f"{_size_advice(spec, dims)}"
                )
            count = math.prod(shape)  # Python ints: no int64 overflow
            total += count
            if largest is None or count > largest[0]:
                largest = (count, spec, shape)
    if total > MAX_INPUT_ELEMENTS:
        count, spec, shape = largest
        together = f"; {total} with the other probe inputs" if total != count else ""
        raise UserError(
            f"input {spec['name']!r} would have shape {shape} ({count} elements{together}): too large to probe, "
            f"over the limit of {MAX_INPUT_ELEMENTS} elements for the inputs together; {_size_advice(spec, dims)}"
        )
    return by_probe


def _size_advice(spec, dims):
    """What in the configuration sets the size of an input's dimensions."""
    declared = spec["shape"] or []
    names, batch = [], False
    for i, d in enumerate(declared):
        if isinstance(d, int) and d > 0:
            continue
        if isinstance(d, str) and _sum_terms(d):
            names += [n for _, n in _sum_terms(d) if n]
        elif isinstance(d, str) and (i > 0 or d in dims):
            names.append(d)
        else:  # the leading dimension, or one without a name: the batch size
            batch = True
    parts = ["the batch sizes with verify.batch_sizes"] if batch else []
    if names:
        parts.append("the sizes of " + ", ".join(repr(n) for n in dict.fromkeys(names)) + " with verify.dims")
    if not parts:
        return f"its shape {declared} is fixed in the model: give the probe's data with data.inputs"
    return "set " + " and ".join(parts) + ", or give the probe's data with data.inputs"


def is_mask(name, shape):
    """An integer input named as an attention mask is (Hugging Face's
    attention_mask, optimum's, onnxruntime's mask_index of 2-D masks)."""
    return "mask" in name.lower() and len(shape) >= 2


def padding_mask(shape, rng, dtype=np.int64):
    """1 then 0 along the last axis (right padding), at least one 1 a row:
    what a tokenizer gives a batch of texts of different lengths. Random
    integers would be no mask (attention kernels read a mask's row sums as
    sequence lengths)."""
    length = shape[-1]
    kept = rng.integers(1, length + 1, size=shape[:-1]) if length else np.zeros(shape[:-1], np.int64)
    return (np.arange(length) < kept[..., None]).astype(dtype)


def edge_values(x, rng, bound, domain, copy=True):
    """x with its first slices along the first axis of size 3 or more (the
    batch, where there is one) made edge cases: all zeros (a padding row,
    an empty image: normalisations divide by a zero norm or variance), one
    value repeated (ties for ArgMax, TopK and max pooling; a zero variance
    that the mean must cancel exactly), and large magnitudes (LARGE times
    the draw; for integers the largest valid index). Inputs in an op's
    positive domain keep positive values: ones for zeros. Other slices keep
    their random values. copy=False: x itself is changed."""
    axis = next((a for a, n in enumerate(x.shape) if n >= 3), None)
    if axis is None:
        return x
    x = np.moveaxis(x.copy() if copy else x, axis, 0)
    if x.dtype.kind == "b":
        x[0], x[1] = False, True
    elif x.dtype.kind in "iu":
        x[0], x[1], x[2] = 0, rng.integers(0, bound), bound - 1
    else:
        x[0] = 1 if domain else 0
        x[1] = x[1].flat[np.argmax(np.abs(x[1]))]  # the largest: a tie far from zero
        x[2] = x[2] * (LARGE_HALF if x.dtype.itemsize <= 2 else LARGE)
    return np.moveaxis(x, 0, axis)


# Ops undefined for negative (or zero) values at these input positions; a
# graph input reaching one through ops that keep values as they are is
# drawn positive.
_POSITIVE_DOMAIN = {"Log": (0,), "Sqrt": (0,), "Reciprocal": (0,), "Pow": (0,), "Div": (1,)}
_KEEPS_VALUES = {
    "Identity", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Slice", "Concat", "Split",
    "Expand", "Tile", "Gather", "MaxPool", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth",
}  # fmt: skip


def positive_inputs(model):
    """Names of the floating graph inputs that reach an op's positive domain
    (the argument of Log, Sqrt, Reciprocal, a Pow base with a fractional or
    unknown exponent, a Div denominator) through ops that keep values."""
    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    consumers = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, position))
    found = set()
    for value in graph.input:
        if value.name in constants or value.type.tensor_type.elem_type not in _FLOATS:
            continue
        frontier, seen = [value.name], set()
        while frontier:
            name = frontier.pop()
            if name in seen:
                continue
            seen.add(name)
            for node, position in consumers.get(name, ()):
                if position in _POSITIVE_DOMAIN.get(node.op_type, ()) and not _integer_power(node, constants):
                    found.add(value.name)
                elif node.op_type in _KEEPS_VALUES and (position == 0 or node.op_type == "Concat"):
                    frontier.extend(o for o in node.output if o)
    return found


# onnx.TensorProto FLOAT, DOUBLE, FLOAT16, BFLOAT16
_FLOATS = (1, 11, 10, 16)


def _integer_power(node, constants):
    """A Pow whose exponent is a constant of whole numbers: defined for
    negative bases."""
    if node.op_type != "Pow" or len(node.input) < 2 or node.input[1] not in constants:
        return False
    from onnx import numpy_helper

    exponent = numpy_helper.to_array(constants[node.input[1]])
    return bool(np.all(np.mod(exponent, 1) == 0))


# Ops whose input at the given position indexes the given axis of input 0.
_INDEXING = {"Gather": 1, "GatherElements": 1, "GatherND": 1}
# onnxruntime's EmbedLayerNormalization: index input -> the input holding the
# table it indexes (word, position and segment embeddings).
_EMBEDDING_TABLES = {0: 2, 1: 4, 8: 3}


def int_bounds(model):
    """Graph input name -> exclusive upper bound for its values, for integer
    inputs used directly as indices into a tensor of known size (token ids
    into an embedding table, say). The smallest bound wins."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    graph = inferred.graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    for v in list(graph.input) + list(graph.value_info):
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes.setdefault(v.name, [d.dim_value for d in dims])
    inputs = {i.name for i in graph.input} - {i.name for i in graph.initializer}
    # Through Casts too: onnxruntime's optimizer casts token ids to int32.
    origin = {name: name for name in inputs}
    for node in graph.node:
        if node.op_type == "Cast" and node.input and node.input[0] in origin:
            origin[node.output[0]] = origin[node.input[0]]
    bounds = {}
    for node in graph.node:
        if node.op_type == "EmbedLayerNormalization" and node.domain == "com.microsoft":
            pairs = [(index, table, 0) for index, table in _EMBEDDING_TABLES.items()]
        elif node.op_type in _INDEXING:
            pairs = [(_INDEXING[node.op_type], 0, next((a.i for a in node.attribute if a.name == "axis"), 0))]
        else:
            continue
        for position, table, axis in pairs:
            if len(node.input) <= max(position, table) or node.input[position] not in origin:
                continue
            data = shapes.get(node.input[table])
            if not data:
                continue
            size = data[0] if node.op_type == "GatherND" else data[axis % len(data)]
            if size > 0:
                name = origin[node.input[position]]
                bounds[name] = min(bounds.get(name, size), size)
    return bounds


def load_arrays(path, names, what):
    """Arrays by name from a .npz file, a folder of <name>.npy files, or a
    single .npy file where one name is looked up (a model's one input or one
    output), without unpickling anything. Returns them in the order of
    names."""
    try:
        if os.path.isdir(path):
            found = {}
            for name in names:
                file = os.path.join(path, safe_file_name(name) + ".npy")
                if os.path.exists(file):
                    found[name] = np.load(file, allow_pickle=False)
        else:
            data = np.load(path, allow_pickle=False)
            if isinstance(data, np.ndarray):  # a .npy: one array, no names
                if len(names) > 1:
                    raise UserError(
                        f"{path}: a .npy file holds one array, and {len(names)} are needed for {what} "
                        f"({', '.join(repr(n) for n in names)}): give a .npz with one array per name, "
                        "or a folder of <name>.npy files"
                    )
                return [data] * len(names)
            with data:
                found = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, MemoryError) as e:
        # (MemoryError: a .npz member's header declares a shape too large to hold)
        raise UserError(f"{path}: cannot read {what}: {e}") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise UserError(f"{path}: no {what} for {', '.join(repr(n) for n in missing)} (has {sorted(found)})")
    return [found[n] for n in names]


def safe_file_name(name):
    """A tensor name as a file name: '/' and other separators replaced."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def bind_dims(specs, inputs):
    """Symbolic dimension name -> the size it has in this probe."""
    binding = {}
    for spec, x in zip(specs, inputs):
        for d, size in zip(spec["shape"] or [], x.shape):
            if isinstance(d, str):
                binding[d] = size
    return binding


def check_shape(spec, shape, binding, path):
    declared = spec["shape"]
    if declared is None:
        return
    expected = [binding.get(d, d) if isinstance(d, str) else d for d in declared]
    ok = len(expected) == len(shape) and all(
        e is None or (isinstance(e, str) and e not in binding) or (isinstance(e, int) and e <= 0) or e == s
        for e, s in zip(expected, shape)
    )
    if not ok:
        raise UserError(f"{path}: output {spec['name']!r} has shape {list(shape)}, the ONNX model declares {declared}")
