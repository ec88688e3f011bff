"""A suite of model families, generated on the spot: torchvision networks and
transformer blocks exported by torch's two ONNX exporters, graphs written
the way Keras and Paddle converters write them, and models that must fail.

    python families.py OUT_DIR [--only NAME ...]   the models and OUT_DIR/index.json

Nothing is downloaded: torch models start from their default
initialisation (see torch_module for the one adjustment), hand-written
graphs get seeded random weights, and every seed is fixed, so a run writes
the same graphs each time for a given torch version. build() returns one
entry per model:

    name       unique, usable as a file name
    path       the .onnx file
    expect     "converts" (onnx2pt converts and verifies it, normalising
               first if it must) or "fails" (it must refuse it cleanly)
    fails_on   the op type that cannot be converted ("fails" only), and
    node       the name of that node
    family, exporter, opset, inputs   what the model is and how it was made
    verify     settings the probes need beyond the batch sizes (ConversionJob's
               dims, int_bounds; verify.dims in a config): sizes for
               dimensions that must agree, as a past and a new sequence
               with their sum

Exports take minutes, so each model is built once per generator and
package versions and kept in a cache (see cache_folder), shared by the
Python tests, the Go tests and the tools; build() copies it from there.
"""

import argparse
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

# Small inputs keep a whole run within minutes on two cores; the graphs are
# those of the full-size networks (only the spatial size differs).
IMAGE = (3, 64, 64)
SEQ, WIDTH, HEADS, VOCAB = 16, 32, 4, 500
# torch.export specialises a dimension of size 1, so the example batch of
# an export with a dynamic batch is larger.
EXPORT_BATCH = 2
# Batch of random inputs that BatchNorm statistics are set from.
CALIBRATION_BATCH = 8

TORCHVISION = ("squeezenet1_0", "shufflenet_v2_x0_5", "mobilenet_v3_small", "resnet18")
TRANSFORMERS = ("mha_block", "qkv_block", "token_embedding")
# Two-layer bidirectional recurrent taggers, each cell run time-major and
# batch-first.
RECURRENT = ("lstm_tagger", "gru_tagger", "lstm_batch_first", "gru_time_major")
# Hugging Face transformers from tiny configs, each through both exporters.
HUGGINGFACE = ("bert", "gpt2_past", "llama", "llama_past", "vit", "bart_encoder", "bart_decoder")
HF_WIDTH, HF_LAYERS, HF_HEADS, HF_VOCAB, HF_SEQ = 32, 2, 4, 200, 8
# The legacy TorchScript exporter at two opsets, and the exporter torch uses
# by default (torch.export + onnxscript) at its default opset. The legacy
# exporter needs opset 14 for nn.MultiheadAttention (scaled_dot_product_attention);
# opset 17 brings LayerNormalization as one node.
EXPORTERS = ("legacy13", "legacy17", "dynamo")
TRANSFORMER_EXPORTERS = ("legacy14", "legacy17", "dynamo")


class Spec:
    """One model of the suite. torch_factory, for models exported from torch,
    returns (module, export example, calibration batch, output name, last
    layer)."""

    def __init__(
        self,
        name,
        family,
        exporter,
        make,
        expect="converts",
        fails_on=None,
        node=None,
        torch_factory=None,
        axes=None,
        verify=None,
    ):
        self.name, self.family, self.exporter, self.make = name, family, exporter, make
        self.expect, self.fails_on, self.node = expect, fails_on, node
        self.torch_factory = torch_factory
        self.axes = axes  # dynamic axes beyond the batch: (input's, output's)
        self.verify = verify or {}


def torch_spec(name, family, exporter, factory, *args, axes=None, verify=None, **kwargs):
    factory = functools.partial(factory, *args, **kwargs)
    return Spec(name, family, exporter, _export_torch, torch_factory=factory, axes=axes, verify=verify)


def specs():
    """Every model of the suite, without building any (cheap: for test
    parametrisation)."""
    out = []
    for arch in TORCHVISION:
        for exporter in EXPORTERS:
            out.append(torch_spec(f"{arch}_{exporter}", "torchvision", exporter, _torchvision, arch))
    for block in TRANSFORMERS:
        for exporter in TRANSFORMER_EXPORTERS:
            out.append(torch_spec(f"{block}_{exporter}", "transformer", exporter, _transformer, block))
    # The same transformer after onnxruntime's transformer optimizer: fused
    # com.microsoft ops (SkipLayerNormalization, FastGelu).
    out.append(
        Spec(
            "token_embedding_ort_optimized",
            "transformer",
            "ort-optimizer",
            _ort_optimized,
            torch_factory=functools.partial(_transformer, "token_embedding"),
        )
    )
    for kind in RECURRENT:
        for exporter in ("legacy17", "dynamo"):
            out.append(torch_spec(f"{kind}_{exporter}", "recurrent", exporter, _recurrent, kind))
    # Half precision: a CNN converted by onnxconverter-common, keeping float32
    # inputs and outputs; a transformer exported from torch after .half().
    out.append(
        Spec(
            "resnet18_float16_io32",
            "float16",
            "float16",
            functools.partial(_float16, keep_io_types=True),
            torch_factory=functools.partial(_torchvision, "resnet18"),
        )
    )
    out.append(
        Spec(
            "token_embedding_float16",
            "float16",
            "float16",
            _torch_half,
            torch_factory=functools.partial(_transformer, "token_embedding"),
        )
    )
    out += huggingface_specs() + quantized_specs() + state_and_control_specs()
    out.append(Spec("keras_nhwc", "keras", "helper", _keras_nhwc))
    out.append(Spec("paddle_constants", "paddle", "helper", _paddle_constants))
    out.append(
        Spec("custom_op", "custom", "helper", _custom_op, expect="fails", fails_on="Frobnicate", node="blocks.0.frob")
    )
    return out + edge_specs()


def huggingface_specs():
    """transformers models at tiny sizes through both exporters; then the
    BERT encoder as onnxruntime's tools leave it: weights quantized to int8
    (quantize_dynamic), and fused into com.microsoft ops by the transformer
    optimizer, in float32 and in float16."""
    out = []
    for kind in HUGGINGFACE:
        for exporter in ("legacy17", "dynamo"):
            make = functools.partial(_export_huggingface, kind)
            out.append(Spec(f"{kind}_{exporter}", "huggingface", exporter, make))
    out.append(Spec("bert_dynamic_int8", "huggingface", "ort-quantization", _bert_quantized))
    for half in (False, True):
        name = "bert_ort_optimized" + ("_float16" if half else "")
        make = functools.partial(_bert_optimized, half=half)
        out.append(Spec(name, "huggingface", "ort-optimizer", make))
    return out


