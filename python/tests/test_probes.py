import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2pt_py import probes
from onnx2pt_py.errors import UserError


def test_symbolic_dims_take_batch_or_configured_sizes():
    specs = [
        {"name": "a", "dtype": "float32", "shape": ["batch", "seq", 3]},
        {"name": "b", "dtype": "int64", "shape": [None]},
    ]
    a, b = probes.make_inputs(specs, batch=2, dims={"seq": 5}, seed=0)
    assert a.shape == (2, 5, 3) and a.dtype == np.float32
    assert b.shape == (2,) and b.dtype == np.int64


def test_a_dimension_named_as_a_sum_takes_the_sum_of_its_terms():
    # A decoder step with a KV cache: the attention mask spans the past and
    # the new tokens, named as their sum by the exporters.
    specs = [
        {"name": "ids", "dtype": "int64", "shape": ["batch", "sequence"]},
        {"name": "past", "dtype": "float32", "shape": ["batch", 2, "past_sequence", 8]},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "past_sequence + sequence"]},
        {"name": "other", "dtype": "float32", "shape": ["batch", "2*s0 + 1"]},
    ]
    ids, past, mask, other = probes.make_inputs(specs, batch=3, dims={"sequence": 2, "past_sequence": 5}, seed=0)
    assert ids.shape == (3, 2) and past.shape == (3, 2, 5, 8) and mask.shape == (3, 7)
    assert other.shape == (3, 2 * 3 + 1)  # s0 unset: the batch size
    assert probes.free_dims(specs, {}) == ["sequence", "past_sequence"]


def test_absurd_shapes_are_refused_before_allocating():
    specs = [{"name": "x", "dtype": "float32", "shape": [1 << 20, 1 << 20]}]
    with pytest.raises(UserError, match="too large"):
        probes.make_inputs(specs, batch=1, dims={}, seed=0)


def test_output_shape_mismatch_is_reported():
    with pytest.raises(UserError, match="declares"):
        probes.check_shape({"name": "y", "shape": ["batch", 10]}, (4, 11), {"batch": 4}, "m.onnx")
    probes.check_shape({"name": "y", "shape": ["batch", 10]}, (4, 10), {"batch": 4}, "m.onnx")
    probes.check_shape({"name": "y", "shape": ["other", 10]}, (7, 10), {"batch": 4}, "m.onnx")


def embedding_model():
    """Token ids (n, 5) index a 7-row table: ids must stay below 7."""
    table = numpy_helper.from_array(np.ones((7, 3), np.float32), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["y"])],
        "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5, 3])],
        [table],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_integer_inputs_stay_inside_the_table_they_index():
    model = embedding_model()
    bounds = probes.int_bounds(model)
    assert bounds == {"ids": 7}
    specs = [{"name": "ids", "dtype": "int64", "shape": ["n", 5]}]
    (ids,) = probes.make_inputs(specs, batch=50, dims={}, seed=0, int_bounds=bounds)
    assert ids.min() >= 0 and ids.max() == 6  # 250 draws reach the last row


def test_ids_through_a_cast_and_into_embed_layer_normalization_stay_inside_their_tables():
    # onnxruntime's transformer optimizer: ids cast to int32, then one fused
    # node reading word (input 2), position (4) and segment (3) tables.
    tables = {"word": (11, 4), "segment": (2, 4), "position": (16, 4)}
    inits = [numpy_helper.from_array(np.ones(shape, np.float32), name) for name, shape in tables.items()]
    inits += [numpy_helper.from_array(np.ones(4, np.float32), n) for n in ("gamma", "beta")]
    nodes = [
        helper.make_node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
        helper.make_node("Cast", ["types"], ["types32"], to=TensorProto.INT32),
        helper.make_node(
            "EmbedLayerNormalization",
            ["ids32", "types32", "word", "position", "segment", "gamma", "beta"],
            ["y", "mask_index"],
            domain="com.microsoft",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "embed",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["n", 5]) for n in ("ids", "types")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    )
    assert probes.int_bounds(model) == {"ids": 11, "types": 2}


def test_attention_masks_are_padding_masks():
    specs = [
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", 12]},
        {"name": "ids", "dtype": "int64", "shape": ["batch", 12]},
    ]
    for edge in (False, True):
        mask, ids = probes.make_inputs(specs, batch=40, dims={}, seed=3, edge=edge)
        assert set(np.unique(mask)) == {0, 1}
        # ones, then zeros: each row's sum is where its padding starts
        lengths = mask.sum(axis=1)
        assert lengths.min() >= 1 and lengths.max() == 12 and len(set(lengths)) > 5
        np.testing.assert_array_equal(mask, np.arange(12) < lengths[:, None])
        assert ids.max() > 1  # other integer inputs are drawn as before


def test_arrays_load_from_npz_or_a_folder_of_npy(tmp_path):
    a, b = np.arange(3, dtype=np.float32), np.ones((2, 2), np.int64)
    np.savez(tmp_path / "data.npz", **{"x:0": a, "y": b})
    got = probes.load_arrays(str(tmp_path / "data.npz"), ["y", "x:0"], "input data")
    assert got[0].tolist() == b.tolist() and got[1].tolist() == a.tolist()
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "x_0.npy", a)
    np.save(folder / "y.npy", b)
    got = probes.load_arrays(str(folder), ["x:0", "y"], "input data")
    assert got[0].tolist() == a.tolist()
    with pytest.raises(UserError, match="no input data for 'z'"):
        probes.load_arrays(str(tmp_path / "data.npz"), ["z"], "input data")


def test_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="cannot read input data"):
        probes.load_arrays(str(tmp_path), ["x"], "input data")


def test_dimensions_other_than_the_batch_grow_until_the_model_runs(tmp_path):
    # An audio encoder's first convolution: kernel 10, stride 5 over the
    # samples, which would otherwise take the batch size (1 and 4).
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from onnx2pt_py.job import ConversionJob

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 1, 10)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["audio", "w"], ["features"], strides=[5])],
        "audio",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 1, "samples"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4, "frames"])],
        [w],
    )
    path = str(tmp_path / "audio.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    job = ConversionJob(path, batch_sizes=[1, 4])
    job.load()
    shapes = [list(x.shape) for _, (x,) in job.probes()]
    assert shapes == [[1, 1, 16], [4, 1, 16], [4, 1, 16]]
    job.convert()
    job.probe()
    out = str(tmp_path / "audio.pt")
    assert job.verify(out, job.save(out, None, {})["sha256"])["passed"]
    # verify.dims still decides where it is given.
    job = ConversionJob(path, batch_sizes=[2], dims={"samples": 30})
    job.load()
    assert [list(x.shape) for _, (x,) in job.probes()] == [[2, 1, 30], [2, 1, 30]]
