"""TfIdfVectorizer, against onnxruntime and the ONNX reference evaluator."""

import io

import numpy as np
import onnx2torch
import pytest
import torch
from convert_check import assert_same, check, make_model, random, run_reference
from onnx import helper

import onnx2pt_py.converters.text  # noqa: F401  (also imported by the package; this test needs it first)


def tfidf_model(x, mode="TF", min_gram=1, max_gram=2, skip=0, counts=(0, 4), indexes=None, pool=None, weights=None):
    pool = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7] if pool is None else pool
    if indexes is None:
        indexes = list(range(_ngram_total(pool, counts)))
    attrs = dict(
        mode=mode,
        min_gram_length=min_gram,
        max_gram_length=max_gram,
        max_skip_count=skip,
        ngram_counts=list(counts),
        ngram_indexes=list(indexes),
        pool_int64s=list(pool),
    )
    if weights is not None:
        attrs["weights"] = list(weights)
    return make_model(helper.make_node("TfIdfVectorizer", ["x"], ["y"], **attrs), {"x": x}, ["y"], 9)


def _ngram_total(pool, counts):
    bounds = list(counts) + [len(pool)]
    return sum((bounds[i + 1] - bounds[i]) // (i + 1) for i in range(len(counts)))


def check_both(model, x, reference=True):
    """onnxruntime and the reference agree with the conversion."""
    expected = check(model, {"x": x})
    if reference:
        assert_same(run_reference(model, {"x": x}), expected)
    return expected


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("min_gram, max_gram", [(1, 1), (1, 2), (2, 2), (1, 3), (2, 3), (3, 3)])
@pytest.mark.parametrize("skip", [0, 1, 3])
@pytest.mark.parametrize("permuted", [False, True])
def test_tfidf_random_pools(mode, weighted, min_gram, max_gram, skip, permuted):
    # Small alphabets: n-grams recur, skipped ones too.
    rng = np.random.default_rng(min_gram * 100 + max_gram * 10 + skip)
    x = rng.integers(0, 5, size=(3, 11)).astype(np.int64)
    pool = []
    for length, count, alphabet in ((1, 4, 6), (2, 7, 5), (3, 5, 4)):
        grams = {tuple(g) for g in rng.integers(0, alphabet, (4 * count, length)).tolist()}
        pool += [t for g in sorted(grams, key=lambda g: rng.random())[:count] for t in g]
    counts = [0, 4, 4 + 14]
    indexes = rng.permutation(16) if permuted else np.arange(16)
    weights = rng.uniform(0.5, 2, 16).round(3) if weighted else None
    model = tfidf_model(x, mode, min_gram, max_gram, skip, counts, indexes, pool, weights)
    # The reference fails for IDF and TFIDF without weights, and takes the
    # weights by output column, not by n-gram as onnxruntime and the
    # specification do.
    y = check_both(model, x, reference=mode == "TF" or weighted and not permuted)[0]
    assert y.any()  # the case counts something


def test_tfidf_refuses_a_repeated_ngram():
    # onnxruntime refuses the pool too; the reference counts the last one only.
    x = np.array([[5, 6, 5, 6, 7]], np.int64)
    with pytest.raises(ValueError, match=r"\[5, 6\] twice"):
        onnx2torch.convert(tfidf_model(x, counts=[0, 2], pool=[5, 9, 5, 6, 5, 6], indexes=[0, 1, 2, 3]))
    # unless the repeated length is not counted
    check_both(tfidf_model(x, min_gram=1, max_gram=1, counts=[0, 2], pool=[5, 9, 5, 6, 5, 6], indexes=[0, 1, 2, 3]), x)


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
def test_tfidf_shared_and_unused_output_columns(mode):
    # Two n-grams into column 0 and two into 3 (their weights equal for
    # IDF); columns 1 and 5 take none.
    x = np.array([[2, 3, 3, 5, 6, 7, 6, 7, 8, 2], [4, 4, 5, 6, 2, 2, 2, 3, 7, 8]], np.int32)
    weights = [0.5, 1, 2, 3, 4 if mode != "IDF" else 0.5, 5, 6 if mode != "IDF" else 2]
    y = check(tfidf_model(x, mode=mode, indexes=[0, 2, 3, 4, 0, 6, 3], weights=weights), {"x": x})[0]
    assert y.shape == (2, 7) and not y[:, [1, 5]].any() and y[:, [0, 3]].all()


def test_tfidf_refuses_idf_weights_that_differ_in_a_shared_column():
    # onnxruntime gives the weight of the n-gram it found last there.
    x = np.array([2, 3, 5, 6], np.int64)
    model = tfidf_model(x, mode="IDF", indexes=[0, 1, 2, 3, 0, 5, 6], weights=[1, 2, 3, 4, 5, 6, 7])
    with pytest.raises(NotImplementedError, match="column 0"):
        onnx2torch.convert(model)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape", [(12,), (1, 12), (4, 12), (2, 1)])
def test_tfidf_input_shapes(dtype, shape):
    x = random(shape, dtype, low=2, high=8)
    check_both(tfidf_model(x, skip=2), x)


@pytest.mark.parametrize("shape", [(0,), (3, 0)])
def test_tfidf_empty_input_gives_zeros(shape):
    x = np.zeros(shape, np.int64)
    assert not check_both(tfidf_model(x), x)[0].any()


def test_tfidf_tokens_beyond_the_pool():
    x = np.array([-(2**62), 5, 6, 2**62, 7, 8, -1], np.int64)
    check_both(tfidf_model(x, max_gram=2, skip=1), x)


def test_tfidf_refuses_string_pools():
    x = np.array([1, 2], np.int64)
    model = tfidf_model(x)
    attrs = model.graph.node[0].attribute
    del attrs[[a.name for a in attrs].index("pool_int64s")]
    attrs.append(helper.make_attribute("pool_strings", [b"a", b"b"]))
    with pytest.raises(NotImplementedError, match="pool_strings"):
        onnx2torch.convert(model)


def test_tfidf_saved_and_reloaded():
    x = random((2, 9), np.int64, low=2, high=8)
    model = tfidf_model(x, mode="TFIDF", skip=3, weights=[1.5] * 7)
    buffer = io.BytesIO()
    torch.save(onnx2torch.convert(model), buffer)
    buffer.seek(0)
    module = torch.load(buffer, weights_only=False).eval()
    assert_same(run_reference(model, {"x": x}), [module(torch.from_numpy(x)).numpy()])
