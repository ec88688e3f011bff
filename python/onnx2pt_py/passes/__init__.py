"""Graph normalisation passes that make exporters' ONNX graphs convertible by
onnx2torch.

Each module has ``apply(model) -> (new_model, counts)``: the argument is never
modified, graph inputs and outputs keep their names, order and types, and
counts says what changed (empty: nothing to do, and the model may come back
as it was given).

Order matters where one pass feeds another: constants first (version_converter
needs constant Reduce axes and Split sizes, and Constant nodes at opset 19+
have no converter), then opset, then auto_pad and reshape_allowzero, which
read attributes as the target opset defines them.
"""

from __future__ import annotations

import onnx

from . import auto_pad, constants, opset, reshape_allowzero

PASSES = (
    ("constants", constants.apply),
    ("opset", opset.apply),
    ("auto_pad", auto_pad.apply),
    ("reshape_allowzero", reshape_allowzero.apply),
)


def apply_all(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, dict[str, int]]]:
    """Run every pass in order; counts by pass name, passes with none left out."""
    report = {}
    for name, run in PASSES:
        model, counts = run(model)
        if counts:
            report[name] = counts
        if name == "opset" and counts:
            # Adapters add Constant nodes (Resize's roi, Reduce axes going up).
            model, again = constants.apply(model)
            for key, value in again.items():
                report.setdefault("constants", {})
                report["constants"][key] = report["constants"].get(key, 0) + value
    return model, report
