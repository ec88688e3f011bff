"""Shared pieces of the pass tests: a real exporter model, and comparisons."""

import functools
import io
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from onnx2pt_py import parity

ATOL, RTOL = 1e-4, 1e-3


@functools.cache
def _squeezenet_bytes(opset):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.squeezenet1_0(weights=None).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.randn(1, 3, 64, 64),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    return buffer.getvalue()


def squeezenet(opset=13):
    """torchvision squeezenet1_0 at default initialisation, exported with the
    legacy exporter: its equal zero biases come deduplicated through Identity."""
    return onnx.load_from_string(_squeezenet_bytes(opset))


def ort_run(model, feeds):
    return parity.onnxruntime_session(model).run(None, feeds)


def torch_run(module, arrays):
    with torch.no_grad():
        out = module(*[torch.from_numpy(a) for a in arrays])
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    return [o.numpy() for o in out]


def feeds_for(model, batch, seed=0):
    """Random inputs for the model's declared (non-initializer) inputs, with
    every symbolic dim set to batch."""
    rng = np.random.default_rng(seed + batch)
    initializers = {i.name for i in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in value.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        feeds[value.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def assert_matches_ort(original, converted_torch, batches=(1, 3)):
    """The torch module's outputs equal onnxruntime's on the original model."""
    for batch in batches:
        feeds = feeds_for(original, batch)
        want = ort_run(original, feeds)
        got = torch_run(converted_torch, list(feeds.values()))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


def assert_same_interface(before, after):
    """Inputs (all of them, initializer-backed included) and outputs keep
    names, order and types, symbolic dims included."""

    def sig(values):
        return [(v.name, v.type.SerializeToString(deterministic=True)) for v in values]

    assert sig(after.graph.input) == sig(before.graph.input)
    assert sig(after.graph.output) == sig(before.graph.output)


def applied(pass_apply, model, **kwargs):
    """Run a pass, checking that it leaves its argument untouched."""
    before = model.SerializeToString(deterministic=True)
    out, counts = pass_apply(model, **kwargs)
    assert model.SerializeToString(deterministic=True) == before, "the pass modified its input"
    assert_same_interface(model, out)
    if counts:
        onnx.checker.check_model(out)
    return out, counts


def make_model(nodes, inputs, outputs, initializers=(), opset=13, ir_version=8):
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def tensor_info(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)
