"""Comparing a converted model's outputs with the expected ones."""

import os

import numpy as np

from .errors import UserError


def onnxruntime_session(model):
    """An onnxruntime CPU session for a model file path or a ModelProto."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # A worker that shares the machine with others is given its share of the
    # cores this way (torch reads the same variable).
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
    if not isinstance(model, (str, bytes, os.PathLike)):
        model = model.SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def summary(stats, atol, rtol):
    """The verification result for the Go host: JSON has no infinity, so a
    difference that overflowed is None."""
    for stat in stats:
        for key in ("max_abs_diff", "max_rel_diff"):
            stat[key] = stat[key] if np.isfinite(stat[key]) else None
    return {"outputs": stats, "passed": all(s["within_tolerance"] for s in stats), "atol": atol, "rtol": rtol}


def compare_all(names, expected, actual, atol, rtol):
    """stats for each output over probes: expected and actual are lists (one
    per probe) of lists of arrays (one per output)."""
    stats = [new_stat(n) for n in names]
    for want_outputs, got_outputs in zip(expected, actual):
        if len(got_outputs) != len(want_outputs):
            raise UserError(f"the model returns {len(got_outputs)} outputs, {len(want_outputs)} were expected")
        for stat, want, got in zip(stats, want_outputs, got_outputs):
            compare(stat, np.asarray(want), np.asarray(got), atol, rtol)
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
        "within_tolerance": True,
    }


def compare(stat, expected, actual, atol, rtol):
    """Fold one probe's output into stat.

    Floating outputs pass where |actual - expected| <= atol + rtol*max|expected|
    over the finite values, max|expected| being the largest finite expected
    magnitude of this output in this probe: float32 rounding in another
    summation order grows with the output's scale, not with each element's
    (an element near zero in a large output carries the same absolute
    error as its neighbours), so an elementwise bound fails correct models
    while this one still fails a converted model with one perturbed weight
    (see the README). Non-finite values must sit at the same positions with
    the same value (NaN with NaN, +inf with +inf). Other dtypes must be
    equal. The dtype must be onnxruntime's. max_rel_diff is likewise
    max|difference| / max|expected|.
    """
    if expected.shape != actual.shape:
        raise UserError(
            f"output {stat['name']!r}: onnxruntime gives shape {list(expected.shape)}, the saved model {list(actual.shape)}"
        )
    stat["expected_dtype"], stat["dtype"] = expected.dtype.name, actual.dtype.name
    if expected.dtype != actual.dtype:
        stat["within_tolerance"] = False
    if expected.size == 0:
        return
    if expected.dtype.kind != "f":  # integers and booleans must be equal
        diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
        stat["max_abs_diff"] = max(stat["max_abs_diff"], float(diff.max()))
        stat["within_tolerance"] = stat["within_tolerance"] and bool(np.array_equal(expected, actual))
        return
    expected = expected.astype(np.float64)
    actual = actual.astype(np.float64)
    finite_e, finite_a = np.isfinite(expected), np.isfinite(actual)
    # NaN equals NaN; an infinity equals the same infinity.
    nonfinite_ok = (finite_e == finite_a) & (finite_e | (np.isnan(expected) & np.isnan(actual)) | (expected == actual))
    mismatches = int(nonfinite_ok.size - np.count_nonzero(nonfinite_ok))
    both = finite_e & finite_a
    diff = np.abs(actual[both] - expected[both])
    scale = float(np.abs(expected[finite_e]).max()) if finite_e.any() else 0.0
    stat["max_expected"] = max(stat["max_expected"], scale)
    if diff.size:
        stat["max_abs_diff"] = max(stat["max_abs_diff"], float(diff.max()))
        rel = float(diff.max()) / max(scale, float(np.finfo(np.float32).tiny))
        stat["max_rel_diff"] = max(stat["max_rel_diff"], rel)
    stat["nonfinite_mismatches"] += mismatches
    within = mismatches == 0 and bool(np.all(diff <= atol + rtol * scale))
    stat["within_tolerance"] = stat["within_tolerance"] and within
