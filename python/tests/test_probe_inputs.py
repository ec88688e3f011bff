"""Probe inputs: a single .npy as data, and the bound on what a probe may
allocate (a model's declared shapes are not to be trusted)."""

import numpy as np
import pytest

from onnx2pt_py import probes
from onnx2pt_py.errors import UserError


def test_a_single_npy_serves_a_single_name(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    (got,) = probes.load_arrays(str(tmp_path / "x.npy"), ["input:0"], "input data")
    np.testing.assert_array_equal(got, x)
    assert got.dtype == x.dtype


def test_a_single_npy_for_several_names_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3, np.float32))
    with pytest.raises(UserError, match=r"x\.npy: .*one array.*2 .*'a', 'b'.*\.npz.*<name>\.npy"):
        probes.load_arrays(str(tmp_path / "x.npy"), ["a", "b"], "input data")


def test_a_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="cannot read expected outputs"):
        probes.load_arrays(str(tmp_path / "x.npy"), ["y"], "expected outputs")


def test_a_job_takes_npy_inputs_and_expected_outputs(tmp_path):
    from test_job import relu_log_model, save

    from onnx2pt_py import job

    path = save(relu_log_model(), tmp_path / "m.onnx")
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]], np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "good.npy", np.log(x))
    np.save(tmp_path / "bad.npy", np.log(x) + 1)
    for expected, passes in (("good.npy", True), ("bad.npy", False)):
        j = job.ConversionJob(path, data=str(tmp_path / "x.npy"), expected=str(tmp_path / expected))
        j.load()
        j.convert()
        assert [p["input_shapes"] for p in j.probe()] == [[[1, 8]]]
        saved = j.save(str(tmp_path / "m.pt"), None, {})
        assert j.verify(str(tmp_path / "m.pt"), saved["sha256"])["passed"] is passes


def test_the_bound_is_on_all_inputs_of_a_probe_together(monkeypatch):
    monkeypatch.setattr(probes, "MAX_INPUT_ELEMENTS", 1000)
    specs = [
        {"name": "image", "dtype": "float32", "shape": ["batch", "height", 20]},
        {"name": "ids", "dtype": "int64", "shape": ["batch", 10]},
    ]
    # 2 x 20 x 20 + 2 x 10 = 820: drawn.
    image, ids = probes.make_inputs(specs, batch=2, dims={"height": 20}, seed=0)
    assert image.shape == (2, 20, 20) and ids.shape == (2, 10)
    # 2 x 24 x 20 + 2 x 10 = 980: each below the bound, together too.
    probes.make_inputs(specs, batch=2, dims={"height": 24}, seed=0)
    # At batch 3: 3 x 24 x 20 + 3 x 10 = 1470 together, the image the largest.
    with pytest.raises(UserError) as refused:
        probes.make_inputs(specs, batch=3, dims={"height": 24}, seed=0)
    message = str(refused.value)
    assert "'image'" in message and "[3, 24, 20]" in message and "1470" in message and "1000" in message
    assert "verify.dims" in message and "height" in message and "verify.batch_sizes" in message
    # Each input alone below the bound, not together (500 + 600).
    specs = [{"name": "a", "dtype": "float32", "shape": [500]}, {"name": "b", "dtype": "float32", "shape": [600]}]
    with pytest.raises(UserError, match=r"'b' would have shape \[600\].*1100.*data\.inputs"):
        probes.make_inputs(specs, batch=1, dims={}, seed=0)


def test_the_bound_spans_the_probes_checked_together(monkeypatch):
    monkeypatch.setattr(probes, "MAX_INPUT_ELEMENTS", 1000)
    specs = [{"name": "x", "dtype": "float32", "shape": ["batch", 100]}]
    probes.check_probe_sizes(specs, [1, 4, 4], {})  # 900
    with pytest.raises(UserError, match=r"'x' would have shape \[4, 100\].*1100.*1000.*verify\.batch_sizes"):
        probes.check_probe_sizes(specs, [3, 4, 4], {})  # each probe below the bound, not all three


def test_shapes_whose_element_count_overflows_int64_are_refused():
    # 2**32 x 2**32 wraps to 0 in an int64 product.
    specs = [{"name": "x", "dtype": "float32", "shape": [1 << 32, 1 << 32]}]
    with pytest.raises(UserError, match=r"'x' would have shape \[4294967296, 4294967296\].*fixed.*data\.inputs"):
        probes.make_inputs(specs, batch=1, dims={}, seed=0)
    specs = [{"name": "x", "dtype": "float32", "shape": ["batch", "n"]}]
    with pytest.raises(UserError, match="'x'.*negative"):
        probes.make_inputs(specs, batch=1, dims={"n": -3}, seed=0)


@pytest.mark.parametrize("kind", probes.KINDS)
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64", "uint8", "bool"])
def test_inputs_are_drawn_in_their_own_dtype(kind, dtype):
    # No float64 draw cast afterwards: the peak is the input itself (and, on
    # the edge probe, a slice of it).
    import tracemalloc

    specs = [{"name": "x", "dtype": dtype, "shape": ["batch", 1000, 100]}]
    for edge in (False, True):
        tracemalloc.start()
        try:
            (x,) = probes.make_inputs(specs, batch=4, dims={}, seed=0, kind=kind, edge=edge)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert x.dtype == np.dtype(dtype) and x.shape == (4, 1000, 100)
        assert peak < 1.5 * x.nbytes + (1 << 16), (peak, x.nbytes)


def test_draws_follow_the_seed():
    specs = [
        {"name": "x", "dtype": "float16", "shape": ["batch", 30]},
        {"name": "y", "dtype": "float32", "shape": ["batch", 30]},
        {"name": "ids", "dtype": "int32", "shape": ["batch", 30]},
        {"name": "attention_mask", "dtype": "int32", "shape": ["batch", 30]},
        {"name": "flag", "dtype": "bool", "shape": ["batch", 30]},
    ]
    for kind in probes.KINDS:
        for edge in (False, True):
            a = probes.make_inputs(specs, batch=5, dims={}, seed=3, kind=kind, edge=edge, int_bounds={"ids": 300})
            b = probes.make_inputs(specs, batch=5, dims={}, seed=3, kind=kind, edge=edge, int_bounds={"ids": 300})
            c = probes.make_inputs(specs, batch=5, dims={}, seed=4, kind=kind, edge=edge, int_bounds={"ids": 300})
            for u, v in zip(a, b):
                assert u.dtype == v.dtype and u.tobytes() == v.tobytes()
            assert all(u.tobytes() != w.tobytes() for u, w in zip(a[:4], c[:4]))
            x, y, ids, mask, flag = a
            assert x.dtype == np.float16 and y.dtype == np.float32 and ids.dtype == mask.dtype == np.int32
            assert 0 <= ids.min() and ids.max() < 300 and len(np.unique(ids)) > 50
            assert set(np.unique(mask)) == {0, 1} and set(np.unique(flag)) == {False, True}
            if kind != "normal":
                assert (x >= 0).all() and (y >= 0).all()
            assert np.isfinite(x).all() and np.isfinite(y).all()


def test_integer_bounds_beyond_a_small_dtype_are_clamped_to_it():
    specs = [{"name": "ids", "dtype": "int8", "shape": ["batch", 50]}]
    for edge in (False, True):
        (ids,) = probes.make_inputs(specs, batch=8, dims={}, seed=0, int_bounds={"ids": 1000}, edge=edge)
        assert ids.dtype == np.int8 and ids.min() >= 0 and ids.max() <= 127
