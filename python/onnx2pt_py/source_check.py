"""Check a `source` artifact (model.py and model.safetensors) with torch alone.

Run as a script in its own interpreter (python -I source_check.py
REQUEST.json), never imported: onnx2torch and onnx2pt's helpers are blocked
before anything else, so code that needs them fails here instead of on its
user's machine. The request names the folder, the class, .npz files of
each probe's inputs (the outputs go to .npz files beside them), the ONNX
inputs' shapes (for torch.export's dynamic dimensions) and whether to
export. One JSON line on stdout answers:

    {"error": null or why it failed,
     "imports": the top-level modules model.py imports,
     "gradients": {"parameters", "with_gradient", "finite", "missing", "nonfinite"},
     "export": {"ok", "error", "max_abs_diff"}}

Nothing here unpickles: .npz files are read with allow_pickle=False, the
weights with safetensors (or, where that package is missing, by reading
its format directly).
"""

import sys

# No __pycache__ left in the folder that is published.
sys.dont_write_bytecode = True

# Blocked, not merely unused: importing them now raises ImportError.
BLOCKED = ("onnx2torch", "onnx2pt_py")
for _name in BLOCKED:
    sys.modules[_name] = None

import ast  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

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


def load_safetensors(path):
    """{name: tensor} from a .safetensors file."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(path)
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        data = f.read()
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


def imports_of(path):
    """The top-level module names model.py imports."""
    with open(path) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    return sorted(names)


def load(folder, class_name):
    path = os.path.join(folder, "model.py")
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    model = getattr(module, class_name)()
    model.load_state_dict(load_safetensors(os.path.join(folder, "model.safetensors")), strict=True)
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
        answer["imports"] = imports_of(os.path.join(request["folder"], "model.py"))
        model = load(request["folder"], request["class"])
        probes = [read_inputs(p["inputs"]) for p in request["probes"]]
        for probe, inputs in zip(request["probes"], probes):
            with torch.no_grad():
                outs = outputs_of(model(*inputs))
            np.savez(probe["outputs"], *[o.detach().numpy() for o in outs])
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


def main():
    try:
        import onnx2torch  # noqa: F401

        print(json.dumps({"error": "onnx2torch could be imported; the check is not isolated"}), flush=True)
        return 1
    except ImportError:
        pass
    with open(sys.argv[1]) as f:
        request = json.load(f)
    print(json.dumps(check(request)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
