import numpy as np
import pytest

from onnx2pt_py import parity


def stat():
    return parity.new_stat("y")


def test_compare_bounds_differences_by_the_outputs_scale():
    st = stat()
    parity.compare(st, np.array([1.0, 100.0]), np.array([1.0 + 5e-6, 100.0 + 5e-3]), atol=1e-5, rtol=1e-4)
    assert st["within_tolerance"]  # 5e-3 <= 1e-5 + 1e-4 * 100
    assert st["max_abs_diff"] == pytest.approx(5e-3)
    assert st["max_rel_diff"] == pytest.approx(5e-5) and st["max_expected"] == 100.0
    # An element near zero in a large output may carry the output's rounding
    # error, though it is many times its own size.
    near_zero = stat()
    parity.compare(near_zero, np.array([1e-3, 100.0]), np.array([1.5e-3, 100.0]), atol=1e-5, rtol=1e-4)
    assert near_zero["within_tolerance"]
    # A difference beyond the output's scale fails.
    for expected, actual in (([1.0], [1.001]), ([100.0, 50.0], [100.0, 50.02])):
        st = stat()
        parity.compare(st, np.array(expected), np.array(actual), atol=1e-5, rtol=1e-4)
        assert not st["within_tolerance"], (expected, actual)


inf, nan = float("inf"), float("nan")


@pytest.mark.parametrize(
    "expected, actual, passes, nonfinite_mismatches",
    [
        ([1.0, -inf, nan, inf], [1.0, -inf, nan, inf], True, 0),  # same non-finite values, same places
        ([1.0, -inf], [1.0, inf], False, 1),  # wrong sign
        ([1.0, nan], [1.0, 2.0], False, 1),  # NaN only on one side
        ([1.0, 2.0], [nan, 2.0], False, 1),
        ([-inf, 2.0], [nan, 2.0], False, 1),
        ([-inf, 2.0], [-inf, 2.5], False, 0),  # finite values still checked
    ],
)
def test_compare_nonfinite_values_must_match_in_place_and_sign(expected, actual, passes, nonfinite_mismatches):
    st = stat()
    parity.compare(st, np.array(expected, np.float32), np.array(actual, np.float32), atol=1e-5, rtol=1e-4)
    assert st["within_tolerance"] is passes
    assert st["nonfinite_mismatches"] == nonfinite_mismatches


def test_compare_requires_onnxruntimes_dtype():
    st = stat()
    parity.compare(st, np.ones(3, np.float32), np.ones(3, np.float64), atol=1e-5, rtol=1e-4)
    assert not st["within_tolerance"]
    assert (st["expected_dtype"], st["dtype"]) == ("float32", "float64")


def test_compare_integers_exactly():
    st = stat()
    parity.compare(st, np.array([1, 2], np.int64), np.array([1, 2], np.int64), atol=1e-5, rtol=1e-4)
    assert st["within_tolerance"]
    parity.compare(st, np.array([1 << 60], np.int64), np.array([(1 << 60) + 1], np.int64), atol=1e-5, rtol=1e-1)
    assert not st["within_tolerance"]
