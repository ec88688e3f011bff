"""Load portable artifacts with torch alone and run them on saved inputs.

Run as a script in its own interpreter (python -I artifact_check.py), never
imported: onnx2torch and onnx2pt's helpers are blocked before anything
else, so an artifact that needs them fails here instead of on its user's
machine. It serves requests one per line on stdin, each the path of a JSON
file naming the artifact, its format, and .npz files of inputs; the outputs
go to .npz files beside them, and one JSON line on stdout answers each
request. .npz files are read with allow_pickle=False; TorchScript and
torch.export archives with their own loaders (torch.export's unpickles), so
an artifact is read once, and loaded from those bytes only if they hash to
the sha256 the request gives (what the parent wrote): the file could be
swapped between a hash and a second read. The `source` format is checked
by source_check.py, loaded here.
"""

import sys

# No __pycache__ left in a source artifact's folder, which is published.
sys.dont_write_bytecode = True

# Blocked, not merely unused: importing them now raises ImportError.
BLOCKED = ("onnx2torch", "onnx2pt_py")
for _name in BLOCKED:
    sys.modules[_name] = None

import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def load(fmt, f):
    """The artifact from f, a path or a binary file object."""
    if fmt == "torchscript":
        return torch.jit.load(f, map_location="cpu").eval()
    if fmt == "exported":
        return torch.export.load(f).module()
    raise ValueError(f"unknown format {fmt!r}")


def outputs_of(result):
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def cause(error):
    """The line of an error's message that says what went wrong: the first,
    except for TorchScript's, which puts it last, after a stack."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        return lines[-1]
    return lines[0]


def source_checker():
    """source_check.py, beside this file, as a module (-I keeps this folder
    off sys.path, and onnx2pt_py is blocked)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "source_check.py")
    spec = importlib.util.spec_from_file_location("onnx2pt_source_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answer(request_path, source_check):
    """The answer to one request (see check and source_check.check)."""
    with open(request_path) as f:
        req = json.load(f)
    if req["format"] == "source":
        return source_check.check(req)
    return check(req)


def check(req):
    """Answer one artifact's request: {"error": None}, {"error": reason}, or
    {"error": reason, "changed": True} when the file does not hash to the
    request's sha256 (it is then not loaded)."""
    try:
        with open(req["path"], "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != req["sha256"]:
            return {"error": "the file changed after it was written; refusing to load it", "changed": True}
        model = load(req["format"], io.BytesIO(data))
        del data
        for probe in req["probes"]:
            with np.load(probe["inputs"], allow_pickle=False) as data:
                inputs = [torch.from_numpy(data[f"arr_{i}"]) for i in range(len(data.files))]
            with torch.no_grad():
                outs = outputs_of(model(*inputs))
            np.savez(probe["outputs"], *[o.detach().numpy() for o in outs])
    except Exception as e:  # the parent reports it as the artifact's failure
        return {"error": f"{type(e).__name__}: {cause(e)}"[:300]}
    return {"error": None}


def main():
    try:
        import onnx2torch  # noqa: F401

        print(
            json.dumps({"ready": False, "error": "onnx2torch could be imported; the check is not isolated"}), flush=True
        )
        return 1
    except ImportError:
        pass
    # What torch.export.load needs, imported while the parent still converts.
    import torch._dynamo  # noqa: F401
    import torch.export  # noqa: F401

    source_check = source_checker()
    print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        print(json.dumps(answer(line.strip(), source_check)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
