"""Graph normalisation: the passes a model needs before onnx2torch can
convert it, chosen by the pre-flight.

Passes run in a fixed order, and only while the pre-flight finds nodes
that fail. A pass is kept unless it makes more nodes fail (one pass can
prepare for the next: folded constants let the opset adapters work), and
if the passes together fix nothing, the graph stays as the user wrote it;
a model that converts as it is is never rewritten. Whether the rewritten graph still computes the same is
checked by the caller, under onnxruntime, before conversion goes on.
"""

import logging

from . import passes, preflight
from .errors import first_line

log = logging.getLogger("onnx2pt.normalise")


def plan(model):
    """Returns the model to convert and what happened: every node the
    pre-flight found failing in the original (each with "fixed_by": the
    pass that fixed it, or None), the passes kept (name, changes, how many
    nodes each fixed) and the nodes still failing afterwards."""
    original = model
    failures = preflight.check(model)
    remaining = failures
    applied = []
    for name, apply in passes.PASSES:  # in their order: see passes/__init__.py
        if not remaining:
            break
        try:
            candidate, changes = apply(model)
            if name == "opset" and changes:
                # Version adapters add Constant nodes (Resize's roi, Reduce
                # axes going up): fold them as the constants pass would.
                candidate, folded = passes.constants.apply(candidate)
                changes = {**changes, **{f"constants_{k}": v for k, v in folded.items()}}
        except Exception as e:  # a pass that cannot handle a graph is skipped, not fatal
            log.warning("pass %s skipped: %s: %s", name, type(e).__name__, first_line(e))
            continue
        if not changes:
            continue
        after = preflight.check(candidate)
        if len(after) > len(remaining):
            log.info("pass %s changed %s but made more nodes fail; not kept", name, changes)
            continue
        fixed = {f["node"] for f in remaining} - {f["node"] for f in after}
        for f in failures:
            if f["node"] in fixed and not f.get("fixed_by"):
                f["fixed_by"] = name
        applied.append({"name": name, "changes": changes, "fixed": len(remaining) - len(after)})
        model, remaining = candidate, after
    if applied and len(remaining) >= len(failures):
        log.info("normalisation fixed no node; the graph stays as it is")
        model, applied, remaining = original, [], failures
        for f in failures:
            f.pop("fixed_by", None)
    for f in failures:
        f.setdefault("fixed_by", None)
    return model, {"failures": failures, "passes": applied, "remaining": remaining}


def describe_failures(failures, limit=3):
    """A one-line list of failing nodes: 'Attention node "attn" (opset 23):
    NotImplementedError: …; and 2 more'."""
    parts = []
    for f in failures[:limit]:
        where = f'{f["op"]} node "{f["node"]}"' if f["node"] else "the model"
        domain = "" if f["domain"] == "ai.onnx" else f" in domain {f['domain']}"
        parts.append(f"{where}{domain} (opset {f['opset']}): {f['reason']}")
    more = len(failures) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