def quantized_specs():
    """A small CNN quantized statically by onnxruntime (calibrated on random
    images): in QDQ form (QuantizeLinear/DequantizeLinear around float ops)
    and in QOperator form (QLinearConv and the like)."""
    return [
        Spec(f"cnn_static_{fmt}", "quantized", "ort-quantization", functools.partial(_static_quantized, fmt))
        for fmt in ("qdq", "qoperator")
    ]


def state_and_control_specs():
    """Recurrent layers given their initial states as inputs; If and Loop
    from scripted control flow; a CNN whose height and width are dynamic."""
    out = []
    for kind in ("lstm", "gru"):
        for exporter in ("legacy17", "dynamo"):
            name = f"{kind}_initial_state_{exporter}"
            out.append(Spec(name, "recurrent", exporter, functools.partial(_recurrent_state, kind)))
    for kind in ("if", "loop"):
        # The sequence a loop runs over is dynamic: its trip count.
        axes = ({1: "sequence"}, {}) if kind == "loop" else None
        out.append(torch_spec(f"{kind}_scripted_legacy17", "control-flow", "legacy17", _scripted, kind, axes=axes))
    for exporter in ("legacy17", "dynamo"):
        # Probed at a size other than the export's, neither square nor a
        # multiple of the network's stride.
        out.append(
            torch_spec(
                f"segmenter_dynamic_hw_{exporter}",
                "dynamic-shape",
                exporter,
                _segmenter,
                axes=({2: "height", 3: "width"},) * 2,
                verify={"dims": {"height": 40, "width": 26}},
            )
        )
    return out


def edge_specs():
    """Models whose outputs hide wrong conversions from a careless check:
    small values beside large ones in one output, outputs that are NaN or
    infinite for part of the input space, rows that normalise to zero,
    near-tied classes. The mutation harness (tools/mutate.py) runs them
    beside the suite."""
    return [
        Spec("yolo_concat", "detection", "helper", functools.partial(_yolo_head, "concat")),
        Spec("yolo_rows", "detection", "helper", functools.partial(_yolo_head, "rows")),
        Spec("yolo_split", "detection", "helper", functools.partial(_yolo_head, "split")),
        Spec("embedding_l2", "embedding", "helper", _embedding_l2),
        Spec("nonfinite_outputs", "edge", "helper", _nonfinite_outputs),
        Spec("near_tied_softmax", "edge", "helper", _near_tied_softmax),
        Spec("log_matmul", "edge", "helper", _log_matmul),
        Spec("lp_normalization", "edge", "helper", _lp_normalization),
        Spec("glu_mlp", "edge", "helper", _glu_mlp),
        Spec("topk_classifier", "edge", "helper", _topk_classifier),
    ]


def deep_specs():
    """Deeper and wider models than the suite's, at full input size, for
    measuring how rounding differences grow (tools/tolerance_study.py); too
    slow for the tests."""
    return [
        torch_spec("resnet50_224_legacy17", "torchvision", "legacy17", _torchvision, "resnet50", (3, 224, 224)),
        torch_spec(
            "encoder12_legacy17",
            "transformer",
            "legacy17",
            _transformer,
            "token_embedding",
            depth=12,
            width=256,
            seq=128,
        ),
    ]


def build(out_dir, only=None, realistic=False):
    """Write the suite's models (or those named in only, which may also
    name deep_specs()) into out_dir and return their entries. realistic:
    the torch models with trained-looking weights and outputs at a trained
    model's magnitude (make_realistic), for measuring tolerances; the suite
    itself is built without."""
    os.makedirs(out_dir, exist_ok=True)
    chosen = [s for s in specs() + (deep_specs() if only else []) if only is None or s.name in only]
    unknown = set(only or ()) - {s.name for s in chosen}
    if unknown:
        raise ValueError(f"no such family model: {', '.join(sorted(unknown))}")
    cache = cache_folder()
    entries = []
    for spec in chosen:
        # Each model in its own folder: the dynamo exporter writes external
        # data beside the model, named after it.
        folder = os.path.join(out_dir, spec.name)
        if cache is None:
            entry = _build_one(spec, folder, realistic)
        else:
            entry = _cached(spec, folder, realistic, cache)
        entries.append({**entry, "path": os.path.join(folder, spec.name + ".onnx")})
    return entries


def _build_one(spec, folder, realistic):
    """Build spec's model into folder; its entry, path aside."""
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    info = spec.make(os.path.join(folder, spec.name + ".onnx"), spec, realistic)
    return {
        "name": spec.name,
        "expect": spec.expect,
        "fails_on": spec.fails_on,
        "node": spec.node,
        "family": spec.family,
        "exporter": spec.exporter,
        "verify": spec.verify,
        **info,
        "build_seconds": round(time.perf_counter() - start, 2),
    }


# -- the cache ---------------------------------------------------------------

CACHE_ENV = "ONNX2PT_FAMILIES_CACHE"  # a folder, or "off"
# What a model's build depends on beyond this file.
BUILT_WITH = ("torch", "torchvision", "onnx", "onnxscript", "onnxruntime", "transformers", "onnxconverter-common")
# Other generators' and versions' models are removed after this long unused.
CACHE_DAYS = 14


