"""Verification catches wrong conversions: converters broken on purpose
(tools/mutations.py) on models whose outputs hide them from a careless
check, and probes that reach the inputs where models differ."""

import os
import sys

import families
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnx2pt_py import parity, probes
from onnx2pt_py.job import ConversionJob

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import mutations  # noqa: E402

EDGE = {s.name: s for s in families.edge_specs()}


@pytest.fixture(scope="module")
def edge_models(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("edge"))
    return {e["name"]: e["path"] for e in families.build(folder, only=list(EDGE))}


def convert_and_verify(path, tmp_path, mutation=None, target=None):
    """A conversion as onnx2pt checks it, optionally with one node's
    converter broken: the verification result."""
    job = ConversionJob(path, batch_sizes=[1, 3])
    job.load()
    job.normalise()
    if mutation:
        with mutations.installed(mutations.BY_NAME[mutation], target):
            job.convert()
    else:
        job.convert()
    job.probe()
    out = str(tmp_path / "model.pt")
    return job.verify(out, job.save(out, None, {})["sha256"])


@pytest.mark.parametrize("name", sorted(EDGE))
def test_edge_models_verify_when_converted_correctly(edge_models, name, tmp_path):
    result = convert_and_verify(edge_models[name], tmp_path)
    assert result["passed"], result


def test_a_wrong_conversion_behind_a_log_is_caught(edge_models, tmp_path):
    # Log of inputs drawn around zero is NaN on every element: a negated
    # MatMul after it used to pass with nothing compared.
    result = convert_and_verify(edge_models["log_matmul"], tmp_path, "sign_flip", "y")
    assert not result["passed"]
    assert result["outputs"][0]["compared"] == result["outputs"][0]["elements"] > 0


def test_shifted_class_scores_beside_box_coordinates_are_caught(edge_models, tmp_path):
    # Boxes reach ~640 in the same output as scores in [0, 1]: judged at the
    # output's scale, scores off by up to 0.06 passed.
    result = convert_and_verify(edge_models["yolo_concat"], tmp_path, "shifted_activation", "scores")
    assert not result["passed"]
    (stat,) = result["outputs"]
    assert stat["max_expected"] > 400 and stat["max_abs_diff"] < 0.1


def save_model(path, nodes, width, constants):
    """A graph from x [batch, width] to y [batch, width], with scalar constants."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        [onnx.numpy_helper.from_array(np.array(v, np.float32), k) for k, v in constants.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_an_output_nan_on_every_probe_is_not_verified(tmp_path):
    # sqrt(-(x^2) - 1) is NaN for every input: no kind of probe makes it
    # finite, so nothing would be compared.
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["square"]),
        helper.make_node("Neg", ["square"], ["negative"]),
        helper.make_node("Sub", ["negative", "one"], ["below"]),
        helper.make_node("Sqrt", ["below"], ["y"]),
    ]
    path = save_model(tmp_path / "nan.onnx", nodes, 4, {"one": 1.0})
    result = convert_and_verify(path, tmp_path)
    assert not result["passed"]
    assert "too few finite values" in result["reason"] and "'y' (0% finite)" in result["reason"]
    assert result["outputs"][0]["finite_share"] == 0


def test_outputs_mostly_nan_on_normal_inputs_are_probed_with_positive_ones(tmp_path):
    # log(x - 0.5): x is not an input of Log itself, so drawn N(0, 1) first,
    # which leaves about 70% NaN; positive inputs make most of it finite.
    nodes = [helper.make_node("Sub", ["x", "half"], ["shifted"]), helper.make_node("Log", ["shifted"], ["y"])]
    path = save_model(tmp_path / "log_shifted.onnx", nodes, 64, {"half": 0.5})
    job = ConversionJob(path, batch_sizes=[1, 3])
    job.load()
    job.probes()
    assert job.probe_kind == "positive"
    assert convert_and_verify(path, tmp_path)["passed"]


def test_inputs_of_log_sqrt_and_denominators_are_drawn_positive(edge_models):
    model = onnx.load(edge_models["log_matmul"])
    assert probes.positive_inputs(model) == {"x"}
    job = ConversionJob(edge_models["log_matmul"], batch_sizes=[1, 3])
    job.load()
    for _, (x,) in job.probes():
        assert (x > 0).all()
    # Through ops that keep values (Transpose), to a Div's denominator, and
    # not for a Pow with a whole exponent.
    nodes = [
        helper.make_node("Transpose", ["a"], ["t"], perm=[1, 0]),
        helper.make_node("Div", ["b", "t"], ["q"]),
        helper.make_node("Pow", ["c", "two"], ["p"]),
        helper.make_node("Add", ["q", "p"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 3]) for n in "abc"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])],
        [onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    assert probes.positive_inputs(helper.make_model(graph)) == {"a"}


def test_the_edge_probe_has_zero_repeated_and_large_rows(edge_models):
    job = ConversionJob(edge_models["embedding_l2"], batch_sizes=[1, 3])
    job.load()
    kinds = [p["kind"] for p in _probe_records(job)]
    assert kinds == ["normal", "normal", "edge"]
    (ids,) = job.probes()[-1][1]
    # Padding ids alone, one id repeated, the table's last row.
    assert (ids[0] == 0).all() and len(set(ids[1])) == 1 and (ids[2] == families.VOCAB - 1).all()
    x = probes.edge_values(np.ones((4, 5), np.float32), np.random.default_rng(0), 10, False)
    assert (x[0] == 0).all() and len(set(x[1])) == 1 and (x[2] == probes.LARGE).all() and (x[3] == 1).all()


def _probe_records(job):
    job.convert()
    return job.probe()


def test_a_small_channel_is_judged_at_its_own_scale():
    # Channel 0 reaches 600, channel 1 stays below 1: an error of 0.05 in
    # channel 1 is 8e-5 of the output's scale but 5% of its own.
    expected = np.zeros((1, 2, 64))
    expected[0, 0] = np.linspace(0, 600, 64)
    expected[0, 1] = np.linspace(0, 1, 64)
    actual = expected.copy()
    actual[0, 1] += 0.05
    per_output = parity.new_stat("y")
    parity.compare(per_output, expected, actual, 1e-5, 1e-4, floor=1.0)
    assert per_output["within_tolerance"]
    per_slice = parity.new_stat("y")
    parity.compare(per_slice, expected, actual, 1e-5, 1e-4)
    assert not per_slice["within_tolerance"]
    # The same error in the large channel is within its own scale's rounding.
    actual = expected.copy()
    actual[0, 0] += 0.05
    large = parity.new_stat("y")
    parity.compare(large, expected, actual, 1e-5, 1e-4)
    assert large["within_tolerance"]


def test_slices_too_small_to_have_a_scale_fall_back_to_the_output():
    # Logits of one image: a class's slice is a single value, so an element
    # near zero is judged at the output's scale, as float32 rounding demands.
    magnitude = np.abs(np.array([[30.0, 1e-3, -12.0]]))
    assert (parity.slice_scale(magnitude) == 30.0).all()
    # A channel of many values has its own scale, floored at 1% of the output's.
    magnitude = np.zeros((1, 2, 16))
    magnitude[0, 0], magnitude[0, 1] = 500.0, 1e-6
    scale = parity.slice_scale(magnitude)
    assert (scale[0, 0] == 500).all() and (scale[0, 1] == 5.0).all()
