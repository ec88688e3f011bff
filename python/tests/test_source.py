"""The `source` artifact (source.py): a converted model written as readable
torch code (model.py), its weights as safetensors, checked with torch alone."""

import ast
import importlib.util
import itertools
import os
import re
import subprocess
import warnings

import families
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from conftest import REPO
from onnx2pt_py import source
from onnx2pt_py.job import ConversionJob

RESNET8 = os.path.join(REPO, "models", "resnet8.onnx")
ATOL, RTOL = 1e-4, 1e-3  # the family suite's tolerances (test_families.py)
_loaded = itertools.count()


def convert(path, **kwargs):
    job = ConversionJob(path, batch_sizes=[1, 3], **kwargs)
    job.load()
    job.normalise()
    job.convert()
    return job


def metadata(job):
    return {
        "created_by": "onnx2pt test",
        "source": {"file": os.path.basename(job.path), "sha256": job.info.get("sha256")},
        "opset": 13,
    }


def write(job, folder):
    with job.in_folder():
        return source.write(job.torch_model, job.normalised, str(folder), metadata(job), job.probes()[0][1])


def verify(job, folder, summary, **kwargs):
    checks, expected, example = job._artifact_probes()
    return source.verify(
        str(folder),
        summary,
        metadata(job),
        [inputs for _, inputs in checks],
        expected,
        [o["name"] for o in job.info["outputs"]],
        job.atol,
        job.rtol,
        example=example,
        specs=job.info["inputs"],
        batches=[b for b, _ in checks],
        **kwargs,
    )


def load_written(folder, summary):
    """The written class, imported from folder/model.py, with its weights."""
    from safetensors.torch import load_file

    name = f"written_model_{next(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, summary["class"])()
    model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=True)
    return model.eval()


def imports(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


# -- ResNet8: reads like a hand-written ResNet8 -------------------------------------


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory):
    job = convert(RESNET8)
    folder = tmp_path_factory.mktemp("resnet8")
    return job, folder, write(job, folder)


def test_resnet8_layers_are_torch_nn_layers_named_after_the_graph_nodes(resnet8):
    job, folder, summary = resnet8
    graph = onnx.load(RESNET8).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    norms = [n.name for n in graph.node if n.op_type == "BatchNormalization"]
    model = load_written(folder, summary)
    children = dict(model.named_children())
    # Each Conv and BatchNormalization node is a layer of its name; the
    # dense layer (MatMul + Add) is an nn.Linear named after its weights
    # (dense/kernel, dense/bias).
    assert set(children) == set(convs) | set(norms) | {"dense"}
    assert all(type(children[name]) is nn.Conv2d for name in convs)
    assert all(type(children[name]) is nn.BatchNorm2d for name in norms)
    assert type(children["dense"]) is nn.Linear
    assert summary["copied"] == []  # no op module copied from the converters
    assert summary["layers"] == {"BatchNorm2d": 7, "Conv2d": 9, "Linear": 1}
    assert {"conv_1.weight", "conv_1.bias", "bn_1.running_var", "dense.weight"} <= set(summary["state_keys"])


def test_resnet8_forward_shows_the_residual_additions(resnet8):
    _, folder, _ = resnet8
    with open(os.path.join(folder, "model.py")) as f:
        code = f.read()
    assert imports(os.path.join(folder, "model.py")) <= {"torch"}
    body = code.split('"""', 2)[2]  # after the module docstring
    assert "Onnx" not in body and "onnx2torch" not in body
    # The forward's arguments are the ONNX inputs.
    assert "def forward(self, input_1):" in code
    # Three residual blocks: their additions are Python additions of
    # layer outputs; layers are called as self.<node name>.
    assert len(re.findall(r"^\s+add_\d = bn_\d \+ \w+$", code, re.M)) == 3
    assert "self.conv_1(" in code and "self.bn_7(" in code and "self.dense(" in code
    assert "torch.relu(" in code and "torch.softmax(" in code and "F.pad(" in code