def cache_folder():
    """$ONNX2PT_FAMILIES_CACHE, or onnx2pt/test-families under the user's
    cache folder; None when that variable is "off"."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen == "off":
        return None
    if chosen:
        return chosen
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "onnx2pt", "test-families")


@functools.cache
def generator_key():
    """A hash of this file, the packages the models are built with, and the
    Python: a model built under the same key is the same model."""
    h = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    for package in BUILT_WITH + ("numpy",):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = None
        h.update(f"{package}={version};".encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:20]


def _cached(spec, folder, realistic, cache):
    """Copy spec's model from the cache into folder, building it there first
    if it is not there (under a lock: the Python and Go tests may build the
    same model at once); its entry, path aside."""
    root = os.path.join(cache, generator_key())
    os.makedirs(root, exist_ok=True)
    name = spec.name + ("-realistic" if realistic else "")
    kept = os.path.join(root, name)
    with open(kept + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(kept, "entry.json")):
            _prune(cache, keep=root)
            shutil.rmtree(kept, ignore_errors=True)  # a build cut short
            tmp = tempfile.mkdtemp(dir=root, prefix=f".{name}-")
            try:
                entry = _build_one(spec, os.path.join(tmp, "model"), realistic)
                with open(os.path.join(tmp, "entry.json"), "w") as f:
                    json.dump(entry, f)
                os.rename(tmp, kept)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    os.utime(root)  # in use: not pruned
    with open(os.path.join(kept, "entry.json")) as f:
        entry = json.load(f)
    shutil.copytree(os.path.join(kept, "model"), folder, dirs_exist_ok=True)
    return entry


def _prune(cache, keep):
    """Remove the models of other keys unused for CACHE_DAYS."""
    cutoff = time.time() - CACHE_DAYS * 86400
    for entry in os.scandir(cache):
        if entry.path != keep and entry.is_dir() and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)


# -- torch models ------------------------------------------------------------


def _torchvision(arch, image=IMAGE):
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None)
    return model, _randn(EXPORT_BATCH, *image), _randn(CALIBRATION_BATCH, *image), "logits", model_head(model)


def _randn(*shape):
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


def model_head(model):
    """The last Linear or Conv2d layer: the one producing the logits."""
    import torch

    last = None
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            last = module
    return last


def _transformer(kind, depth=1, width=WIDTH, seq=SEQ, heads=HEADS, vocab=VOCAB):
    import torch
    from torch import nn

    class QKVAttention(nn.Module):
        """Attention written out as most model code writes it."""

        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)

        def forward(self, x):
            n, t, d = x.shape
            q, k, v = self.qkv(x).reshape(n, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            weights = torch.softmax(q @ k.transpose(-2, -1) * (d // heads) ** -0.5, dim=-1)
            return self.proj((weights @ v).transpose(1, 2).reshape(n, t, d))

    class MHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    class Block(nn.Module):
        """A pre-norm encoder block: attention and a GELU MLP, each residual."""

        def __init__(self, attention, approximate):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attn = attention
            self.mlp = nn.Sequential(
                nn.Linear(width, 4 * width), nn.GELU(approximate=approximate), nn.Linear(4 * width, width)
            )

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class TokenModel(nn.Module):
        """Token ids → embeddings + positions → blocks → norm → vocabulary logits."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, width)
            self.pos = nn.Parameter(torch.randn(1, seq, width) * 0.02)
            self.blocks = nn.Sequential(*[Block(QKVAttention(), "tanh") for _ in range(depth)])
            self.norm = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab)

        def forward(self, ids):
            return self.head(self.norm(self.blocks(self.embed(ids) + self.pos)))

    if kind == "token_embedding":
        model = TokenModel()
        ids = [
            torch.randint(0, vocab, (n, seq), generator=torch.Generator().manual_seed(1))
            for n in (EXPORT_BATCH, CALIBRATION_BATCH)
        ]
        return model, ids[0], ids[1], "logits", model.head
    block = Block(MHA(), "none") if kind == "mha_block" else Block(QKVAttention(), "tanh")
    return block, _randn(EXPORT_BATCH, seq, width), _randn(CALIBRATION_BATCH, seq, width), "hidden", block.mlp[2]


def _ort_optimized(path, spec, realistic):
    """The legacy opset-17 export, then onnxruntime.transformers' optimizer
    for BERT-like models (as its documentation runs it)."""
    from onnxruntime.transformers import optimizer

    model, example, output = torch_module(spec, realistic)
    export(model, example, path, "legacy17", output)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimizer.optimize_model(path, model_type="bert", num_heads=HEADS, hidden_size=WIDTH, opt_level=0)
    optimized.save_model_to_file(path)
    return describe(path)


def _float16(path, spec, realistic, keep_io_types):
    """The legacy opset-17 export, then onnxconverter-common's float16
    conversion, as its documentation runs it."""
    import onnx
    from onnxconverter_common import float16

    model, example, output = torch_module(spec, realistic)
    export(model, example, path, "legacy17", output)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # weights below float16's range are rounded
        half = float16.convert_float_to_float16(onnx.load(path), keep_io_types=keep_io_types)
    # It retypes the intermediate values a Cast to float32 writes as float16
    # (onnxruntime then refuses the file): leave their types to inference.
    del half.graph.value_info[:]
    onnx.save(half, path)
    return describe(path)


def _torch_half(path, spec, realistic):
    """The module in float16 (model.half()), exported by the legacy
    exporter at opset 17: weights, activations and outputs in float16."""
    model, example, output = torch_module(spec, realistic)
    example = example.half() if example.is_floating_point() else example
    export(model.half(), example, path, "legacy17", output)
    return describe(path)


def _recurrent(kind, width=16, hidden=32, tags=5):
    """A sequence tagger: features [batch, time, width] through a two-layer
    bidirectional LSTM or GRU, run time-major (the input transposed) or
    batch-first, then a tag per step."""
    from torch import nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            batch_first = kind in ("gru_tagger", "lstm_batch_first")
            cls = nn.GRU if kind.startswith("gru") else nn.LSTM
            self.rnn = cls(width, hidden, num_layers=2, bidirectional=True, batch_first=batch_first)
            self.head = nn.Linear(2 * hidden, tags)

        def forward(self, x):
            if not self.rnn.batch_first:
                return self.head(self.rnn(x.transpose(0, 1))[0]).transpose(0, 1)
            return self.head(self.rnn(x)[0])

    model = Tagger()
    return model, _randn(EXPORT_BATCH, SEQ, width), _randn(CALIBRATION_BATCH, SEQ, width), "tags", model.head


def _export_torch(path, spec, realistic):
    model, example, output = torch_module(spec, realistic)
    export(model, example, path, spec.exporter, output, spec.axes)
    return describe(path)


def torch_module(spec, realistic=False):
    """The eval-mode torch module that a torch spec exports, the example
    input of its export and the output's name; the same weights each call.

    The suite's weights are the default initialisation, which is what makes
    the legacy exporter share equal initializers (zero biases) through
    Identity nodes, with each BatchNorm's variance set to what its input
    has on a random batch (set_batchnorm_scale): at the default
    initialisation alone, activations of some networks (mobilenet_v3's
    depthwise layers) shrink by orders of magnitude, and a model whose
    outputs are ~1e-9 passes any verification. realistic: weights as after
    training instead (make_realistic)."""
    import torch

    torch.manual_seed(0)
    model, example, calibration, output, head = spec.torch_factory()
    model.eval()
    if realistic:
        make_realistic(model, head, calibration)
    else:
        set_batchnorm_scale(model, calibration)
    return model, example, output


