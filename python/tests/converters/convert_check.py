"""Helpers for the converter tests: build a one-op ONNX model, run it through
onnx2torch (with onnx2pt_py.converters registered) and through onnxruntime or
the ONNX reference evaluator, and compare."""

import numpy as np
import onnx
import onnx2torch
import torch
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import onnx2pt_py.converters  # noqa: F401  (registers the converters)
from onnx2pt_py import parity

ATOL = 1e-5
RTOL = 1e-4


def ir_version_for(opset):
    """The IR version onnx released with the opset (onnxruntime refuses
    models whose IR version is older than the opset needs)."""
    for row in helper.VERSION_TABLE:
        if row[2] >= opset:
            return row[1]
    return helper.VERSION_TABLE[-1][1]


def make_model(nodes, inputs, outputs, opset, initializers=None, extra_opsets=None, shapes=None):
    """nodes: NodeProtos; inputs: {name: sample array} (their dtype and shape
    are declared, or the shape given in `shapes`, which may name symbolic
    dimensions); outputs: output names (declared as ONNX infers them);
    initializers: {name: array}."""
    shapes = shapes or {}
    if isinstance(nodes, onnx.NodeProto):
        nodes = [nodes]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info(
                name,
                helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype),
                shapes.get(name, np.asarray(value).shape),
            )
            for name, value in inputs.items()
        ],
        [onnx.ValueInfoProto(name=name) for name in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), name=k) for k, v in (initializers or {}).items()],
    )
    opsets = [helper.make_opsetid("", opset)] + list(extra_opsets or [])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ir_version_for(opset))
    if model.ir_version < 4:  # initializers had to be graph inputs too
        for initializer in model.graph.initializer:
            model.graph.input.append(
                helper.make_tensor_value_info(initializer.name, initializer.data_type, initializer.dims)
            )
    # Declare the outputs as ONNX infers them.
    inferred = {o.name: o.type for o in onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output}
    for output in model.graph.output:
        output.type.CopyFrom(inferred[output.name])
    return model


def run_ort(model, feeds):
    return parity.onnxruntime_session(model).run(None, feeds)


def run_reference(model, feeds):
    return ReferenceEvaluator(model).run(None, feeds)


def run_torch(model, feeds):
    module = onnx2torch.convert(model)
    module.eval()
    with torch.no_grad():
        initializers = {i.name for i in model.graph.initializer}
        names = [i.name for i in model.graph.input if i.name not in initializers]
        out = module(*[torch.from_numpy(np.asarray(feeds[name])) for name in names])
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in out]


def assert_same(expected, actual, atol=ATOL, rtol=RTOL):
    assert len(expected) == len(actual), f"{len(expected)} outputs expected, got {len(actual)}"
    for i, (want, got) in enumerate(zip(expected, actual)):
        want, got = np.asarray(want), np.asarray(got)
        assert want.dtype == got.dtype, f"output {i}: dtype {got.dtype}, expected {want.dtype}"
        assert want.shape == got.shape, f"output {i}: shape {got.shape}, expected {want.shape}"
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, equal_nan=True, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"output {i}")


def check(model, feeds, reference=False, atol=ATOL, rtol=RTOL):
    """Convert and compare with onnxruntime, or with the ONNX reference
    evaluator where onnxruntime lacks the kernel (callers say why)."""
    if all(o.type.tensor_type.HasField("shape") for o in model.graph.output):
        # (the checker insists on a shape, which inference leaves out where
        # the output rank depends on an input's value)
        onnx.checker.check_model(model)
    expected = run_reference(model, feeds) if reference else run_ort(model, feeds)
    actual = run_torch(model, feeds)
    assert_same(expected, actual, atol=atol, rtol=rtol)
    return actual


def random(shape, dtype=np.float32, seed=0, low=None, high=None):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
        return x.astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) > 0.5
    info = np.iinfo(dtype)
    low = info.min if low is None else low
    high = info.max if high is None else high
    return rng.integers(low, high, size=shape, dtype=dtype, endpoint=True)
