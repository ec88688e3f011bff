"""One model's conversion, as steps the Go host calls and times one by one.

Each step returns plain data (dicts, lists, numbers, strings) that the host
decodes into its own structs; the heavy objects (the ONNX ModelProto, the
torch module, the probe tensors) stay here between steps.
"""

import importlib.metadata
import io
import os
import platform

import numpy as np

from . import artifacts as artifacts_mod
from . import exportable, locate, model_info, normalise, outputs, parity, probes
from . import source as source_mod
from .errors import UserError, first_line


def warm_up():
    """Import the heavy modules once, up front, so that per-model timings
    measure the model and not the interpreter's start."""
    import onnx2torch  # noqa: F401  (imports torch and onnx)
    import onnxruntime  # noqa: F401


def versions():
    out = {"python": platform.python_version()}
    for package in ("torch", "onnx", "onnx2torch", "onnxruntime", "onnxslim", "numpy", "torchvision"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


class ConversionJob:
    """One model through the steps load, normalise, convert, probe, save and
    verify. Probe inputs are random tensors shaped from the declared inputs
    (one probe per batch size), or the user's data (inputs, and optionally
    the expected outputs) when given."""

    def __init__(
        self,
        path,
        batch_sizes=(1, 4),
        dims=None,
        seed=0,
        atol=1e-5,
        rtol=1e-4,
        data=None,
        expected=None,
        locate=False,
        int_bounds=None,
        artifacts=(),
    ):
        self.path = path  # as the user gave it, for messages
        # Absolute paths: steps that read external tensors run in the model's
        # folder (model_info.in_folder).
        self.abspath = os.path.abspath(path)
        self.folder = model_info.folder_of(path)  # where its external data is
        self.int_bounds = dict(int_bounds or {})  # beats what the graph shows
        self.always_locate = bool(locate)
        self.atol, self.rtol = float(atol), float(rtol)
        self.batch_sizes = [int(b) for b in batch_sizes]
        self.dims = dict(dims or {})
        self.seed = int(seed)
        self.data = data and os.path.abspath(data)  # .npz or folder of .npy: the inputs of one probe
        self.expected_data = expected and os.path.abspath(expected)  # same, the expected outputs
        # Portable formats wanted.
        self.artifacts = [a for a in artifacts if a in artifacts_mod.FORMATS or a == source_mod.FORMAT]
        self._exported_ok = None  # whether the exported artifact worked, once tried
        self.onnx_model = None
        self.normalised = None
        self.plan = None
        self.info = None
        self.torch_model = None
        self._probes = None  # [(batch or None, [np.ndarray inputs])]
        self._probe_kinds = None  # per probe: a probes.KINDS, "edge" or "data"
        self._expected = None  # [[np.ndarray outputs]] per probe
        self._session = None  # onnxruntime on the original model
        self.probe_kind = None  # the probes.KINDS the random probes were drawn as
        self._bounds = self._positive = None  # integer inputs' bounds, inputs drawn positive
        self._rewrites = {}  # export-friendly replacements made to torch_model
        self.optimize = True  # onnxruntime's graph optimisations (load: off for quantized models)

    def load(self):
        """Load and check the ONNX model; describe it."""
        if self.artifacts:
            artifacts_mod.Checker.start()  # its torch import overlaps with the conversion
        self.onnx_model, locations = model_info.load_model(self.path)
        external = model_info.external_files(self.path, locations)
        self.info = model_info.describe(self.onnx_model, self.path, external)
        self.atol, self.rtol = parity.tolerances(self.atol, self.rtol, self.info["precision"], self.info["quantized"])
        # A quantized model is checked at the specification's semantics.
        self.optimize = not self.info["quantized"]
        return self.info

    def in_folder(self):
        return model_info.in_folder(self.abspath)

    def normalise(self):
        """Find the nodes onnx2torch would fail on and run the passes that fix
        them; check a rewritten graph against the original under onnxruntime
        (same probes, same tolerances) before conversion goes on."""
        with self.in_folder():
            return self._normalise()

    def _normalise(self):
        self.normalised, result = normalise.plan(self.onnx_model)
        self.plan = result
        result["check"] = None
        if result["passes"]:
            names = [o["name"] for o in self.info["outputs"]]
            try:
                session = parity.onnxruntime_session(self.normalised, self.optimize, self.folder)
                actual = [session.run(None, self.feed(inputs)) for _, inputs in self.probes()]
            except Exception as e:
                raise UserError(f"{self.path}: onnxruntime cannot run the normalised graph: {first_line(e)}") from e
            stats = parity.compare_all(names, self.expected(), actual, self.atol, self.rtol)
            result["check"] = parity.summary(stats, self.atol, self.rtol)
            if not result["check"]["passed"]:
                passes = ", ".join(p["name"] for p in result["passes"])
                raise UserError(f"{self.path}: normalisation ({passes}) changed the model's outputs; not converting it")
        return result

    def convert(self):
        """onnx2torch.convert of the normalised graph, then eval mode; count
        weights. In a 16-bit float model, the nodes torch has no 16-bit
        kernel for compute in float32 (halfwidth), named in float32_nodes."""
        import onnx2torch

        if self.plan is None:
            self.normalise()
        remaining = self.plan["remaining"]
        if remaining:
            hint = ""
            if any("Converter is not implemented" in f["reason"] for f in remaining):
                hint = "; an op nothing converts can have a converter of your own (the converters setting)"
            raise UserError(
                f"{self.path}: onnx2torch cannot convert {len(remaining)} node{'s' if len(remaining) > 1 else ''}: "
                + normalise.describe_failures(remaining)
                + hint
            )
        with self.in_folder():
            self.torch_model = onnx2torch.convert(self.normalised, attach_onnx_mapping=True)
        self.outputs_of = locate.mappings(self.torch_model)
        outputs.match_graph_outputs(self.torch_model, self.outputs_of, [o["name"] for o in self.info["outputs"]])
        self.torch_model.eval()
        float32_nodes = []
        if self.info["precision"] in parity.EPSILON:
            import torch

            from . import halfwidth

            _, inputs = self.probes()[0]
            float32_nodes = halfwidth.fall_back(self.torch_model, [torch.from_numpy(np.asarray(x)) for x in inputs])
        return {"weights": count_weights(self.torch_model), "float32_nodes": float32_nodes}

    def probe(self):
        """Forward the probe inputs; check the outputs' number and shapes."""
        results = []
        for (batch, inputs), kind in zip(self.probes(), self._probe_kinds):
            outputs = self.run_torch(self.torch_model, inputs)
            if len(outputs) != len(self.info["outputs"]):
                raise UserError(
                    f"{self.path}: the converted model returns {len(outputs)} outputs, the ONNX model declares {len(self.info['outputs'])}"
                )
            binding = probes.bind_dims(self.info["inputs"], inputs)
            for spec, out in zip(self.info["outputs"], outputs):
                probes.check_shape(spec, tuple(out.shape), binding, self.path)
            results.append(
                {
                    "batch": batch or 0,
                    "kind": kind,
                    "data": self.data or "",
                    "input_shapes": [list(x.shape) for x in inputs],
                    "output_shapes": [list(o.shape) for o in outputs],
                }
            )
        return results

    def save(self, path, state_dict_path, metadata):
        """torch.save the model with its state_dict and metadata; and the state_dict alone."""
        import torch

        state_dict = self.torch_model.state_dict()
        checkpoint = {"model": self.torch_model, "state_dict": state_dict, "metadata": metadata}
        # Hashed as written: verify loads only the bytes that hash to this.
        saved = {"sha256": model_info.write_hashed(path, lambda f: torch.save(checkpoint, f))}
        if state_dict_path:
            saved["state_dict_sha256"] = model_info.write_hashed(state_dict_path, lambda f: torch.save(state_dict, f))
        return saved

    def verify(self, path, sha256):
        """Reload the saved file and compare its outputs with the expected
        ones: the user's, or onnxruntime's on the original model."""
        import torch

        # Unpickling runs code from the file: only load what this run wrote,
        # from the very bytes that were hashed (the path could be swapped
        # between a hash and a second read).
        data = model_info.read_hashed(path, sha256)
        reloaded = torch.load(io.BytesIO(data), weights_only=False)["model"].eval()
        del data
        actual = [self.run_torch(reloaded, inputs) for _, inputs in self.probes()]
        names = [o["name"] for o in self.info["outputs"]]
        stats = parity.compare_all(names, self.expected(), actual, self.atol, self.rtol)
        result = parity.summary(stats, self.atol, self.rtol)
        result["reason"] = self._unverified(stats)
        result["passed"] = result["passed"] and not result["reason"]
        result["divergence"] = None
        if not result["passed"] or self.always_locate:
            result["divergence"] = self.find_divergence(reloaded)
        return result

    def _unverified(self, stats):
        """Why the probes verified too little of some output, or "": an
        output counts only when most of its expected values are finite
        (NaN matching NaN says nothing about the computation). The user's
        own data is taken as it is."""
        if self.data:
            return ""
        thin = [s for s in stats if s["elements"] and s["compared"] / s["elements"] < parity.MIN_COMPARED_SHARE]
        if not thin:
            return ""
        for stat in thin:
            stat["within_tolerance"] = False
        outputs = ", ".join(f"{s['name']!r} ({s['compared'] / s['elements']:.0%} finite)" for s in thin)
        return (
            f"too few finite values to compare in {outputs} on every kind of probe tried "
            f"({', '.join(probes.KINDS)} inputs); give inputs that exercise the model with data.inputs"
        )

    def export(self, fmt, path, metadata):
        """Write the model as a portable artifact (artifacts.FORMATS) to path
        and check it with torch alone against the expected outputs, at every
        probe and at a batch size no probe used. A failure is returned, not
        raised: the host decides whether it fails the conversion."""
        path = os.path.abspath(path)  # written from the model's folder
        result = {"format": fmt, "sha256": "", "batches": [], "verification": None, "error": None, "node": None}
        result["rewrites"] = {}
        try:
            checks, expected, example = self._artifact_probes()
        except Exception as e:
            result["error"] = f"preparing its check: {first_line(e)}"
            return result
        try:
            for name, count in exportable.make_exportable(self.torch_model).items():
                self._rewrites[name] = self._rewrites.get(name, 0) + count
            result["rewrites"] = dict(self._rewrites)
            with self.in_folder():
                sha256 = artifacts_mod.write(fmt, self.torch_model, example, self.info["inputs"], path, metadata)
        except Exception as e:
            result["error"] = f"{'tracing' if fmt == 'torchscript' else 'exporting'} failed: {first_line(e)}"
            result["node"] = artifacts_mod.failing_node(self.torch_model, e)
            return result
        result["sha256"] = sha256
        result["batches"] = list(dict.fromkeys(b or 0 for b, _ in checks))  # the edge probe repeats one
        try:
            # The checker loads the artifact only if its bytes hash to sha256.
            actual, error = artifacts_mod.check(fmt, path, [inputs for _, inputs in checks], sha256)
            if error:
                result["error"] = error
                return result
            names = [o["name"] for o in self.info["outputs"]]
            stats = parity.compare_all(names, expected, actual, self.atol, self.rtol)
        except Exception as e:
            result["error"] = f"checking it: {first_line(e)}"
            return result
        result["verification"] = parity.summary(stats, self.atol, self.rtol)
        if not result["verification"]["passed"]:
            result["error"] = "its outputs differ from the expected ones beyond tolerance" + (
                f" (batch sizes {result['batches']})" if len(result["batches"]) > 1 else ""
            )
        if fmt == "exported":
            self._exported_ok = result["error"] is None
        return result

    def source(self, folder, metadata):
        """Write the model as PyTorch source (source.py: model.py,
        model.safetensors, README.md) into folder and check it with torch
        alone against the expected outputs, at every probe and at a batch
        size no probe used, with one backward pass and torch.export (which
        must work where the exported artifact did). A failure is returned,
        not raised: the host decides whether it fails the conversion."""
        folder = os.path.abspath(folder)  # written from the model's folder
        result = {"format": source_mod.FORMAT, "folder": folder, "sha256": {}, "summary": None, "load": None}
        result.update({"batches": [], "verification": None, "error": None, "node": None})
        try:
            checks, expected, example = self._artifact_probes()
        except Exception as e:
            result["error"] = f"preparing its check: {first_line(e)}"
            return result
        try:
            with self.in_folder():
                summary = source_mod.write(self.torch_model, self.normalised, folder, metadata, checks[0][1])
        except source_mod.NotExpressible as e:
            result["error"] = f"not expressible as torch code: {e.reason}"
            result["node"] = e.node
            return result
        except Exception as e:
            result["error"] = f"writing it failed: {first_line(e)}"
            return result
        result["summary"] = {k: v for k, v in summary.items() if k != "state_keys"}
        result["sha256"] = summary["sha256"]
        result["load"] = source_mod.load_code(summary)
        result["batches"] = list(dict.fromkeys(b or 0 for b, _ in checks))
        try:
            verification = source_mod.verify(
                folder,
                summary,
                metadata,
                [inputs for _, inputs in checks],
                expected,
                [o["name"] for o in self.info["outputs"]],
                self.atol,
                self.rtol,
                example=example,
                specs=self.info["inputs"],
                export=True,
                export_required=bool(self._exported_ok),
                batches=result["batches"],
                against="the expected outputs" if self.expected_data else "onnxruntime",
            )
        except Exception as e:
            result["error"] = f"checking it: {first_line(e)}"
            return result
        result["verification"] = verification
        if not verification["passed"]:
            result["error"] = (
                verification["error"] or "it does not verify (outputs, gradients or torch.export; see verification)"
            )
        return result

    def _artifact_probes(self):
        """The probes an artifact is checked at, their expected outputs, and
        the example inputs to trace or export at: the conversion's probes
        plus one at a batch size no probe used (the user's data alone when
        given)."""
        checks, expected = self.probes(), self.expected()
        if self.data:
            return checks, expected, checks[0][1]
        extra = artifacts_mod.unseen_batch(self.batch_sizes)
        example = self.random_inputs(artifacts_mod.example_batch(self.batch_sizes), self.seed, self.probe_kind)
        unseen = (extra, self.random_inputs(extra, self.seed + extra, self.probe_kind))
        return checks + [unseen], expected + self.expected_for([unseen[1]]), example

    def find_divergence(self, model):
        """The first node where model parts from onnxruntime on the first
        probe (see locate.py), or None."""
        _, inputs = self.probes()[0]
        with self.in_folder():
            return locate.locate(
                self.normalised,
                model,
                self.outputs_of,
                self.feed(inputs),
                self.atol,
                self.rtol,
                self.optimize,
                self.folder,
            )

    def probes(self):
        """The probe inputs, made once: [(batch or None, [arrays])]."""
        if self._probes is None:
            self._draw()
        return self._probes

    def expected(self):
        """The expected outputs of each probe, computed once: the user's, or
        onnxruntime's on the original model (expected_for)."""
        if self._expected is None:
            self._draw()
        return self._expected

    def _draw(self):
        """Make the probes and their expected outputs. The user's data is
        one probe. Otherwise one random probe per batch size plus an edge
        probe (probes.edge_values) at the largest, of the first kind
        (probes.KINDS) on which every output is mostly finite (else the kind
        where the least finite output is most so, and _unverified says why
        that is not enough)."""
        if self.data:
            names = [s["name"] for s in self.info["inputs"]]
            self._probes = [(None, probes.load_arrays(self.data, names, "input data"))]
            self._probe_kinds = ["data"]
            if self.expected_data:
                names = [o["name"] for o in self.info["outputs"]]
                self._expected = [probes.load_arrays(self.expected_data, names, "expected outputs")]
            else:
                self._expected = self.expected_for([inputs for _, inputs in self._probes])
            return
        best = None
        for kind in probes.KINDS:
            drawn, expected, kinds = self._draw_kind(kind) if best else self._draw_first(kind)
            shares = finite_shares(expected)
            if best is None or min(shares.values(), default=1) > min(best[3].values(), default=1):
                best = (drawn, expected, kinds, shares)
            if all(share >= parity.MIN_COMPARED_SHARE for share in shares.values()):
                break
        self._probes, self._expected, self._probe_kinds, _ = best
        self.probe_kind = self._probe_kinds[0]

    def _draw_first(self, kind):
        """_draw_kind; where onnxruntime refuses the inputs, named dimensions
        other than the batch (sequence length, audio samples, height and
        width) that verify.dims leaves free, which take the batch size
        otherwise, are grown until it runs them (probes.GROWN_SIZES)."""
        try:
            return self._draw_kind(kind)
        except UserError as refused:
            free = probes.free_dims(self.info["inputs"], self.dims)
            if not free or self._session is None:  # (onnxruntime cannot load the model at all)
                raise
            for size in probes.GROWN_SIZES:
                self.dims.update(dict.fromkeys(free, size))
                try:
                    return self._draw_kind(kind)
                except UserError:
                    continue
            for name in free:
                del self.dims[name]
            raise refused

    def _draw_kind(self, kind):
        """Random probes of one kind at each batch size, and the edge probe at
        the largest; with their expected outputs."""
        # All of them together, edge probe included, before any is drawn.
        probes.check_probe_sizes(self.info["inputs"], self.batch_sizes + [max(self.batch_sizes)], self.dims)
        drawn = [(b, self.random_inputs(b, self.seed + b, kind)) for b in self.batch_sizes]
        expected = self.expected_for([inputs for _, inputs in drawn])
        kinds = [kind] * len(drawn)
        batch = max(self.batch_sizes)
        edge = (batch, self.random_inputs(batch, self.seed + EDGE_SEED + batch, kind, edge=True))
        try:
            # Values at the edge can be beyond what a model accepts (an
            # index it checks, say); then the random probes stand alone.
            expected += self.expected_for([edge[1]])
            drawn, kinds = drawn + [edge], kinds + ["edge"]
        except UserError:
            pass
        return drawn, expected, kinds

    def random_inputs(self, batch, seed, kind, edge=False, domain=True):
        """One random probe (probes.make_inputs); domain: inputs of ops
        defined for positive values alone drawn positive."""
        specs = self.info["inputs"]
        if self._bounds is None:
            self._bounds = {**probes.int_bounds(self.onnx_model), **self.int_bounds}
            self._positive = probes.positive_inputs(self.onnx_model)
        positive = self._positive if domain else ()
        return probes.make_inputs(specs, batch, self.dims, seed, self._bounds, kind, positive, edge)

    def expected_for(self, probe_inputs):
        """onnxruntime's outputs on the original model for each probe's inputs:
        by path, where the model is one file (serialising a large one in
        memory would copy it, and stops at protobuf's 2 GiB); with external
        data, the model as loaded, its small tensors read in and its large
        ones left in their files (parity.onnxruntime_session): onnxruntime
        given the path cannot infer shapes that need an external tensor's
        values, such as a Reshape's target."""
        if self._session is None:
            model = self.onnx_model if self.info["external_data"] else self.abspath
            try:
                self._session = parity.onnxruntime_session(model, self.optimize, self.folder)
            except Exception as e:
                raise UserError(
                    f"{self.path}: onnxruntime cannot run the model: {first_line(e)}; "
                    "to verify it against outputs of your own instead, give data.inputs and data.expected"
                ) from e
        try:
            return [self._session.run(None, self.feed(inputs)) for inputs in probe_inputs]
        except Exception as e:
            shapes = ", ".join(f"{name} {list(x.shape)}" for name, x in self.feed(probe_inputs[0]).items())
            raise UserError(
                f"{self.path}: onnxruntime cannot run the model on probe inputs ({shapes}): {first_line(e)}; "
                "set the sizes of named dimensions with verify.dims, or give data.inputs"
            ) from e

    def feed(self, inputs):
        return dict(zip((i["name"] for i in self.info["inputs"]), inputs))

    @staticmethod
    def run_torch(model, inputs):
        import torch

        with torch.no_grad():
            return [o.numpy() for o in as_list(model(*[torch.from_numpy(np.asarray(x)) for x in inputs]))]


# The edge probe's seed, apart from the random probes' (seed + batch size).
EDGE_SEED = 7919


def finite_shares(expected):
    """Per output index: the share of its floating elements, over all
    probes, that are finite (1 for other dtypes)."""
    finite, total = {}, {}
    for probe_outputs in expected:
        for i, y in enumerate(probe_outputs):
            y = np.asarray(y)
            total[i] = total.get(i, 0) + y.size
            count = np.count_nonzero(np.isfinite(y)) if y.dtype.kind == "f" else y.size
            finite[i] = finite.get(i, 0) + int(count)
    return {i: finite[i] / total[i] if total[i] else 1.0 for i in total}


def count_weights(model):
    """Parameters, plus the weights onnx2torch keeps as buffers.

    onnx2torch turns initializers that feed plain ops (MatMul/Add of a Dense
    layer exported as such) into buffers, so counting parameters alone
    undercounts. BatchNorm running statistics are reported apart: they are
    state, not weights.
    """
    import torch

    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weight_buffers = norm_stats = 0
    for module in model.modules():
        for _, buf in module.named_buffers(recurse=False):
            if isinstance(module, torch.nn.modules.batchnorm._NormBase):
                norm_stats += buf.numel() if buf.is_floating_point() else 0
            elif buf.is_floating_point():
                weight_buffers += buf.numel()
    return {
        "parameters": params,
        "trainable_parameters": trainable,
        "weight_buffers": weight_buffers,
        "normalization_statistics": norm_stats,
        "total": params + weight_buffers,
    }


def as_list(outputs):
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]
