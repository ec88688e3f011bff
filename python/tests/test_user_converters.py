import hashlib
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from onnx2pt_py import job, preflight, user_converters
from onnx2pt_py.errors import UserError

MY_OPS = """
import torch
from onnx2torch.node_converters.registry import add_converter
from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node


class MyScale(torch.nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return x * self.alpha


@add_converter(operation_type="MyScale", version=1, domain="my.ops")
def _(node, graph):
    return OperationConverterResult(
        torch_module=MyScale(node.attributes.get("alpha", 1.0)), onnx_mapping=onnx_mapping_from_node(node)
    )
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test registers into a copy of onnx2torch's registry and loads
    its converters anew; the modules they were imported as are forgotten
    afterwards."""
    from onnx2torch.node_converters import registry

    from onnx2pt_py import converters  # noqa: F401  (registered before the copy, as load does)

    monkeypatch.setattr(registry, "_CONVERTER_REGISTRY", dict(registry._CONVERTER_REGISTRY))
    loaded = []
    monkeypatch.setattr(user_converters, "LOADED", loaded)
    monkeypatch.setattr(user_converters, "_FUNCTIONS", {})
    yield
    for name in [e["module"] for e in loaded] + ["my_package"]:
        sys.modules.pop(name, None)


def scale_model(alpha=2.5):
    nodes = [
        helper.make_node("MyScale", ["x"], ["s"], name="scale", domain="my.ops", alpha=alpha),
        helper.make_node("MyScale", ["s"], ["y"], domain="my.ops", alpha=2.0),
    ]
    graph = helper.make_graph(
        nodes,
        "my_scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)])
    model.ir_version = 8
    return model


def test_a_file_registers_its_converters(tmp_path):
    path = tmp_path / "my_ops_a.py"
    path.write_text(MY_OPS)
    model = scale_model()
    assert preflight.check(model), "test premise: nothing converts MyScale before"

    [loaded] = user_converters.load([{"path": str(path)}])

    assert loaded["path"] == str(path)
    assert loaded["module"] == "my_ops_a"  # the stem: a checkpoint pickles its classes as my_ops_a.MyScale
    assert loaded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded["ops"] == [{"domain": "my.ops", "op": "MyScale", "version": 1}]
    assert preflight.check(model) == []
    assert user_converters.converted_nodes(model) == [["scale", "MyScale#1"]]


def test_a_converted_model_runs_and_verifies_against_expected_data(tmp_path):
    path = tmp_path / "my_ops_b.py"
    path.write_text(MY_OPS)
    user_converters.load([{"path": str(path)}])
    onnx.save(scale_model(), str(tmp_path / "m.onnx"))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.savez(tmp_path / "in.npz", x=x)
    np.savez(tmp_path / "out.npz", y=x * 5)
    j = job.ConversionJob(str(tmp_path / "m.onnx"), data=str(tmp_path / "in.npz"), expected=str(tmp_path / "out.npz"))
    j.load()
    j.convert()
    j.probe()
    saved = j.save(str(tmp_path / "m.pt"), "", {})
    assert j.verify(str(tmp_path / "m.pt"), saved["sha256"])["passed"]
    assert torch.equal(j.torch_model(torch.from_numpy(x)), torch.from_numpy(x * 5))


def test_a_taken_stem_gets_a_name_of_its_own(tmp_path):
    path = tmp_path / "json.py"  # json is the standard library's
    path.write_text(MY_OPS)
    [loaded] = user_converters.load([{"path": str(path)}])
    assert loaded["module"].startswith("onnx2pt_user_json_")
    assert sys.modules[loaded["module"]].MyScale
    assert "MyScale" not in dir(sys.modules["json"])


def test_a_module_by_name(tmp_path, monkeypatch):
    package = tmp_path / "my_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "converters.py").write_text(MY_OPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    [loaded] = user_converters.load([{"module": "my_package.converters"}])
    assert loaded["path"] == ""
    assert loaded["module"] == "my_package.converters"
    assert loaded["sha256"] == hashlib.sha256((package / "converters.py").read_bytes()).hexdigest()
    assert user_converters.converted_nodes(scale_model())[0] == ["scale", "MyScale#1"]


@pytest.mark.parametrize(
    "source, message",
    [
        ("x = = 1\n", "user converter {path} failed to import: SyntaxError: invalid syntax (bad_ops.py, line 1)"),
        ("raise RuntimeError('no way')\n", "user converter {path} failed to import: RuntimeError: no way"),
        ("import not_a_module_anywhere\n", "user converter {path} failed to import: ModuleNotFoundError: No module"),
        ("import sys\nsys.exit(3)\n", "user converter {path} failed to import: SystemExit: 3"),
        (
            "from onnx2torch.node_converters.registry import add_converter\n"
            "add_converter(operation_type='Relu', version=14)(lambda node, graph: None)\n",
            "user converter {path} failed to import: ValueError: Operation",
        ),
    ],
)
def test_a_converter_that_fails_to_import_is_named(tmp_path, source, message):
    path = tmp_path / "bad_ops.py"
    path.write_text(source)
    with pytest.raises(UserError) as e:
        user_converters.load([{"path": str(path)}])
    assert str(e.value).startswith(message.format(path=path))
    assert "\n" not in str(e.value)
    assert e.value.__cause__ is not None  # its traceback, for --verbose
    assert "bad_ops" not in sys.modules


def test_a_missing_file_or_module(tmp_path):
    with pytest.raises(UserError, match="user converter .*gone.py: cannot read it: No such file"):
        user_converters.load([{"path": str(tmp_path / "gone.py")}])
    with pytest.raises(UserError, match="user converter not_a_package.ops failed to import: ModuleNotFoundError"):
        user_converters.load([{"module": "not_a_package.ops"}])


def test_a_converter_registering_nothing_is_warned_about(tmp_path, caplog):
    path = tmp_path / "empty_ops.py"
    path.write_text("import torch\n")
    [loaded] = user_converters.load([{"path": str(path)}])
    assert loaded["ops"] == []
    assert "registered no converter" in caplog.text
    assert user_converters.converted_nodes(scale_model()) == [[]]


def test_an_op_nothing_converts_points_to_the_converters_setting(tmp_path):
    onnx.save(scale_model(), str(tmp_path / "m.onnx"))
    j = job.ConversionJob(str(tmp_path / "m.onnx"))
    j.load()
    with pytest.raises(
        UserError,
        match=r"MyScale node .*; an op nothing converts can have a converter of your own \(the converters setting\)$",
    ):
        j.convert()
