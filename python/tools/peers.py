"""Runs one other ONNX-to-PyTorch converter (a peer) on the sweep's cases,
inside that peer's own virtualenv: sweep.py starts it there and never
imports a peer itself.

    python peers.py NAME   (NAME: onnx2pytorch or onnx2fx)

This file needs only the standard library, numpy, onnx, torch and the peer.
Protocol, one JSON object a line: first this process says
{"ready": true, "versions": {...}}; then for each request
{"model": PATH, "inputs": PATH or null, "outputs": PATH} read from stdin it
converts the model as the peer's documentation shows, runs it on the inputs
(the .npz by graph input name) and writes its outputs to "outputs" (an .npz,
o0, o1, … in graph output order), answering {"result": "ran"}, or
{"result": "unsupported" | "failed", "reason": ...}. Without inputs it
only converts ({"result": "converted"}). Comparing the outputs with the
reference is sweep.py's job, in the project's own virtualenv.
"""

import importlib
import json
import os
import sys


def convert_onnx2pytorch(model):
    from onnx2pytorch import ConvertModel

    return ConvertModel(model)


def convert_onnx2fx(model):
    from onnx2fx import convert

    return convert(model)


PEERS = {"onnx2pytorch": convert_onnx2pytorch, "onnx2fx": convert_onnx2fx}


def reason(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:200]


def as_array(value):
    """One output as a numpy array; a sequence or other non-tensor output
    is a failure, as for onnx2torch in sweep.py's baseline."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (np.ndarray, np.generic, int, float, bool)):
        return np.asarray(value)
    raise TypeError(f"an output is a {type(value).__name__}, not a tensor")


def run_case(convert, request):
    import numpy as np
    import onnx
    import torch

    try:
        model = onnx.load(request["model"])
        module = convert(model)
        if isinstance(module, torch.nn.Module):
            module = module.eval()
    except Exception as e:
        return {"result": "unsupported", "reason": reason(e)}
    if request.get("inputs") is None:
        return {"result": "converted"}
    try:
        inits = {t.name for t in model.graph.initializer}
        names = [i.name for i in model.graph.input if i.name not in inits]
        with np.load(request["inputs"], allow_pickle=False) as data:
            inputs = [torch.from_numpy(data[n]) for n in names]
        with torch.no_grad():
            got = module(*inputs)
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        np.savez(request["outputs"], **{f"o{i}": as_array(o) for i, o in enumerate(got)})
        return {"result": "ran"}
    except Exception as e:
        return {"result": "failed", "reason": reason(e)}


def versions(name):
    from importlib import metadata

    found = {}
    for package in (name, "torch", "onnx", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found


def main(name):
    convert = PEERS[name]
    # Answers go to the original stdout alone: whatever the peer prints
    # while converting lands on stderr, which the parent logs.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Imported before the handshake: a broken install fails here, and the
    # slow import of torch counts against no case's time limit.
    importlib.import_module(name)
    answers.write(json.dumps({"ready": True, "versions": versions(name)}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        print(f"case {request['model']}", file=sys.stderr, flush=True)
        answers.write(json.dumps(run_case(convert, request)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