def _calibrate_batchnorm(model, calibration, set_stats):
    """One forward pass in which each BatchNorm2d first calls
    set_stats(module, its input), so that later layers see the effect."""
    import torch

    def hook(module, args):
        set_stats(module, args[0])

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            model(calibration)
    finally:
        for h in handles:
            h.remove()


def set_batchnorm_scale(model, calibration):
    """Each BatchNorm's variance is set to its input's mean square per
    channel, its mean left at 0: activations keep unit scale through the
    network, and the shifts stay zero (so the exporter still shares them)."""

    def set_stats(bn, x):
        square = x.pow(2).mean(dim=(0, 2, 3))
        bn.running_var.copy_(square.where(square > 1e-12, 1.0))

    _calibrate_batchnorm(model, calibration, set_stats)


# Standard deviation of a realistic model's outputs: trained classifiers'
# logits and language models' vocabulary logits are O(10-100).
REALISTIC_STD = 30.0


def make_realistic(model, head, calibration):
    """Normalisation layers given trained-looking affine parameters (fresh
    ones are exactly 1 and 0) and BatchNorm statistics measured on a random
    batch, and the last layer scaled so the outputs' standard deviation on
    that batch is REALISTIC_STD."""
    import torch

    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) and m.weight is not None:
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))

    def set_stats(bn, x):
        bn.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        bn.running_var.copy_(x.var(dim=(0, 2, 3)).clamp_min(1e-6))

    _calibrate_batchnorm(model, calibration, set_stats)
    with torch.no_grad():
        scale = REALISTIC_STD / float(model(calibration).float().std())
        head.weight.mul_(scale)
        if head.bias is not None:
            head.bias.mul_(scale)


def export(model, example, path, exporter, output, axes=None):
    """Export a module of one input and one output, the batch dynamic and
    also the axes given as (input's, output's) {axis: name}."""
    import torch

    input_name = "ids" if example.dtype == torch.int64 else "input"
    extra_in, extra_out = axes or ({}, {})
    dynamic = {input_name: {0: "batch", **extra_in}, output: {0: "batch", **extra_out}}
    export_named(model, [example], path, exporter, [input_name], [output], dynamic)


def export_named(model, inputs, path, exporter, input_names, output_names, axes):
    """torch.onnx.export by either exporter, with named inputs and outputs
    and axes {tensor name: {axis: dimension name}} dynamic: the legacy
    exporter's dynamic_axes, or torch.export dimensions of those names (one
    named for a sum of others, such as an attention mask over a past and a
    new sequence, left for torch.export to derive, then named as given)."""
    import torch

    # Not under no_grad: there nn.MultiheadAttention takes its fused fast
    # path, which the legacy exporter cannot export.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dims = {}

            def dim(name):
                if "+" in name:
                    return torch.export.Dim.AUTO
                return dims.setdefault(name, torch.export.Dim(name))

            shapes = [{a: dim(n) for a, n in axes.get(name, {}).items()} for name in input_names]
            torch.onnx.export(
                model,
                tuple(inputs),
                path,
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=_by_parameter(model, shapes),
                verbose=False,
            )
            _name_dims(path, axes)
        else:
            torch.onnx.export(
                model,
                tuple(inputs),
                path,
                dynamo=False,
                opset_version=int(exporter.removeprefix("legacy")),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
            )


def _by_parameter(model, shapes):
    """Per-input dynamic shapes grouped as forward's parameters take the
    inputs: those of a *args parameter as one tuple."""
    import inspect

    grouped, rest = [], list(shapes)
    for p in inspect.signature(model.forward).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            grouped.append(tuple(rest))
            rest = []
        elif rest:
            grouped.append(rest.pop(0))
    return tuple(grouped)


