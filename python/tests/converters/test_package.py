"""The package as a whole: registration hygiene and saved models."""

import importlib
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx2torch
import torch
from convert_check import make_model, random, run_ort, run_torch
from onnx import defs, helper
from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY

import onnx2pt_py.converters as converters
from onnx2pt_py.converters._common import UNCHECKED

PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_importing_twice_is_harmless():
    from onnx2pt_py.converters import versions

    before = dict(_CONVERTER_REGISTRY)
    registered = dict(converters.REGISTERED)
    aliases = list(versions.ALIASES)
    importlib.reload(converters)
    for name in ("cast", "reduce", "versions"):  # the modules' registrations run again
        importlib.reload(importlib.import_module(f"onnx2pt_py.converters.{name}"))
    assert dict(_CONVERTER_REGISTRY) == before
    assert dict(converters.REGISTERED) == registered
    assert converters.ALREADY_TAKEN == []
    assert versions.ALIASES == aliases


def test_registered_keys_were_missing_from_onnx2torch():
    # In a fresh interpreter: onnx2torch's registry alone, then with the package.
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY as registry
        own = {key: fn for key, fn in registry.items()}
        import onnx2pt_py.converters as converters
        print(json.dumps({
            "shadowed": [list(k) for k in converters.REGISTERED if k in own],
            "replaced": sorted(list(k) for k, fn in own.items() if registry[k] is not fn),
            "declared": sorted(list(k) for k, fn in converters.REPLACED.items() if own.get(k) is fn),
            "taken": [list(k) for k in converters.ALREADY_TAKEN],
            "added": len(registry) - len(own),
            "registered": len(converters.REGISTERED),
        }))
        """
    )
    out = subprocess.run([sys.executable, "-c", script, PYTHON_DIR], check=True, capture_output=True, text=True).stdout
    import json

    report = json.loads(out.strip().splitlines()[-1])
    assert report["shadowed"] == []
    # Only where onnx2torch's converter differs from the specification,
    # each declared, with onnx2torch's kept.
    replaced = [["", "Clip", v] for v in (11, 12, 13)] + [
        ["", op, v] for op in ("Conv", "ConvTranspose") for v in (1, 11)
    ]
    replaced += [["", "CumSum", v] for v in (11, 14)] + [["", "Flatten", v] for v in (9, 11, 13)]
    replaced += [["", "IsInf", 10]] + [["", "ScatterND", v] for v in (11, 13, 16)]
    replaced += [["", "LayerNormalization", 17]]
    replaced += [["", "TopK", v] for v in (1, 10, 11)]
    replaced += [["", "NonZero", 13], ["", "Range", 11]] + [["", "Shape", v] for v in (1, 13, 15)]
    replaced += [["", "GatherElements", v] for v in (11, 13)] + [["", "GatherND", v] for v in (11, 12, 13)]
    replaced += [["", "DepthToSpace", v] for v in (11, 13)] + [["", "Pow", v] for v in (12, 13, 15)]
    replaced += [["", "BatchNormalization", v] for v in (14, 15)] + [["", "Selu", 6]]
    replaced += [["", "Identity", v] for v in (1, 13, 14, 16)]  # sequences and optionals too
    replaced += [["", "NonMaxSuppression", v] for v in (10, 11)] + [["", "Pad", 2], ["", "Reshape", 14]]
    replaced += [["", "AveragePool", v] for v in (7, 10, 11)] + [["", "MaxPool", v] for v in (8, 10, 11, 12)]
    replaced += [["", "RoiAlign", v] for v in (10, 16)] + [["", "Unsqueeze", v] for v in (1, 11, 13)]
    # uint16/32/64, which torch has few kernels for (unsigned.py)
    replaced += [["", op, v] for op in ("Add", "Sub", "Div") for v in (7, 13, 14)]
    replaced += [["", op, v] for op in ("Greater", "Less") for v in (9, 13)]
    replaced += [["", op, v] for op in ("Max", "Min") for v in (12, 13)]
    replaced += [["", "GreaterOrEqual", 12], ["", "LessOrEqual", 12]]
    replaced += [["", "Mod", v] for v in (10, 13)] + [["", "Where", v] for v in (9, 16)]
    replaced += [["", "Split", v] for v in (2, 11, 13)]
    assert report["replaced"] == report["declared"] == sorted(replaced)
    assert report["taken"] == []
    assert report["added"] == report["registered"] > 150


def test_registered_versions_are_schema_versions():
    # onnx2torch looks converters up by the schema's since_version: any
    # other version number would never be used.
    for key in converters.REGISTERED:
        if key.domain == "com.microsoft" or key in UNCHECKED:  # onnxruntime's ops: no schema in onnx
            continue
        schema = defs.get_schema(key.operation_type, max_inclusive_version=key.version, domain=key.domain)
        assert schema.since_version == key.version, key


def test_every_family_registers():
    families = {fn.__module__.rsplit(".", 1)[-1] for fn in converters.REGISTERED.values()}
    assert {
        "attention",
        "cast",
        "contrib",
        "contrib_attention",
        "control",
        "cumulative",
        "elementwise",
        "image",
        "loss",
        "normalization",
        "pooling",
        "quantize",
        "recurrent",
        "reduce",
        "resize",
        "rotary",
        "sampling",
        "signal",
        "state",
        "tensor",
        "text",
        "training",
        "unsigned",
    } <= families


def test_saved_and_reloaded_model_runs():
    # The project saves whole converted modules with torch.save: the new
    # modules must pickle and come back working.
    x = random((1, 4, 6, 6))
    nodes = [
        helper.make_node("ReduceMax", ["x", "axes"], ["m"], keepdims=1),
        helper.make_node("Resize", ["m", "", "scales"], ["r"], mode="linear"),
        helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[2, 2], dilations=[2, 2]),
        helper.make_node("Cast", ["p"], ["y"], to=11),
    ]
    model = make_model(
        nodes,
        {"x": x},
        ["y"],
        22,
        initializers={"axes": np.array([1], np.int64), "scales": np.array([1, 1, 2, 2], np.float32)},
    )
    module = onnx2torch.convert(model)
    assert isinstance(module, torch.fx.GraphModule)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=False).eval()
    with torch.no_grad():
        y = reloaded(torch.from_numpy(x)).numpy()
    (expected,) = run_ort(model, {"x": x})
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(run_torch(model, {"x": x})[0], y)
