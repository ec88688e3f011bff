"""One model's conversion, as steps the Go host calls and times one by one.

Each step returns plain data (dicts, lists, numbers, strings) that the host
decodes into its own structs; the heavy objects (the ONNX ModelProto, the
torch module, the probe tensors) stay here between steps.
"""

import importlib.metadata
import platform

import numpy as np

from . import model_info
from .errors import UserError


def warm_up():
    """Import the heavy modules once, up front, so that per-model timings
    measure the model and not the interpreter's start."""
    import onnx2torch  # noqa: F401  (imports torch and onnx)
    import onnxruntime  # noqa: F401


def versions():
    out = {"python": platform.python_version()}
    for package in ("torch", "onnx", "onnx2torch", "onnxruntime", "numpy", "torchvision"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


class ConversionJob:
    def __init__(self, path, batch_sizes=(1, 4), dims=None, seed=0):
        self.path = path
        self.batch_sizes = [int(b) for b in batch_sizes]
        self.dims = dict(dims or {})
        self.seed = int(seed)
        self.onnx_model = None
        self.info = None
        self.torch_model = None
        self.probes = []  # [(batch, [np.ndarray inputs])]

    def load(self):
        """Load and check the ONNX model; describe it."""
        self.onnx_model = model_info.load_model(self.path)
        self.info = model_info.describe(self.onnx_model, self.path)
        return self.info

    def convert(self):
        """onnx2torch.convert, then eval mode; count weights."""
        import onnx2torch

        if self.info["unsupported_ops"]:
            ops = ", ".join(f"{u['op']} (opset {u['opset']})" for u in self.info["unsupported_ops"])
            raise UserError(f"{self.path}: onnx2torch cannot convert {ops}")
        self.torch_model = onnx2torch.convert(self.onnx_model)
        self.torch_model.eval()
        return count_weights(self.torch_model)

    def probe(self):
        """Forward test tensors shaped from the model's declared inputs."""
        import torch

        results = []
        self.probes = []
        for batch in self.batch_sizes:
            inputs = make_inputs(self.info["inputs"], batch, self.dims, self.seed + batch)
            with torch.no_grad():
                outputs = as_list(self.torch_model(*[torch.from_numpy(x) for x in inputs]))
            if len(outputs) != len(self.info["outputs"]):
                raise UserError(
                    f"{self.path}: the converted model returns {len(outputs)} outputs, the ONNX model declares {len(self.info['outputs'])}"
                )
            binding = bind_dims(self.info["inputs"], inputs)
            for spec, out in zip(self.info["outputs"], outputs):
                check_shape(spec, tuple(out.shape), binding, self.path)
            self.probes.append((batch, inputs))
            results.append(
                {
                    "batch": batch,
                    "input_shapes": [list(x.shape) for x in inputs],
                    "output_shapes": [list(o.shape) for o in outputs],
                }
            )
        return results

    def save(self, path, state_dict_path, metadata):
        """torch.save the model with its state_dict and metadata; and the state_dict alone."""
        import torch

        state_dict = self.torch_model.state_dict()
        torch.save({"model": self.torch_model, "state_dict": state_dict, "metadata": metadata}, path)
        if state_dict_path:
            torch.save(state_dict, state_dict_path)
        return {"sha256": model_info.sha256_file(path)}

    def verify(self, path, sha256, atol, rtol):
        """Reload the saved file and compare its outputs with onnxruntime's."""
        import onnxruntime as ort
        import torch

        # Unpickling runs code from the file: only load what this run wrote.
        if model_info.sha256_file(path) != sha256:
            raise UserError(f"{path} changed after it was written; refusing to load it")
        checkpoint = torch.load(path, weights_only=False)
        reloaded = checkpoint["model"].eval()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(self.onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [i["name"] for i in self.info["inputs"]]
        stats = [
            {"name": o["name"], "max_abs_diff": 0.0, "max_rel_diff": 0.0, "within_tolerance": True}
            for o in self.info["outputs"]
        ]
        for _, inputs in self.probes:
            expected = session.run(None, dict(zip(names, inputs)))
            with torch.no_grad():
                actual = as_list(reloaded(*[torch.from_numpy(x) for x in inputs]))
            for stat, want, got in zip(stats, expected, actual):
                compare(stat, np.asarray(want), got.numpy(), atol, rtol)
        for stat in stats:  # JSON has no infinity: None means "not finite"
            for key in ("max_abs_diff", "max_rel_diff"):
                stat[key] = stat[key] if np.isfinite(stat[key]) else None
        return {"outputs": stats, "passed": all(s["within_tolerance"] for s in stats), "atol": atol, "rtol": rtol}


def count_weights(model):
    """Parameters, plus the weights onnx2torch keeps as buffers.

    onnx2torch turns initializers that feed plain ops (MatMul/Add of a Dense
    layer exported as such) into buffers, so counting parameters alone
    undercounts. BatchNorm running statistics are reported apart: they are
    state, not weights.
    """
    import torch

    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weight_buffers = norm_stats = 0
    for module in model.modules():
        for _, buf in module.named_buffers(recurse=False):
            if isinstance(module, torch.nn.modules.batchnorm._NormBase):
                norm_stats += buf.numel() if buf.is_floating_point() else 0
            elif buf.is_floating_point():
                weight_buffers += buf.numel()
    return {
        "parameters": params,
        "trainable_parameters": trainable,
        "weight_buffers": weight_buffers,
        "normalization_statistics": norm_stats,
        "total": params + weight_buffers,
    }


def as_list(outputs):
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


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


def make_inputs(specs, batch, dims, seed):
    rng = np.random.default_rng(seed)
    inputs = []
    for spec in specs:
        shape = concrete_shape(spec, batch, dims)
        if int(np.prod(shape)) > model_info.MAX_INPUT_ELEMENTS:
            raise UserError(
                f"input {spec['name']!r} would have shape {shape}: too large to probe; set its dimensions in the config"
            )
        dtype = np.dtype(spec["dtype"]) if spec["dtype"] != "unknown" else np.dtype("float32")
        if dtype.kind == "f":
            x = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            x = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "b":
            x = rng.random(shape) > 0.5
        else:
            raise UserError(f"input {spec['name']!r} has dtype {dtype}, which cannot be probed")
        inputs.append(x)
    return inputs


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


def compare(stat, expected, actual, atol, rtol):
    if expected.shape != actual.shape:
        raise UserError(
            f"output {stat['name']!r}: onnxruntime gives shape {list(expected.shape)}, the saved model {list(actual.shape)}"
        )
    expected = expected.astype(np.float64)
    actual = actual.astype(np.float64)
    if expected.size == 0:
        return
    diff = np.abs(actual - expected)
    finite = np.isfinite(diff).all()
    abs_diff = float(diff.max()) if finite else float("inf")
    rel_diff = float((diff / np.maximum(np.abs(expected), np.finfo(np.float32).tiny)).max()) if finite else float("inf")
    stat["max_abs_diff"] = max(stat["max_abs_diff"], abs_diff)
    stat["max_rel_diff"] = max(stat["max_rel_diff"], rel_diff)
    within = finite and bool(np.all(diff <= atol + rtol * np.abs(expected)))
    stat["within_tolerance"] = stat["within_tolerance"] and within
