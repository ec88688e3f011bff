"""The model-family suite (families.py) through every step of a conversion:
each model that should convert is normalised, converted, probed, saved and
verified against onnxruntime at two batch sizes; each that should not is
refused with one line naming the node and its op."""

import re

import families
import numpy as np
import onnx
import pytest

from onnx2pt_py import normalise, probes
from onnx2pt_py.errors import UserError
from onnx2pt_py.job import ConversionJob

# The suite's tolerances: float32 results of deep networks computed in
# another summation order differ by more than the defaults allow.
ATOL, RTOL = 1e-4, 1e-3
BATCH_SIZES = [1, 3]

SPECS = families.specs()


def param(spec, converts=False):
    # Exporting and converting full torchvision networks, torch.export
    # tracing, and building transformers models take seconds each; the
    # hand-written graphs take milliseconds. The slow ones that convert are
    # converted and verified through the binary by TestFamilies as well.
    slow = spec.family in ("torchvision", "huggingface") or spec.exporter == "dynamo"
    marks = [pytest.mark.slow] if slow else []
    if slow and converts:
        marks.append(pytest.mark.binary_covers)
    return pytest.param(spec, id=spec.name, marks=marks)


CONVERTS = [param(s, converts=True) for s in SPECS if s.expect == "converts"]
FAILS = [param(s) for s in SPECS if s.expect == "fails"]


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    """The suite's models, each built on first use and kept for the session
    (a run of a few tests builds only theirs)."""
    folder = str(tmp_path_factory.mktemp("families"))
    built = {}

    def get(spec):
        if spec.name not in built:
            (built[spec.name],) = families.build(folder, only=[spec.name])
        return built[spec.name]

    return get


@pytest.mark.parametrize("spec", CONVERTS)
def test_family_model_converts_and_verifies(suite, spec, tmp_path):
    entry = suite(spec)
    job = ConversionJob(entry["path"], batch_sizes=BATCH_SIZES, atol=ATOL, rtol=RTOL, **entry["verify"])
    job.load()
    plan = job.normalise()
    assert not plan["remaining"], normalise.describe_failures(plan["remaining"])
    job.convert()
    probed = job.probe()
    # The batch axis stayed dynamic through export and conversion; the edge
    # probe is at the larger batch size.
    assert [p["batch"] for p in probed] == BATCH_SIZES + BATCH_SIZES[-1:]
    assert [p["output_shapes"][0][0] for p in probed] == BATCH_SIZES + BATCH_SIZES[-1:]
    assert [p["kind"] for p in probed][-1] == "edge"
    out = str(tmp_path / "model.pt")
    saved = job.save(out, None, {})
    result = job.verify(out, saved["sha256"])
    assert result["passed"], result["outputs"]
    # Passing within ATOL says something only about outputs well above it
    # (at the bare default initialisation, mobilenet_v3's are ~1e-9).
    peak = max(float(np.abs(o[np.isfinite(o)]).max()) for outputs in job.expected() for o in outputs)
    assert peak > 100 * ATOL, f"outputs too small to verify anything: max |y| = {peak:.2g}"


@pytest.mark.parametrize("spec", FAILS)
def test_family_model_fails_naming_node_and_op(suite, spec):
    entry = suite(spec)
    job = ConversionJob(entry["path"], batch_sizes=BATCH_SIZES, atol=ATOL, rtol=RTOL)
    with pytest.raises(UserError) as caught:
        job.load()
        job.normalise()
        job.convert()
    message = str(caught.value)
    assert "\n" not in message
    # The names as in the ONNX file, where a user looks them up.
    assert re.search(rf"\b{re.escape(entry['fails_on'])}\b", message), message
    assert re.search(rf"\b{re.escape(entry['node'])}\b", message), message


LEGACY_TORCHVISION = [param(s) for s in SPECS if s.family == "torchvision" and s.exporter.startswith("legacy")]


@pytest.mark.parametrize("spec", LEGACY_TORCHVISION)
def test_default_initialisation_makes_the_legacy_exporter_share_initializers(suite, spec):
    # Why these networks are exported untrained: equal tensors (zero conv
    # biases, and the biases the exporter folds BatchNorm into while its
    # mean and shift are zero) are stored once and reached through Identity
    # nodes, which onnx2torch cannot take as weights. Without them, the
    # suite would no longer test that case.
    model = onnx.load(suite(spec)["path"])
    initializers = {i.name for i in model.graph.initializer}
    shared = [n for n in model.graph.node if n.op_type == "Identity" and n.input[0] in initializers]
    assert shared


TOKEN_MODELS = [param(s) for s in SPECS if s.name.startswith("token_embedding")]


