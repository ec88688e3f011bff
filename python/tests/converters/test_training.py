"""The optimiser steps of ai.onnx.preview.training, against the ONNX
reference evaluator (onnxruntime has no kernels for them)."""

import io

import numpy as np
import onnx2torch
import pytest
import torch
from convert_check import assert_same, make_model, random, run_reference, run_torch
from onnx import helper

import onnx2pt_py.converters.training  # noqa: F401  (also imported by the package; this test needs it first)

TRAINING = [helper.make_opsetid("ai.onnx.preview.training", 1)]
STATES = {"Adagrad": ["H"], "Momentum": ["V"], "Adam": ["V", "H"]}


def step_model(op, shapes, t, dtype=np.float32, r_dtype=np.float32, **attrs):
    """One op updating len(shapes) tensors; feeds with states that are
    non-negative where they are accumulated squares."""
    n = len(shapes)
    groups = ["X", "G"] + STATES[op]
    feeds = {"R": np.array(0.1, r_dtype), "T": np.array(t, np.int64)}
    for k, group in enumerate(groups):
        for i, shape in enumerate(shapes):
            value = random(shape, dtype, seed=10 * k + i)
            feeds[f"{group}{i}"] = np.abs(value) if group == "H" else value
    names = [f"{g}{i}_new" for g in ["X"] + STATES[op] for i in range(n)]
    node = helper.make_node(op, list(feeds), names, domain="ai.onnx.preview.training", **attrs)
    return make_model(node, feeds, names, 18, extra_opsets=TRAINING), feeds


def check_step(model, feeds):
    # The outputs have X's type (T3); the reference widens some to float64
    # where R, T or the attributes are.
    dtype = feeds["X0"].dtype
    expected = [e.astype(dtype) for e in run_reference(model, feeds)]
    assert_same(expected, run_torch(model, feeds))


ATTRS = {
    "Adagrad": [{}, {"norm_coefficient": 0.01, "epsilon": 1e-3, "decay_factor": 0.1}],
    "Momentum": [
        {"norm_coefficient": 0.001, "alpha": 0.95, "beta": 0.1, "mode": "standard"},
        {"norm_coefficient": 0.01, "alpha": 0.8, "beta": 0.5, "mode": "nesterov"},
    ],
    "Adam": [
        {},
        {"norm_coefficient": 0.001, "alpha": 0.95, "beta": 0.85, "epsilon": 1e-2},
        {"norm_coefficient": 0.01, "norm_coefficient_post": 0.05, "alpha": 0.5, "beta": 0.9},
    ],
}
CASES = [(op, i) for op, variants in ATTRS.items() for i in range(len(variants))]


@pytest.mark.parametrize("op, variant", CASES)
@pytest.mark.parametrize("t", [0, 1, 7])
@pytest.mark.parametrize("shapes", [[(4,)], [(2, 3), (5,)], [(), (1, 4), (3, 2, 2)]])
def test_optimiser_step(op, variant, t, shapes):
    check_step(*step_model(op, shapes, t, **ATTRS[op][variant]))


@pytest.mark.parametrize("op, variant", CASES)
@pytest.mark.parametrize(
    "dtype, r_dtype", [(np.float64, np.float64), (np.float64, np.float32), (np.float32, np.float64)]
)
def test_optimiser_step_types(op, variant, dtype, r_dtype):
    check_step(*step_model(op, [(3,), (2, 2)], 3, dtype=dtype, r_dtype=r_dtype, **ATTRS[op][variant]))


def test_nesterov_differs_from_standard():
    standard, feeds = step_model("Momentum", [(5,)], 2, **ATTRS["Momentum"][1] | {"mode": "standard"})
    nesterov, _ = step_model("Momentum", [(5,)], 2, **ATTRS["Momentum"][1])
    assert not np.allclose(run_torch(standard, feeds)[0], run_torch(nesterov, feeds)[0])


def test_momentum_refuses_an_unknown_mode():
    model, _ = step_model("Momentum", [(3,)], 1, **ATTRS["Momentum"][0])
    (mode,) = [a for a in model.graph.node[0].attribute if a.name == "mode"]
    mode.s = b"heavy_ball"
    with pytest.raises(ValueError, match="heavy_ball"):
        onnx2torch.convert(model)


def test_refuses_inputs_that_do_not_group():
    model, _ = step_model("Adam", [(3,), (3,)], 1)
    del model.graph.node[0].input[-1]
    with pytest.raises(ValueError, match="4 inputs per optimised tensor"):
        onnx2torch.convert(model)


def test_saved_and_reloaded():
    model, feeds = step_model("Adam", [(3,), (2, 2)], 4, **ATTRS["Adam"][2])
    buffer = io.BytesIO()
    torch.save(onnx2torch.convert(model), buffer)
    buffer.seek(0)
    module = torch.load(buffer, weights_only=False).eval()
    names = [i.name for i in model.graph.input]
    got = [o.numpy() for o in module(*[torch.from_numpy(feeds[n]) for n in names])]
    assert_same([e.astype(np.float32) for e in run_reference(model, feeds)], got)
