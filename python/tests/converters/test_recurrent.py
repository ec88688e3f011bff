import numpy as np
import onnx2torch
import pytest
from convert_check import assert_same, check, make_model, random, run_ort, run_torch
from onnx import helper

from onnx2pt_py.converters.recurrent import OnnxRecurrent, TorchRecurrent

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6


def recurrent_model(op, direction="forward", layout=0, lengths=False, initial=False, peepholes=False,
                    outputs=("y", "y_h", "y_c"), constant=True, **attrs):  # fmt: skip
    directions = 2 if direction == "bidirectional" else 1
    gates = GATES[op]
    x = random((BATCH, SEQ, INPUT) if layout else (SEQ, BATCH, INPUT))
    weights = {
        "w": random((directions, gates * HIDDEN, INPUT), seed=1) * 0.5,
        "r": random((directions, gates * HIDDEN, HIDDEN), seed=2) * 0.5,
        "b": random((directions, 2 * gates * HIDDEN), seed=3) * 0.5,
    }
    names = ["x", "w", "r", "b", "", "", "", ""]
    feeds = {"x": x}
    if lengths:
        names[4] = "lengths"
        feeds["lengths"] = np.array([5, 2, 3], np.int32)
    if initial:
        state = (BATCH, directions, HIDDEN) if layout else (directions, BATCH, HIDDEN)
        names[5] = "h0"
        feeds["h0"] = random(state, seed=4)
        if op == "LSTM":
            names[6] = "c0"
            feeds["c0"] = random(state, seed=5)
    if peepholes:
        names[7] = "p"
        weights["p"] = random((directions, 3 * HIDDEN), seed=6)
    while names[-1] == "":
        names.pop()
    outputs = list(outputs if op == "LSTM" else outputs[:2])
    node = helper.make_node(op, names, outputs, hidden_size=HIDDEN, direction=direction, layout=layout, **attrs)
    if constant:
        return make_model(node, feeds, outputs, 14, initializers=weights), feeds
    feeds.update(weights)
    return make_model(node, feeds, outputs, 14), feeds


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("lengths, initial", [(False, False), (True, True), (False, True)])
def test_recurrent(op, direction, layout, lengths, initial):
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    model, feeds = recurrent_model(op, direction, layout, lengths, initial, **attrs)
    if layout == 0 or not lengths:
        # onnxruntime refuses layout 1 (batch first); the reference evaluator runs it.
        check(model, feeds, reference=layout == 1)
        return
    # ... but ignores sequence lengths: layout 1 must be layout 0 transposed.
    time_first, time_feeds = recurrent_model(op, direction, 0, lengths, initial, **attrs)
    time_feeds = dict(feeds)
    time_feeds["x"] = feeds["x"].transpose(1, 0, 2)
    for state in ("h0", "c0"):
        if state in feeds:
            time_feeds[state] = feeds[state].transpose(1, 0, 2)
    expected = run_ort(time_first, time_feeds)
    expected[0] = expected[0].transpose(2, 0, 1, 3)  # Y: [time, dir, batch, hidden] -> [batch, time, dir, hidden]
    for i in range(1, len(expected)):
        expected[i] = expected[i].transpose(1, 0, 2)
    assert_same(expected, run_torch(model, feeds))


@pytest.mark.parametrize(
    "op, attrs",
    [
        ("LSTM", {"clip": 0.5}),
        ("LSTM", {"input_forget": 1}),
        ("GRU", {"linear_before_reset": 0}),
        ("GRU", {"clip": 1.0}),
        ("RNN", {"activations": ["Relu"]}),
        ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Relu"], "activation_alpha": [0.3], "activation_beta": [0.4]}),
    ],
)
def test_recurrent_options(op, attrs):
    model, feeds = recurrent_model(op, "bidirectional" if "activations" not in attrs else "forward", **attrs)
    check(model, feeds)


def test_lstm_peepholes_and_weights_at_run_time():
    model, feeds = recurrent_model("LSTM", peepholes=True, initial=True)
    check(model, feeds)
    model, feeds = recurrent_model("GRU", constant=False, linear_before_reset=1)
    check(model, feeds)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_plain_recurrent_nodes_become_torch_modules_that_train(op):
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    model, feeds = recurrent_model(op, "bidirectional", **attrs)
    module = onnx2torch.convert(model)
    wrappers = [m for m in module.modules() if isinstance(m, (TorchRecurrent, OnnxRecurrent))]
    assert len(wrappers) == 1 and isinstance(wrappers[0], TorchRecurrent)
    assert type(wrappers[0].rnn).__name__ == op
    # Gradients reach the weights.
    import torch

    out = module(torch.from_numpy(feeds["x"]))
    (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in wrappers[0].rnn.parameters())
