import builtins
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO
from onnx2pt_py import job, model_info
from onnx2pt_py.errors import UserError

RESNET8 = os.path.join(REPO, "models", "resnet8.onnx")


def save(model, path):
    onnx.save(model, str(path))
    return str(path)


def tiny_model(op="Relu", domain="", opset=13, shape=("n", 4)):
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def test_resnet8_end_to_end(tmp_path):
    j = job.ConversionJob(RESNET8, batch_sizes=[1, 3])
    info = j.load()
    assert info["inputs"][0]["shape"] == ["batch", 32, 32, 3]
    converted = j.convert()
    assert converted["weights"] == {
        "parameters": 77536,
        "trainable_parameters": 77536,
        "weight_buffers": 650,  # Dense kernel 64x10 + bias 10 kept as buffers
        "normalization_statistics": 480,
        "total": 78186,
    }
    assert converted["float32_nodes"] == []  # a float32 model
    assert info["precision"] == "float32" and not info["quantized"]
    probes = j.probe()
    # One probe per batch size, and the edge probe at the largest.
    assert [p["output_shapes"] for p in probes] == [[[1, 10]], [[3, 10]], [[3, 10]]]
    assert [p["kind"] for p in probes] == ["normal", "normal", "edge"]
    out = tmp_path / "m.pt"
    saved = j.save(str(out), str(tmp_path / "sd.pt"), {"k": "v"})
    result = j.verify(str(out), saved["sha256"])
    assert result["passed"]
    assert result["outputs"][0]["max_abs_diff"] < 1e-5


