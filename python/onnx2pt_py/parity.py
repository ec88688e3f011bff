"""Comparing a converted model's outputs with the expected ones."""

import os

import numpy as np
import onnx

from . import model_info
from .errors import UserError


def onnxruntime_session(model, optimize=True, folder=None):
    """An onnxruntime CPU session for a model file path or a ModelProto.
    optimize=False: no graph optimisations, for quantized models, whose
    QDQ patterns onnxruntime otherwise fuses into integer kernels that
    round differently from the specification by several quantization steps.

    A path is handed over as it is: onnxruntime given a path cannot infer
    shapes that need an external tensor's values (a Reshape's shape), so a
    model with external data comes as its ModelProto, from
    model_info.load_model, whose small tensors are read in. Its small
    external tensors, if any are left, are read into a copy; the large ones
    stay in their files under folder (the current directory by default, as
    under model_info.in_folder), where onnxruntime is told to read them: the
    serialised model stays far below protobuf's 2 GiB whatever its weights."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # A worker that shares the machine with others is given its share of the
    # cores this way (torch reads the same variable).
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
    if not isinstance(model, (str, bytes, os.PathLike)):
        if model_info.has_external_data(model):
            folder = os.path.realpath(folder or os.getcwd())
            if model_info.small_external_tensors(model):
                copy = onnx.ModelProto()
                copy.CopyFrom(model)
                model_info.inline_small_tensors(copy, folder)
                model = copy
            if model_info.has_external_data(model):
                options.add_session_config_entry(EXTERNAL_DATA_FOLDER, folder)
        model = model.SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


# The session option that tells onnxruntime (1.21 and later) where a model
# given as bytes has its external data.
EXTERNAL_DATA_FOLDER = "session.model_external_initializers_file_folder_path"


# A slice needs this many elements for its own scale to judge it (fewer,
# and an element is judged at the output's scale alone).
MIN_SLICE = 8
# No slice's scale counts for less than this share of its output's scale:
# rounding in a small channel still follows the magnitudes summed into it.
SCALE_FLOOR = 1e-2
# An output must have at least this share of its elements finite in the
# expected outputs, over the probes, to count as verified.
MIN_COMPARED_SHARE = 0.5
# A model that computes in 16-bit floats is judged at no less than this
# many machine epsilons of its type relative to the slice scale: each op
# rounds to half an epsilon, onnxruntime's kernels round in other places
# than torch's (some accumulate in float32), and the differences grow with
# depth: over three seeds a float16 ResNet-18 differs by up to 1.7
# epsilons, a float16 BERT by 3, a one-block float16 transformer by 10.
HALF_ULPS = 16
EPSILON = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


# A quantized model is judged at no less than this many steps of an 8-bit
# quantization spanning the slice's scale: a value that the float ops
# between DequantizeLinear and QuantizeLinear (a Conv's sum, in another
# order) leave on a rounding boundary lands one step away, and the layers
# after it carry that on (measured: up to 3 steps on a QDQ ResNet8 over 200
# probes; QOperator models match exactly).
QUANTIZED_STEPS = 4


def tolerances(atol, rtol, precision, quantized=False):
    """(atol, rtol) for a model computing at `precision`
    (model_info.float_precision): rtol raised to HALF_ULPS epsilons of a
    16-bit type, and to QUANTIZED_STEPS steps of 1/256 for a quantized one;
    unchanged otherwise."""
    if precision in EPSILON:
        rtol = max(rtol, HALF_ULPS * EPSILON[precision])
    if quantized:
        rtol = max(rtol, QUANTIZED_STEPS / 256)
    return atol, rtol


def summary(stats, atol, rtol):
    """The verification result for the Go host: JSON has no infinity, so a
    difference that overflowed is None."""
    for stat in stats:
        for key in ("max_abs_diff", "max_rel_diff"):
            stat[key] = stat[key] if np.isfinite(stat[key]) else None
        stat["finite_share"] = stat["compared"] / stat["elements"] if stat["elements"] else 1.0
    return {"outputs": stats, "passed": all(s["within_tolerance"] for s in stats), "atol": atol, "rtol": rtol}


def compare_all(names, expected, actual, atol, rtol, **rule):
    """stats for each output over probes: expected and actual are lists (one
    per probe) of lists of arrays (one per output). rule: compare's
    min_slice and floor."""
    stats = [new_stat(n) for n in names]
    for want_outputs, got_outputs in zip(expected, actual):
        if len(got_outputs) != len(want_outputs):
            raise UserError(f"the model returns {len(got_outputs)} outputs, {len(want_outputs)} were expected")
        for stat, want, got in zip(stats, want_outputs, got_outputs):
            compare(stat, np.asarray(want), np.asarray(got), atol, rtol, **rule)
    return stats


def new_stat(name):
    return {
        "name": name,
        "dtype": None,
        "expected_dtype": None,
        "max_abs_diff": 0.0,
        "max_rel_diff": 0.0,
        "max_expected": 0.0,
        "nonfinite_mismatches": 0,
        "elements": 0,
        "compared": 0,
        "within_tolerance": True,
    }


def slice_scale(magnitude, min_slice=MIN_SLICE, floor=SCALE_FLOOR):
    """The scale each element is judged at: the largest magnitude among the
    elements that share its index along one axis (a channel of a detection
    head, a feature across tokens, a class across the batch), the smallest
    such over the axes past the first (the batch) whose slices hold at
    least min_slice elements; never below floor times the output's largest
    magnitude. magnitude: |expected| with non-finite values as 0."""
    whole = float(magnitude.max()) if magnitude.size else 0.0
    scale = np.full(magnitude.shape, whole)
    for axis in range(1, magnitude.ndim):
        n = magnitude.shape[axis]
        if n < 2 or magnitude.size // n < min_slice:
            continue
        others = tuple(a for a in range(magnitude.ndim) if a != axis)
        scale = np.minimum(scale, magnitude.max(axis=others, keepdims=True))
    return np.maximum(scale, floor * whole)


def compare(stat, expected, actual, atol, rtol, min_slice=MIN_SLICE, floor=SCALE_FLOOR):
    """Fold one probe's output into stat.

    Floating outputs pass where |actual - expected| <= atol + rtol*S at every
    element finite on both sides, S being the element's slice scale
    (slice_scale): float32 rounding in another summation order grows with
    the magnitudes summed, so an element near zero carries the error of its
    neighbours and an elementwise bound fails correct models; but one scale
    for a whole output lets a wrong channel of small values hide beside
    large ones (class scores beside box coordinates in a detection head).
    Non-finite values must sit at the same positions with the same value
    (NaN with NaN, +inf with +inf). Other dtypes must be equal. The dtype
    must be onnxruntime's. max_rel_diff is the largest |difference| / S.
    compared counts the elements whose expected value is finite.
    """
    if expected.shape != actual.shape:
        raise UserError(
            f"output {stat['name']!r}: onnxruntime gives shape {list(expected.shape)}, the saved model {list(actual.shape)}"
        )
    stat["expected_dtype"], stat["dtype"] = expected.dtype.name, actual.dtype.name
    if expected.dtype != actual.dtype:
        stat["within_tolerance"] = False
    stat["elements"] += int(expected.size)
    if expected.size == 0:
        return
    if expected.dtype.kind != "f":  # integers and booleans must be equal
        stat["compared"] += int(expected.size)
        diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
        stat["max_abs_diff"] = max(stat["max_abs_diff"], float(diff.max()))
        stat["within_tolerance"] = stat["within_tolerance"] and bool(np.array_equal(expected, actual))
        return
    expected = expected.astype(np.float64)
    actual = actual.astype(np.float64)
    finite_e, finite_a = np.isfinite(expected), np.isfinite(actual)
    stat["compared"] += int(np.count_nonzero(finite_e))
    # NaN equals NaN; an infinity equals the same infinity.
    nonfinite_ok = (finite_e == finite_a) & (finite_e | (np.isnan(expected) & np.isnan(actual)) | (expected == actual))
    mismatches = int(nonfinite_ok.size - np.count_nonzero(nonfinite_ok))
    both = finite_e & finite_a
    magnitude = np.where(finite_e, np.abs(expected), 0.0)
    scale = slice_scale(magnitude, min_slice, floor)
    stat["max_expected"] = max(stat["max_expected"], float(magnitude.max()))
    diff = np.abs(actual[both] - expected[both])
    if diff.size:
        stat["max_abs_diff"] = max(stat["max_abs_diff"], float(diff.max()))
        rel = diff / np.maximum(scale[both], float(np.finfo(np.float32).tiny))
        stat["max_rel_diff"] = max(stat["max_rel_diff"], float(rel.max()))
    stat["nonfinite_mismatches"] += mismatches
    within = mismatches == 0 and bool(np.all(diff <= atol + rtol * scale[both]))
    stat["within_tolerance"] = stat["within_tolerance"] and within
