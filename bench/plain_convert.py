"""The conversion as a plain Python script does it (the plan onnx2pt grew
from), for side-by-side benchmarks: for each INPUT:OUTPUT pair, load the ONNX
model, convert it with onnx2torch, eval(), probe with test tensors, torch.save
the model with its state_dict, reload it and compare with onnxruntime.

    python bench/plain_convert.py models/resnet8.onnx:/tmp/a.pt [...]
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx2torch import convert


def main(pairs):
    for pair in pairs:
        src, dst = pair.split(":")
        model = onnx.load(src)
        onnx.checker.check_model(model)
        torch_model = convert(model).eval()
        x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
        with torch.no_grad():
            y = torch_model(torch.from_numpy(x))
        torch.save({"model": torch_model, "state_dict": torch_model.state_dict()}, dst)
        reloaded = torch.load(dst, weights_only=False).get("model").eval()
        with torch.no_grad():
            y = reloaded(torch.from_numpy(x)).numpy()
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ref = session.run(None, {model.graph.input[0].name: x})[0]
        print(f"{src} -> {dst}: output {tuple(y.shape)}, max abs diff {np.abs(y - ref).max():.3g}")


if __name__ == "__main__":
    main(sys.argv[1:])