def test_verify_refuses_a_file_changed_after_saving(tmp_path):
    j = job.ConversionJob(RESNET8, batch_sizes=[1])
    j.load()
    j.convert()
    j.probe()
    out = tmp_path / "m.pt"
    saved = j.save(str(out), None, {})
    with open(out, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(UserError, match="changed after it was written"):
        j.verify(str(out), saved["sha256"])


# Unpickling a Swapped records it: a checkpoint swapped in for ours shows
# itself by being loaded.
SWAPPED_LOADS = []


class Swapped(torch.nn.Module):
    def forward(self, x):
        return x

    def __setstate__(self, state):
        SWAPPED_LOADS.append(type(self).__name__)
        super().__setstate__(state)


def swapped_checkpoint(path):
    torch.save({"model": Swapped(), "state_dict": {}, "metadata": {}}, str(path))
    return str(path)


def converted_relu(tmp_path):
    j = job.ConversionJob(save(tiny_model(), tmp_path / "relu.onnx"), batch_sizes=[1])
    j.load()
    j.convert()
    j.probe()
    return j


def test_verify_loads_the_bytes_it_hashed(tmp_path, monkeypatch):
    """The checkpoint is replaced on disk as soon as verify has opened it: what
    it loads is still what it hashed, never the file swapped in."""
    j = converted_relu(tmp_path)
    out = tmp_path / "m.pt"
    saved = j.save(str(out), None, {})
    swap = swapped_checkpoint(tmp_path / "swap.pt")
    real_open = builtins.open
    opened = []

    def swapping_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == str(out) and "r" in mode:
            opened.append(mode)
            if len(opened) == 1:
                os.replace(swap, out)  # the file already open still reads the original
        return f

    SWAPPED_LOADS.clear()
    monkeypatch.setattr(builtins, "open", swapping_open)
    result = j.verify(str(out), saved["sha256"])
    monkeypatch.undo()
    assert opened == ["rb"]  # read once
    assert SWAPPED_LOADS == []
    assert result["passed"]


def test_a_checkpoint_swapped_right_after_saving_is_refused(tmp_path, monkeypatch):
    """The hash save reports is of the bytes it wrote, not of whatever the path
    holds once torch.save returns: verify refuses a file swapped in between."""
    j = converted_relu(tmp_path)
    out = tmp_path / "m.pt"
    swap = swapped_checkpoint(tmp_path / "swap.pt")
    real_save = torch.save

    def save_then_swap(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if isinstance(obj, dict) and "model" in obj:
            os.replace(swap, out)

    monkeypatch.setattr(torch, "save", save_then_swap)
    saved = j.save(str(out), None, {})
    monkeypatch.undo()
    SWAPPED_LOADS.clear()
    with pytest.raises(UserError, match="changed after it was written"):
        j.verify(str(out), saved["sha256"])
    assert SWAPPED_LOADS == []


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"\x08\x01garbage-bytes", "not an ONNX model|invalid ONNX model")],
)
def test_bad_files_are_user_errors(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        model_info.load_model(str(path))


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    model = tiny_model()
    weights = numpy_helper.from_array(np.ones(4, dtype=np.float32), "w")
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("raw_data")
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../secret.bin"
    model.graph.initializer.append(weights)
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    sub = tmp_path / "models"
    sub.mkdir()
    path = save(model, sub / "evil.onnx")
    with pytest.raises(UserError, match="outside the model's folder"):
        model_info.load_model(path)


def test_nodes_nobody_converts_are_named_before_converting(tmp_path):
    path = save(tiny_model(op="Frobnicate", domain="com.example"), tmp_path / "custom.onnx")
    j = job.ConversionJob(path)
    j.load()
    result = j.normalise()
    assert [(f["op"], f["domain"], f["fixed_by"]) for f in result["failures"]] == [("Frobnicate", "com.example", None)]
    assert result["passes"] == [] and len(result["remaining"]) == 1
    with pytest.raises(
        UserError, match=r'cannot convert 1 node: Frobnicate node "Frobnicate#0" in domain com.example \(opset 1\)'
    ):
        j.convert()


def relu_log_model():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Log", ["r"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "relu_log",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_model_with_infinite_outputs_verifies(tmp_path):
    # Relu then Log: log(0) = -inf wherever the input is negative, in
    # onnxruntime and torch alike.
    j = job.ConversionJob(save(relu_log_model(), tmp_path / "m.onnx"), batch_sizes=[2])
    j.load()
    j.convert()
    j.probe()
    saved = j.save(str(tmp_path / "m.pt"), None, {})
    result = j.verify(str(tmp_path / "m.pt"), saved["sha256"])
    assert result["passed"], result
    assert type(result["passed"]) is bool and type(result["outputs"][0]["within_tolerance"]) is bool


def external_model(folder, values):
    """A model y = x + w whose w lives in folder/weights.bin."""
    model = tiny_model(op="Add")
    model.graph.node[0].input.append("w")
    w = numpy_helper.from_array(np.asarray(values, np.float32), "w")
    model.graph.initializer.append(w)
    path = str(folder / "ext.onnx")
    onnx.save(model, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path


def test_external_data_is_described_with_its_hash(tmp_path):
    path = external_model(tmp_path, [1, 2, 3, 4])
    j = job.ConversionJob(path, batch_sizes=[1])
    info = j.load()
    assert info["external_data"] == [
        {"location": "weights.bin", "sha256": model_info.sha256_file(tmp_path / "weights.bin"), "size_bytes": 16}
    ]
    j.convert()
    j.probe()
    saved = j.save(str(tmp_path / "m.pt"), None, {})
    assert j.verify(str(tmp_path / "m.pt"), saved["sha256"])["passed"]


def test_model_folder_reached_through_a_symlink_loads_its_external_data(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    external_model(real, [1, 2, 3, 4])
    link = tmp_path / "link"
    link.symlink_to(real)
    model, locations = model_info.load_model(str(link / "ext.onnx"))
    assert locations == ["weights.bin"]
    assert list(numpy_helper.to_array(model.graph.initializer[0], str(link))) == [1, 2, 3, 4]


def test_missing_external_data_is_a_user_error(tmp_path):
    path = external_model(tmp_path, [1, 2, 3, 4])
    os.remove(tmp_path / "weights.bin")
    with pytest.raises(UserError, match="weights.bin, which is missing"):
        model_info.load_model(path)


def test_user_data_and_expected_outputs_replace_random_probes(tmp_path):
    path = save(relu_log_model(), tmp_path / "m.onnx")
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]], np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    np.savez(tmp_path / "good.npz", y=np.log(x))
    np.savez(tmp_path / "bad.npz", y=np.log(x) + 1)
    for expected, passes in (("good.npz", True), ("bad.npz", False)):
        j = job.ConversionJob(path, data=str(tmp_path / "in.npz"), expected=str(tmp_path / expected))
        j.load()
        j.convert()
        assert [p["input_shapes"] for p in j.probe()] == [[[1, 8]]]
        saved = j.save(str(tmp_path / "m.pt"), None, {})
        assert j.verify(str(tmp_path / "m.pt"), saved["sha256"])["passed"] is passes


def test_divergence_is_located_at_the_perturbed_node():
    import torch

    j = job.ConversionJob(RESNET8, batch_sizes=[2])
    j.load()
    j.convert()
    j.probe()
    convs = [name for name, m in j.torch_model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    target = convs[3]  # one in the middle of the network
    with torch.no_grad():
        j.torch_model.get_submodule(target).weight[0, 0, 0, 0] += 0.5
    found = j.find_divergence(j.torch_model)
    assert found is not None
    node = target.split(".")[0]  # the graph's module (onnx2torch may nest the conv)
    assert found["op"] == "Conv" and found["output"] == j.outputs_of[node][0]
    assert found["max_abs_diff"] > 1e-3
    # Unperturbed, nothing diverges.
    fresh = job.ConversionJob(RESNET8, batch_sizes=[2])
    fresh.load()
    fresh.convert()
    assert fresh.find_divergence(fresh.torch_model) is None


def test_configured_int_bounds_beat_the_graphs(tmp_path):
    from test_probes import embedding_model  # ids index a 7-row table

    model = embedding_model()
    model.ir_version = 8
    path = save(model, tmp_path / "embed.onnx")
    for bounds, top in (({}, 6), ({"ids": 2}, 1)):
        j = job.ConversionJob(path, batch_sizes=[40], int_bounds=bounds)
        j.load()
        (_, (ids,)), (_, (edge,)) = j.probes()
        assert ids.max() == top
        assert edge.max() == top  # the edge probe's largest index


def test_outputs_of_one_multi_output_node_come_back_as_the_graph_declares(tmp_path):
    # TopK's values and indices, in the opposite order, plus an output of
    # another node: onnx2torch alone returns TopK's tuple as one value.
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    nodes = [helper.make_node("TopK", ["x", "k"], ["values", "indices"]), helper.make_node("Relu", ["x"], ["r"])]
    graph = helper.make_graph(
        nodes,
        "topk",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])],
        [
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["n", 2]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, ["n", 5]),
            helper.make_tensor_value_info("values", TensorProto.FLOAT, ["n", 2]),
        ],
        [k],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = save(model, tmp_path / "topk.onnx")
    j = job.ConversionJob(path, batch_sizes=[1, 3])
    j.load()
    j.convert()
    assert [p["output_shapes"] for p in j.probe()] == [[[1, 2], [1, 5], [1, 2]]] + [[[3, 2], [3, 5], [3, 2]]] * 2
    saved = j.save(str(tmp_path / "m.pt"), None, {})
    assert j.verify(str(tmp_path / "m.pt"), saved["sha256"])["passed"]


def test_quantized_graphs_are_recognised_also_inside_subgraphs():
    def model(nodes):
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    qdq = [
        helper.make_node("QuantizeLinear", ["x", "s"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s"], ["y"]),
    ]
    assert model_info.quantized(model(qdq))
    assert model_info.quantized(
        model([helper.make_node("QLinearAdd", list("abcdefgh"), ["y"], domain="com.microsoft")])
    )
    assert not model_info.quantized(model([helper.make_node("Relu", ["x"], ["y"])]))
    body = helper.make_graph(qdq, "body", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    branch = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    assert model_info.quantized(model([branch]))
