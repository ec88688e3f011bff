"""How far torch and onnxruntime drift apart on correct models, and how far a
model with one wrong weight drifts: the numbers behind verification's
tolerances.

    tolerance_study.py [--work DIR] [--only NAME ...] [--json FILE]

For each torch-exported model of the family suite (python/tests/families.py),
at its default initialisation and with trained-looking weights and outputs at
a trained model's magnitude (families.make_realistic), on the probes a
conversion uses (batch sizes 1 and 3):

  eager      the torch module that was exported, against onnxruntime on its export
  converted  onnx2pt's conversion of the export (when it converts), against the same
  perturbed  the eager module with one weight element moved by 1%, 10% or 100%
             of its layer's weight std (first, middle and last layer; three
             elements each), against the same

Every comparison is summarised by the largest absolute difference, the
largest elementwise relative difference, and the largest absolute difference
in units of the output's magnitude (max |expected|, and its RMS), then judged
by candidate rules. Models written with onnx.helper have no eager module and
are measured through their conversion only.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import families  # noqa: E402

from onnx2pt_py.errors import UserError  # noqa: E402
from onnx2pt_py.job import ConversionJob  # noqa: E402

BATCH_SIZES = [1, 3]
FACTORS = (0.01, 0.1, 1.0)
ELEMENTS_PER_LAYER = 3


def rule_elementwise(atol, rtol):
    """Today's rule: |d| <= atol + rtol * |e| at every element."""

    def passes(d, e):
        return bool(np.all(d <= atol + rtol * np.abs(e)))

    passes.__name__ = f"elementwise atol={atol:g} rtol={rtol:g}"
    return passes


def rule_of_output(atol, rtol, scale="max"):
    """|d| <= atol + rtol * S at every element, S the output's magnitude in
    this probe (max |e|, or its RMS): rounding differences scale with the
    output as a whole, not with each element, and near-zero elements of a
    large output get them too."""

    def passes(d, e):
        s = float(np.max(np.abs(e))) if scale == "max" else float(np.sqrt(np.mean(np.square(e))))
        return bool(np.all(d <= atol + rtol * s))

    passes.__name__ = f"of output {scale} atol={atol:g} rtol={rtol:g}"
    return passes


RULES = [
    rule_elementwise(1e-5, 1e-4),  # today's defaults
    rule_elementwise(1e-4, 1e-3),  # the family suite's
    rule_of_output(1e-5, 2e-4),
    rule_of_output(1e-5, 1e-4),
    rule_of_output(1e-5, 5e-5),
    rule_of_output(1e-5, 1e-5),
    rule_of_output(1e-5, 1e-4, "rms"),
]


def diffs(expected, actual, probes):
    """[(batch, abs diff, expected)] per probe and output, float64, finite elements."""
    pairs = []
    for (batch, _), want_outputs, got_outputs in zip(probes, expected, actual):
        for want, got in zip(want_outputs, got_outputs):
            want, got = np.asarray(want, np.float64), np.asarray(got, np.float64)
            finite = np.isfinite(want) & np.isfinite(got)
            pairs.append((batch, np.abs(got - want)[finite], want[finite]))
    return pairs


def measure(pairs, per_batch=True):
    out = {"max_abs": 0.0, "max_rel": 0.0, "of_max": 0.0, "of_rms": 0.0, "magnitude": 0.0}
    for _, d, e in pairs:
        if not d.size:
            continue
        peak, rms = float(np.max(np.abs(e))), float(np.sqrt(np.mean(np.square(e))))
        out["max_abs"] = max(out["max_abs"], float(d.max()))
        out["max_rel"] = max(out["max_rel"], float(np.max(d / np.maximum(np.abs(e), np.finfo(np.float32).tiny))))
        out["of_max"] = max(out["of_max"], float(d.max()) / peak if peak else 0.0)
        out["of_rms"] = max(out["of_rms"], float(d.max()) / rms if rms else 0.0)
        out["magnitude"] = max(out["magnitude"], peak)
    out["passes"] = {r.__name__: all(r(d, e) for _, d, e in pairs) for r in RULES}
    # The same outputs 16 times larger: scaling a model's last layer by a
    # power of two scales every result, and every rounding error, exactly.
    out["passes_x16"] = {r.__name__: all(r(16 * d, 16 * e) for _, d, e in pairs) for r in RULES}
    if per_batch:
        batches = sorted({b for b, _, _ in pairs})
        out["by_batch"] = {b: measure([p for p in pairs if p[0] == b], per_batch=False) for b in batches}
        for stats in out["by_batch"].values():
            del stats["passes"], stats["passes_x16"]
    return out


