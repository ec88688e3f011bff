"""Mutation testing of verification: does the check catch broken converters?

    mutate.py run WORK [--only NAME ...] [--sample all|ci] [--mutations NAME ...]
                       [--weights default realistic] [--json FILE] [--doc FILE] [--min-catch-rate R]
    mutate.py table JSON --doc FILE     the tables again from a run's --json

For each model of the family suite and its edge models (tests/families.py),
converted as onnx2pt converts it, and then once per mutation (mutations.py)
at two sites (the first and the last node the mutation applies to), with
that one node converted wrongly. Each mutant is checked as a conversion is
(job.ConversionJob: probe, save, reload, verify), and judged by an oracle:

  matters    on the check's probes and on held-out ones (other seeds; normal,
             positive, uniform and edge inputs, at batch sizes 1 and 4), some
             output element differs from onnxruntime by more than
             atol + rtol * S beyond what the unmutated conversion differs
             there, at the check's tolerances; S is the largest magnitude of
             the element's slice: the elements sharing its index along one
             axis past the batch, the smallest such of at least
             parity.MIN_SLICE elements (fewer hold no scale of their own:
             the logits of one image), else the whole output's
  caught     the check failed the mutant (or its conversion failed)
  missed     it matters and the check passed it

Every unmutated conversion must pass the check, at both weight sets (the
suite's, and trained-looking ones for the torch models). Besides the check
in force, candidate rules and probe sets are measured on the same outputs
(OPTIONS), so the table says what each would have caught.

Exit status 1 when an unmutated conversion fails, or when the check catches
less than --min-catch-rate of the mutants that matter.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import families  # noqa: E402
import mutations  # noqa: E402

from onnx2pt_py import parity, probes  # noqa: E402
from onnx2pt_py.errors import first_line  # noqa: E402
from onnx2pt_py.job import ConversionJob  # noqa: E402

BATCH_SIZES = [1, 4]  # onnx2pt's default
ATOL, RTOL = 1e-5, 1e-4  # onnx2pt's defaults
HELD_OUT_SEED = 1000
# CI's fixed sample: the edge models, the hand-written graphs and one
# network of each kind from each exporter family (a few minutes).
CI_SAMPLE = [s.name for s in families.edge_specs()] + [
    "keras_nhwc",
    "paddle_constants",
    "resnet18_legacy17",
    "mobilenet_v3_small_dynamo",
    "qkv_block_dynamo",
    "token_embedding_legacy14",
]


def rule(name, **kwargs):
    return name, kwargs


# Rules measured beside the one in force: parity.compare's parameters.
RULES = [
    rule("one scale per output", floor=1.0),
    rule("slice, floor 0", floor=0.0),
    rule("slice, floor 1e-3", floor=1e-3),
    rule("slice, floor 1e-2", floor=1e-2),
    rule("slice, floor 1e-1", floor=1e-1),
]
# Probe sets measured: "random" as before (N(0, 1) everywhere), "domain" (inputs
# of Log, Sqrt, ... drawn positive; resampled when outputs are mostly
# non-finite), "domain+edge" (and the edge probe): the check's.
PROBE_SETS = ("random", "domain", "domain+edge")


def sites(candidates):
    """The first and the last node a mutation applies to."""
    if not candidates:
        return []
    return [candidates[0]] if len(candidates) == 1 else [candidates[0], candidates[-1]]


class Model:
    """One model's conversion, its probes and the oracle's inputs, made
    once; then one mutant at a time."""

    def __init__(self, entry, work):
        self.entry, self.work = entry, work
        self.job = ConversionJob(
            entry["path"], batch_sizes=BATCH_SIZES, atol=ATOL, rtol=RTOL, **(entry.get("verify") or {})
        )
        self.job.find_divergence = lambda model: None  # not needed here, and slow
        self.job.load()
        self.job.normalise()
        job = self.job
        check = [inputs for _, inputs in job.probes()]
        kinds = job._probe_kinds
        sets = {
            "random": [job.random_inputs(b, job.seed + b, "normal", domain=False) for b in BATCH_SIZES],
            "domain": [x for x, k in zip(check, kinds) if k != "edge"],
            "domain+edge": check,
        }
        held_out = []
        for i, kind in enumerate(probes.KINDS):
            for b in BATCH_SIZES:
                held_out.append(job.random_inputs(b, HELD_OUT_SEED * (i + 1) + b, kind, domain=False))
        held_out += [
            job.random_inputs(b, HELD_OUT_SEED * 9 + b, "normal", edge=True, domain=False) for b in BATCH_SIZES
        ]
        self.inputs = dict(sets)
        self.inputs["held-out"] = held_out
        self.expected = {name: self._expected(inputs) for name, inputs in self.inputs.items()}
        self.names = [o["name"] for o in job.info["outputs"]]
        self.baseline = None

    def _expected(self, inputs):
        out = []
        for x in inputs:
            try:
                out.append(self.job.expected_for([x])[0])
            except Exception:  # an edge input onnxruntime refuses: not a probe
                out.append(None)
        return out

    def outputs(self, model):
        out = {}
        for name, inputs in self.inputs.items():
            results = []
            for x, want in zip(inputs, self.expected[name]):
                try:
                    results.append(None if want is None else ConversionJob.run_torch(model, x))
                except Exception:
                    results.append("error")
            out[name] = results
        return out

    def check(self):
        """The conversion as onnx2pt checks it: (passed, reason)."""
        job = self.job
        try:
            job.torch_model = None
            job.convert()
            job.probe()
            with tempfile.TemporaryDirectory(dir=self.work) as tmp:
                path = os.path.join(tmp, "m.pt")
                saved = job.save(path, None, {})
                result = job.verify(path, saved["sha256"])
        except Exception as e:
            return False, f"conversion failed: {first_line(e)}"[:200]
        if result["passed"]:
            return True, ""
        return False, result.get("reason") or "; ".join(
            f"{o['name']} rel {o['max_rel_diff']}" for o in result["outputs"] if not o["within_tolerance"]
        )

    def options(self, outputs):
        """Whether each candidate rule passes outputs on each probe set."""
        out = {}
        for probe_set in PROBE_SETS:
            got, want = outputs[probe_set], self.expected[probe_set]
            pairs = [(w, g) for w, g in zip(want, got) if w is not None]
            for name, kwargs in RULES:
                if any(isinstance(g, str) for _, g in pairs):
                    out[f"{probe_set} / {name}"] = False
                    continue
                try:
                    stats = parity.compare_all(
                        self.names, [w for w, _ in pairs], [g for _, g in pairs], ATOL, RTOL, **kwargs
                    )
                    passed = all(s["within_tolerance"] for s in stats)
                except Exception:
                    passed = False
                if probe_set != "random" and passed:  # the share rule goes with the new probes
                    passed = not self.job._unverified(stats)
                out[f"{probe_set} / {name}"] = passed
        return out

    def matters(self, outputs):
        """Whether the mutant's outputs differ from onnxruntime beyond the
        oracle's tolerance more than the unmutated conversion's do."""
        for name in self.inputs:
            for want, got, base in zip(self.expected[name], outputs[name], self.baseline[name]):
                if want is None or base is None or isinstance(base, str):
                    continue
                if isinstance(got, str):
                    return True
                for w, g, b in zip(want, got, base):
                    if differs(np.asarray(w), np.asarray(g), np.asarray(b), self.job.atol, self.job.rtol):
                        return True
        return False


def differs(want, got, base, atol, rtol):
    """atol, rtol: the model's (onnx2pt's defaults, raised for a 16-bit
    model to what its precision can tell apart)."""
    if want.shape != got.shape or want.dtype != got.dtype:
        return True
    if want.dtype.kind != "f":
        return not np.array_equal(got, base) and not np.array_equal(got, want)
    want, got, base = (a.astype(np.float64) for a in (want, got, base))
    finite = np.isfinite(want)
    same_nonfinite = (np.isfinite(got) == np.isfinite(base)) & (
        np.isfinite(got) | (np.isnan(got) & np.isnan(base)) | (got == base)
    )
    if not np.all(same_nonfinite):
        return True
    magnitude = np.where(finite, np.abs(want), 0.0)
    scale = parity.slice_scale(magnitude, floor=0.0)
    both = finite & np.isfinite(got) & np.isfinite(base)
    excess = np.abs(got - want)[both] - np.abs(base - want)[both]
    return bool(np.any(excess > atol + rtol * scale[both]))


def run_model(entry, work, mutation_names, log):
    start = time.perf_counter()
    model = Model(entry, work)
    passed, reason = model.check()
    model.baseline = model.outputs(model.job.torch_model)
    record = {
        "name": entry["name"],
        "weights": entry["weights"],
        "baseline": {"passed": passed, "reason": reason, "options": model.options(model.baseline)},
        "probe_kind": model.job.probe_kind,
        "mutants": [],
    }
    log(f"{entry['name']} ({entry['weights']}): unmutated {'passes' if passed else 'FAILS: ' + reason}")
    for name in mutation_names:
        mutation = mutations.BY_NAME[name]
        for target, op in sites(mutations.candidates(mutation, model.job.normalised)):
            with mutations.installed(mutation, target):
                caught_reason = model.check()
            torch_model = model.job.torch_model
            if torch_model is None:  # conversion itself failed: refused, and that matters
                outputs, matters = None, True
            else:
                outputs = model.outputs(torch_model)
                matters = model.matters(outputs)
            mutant = {
                "mutation": name,
                "node": target,
                "op": op,
                "caught": not caught_reason[0],
                "reason": caught_reason[1],
                "matters": matters,
                "options": model.options(outputs) if outputs else dict.fromkeys(model.options(model.baseline), False),
            }
            record["mutants"].append(mutant)
            if matters and not mutant["caught"]:
                log(f"  MISSED {name} at {target} ({op})")
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def tally(records, key=None):
    """(caught, matters, missed, didn't matter) over all mutants, for the
    check in force (key None) or an option."""
    caught = matters = missed = idle = 0
    for r in records:
        for m in r["mutants"]:
            hit = m["caught"] if key is None else not m["options"][key]
            if m["matters"]:
                matters += 1
                caught += hit
                missed += not hit
            else:
                idle += 1
    return caught, matters, missed, idle


def false_failures(records, key=None):
    return [
        f"{r['name']} ({r['weights']})"
        for r in records
        if not (r["baseline"]["passed"] if key is None else r["baseline"]["options"][key])
    ]


def document(records, seconds):
    caught, matters, missed, idle = tally(records)
    lines = [
        "# Verification, measured: mutation testing",
        "",
        "Generated by `go tool task mutate` (python/tools/mutate.py); do not edit by hand.",
        "",
        f"{len(records)} conversions (the model-family suite and its edge models, at the suite's weights and,",
        "for the torch-exported ones, at trained-looking weights), each converted once as it is and once per",
        "mutant: one node converted wrongly on purpose (python/tools/mutations.py), at the first and the last",
        f"node each mutation applies to. {sum(len(r['mutants']) for r in records)} mutants in {seconds:.0f} s.",
        "",
        f"**The check caught {caught} of the {matters} mutants that matter ({100 * caught / max(matters, 1):.1f}%)**;"
        f" {idle} mutants did not matter. Unmutated conversions that failed: "
        f"{len(false_failures(records))} of {len(records)}.",
        "",
        "A mutant *matters* when some output element, on the check's probes or on held-out ones, differs",
        "from onnxruntime by more than atol + rtol·S beyond what the unmutated conversion differs there, at",
        f"onnx2pt's default tolerances (atol {ATOL:g}, rtol {RTOL:g}) and batch sizes ({', '.join(map(str, BATCH_SIZES))}).",
        "S is the largest magnitude among the elements sharing its index along one axis past the batch, the",
        f"smallest such of at least {parity.MIN_SLICE} elements, else the output's largest (the verification's",
        "slices without its floor). Held-out probes: other seeds; normal, positive, uniform and edge inputs.",
        "",
        "## Rules and probes compared",
        "",
        "Each option judged on the same mutants' outputs: caught of those that matter, and unmutated",
        "conversions it fails.",
        "",
        "| probes | rule | caught | missed | unmutated failed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in records[0]["baseline"]["options"] if records else []:
        c, m, miss, _ = tally(records, key)
        probe_set, rule_name = key.split(" / ")
        lines.append(
            f"| {probe_set} | {rule_name} | {c} of {m} ({100 * c / max(m, 1):.1f}%) | {miss} "
            f"| {len(false_failures(records, key))} |"
        )
    lines += ["", "## Per mutation", "", "| mutation | what it does | caught | missed | didn't matter |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for mutation in mutations.MUTATIONS:
        ms = [m for r in records for m in r["mutants"] if m["mutation"] == mutation.name]
        c = sum(m["caught"] and m["matters"] for m in ms)
        miss = sum(m["matters"] and not m["caught"] for m in ms)
        lines.append(
            f"| {mutation.name} | {mutation.description} | {c} | {miss} | {sum(not m['matters'] for m in ms)} |"
        )
    lines += ["", "## Per model", "", "| model | weights | probes | unmutated | caught | missed | didn't matter |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for r in records:
        c, m, miss, idle = tally([r])
        base = "passes" if r["baseline"]["passed"] else "fails: " + r["baseline"]["reason"][:60]
        lines.append(f"| {r['name']} | {r['weights']} | {r['probe_kind']} | {base} | {c} | {miss} | {idle} |")
    lines += ["", "## Per model and mutation", ""]
    lines += [
        "One mark per site (the first and the last node the mutation applies to): `c` caught, `M` missed,",
        "`-` didn't matter; empty where the model has no node the mutation applies to.",
        "",
    ]
    names = [m.name for m in mutations.MUTATIONS]
    lines.append("| model | weights | " + " | ".join(names) + " |")
    lines.append("| --- | --- |" + " --- |" * len(names))
    for r in records:
        cells = []
        for name in names:
            marks = [
                "c" if m["caught"] and m["matters"] else "M" if m["matters"] else "-"
                for m in r["mutants"]
                if m["mutation"] == name
            ]
            cells.append("".join(marks))
        lines.append(f"| {r['name']} | {r['weights']} | " + " | ".join(cells) + " |")
    missed_list = [(r, m) for r in records for m in r["mutants"] if m["matters"] and not m["caught"]]
    if missed_list:
        lines += ["", "## Missed", "", "| model | weights | mutation | node | op |", "| --- | --- | --- | --- | --- |"]
        for r, m in missed_list:
            lines.append(f"| {r['name']} | {r['weights']} | {m['mutation']} | `{m['node']}` | {m['op']} |")
    return "\n".join(lines) + "\n"


def build(work, only, weights):
    entries = []
    names = [s.name for s in families.specs() if s.expect == "converts"]
    names = [n for n in names if only is None or n in only]
    for kind in weights:
        chosen = names
        if kind == "realistic":  # only the torch models have weights to make realistic
            chosen = [s.name for s in families.specs() if s.name in names and s.torch_factory is not None]
        if not chosen:
            continue
        folder = os.path.join(work, kind)
        index = os.path.join(folder, "index.json")
        built = {}
        if os.path.exists(index):
            with open(index) as f:
                built = {e["name"]: e for e in json.load(f) if os.path.exists(e["path"])}
        missing = [n for n in chosen if n not in built]
        if missing:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for e in families.build(folder, only=missing, realistic=kind == "realistic"):
                    built[e["name"]] = e
            with open(index, "w") as f:
                json.dump(list(built.values()), f, indent=2)
        entries += [{**built[n], "weights": kind} for n in chosen]
    return entries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="write the Markdown tables again from a run's --json")
    table.add_argument("json")
    table.add_argument("--doc", required=True)
    run = sub.add_parser("run")
    run.add_argument("work")
    run.add_argument("--only", nargs="+", help="these models alone")
    run.add_argument("--sample", choices=["all", "ci"], default="all", help="ci: CI's fixed sample (CI_SAMPLE)")
    run.add_argument(
        "--mutations", nargs="+", default=[m.name for m in mutations.MUTATIONS], choices=list(mutations.BY_NAME)
    )
    run.add_argument("--weights", nargs="+", default=["default", "realistic"], choices=["default", "realistic"])
    run.add_argument("--json", help="write every mutant's result here")
    run.add_argument("--doc", help="write the Markdown tables here")
    run.add_argument("--min-catch-rate", type=float, default=0.0, help="fail below this share of mutants that matter")
    args = parser.parse_args(argv)
    if args.command == "table":
        with open(args.json) as f:
            saved = json.load(f)
        with open(args.doc, "w") as f:
            f.write(document(saved["records"], saved["seconds"]))
        return 0

    os.makedirs(args.work, exist_ok=True)
    import torch

    torch.manual_seed(0)
    start = time.perf_counter()
    entries = build(args.work, CI_SAMPLE if args.sample == "ci" and not args.only else args.only, args.weights)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in entries:
            records.append(run_model(entry, args.work, args.mutations, log))
    seconds = time.perf_counter() - start
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"records": records, "seconds": seconds}, f, indent=1)
    text = document(records, seconds)
    if args.doc:
        with open(args.doc, "w") as f:
            f.write(text)
        print(next(line for line in text.splitlines() if line.startswith("**")))
        print(f"tables in {args.doc}")
    else:
        print(text)
    caught, matters, _, _ = tally(records)
    rate = caught / matters if matters else 1.0
    failed = false_failures(records)
    if failed:
        log(f"unmutated conversions failed the check: {', '.join(failed)}")
    if rate < args.min_catch_rate:
        log(f"catch rate {rate:.3f} is below {args.min_catch_rate}")
    return 1 if failed or rate < args.min_catch_rate else 0


if __name__ == "__main__":
    sys.exit(main())
