"""Portable artifacts: TorchScript (torch.jit.trace) and torch.export
programs, which load with torch alone.

Each artifact is written from the converted model, then checked in a fresh
interpreter where onnx2torch cannot be imported (artifact_check.py), at
every probe batch size and at one that tracing or exporting never saw: a
trace that baked its example's batch size into a Reshape fails there.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

FORMATS = ("torchscript", "exported")

# How a user loads each format, for the report.
LOAD = {
    "torchscript": "import torch\nmodel = torch.jit.load(PATH)",
    "exported": "import torch\nmodel = torch.export.load(PATH).module()",
}

CHECK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifact_check.py")


def example_batch(batch_sizes):
    """The batch size to trace or export at: the largest probe's, and never 1,
    which torch.export would take for a fixed size."""
    return max([b for b in batch_sizes if b > 1] or [2])


def unseen_batch(batch_sizes):
    """A batch size no probe used, to catch a trace bound to its example."""
    return max(batch_sizes) + 3


def write(fmt, model, example, specs, path, metadata):
    """Write model as fmt to path, traced or exported at the example inputs
    (after exportable.make_exportable). Returns the sha256 of the bytes
    written, hashed before they reach the file: check loads the artifact only
    if the file still holds them."""
    import torch

    extra = {"onnx2pt.json": json.dumps(metadata)}
    inputs = tuple(torch.from_numpy(np.asarray(x)) for x in example)
    buffer = io.BytesIO()
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export; it is still
            # what many deployments load, and it is asked for by name.
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
            # A trace that does not generalise is caught by the check at a
            # batch size the trace never saw, which warnings only guess at.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            traced = torch.jit.trace(model, inputs, check_trace=False)
            torch.jit.save(traced, buffer, _extra_files=extra)
    elif fmt == "exported":
        program = torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes(specs), strict=False)
        torch.export.save(program, buffer, extra_files=extra)
    else:
        raise ValueError(f"unknown artifact format {fmt!r}")
    data = buffer.getbuffer()
    sha256 = hashlib.sha256(data).hexdigest()
    with open(path, "wb") as f:
        f.write(data)
    return sha256


def dynamic_shapes(specs):
    """torch.export dimensions for the inputs' symbolic dimensions: one Dim per
    name, shared by every input that uses it, so "batch" stays one size."""
    import torch

    dims = {}
    shapes = []
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


def identifier(name):
    out = "".join(c if c.isalnum() else "_" for c in name)
    return out if out and not out[0].isdigit() else "d_" + out


def check(fmt, path, probe_inputs, sha256):
    """Run the artifact in the checker (onnx2torch blocked) on each probe's
    inputs: (outputs per probe, None) or (None, the reason). The checker reads
    the file once and loads those bytes only if they hash to sha256 (what
    write wrote): loading runs code from the file."""
    with tempfile.TemporaryDirectory(prefix="onnx2pt-artifact-") as tmp:
        probes = []
        for i, inputs in enumerate(probe_inputs):
            probe = {"inputs": os.path.join(tmp, f"in{i}.npz"), "outputs": os.path.join(tmp, f"out{i}.npz")}
            np.savez(probe["inputs"], *inputs)
            probes.append(probe)
        request = os.path.join(tmp, "request.json")
        with open(request, "w") as f:
            json.dump({"format": fmt, "path": os.path.abspath(path), "sha256": sha256, "probes": probes}, f)
        answer, error = Checker.get().ask(request)
        if error:
            return None, error
        if answer.get("changed"):
            return None, f"{path} changed after it was written; refusing to load it"
        if answer.get("error"):
            return None, f"running it with torch alone: {answer['error']}"
        outputs = []
        for probe in probes:
            with np.load(probe["outputs"], allow_pickle=False) as data:
                outputs.append([data[f"arr_{i}"] for i in range(len(data.files))])
        return outputs, None


class Checker:
    """A second interpreter of the virtualenv's python running
    artifact_check.py, kept for the worker's life: torch is imported there
    once, while the first model converts, not once per artifact."""

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None or cls._instance.proc.poll() is not None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def start(cls):
        """Start it now, so that its imports overlap with other work."""
        cls.get()

    def __init__(self):
        # -I: no PYTHONPATH, user site or current folder on sys.path.
        # stderr to a file: a pipe nobody reads would fill and stall it.
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [python_executable(), "-I", CHECK_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )
        self.ready = None

    def ask(self, request):
        """Send one request; (answer, None) or (None, why the checker failed)."""
        if self.ready is None:
            self.ready = self._read()
        if not self.ready or not self.ready.get("ready"):
            return None, self._failure(self.ready)
        try:
            self.proc.stdin.write(request + "\n")
            self.proc.stdin.flush()
        except OSError:
            return None, self._failure(None)
        answer = self._read()
        return (answer, None) if answer else (None, self._failure(None))

    def _read(self):
        line = self.proc.stdout.readline()
        return json.loads(line) if line.strip() else None

    def _failure(self, answer):
        if answer and answer.get("error"):
            return answer["error"]
        self.proc.kill()
        self.err.seek(0)
        tail = (self.err.read().strip().splitlines() or ["no output"])[-1]
        self.err.close()
        return f"the check process died (exit {self.proc.wait()}): {tail}"


def start_checker():
    """Start the checker now (see Checker.start)."""
    Checker.start()


def python_executable():
    """The virtualenv's python: sys.executable, also when embedded."""
    exe = sys.executable
    if exe and os.path.basename(exe).startswith("python"):
        return exe
    return os.path.join(sys.prefix, "bin", "python")


def failing_node(model, error):
    """The converted model's submodule that raised error, as 'name (Class)',
    from the innermost traceback frame that belongs to one; None if none."""
    import torch

    names = {id(m): n for n, m in model.named_modules() if n}
    found = None
    tb = error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, torch.nn.Module) and id(owner) in names:
            found = f"{names[id(owner)]} ({type(owner).__name__})"
        tb = tb.tb_next
    return found