def run_module(module, probes):
    return [ConversionJob.run_torch(module, inputs) for _, inputs in probes]


def weight_layers(module):
    import torch

    return [
        (name, m.weight)
        for name, m in module.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))
    ]


def perturbations(spec, realistic, probes, expected, rng):
    """One weight element at a time, moved by FACTORS x the layer's std."""
    import torch

    model, _, _ = families.torch_module(spec, realistic)
    layers = weight_layers(model)
    chosen = {"first": 0, "middle": len(layers) // 2, "last": len(layers) - 1}
    results = []
    for where, index in chosen.items():
        name, weight = layers[index]
        std = float(weight.detach().std())
        flat = weight.detach().view(-1)
        for element in rng.choice(flat.numel(), size=min(ELEMENTS_PER_LAYER, flat.numel()), replace=False):
            for factor in FACTORS:
                original = float(flat[element])
                with torch.no_grad():
                    flat[element] = original + factor * std
                stats = measure(diffs(expected, run_module(model, probes), probes), per_batch=False)
                with torch.no_grad():
                    flat[element] = original
                results.append({"layer": name, "where": where, "element": int(element), "factor": factor, **stats})
    return results


def study(spec, realistic, work, rng):
    entry = {"name": spec.name, "realistic": realistic}
    start = time.perf_counter()
    (built,) = families.build(os.path.join(work, "realistic" if realistic else "default"), [spec.name], realistic)
    # Tolerances loose enough that normalisation's own check (onnxruntime on
    # the rewritten graph against the original) does not stop the study.
    job = ConversionJob(built["path"], batch_sizes=BATCH_SIZES, atol=1e-4, rtol=1e-3, **(built.get("verify") or {}))
    job.load()
    probes = job.probes()
    expected = job.expected()
    torch_exported = spec.torch_factory is not None
    if torch_exported:
        model, _, _ = families.torch_module(spec, realistic)
        entry["eager"] = measure(diffs(expected, run_module(model, probes), probes))
    try:
        job.normalise()
        job.convert()
        entry["passes"] = [p["name"] for p in job.plan["passes"]]
        if job.plan["check"]:
            entry["normalisation_check"] = [
                {k: o[k] for k in ("max_abs_diff", "max_rel_diff")} for o in job.plan["check"]["outputs"]
            ]
        entry["converted"] = measure(diffs(expected, run_module(job.torch_model, probes), probes))
    except Exception as e:  # a model onnx2pt cannot convert (yet) is still measured eagerly
        kind = "" if isinstance(e, UserError) else f"{type(e).__name__}: "
        entry["convert_error"] = kind + str(e).splitlines()[0][:300]
    if torch_exported:
        entry["perturbed"] = perturbations(spec, realistic, probes, expected, rng)
    entry["seconds"] = round(time.perf_counter() - start, 1)
    return entry


def table(entries):
    lines = [
        "| model | weights | converts (passes) | eager max abs | eager max rel | eager abs/max|e| | converted max abs | converted max rel | converted abs/max|e| | output max |e| |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        eager, conv = e.get("eager", {}), e.get("converted", {})
        converts = f"yes ({', '.join(e['passes']) or 'none'})" if "converted" in e else "no: " + e["convert_error"][:80]
        magnitude = (eager or conv).get("magnitude", float("nan"))
        lines.append(
            f"| {e['name']} | {'realistic' if e['realistic'] else 'default'} | {converts} "
            f"| {fmt(eager, 'max_abs')} | {fmt(eager, 'max_rel')} | {fmt(eager, 'of_max')} "
            f"| {fmt(conv, 'max_abs')} | {fmt(conv, 'max_rel')} | {fmt(conv, 'of_max')} | {magnitude:.3g} |"
        )
    return "\n".join(lines)


def batch_table(entries):
    """The suite's own weights: whether each model converts, and the
    converted model's differences from onnxruntime at each batch size (the
    eager module's where it does not convert)."""
    batches = sorted({b for e in entries for k in ("converted", "eager") for b in e.get(k, {}).get("by_batch", {})})
    head = " | ".join(f"b={b} max abs | b={b} max rel | b={b} abs/max|e|" for b in batches)
    lines = [f"| model | converts | passes | measured | {head} |", "| --- " * (4 + 3 * len(batches)) + "|"]
    for e in entries:
        if e["realistic"]:
            continue
        kind = "converted" if "converted" in e else "eager"
        stats = e.get(kind, {}).get("by_batch", {})
        cells = " | ".join(
            f"{fmt(stats.get(b, {}), 'max_abs')} | {fmt(stats.get(b, {}), 'max_rel')} | {fmt(stats.get(b, {}), 'of_max')}"
            for b in batches
        )
        converts = "yes" if "converted" in e else "no"
        passes = ", ".join(e.get("passes", [])) or ("none" if "converted" in e else e["convert_error"][-90:])
        lines.append(f"| {e['name']} | {converts} | {passes} | {kind} | {cells} |")
    return "\n".join(lines)


def fmt(stats, key):
    return f"{stats[key]:.2e}" if key in stats else "—"


def rule_summary(entries):
    """Per rule: the correct comparisons it fails (as measured, and with
    outputs 16 times larger), and the largest single-weight perturbation
    it lets pass, in units of the output's magnitude."""
    lines = [
        "| rule | false failures | false failures, outputs x16 | "
        + " | ".join(f"caught at {f:g} std" for f in FACTORS)
        + " | largest missed effect (abs/max|e|) |",
        "| --- " * (4 + len(FACTORS)) + "|",
    ]
    correct = [(e, s) for e in entries for k in ("eager", "converted") if (s := e.get(k))]
    perturbed = [p for e in entries for p in e.get("perturbed", [])]
    for rule in RULES:
        name = rule.__name__
        false = sorted({label(e) for e, s in correct if not s["passes"][name]})
        false16 = sorted({label(e) for e, s in correct if not s["passes_x16"][name]})
        cells = []
        for factor in FACTORS:
            runs = [p for p in perturbed if p["factor"] == factor]
            cells.append(f"{sum(not p['passes'][name] for p in runs)}/{len(runs)}")
        missed = max((p["of_max"] for p in perturbed if p["passes"][name]), default=0.0)
        lines.append(
            f"| {name} | {len(false)}/{len({label(e) for e, _ in correct})} {brief(false)} "
            f"| {len(false16)} {brief(false16)} | " + " | ".join(cells) + f" | {missed:.2e} |"
        )
    return "\n".join(lines)


def label(entry):
    return entry["name"] + ("/realistic" if entry["realistic"] else "")


def brief(names, limit=4):
    return ", ".join(names[:limit]) + (" …" if len(names) > limit else "")


def perturbation_summary(entries):
    """Per factor and layer position: how large the smallest and median
    effect is, in units of the output magnitude, beside the noise."""
    lines = ["| factor | layer | min effect abs/max|e| | median | max |", "| --- | --- | --- | --- | --- |"]
    for factor in FACTORS:
        for where in ("first", "middle", "last"):
            values = [
                p["of_max"]
                for e in entries
                for p in e.get("perturbed", [])
                if p["factor"] == factor and p["where"] == where
            ]
            if values:
                lines.append(
                    f"| {factor:g} | {where} | {np.min(values):.2e} | {np.median(values):.2e} | {np.max(values):.2e} |"
                )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="where to write the models (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", help="only these family models")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--deep", action="store_true", help="also resnet50 at 224x224 and a 12-block encoder (slow)")
    args = parser.parse_args(argv)
    candidates = families.specs() + (families.deep_specs() if args.deep else [])
    specs = [s for s in candidates if s.expect == "converts" and (not args.only or s.name in args.only)]
    rng = np.random.default_rng(0)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        for spec in specs:
            for realistic in (False, True):
                if realistic and not spec.torch_factory is not None:
                    continue  # hand-written graphs have one set of weights
                entry = study(spec, realistic, work, rng)
                entries.append(entry)
                print(f"{spec.name}{' (realistic)' if realistic else ''}: {entry['seconds']}s", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(entries, f, indent=1)
    print(batch_table(entries))
    print()
    print(table(entries))
    print()
    print(rule_summary(entries))
    print()
    print(perturbation_summary(entries))


if __name__ == "__main__":
    main()
