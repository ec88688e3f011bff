"""Signal ops of opset 17 and later: the window functions (HannWindow,
HammingWindow, BlackmanWindow), DFT, STFT and MelWeightMatrix.

ONNX stores complex values as a trailing axis of 2 (real, imaginary) and
real ones as a trailing axis of 1; the transforms go through torch.fft.
Scalar inputs that are constants of the graph (dft_length, axis,
frame_step, ...) are read once at conversion, so the module holds Python
ints that tracing and torch.export keep; inputs computed at run time are
read when the module runs.
"""

import math

import torch

from ._common import Module, constant, normalize_axis, register, result, result_skipping_absent, torch_dtype

# Cosine coefficients a0, a1, a2: w[n] = a0 - a1 cos(2πn/N) + a2 cos(4πn/N).
# (torch's Hamming window uses 0.54 and 0.46, ONNX 25/46 and 21/46)
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


def _scalar(value):
    """A Python number from a 0-d or one-element tensor."""
    return value.reshape(-1)[0].item()


def _constant_inputs(node, graph, positions):
    """({position: Python number} for the scalar inputs at `positions` that
    are constants, the node's inputs with those left out (an empty name))."""
    fixed, inputs = {}, list(node.input_values)
    for position in positions:
        value = constant(node, position, graph)
        if value is not None:
            fixed[position] = _scalar(value)
            inputs[position] = ""
    return fixed, inputs