def _name_dims(path, axes):
    """The graph inputs' and outputs' dynamic dimensions renamed as axes
    names them (torch.export names derived ones s0, s1, ...)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, name in axes.get(value.name, {}).items():
            if dims[axis].dim_param:
                dims[axis].dim_param = name
    onnx.save(model, path)


def describe(path):
    import onnx

    model = onnx.load(path, load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inputs = []
    for value in model.graph.input:
        t = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in t.shape.dim]
        inputs.append(
            {"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": shape}
        )
    return {"opset": opset, "inputs": inputs, "nodes": len(model.graph.node)}


# -- Hugging Face transformers ------------------------------------------------


def _huggingface(kind, attention=None):
    """A transformers model from a tiny config (random weights) behind a
    forward of plain tensors: (module, example inputs, input names, output
    names, dynamic axes by tensor name). Caches come in and go out as one
    key and one value tensor per layer, named as optimum names them.
    attention: BERT's attention implementation (transformers' default
    otherwise)."""
    import torch
    import transformers
    from torch import nn

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    batch, seq, past = EXPORT_BATCH, HF_SEQ, HF_SEQ - 2
    ids = torch.randint(0, HF_VOCAB, (batch, seq), generator=gen)
    tokens = {0: "batch", 1: "sequence"}

    def cache_names(prefix):
        return [f"{prefix}.{i}.{kv}" for i in range(HF_LAYERS) for kv in ("key", "value")]

    class Decoder(nn.Module):
        """A causal language model's step: the new tokens, the attention
        mask over past and new ones and the past keys and values in; the
        logits and the keys and values of both out."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, *past):
            cache = transformers.DynamicCache([(past[i], past[i + 1]) for i in range(0, len(past), 2)])
            logits, present = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                past_key_values=cache,
                use_cache=True,
                return_dict=False,
            )[:2]
            return (logits, *[t for layer in present.layers for t in (layer.keys, layer.values)])

    def decoder_step(model, kv_heads, head_dim):
        # New and past lengths differ: torch.export could take equal example
        # sizes for one dimension.
        step_ids = ids[:, :3]
        mask = torch.ones(batch, past + step_ids.shape[1], dtype=torch.int64)
        caches = [torch.randn(batch, kv_heads, past, head_dim, generator=gen) for _ in cache_names("past")]
        both, cache_axes = "past_sequence + sequence", {0: "batch", 2: "past_sequence"}
        axes = {"input_ids": tokens, "attention_mask": {0: "batch", 1: both}, "logits": tokens}
        axes.update({n: cache_axes for n in cache_names("past_key_values")})
        axes.update({n: {0: "batch", 2: both} for n in cache_names("present")})
        return (
            Decoder(model),
            [step_ids, mask, *caches],
            ["input_ids", "attention_mask", *cache_names("past_key_values")],
            ["logits", *cache_names("present")],
            axes,
        )

    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[0, -2:] = 0  # the first sequence padded
    if kind == "bert":
        config = transformers.BertConfig(
            vocab_size=HF_VOCAB,
            hidden_size=HF_WIDTH,
            num_hidden_layers=HF_LAYERS,
            num_attention_heads=HF_HEADS,
            intermediate_size=4 * HF_WIDTH,
            max_position_embeddings=64,
            attn_implementation=attention,
        )

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = transformers.BertModel(config)

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.bert(input_ids, attention_mask, token_type_ids, return_dict=False)[:2]

        types = torch.zeros_like(ids)
        types[:, seq // 2 :] = 1
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {n: tokens for n in names + ["last_hidden_state"]} | {"pooler_output": {0: "batch"}}
        return Encoder(), [ids, mask, types], names, ["last_hidden_state", "pooler_output"], axes
    if kind == "gpt2_past":
        config = transformers.GPT2Config(
            vocab_size=HF_VOCAB,
            n_positions=64,
            n_embd=HF_WIDTH,
            n_layer=HF_LAYERS,
            n_head=HF_HEADS,
            bos_token_id=HF_VOCAB - 1,
            eos_token_id=HF_VOCAB - 1,
        )
        return decoder_step(transformers.GPT2LMHeadModel(config), HF_HEADS, HF_WIDTH // HF_HEADS)
    if kind.startswith("llama"):
        # Grouped-query attention: two key/value heads for four query heads.
        config = transformers.LlamaConfig(
            vocab_size=HF_VOCAB,
            hidden_size=HF_WIDTH,
            intermediate_size=2 * HF_WIDTH,
            num_hidden_layers=HF_LAYERS,
            num_attention_heads=HF_HEADS,
            num_key_value_heads=HF_HEADS // 2,
            max_position_embeddings=64,
        )
        model = transformers.LlamaForCausalLM(config)
        if kind == "llama_past":
            return decoder_step(model, HF_HEADS // 2, HF_WIDTH // HF_HEADS)

        class Causal(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]

        names = ["input_ids", "attention_mask", "logits"]
        return Causal(), [ids, mask], names[:2], names[2:], dict.fromkeys(names, tokens)
    if kind == "vit":
        config = transformers.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=HF_WIDTH,
            num_hidden_layers=HF_LAYERS,
            num_attention_heads=HF_HEADS,
            intermediate_size=4 * HF_WIDTH,
            num_labels=10,
        )

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.vit = transformers.ViTForImageClassification(config)

            def forward(self, pixel_values):
                return self.vit(pixel_values, return_dict=False)[0]

        images = torch.randn(batch, 3, 32, 32, generator=gen)
        return (
            Classifier(),
            [images],
            ["pixel_values"],
            ["logits"],
            {"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        )
    # BART split as optimum splits it: the encoder alone, and the decoder
    # (with the language-model head) taking the encoder's states. (T5's
    # attention reshapes a transposed tensor that torch.export's
    # decompositions cannot view with a dynamic sequence.)
    config = transformers.BartConfig(
        vocab_size=HF_VOCAB,
        d_model=HF_WIDTH,
        encoder_layers=HF_LAYERS,
        decoder_layers=HF_LAYERS,
        encoder_attention_heads=HF_HEADS,
        decoder_attention_heads=HF_HEADS,
        encoder_ffn_dim=2 * HF_WIDTH,
        decoder_ffn_dim=2 * HF_WIDTH,
        max_position_embeddings=64,
    )
    bart = transformers.BartForConditionalGeneration(config)
    encoded = {0: "batch", 1: "encoder_sequence"}

    class BartEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.bart = bart

        def forward(self, input_ids, attention_mask):
            return self.bart.model.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]

    class BartDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.bart = bart

        def forward(self, input_ids, encoder_attention_mask, encoder_hidden_states):
            return self.bart(
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=encoder_attention_mask,
                decoder_input_ids=input_ids,
                use_cache=False,
                return_dict=False,
            )[0]

    if kind == "bart_encoder":
        names = ["input_ids", "attention_mask", "last_hidden_state"]
        return BartEncoder(), [ids, mask], names[:2], names[2:], dict.fromkeys(names, encoded)
    with torch.no_grad():
        states = BartEncoder().eval()(ids, mask)
    names = ["input_ids", "encoder_attention_mask", "encoder_hidden_states"]
    axes = {"input_ids": tokens, "logits": tokens, names[1]: encoded, names[2]: encoded}
    return BartDecoder(), [ids[:, :3], mask, states], names, ["logits"], axes


def _export_huggingface(kind, path, spec, realistic):
    model, inputs, input_names, output_names, axes = _huggingface(kind)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_named(model, inputs, path, spec.exporter, input_names, output_names, axes)
    return describe(path)


def _bert_legacy(folder, attention=None):
    """The BERT encoder through the legacy exporter at opset 17, into folder
    (a temporary one: the suite's folders hold the models alone)."""
    model, inputs, input_names, output_names, axes = _huggingface("bert", attention)
    source = os.path.join(folder, "bert.onnx")
    export_named(model.eval(), inputs, source, "legacy17", input_names, output_names, axes)
    return source


def _bert_quantized(path, spec, realistic):
    """BERT's weights quantized to int8 by onnxruntime.quantization's
    quantize_dynamic: activations quantized at run time (MatMulInteger,
    DynamicQuantizeLinear, the embeddings' Gather from int8 tables)."""
    from onnxruntime.quantization import quantize_dynamic

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(_bert_legacy(folder), path)
    return describe(path)


def _bert_optimized(path, spec, realistic, half):
    """BERT through onnxruntime.transformers' optimizer for BERT models:
    attention, embedding and layer norms fused into com.microsoft ops; half:
    then in float16 with float32 inputs and outputs (keep_io_types), as its
    documentation converts it. The optimizer recognises attention as the
    eager implementation writes it (the default, scaled_dot_product_attention,
    it leaves unfused)."""
    from onnxruntime.transformers import optimizer

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimizer.optimize_model(
            _bert_legacy(folder, "eager"), model_type="bert", num_heads=HF_HEADS, hidden_size=HF_WIDTH
        )
        if half:
            optimized.convert_float_to_float16(keep_io_types=True)
    optimized.save_model_to_file(path)
    return describe(path)


# -- quantized, recurrent-state and control-flow models -----------------------


def _small_cnn():
    """Conv-BN-ReLU stages with a residual add, global pooling, a linear head."""
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
            self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
            self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            x = self.stem(x)
            x = self.down(x + self.block(x))
            return self.head(x.mean(dim=(2, 3)))

    return Net()


def _static_quantized(fmt, path, spec, realistic):
    """The small CNN (legacy exporter, opset 17) quantized by onnxruntime's
    quantize_static, int8 activations and weights, calibrated on random
    images."""
    import torch
    from onnxruntime import quantization

    torch.manual_seed(0)
    model = _small_cnn().eval()
    images = _randn(CALIBRATION_BATCH, 3, 32, 32)
    set_batchnorm_scale(model, images)

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": images[i : i + 1].numpy()} for i in range(len(images))])

        def get_next(self):
            return next(self.batches, None)

    formats = {"qdq": quantization.QuantFormat.QDQ, "qoperator": quantization.QuantFormat.QOperator}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = os.path.join(folder, "cnn.onnx")
        export(model, images[:EXPORT_BATCH], source, "legacy17", "logits")
        quantization.quantize_static(source, path, Reader(), quant_format=formats[fmt])
    return describe(path)


def _recurrent_state(kind, path, spec, realistic, width=16, hidden=32):
    """A one-layer unidirectional LSTM or GRU, batch-first, given its initial
    states as inputs and returning its outputs and final states."""
    import torch
    from torch import nn

    class Step(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(width, hidden, batch_first=True)

        def forward(self, x, *state):
            y, final = self.rnn(x, state if kind == "lstm" else state[0])
            return (y, *final) if kind == "lstm" else (y, final)

    torch.manual_seed(0)
    states = ["h0", "c0"] if kind == "lstm" else ["h0"]
    inputs = [_randn(EXPORT_BATCH, SEQ, width)] + [_randn(1, EXPORT_BATCH, hidden) for _ in states]
    outputs = ["y"] + [s.replace("0", "n") for s in states]
    # Initial and final states are [layers, batch, hidden]: the batch second.
    axes = {"x": {0: "batch", 1: "sequence"}, "y": {0: "batch", 1: "sequence"}}
    axes.update({n: {1: "batch"} for n in states + outputs[1:]})
    export_named(Step().eval(), inputs, path, spec.exporter, ["x", *states], outputs, axes)
    return describe(path)


def _scripted(kind, width=16, hidden=32):
    """Control flow that torch.jit.script keeps as such and the legacy
    exporter writes as If or Loop: "if", a branch on the input's mean
    between two activations; "loop", a recurrence written as a loop over
    time."""
    import torch
    from torch import nn

    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Linear(width, hidden)
            self.head = nn.Linear(hidden, 8)

        def forward(self, x):
            h = self.trunk(x)
            if bool(x.mean() > 0):
                h = torch.relu(h)
            else:
                h = torch.tanh(h)
            return self.head(h)

    class Recurrence(nn.Module):
        def __init__(self):
            super().__init__()
            self.input = nn.Linear(width, hidden)
            self.recurrent = nn.Linear(hidden, hidden, bias=False)
            self.head = nn.Linear(hidden, 8)
            self.hidden = hidden  # (a script cannot read the closure's)

        def forward(self, x):
            h = torch.zeros(x.shape[0], self.hidden)
            for t in range(x.shape[1]):
                h = torch.tanh(self.input(x[:, t]) + self.recurrent(h))
            return self.head(h)

    model = Branch() if kind == "if" else Recurrence()
    head = model.head
    shape = (width,) if kind == "if" else (SEQ, width)
    scripted = torch.jit.script(model)  # shares the module's parameters
    return scripted, _randn(EXPORT_BATCH, *shape), _randn(CALIBRATION_BATCH, *shape), "y", head


def _segmenter(classes=5):
    """A small fully convolutional segmenter: strided convolutions, a 1x1
    classifier, and the scores upsampled back to the input's height and
    width, both dynamic."""
    from torch import nn

    class Segmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, stride=2, padding=1),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.BatchNorm2d(32),
                nn.ReLU(),
            )
            self.classifier = nn.Conv2d(32, classes, 1)

        def forward(self, x):
            scores = self.classifier(self.features(x))
            return nn.functional.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)

    model = Segmenter()
    return model, _randn(EXPORT_BATCH, *IMAGE), _randn(CALIBRATION_BATCH, *IMAGE), "scores", model.classifier


# -- graphs written with onnx.helper -----------------------------------------


def _save(graph, path, opset=13, extra_domains=()):
    import onnx
    from onnx import helper

    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in extra_domains]
    model = helper.make_model(graph, opset_imports=imports, producer_name="families")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return describe(path)


