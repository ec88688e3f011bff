import numpy as np
import pytest
from convert_check import check, make_model, random
from onnx import helper


def _caches(positions, half, seed=0):
    angles = random((positions, half), seed=seed, low=0.0, high=6.0)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])  # 0: the whole head
@pytest.mark.parametrize("layout", ["4d", "3d"])
def test_rotary_embedding_with_position_ids(layout, rotary_dim, interleaved):
    batch, heads, seq, head = 2, 3, 5, 8
    dim = rotary_dim or head
    cos, sin = _caches(16, dim // 2)
    position_ids = np.array([[0, 1, 2, 3, 4], [7, 3, 9, 15, 0]], np.int64)
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": rotary_dim}
    if layout == "4d":
        x = random((batch, heads, seq, head))
    else:
        x = random((batch, seq, heads * head))
        attrs["num_heads"] = heads
    feeds = {"x": x, "cos": cos, "sin": sin, "pos": position_ids}
    model = make_model(
        helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], **attrs), feeds, ["y"], 23
    )
    check(model, feeds)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_caches_per_token(interleaved):
    # Without position_ids the caches are already (batch, seq, dim / 2).
    x = random((2, 2, 4, 6))
    angles = random((2, 4, 3), seed=1)
    feeds = {"x": x, "cos": np.cos(angles), "sin": np.sin(angles)}
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin"], ["y"], interleaved=interleaved)
    model = make_model(node, feeds, ["y"], 23)
    check(model, feeds)


def test_rotary_embedding_caches_as_initializers():
    x = random((1, 4, 3, 8))
    cos, sin = _caches(10, 4, seed=3)
    feeds = {"x": x, "pos": np.array([[2, 5, 9]], np.int64)}
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"])
    model = make_model(node, feeds, ["y"], 23, initializers={"cos": cos, "sin": sin})
    check(model, feeds)