def _compute_dtype(x):
    """torch.fft has no half-precision kernels on the CPU."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _as_signal(x):
    """The signal of an ONNX tensor with a trailing axis of 1 (real) or 2
    (complex), without that axis."""
    x = x.to(_compute_dtype(x))
    if x.shape[-1] == 1:
        return x.squeeze(-1)
    if x.shape[-1] == 2:
        return torch.view_as_complex(x.contiguous())
    raise ValueError(f"the last axis holds real and imaginary parts: its size must be 1 or 2, got {x.shape[-1]}")


def _from_complex(y, dtype):
    return torch.view_as_real(y.resolve_conj()).to(dtype)


class OnnxDFT(Module):
    """DFT-17 (axis an attribute) and DFT-20 (axis an input). onesided with
    inverse=0 keeps the first dft_length // 2 + 1 bins (RFFT for a real
    input); onesided with inverse=1 is the IRFFT, whose output is real and
    whose default length is 2 * (bins - 1). An IRFFT's dft_length pads or
    truncates the bins to dft_length // 2 + 1 (ONNX's reference, numpy's
    irfft); onnxruntime agrees only where that is the number of bins given."""

    def __init__(self, inverse, onesided, axis, dft_length=None):
        super().__init__()
        self.inverse, self.onesided, self.axis, self.dft_length = inverse, onesided, axis, dft_length

    def forward(self, x, dft_length=None, axis=None):
        rank = x.dim()
        axis = normalize_axis(self.axis if axis is None else int(axis.reshape(-1)[0]), rank)
        if axis == rank - 1:
            raise ValueError("DFT: the last axis holds real and imaginary parts, it cannot be the axis")
        signal = _as_signal(x)
        if self.dft_length is not None:
            length = self.dft_length
        elif dft_length is not None:
            length = int(dft_length.reshape(-1)[0])
        else:
            length = 2 * (signal.shape[axis] - 1) if self.inverse and self.onesided else signal.shape[axis]
        if self.inverse and self.onesided:
            return torch.fft.irfft(signal, n=length, dim=axis).unsqueeze(-1).to(x.dtype)
        if self.inverse:
            return _from_complex(torch.fft.ifft(signal, n=length, dim=axis), x.dtype)
        if self.onesided and not signal.is_complex():
            return _from_complex(torch.fft.rfft(signal, n=length, dim=axis), x.dtype)
        y = torch.fft.fft(signal, n=length, dim=axis)
        if self.onesided:  # a complex input: the first half of the full spectrum
            y = y.narrow(axis, 0, length // 2 + 1)
        return _from_complex(y, x.dtype)


def _convert_dft(node, graph, default_axis):
    a = node.attributes
    fixed, inputs = _constant_inputs(node, graph, [1, 2])
    dft_length = fixed.get(1)
    module = OnnxDFT(
        bool(a.get("inverse", 0)),
        bool(a.get("onesided", 0)),
        int(fixed.get(2, default_axis)),
        None if dft_length is None else int(dft_length),
    )
    return result_skipping_absent(module, node, inputs=inputs)


@register("DFT", [17])
def convert_dft_17(node, graph):
    return _convert_dft(node, graph, node.attributes.get("axis", 1))


@register("DFT", [20])
def convert_dft_20(node, graph):
    return _convert_dft(node, graph, -2)


class OnnxSTFT(Module):
    """Frames of frame_length samples every frame_step samples, each times
    the window (ones when there is none), transformed by a DFT; onesided
    keeps frame_length // 2 + 1 bins."""

    def __init__(self, onesided, frame_step=None, frame_length=None):
        super().__init__()
        self.onesided, self.frame_step, self.frame_length = onesided, frame_step, frame_length

    def forward(self, signal, frame_step=None, window=None, frame_length=None):
        step = self.frame_step if self.frame_step is not None else int(frame_step.reshape(-1)[0])
        if self.frame_length is not None:
            length = self.frame_length
        elif frame_length is not None:
            length = int(frame_length.reshape(-1)[0])
        elif window is not None:
            length = window.shape[0]
        else:
            length = signal.shape[-2]
        if window is not None and window.shape[0] != length:
            raise ValueError(f"STFT: the window has {window.shape[0]} values, frame_length is {length}")
        x = _as_signal(signal)
        if x.dim() != 2:
            raise ValueError(f"STFT: the signal must be [batch, length, 1 or 2], got {list(signal.shape)}")
        frames = x.unfold(-1, length, step)  # [batch, frames, length]
        if window is not None:
            frames = frames * window.to(frames.real.dtype)
        if self.onesided and not frames.is_complex():
            y = torch.fft.rfft(frames, dim=-1)
        else:
            y = torch.fft.fft(frames, dim=-1)
            if self.onesided:
                y = y.narrow(-1, 0, length // 2 + 1)
        return _from_complex(y, signal.dtype)


@register("STFT", [17])
def convert_stft(node, graph):
    fixed, inputs = _constant_inputs(node, graph, [1, 3])
    step, length = fixed.get(1), fixed.get(3)
    module = OnnxSTFT(
        bool(node.attributes.get("onesided", 1)),
        None if step is None else int(step),
        None if length is None else int(length),
    )
    return result_skipping_absent(module, node, inputs=inputs)


class OnnxMelWeightMatrix(Module):
    """[dft_length // 2 + 1, num_mel_bins] triangles on the mel scale
    mel(f) = 2595 log10(1 + f / 700), with the specification's reference
    steps: num_mel_bins + 2 edges spaced by (high - low) / (num_mel_bins + 2)
    mels, each rounded down to a DFT bin index."""

    _NAMES = ("num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz")

    def __init__(self, dtype, fixed):
        super().__init__()
        self.dtype, self.fixed = dtype, dict(fixed)

    def forward(self, *given):
        values = [self.fixed[i] if i in self.fixed else _scalar(given[i]) for i in range(5)]
        count, dft_length, sample_rate = (int(v) for v in values[:3])
        low, high = (2595 * math.log10(1 + float(f) / 700) for f in values[3:])
        mels = torch.arange(count + 2, dtype=torch.float64) * ((high - low) / (count + 2)) + low
        hertz = 700 * torch.expm1(mels / 2595 * math.log(10))
        edges = torch.floor((dft_length + 1) * hertz / sample_rate).to(torch.int64)
        bins = dft_length // 2 + 1
        if count and (int(edges.max()) >= bins or int(edges.min()) < 0):
            raise ValueError("MelWeightMatrix: the frequency range reaches past the DFT bins")
        left, centre, right = edges[:-2], edges[1:-1], edges[2:]
        j = torch.arange(bins, dtype=torch.int64).unsqueeze(1)
        # Rising edge, left..centre; a band whose edges coincide is 1 at its centre.
        rising = (j - left) / (centre - left).clamp(min=1)
        out = torch.where((j >= left) & (j <= centre) & (centre >= left), rising, 0.0)
        out = torch.where((j == centre) & (centre == left), 1.0, out)
        # Falling edge, centre..right (exclusive), written over the rising one.
        falling = (right - j) / (right - centre).clamp(min=1)
        out = torch.where((j >= centre) & (j < right), falling, out)
        return out.to(self.dtype)


@register("MelWeightMatrix", [17])
def convert_mel_weight_matrix(node, graph):
    dtype = torch_dtype(node.attributes.get("output_datatype", 1), "MelWeightMatrix output_datatype")
    fixed, inputs = _constant_inputs(node, graph, range(5))
    return result_skipping_absent(OnnxMelWeightMatrix(dtype, fixed), node, inputs=inputs)
