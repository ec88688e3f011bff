import numpy as np
import pytest
from convert_check import check, make_model, random, run_torch
from onnx import TensorProto, helper


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_windows(op, periodic, dtype):
    size = np.array(10, np.int64)
    node = helper.make_node(op, ["size"], ["y"], periodic=periodic, output_datatype=dtype)
    check(make_model(node, {"size": size}, ["y"], 17), {"size": size})


def _dft_model(x, opset, attrs, dft_length=None, axis=None, runtime=()):
    """A DFT node; dft_length and axis (an input from opset 20) are
    initializers, or graph inputs when named in `runtime`."""
    inputs, feeds, inits = ["x"], {"x": x}, {}
    if opset < 20 and axis is not None:
        attrs = dict(attrs, axis=axis)
        axis = None
    for name, value in (("dft_length", dft_length), ("axis", axis)):
        if value is None:
            inputs.append("")
            continue
        inputs.append(name)
        (feeds if name in runtime else inits)[name] = np.array(value, np.int64)
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node("DFT", inputs, ["y"], **attrs)
    return make_model(node, feeds, ["y"], opset, initializers=inits), feeds


# (x shape, axis): the axis is a signal axis, never the trailing real/imaginary one.
_SHAPES = [((2, 8, 1), 1), ((3, 6, 5, 2), -2), ((3, 6, 5, 2), 1), ((2, 7, 4, 1), -3), ((6, 2), 0)]


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("shape, axis", _SHAPES)
@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("dft_length", [None, 4, 9, 12])
def test_dft(opset, shape, axis, inverse, onesided, dft_length):
    if onesided and (shape[-1] == 2) != bool(inverse):
        pytest.skip("the one-sided forward transform takes a real input, the inverse one a complex input")
    x = random(shape)
    model, feeds = _dft_model(x, opset, {"inverse": inverse, "onesided": onesided}, dft_length, axis)
    bins = shape[axis]
    # An IRFFT whose dft_length does not match the bins given (n // 2 + 1):
    # the specification pads or truncates the bins (numpy's irfft, ONNX's
    # reference); onnxruntime mixes up bins there (it agrees where they match).
    mismatched = inverse and onesided and dft_length is not None and dft_length // 2 + 1 != bins
    check(model, feeds, reference=mismatched, atol=1e-4)


@pytest.mark.parametrize("opset", [17, 20])
def test_dft_default_axis(opset):
    # Axis 1 for DFT-17, -2 (the last signal axis) for DFT-20.
    x = random((2, 5, 6, 2))
    check(*_dft_model(x, opset, {}), atol=1e-4)


@pytest.mark.parametrize("runtime", [("dft_length",), ("axis",), ("dft_length", "axis")])
@pytest.mark.parametrize("inverse, onesided", [(0, 0), (0, 1), (1, 1)])
def test_dft_with_length_and_axis_computed_at_run_time(runtime, inverse, onesided):
    x = random((2, 4, 5, 1 if not inverse else 2))
    attrs = {"inverse": inverse, "onesided": onesided}
    check(*_dft_model(x, 20, attrs, dft_length=7, axis=1, runtime=runtime), atol=1e-4)


def test_dft_irfft_ignores_the_imaginary_parts_it_cannot_hold():
    # The IRFFT output is real: the imaginary parts of the zero and Nyquist
    # bins have no effect (onnxruntime and numpy agree).
    x = random((2, 5, 2))
    x[:, 0, 1] = 3.0
    x[:, 4, 1] = -2.0
    check(*_dft_model(x, 20, {"inverse": 1, "onesided": 1}, axis=1), atol=1e-4)


def test_dft_double():
    x = random((2, 16, 2), np.float64)
    check(*_dft_model(x, 20, {}, dft_length=10, axis=1))


