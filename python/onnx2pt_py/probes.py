"""Probe inputs: random tensors shaped and ranged to fit the model, or the
user's own data; and the checks of what the model returns for them."""

import os

import numpy as np

from .errors import UserError

# Inputs larger than this (elements per probe tensor) are refused before any
# memory is allocated for them; declared shapes in a hostile file can be absurd.
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
        else:  # symbolic or unknown: treat as a batch-like dimension
            shape.append(batch)
    return shape


def make_inputs(specs, batch, dims, seed, int_bounds=None):
    """Random inputs for one probe. Integer inputs are drawn below the bound
    int_bounds gives for them (e.g. the rows of the table they index)."""
    rng = np.random.default_rng(seed)
    int_bounds = int_bounds or {}
    inputs = []
    for spec in specs:
        shape = concrete_shape(spec, batch, dims)
        if int(np.prod(shape)) > MAX_INPUT_ELEMENTS:
            raise UserError(
                f"input {spec['name']!r} would have shape {shape}: too large to probe; set its dimensions in the config"
            )
        dtype = np.dtype(spec["dtype"]) if spec["dtype"] != "unknown" else np.dtype("float32")
        if dtype.kind == "f":
            x = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            x = rng.integers(0, int_bounds.get(spec["name"], DEFAULT_INT_BOUND), size=shape).astype(dtype)
        elif dtype.kind == "b":
            x = rng.random(shape) > 0.5
        else:
            raise UserError(f"input {spec['name']!r} has dtype {dtype}, which cannot be probed")
        inputs.append(x)
    return inputs


# Ops whose input at the given position indexes the given axis of input 0.
_INDEXING = {"Gather": 1, "GatherElements": 1, "GatherND": 1}


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
    bounds = {}
    for node in graph.node:
        position = _INDEXING.get(node.op_type)
        if position is None or len(node.input) <= position or node.input[position] not in inputs:
            continue
        data = shapes.get(node.input[0])
        if not data:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        size = data[0] if node.op_type == "GatherND" else data[axis % len(data)]
        if size > 0:
            name = node.input[position]
            bounds[name] = min(bounds.get(name, size), size)
    return bounds


def load_arrays(path, names, what):
    """Arrays by name from a .npz file or a folder of <name>.npy files,
    without unpickling anything. Returns them in the order of names."""
    try:
        if os.path.isdir(path):
            found = {}
            for name in names:
                file = os.path.join(path, safe_file_name(name) + ".npy")
                if os.path.exists(file):
                    found[name] = np.load(file, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as data:
                found = {name: data[name] for name in data.files}
    except (OSError, ValueError) as e:
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