@pytest.mark.parametrize("spec", TOKEN_MODELS)
def test_token_ids_are_drawn_from_the_whole_embedding_table(suite, spec):
    entry = suite(spec)
    (name,) = [i["name"] for i in entry["inputs"]]
    assert probes.int_bounds(onnx.load(entry["path"])) == {name: families.VOCAB}
    job = ConversionJob(entry["path"], batch_sizes=BATCH_SIZES)
    job.load()
    ids = np.concatenate([inputs[0].ravel() for _, inputs in job.probes()])
    assert ids.min() >= 0 and ids.max() < families.VOCAB
    # Beyond the bound for integers nothing bounds: rows past the first few are used.
    assert ids.max() >= probes.DEFAULT_INT_BOUND


# What each model of these families is there to test: the ops it must
# contain, so that a change of exporter or tool that writes the model
# differently shows here rather than as a suite that tests less.
CONTAINS = {
    "bert_dynamic_int8": {"DynamicQuantizeLinear", "MatMulInteger"},
    "bert_ort_optimized": {
        "com.microsoft:EmbedLayerNormalization",
        "com.microsoft:Attention",
        "com.microsoft:SkipLayerNormalization",
        "com.microsoft:BiasGelu",
    },
    "bert_ort_optimized_float16": {"com.microsoft:Attention", "com.microsoft:SkipLayerNormalization"},
    "cnn_static_qdq": {"QuantizeLinear", "DequantizeLinear", "Conv"},
    "cnn_static_qoperator": {"QLinearConv", "com.microsoft:QLinearAdd", "com.microsoft:QGemm"},
    "if_scripted_legacy17": {"If"},
    "loop_scripted_legacy17": {"Loop"},
    "lstm_initial_state_legacy17": {"LSTM"},
    "gru_initial_state_legacy17": {"GRU"},
    "segmenter_dynamic_hw_legacy17": {"Resize"},
}


def op_types(path):
    model = onnx.load(path, load_external_data=False)
    return {f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in model.graph.node}


@pytest.mark.parametrize("spec", [param(s) for s in SPECS if s.name in CONTAINS])
def test_family_model_has_the_ops_it_tests(suite, spec):
    entry = suite(spec)
    assert CONTAINS[spec.name] <= op_types(entry["path"]), op_types(entry["path"])
    if spec.name == "bert_ort_optimized_float16":
        model = onnx.load(entry["path"])
        # Float16 inside, float32 at the inputs and outputs (keep_io_types).
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
        assert {o.type.tensor_type.elem_type for o in model.graph.output} == {onnx.TensorProto.FLOAT}


HF_PAIRS = [pytest.param(kind, id=kind, marks=[pytest.mark.slow]) for kind in families.HUGGINGFACE]


@pytest.mark.parametrize("kind", HF_PAIRS)
def test_both_exporters_name_the_dynamic_dimensions_alike(suite, kind):
    # The probes size dimensions by name (verify.dims): a decoder step's
    # attention mask spans the past and the new sequence, which torch.export
    # derives under a name of its own until the suite renames it.
    by_name = {s.name: s for s in SPECS}
    legacy, dynamo = (suite(by_name[f"{kind}_{e}"]) for e in ("legacy17", "dynamo"))
    assert legacy["inputs"] == dynamo["inputs"]
    dims = {d for i in legacy["inputs"] for d in i["shape"] if isinstance(d, str)}
    assert "batch" in dims and dims <= {
        "batch",
        "sequence",
        "encoder_sequence",
        "past_sequence",
        "past_sequence + sequence",
    }
    assert set(legacy["verify"].get("dims", {})) <= dims


def test_the_recurrent_initial_states_are_inputs_with_the_batch_second(suite):
    by_name = {s.name: s for s in SPECS}
    entry = suite(by_name["lstm_initial_state_legacy17"])
    assert [(i["name"], i["shape"]) for i in entry["inputs"]] == [
        ("x", ["batch", "sequence", 16]),
        ("h0", [1, "batch", 32]),
        ("c0", [1, "batch", 32]),
    ]


def test_a_model_is_built_once_per_generator_and_package_versions(tmp_path, monkeypatch):
    monkeypatch.setenv(families.CACHE_ENV, str(tmp_path / "cache"))
    (first,) = families.build(str(tmp_path / "a"), only=["glu_mlp"])

    def build_one(*args):
        raise AssertionError("built again")

    monkeypatch.setattr(families, "_build_one", build_one)
    (second,) = families.build(str(tmp_path / "b"), only=["glu_mlp"])
    assert second["path"] == str(tmp_path / "b" / "glu_mlp" / "glu_mlp.onnx")
    assert {**second, "path": None} == {**first, "path": None}
    with open(first["path"], "rb") as a, open(second["path"], "rb") as b:
        assert a.read() == b.read()
    # Another generator or other package versions: built anew.
    monkeypatch.setattr(families, "generator_key", lambda: "another")
    with pytest.raises(AssertionError, match="built again"):
        families.build(str(tmp_path / "c"), only=["glu_mlp"])
    monkeypatch.setenv(families.CACHE_ENV, "off")
    with pytest.raises(AssertionError, match="built again"):
        families.build(str(tmp_path / "d"), only=["glu_mlp"])
