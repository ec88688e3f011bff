"""Check a `source` artifact (model.py and model.safetensors) with torch alone.

Loaded by artifact_check.py into the checker (never imported by
onnx2pt_py): onnx2torch and onnx2pt's helpers are blocked there before
anything else, so code that needs them fails here instead of on its user's
machine. A request names the folder, the class, the sha256 of model.py and
model.safetensors as written, .npz files of each probe's inputs (the
outputs go to .npz files beside them), the ONNX inputs' shapes (for
torch.export's dynamic dimensions) and whether to export. check() answers:

    {"error": null or why it failed,
     "imports": the top-level modules model.py imports,
     "gradients": {"parameters", "with_gradient", "finite", "missing", "nonfinite"},
     "export": {"ok", "error", "max_abs_diff"}}

Each file is read once and used only if those bytes hash to the sha256
written. Nothing here unpickles: .npz files are read with
allow_pickle=False, the weights with safetensors (or, where that package
is missing, by reading its format directly).
"""

import ast
import hashlib
import json
import os
import sys
import types

import numpy as np
import torch

MODULE_NAME = "onnx2pt_source_model"

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "U16": torch.uint16,
    "U32": torch.uint32,
    "U64": torch.uint64,
}


def load_safetensors(data):
    """{name: tensor} from the bytes of a .safetensors file."""
    try:
        from safetensors.torch import load
    except ImportError:
        load = None
    if load is not None:
        return load(data)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    data = data[8 + size :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = (
            torch.frombuffer(bytearray(data[start:end]), dtype=torch.uint8)
            if end > start
            else torch.empty(0, dtype=torch.uint8)
        )
        out[name] = raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


class Changed(Exception):
    """A file does not hold the bytes that were written."""


def read(folder, name, sha256):
    """The bytes of folder/name, if they hash to sha256[name] (no hash given:
    any bytes)."""
    with open(os.path.join(folder, name), "rb") as f:
        data = f.read()
    want = (sha256 or {}).get(name)
    if want and hashlib.sha256(data).hexdigest() != want:
        raise Changed(f"{name} changed after it was written; refusing to load it")
    return data


def imports_of(code):
    """The top-level module names the code imports."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    return sorted(names)


def load(folder, class_name, code, sha256):
    """The model of code (model.py's bytes) with the folder's weights, as a
    fresh module each time: one checker checks many models."""
    # The file's bytes are let go before the module makes its own tensors:
    # twice the weights at most, not three times.
    state = load_safetensors(read(folder, "model.safetensors", sha256))
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = os.path.join(folder, "model.py")
    # As an import would (torch.export and dataclasses look it up); the
    # next model's module replaces it.
    sys.modules[MODULE_NAME] = module
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    model = getattr(module, class_name)()
    model.load_state_dict(state, strict=True)
    return model.eval()


def read_inputs(path):
    with np.load(path, allow_pickle=False) as data:
        return [torch.from_numpy(data[f"arr_{i}"]) for i in range(len(data.files))]


def outputs_of(result):
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def cause(error):
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:  # load_state_dict's: the keys follow
        text += " " + lines[1]
    return f"{type(error).__name__}: {text}"[:300]


def finite_rows(model, inputs):
    """The inputs cut to the batch items whose outputs are all finite (a
    gradient through a NaN is NaN); all of them where that is every item or
    none."""
    if not inputs or inputs[0].dim() == 0:
        return inputs
    batch = inputs[0].shape[0]
    with torch.no_grad():
        outs = outputs_of(model(*inputs))
    keep = torch.ones(batch, dtype=torch.bool)
    for o in outs:
        if isinstance(o, torch.Tensor) and o.is_floating_point() and o.dim() and o.shape[0] == batch:
            keep &= torch.isfinite(o).reshape(batch, -1).all(dim=1)
    if bool(keep.all()) or not bool(keep.any()):
        return inputs
    return [x[keep] if x.dim() and x.shape[0] == batch else x for x in inputs]


def gradients(model, inputs):
    """One backward pass in training mode of a random projection of the
    floating-point outputs (of the batch items whose outputs are finite):
    which parameters get a gradient, and whether every gradient is finite.
    differentiable: whether any output depends on a parameter through
    differentiable ops (not so where the outputs are dequantized integers)."""
    params = dict(model.named_parameters())
    inputs = finite_rows(model, inputs)
    model.train()
    try:
        outs = [o for o in outputs_of(model(*inputs)) if isinstance(o, torch.Tensor) and o.is_floating_point()]
        g = torch.Generator().manual_seed(0)
        live = [o for o in outs if o.requires_grad]
        outputs_finite = all(bool(torch.isfinite(o).all()) for o in outs)
        losses = [torch.where(torch.isfinite(o), o.float() * torch.randn(o.shape, generator=g), 0).sum() for o in live]
        if losses:
            sum(losses).backward()
    finally:
        model.eval()
    missing = [n for n, p in params.items() if p.grad is None]
    nonfinite = [n for n, p in params.items() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    model.zero_grad(set_to_none=True)
    return {
        "parameters": len(params),
        "with_gradient": len(params) - len(missing),
        "finite": not nonfinite,
        "differentiable": bool(live),
        "outputs_finite": outputs_finite,
        "missing": missing[:10],
        "nonfinite": nonfinite[:10],
        "rows": int(inputs[0].shape[0]) if inputs and inputs[0].dim() else None,
    }


def identifier(name):
    out = "".join(c if c.isalnum() else "_" for c in name)
    return out if out and not out[0].isdigit() else "d_" + out


def dynamic_shapes(specs):
    """As artifacts.dynamic_shapes: one torch.export Dim per named dimension."""
    dims, shapes = {}, []
    for spec in specs:
        axes = {}
        for axis, d in enumerate(spec["shape"]):
            if isinstance(d, str) or d is None:
                name = d if isinstance(d, str) else f"{spec['name']}_{axis}"
                if name not in dims:
                    dims[name] = torch.export.Dim(identifier(name), min=1)
                axes[axis] = dims[name]
        shapes.append(axes or None)
    return tuple(shapes)


def export(model, example, specs, probe):
    """torch.export of the loaded module at example, run on probe."""
    try:
        shapes = dynamic_shapes(specs) if specs and len(specs) == len(example) else None
        program = torch.export.export(model, tuple(example), dynamic_shapes=shapes, strict=False)
        with torch.no_grad():
            got = outputs_of(program.module()(*probe))
            want = outputs_of(model(*probe))
        diff = 0.0
        for a, b in zip(got, want):
            if isinstance(a, torch.Tensor) and a.numel() and (a.is_floating_point() or a.is_complex()):
                finite = torch.isfinite(b)
                if finite.any():
                    diff = max(diff, float((a[finite] - b[finite]).abs().max()))
        return {"ok": True, "error": None, "max_abs_diff": diff}
    except Exception as e:  # reported, not raised
        return {"ok": False, "error": cause(e)}


def check(request):
    answer = {"error": None, "imports": None, "gradients": None, "export": None}
    try:
        folder, sha256 = request["folder"], request.get("sha256")
        code = read(folder, "model.py", sha256)
        answer["imports"] = imports_of(code)
        model = load(folder, request["class"], code, sha256)
        probes = [read_inputs(p["inputs"]) for p in request["probes"]]
        for probe, inputs in zip(request["probes"], probes):
            with torch.no_grad():
                outs = outputs_of(model(*inputs))
            np.savez(probe["outputs"], *[o.detach().numpy() for o in outs])
    except Changed as e:
        answer["error"] = str(e)
        answer["changed"] = True
        return answer
    except Exception as e:  # the parent reports it as the artifact's failure
        answer["error"] = cause(e)
        return answer
    largest = max(probes, key=lambda inputs: inputs[0].shape[0] if inputs and inputs[0].dim() else 0)
    try:
        answer["gradients"] = gradients(model, largest)
    except Exception as e:
        answer["gradients"] = {"parameters": len(list(model.parameters())), "with_gradient": 0, "finite": False}
        answer["gradients"]["error"] = cause(e)
    if request.get("export"):
        example = read_inputs(request["example"]) if request.get("example") else largest
        answer["export"] = export(model, example, request.get("specs"), probes[0])
    return answer