def _he(rng, shape):
    """He-normal weights, so activations stay O(1) through ReLU layers."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _keras_nhwc(path, spec, realistic):
    """What tf2onnx writes for a small Keras CNN: an NHWC input transposed
    to NCHW, SAME-padded convolutions (the stride-2 ones pad asymmetrically),
    batch norm folded into Mul/Add or kept as a node, Flatten as a Reshape
    back in NHWC order, Dense as MatMul + Add, then Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = {}

    def init(name, array):
        inits[name] = numpy_helper.from_array(np.asarray(array), name)
        return name

    def conv(x, out, cin, cout, stride):
        w = init(f"{out}/kernel", _he(rng, (cout, cin, 3, 3)))
        b = init(f"{out}/bias", rng.standard_normal(cout).astype(np.float32) * 0.1)
        return helper.make_node("Conv", [x, w, b], [out], name=out, auto_pad="SAME_UPPER", strides=[stride, stride])

    gamma = lambda c: (1 + 0.1 * rng.standard_normal(c)).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        conv("nchw", "conv1", 3, 16, 1),
        # Batch norm folded by the converter into a per-channel scale and shift.
        helper.make_node("Mul", ["conv1", init("bn1/scale", gamma(16).reshape(16, 1, 1))], ["bn1_mul"], name="bn1_mul"),
        helper.make_node(
            "Add",
            ["bn1_mul", init("bn1/shift", (0.1 * rng.standard_normal((16, 1, 1))).astype(np.float32))],
            ["bn1"],
            name="bn1",
        ),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        conv("relu1", "conv2", 16, 32, 2),
        helper.make_node(
            "BatchNormalization",
            [
                "conv2",
                init("bn2/gamma", gamma(32)),
                init("bn2/beta", (0.1 * rng.standard_normal(32)).astype(np.float32)),
                init("bn2/moving_mean", (0.1 * rng.standard_normal(32)).astype(np.float32)),
                init("bn2/moving_variance", rng.uniform(0.5, 2.0, 32).astype(np.float32)),
            ],
            ["bn2"],
            name="bn2",
            epsilon=1e-3,
        ),
        helper.make_node("Relu", ["bn2"], ["relu2"], name="relu2"),
        conv("relu2", "conv3", 32, 32, 2),
        helper.make_node("Relu", ["conv3"], ["relu3"], name="relu3"),
        helper.make_node("Transpose", ["relu3"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node(
            "Reshape", ["nhwc", init("flatten/shape", np.array([-1, 8 * 8 * 32]))], ["flat"], name="flatten"
        ),
        helper.make_node(
            "MatMul", ["flat", init("dense/kernel", _he(rng, (10, 8 * 8 * 32)).T.copy())], ["mm"], name="dense/MatMul"
        ),
        helper.make_node("Add", ["mm", init("dense/bias", np.zeros(10, np.float32))], ["logits"], name="dense/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["dense"], name="dense/Softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "keras_nhwc",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["batch", 32, 32, 3])],
        [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["batch", 10])],
        list(inits.values()),
    )
    return _save(graph, path)


