"""The window functions of opset 17: HannWindow, HammingWindow and
BlackmanWindow, from ONNX's own formulas (torch's Hamming window uses 0.54
and 0.46, ONNX 25/46 and 21/46)."""

import math

import torch

from ._common import Module, register, result, torch_dtype

# Cosine coefficients a0, a1, a2: w[n] = a0 - a1 cos(2πn/N) + a2 cos(4πn/N).
_WINDOWS = {
    "HannWindow": (0.5, 0.5, 0.0),
    "HammingWindow": (25 / 46, 21 / 46, 0.0),
    "BlackmanWindow": (0.42, 0.5, 0.08),
}


class OnnxWindow(Module):
    """N is the size for a periodic window, size - 1 for a symmetric one."""

    def __init__(self, coefficients, periodic, dtype):
        super().__init__()
        self.coefficients, self.periodic, self.dtype = coefficients, periodic, dtype

    def forward(self, size):
        count = int(size.reshape(-1)[0])
        n = torch.arange(count, dtype=torch.float64)
        period = count if self.periodic else count - 1
        a0, a1, a2 = self.coefficients
        angle = 2 * math.pi * n / period
        window = a0 - a1 * torch.cos(angle) + a2 * torch.cos(2 * angle)
        return window.to(self.dtype)


@register("HannWindow", [17])
@register("HammingWindow", [17])
@register("BlackmanWindow", [17])
def convert_window(node, graph):
    a = node.attributes
    dtype = torch_dtype(a.get("output_datatype", 1), f"{node.operation_type} output_datatype")
    return result(OnnxWindow(_WINDOWS[node.operation_type], bool(a.get("periodic", 1)), dtype), node)