def test_resnet8_round_trip_matches_the_converted_module(resnet8):
    job, folder, summary = resnet8
    model = load_written(folder, summary)
    g = torch.Generator().manual_seed(3)
    for batch in (2, 5):
        x = torch.randn(batch, 32, 32, 3, generator=g)
        with torch.no_grad():
            want, got = job.torch_model(x), model(x)
        # the same torch ops but for MatMul + Add, now one nn.Linear
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_resnet8_model_py_is_formatted_and_lint_clean(resnet8):
    _, folder, summary = resnet8
    ruff = source.find_ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    assert summary["formatted"]
    path = os.path.join(folder, "model.py")
    for args in (["format", "--isolated", "--check"], ["check", "--isolated"]):
        done = subprocess.run([ruff, *args, path], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    # and by this repository's rules
    done = subprocess.run(
        [ruff, "check", "--config", os.path.join(REPO, "ruff.toml"), path], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with open(path) as f:
        assert "noqa" not in f.read()


def test_resnet8_verifies_with_torch_alone(resnet8):
    job, folder, summary = resnet8
    result = verify(job, folder, summary)
    assert result["passed"], result
    assert result["batches"] == [1, 3, 6]  # the probes (and the edge probe), and a batch size no probe used
    assert result["imports"] == ["torch"]
    grads = result["gradients"]
    assert grads["parameters"] == grads["with_gradient"] == summary["parameter_tensors"] and grads["finite"]
    assert result["export"]["ok"], result["export"]
    with open(os.path.join(folder, "README.md")) as f:
        readme = f.read()
    assert job.info["sha256"] in readme and "opset: 13" in readme
    assert 'model.load_state_dict(load_file("model.safetensors"))' in readme
    assert "passed" in readme and "| dense |" in readme


def test_the_check_blocks_onnx2torch(tmp_path):
    # A model.py that needs onnx2torch fails in the checker, however it
    # would run here.
    (tmp_path / "model.py").write_text(
        "import onnx2torch  # noqa: F401\nimport torch\n\n\nclass M(torch.nn.Module):\n"
        "    def forward(self, x):\n        return x\n"
    )
    source.save_safetensors({}, str(tmp_path / "model.safetensors"))
    answer = source.check(str(tmp_path), "M", [[np.zeros((1, 2), np.float32)]], export=False)
    assert answer["outputs"] is None
    assert "onnx2torch" in answer["error"], answer


def test_the_check_reports_a_state_that_does_not_load_strictly(resnet8, tmp_path):
    _, folder, summary = resnet8
    from safetensors.torch import load_file

    state = load_file(os.path.join(folder, "model.safetensors"))
    del state["dense.bias"]
    for name in ("model.py", "README.md"):
        (tmp_path / name).write_text(open(os.path.join(folder, name)).read())
    source.save_safetensors(state, str(tmp_path / "model.safetensors"))
    answer = source.check(str(tmp_path), summary["class"], [[np.zeros((1, 32, 32, 3), np.float32)]], export=False)
    assert answer["outputs"] is None and "dense.bias" in answer["error"]


def test_the_check_refuses_files_other_than_those_written(resnet8, tmp_path):
    """Each file is read once and used only if it hashes to what was written:
    model.py runs in the checker."""
    _, folder, summary = resnet8
    for name in ("model.py", "model.safetensors"):
        (tmp_path / name).write_bytes(open(os.path.join(folder, name), "rb").read())
    probe = [[np.zeros((1, 32, 32, 3), np.float32)]]
    answer = source.check(str(tmp_path), summary["class"], probe, export=False, sha256=summary["sha256"])
    assert answer["error"] is None, answer
    with open(tmp_path / "model.py", "a") as f:
        f.write("\nraise SystemExit('ran a model.py that was not written')\n")
    answer = source.check(str(tmp_path), summary["class"], probe, export=False, sha256=summary["sha256"])
    assert answer["outputs"] is None and answer.get("changed"), answer
    assert answer["error"] == "model.py changed after it was written; refusing to load it"


def test_one_checker_checks_many_models_each_in_a_module_of_its_own(resnet8, tmp_path):
    """The checker outlives a check: a second model.py with the same class
    name gets its own module, not the first one's classes."""
    _, folder, summary = resnet8
    (tmp_path / "model.py").write_text(
        f"import torch\n\n\nclass {summary['class']}(torch.nn.Module):\n"
        "    def forward(self, x):\n        return x.sum(dim=(1, 2, 3))\n"
    )
    source.save_safetensors({}, str(tmp_path / "model.safetensors"))
    first = source.check(str(folder), summary["class"], [[np.ones((2, 32, 32, 3), np.float32)]], export=False)
    second = source.check(str(tmp_path), summary["class"], [[np.ones((2, 32, 32, 3), np.float32)]], export=False)
    assert first["outputs"][0][0].shape == (2, 10)
    np.testing.assert_array_equal(second["outputs"][0][0], [3072.0, 3072.0])


# -- names ----------------------------------------------------------------------------


def hand_made(path, nodes, inits, inputs, outputs, opset=13):
    graph = helper.make_graph(nodes, "hand_made", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_layers_take_their_weights_names_or_else_their_scopes(tmp_path):
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        # torch.onnx's legacy names: a scope path, the weight's name lost
        helper.make_node(
            "Conv", ["x", "onnx::Conv_7", "onnx::Conv_8"], ["c"], name="/features/features.0/Conv", pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"], name="/features/features.1/Relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
        # a Linear as torch.export writes it: MatMul by the transposed
        # weight (a new name), then Add of the bias (the parameter's name)
        helper.make_node("MatMul", ["f", "val_3"], ["m"], name="node_MatMul_2"),
        helper.make_node("Add", ["m", "encoder.layers.0.linear.bias"], ["y"], name="node_linear"),
    ]
    inits = [
        init("onnx::Conv_7", 4, 3, 3, 3),
        init("onnx::Conv_8", 4),
        init("val_3", 4, 5),
        init("encoder.layers.0.linear.bias", 5),
    ]
    path = hand_made(
        tmp_path / "names.onnx",
        nodes,
        inits,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
    )
    job = convert(path)
    summary = write(job, tmp_path / "out")
    assert set(summary["state_keys"]) == {
        "features.0.weight",
        "features.0.bias",
        "encoder.layers.0.linear.weight",
        "encoder.layers.0.linear.bias",
    }
    code = (tmp_path / "out" / "model.py").read_text()
    assert "self.features[0](x)" in code and "self.encoder.layers[0].linear(" in code
    model = load_written(str(tmp_path / "out"), summary)
    assert type(model.features[0]) is nn.Conv2d and type(model.encoder.layers[0].linear) is nn.Linear
    torch.testing.assert_close(
        model.encoder.layers[0].linear.weight, torch.from_numpy(numpy_helper.to_array(inits[2]).T.copy())
    )
    assert verify(job, tmp_path / "out", summary)["passed"]


class Opaque(nn.Module):
    """An op module no emitter knows and whose class cannot be copied (it
    lives outside the converters' packages)."""

    def forward(self, x):
        return torch.relu(x)


def test_an_op_that_cannot_be_written_names_its_node(tmp_path):
    path = hand_made(
        tmp_path / "opaque.onnx",
        [
            helper.make_node("Relu", ["x"], ["h"], name="first"),
            helper.make_node("Neg", ["h"], ["y"], name="the_opaque_one"),
        ],
        [],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    job = convert(path)
    job.torch_model.the_opaque_one = Opaque()
    with pytest.raises(source.NotExpressible) as caught:
        write(job, tmp_path / "out")
    assert caught.value.node == "the_opaque_one"
    assert "Opaque" in caught.value.reason
    assert not (tmp_path / "out" / "model.py").exists()


def test_a_module_with_no_emitter_is_copied_and_runs_with_torch_alone(tmp_path):
    (entry,) = families.build(str(tmp_path / "families"), only=["topk_classifier"])
    job = convert(entry["path"], atol=ATOL, rtol=RTOL)
    summary = write(job, tmp_path / "out")
    assert summary["copied"]  # TopK is one of onnx2pt's converters
    assert imports(tmp_path / "out" / "model.py") <= {"torch", "math"}
    result = verify(job, tmp_path / "out", summary)
    assert result["passed"], result


# -- state_dict keys against the torch model exported --------------------------------


def share_of_keys(original, written):
    keys = [k for k in original if not k.endswith("num_batches_tracked")]
    return sum(k in written for k in keys) / len(keys), [k for k in keys if k not in written]


@pytest.mark.slow
def test_state_dict_keys_match_the_torchvision_model_exported(tmp_path, capsys):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # no two equal tensors, which the exporter would store once
        for t in itertools.chain(model.parameters(), model.buffers()):
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape) * 0.1 + 0.95 if "running_var" in str(t) else torch.randn(t.shape) * 0.05)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
    original = model.state_dict()
    shares = {}
    for folded in (False, True):
        path = str(tmp_path / f"resnet18_{folded}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.randn(2, 3, 64, 64),),
                path,
                dynamo=False,
                opset_version=17,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                do_constant_folding=folded,
            )
        job = convert(path, atol=ATOL, rtol=RTOL)
        summary = write(job, tmp_path / f"out_{folded}")
        share, missing = share_of_keys(original, set(summary["state_keys"]))
        shares[folded] = share
        with capsys.disabled():
            print(
                f"\nresnet18, legacy exporter, constant folding {folded}: {share:.0%} of the torch model's keys kept",
                end="",
            )
        if not folded:
            # BatchNorm kept: every parameter and buffer keeps its name, with its values.
            assert share == 1.0, missing
            written = load_written(str(tmp_path / f"out_{folded}"), summary).state_dict()
            for key, value in original.items():
                torch.testing.assert_close(written[key], value, rtol=0, atol=0)
        else:
            # Folded into the convolutions, BatchNorm is gone and the
            # weights lose their names; the layers keep their scopes.
            convs = [k for k in original if k.endswith("weight") and original[k].dim() == 4]
            assert all(k in summary["state_keys"] for k in convs + ["fc.weight", "fc.bias"]), missing
        assert verify(job, tmp_path / f"out_{folded}", summary)["passed"]
    assert shares[False] > shares[True]


# -- pieces ---------------------------------------------------------------------------


def test_float_literals_are_the_shortest_that_round_the_same():
    assert source._float_literal(float(np.float32(0.2)), torch.float32) == "0.2"
    assert source._float_literal(float(np.float32(1e-5)), torch.float32) == "1e-05"
    assert source._float_literal(0.1, torch.float64) == "0.1"
    assert source._float_literal(float("-inf"), torch.float32) == '-float("inf")'
    assert source._short_float(float(np.float32(0.001))) == 0.001


def test_class_names_from_file_names():
    assert source.class_name_for("models/resnet8.onnx") == "Resnet8"
    assert source.class_name_for("mobilenet_v3-small.onnx") == "MobilenetV3Small"
    assert source.class_name_for("3d_unet.onnx") == "Model3dUnet"


def test_safetensors_written_without_the_package_load_with_it(tmp_path, monkeypatch):
    import builtins

    from safetensors.torch import load_file

    real_import = builtins.__import__

    def no_safetensors(name, *args, **kwargs):
        if name.startswith("safetensors"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    state = {
        "a.weight": torch.randn(3, 4),
        "b": torch.arange(5),
        "c": torch.tensor(True),
        "d": torch.randn(2, dtype=torch.float64).half(),
        "e": torch.zeros(0, 3),
    }
    monkeypatch.setattr(builtins, "__import__", no_safetensors)
    source.save_safetensors(state, str(tmp_path / "w.safetensors"), {"class": "M"})
    monkeypatch.setattr(builtins, "__import__", real_import)
    loaded = load_file(str(tmp_path / "w.safetensors"))
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v)


# -- the model-family suite -------------------------------------------------------------

# Over this share of the suite's models that convert, the source artifact
# must be written and verified.
MIN_SHARE = 0.9


@pytest.mark.slow
@pytest.mark.binary_covers  # TestFamilies writes and checks it for every family
def test_family_suite_writes_and_verifies_source(tmp_path, capsys):
    """Every model of the suite that converts: model.py written and verified
    with torch alone (outputs at every probe and an unseen batch size,
    gradients, and torch.export where the .pt2 artifact exports)."""
    rows = []
    for spec in families.specs():
        if spec.expect != "converts":
            continue
        (entry,) = families.build(str(tmp_path / "families"), only=[spec.name])
        row = {"name": spec.name}
        try:
            job = ConversionJob(entry["path"], batch_sizes=[1, 3], atol=ATOL, rtol=RTOL, **entry["verify"])
            job.load()
            job.normalise()
            job.convert()
            folder = tmp_path / "source" / spec.name
            summary = write(job, folder)
            pt2 = job.export("exported", str(tmp_path / f"{spec.name}.pt2"), {})
            row["pt2"] = pt2["error"] is None
            result = verify(job, folder, summary, export_required=row["pt2"])
            row["verified"] = result["passed"]
            row["export"] = (result["export"] or {}).get("ok")
            row["copied"] = len(summary["copied"])
            if not result["passed"]:
                row["why"] = result["error"] or str(
                    {k: result.get(k) for k in ("outputs", "gradients", "export") if k != "outputs"}
                )
        except source.NotExpressible as e:
            row["verified"] = False
            row["why"] = f"not expressible: {e}"
        rows.append(row)
    verified = [r for r in rows if r["verified"]]
    share = len(verified) / len(rows)
    with capsys.disabled():
        print(f"\nsource artifact: {len(verified)} of {len(rows)} family models written and verified ({share:.0%})")
        for r in rows:
            if not r["verified"]:
                print(f"  {r['name']}: {r.get('why')}")
    assert share >= MIN_SHARE
    # torch.export of the written model works wherever it works on the converted one
    assert all(r["export"] for r in rows if r.get("pt2")), [r["name"] for r in rows if r.get("pt2") and not r["export"]]