def _paddle_constants(path, spec, realistic):
    """Weights in Constant nodes rather than initializers, as paddle2onnx
    writes them: Conv and Gemm read theirs from Constant outputs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def constant(name, array):
        tensor = numpy_helper.from_array(np.asarray(array), name + "_value")
        return helper.make_node("Constant", [], [name], name=name, value=tensor)

    nodes = [
        constant("conv_w", _he(rng, (8, 3, 3, 3))),
        constant("conv_b", (0.1 * rng.standard_normal(8)).astype(np.float32)),
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], name="conv2d_0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu_0"),
        helper.make_node("MaxPool", ["relu"], ["pool"], name="pool2d_0", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten_0", axis=1),
        constant("fc_w", _he(rng, (10, 8 * 8 * 8))),
        constant("fc_b", (0.1 * rng.standard_normal(10)).astype(np.float32)),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="linear_0", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "paddle_constants",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
    )
    return _save(graph, path)


def _custom_op(path, spec, realistic):
    """A node of a domain nobody converts, between ordinary ones."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(_he(np.random.default_rng(0), (8, 8)), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="dense"),
        helper.make_node("Frobnicate", ["h"], ["f"], name=spec.node, domain="com.example"),
        helper.make_node("Relu", ["f"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "custom_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [w],
    )
    return _save(graph, path, extra_domains=("com.example",))


def _graph(nodes, name, inputs, outputs, inits):
    from onnx import helper, numpy_helper

    return helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )


# A detection head's anchors: an 8x8 grid over a 640-pixel image.
GRID, STRIDE, CLASSES = 8, 80.0, 80


def _yolo_head(layout, path, spec, realistic):
    """A YOLO-style detector: a small convolutional trunk, a 1x1 head, boxes
    decoded in pixels (anchor centre + offset, times the stride: up to ~640)
    and class scores through a sigmoid (0 to 1). layout "concat": one output
    [batch, 4 + classes, anchors] (YOLOv8); "rows": [batch, anchors, 5 +
    classes] with an objectness score (YOLOv5); "split": boxes and scores as
    two outputs."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    anchors = GRID * GRID
    extra = 1 if layout == "rows" else 0
    head = 4 + extra + CLASSES
    centres = (np.stack(np.meshgrid(np.arange(GRID), np.arange(GRID)), 0).reshape(2, -1) + 0.5).astype(np.float32)
    inits = {
        "conv1.w": _he(rng, (16, 3, 3, 3)),
        "conv1.b": (0.1 * rng.standard_normal(16)).astype(np.float32),
        "conv2.w": _he(rng, (32, 16, 3, 3)),
        "conv2.b": (0.1 * rng.standard_normal(32)).astype(np.float32),
        "head.w": (rng.standard_normal((head, 32, 1, 1)) / np.sqrt(32)).astype(np.float32),
        "head.b": np.concatenate([np.zeros(4), np.full(head - 4, -1.0)]).astype(np.float32),
        "shape": np.array([0, head, anchors]),
        "grid": np.concatenate([centres, centres]).reshape(1, 4, anchors),
        "stride": np.array(STRIDE, np.float32),
        "starts": np.array([0]),
        "mid": np.array([4]),
        "ends": np.array([head]),
        "axis": np.array([1]),
    }
    nodes = [
        helper.make_node("Conv", ["images", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], name="conv2", pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "head.w", "head.b"], ["h"], name="head"),
        helper.make_node("Reshape", ["h", "shape"], ["flat"], name="flatten"),
        helper.make_node("Slice", ["flat", "starts", "mid", "axis"], ["box_raw"], name="box_slice"),
        helper.make_node("Slice", ["flat", "mid", "ends", "axis"], ["cls_raw"], name="cls_slice"),
        helper.make_node("Add", ["box_raw", "grid"], ["box_grid"], name="box_grid"),
        helper.make_node("Mul", ["box_grid", "stride"], ["boxes"], name="box_pixels"),
        helper.make_node("Sigmoid", ["cls_raw"], ["scores"], name="scores"),
    ]
    shape = ["batch", 3, 4 * GRID, 4 * GRID]
    if layout == "split":
        outputs = [
            ("boxes", TensorProto.FLOAT, ["batch", 4, anchors]),
            ("scores", TensorProto.FLOAT, ["batch", head - 4, anchors]),
        ]
    else:
        nodes.append(helper.make_node("Concat", ["boxes", "scores"], ["detections"], name="concat", axis=1))
        if layout == "rows":
            nodes[-1].output[0] = "by_channel"
            nodes.append(helper.make_node("Transpose", ["by_channel"], ["detections"], name="to_rows", perm=[0, 2, 1]))
            outputs = [("detections", TensorProto.FLOAT, ["batch", anchors, head])]
        else:
            outputs = [("detections", TensorProto.FLOAT, ["batch", head, anchors])]
    graph = _graph(nodes, f"yolo_{layout}", [("images", TensorProto.FLOAT, shape)], outputs, inits)
    return _save(graph, path)


def _embedding_l2(path, spec, realistic):
    """A sentence embedding: token ids through a table whose row 0 is the
    padding token (zeros), mean-pooled, projected and L2-normalised. A
    sequence of padding alone pools to a zero vector, which normalises to
    zero (ONNX's LpNormalization divides by the norm only where it is not 0)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(4)
    table = (0.5 * rng.standard_normal((VOCAB, WIDTH))).astype(np.float32)
    table[0] = 0
    inits = {"table": table, "proj": _he(rng, (WIDTH, WIDTH)).T.copy()}
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["tokens"], name="embed"),
        helper.make_node("ReduceMean", ["tokens"], ["pooled"], name="pool", axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "proj"], ["projected"], name="proj"),
        helper.make_node("LpNormalization", ["projected"], ["embedding"], name="l2norm", p=2, axis=-1),
    ]
    graph = _graph(
        nodes,
        "embedding_l2",
        [("ids", TensorProto.INT64, ["batch", SEQ])],
        [("embedding", TensorProto.FLOAT, ["batch", WIDTH])],
        inits,
    )
    return _save(graph, path)