@pytest.mark.parametrize("inverse, onesided", [(0, 0), (0, 1), (1, 0)])
def test_dft_half_precision(inverse, onesided):
    # onnxruntime's DFT takes float and double: ONNX's reference is the judge.
    x = random((2, 12, 1), np.float16)
    check(*_dft_model(x, 20, {"inverse": inverse, "onesided": onesided}, axis=1), reference=True, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("axis", [2, -1])
def test_dft_refuses_the_trailing_axis(axis):
    x = random((2, 6, 1))
    model, feeds = _dft_model(x, 20, {}, axis=axis, runtime=("axis",))
    with pytest.raises(ValueError, match="last axis"):
        run_torch(model, feeds)


def _stft_model(signal, step, window=None, frame_length=None, onesided=None, runtime=()):
    inputs, feeds, inits = ["signal", "step"], {"signal": signal}, {}
    (feeds if "step" in runtime else inits)["step"] = np.array(step, np.int64)
    inputs.append("window" if window is not None else "")
    if window is not None:
        feeds["window"] = window
    if frame_length is not None:
        inputs.append("frame_length")
        (feeds if "frame_length" in runtime else inits)["frame_length"] = np.array(frame_length, np.int64)
    while inputs[-1] == "":
        inputs.pop()
    attrs = {} if onesided is None else {"onesided": onesided}
    node = helper.make_node("STFT", inputs, ["y"], **attrs)
    return make_model(node, feeds, ["y"], 17, initializers=inits), feeds


@pytest.mark.parametrize("onesided", [None, 0, 1])
@pytest.mark.parametrize(
    "length, step, frame_length, windowed",
    [(64, 8, 16, True), (50, 7, 16, True), (50, 7, 15, False), (37, 5, 12, True), (20, 3, None, True)],
)
def test_stft(onesided, length, step, frame_length, windowed):
    signal = random((2, length, 1))
    window = None
    if windowed:
        size = frame_length or 9
        window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)).astype(np.float32)
    check(*_stft_model(signal, step, window, frame_length, onesided), atol=1e-4)


@pytest.mark.parametrize("runtime", [("step",), ("frame_length",), ("step", "frame_length")])
def test_stft_with_step_and_length_computed_at_run_time(runtime):
    signal = random((1, 40, 1))
    check(*_stft_model(signal, 6, None, 10, 1, runtime=runtime), atol=1e-4)


def test_stft_complex_signal():
    signal = random((2, 40, 2))
    window = random((12,), seed=1)
    check(*_stft_model(signal, 4, window, 12, onesided=0), atol=1e-4)


def test_stft_double():
    signal = random((1, 48, 1), np.float64)
    window = random((16,), np.float64, seed=1)
    check(*_stft_model(signal, 5, window, onesided=1))


_MEL = [
    # num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz
    (8, 16, 8192, 0.0, 4096.0),
    (20, 512, 16000, 0.0, 8000.0),
    (40, 1024, 22050, 125.0, 7600.0),
    (10, 400, 16000, 300.0, 3000.0),
    (24, 63, 16000, 20.0, 7900.0),
    (40, 64, 16000, 0.0, 8000.0),  # more bands than bins: bands with coinciding edges
    (3, 256, 8000, 1000.0, 1000.0),  # an empty range
]


@pytest.mark.parametrize("mel", _MEL)
@pytest.mark.parametrize("dtype", [None, TensorProto.FLOAT, TensorProto.DOUBLE])
@pytest.mark.parametrize("runtime", [False, True])
def test_mel_weight_matrix(mel, dtype, runtime):
    names = ["num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz"]
    values = [np.array(v, np.int64) for v in mel[:3]] + [np.array(v, np.float32) for v in mel[3:]]
    attrs = {} if dtype is None else {"output_datatype": dtype}
    node = helper.make_node("MelWeightMatrix", names, ["y"], **attrs)
    arrays = dict(zip(names, values))
    if runtime:
        check(make_model(node, arrays, ["y"], 17), arrays)
    else:
        check(make_model(node, {}, ["y"], 17, initializers=arrays), {})
