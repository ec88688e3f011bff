"""Find the first node where a converted model parts from onnxruntime.

The intermediate tensors of both sides are lined up by their ONNX names:
onnxruntime exposes them as extra graph outputs, and onnx2torch names each
module after its node and records the node's output names (its
attach_onnx_mapping). Nodes are compared in the graph's (topological)
order, so the first one beyond tolerance is where the difference starts.
"""

import numpy as np

from . import parity, preflight


def mappings(torch_model):
    """Module name -> ONNX output names, from a model converted with
    attach_onnx_mapping=True; the attributes are removed, so the saved model
    is what onnx2torch makes without them."""
    out = {}
    for name, module in torch_model.named_modules():
        mapping = module.__dict__.pop("onnx_mapping", None)
        if mapping is not None:
            out[name] = tuple(mapping.outputs)
    return out


def torch_intermediates(torch_model, outputs_of, inputs):
    """ONNX value name -> array, for every module output of one forward."""
    import torch
    import torch.fx

    values = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            names = outputs_of.get(n.target) if n.op == "call_module" else None
            if names:
                results = result if isinstance(result, (tuple, list)) else (result,)
                for name, value in zip(names, results):
                    if name and isinstance(value, torch.Tensor):
                        values[name] = value.detach().numpy()
            return result

    with torch.no_grad():
        Recorder(torch_model).run(*[torch.from_numpy(np.asarray(x)) for x in inputs])
    return values


def onnxruntime_intermediates(model, feed, names, optimize=True, folder=None):
    """ONNX value name -> array for the named values onnxruntime can expose
    (those whose type shape inference knows). folder: where the model's
    external data is (parity.onnxruntime_session)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    exposed = onnx.ModelProto()
    exposed.CopyFrom(inferred)
    present = {o.name for o in exposed.graph.output}
    wanted = [n for n in names if n in typed]
    for name in wanted:
        if name not in present:
            exposed.graph.output.append(typed[name])
    session = parity.onnxruntime_session(exposed, optimize, folder)
    out_names = [o.name for o in session.get_outputs()]
    return dict(zip(out_names, session.run(None, feed)))


def locate(model, torch_model, outputs_of, feed, atol, rtol, optimize=True, folder=None):
    """The first node, in graph order, whose output differs beyond tolerance:
    {"node", "op", "output", "max_abs_diff", "max_rel_diff", "compared"};
    None when every node that could be compared agrees. optimize and
    folder: as parity.onnxruntime_session's."""
    ours = torch_intermediates(torch_model, outputs_of, list(feed.values()))
    theirs = onnxruntime_intermediates(model, feed, list(ours), optimize, folder)
    compared = 0
    for index, node in enumerate(model.graph.node):
        for name in node.output:
            if name not in ours or name not in theirs:
                continue
            compared += 1
            stat = parity.new_stat(name)
            try:
                parity.compare(stat, np.asarray(theirs[name]), ours[name], atol, rtol)
            except Exception:  # shapes differ: that is a divergence too
                stat["within_tolerance"] = False
            if not stat["within_tolerance"]:
                summary = parity.summary([stat], atol, rtol)["outputs"][0]
                return {
                    "node": preflight.node_name(node, index),
                    "op": node.op_type,
                    "output": name,
                    "max_abs_diff": summary["max_abs_diff"],
                    "max_rel_diff": summary["max_rel_diff"],
                    "compared": compared,
                }
    return None