def _nonfinite_outputs(path, spec, realistic):
    """Outputs that are correctly NaN or infinite in places: the square root
    and the reciprocal of a projection that is negative or zero for some
    inputs (about a third of the elements)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(5)
    inits = {"w": _he(rng, (16, 8)).T.copy(), "b": np.full(16, 0.5, np.float32), "one": np.array(1.0, np.float32)}
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"], name="dense"),
        helper.make_node("Add", ["xw", "b"], ["h"], name="bias"),
        helper.make_node("Sqrt", ["h"], ["root"], name="root"),
        helper.make_node("Relu", ["h"], ["positive"], name="relu"),
        helper.make_node("Div", ["one", "positive"], ["inverse"], name="inverse"),
    ]
    graph = _graph(
        nodes,
        "nonfinite_outputs",
        [("x", TensorProto.FLOAT, ["batch", 8])],
        [("root", TensorProto.FLOAT, ["batch", 16]), ("inverse", TensorProto.FLOAT, ["batch", 16])],
        inits,
    )
    return _save(graph, path)


def _near_tied_softmax(path, spec, realistic):
    """A classifier whose first two classes' weights differ by 1e-4: their
    probabilities are nearly tied on every input."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(6)
    w = (rng.standard_normal((10, 16)) / 4).astype(np.float32)
    w[1] = w[0] + 1e-4
    inits = {"w": w, "b": np.zeros(10, np.float32)}
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["logits"], name="classifier", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = _graph(
        nodes,
        "near_tied_softmax",
        [("x", TensorProto.FLOAT, ["batch", 16])],
        [("probabilities", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return _save(graph, path)


def _log_matmul(path, spec, realistic):
    """A log transform of the input, then a projection: NaN on every element
    for inputs drawn around zero."""
    from onnx import TensorProto, helper

    inits = {"w": _he(np.random.default_rng(7), (4, 8)).T.copy()}
    nodes = [
        helper.make_node("Log", ["x"], ["log"], name="log"),
        helper.make_node("MatMul", ["log", "w"], ["y"], name="dense"),
    ]
    graph = _graph(
        nodes, "log_matmul", [("x", TensorProto.FLOAT, ["batch", 8])], [("y", TensorProto.FLOAT, ["batch", 4])], inits
    )
    return _save(graph, path)


def _lp_normalization(path, spec, realistic):
    """L2 normalisation of the input rows, then a projection: an all-zero row
    normalises to zeros."""
    from onnx import TensorProto, helper

    inits = {"w": _he(np.random.default_rng(8), (4, 8)).T.copy()}
    nodes = [
        helper.make_node("LpNormalization", ["x"], ["unit"], name="l2norm", p=2, axis=1),
        helper.make_node("MatMul", ["unit", "w"], ["y"], name="dense"),
    ]
    graph = _graph(
        nodes,
        "lp_normalization",
        [("x", TensorProto.FLOAT, ["batch", 8])],
        [("y", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    return _save(graph, path)


def _glu_mlp(path, spec, realistic):
    """A gated MLP as transformer blocks write it: one projection split in
    two equal halves, one gating the other through a sigmoid (GLU)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(9)
    inits = {"up": _he(rng, (2 * WIDTH, WIDTH)).T.copy(), "down": _he(rng, (WIDTH, WIDTH)).T.copy()}
    nodes = [
        helper.make_node("MatMul", ["x", "up"], ["h"], name="up"),
        helper.make_node("Split", ["h"], ["value", "gate"], name="split", axis=-1),
        helper.make_node("Sigmoid", ["gate"], ["g"], name="sigmoid"),
        helper.make_node("Mul", ["value", "g"], ["gated"], name="gated"),
        helper.make_node("MatMul", ["gated", "down"], ["y"], name="down"),
    ]
    graph = _graph(
        nodes,
        "glu_mlp",
        [("x", TensorProto.FLOAT, ["batch", SEQ, WIDTH])],
        [("y", TensorProto.FLOAT, ["batch", SEQ, WIDTH])],
        inits,
    )
    return _save(graph, path)


def _topk_classifier(path, spec, realistic):
    """A classifier that returns its five best classes: scores and indices
    (TopK), which must come in the specification's order among ties."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(10)
    inits = {"w": (rng.standard_normal((20, 16)) / 4).astype(np.float32), "k": np.array([5])}
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["logits"], name="classifier", transB=1),
        helper.make_node("Softmax", ["logits"], ["p"], name="softmax", axis=-1),
        helper.make_node("TopK", ["p", "k"], ["scores", "classes"], name="top5", axis=-1),
    ]
    graph = _graph(
        nodes,
        "topk_classifier",
        [("x", TensorProto.FLOAT, ["batch", 16])],
        [("scores", TensorProto.FLOAT, ["batch", 5]), ("classes", TensorProto.INT64, ["batch", 5])],
        inits,
    )
    return _save(graph, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--only", nargs="+", help="build only these models")
    args = parser.parse_args(argv)
    entries = build(args.out_dir, only=args.only)
    with open(os.path.join(args.out_dir, "index.json"), "w") as f:
        json.dump(entries, f, indent=2)
    for e in entries:
        print(
            f"{e['name']}: {e['expect']}, opset {e['opset']}, {e['nodes']} nodes, {e['build_seconds']}s",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
