"""Converters for ONNX ops and op versions onnx2torch 1.5.15 lacks.

Importing this package registers them in onnx2torch's own converter
registry, so `onnx2torch.convert` uses them and still returns an onnx2torch
GraphModule. Each module holds one op family; `versions` aliases existing
converters (onnx2torch's and this package's, which it imports first) to
schema versions whose semantics did not change, and never replaces a
registered one. Where onnx2torch's own converter computes something other
than the specification (TopK's order of ties) or refuses what it allows
(Clip's run-time bounds, LayerNormalization's statistics outputs), a family
module replaces it (REPLACED).
"""

# versions imports every op family module before it aliases, so importing it
# registers everything.
from . import versions  # noqa: F401
from ._common import ALREADY_TAKEN, REGISTERED, REPLACED

__all__ = ["ALREADY_TAKEN", "REGISTERED", "REPLACED"]
