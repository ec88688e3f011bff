"""The `source` artifact: a converted model as readable PyTorch code.

For models/resnet8.pt, a folder models/resnet8/ holding

    model.py           one torch.nn.Module subclass (and small helpers) that
                       imports torch and the standard library alone
    model.safetensors  its state_dict, loadable with strict=True (no pickle)
    README.md          where it came from, how to load it, how it verified

model.py is written from onnx2torch's GraphModule, node by node:

- torch.nn layers the converter made (Conv2d, BatchNorm2d, Linear, LSTM,
  ...) stay layers, rebuilt from their constructor arguments and placed in
  a module tree named after the graph: a layer's weight initializer
  `layer1.0.conv1.weight` puts it at `self.layer1[0].conv1`, so the state
  dict keeps the exporter's name; otherwise the node's name scope
  (`/layer1/layer1.0/conv1/Conv`, or torch.export's name_scopes metadata)
  or the node's own name (`conv_1`) decides;
- patterns that are a layer become one: MatMul by a constant matrix then
  Add of a constant vector is nn.Linear, Gather of rows of a constant
  matrix is nn.Embedding, LayerNormalization over the last axis with
  constant scale and bias is nn.LayerNorm, Conv with constant weights is
  nn.ConvNd;
- parameter-free layers and onnx2torch's op modules become torch calls
  (torch.relu, F.max_pool2d, x.permute(...), a + b, x.reshape(-1, 64)),
  with constant operands written as literals where they are small;
- values computed from constants alone are computed now, once, and stored
  (or written as literals);
- an op module with no emitter here is copied: its class's methods (and
  the helper functions they call) are copied into model.py, minus what
  only ONNX export uses, as long as they need nothing but torch and the
  standard library. A GraphModule inside one (the branches of If, the body
  of Loop) is written as a class of its own, the same way.

Where none of this works the artifact is not written: NotExpressible names
the node and the reason.

check() runs the folder in the artifacts' checker, an interpreter where
onnx2torch and onnx2pt_py cannot be imported (source_check.py): model.py
run, the safetensors loaded with strict=True, outputs at every probe, one
backward pass in training mode, and torch.export of the loaded module.
"""

import ast
import builtins
import inspect
import json
import keyword
import math
import operator
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types

import numpy as np
import torch
from torch import fx, nn

from . import model_info

FORMAT = "source"  # the artifact's name beside artifacts.FORMATS
FILES = ("model.py", "model.safetensors", "README.md")

# Constants with at most this many elements are written as literals.
LITERAL_ELEMENTS = 16
# Packages whose code may be copied into model.py (the converters' modules
# and what they call).
COPYABLE = ("onnx2torch", "onnx2pt_py")


class NotExpressible(Exception):
    """The model cannot be written as torch code: node is the ONNX node
    (or converted module) in the way, reason why."""

    def __init__(self, node, reason):
        super().__init__(f"{node}: {reason}")
        self.node, self.reason = node, reason


class _Decline(Exception):
    """An emitter cannot express this instance; the module is copied instead."""


# -- writing -------------------------------------------------------------------


def write(torch_model, onnx_model, folder, metadata, example, class_name=None):
    """Write model.py, model.safetensors and README.md for torch_model (the
    GraphModule onnx2torch made from onnx_model, the graph it converted)
    into folder. example: one probe's inputs (arrays or tensors), run once
    to see each value's dtype and rank. metadata: the host's metadata for
    artifacts (describe_origin reads it) for the docstring and README.

    Returns {"class", "modules", "parameters", "buffers", "state_keys",
    "copied", "files", "formatted", ...}; raises NotExpressible."""
    metadata = dict(metadata or {})
    inputs = [_as_tensor(x) for x in example]
    name = class_name or class_name_for(describe_origin(metadata)["file"] or onnx_model.graph.name or "model")
    demoted = set()
    while True:
        program = _Program(onnx_model, metadata, demoted)
        program.emit_top(torch_model, name, inputs)
        code = program.assemble()
        model = program.instantiate(code, name)
        # weights no gradient reaches (used for their shape, say) are buffers
        unreached = (_params_without_gradient(model, inputs) & program.free_parameters) - demoted
        if not unreached:
            break
        demoted |= unreached
    code, formatted = format_code(code)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    for key, t in state.items():
        if t.dtype not in SAFETENSORS_DTYPES:
            raise NotExpressible(key, f"safetensors cannot hold {t.dtype}")
    # Written beside the folder, then moved in: a failure leaves no half artifact.
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".source-") as tmp:
        with open(os.path.join(tmp, "model.py"), "w") as f:
            f.write(code)
        save_safetensors(state, os.path.join(tmp, "model.safetensors"), {"class": name})
        os.makedirs(folder, exist_ok=True)
        for file in ("model.py", "model.safetensors"):
            os.replace(os.path.join(tmp, file), os.path.join(folder, file))
    summary = {
        "class": name,
        "modules": sum(1 for m in model.modules() if not isinstance(m, (_scope_types(model)))) - 1,
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameter_tensors": len(list(model.parameters())),
        "buffers": sum(b.numel() for b in model.buffers()),
        "state_keys": list(state),
        "copied": sorted(program.copied),
        "layers": dict(sorted(program.layer_counts.items())),
        "formatted": formatted,
        "files": list(FILES),
        "sha256": {f: model_info.sha256_file(os.path.join(folder, f)) for f in ("model.py", "model.safetensors")},
    }
    write_readme(folder, summary, metadata)
    return summary


def load_code(summary):
    """How a user loads the folder (PATH: the folder), for the report."""
    return (
        "import sys\nfrom safetensors.torch import load_file\n"
        f"sys.path.insert(0, PATH)\nfrom model import {summary['class']}\n"
        f"model = {summary['class']}()\nmodel.load_state_dict(load_file(PATH + '/model.safetensors'))"
    )


def describe_origin(metadata):
    """{"file", "sha256", "opset", "created_by", "producer", "versions"} from
    the metadata the host writes with every artifact (source as
    {"file", "sha256"}), or from flat keys (source as a path)."""
    meta = dict(metadata or {})
    source = meta.get("source")
    out = {"file": None, "sha256": meta.get("sha256"), "opset": meta.get("opset"), "producer": meta.get("producer")}
    if isinstance(source, dict):
        out["file"] = source.get("file")
        out["sha256"] = source.get("sha256") or out["sha256"]
    elif source:
        out["file"] = os.path.basename(str(source))
    out["created_by"] = meta.get("created_by")
    versions = meta.get("versions")
    out["versions"] = versions if isinstance(versions, dict) else None
    return out


def class_name_for(source):
    """A class name from a file name: resnet8.onnx -> Resnet8."""
    stem = os.path.splitext(os.path.basename(str(source)))[0]
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", stem) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    return name if name[0].isalpha() else "Model" + name


def _scope_types(model):
    module = sys.modules.get(type(model).__module__)
    scope = getattr(module, "Scope", None)
    return (scope, nn.ModuleList) if isinstance(scope, type) else (nn.ModuleList,)


def _as_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x)))


def _params_without_gradient(model, inputs):
    """Names of parameters that one backward pass leaves without a
    gradient: weights the outputs do not depend on (used only for their
    shape, say), which the model keeps as buffers instead. Run in eval mode,
    which changes no state (BatchNorm's statistics stay as loaded)."""
    params = dict(model.named_parameters())
    if not params:
        return set()
    try:
        with torch.enable_grad():
            outputs = model(*inputs)
            losses = [o.float().sum() for o in _flat_tensors(outputs) if o.is_floating_point() and o.requires_grad]
            if losses:
                sum(losses).backward()
    except Exception:  # the check reports it; here it only decides buffers
        model.zero_grad(set_to_none=True)
        return set()
    unreached = {name for name, p in params.items() if p.grad is None}
    model.zero_grad(set_to_none=True)
    return unreached


def _flat_tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat_tensors(v)]
    return []


# -- the program: model.py as a whole ---------------------------------------------


class _Program:
    """model.py under construction: imports, helpers copied or written,
    and the classes, with the state each class's instance is loaded with."""

    def __init__(self, onnx_model, metadata, demoted=()):
        from onnx2torch.onnx_graph import OnnxGraph

        self.onnx_model = onnx_model
        self.graph = OnnxGraph(onnx_model.graph)
        self.metadata = metadata
        self.demoted = set(demoted)  # state keys kept as buffers
        self.imports = {}  # name bound -> import line
        self.globals = {}  # name -> object it stands for (None: a class written here)
        self.by_object = {}  # id(object) -> global name
        self._keep = []  # objects behind by_object's ids
        self.constants_code = []  # module-level constants copied code reads
        self.functions_code = []  # functions copied from the converters
        self.copied_classes_code = []  # classes copied from the converters
        self.classes = []  # code of the classes written from graphs, dependencies first
        self.copied = set()  # classes copied from the converters
        self.layer_counts = {}
        self.uses_scope = False
        self.metas = {}  # id(module) -> meta of its output; id(graph module) -> metas of its inputs
        for name in ("torch", "nn", "F", "math", "Scope", "self"):
            self.globals[name] = None
        self._known_modules = {"torch": torch, "nn": nn, "F": torch.nn.functional, "math": math}
        self._scope_counts = None
        self.free_parameters = set()  # state keys of weights outside layers, parameters unless demoted

    # names at module level ------------------------------------------------

    def global_name(self, obj, wanted):
        """The module-level name for obj (a helper written here), reserving
        one based on wanted the first time."""
        key = id(obj)
        if key in self.by_object:
            return self.by_object[key]
        name = _identifier(wanted)
        if str(wanted).startswith("_") and re.fullmatch(r"_+\w+", str(wanted)):
            name = str(wanted)  # a private helper stays private
        base, n = name, 1
        while name in self.globals or keyword.iskeyword(name) or hasattr(builtins, name):
            n += 1
            name = f"{base}_{n}"
        self.globals[name] = obj
        self.by_object[key] = name
        self._keep.append(obj)
        return name

    def use_import(self, line_name):
        """Record that code uses torch ('torch'), torch.nn ('nn'),
        torch.nn.functional ('F') or math ('math')."""
        self.imports[line_name] = {
            "torch": "import torch",
            "nn": "from torch import nn",
            "F": "import torch.nn.functional as F",
            "math": "import math",
        }[line_name]

    def import_module(self, module, wanted):
        """A name bound to module (torch's or the standard library's) for
        copied code; a line `import x as y` where it is not one of ours."""
        for name, known in self._known_modules.items():
            if module is known:
                self.use_import(name)
                return name
        key = id(module)
        if key in self.by_object:
            return self.by_object[key]
        name = self.global_name(module, wanted)
        mod_name = module.__name__
        self.imports[name] = f"import {mod_name}" if name == mod_name else f"import {mod_name} as {name}"
        return name

    def import_from(self, obj, module_name, attr, wanted):
        key = id(obj)
        if key in self.by_object:
            return self.by_object[key]
        name = self.global_name(obj, wanted)
        self.imports[name] = f"from {module_name} import {attr}" + (f" as {name}" if name != attr else "")
        return name

    def scope_counts(self):
        """How many of the graph's nodes each name scope holds."""
        if self._scope_counts is None:
            self._scope_counts = {}
            for name, node in self.graph.nodes.items():
                scope = tuple(_NodeNames(node, name).scope)
                self._scope_counts[scope] = self._scope_counts.get(scope, 0) + 1
        return self._scope_counts

    # emitting ---------------------------------------------------------------

    def emit_top(self, torch_model, name, inputs):
        self.globals[name] = torch_model  # the class's name is taken before any helper is named
        self._observe(torch_model, inputs)
        onnx_inputs = [n for n in self.graph.input_values]
        _GraphClass(self, torch_model, name, arg_names=onnx_inputs, top=True).emit()

    def _observe(self, torch_model, inputs):
        """Run the model once on inputs, recording each module's output
        type (and, where it is static, value) and each GraphModule's inputs."""
        handles = []
        for module in torch_model.modules():
            handles.append(module.register_forward_hook(self._hook))
            if isinstance(module, fx.GraphModule):
                handles.append(module.register_forward_pre_hook(self._pre_hook))
        try:
            with torch.no_grad():
                torch_model(*inputs)
        finally:
            for h in handles:
                h.remove()

    def _hook(self, module, args, output):
        self.metas.setdefault(id(module), _meta(output))

    def _pre_hook(self, module, args):
        self.metas.setdefault(("inputs", id(module)), [_meta(a) for a in args])

    def add_class(self, code):
        self.classes.append(code)

    def assemble(self):
        """model.py's text (before formatting)."""
        origin = describe_origin(self.metadata)
        details = []
        if origin["sha256"]:
            details.append(f"ONNX sha256: {origin['sha256']}")
        if origin["opset"]:
            details.append(f"ONNX opset: {origin['opset']}")
        if origin["producer"]:
            details.append(f"Producer: {origin['producer']}")
        details.append(
            f"Written by {origin['created_by'] or 'onnx2pt'} from onnx2torch's conversion; "
            "the weights are in model.safetensors (see README.md)."
        )
        title = f"PyTorch model converted from {origin['file'] or 'an ONNX model'}."
        parts = ['"""' + title + "\n\n" + "\n".join(details) + '\n"""']
        std = sorted(line for line in self.imports.values() if _is_std_import(line))
        third = [self.imports[k] for k in ("torch", "F") if k in self.imports]
        third += sorted(
            line
            for k, line in self.imports.items()
            if not _is_std_import(line) and k not in ("torch", "F", "nn") and line.startswith("import ")
        )
        if "nn" in self.imports:
            third.append(self.imports["nn"])
        third += sorted(
            line
            for k, line in self.imports.items()
            if not _is_std_import(line) and k != "nn" and line.startswith("from ")
        )
        if std:
            parts.append("\n".join(std))
        if third:
            parts.append("\n".join(third))
        blocks = []
        if self.constants_code:
            blocks.append("\n".join(self.constants_code))
        blocks += self.functions_code
        if self.uses_scope:
            blocks.append(_SCOPE_CLASS)
        blocks += self.copied_classes_code + self.classes
        return "\n\n\n".join([parts[0], "\n\n".join(parts[1:])] + blocks) + "\n"

    def instantiate(self, code, name):
        """The class written in code, built and loaded with its state."""
        module = types.ModuleType("onnx2pt_source_model")
        module.__file__ = "<model.py>"
        sys.modules[module.__name__] = module  # torch.export and inspect look classes up there
        try:
            exec(compile(code, "<model.py>", "exec"), module.__dict__)
        except Exception as e:
            raise NotExpressible("model.py", f"the written code does not run: {type(e).__name__}: {e}") from e
        model = module.__dict__[name]()
        state = self.state
        try:
            model.load_state_dict(state, strict=True)
        except Exception as e:
            raise NotExpressible("model.py", f"the state does not load: {_first_line(e)}") from e
        return model.eval()


def _is_std_import(line):
    parts = line.split()
    top = parts[1].split(".")[0]
    return top in getattr(sys, "stdlib_module_names", ()) or top in ("math", "operator", "functools", "itertools")


_SCOPE_CLASS = '''class Scope(nn.Module):
    """Layers and weights grouped as the ONNX graph's names group them."""

    def __getitem__(self, index):
        return getattr(self, str(index))'''


def _first_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


# -- values ------------------------------------------------------------------------

_DYNAMIC = object()


class _Meta:
    """What a value was on the example inputs: a tensor's dtype and shape,
    a sequence's items' metas, or another Python type."""

    def __init__(self, kind, dtype=None, shape=None, items=None, pytype=None):
        self.kind, self.dtype, self.shape, self.items, self.pytype = kind, dtype, shape, items, pytype

    @property
    def rank(self):
        return len(self.shape) if self.kind == "tensor" else None

    def is_float(self):
        return self.kind == "tensor" and self.dtype.is_floating_point


def _meta(value):
    if isinstance(value, torch.Tensor):
        return _Meta("tensor", value.dtype, tuple(value.shape))
    if isinstance(value, (tuple, list)):
        return _Meta("seq", items=[_meta(v) for v in value], pytype=type(value))
    return _Meta("other", pytype=type(value))


class _Value:
    """An fx node's result in forward: expr, the code naming it (None for a
    static value not needed there yet); static, the value itself where
    constants alone determine it; meta, what it was on the example;
    origin, the ONNX name a static value came from (an initializer or a
    Constant node)."""

    def __init__(self, expr=None, static=_DYNAMIC, meta=None, origin=None):
        self.expr, self.static, self.meta, self.origin = expr, static, meta, origin

    @property
    def is_static(self):
        return self.static is not _DYNAMIC

    def rank(self):
        if self.is_static and isinstance(self.static, torch.Tensor):
            return self.static.dim()
        return self.meta.rank if self.meta is not None else None

    def dtype(self):
        if self.is_static and isinstance(self.static, torch.Tensor):
            return self.static.dtype
        if self.meta is not None and self.meta.kind == "tensor":
            return self.meta.dtype
        return None


# -- literals ------------------------------------------------------------------------

_DTYPE_NAMES = {
    getattr(torch, n): f"torch.{n}"
    for n in (
        "float32 float64 float16 bfloat16 int64 int32 int16 int8 uint8 bool complex64 complex128 "
        "uint16 uint32 uint64 float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz"
    ).split()
    if hasattr(torch, n)
}


class _NoLiteral(Exception):
    pass


def literal(value, program=None):
    """Python source for a plain value; _NoLiteral where there is none."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return repr(value) if not isinstance(value, str) else json.dumps(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(float(value))
    if isinstance(value, (np.integer,)):
        return repr(int(value))
    if isinstance(value, (np.floating,)):
        return literal(float(value))
    if isinstance(value, np.bool_):
        return repr(bool(value))
    if isinstance(value, torch.dtype):
        if program is not None:
            program.use_import("torch")
        if value not in _DTYPE_NAMES:
            raise _NoLiteral(f"dtype {value}")
        return _DTYPE_NAMES[value]
    if isinstance(value, torch.Size):
        if program is not None:
            program.use_import("torch")
        return f"torch.Size([{', '.join(literal(v) for v in value)}])"
    if isinstance(value, torch.device):
        if program is not None:
            program.use_import("torch")
        return f"torch.device({json.dumps(str(value))})"
    if isinstance(value, slice):
        return f"slice({literal(value.start, program)}, {literal(value.stop, program)}, {literal(value.step, program)})"
    if value is Ellipsis:
        return "..."
    if isinstance(value, tuple):
        items = [literal(v, program) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, program) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        if not value:
            return "set()" if isinstance(value, set) else "frozenset()"
        inner = "{" + ", ".join(sorted(literal(v, program) for v in value)) + "}"
        return inner if isinstance(value, set) else f"frozenset({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k, program)}: {literal(v, program)}" for k, v in value.items()) + "}"
    if isinstance(value, torch.Tensor) and program is not None:
        return tensor_literal(value, program)
    if program is not None and callable(value):
        return program_function(program, value)
    raise _NoLiteral(f"{type(value).__name__} value")


def tensor_literal(t, program):
    """torch.tensor(...) for a small tensor, exactly (floats by repr)."""
    program.use_import("torch")
    values = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        data = values.float().tolist()
    elif t.dtype.is_complex or t.dtype in (torch.uint16, torch.uint32, torch.uint64) or "float8" in str(t.dtype):
        raise _NoLiteral(f"{t.dtype} tensor")
    else:
        data = values.tolist()
    text = _nested_literal(data)
    default = {torch.float32: True, torch.int64: True, torch.bool: True}
    if t.dtype in default and _default_dtype_holds(data, t.dtype):
        return f"torch.tensor({text})"
    return f"torch.tensor({text}, dtype={_DTYPE_NAMES[t.dtype]})"


def _default_dtype_holds(data, dtype):
    """Whether torch.tensor(data) infers dtype: floats (a float32 tensor
    written with float literals), ints, bools."""
    flat = _flatten(data)
    if not flat:
        return False
    kinds = {type(v) for v in flat}
    if len(kinds) != 1:
        return False
    return {float: torch.float32, int: torch.int64, bool: torch.bool}.get(kinds.pop()) == dtype


def _flatten(data):
    if isinstance(data, list):
        return [x for d in data for x in _flatten(d)]
    return [data]


def _nested_literal(data):
    if isinstance(data, list):
        return "[" + ", ".join(_nested_literal(d) for d in data) + "]"
    return literal(data)


# Namespaces searched for a public name of a torch function or class.
def _torch_namespaces():
    out = [("torch", torch), ("F", torch.nn.functional), ("nn", nn)]
    for sub in ("special", "linalg", "fft", "nn.init"):
        mod = torch
        for part in sub.split("."):
            mod = getattr(mod, part, None)
        if mod is not None:
            out.append((f"torch.{sub}", mod))
    out.append(("torch.Tensor", torch.Tensor))
    return out


_PUBLIC_NAMES = None


def _public_torch_name(obj):
    """(import key, dotted name) for a torch function or class, or None."""
    global _PUBLIC_NAMES
    if _PUBLIC_NAMES is None:
        _PUBLIC_NAMES = {}
        for prefix, ns in reversed(_torch_namespaces()):
            for attr in dir(ns):
                if attr.startswith("_"):
                    continue
                try:
                    value = getattr(ns, attr)
                except Exception:
                    continue
                try:
                    hash(value)
                except TypeError:
                    continue
                _PUBLIC_NAMES[id(value)] = (prefix, f"{prefix}.{attr}", value)
    found = _PUBLIC_NAMES.get(id(obj))
    if found and found[2] is obj:
        return found[0].split(".")[0], found[1]
    return None


def program_function(program, fn):
    """A name in model.py for a function or class value: torch's public
    name, the standard library's, or a copy of one of the converters'."""
    public = _public_torch_name(fn)
    if public:
        program.use_import(public[0])
        return public[1]
    if isinstance(fn, types.BuiltinFunctionType) and getattr(fn, "__module__", None) in ("builtins", None):
        if getattr(builtins, fn.__name__, None) is fn:
            return fn.__name__
    module_name = getattr(fn, "__module__", "") or ""
    top = module_name.split(".")[0]
    if top in ("math", "operator", "functools", "itertools") or top in getattr(sys, "stdlib_module_names", ()):
        if getattr(sys.modules.get(module_name), getattr(fn, "__name__", ""), None) is fn:
            return program.import_from(fn, module_name, fn.__name__, fn.__name__)
        if module_name == "_operator" and getattr(operator, fn.__name__, None) is fn:
            return program.import_from(fn, "operator", fn.__name__, fn.__name__)
    if top in COPYABLE:
        return _Copier(program).function(fn)
    raise _NoLiteral(f"function {getattr(fn, '__qualname__', fn)!r} from {module_name or 'an unknown module'}")


# -- identifiers -----------------------------------------------------------------


def _identifier(text):
    out = re.sub(r"\W", "_", str(text))
    out = re.sub(r"_+", "_", out).strip("_") or "value"
    if out[0].isdigit():
        out = "v" + out
    if keyword.iskeyword(out):
        out += "_"
    return out


def _component(text):
    """A module-tree component: an identifier, or digits (a list index)."""
    text = str(text)
    if text.isdigit():
        return str(int(text))
    return _identifier(text)


class _Namer:
    """Unique local variable names."""

    RESERVED = {"self", "torch", "nn", "F", "math", "Scope", "super", "print", "len", "range", "list", "tuple"}

    def __init__(self, taken=()):
        self.used = set(self.RESERVED) | set(taken)

    def fresh(self, hint):
        base = _identifier(hint)
        if len(base) > 40:
            base = base[-40:].lstrip("_") or "value"
            if base[0].isdigit():
                base = "v" + base
        name, n = base, 0
        while name in self.used or keyword.iskeyword(name):
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name


# -- the module tree of one class -------------------------------------------------

# nn.Module's own attributes, which a layer or weight cannot be named.
_MODULE_ATTRIBUTES = set(dir(nn.Module)) | {"training", "forward"}


class _TreeNode:
    """A container (Scope, or ModuleList where every child is numbered) or
    a leaf: a layer (code that builds it), a parameter or a buffer (code
    for an empty tensor of its shape)."""

    def __init__(self, kind, code=None):
        self.kind, self.code, self.children = kind, code, {}

    def is_list(self):
        return (
            self.kind == "container"
            and self.children
            and all(k.isdigit() for k in self.children)
            and all(c.kind in ("container", "module") for c in self.children.values())
        )


class _Tree:
    def __init__(self):
        self.root = _TreeNode("container")

    def insert(self, path, kind, code):
        """Place a leaf at path, or at the nearest free variant of it (the
        last component numbered, or the first one that is taken by a leaf);
        returns the path used."""
        path = [_component(c) for c in path if str(c)] or ["value"]
        path = [c + "_" if c in _MODULE_ATTRIBUTES else c for c in path]
        if self._free(path):
            return self._put(path, kind, code)
        blocked = self._blocked_prefix(path)
        at = len(path) - 1 if blocked is None else blocked
        for n in range(1, 10000):
            renamed = f"{path[at]}_{n}" if not path[at].isdigit() else f"item{path[at]}_{n}"
            candidate = path[:at] + [renamed] + path[at + 1 :]
            if self._free(candidate):
                return self._put(candidate, kind, code)
        raise NotExpressible(".".join(path), "no free name in the module tree")

    def _blocked_prefix(self, path):
        """The index of the first component of path (before its last) that
        is a leaf, or None."""
        node = self.root
        for i, comp in enumerate(path[:-1]):
            child = node.children.get(comp)
            if child is None:
                return None
            if child.kind != "container":
                return i
            node = child
        return None

    def _free(self, path):
        node = self.root
        for comp in path[:-1]:
            child = node.children.get(comp)
            if child is None:
                return True
            if child.kind != "container":
                return False
            node = child
        if path[-1] in node.children:
            return False
        # a number among names (or a name among numbers) is allowed: the
        # container is then a Scope
        return True

    def _put(self, path, kind, code):
        node = self.root
        for comp in path[:-1]:
            node = node.children.setdefault(comp, _TreeNode("container"))
        node.children[path[-1]] = _TreeNode(kind, code)
        return path

    def access(self, path):
        """The expression for the object at path, from self."""
        expr, node = "self", self.root
        for comp in path:
            expr += f"[{comp}]" if comp.isdigit() else f".{comp}"
            node = node.children[comp]
        return expr

    def init_lines(self, program):
        lines = []
        self._init(self.root, "self", lines, program)
        return lines

    def _init(self, node, expr, lines, program):
        listed = node is not self.root and node.is_list()
        for name, child in node.children.items():
            child_expr = f"{expr}[{name}]" if name.isdigit() else f"{expr}.{name}"
            made = False  # the slot already holds what it should
            if child.kind == "container":
                if child.is_list():
                    program.use_import("nn")
                    size = max(int(k) for k in child.children) + 1
                    slots = []
                    for i in range(size):
                        slot = child.children.get(str(i))
                        scope = slot is not None and slot.kind == "container" and not slot.is_list()
                        slots.append("Scope()" if scope else "nn.Identity()")
                    program.uses_scope |= "Scope()" in slots
                    if len(set(slots)) == 1 and size > 3:
                        value = f"nn.ModuleList([{slots[0]} for _ in range({size})])"
                    else:
                        value = f"nn.ModuleList([{', '.join(slots)}])"
                else:
                    program.uses_scope = True
                    value = "Scope()"
                    made = listed
            elif child.kind == "parameter":
                program.use_import("nn")
                value = f"nn.Parameter({child.code})"
            elif child.kind == "buffer":
                lines.append(f"{expr}.register_buffer({json.dumps(name)}, {child.code})")
                continue
            else:
                value = child.code
            if not made:
                if listed or not name.isdigit():
                    lines.append(f"{child_expr} = {value}")
                else:
                    lines.append(f"setattr({expr}, {json.dumps(name)}, {value})")
            if child.kind == "container":
                self._init(child, child_expr, lines, program)


def _empty(t, program):
    """torch.empty(...) of a tensor's shape and dtype: a weight's place,
    filled by load_state_dict."""
    program.use_import("torch")
    shape = ", ".join(str(int(d)) for d in t.shape)
    dtype = "" if t.dtype == torch.float32 else f"dtype={_dtype_name(t.dtype)}"
    args = ", ".join(a for a in (shape if t.dim() else "()", dtype) if a)
    return f"torch.empty({args})"


def _dtype_name(dtype):
    if dtype not in _DTYPE_NAMES:
        raise _NoLiteral(f"dtype {dtype}")
    return _DTYPE_NAMES[dtype]


# -- naming from the graph ----------------------------------------------------------

# The last component of an initializer's name that names a layer's tensor.
_TENSOR_SUFFIXES = {
    "weight", "bias", "kernel", "W", "B", "R", "gamma", "beta", "moving_mean", "moving_variance",
    "running_mean", "running_var", "mean", "var", "scale", "embeddings", "weight_ih_l0", "weight_hh_l0",
}  # fmt: skip


def _split_name(name):
    """A dotted or slashed tensor name as path components, or None where a
    component is not a plain word (onnx::Conv_193)."""
    parts = [p for p in re.split(r"[./]", name) if p]
    if not parts or not all(re.fullmatch(r"\w+", p) for p in parts):
        return None
    return parts


def _weight_paths(*values):
    """The module paths that values' initializer names give, for values that
    are weights (layer1.0.conv1.weight: layer1.0.conv1); None values and
    other names give none."""
    paths = []
    for v in values:
        parts = _split_name(v.origin[1]) if v is not None and v.origin else None
        if parts and len(parts) >= 2 and parts[-1] in _TENSOR_SUFFIXES:
            paths.append(parts[:-1])
    return paths


def _legacy_scope(parts):
    """torch.onnx's legacy scope components (layer2, layer2.0, downsample,
    downsample.0) as a module path (layer2, 0, downsample, 0)."""
    out, prev = [], None
    for part in parts:
        if prev is not None and part.startswith(prev + "."):
            out += part[len(prev) + 1 :].split(".")
        else:
            out += part.split(".")
        prev = part
    return [p for p in out if p]


class _NodeNames:
    """Names for one converted node: scope (the module path the exporter
    recorded), leaf (the node's own name), var (a local variable hint)."""

    def __init__(self, onnx_node, target, scope_counts=None):
        self.onnx_node = onnx_node
        self.op = onnx_node.operation_type if onnx_node is not None else ""
        self.scope, self.leaf = [], _identifier(str(target).split("/")[-1])
        name = onnx_node.name if onnx_node is not None else ""
        scopes = None
        if onnx_node is not None:
            for prop in onnx_node.proto.metadata_props:
                if prop.key == "pkg.torch.onnx.name_scopes":
                    try:
                        scopes = ast.literal_eval(prop.value)
                    except (ValueError, SyntaxError):
                        scopes = None
        if scopes and len(scopes) >= 2 and all(isinstance(s, str) for s in scopes):
            self.scope = [p for p in scopes[-2].split(".") if p]
            self.leaf = _identifier(scopes[-1])
        elif name and "/" in name:
            parts = [p for p in name.split("/") if p]
            self.scope = _legacy_scope(parts[:-1]) if len(parts) > 1 else []
            self.leaf = _identifier(parts[-1])
        elif name:
            self.leaf = _identifier(re.sub(r"^node_", "", name))
        if not all(re.fullmatch(r"\w+", p) for p in self.scope):
            self.scope = [_component(p) for p in self.scope]
        leaf_op = re.sub(r"_\d+$", "", self.leaf)
        alone = scope_counts is None or scope_counts.get(tuple(self.scope), 0) <= 1
        if self.scope and not self.scope[-1].isdigit() and leaf_op == self.op and alone:
            # the only node of its scope: the scope is the layer it computes
            self.var = self.scope[-1]
        else:
            self.var = self.leaf.lower() if leaf_op == self.op or onnx_node is None else self.leaf
        if self.op and not self.var:
            self.var = self.op.lower()

    def tensor_names(self):
        """The names of the node's inputs after the first that are
        initializers or constants' outputs."""
        return list(self.onnx_node.input_values[1:]) if self.onnx_node is not None else []

    def layer_paths(self):
        """Candidate module paths for a layer made from this node: from its
        weights' names (layer1.0.conv1.weight -> layer1.0.conv1), then its
        scope, then its own name."""
        out = []
        for name in self.tensor_names():
            parts = _split_name(name) if name else None
            if parts and len(parts) >= 2 and parts[-1] in _TENSOR_SUFFIXES:
                out.append(parts[:-1])
        if self.scope:
            out.append(list(self.scope))
        out.append([self.leaf.lower() if re.sub(r"_\d+$", "", self.leaf) == self.op else self.leaf])
        return out


# -- one class from one GraphModule -------------------------------------------------

_NONDETERMINISTIC = re.compile(r"Random|Dropout|Multinomial|Bernoulli", re.IGNORECASE)


class _GraphClass:
    """The class written for one GraphModule: its module tree (__init__)
    and a forward with one statement per node that is not static."""

    def __init__(self, program, gm, name, arg_names=None, top=False):
        self.p, self.gm, self.name, self.top = program, gm, name, top
        self.arg_names = arg_names
        self.tree = _Tree()
        self.state = {}  # state_dict key -> tensor
        self.lines = []
        self.values = {}
        self.names = _Namer()
        self.fused = {}  # node -> the node whose value it takes (consumed by a fusion)
        self.state_paths = {}  # origin -> path
        self.current = None  # _NodeNames of the node being written
        self.node = None

    # the walk ----------------------------------------------------------------

    def emit(self):
        nodes = list(self.gm.graph.nodes)
        self.static = self._static_nodes(nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        metas = self.p.metas.get(("inputs", id(self.gm))) or []
        args = []
        for i, n in enumerate(placeholders):
            hint = self.arg_names[i] if self.arg_names and i < len(self.arg_names) else n.target
            var = self.names.fresh(hint)
            self.values[n] = _Value(var, meta=metas[i] if i < len(metas) else None)
            args.append(var)
        for n in nodes:
            self.node = n
            if n.op == "placeholder":
                continue
            if n.op == "output":
                self._output(n)
            elif n in self.fused:
                self.values[n] = self.values[self.fused[n]]
            elif n in self.static:
                self.values[n] = self._static_value(n)
            elif n.op == "call_module":
                self._call_module(n)
            elif n.op == "call_function":
                self._call_function(n)
            else:
                raise NotExpressible(n.name, f"fx {n.op} node")
        init = self.tree.init_lines(self.p)
        body = ["super().__init__()"] + init
        doc = f'"""{self._docstring()}"""'
        code = [f"class {self.name}(nn.Module):", textwrap.indent(doc, "    "), ""]
        code.append("    def __init__(self):")
        code += [textwrap.indent(line, "        ") for line in body]
        code.append("")
        code.append(f"    def forward(self, {', '.join(args)}):" if args else "    def forward(self):")
        code += [textwrap.indent(line, "        ") for line in self.lines]
        self.p.use_import("nn")
        self.p.add_class("\n".join(code))
        if self.top:
            self.p.state = self.state
        return self.state

    def _docstring(self):
        if self.top:
            g = self.p.graph
            return f"The ONNX graph {g.name!r}: {len(g.nodes)} nodes." if g.name else "The ONNX graph."
        return "A subgraph of the ONNX model (a branch or loop body)."

    def _static_nodes(self, nodes):
        static = set()
        for n in nodes:
            if n.op == "get_attr":
                static.add(n)
            elif n.op in ("call_module", "call_function"):
                if n.op == "call_module":
                    module = self.gm.get_submodule(n.target)
                    if _NONDETERMINISTIC.search(type(module).__name__) or isinstance(module, fx.GraphModule):
                        continue
                if all(a in static for a in n.all_input_nodes):
                    static.add(n)
        return static

    # values --------------------------------------------------------------------

    def val(self, arg):
        if isinstance(arg, fx.Node):
            return self.values[arg]
        return _Value(static=arg, meta=_meta(arg))

    def _static_value(self, n):
        def get(a):
            return self.values[a].static

        if n.op == "get_attr":
            value = self.gm
            for part in n.target.split("."):
                value = getattr(value, part)
            return _Value(static=value, meta=_meta(value), origin=self._initializer_name(n, value))
        args = fx.node.map_arg(n.args, get)
        kwargs = fx.node.map_arg(n.kwargs, get)
        origin = None
        with torch.no_grad():
            if n.op == "call_module":
                module = self.gm.get_submodule(n.target)
                value = module(*args, **kwargs)
                onnx_node = self._onnx_node(n)
                if type(module).__name__ in ("OnnxIdentity", "Identity") and n.args:
                    origin = self.values[n.args[0]].origin if isinstance(n.args[0], fx.Node) else None
                elif onnx_node is not None and not n.all_input_nodes and onnx_node.output_values:
                    origin = ("constant", onnx_node.output_values[0])
            else:
                value = n.target(*args, **kwargs)
        return _Value(static=value, meta=_meta(value), origin=origin)

    def _initializer_name(self, n, value):
        """The ONNX initializer a get_attr node holds: among the inputs of
        the nodes that use it, the initializer equal to it."""
        if not isinstance(value, torch.Tensor):
            return None
        candidates = []
        for user in n.users:
            onnx_node = self._onnx_node(user) if user.op == "call_module" else None
            if onnx_node is not None:
                candidates += [name for name in onnx_node.input_values if name in self.p.graph.initializers]
        for name in candidates:
            t = self._initializer(name)
            if t.shape == value.shape and t.dtype == value.dtype and torch.equal(t, value):
                return ("initializer", name)
        return None

    def _initializer(self, name):
        cache = self.p.__dict__.setdefault("_initializer_cache", {})
        if name not in cache:
            cache[name] = self.p.graph.initializers[name].to_torch()
        return cache[name]

    def _onnx_node(self, n):
        if not self.top or n.op != "call_module":
            return None
        return self.p.graph.nodes.get(n.target)

    # materialising constants ------------------------------------------------------

    def t(self, v, hint=None):
        """Code for a value used as a tensor (or what it is)."""
        if v.expr is not None:
            return v.expr
        if not v.is_static:
            raise NotExpressible(self._label(), "a value used before it is computed")
        value = v.static
        if isinstance(value, torch.Tensor):
            from_weights = v.origin is not None and v.origin[0] == "initializer"
            small = value.numel() <= LITERAL_ELEMENTS and not (
                value.is_floating_point() and from_weights and value.numel() > 1
            )
            if small and value.dtype in (
                torch.float32,
                torch.int64,
                torch.bool,
                torch.float16,
                torch.float64,
                torch.int32,
                torch.int8,
                torch.uint8,
                torch.int16,
                torch.bfloat16,
            ):
                try:
                    return tensor_literal(value, self.p)
                except _NoLiteral:
                    pass
            v.expr = self.state_attr(value, v.origin, hint)
            return v.expr
        if isinstance(value, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in value):
            items = [self.t(_Value(static=x, meta=_meta(x)), hint) for x in value]
            return ("[" + ", ".join(items) + "]") if isinstance(value, list) else literal_tuple(items)
        try:
            return literal(value, self.p)
        except _NoLiteral as e:
            raise NotExpressible(self._label(), f"a constant input with no literal: {e}") from None

    def state_attr(self, value, origin, hint=None, kind=None):
        """A tensor stored in the model (a parameter if floating point,
        else a buffer), placed after the ONNX name it came from."""
        key = origin[1] if origin else ("id", id(value))
        if key in self.state_paths:
            return self.state_paths[key]
        path = _split_name(origin[1]) if origin else None
        if path is not None:
            same = self.state.get(".".join(_component(c) for c in path))
            if (
                same is not None
                and same.shape == value.shape
                and same.dtype == value.dtype
                and torch.equal(same, value)
            ):
                # a layer holds this tensor under this name already: shared
                comps = [_component(c) for c in path]
                self.state_paths[key] = self.tree.access(comps[:-1]) + "." + comps[-1]
                return self.state_paths[key]
        if path is None:
            if origin:
                path = [_identifier(origin[1])]
            else:
                scope = self.current.scope if self.current else []
                path = list(scope) + [hint or (self.current.var if self.current else "constant")]
        if kind is None:
            kind = "parameter" if value.is_floating_point() or value.is_complex() else "buffer"
        path = self.tree.insert(path, kind, _empty(value, self.p))
        dotted = ".".join(path)
        if kind == "parameter" and self.top:
            self.p.free_parameters.add(dotted)
            if dotted in self.p.demoted:
                self._leaf(path).kind = "buffer"
        self.state[dotted] = value
        self.state_paths[key] = self.tree.access(path)
        return self.state_paths[key]

    def _leaf(self, path):
        node = self.tree.root
        for comp in path:
            node = node.children[comp]
        return node

    def ints(self, v):
        """A static integer value as a list of Python ints, or None."""
        if not v.is_static:
            return None
        value = v.static
        if isinstance(value, torch.Tensor):
            if value.dtype.is_floating_point or value.dtype.is_complex or value.dim() > 1:
                return None
            return [int(x) for x in value.reshape(-1).tolist()]
        if isinstance(value, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            return [int(x) for x in value]
        if isinstance(value, int) and not isinstance(value, bool):
            return [int(value)]
        return None

    def scalar(self, v, like=None):
        """A Python number for a static one-element value where writing it
        as one computes the same as the tensor: the other operand (like) has
        its dtype and at least its rank."""
        if not v.is_static or not isinstance(v.static, torch.Tensor) or v.static.numel() != 1:
            return None
        t = v.static
        if like is not None:
            if like.dtype() != t.dtype or like.rank() is None or like.rank() < t.dim():
                return None
        if t.dtype == torch.bool or t.dtype.is_complex or t.dtype not in _DTYPE_NAMES:
            return None
        number = t.reshape(()).item()
        if t.is_floating_point():
            return _float_literal(number, t.dtype)
        return literal(int(number))

    def operand(self, v, other):
        """v as one operand of a binary op with other: a number where that
        is the same, else a tensor."""
        number = self.scalar(v, other) if other is not None and not other.is_static else None
        return number if number is not None else self.t(v)

    def rank(self, v):
        return v.rank()

    # statements ------------------------------------------------------------------

    def stmt(self, expr, hint):
        name = self.names.fresh(hint)
        self.lines.append(f"{name} = {expr}")
        return name

    def _label(self):
        if self.current is not None and self.current.onnx_node is not None:
            return self.current.onnx_node.name or self.current.onnx_node.unique_name
        return self.node.target if self.node is not None and self.node.op == "call_module" else str(self.node)

    def _call_module(self, n):
        module = self.gm.get_submodule(n.target)
        self.current = _NodeNames(self._onnx_node(n), n.target, self.p.scope_counts() if self.top else None)
        args = [self.val(a) for a in n.args]
        kwargs = {k: self.val(a) for k, a in n.kwargs.items()}
        meta = self.p.metas.get(id(module))
        result = None
        emitter = _emitter_for(module)
        if emitter is not None:
            try:
                result = emitter(self, n, module, args, kwargs)
            except _Decline:
                result = None
            except _NoLiteral as e:
                raise NotExpressible(self._label(), str(e)) from None
        if result is None:
            result = self.copy_call(module, args, kwargs)
        if isinstance(result, _Value):
            self.values[n] = result
            return
        if result.isidentifier() and result in self.names.used:  # already a variable
            self.values[n] = _Value(result, meta=meta)
            return
        self._assign(n, result, meta)

    def _assign(self, n, expr, meta):
        users = list(n.users)
        getitems = [u for u in users if u.op == "call_function" and u.target is operator.getitem]
        count = len(meta.items) if meta is not None and meta.kind == "seq" else None
        if (
            count is not None
            and 1 < count <= 8
            and users
            and len(getitems) == len(users)
            and all(isinstance(u.args[1], int) and 0 <= u.args[1] < count for u in getitems)
        ):
            names = ["_"] * count
            for u in getitems:
                index = u.args[1]
                if names[index] == "_":
                    names[index] = self.names.fresh(f"{self.current.var}_{index}")
                self.values[u] = _Value(names[index], meta=meta.items[index])
            for u in getitems:
                self.values[u] = _Value(names[u.args[1]], meta=meta.items[u.args[1]])
                self.fused[u] = u
            self.lines.append(f"{', '.join(names)} = {expr}")
            self.values[n] = _Value(None, meta=meta)
            return
        name = self.stmt(expr, self.current.var)
        self.values[n] = _Value(name, meta=meta)

    def _call_function(self, n):
        if n.target is operator.getitem:
            base, index = self.val(n.args[0]), n.args[1]
            if base.expr is None:
                raise NotExpressible(self._label(), "an item of a value never written")
            meta = (
                base.meta.items[index]
                if base.meta is not None
                and base.meta.kind == "seq"
                and isinstance(index, int)
                and index < len(base.meta.items)
                else None
            )
            self.values[n] = _Value(f"{base.expr}[{literal(index, self.p)}]", meta=meta)
            return
        try:
            fn = program_function(self.p, n.target)
        except _NoLiteral as e:
            raise NotExpressible(str(n.target), str(e)) from None
        args = [self.t(self.val(a)) for a in n.args]
        args += [f"{k}={self.t(self.val(a))}" for k, a in n.kwargs.items()]
        self.values[n] = _Value(self.stmt(f"{fn}({', '.join(args)})", n.name), meta=None)

    def _output(self, n):
        out = n.args[0]
        if isinstance(out, (list, tuple)):
            items = [self.t(self.val(a)) for a in out]
            self.lines.append("return " + (", ".join(items) if items else "()") + ("," if len(items) == 1 else ""))
        else:
            self.lines.append(f"return {self.t(self.val(out))}")

    # layers and copies ---------------------------------------------------------------

    def layer(self, module, candidates=None, code=None):
        """module (a torch.nn layer) placed in the tree; its access expression."""
        if code is None:
            code = nn_constructor(module, self.p)
        candidates = candidates or self.current.layer_paths()
        path = None
        for c in candidates:
            comps = [_component(x) for x in c]
            if comps and self.tree._free(comps):
                path = self.tree.insert(comps, "module", code)
                break
        if path is None:
            path = self.tree.insert(candidates[0], "module", code)
        prefix = ".".join(path)
        for k, v in module.state_dict().items():
            self.state[f"{prefix}.{k}"] = v
        name = type(module).__name__
        self.p.layer_counts[name] = self.p.layer_counts.get(name, 0) + 1
        return self.tree.access(path)

    def copy_call(self, module, args, kwargs):
        """Call a copy of module's class (the fallback)."""
        try:
            code, state = _Copier(self.p).instance(module)
        except _NoLiteral as e:
            raise NotExpressible(
                self._label(), f"{type(module).__name__} cannot be written with torch alone: {e}"
            ) from None
        scope = self.current.scope if self.current else []
        leaf = self.current.leaf if self.current else "op"
        path = self.tree.insert(
            list(scope) + [leaf.lower() if re.sub(r"_\d+$", "", leaf) == self.current.op else leaf], "module", code
        )
        prefix = ".".join(path)
        for k, v in state.items():
            self.state[f"{prefix}.{k}"] = v
        call_args = [self.t(a) for a in args] + [f"{k}={self.t(a)}" for k, a in kwargs.items()]
        return f"{self.tree.access(path)}({', '.join(call_args)})"


def literal_tuple(items):
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _float_literal(number, dtype):
    """The shortest literal that is the same number in dtype (torch casts a
    Python number to the tensor's type before computing)."""
    if math.isnan(number) or math.isinf(number):
        return literal(float(number))
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        short = repr(float(np.float32(number)))
        shortest = str(np.float32(number))
        for text in (shortest, short):
            try:
                if float(np.float32(float(text))) == float(np.float32(number)):
                    return text if any(c in text for c in ".enN") else text + ".0"
            except ValueError:
                continue
    return repr(float(number))


# -- torch.nn layers ---------------------------------------------------------------

_CTOR_SKIP = {"device", "dtype", "_weight", "_freeze", "factory_kwargs"}
_SPATIAL = {"kernel_size", "stride", "padding", "dilation", "output_padding"}


def nn_constructor(module, program):
    """Code that builds a layer like module (nn.Conv2d(3, 16, 3, padding=1)),
    checked by building it: same repr, same state shapes and dtypes."""
    cls = type(module)
    if getattr(nn, cls.__name__, None) is not cls:
        raise _NoLiteral(f"{cls.__module__}.{cls.__name__} is not a torch.nn layer")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if isinstance(module, nn.RNNBase):
        params = list(inspect.signature(nn.RNNBase.__init__).parameters.values())[2:]
        if isinstance(module, nn.RNN):
            params.insert(2, inspect.Parameter("nonlinearity", inspect.Parameter.KEYWORD_ONLY, default="tanh"))
    args, positional = [], 0
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in _CTOR_SKIP:
            continue
        if not hasattr(module, p.name):
            if p.default is p.empty:
                raise _NoLiteral(f"{cls.__name__} without its {p.name}")
            continue
        value = getattr(module, p.name)
        if p.name == "bias" and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None
        if isinstance(value, (torch.Tensor, nn.Module)):
            raise _NoLiteral(f"{cls.__name__}.{p.name} is a tensor")
        if p.name in _SPATIAL and isinstance(value, tuple) and value and len(set(value)) == 1:
            value = value[0]
        if p.name == "normalized_shape" and isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        if isinstance(value, float) and p.name in ("eps", "momentum"):
            value = _short_float(value)
        default = p.default
        if p.name in _SPATIAL and isinstance(default, tuple) and default and len(set(default)) == 1:
            default = default[0]
        if p.name == "stride" and value is not None and value == getattr(module, "kernel_size", object()):
            if default is None:
                continue
        if default is not p.empty and type(value) is type(default) and value == default:
            continue
        if default is not p.empty and value is None and default is None:
            continue
        text = literal(value, program)
        if default is p.empty and positional == len(args) and positional < 2:
            args.append(text)
            positional += 1
        else:
            args.append(f"{p.name}={text}")
    dtypes = {t.dtype for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()}
    if len(dtypes) == 1 and torch.float32 not in dtypes:
        args.append(f"dtype={_dtype_name(dtypes.pop())}")
    program.use_import("nn")
    code = f"nn.{cls.__name__}({', '.join(args)})"
    _check_constructor(module, code)
    return code


def _check_constructor(module, code):
    try:
        rebuilt = eval(code, {"nn": nn, "torch": torch, "float": float})
    except Exception as e:
        raise _NoLiteral(f"{code} fails: {_first_line(e)}") from None

    def plain(m):
        return {
            k: v
            for k, v in vars(m).items()
            if not k.startswith("_") and k != "training" and not isinstance(v, (torch.Tensor, nn.Module))
        }

    def shapes(m):
        return {k: (tuple(v.shape), v.dtype) for k, v in m.state_dict().items()}

    def same(a, b):
        if isinstance(a, float) and isinstance(b, float):
            return a == b or abs(a - b) <= 1e-6 * max(abs(a), abs(b))
        return type(a) is type(b) and a == b

    pa, pb = plain(rebuilt), plain(module)
    if shapes(rebuilt) != shapes(module) or set(pa) != set(pb) or not all(same(pa[k], pb[k]) for k in pa):
        raise _NoLiteral(f"{code} does not rebuild {module!r}")


def _short_float(value):
    """A float attribute that ONNX stored as float32 (BatchNorm's epsilon
    0.0010000000474974513) written as people write it (0.001) where the
    two differ by float32 rounding alone."""
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if abs(short - value) <= 1e-7 * abs(value):
            return short
    return value


def _kw(name, value, default, program):
    return None if value == default else f"{name}={literal(value, program)}"


def _spatial(value):
    if isinstance(value, (tuple, list)) and value and len(set(value)) == 1:
        return value[0]
    return list(value) if isinstance(value, tuple) else value


def _functional(module, x, program):
    """A parameter-free torch.nn layer as the call its forward makes; None
    where there is no such table entry."""
    p = program
    m = module
    name = type(m).__name__
    if type(m) is not getattr(nn, name, None):
        return None
    if name == "ReLU":
        p.use_import("torch")
        return f"torch.relu({x})"
    if name == "Sigmoid":
        p.use_import("torch")
        return f"torch.sigmoid({x})"
    if name == "Tanh":
        p.use_import("torch")
        return f"torch.tanh({x})"
    if name in ("Softmax", "LogSoftmax") and m.dim is not None:
        p.use_import("torch")
        return f"torch.{name.lower()}({x}, dim={m.dim})"
    simple = {
        "Hardswish": "hardswish",
        "Hardsigmoid": "hardsigmoid",
        "SiLU": "silu",
        "Mish": "mish",
        "Softsign": "softsign",
        "Tanhshrink": "tanhshrink",
    }
    if name in simple:
        p.use_import("F")
        return f"F.{simple[name]}({x})"
    if name == "GELU":
        p.use_import("F")
        return f"F.gelu({x})" if m.approximate == "none" else f"F.gelu({x}, approximate={literal(m.approximate)})"
    if name == "LeakyReLU":
        p.use_import("F")
        return f"F.leaky_relu({x}, {_float_literal(m.negative_slope, torch.float64)})"
    if name == "ELU":
        p.use_import("F")
        return f"F.elu({x}, alpha={_float_literal(m.alpha, torch.float64)})"
    if name == "CELU":
        p.use_import("F")
        return f"F.celu({x}, alpha={_float_literal(m.alpha, torch.float64)})"
    if name == "SELU":
        p.use_import("F")
        return f"F.selu({x})"
    if name == "Softplus":
        p.use_import("F")
        return f"F.softplus({x}, beta={literal(m.beta)}, threshold={literal(m.threshold)})"
    if name == "Hardtanh" and type(m) is nn.Hardtanh:
        p.use_import("F")
        return f"F.hardtanh({x}, {literal(m.min_val)}, {literal(m.max_val)})"
    if name == "ReLU6":
        p.use_import("F")
        return f"F.relu6({x})"
    if name == "Flatten":
        p.use_import("torch")
        end = "" if m.end_dim == -1 else f", {m.end_dim}"
        return f"torch.flatten({x}, {m.start_dim}{end})"
    if name in ("MaxPool1d", "MaxPool2d", "MaxPool3d"):
        p.use_import("F")
        args = [x, literal(_spatial(m.kernel_size))]
        if _spatial(m.stride) != _spatial(m.kernel_size):
            args.append(f"stride={literal(_spatial(m.stride))}")
        args += [
            a
            for a in (
                _kw("padding", _spatial(m.padding), 0, p),
                _kw("dilation", _spatial(m.dilation), 1, p),
                _kw("ceil_mode", m.ceil_mode, False, p),
                _kw("return_indices", m.return_indices, False, p),
            )
            if a
        ]
        return f"F.max_pool{name[-2]}d({', '.join(args)})"
    if name in ("AvgPool1d", "AvgPool2d", "AvgPool3d"):
        p.use_import("F")
        args = [x, literal(_spatial(m.kernel_size))]
        if _spatial(m.stride) != _spatial(m.kernel_size):
            args.append(f"stride={literal(_spatial(m.stride))}")
        args += [
            a
            for a in (
                _kw("padding", _spatial(m.padding), 0, p),
                _kw("ceil_mode", m.ceil_mode, False, p),
                _kw("count_include_pad", m.count_include_pad, True, p),
                _kw("divisor_override", getattr(m, "divisor_override", None), None, p),
            )
            if a
        ]
        return f"F.avg_pool{name[-2]}d({', '.join(args)})"
    if name in ("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d"):
        if getattr(m, "return_indices", False):
            return None
        p.use_import("F")
        fn = "adaptive_avg_pool" if "Avg" in name else "adaptive_max_pool"
        return f"F.{fn}{name[-2]}d({x}, {literal(_spatial(m.output_size))})"
    if name in ("ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d"):
        p.use_import("F")
        value = "" if m.value == 0 else f", value={_float_literal(m.value, torch.float64)}"
        return f"F.pad({x}, {literal(list(m.padding))}{value})"
    if name.startswith(("ReflectionPad", "ReplicationPad", "CircularPad")):
        p.use_import("F")
        mode = {"Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}[
            re.match(r"[A-Z][a-z]+", name).group()
        ]
        return f"F.pad({x}, {literal(list(m.padding))}, mode={literal(mode)})"
    if name == "PixelShuffle":
        p.use_import("F")
        return f"F.pixel_shuffle({x}, {m.upscale_factor})"
    if name == "PixelUnshuffle":
        p.use_import("F")
        return f"F.pixel_unshuffle({x}, {m.downscale_factor})"
    if name == "Dropout" or name in ("Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"):
        fn = {
            "Dropout": "dropout",
            "Dropout1d": "dropout1d",
            "Dropout2d": "dropout2d",
            "Dropout3d": "dropout3d",
            "AlphaDropout": "alpha_dropout",
        }[name]
        p.use_import("F")
        return f"F.{fn}({x}, p={literal(m.p)}, training=self.training)"
    return None


# -- emitters: one converted module as torch code ----------------------------------------

_EMITTERS = {}


def _emits(*names):
    def deco(fn):
        for name in names:
            _EMITTERS[name] = fn
        return fn

    return deco


def _emitter_for(module):
    cls = type(module)
    found = _EMITTERS.get(f"{cls.__module__}.{cls.__qualname__}")
    if found is not None:
        return found
    if cls.__module__.startswith("torch.nn.modules") and getattr(nn, cls.__name__, None) is cls:
        return _emit_nn
    return None


def _need(condition):
    if not condition:
        raise _Decline()


def _emit_nn(g, n, module, args, kwargs):
    if isinstance(module, nn.Identity):
        return args[0] if args else None
    if isinstance(module, nn.Sequential):
        _need(len(args) == 1 and not kwargs)
        x = args[0]
        children = list(module.children())
        for i, child in enumerate(children):
            result = None
            emitter = _emitter_for(child)
            if emitter is not None:
                try:
                    result = emitter(g, None, child, [x], {})
                except _Decline:
                    result = None
            if result is None:
                result = g.copy_call(child, [x], {})
            if isinstance(result, _Value):
                x = result
                continue
            meta = g.p.metas.get(id(child))
            if i == len(children) - 1:
                return result
            suffix = "padded" if "pad" in type(child).__name__.lower() else type(child).__name__.lower()
            x = _Value(g.stmt(result, f"{g.current.var}_{suffix}"), meta=meta)
        return x
    if kwargs:
        raise _Decline()
    x = [g.t(a) for a in args]
    if len(x) == 1:
        expr = _functional(module, x[0], g.p)
        if expr is not None:
            return expr
    return f"{g.layer(module)}({', '.join(x)})"


_OPERATORS = {"add": "+", "sub": "-", "mul": "*"}


@_emits("onnx2torch.node_converters.binary_math_operations.OnnxBinaryMathOperation")
def _emit_binary(g, n, module, args, kwargs):
    _need(not kwargs and len(args) == 2)
    _need(not (module.broadcast == 1 and module.axis is not None))
    fn = module.math_op_function
    a, b = args
    name = getattr(fn, "__name__", "")
    if fn in (torch.add, torch.sub, torch.mul):
        op = _OPERATORS[name]
    elif name == "_onnx_div":
        da, db = a.dtype(), b.dtype()
        _need(da is not None and db is not None)
        if da.is_floating_point or db.is_floating_point:
            op = "/"
        else:
            g.p.use_import("torch")
            return f'torch.div({g.operand(a, b)}, {g.operand(b, a)}, rounding_mode="trunc")'
    else:
        raise _Decline()
    return f"{g.operand(a, b)} {op} {g.operand(b, a)}"


@_emits("onnx2torch.node_converters.matmul.OnnxMatMul")
def _emit_matmul(g, n, module, args, kwargs):
    _need(not kwargs and len(args) == 2)
    a, b = args
    linear = _linear_pattern(g, n, a, b)
    if linear is not None:
        return linear
    return f"{g.t(a)} @ {g.t(b)}"


def _linear_pattern(g, n, a, b):
    """MatMul(x, W) then Add(., bias), W a constant matrix and bias a
    constant vector: nn.Linear (weight W transposed)."""
    w = b.static if b.is_static else None
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or not w.is_floating_point() or a.is_static:
        return None
    if a.rank() is None or a.rank() < 1 or a.dtype() != w.dtype:
        return None
    users = list(n.users)
    bias, add = None, None
    if len(users) == 1 and users[0].op == "call_module":
        user = users[0]
        m = g.gm.get_submodule(user.target)
        if type(m).__name__ == "OnnxBinaryMathOperation" and m.math_op_function is torch.add and not user.kwargs:
            other = [x for x in user.args if x is not n]
            if len(other) == 1 and len(user.args) == 2 and isinstance(other[0], fx.Node) and other[0] in g.static:
                value = g.values.get(other[0])
                if value is None:
                    value = g._static_value(other[0])
                    g.values[other[0]] = value
                t = value.static
                if (
                    isinstance(t, torch.Tensor)
                    and t.dtype == w.dtype
                    and t.shape == (w.shape[1],)
                    and not (m.broadcast == 1 and m.axis is not None)
                ):
                    bias, add = value, user
    layer = nn.Linear(w.shape[0], w.shape[1], bias=bias is not None, dtype=w.dtype)
    with torch.no_grad():
        layer.weight.copy_(w.t())
        if bias is not None:
            layer.bias.copy_(bias.static)
    candidates = _weight_paths(bias, b)
    if add is not None:
        add_names = _NodeNames(g._onnx_node(add), add.target, g.p.scope_counts())
        if add_names.scope and add_names.scope != g.current.scope:
            candidates.append(add_names.scope)
    candidates += g.current.layer_paths()
    access = g.layer(layer, candidates=candidates)
    if add is not None:
        g.fused[add] = n
    return f"{access}({g.t(a)})"


@_emits("onnx2torch.node_converters.transpose.OnnxTranspose")
def _emit_transpose(g, n, module, args, kwargs):
    _need(module.perm is not None and len(args) == 1)
    perm = [int(p) for p in module.perm]
    return f"{g.t(args[0])}.permute({', '.join(map(str, perm))})"


def _reshape(g, x, sizes, allowzero):
    parts = []
    for i, s in enumerate(sizes):
        if s == 0 and not allowzero:
            parts.append(f"{x}.shape[{i}]")
        else:
            parts.append(str(s))
    return f"{x}.reshape({', '.join(parts)})" if parts else f"{x}.reshape(())"


@_emits("onnx2torch.node_converters.reshape.OnnxReshape")
def _emit_reshape_onnx2torch(g, n, module, args, kwargs):
    _need(len(args) == 2 and not kwargs)
    sizes = g.ints(args[1])
    _need(sizes is not None)
    return _reshape(g, g.t(args[0]), sizes, False)


@_emits("onnx2pt_py.converters.tensor.OnnxReshape")
def _emit_reshape_ours(g, n, module, args, kwargs):
    _need(len(args) == 2 and not kwargs)
    sizes = g.ints(args[1])
    _need(sizes is not None)
    return _reshape(g, g.t(args[0]), sizes, module.allowzero)


@_emits("onnx2pt_py.exportable.StaticReshape")
def _emit_static_reshape(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    return _reshape(g, g.t(args[0]), module.shape, module.allowzero)


def _index(g, x, axis, rank, item):
    """x[:, :, item] with item at axis (negative axes counted from the end)."""
    if axis < 0:
        if rank is None:
            return f"{x}[..., {item}" + ", :" * (-axis - 1) + "]"
        axis += rank
    return f"{x}[" + ":, " * axis + f"{item}]"


@_emits("onnx2torch.node_converters.gather.OnnxGather")
def _emit_gather(g, n, module, args, kwargs):
    _need(len(args) == 2 and not kwargs)
    data, indices = args
    axis = int(module._axis)
    rank = data.rank()
    if axis < 0:
        _need(rank is not None)
        axis += rank
    idx = indices.static if indices.is_static else None
    if idx is not None:
        _need(isinstance(idx, torch.Tensor) and not idx.is_floating_point())
        if idx.dim() == 0:
            return _index(g, g.t(data), axis, rank, str(int(idx)))
        if idx.dim() == 1 and idx.numel() <= LITERAL_ELEMENTS:
            return _index(g, g.t(data), axis, rank, literal([int(v) for v in idx.tolist()]))
        return _index(g, g.t(data), axis, rank, g.t(indices))
    _need(indices.dtype() == torch.int64)
    table = data.static if data.is_static else None
    if isinstance(table, torch.Tensor) and axis == 0 and table.dim() == 2 and table.is_floating_point():
        layer = nn.Embedding(table.shape[0], table.shape[1], dtype=table.dtype)
        with torch.no_grad():
            layer.weight.copy_(table)
        candidates = _weight_paths(data) + g.current.layer_paths()
        return f"{g.layer(layer, candidates=candidates)}({g.t(indices)})"
    return _index(g, g.t(data), axis, rank, g.t(indices))


@_emits("onnx2torch.node_converters.concat.OnnxConcat")
def _emit_concat(g, n, module, args, kwargs):
    _need(not kwargs and args)
    g.p.use_import("torch")
    return f"torch.cat([{', '.join(g.t(a) for a in args)}], dim={int(module.axis)})"


def _slice_text(start, end, step):
    text = ("" if start == 0 else str(start)) + ":" + ("" if end >= 2**31 - 1 else str(end))
    return text + (f":{step}" if step != 1 else "")


def _static_slice(g, x, rank, starts, ends, axes, steps):
    """ONNX Slice with constant inputs as Python slicing (flipped first
    for negative steps, as onnx2torch does)."""
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    _need(len(starts) == len(ends) == len(axes) == len(steps) and starts)
    if any(a < 0 for a in axes):
        _need(rank is not None)
        axes = [a + rank if a < 0 else a for a in axes]
    flips, parts = [], {}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        _need(step != 0)
        if step < 0:
            flips.append(axis)
            start, end, step = -start - 1, -end - 1, -step
        parts[axis] = (start, end, step)
    if flips:
        g.p.use_import("torch")
        x = g.stmt(f"torch.flip({x}, dims={literal(flips)})", g.current.var + "_flipped")
    items = [":"] * (max(parts) + 1)
    for axis, (start, end, step) in parts.items():
        items[axis] = _slice_text(start, end, step)
    while items and items[-1] == ":":
        items.pop()
    return f"{x}[{', '.join(items)}]" if items else x


@_emits("onnx2torch.node_converters.slice.OnnxSlice")
def _emit_slice(g, n, module, args, kwargs):
    _need(not kwargs and len(args) >= 3)
    values = [g.ints(a) for a in args[1:]]
    _need(all(v is not None for v in values))
    starts, ends = values[0], values[1]
    axes = values[2] if len(values) > 2 else None
    steps = values[3] if len(values) > 3 else None
    return _static_slice(g, g.t(args[0]), args[0].rank(), starts, ends, axes, steps)


@_emits("onnx2pt_py.exportable.StaticSlice")
def _emit_static_slice_module(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs and args[0].rank() is not None)
    rank = args[0].rank()
    axes = [a % rank for a, _, _, _ in module.parts]
    starts = [s for _, s, _, _ in module.parts]
    ends = [e for _, _, e, _ in module.parts]
    steps = [st for _, _, _, st in module.parts]
    return _static_slice(g, g.t(args[0]), rank, starts, ends, axes, steps)


@_emits("onnx2torch.node_converters.cast.OnnxCast")
def _emit_cast(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    return f"{g.t(args[0])}.to({_dtype_name(module.torch_dtype)})"


@_emits("onnx2pt_py.converters.cast.OnnxCastTo")
def _emit_cast_to(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    x = args[0]
    _need(x.dtype() is not None)
    _need("float8" not in str(module.to_dtype) or not x.dtype().is_floating_point)
    if x.dtype() == module.to_dtype:
        return x
    return f"{g.t(x)}.to({_dtype_name(module.to_dtype)})"


@_emits("onnx2torch.node_converters.where.OnnxWhere")
def _emit_where(g, n, module, args, kwargs):
    _need(len(args) == 3 and not kwargs)
    c, a, b = args
    g.p.use_import("torch")
    return f"torch.where({g.t(c)}, {g.operand(a, b)}, {g.operand(b, a)})"


def _squeeze(g, x, axes, rank):
    if axes is None:
        g.p.use_import("torch")
        return f"torch.squeeze({x})"
    if any(a < 0 for a in axes):
        _need(rank is not None)
        axes = [a + rank if a < 0 else a for a in axes]
    for axis in sorted(set(axes), reverse=True):
        x = f"{x}.squeeze({axis})"
    return x


@_emits("onnx2torch.node_converters.squeeze.OnnxSqueezeStaticAxes")
def _emit_squeeze_static(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    axes = list(module.axes) if module.axes else None
    return _squeeze(g, g.t(args[0]), axes, args[0].rank())


@_emits("onnx2torch.node_converters.squeeze.OnnxSqueezeDynamicAxes")
def _emit_squeeze_dynamic(g, n, module, args, kwargs):
    _need(not kwargs and 1 <= len(args) <= 2)
    axes = g.ints(args[1]) if len(args) == 2 else None
    _need(len(args) == 1 or axes is not None)
    return _squeeze(g, g.t(args[0]), axes or None, args[0].rank())


@_emits("onnx2pt_py.exportable.StaticSqueeze")
def _emit_static_squeeze(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    return _squeeze(g, g.t(args[0]), list(module.axes), args[0].rank())


@_emits("onnx2pt_py.converters.tensor.OnnxUnsqueeze")
def _emit_unsqueeze(g, n, module, args, kwargs):
    _need(not kwargs and 1 <= len(args) <= 2)
    axes = module.axes if len(args) == 1 else g.ints(args[1])
    _need(axes is not None)
    x = args[0]
    if any(a < 0 for a in axes):
        _need(x.rank() is not None)
        rank = x.rank() + len(axes)
        axes = [a + rank if a < 0 else a for a in axes]
    expr = g.t(x)
    for axis in sorted(axes):
        expr = f"{expr}.unsqueeze({axis})"
    return expr


@_emits("onnx2torch.node_converters.unsqueeze.OnnxUnsqueezeStaticAxes")
def _emit_unsqueeze_onnx2torch(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    axes = list(getattr(module, "_axes", getattr(module, "axes", None)) or [])
    _need(axes and all(a >= 0 for a in axes))
    expr = g.t(args[0])
    for axis in sorted(axes):
        expr = f"{expr}.unsqueeze({axis})"
    return expr


@_emits("onnx2torch.node_converters.expand.OnnxExpand")
def _emit_expand(g, n, module, args, kwargs):
    _need(len(args) == 2 and not kwargs)
    shape = g.ints(args[1])
    x = args[0]
    _need(shape is not None and x.rank() is not None)
    rank = x.rank()
    out_rank = max(rank, len(shape))
    sizes = []
    for i in range(out_rank):
        j = i - (out_rank - len(shape))  # index in shape
        k = i - (out_rank - rank)  # index in x
        s = shape[j] if j >= 0 else 1
        if k < 0:
            _need(s >= 0)
            sizes.append(str(s))
        elif s == 1:
            sizes.append("-1")
        else:
            sizes.append(str(s))
    if all(s == "-1" for s in sizes) and out_rank == rank:
        return x
    return f"{g.t(x)}.expand({', '.join(sizes)})"


@_emits("onnx2torch.node_converters.comparisons.OnnxCompare")
def _emit_compare(g, n, module, args, kwargs):
    _need(len(args) == 2 and not kwargs)
    ops = {
        torch.eq: "==",
        torch.gt: ">",
        torch.greater: ">",
        torch.lt: "<",
        torch.less: "<",
        torch.ge: ">=",
        torch.greater_equal: ">=",
        torch.le: "<=",
        torch.less_equal: "<=",
    }
    op = ops.get(module.compare_function)
    _need(op is not None)
    a, b = args
    return f"{g.operand(a, b)} {op} {g.operand(b, a)}"


@_emits("onnx2torch.node_converters.logical.OnnxLogical")
def _emit_logical(g, n, module, args, kwargs):
    _need(len(args) == 2 and not kwargs and not (module.broadcast == 1 and module.axis is not None))
    name = program_function(g.p, module.logic_op_function)
    return f"{name}({g.t(args[0])}, {g.t(args[1])})"


def _unary(fn):
    def emit(g, n, module, args, kwargs):
        _need(len(args) == 1 and not kwargs)
        g.p.use_import("torch")
        return f"{fn}({g.t(args[0])})"

    return emit


_emits("onnx2torch.node_converters.logical.OnnxNot")(_unary("torch.logical_not"))
_emits("onnx2torch.node_converters.isnan.OnnxIsNaN")(_unary("torch.isnan"))
_emits("onnx2torch.node_converters.isinf.OnnxIsInf")(_unary("torch.isinf"))
_emits("onnx2torch.node_converters.activations.OnnxErf")(_unary("torch.erf"))
_emits("onnx2torch.node_converters.pow.OnnxSqrt")(_unary("torch.sqrt"))
_emits("onnx2torch.node_converters.reciprocal.OnnxReciprocal")(_unary("torch.reciprocal"))


@_emits("onnx2torch.node_converters.neg.OnnxNeg")
def _emit_neg(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    return f"-{g.t(args[0])}"


@_emits("onnx2torch.node_converters.functions.OnnxFunction")
def _emit_function(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    return f"{program_function(g.p, module.function)}({g.t(args[0])})"


@_emits("onnx2torch.node_converters.activations.OnnxHardSigmoid")
def _emit_hard_sigmoid(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    x = args[0]
    _need(x.dtype() in (torch.float32, torch.float16, torch.bfloat16))
    g.p.use_import("torch")
    alpha, beta = _float_literal(module.alpha, x.dtype()), _float_literal(module.beta, x.dtype())
    return f"torch.clip({g.t(x)} * {alpha} + {beta}, min=0.0, max=1.0)"


@_emits("onnx2torch.node_converters.global_average_pool.OnnxGlobalAveragePoolWithKnownInputShape")
def _emit_global_average_pool_known(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    return f"{g.t(args[0])}.mean(dim={literal(list(module._x_dims))}, keepdim=True)"


@_emits("onnx2torch.node_converters.global_average_pool.OnnxGlobalAveragePool")
def _emit_global_average_pool(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs and args[0].rank() is not None)
    return f"{g.t(args[0])}.mean(dim={literal(list(range(2, args[0].rank())))}, keepdim=True)"


@_emits("onnx2torch.node_converters.reduce.OnnxReduceStaticAxes")
def _emit_reduce_static(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    _need(module.operation_type in ("ReduceMean", "ReduceSum"))
    fn = program_function(g.p, module.math_op_function)
    x = g.t(args[0])
    if not module.axes:
        if not module.keepdims:
            return f"{fn}({x})"
        _need(args[0].rank() is not None)
        axes = list(range(args[0].rank()))
    else:
        axes = list(module.axes)
    return f"{fn}({x}, dim={literal(axes)}, keepdim={module.keepdims})"


@_emits("onnx2pt_py.converters.reduce.OnnxReduce")
def _emit_reduce(g, n, module, args, kwargs):
    _need(not kwargs and args and not module.axes_from_input)
    x = args[0]
    _need(x.dtype() is not None and x.dtype().is_floating_point and x.rank() is not None and module.axes)
    rank = x.rank()
    dims = sorted({a + rank if a < 0 else a for a in module.axes})
    k = module.keepdims
    g.p.use_import("torch")
    expr = g.t(x)
    if module.op == "ReduceMean":
        return f"torch.mean({expr}, dim={literal(dims)}, keepdim={k})"
    if module.op == "ReduceSum":
        return f"torch.sum({expr}, dim={literal(dims)}, keepdim={k})"
    if module.op == "ReduceMax":
        return f"torch.amax({expr}, dim={literal(dims)}, keepdim={k})"
    if module.op == "ReduceMin":
        return f"torch.amin({expr}, dim={literal(dims)}, keepdim={k})"
    if module.op == "ReduceSumSquare":
        return f"torch.sum({expr} * {expr}, dim={literal(dims)}, keepdim={k})"
    if module.op == "ReduceL2":
        return f"torch.sqrt(torch.sum({expr} * {expr}, dim={literal(dims)}, keepdim={k}))"
    raise _Decline()


@_emits("onnx2torch.node_converters.gemm.OnnxGemm")
def _emit_gemm(g, n, module, args, kwargs):
    _need(2 <= len(args) + len(kwargs) <= 3)
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 else kwargs.get("input_c")
    _need(a.rank() == 2 or a.rank() is None)
    left = f"{g.t(a)}.T" if module.trans_a else g.t(a)
    right = f"{g.t(b)}.T" if module.trans_b else g.t(b)
    expr = f"{left} @ {right}"
    if module.alpha != 1.0:
        expr += f" * {_float_literal(module.alpha, a.dtype() or torch.float64)}"
    if c is not None:
        bias = g.t(c) if module.beta == 1.0 else f"{g.t(c)} * {_float_literal(module.beta, a.dtype() or torch.float64)}"
        expr = f"{g.stmt(expr, g.current.var)} + {bias}"
    return expr


@_emits("onnx2torch.node_converters.split.OnnxSplit13")
def _emit_split13(g, n, module, args, kwargs):
    _need(1 <= len(args) <= 2 and not kwargs)
    x = g.t(args[0])
    g.p.use_import("torch")
    if len(args) == 2:
        sizes = g.ints(args[1])
        _need(sizes is not None)
        return f"torch.split({x}, {literal(sizes)}, dim={module.axis})"
    return f"torch.split({x}, {x}.shape[{module.axis}] // {module.num_splits}, dim={module.axis})"


@_emits("onnx2pt_py.converters.tensor.OnnxSplit")
def _emit_split(g, n, module, args, kwargs):
    _need(1 <= len(args) <= 2 and not kwargs)
    x = args[0]
    _need(x.rank() is not None)
    axis = module.axis + x.rank() if module.axis < 0 else module.axis
    sizes = None
    if len(args) == 2:
        sizes = g.ints(args[1])
        _need(sizes)
    elif module.split:
        sizes = list(module.split)
    _need(sizes is not None)
    g.p.use_import("torch")
    expr = f"torch.split({g.t(x)}, {literal(sizes)}, dim={axis})"
    return f"{expr}[0]" if module.outputs == 1 else expr


@_emits("onnx2torch.node_converters.pad.OnnxPadStatic")
def _emit_pad_static(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    g.p.use_import("F")
    extra = []
    if module.mode != "constant":
        extra.append(f"mode={literal(module.mode)}")
    if module.constant_value:
        extra.append(f"value={_float_literal(float(module.constant_value), torch.float64)}")
    return f"F.pad({', '.join([g.t(args[0]), literal(list(module.pads))] + extra)})"


@_emits("onnx2pt_py.converters.control.OnnxIdentity", "onnx2torch.node_converters.identity.OnnxCopyIdentity")
def _emit_identity(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    x = args[0]
    _need(x.meta is not None and x.meta.kind == "tensor")
    return x


@_emits("onnx2pt_py.converters.tensor.OnnxShape")
def _emit_shape(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    g.p.use_import("torch")
    x = g.t(args[0])
    s = module.start if module.start is not None else None
    e = module.end if module.end is not None else None
    shape = (
        f"{x}.shape"
        if s in (None, 0) and e is None
        else f"{x}.shape[{'' if s is None else s}:{'' if e is None else e}]"
    )
    return f"torch.tensor({shape}, dtype=torch.int64)"


@_emits("onnx2pt_py.converters.tensor.OnnxFlatten")
def _emit_flatten(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    x = args[0]
    rank = x.rank()
    _need(rank is not None and rank >= 2)
    axis = module.axis + rank if module.axis < 0 else module.axis
    _need(axis == 1)
    g.p.use_import("torch")
    return f"torch.flatten({g.t(x)}, 1)"


@_emits("onnx2pt_py.converters.elementwise.OnnxPow")
def _emit_pow(g, n, module, args, kwargs):
    _need(len(args) == 2 and not kwargs)
    x, y = args
    _need(x.dtype() is not None and x.dtype().is_floating_point and y.dtype() == x.dtype())
    g.p.use_import("torch")
    return f"torch.pow({g.t(x)}, {g.t(y)})"


@_emits("onnx2pt_py.converters.elementwise.OnnxGelu")
def _emit_gelu(g, n, module, args, kwargs):
    _need(len(args) == 1 and not kwargs)
    g.p.use_import("F")
    if module.approximate == "none":
        return f"F.gelu({g.t(args[0])})"
    return f"F.gelu({g.t(args[0])}, approximate={literal(module.approximate)})"


@_emits("onnx2pt_py.converters.normalization.OnnxLayerNormalization")
def _emit_layer_norm(g, n, module, args, kwargs):
    _need(not kwargs and 2 <= len(args) <= 3 and module.outputs == 1)
    x, scale = args[0], args[1]
    bias = args[2] if len(args) == 3 else None
    _need(x.rank() is not None and x.meta is not None and x.meta.kind == "tensor")
    _need(x.dtype() in (torch.float32, torch.float64) and module.stash_dtype in (torch.float32, x.dtype()))
    rank = x.rank()
    axis = module.axis + rank if module.axis < 0 else module.axis
    w = scale.static if scale.is_static else None
    b = bias.static if bias is not None and bias.is_static else None
    shape = tuple(x.meta.shape[axis:])
    _need(isinstance(w, torch.Tensor) and tuple(w.shape) == shape and w.dtype == x.dtype())
    _need(bias is None or (isinstance(b, torch.Tensor) and tuple(b.shape) == shape and b.dtype == x.dtype()))
    layer = nn.LayerNorm(shape, eps=module.epsilon, bias=bias is not None, dtype=x.dtype())
    with torch.no_grad():
        layer.weight.copy_(w)
        if bias is not None:
            layer.bias.copy_(b)
    candidates = _weight_paths(scale, bias) + g.current.layer_paths()
    return f"{g.layer(layer, candidates=candidates)}({g.t(x)})"


@_emits("onnx2pt_py.converters.conv.OnnxConv")
def _emit_conv(g, n, module, args, kwargs):
    _need(not kwargs and 2 <= len(args) <= 3)
    x, w = args[0], args[1]
    b = args[2] if len(args) == 3 else None
    weight = w.static if w.is_static else None
    bias = b.static if b is not None and b.is_static else None
    _need(isinstance(weight, torch.Tensor) and weight.dim() in (3, 4, 5))
    _need(b is None or isinstance(bias, torch.Tensor))
    _need(module.auto_pad in ("NOTSET", "", None, "VALID"))
    rank = weight.dim() - 2
    strides = [1] * rank if module.strides is None else [int(s) for s in module.strides]
    dilations = [1] * rank if module.dilations is None else [int(d) for d in module.dilations]
    if module.auto_pad == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = [0] * (2 * rank) if module.pads is None else [int(p) for p in module.pads]
    begins, ends = pads[:rank], pads[rank:]
    group = int(module.group)
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[rank]
    xe = g.t(x)
    padding = begins
    if begins != ends:
        pad_args = []
        for begin, end in zip(reversed(begins), reversed(ends)):
            pad_args += [begin, end]
        g.p.use_import("F")
        xe = g.stmt(f"F.pad({xe}, {literal(pad_args)})", g.current.var + "_padded")
        padding = [0] * rank
    layer = cls(
        weight.shape[1] * group, weight.shape[0], tuple(weight.shape[2:]), stride=tuple(strides),
        padding=tuple(padding), dilation=tuple(dilations), groups=group, bias=b is not None, dtype=weight.dtype,
    )  # fmt: skip
    with torch.no_grad():
        layer.weight.copy_(weight)
        if b is not None:
            layer.bias.copy_(bias)
    candidates = _weight_paths(w, b) + g.current.layer_paths()
    return f"{g.layer(layer, candidates=candidates)}({xe})"


@_emits("onnx2pt_py.converters.recurrent.TorchRecurrent")
def _emit_recurrent(g, n, module, args, kwargs):
    _need(not kwargs and 1 <= len(args) <= 3 and module.layout == 0)
    rnn = module.rnn
    lstm = module.op == "LSTM"
    _need(module.op in ("LSTM", "GRU"))
    x = g.t(args[0])
    h0 = args[1] if len(args) > 1 and not (args[1].is_static and args[1].static is None) else None
    c0 = args[2] if len(args) > 2 and not (args[2].is_static and args[2].static is None) else None
    _need(not lstm or (h0 is None) == (c0 is None))
    _need(lstm or c0 is None)
    layer = g.layer(rnn)
    var = g.current.var
    used = {0}
    for user in n.users:
        if user.op == "call_function" and user.target is operator.getitem and isinstance(user.args[1], int):
            used.add(user.args[1])
        else:
            used |= set(range(module.outputs))
    y = g.names.fresh(f"{var}_y")
    h = g.names.fresh(f"{var}_h") if 1 in used else "_"
    c = g.names.fresh(f"{var}_c") if 2 in used and lstm else "_"
    state = ""
    if lstm and h0 is not None:
        state = f", ({g.t(h0)}, {g.t(c0)})"
    elif not lstm and h0 is not None:
        state = f", {g.t(h0)}"
    if lstm:
        rest = "_" if h == "_" and c == "_" else f"({h}, {c})"
        g.lines.append(f"{y}, {rest} = {layer}({x}{state})")
    else:
        g.lines.append(f"{y}, {h} = {layer}({x}{state})")
    directions = 2 if rnn.bidirectional else 1
    y = g.stmt(f"{y}.reshape({y}.shape[0], {y}.shape[1], {directions}, -1).transpose(1, 2)", var + "_y")
    outputs = [y, h if h != "_" else "None", (c if c != "_" else "None") if lstm else "None"][: module.outputs]
    return outputs[0] if module.outputs <= 1 else literal_tuple(outputs)


# -- the fallback: copying a converted module's class ---------------------------------

# Members of a class that are not copied: Python's own, and what only
# ONNX export uses.
_SKIP_MEMBERS = {
    "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__init__", "__annotations__",
    "_onnx_attrs", "__abstractmethods__", "_abc_impl", "__parameters__", "__orig_bases__", "__slots__",
    "__firstlineno__", "__static_attributes__", "__classcell__", "__init_subclass__", "__signature__",
    "__type_params__",
}  # fmt: skip
_MODULE_BASELINE = None


def _framework_class(c):
    module = getattr(c, "__module__", "") or ""
    return (
        c is object
        or c is nn.Module
        or module.startswith("torch")
        or module.startswith("onnx2torch.utils")
        or module == "typing"
        or module == "abc"
        or c.__name__ in ("OnnxToTorchModule", "OnnxToTorchModuleWithCustomExport")
    )


class _Copier:
    """Copies classes and functions of the converters into model.py."""

    def __init__(self, program):
        self.p = program

    # instances -------------------------------------------------------------------

    def instance(self, module, attribute=None):
        """(constructor code, state relative to the instance) for module
        (held as attribute by a module being copied)."""
        if isinstance(module, fx.GraphModule):
            wanted = class_name_for(attribute or "graph")
            name = self.p.global_name(module, wanted)
            state = _GraphClass(self.p, module, name).emit()
            return f"{name}()", dict(state)
        cls = type(module)
        if getattr(nn, cls.__name__, None) is cls:
            return nn_constructor(module, self.p), dict(module.state_dict())
        global _MODULE_BASELINE
        if _MODULE_BASELINE is None:
            _MODULE_BASELINE = set(vars(nn.Module()))
        plain = {k: v for k, v in vars(module).items() if k not in _MODULE_BASELINE}
        params = {k: v for k, v in module._parameters.items()}
        buffers = {k: v for k, v in module._buffers.items()}
        children = {k: v for k, v in module._modules.items()}
        for k, v in list(plain.items()):
            if isinstance(v, torch.Tensor):  # a plain tensor attribute: kept as a buffer
                buffers[k] = plain.pop(k)
        layout = tuple(
            [("plain", k) for k in plain]
            + [("param", k) for k in params]
            + [("buffer", k) for k in buffers]
            + [("child", k) for k in children]
        )
        name, params_of = self.copy_class(cls, layout)
        args, state = [], {}
        for kind, key in layout:
            arg = params_of[key]
            if kind == "plain":
                args.append(f"{arg}={literal(plain[key], self.p)}")
            elif kind in ("param", "buffer"):
                t = params[key] if kind == "param" else buffers[key]
                if t is None:
                    args.append(f"{arg}=None")
                    continue
                args.append(f"{arg}={_empty(t, self.p)}")
                state[key] = t
            else:
                child = children[key]
                if child is None:
                    args.append(f"{arg}=None")
                    continue
                code, child_state = self.instance(child, key)
                args.append(f"{arg}={code}")
                state.update({f"{key}.{k}": v for k, v in child_state.items()})
        # persistent buffers only are state
        return f"{name}({', '.join(args)})", state

    # classes ---------------------------------------------------------------------

    def copy_class(self, cls, layout):
        """The name of the class written for cls with this attribute
        layout, and its constructor's parameter name for each attribute."""
        if cls.__module__.split(".")[0] not in COPYABLE:
            raise _NoLiteral(f"{cls.__qualname__} (from {cls.__module__}) is none of the converters' classes")
        registry = self.p.__dict__.setdefault("_copied_classes", {})
        key = (cls, layout)
        if key in registry:
            return registry[key]
        chain = [c for c in cls.__mro__ if not _framework_class(c)]
        members = {}
        for c in reversed(chain):
            for k, v in vars(c).items():
                if k not in _SKIP_MEMBERS:
                    members[k] = (c, v)
        name = self.p.global_name(key, cls.__name__)
        registry[key] = None  # a method may name its own class
        params_of, used = {}, {"self"}
        for _, attr in layout:
            param = _identifier(attr.lstrip("_") or attr)
            while param in used or keyword.iskeyword(param):
                param += "_"
            used.add(param)
            params_of[attr] = param
        registry[key] = (name, params_of)
        self.p.by_object[id(cls)] = name  # references to cls inside its methods
        self.p._keep.append(cls)
        init = ["def __init__(self" + "".join(f", {params_of[a]}" for _, a in layout) + "):", "    super().__init__()"]
        for kind, attr in layout:
            param = params_of[attr]
            if kind in ("plain", "child"):
                init.append(f"    self.{attr} = {param}")
            elif kind == "param":
                self.p.use_import("nn")
                init.append(f"    self.{attr} = None if {param} is None else nn.Parameter({param})")
            else:
                init.append(f"    self.register_buffer({json.dumps(attr)}, {param})")
        body = []
        doc = inspect.getdoc(cls)
        if doc and cls.__doc__:
            body.append(_docstring(f"Copied from {cls.__module__}.{cls.__qualname__}.\n\n{doc}"))
        else:
            body.append(_docstring(f"Copied from {cls.__module__}.{cls.__qualname__}."))
        attributes, methods = [], []
        for k, (owner, v) in members.items():
            if isinstance(v, (staticmethod, classmethod)):
                methods.append(self._method_source(v.__func__, owner, cls))
            elif isinstance(v, property):
                methods.append(self._method_source(v.fget, owner, cls))
            elif isinstance(v, types.FunctionType):
                methods.append(self._method_source(v, owner, cls))
            elif k.startswith("__") and k.endswith("__"):
                continue
            elif isinstance(v, (dict, list, set)):
                init.append(f"    self.{k} = {literal(v, self.p)}")  # a class attribute, kept per instance
            else:
                attributes.append(f"{k} = {literal(v, self.p)}")
        body += attributes
        body.append("\n".join(init))
        body += methods
        self.p.use_import("nn")
        code = f"class {name}(nn.Module):\n" + "\n\n".join(textwrap.indent(b, "    ") for b in body)
        self.p.copied.add(f"{cls.__module__}.{cls.__qualname__}")
        self.p.copied_classes_code.append(code)
        return registry[key]

    def _method_source(self, fn, owner, cls):
        tree = self._parse(fn)
        return ast.unparse(self._rewrite(tree, fn))

    # functions -------------------------------------------------------------------

    def function(self, fn):
        """The module-level name of a copy of fn."""
        if id(fn) in self.p.by_object:
            return self.p.by_object[id(fn)]
        if isinstance(fn, type):
            if issubclass(fn, nn.Module):
                raise _NoLiteral(f"class {fn.__qualname__} used as a value")
            raise _NoLiteral(f"class {fn.__qualname__}")
        if not isinstance(fn, types.FunctionType) or "<locals>" in fn.__qualname__ or fn.__name__ == "<lambda>":
            raise _NoLiteral(f"{getattr(fn, '__qualname__', fn)!r} is not a module-level function")
        name = self.p.global_name(fn, fn.__name__)
        tree = self._parse(fn)
        tree.name = name
        tree.decorator_list = []
        code = ast.unparse(self._rewrite(tree, fn))
        self.p.functions_code.append(code)
        return name

    def _parse(self, fn):
        if fn.__code__.co_freevars:
            raise _NoLiteral(f"{fn.__qualname__} is a closure")
        try:
            source = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError) as e:
            raise _NoLiteral(f"no source for {fn.__qualname__}: {e}") from None
        module = ast.parse(source)
        node = module.body[0]
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise _NoLiteral(f"{fn.__qualname__} is not a plain def")
        return node

    def _rewrite(self, tree, fn):
        tree = _StripExport().visit(tree)
        numpy_names = {k for k, v in fn.__globals__.items() if v is np}
        if numpy_names:
            tree = _NoNumpyChecks(numpy_names).visit(tree)
        _strip_annotations(tree)
        free = _free_names(tree)
        bound = _bound_names(tree)
        replacements = {}
        for name in sorted(free):
            if name in fn.__globals__:
                replacements[name] = self._global(fn, name, fn.__globals__[name])
            elif hasattr(builtins, name):
                continue
            else:
                raise _NoLiteral(f"{fn.__qualname__} uses {name!r}, which is not defined")
        for name, new in replacements.items():
            root = re.match(r"\w+", new).group()
            if root != name and root in bound:
                raise _NoLiteral(f"{fn.__qualname__}: its global {name} would be named {root}, a local name there")
        tree = _Rename({k: v for k, v in replacements.items() if v != k}).visit(tree)
        ast.fix_missing_locations(tree)
        return tree

    def _global(self, fn, name, value):
        """Code for a global a copied function uses."""
        if isinstance(value, types.ModuleType):
            top = value.__name__.split(".")[0]
            if top == "torch" or top in getattr(sys, "stdlib_module_names", ()) or top in ("math",):
                return self.p.import_module(value, name)
            raise _NoLiteral(f"{fn.__qualname__} uses the module {value.__name__}")
        if isinstance(value, type) and issubclass(value, nn.Module) and not _framework_class(value):
            if id(value) in self.p.by_object:
                return self.p.by_object[id(value)]
            raise _NoLiteral(f"{fn.__qualname__} uses the class {value.__qualname__}")
        if callable(value) and not isinstance(value, (type(None),)) and not isinstance(value, (int, float, str)):
            if getattr(value, "__module__", "") and value.__module__.split(".")[0] in COPYABLE:
                return self.function(value)
            return program_function(self.p, value)
        constants = self.p.__dict__.setdefault("_constants", {})
        key = (fn.__module__, name)
        if key in constants:
            return constants[key]
        text = literal(value, self.p)
        const = self.p.global_name(("constant", fn.__module__, name), name)
        constants[key] = const
        self.p.constants_code.append(f"{const} = {text}")
        return const


def _docstring(text):
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if "\n" in text:
        return f'"""{text}\n"""'
    return f'"""{text}"""'


class _StripExport(ast.NodeTransformer):
    """Drops `if torch.onnx.is_in_onnx_export(): ...` (what the module does
    while torch exports it to ONNX), keeping the else branch."""

    def visit_If(self, node):
        self.generic_visit(node)
        if ast.unparse(node.test) in ("torch.onnx.is_in_onnx_export()", "is_in_onnx_export()"):
            return node.orelse or None
        return node

    def generic_visit(self, node):
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            value = getattr(node, field, None)
            if isinstance(value, list) and field == "body" and not value:
                value.append(ast.Pass())
        return node


def _strip_annotations(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                a.annotation = None
            if node.args.vararg:
                node.args.vararg.annotation = None
            if node.args.kwarg:
                node.args.kwarg.annotation = None
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list):
                for i, stmt in enumerate(stmts):
                    if isinstance(stmt, ast.AnnAssign):
                        if stmt.value is None:
                            stmts[i] = ast.Pass()
                        else:
                            stmts[i] = ast.Assign(targets=[stmt.target], value=stmt.value)


def _bound_names(tree):
    return _names(tree)[0]


def _free_names(tree):
    """Names a function reads that it does not bind anywhere (its globals)."""
    bound, loaded = _names(tree)
    return loaded - bound


def _names(tree):
    """(names a function binds anywhere, names it reads)."""
    bound, loaded = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not tree:
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, loaded


class _NoNumpyChecks(ast.NodeTransformer):
    """isinstance(x, np.ndarray) is False in model.py: what flows through a
    torch model is tensors (a constant is a tensor or a literal there)."""

    def __init__(self, names):
        self.names = names

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "isinstance" and len(node.args) == 2:
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            numpy = [
                k
                for k in kinds
                if isinstance(k, ast.Attribute) and isinstance(k.value, ast.Name) and k.value.id in self.names
            ]
            if numpy and len(numpy) == len(kinds):
                return ast.copy_location(ast.Constant(False), node)
            if numpy:
                rest = [k for k in kinds if k not in numpy]
                node.args[1] = rest[0] if len(rest) == 1 else ast.Tuple(elts=rest, ctx=ast.Load())
        return node


class _Rename(ast.NodeTransformer):
    def __init__(self, replacements):
        self.replacements = replacements

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.replacements:
            return ast.copy_location(ast.parse(self.replacements[node.id], mode="eval").body, node)
        return node


# -- formatting, weights, README --------------------------------------------------------


def find_ruff():
    """The ruff executable beside this interpreter, or on PATH; None."""
    candidates = [
        os.path.join(os.path.dirname(sys.executable or ""), "ruff"),
        os.path.join(sys.prefix, "bin", "ruff"),
        shutil.which("ruff"),
    ]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def format_code(code):
    """(code formatted by ruff with its default settings, True), or
    (code, False) where ruff is not installed or fails."""
    ast.parse(code)  # the code is Python, formatted or not
    ruff = find_ruff()
    if ruff is None:
        return code, False
    try:
        fixed = subprocess.run(
            [ruff, "check", "--isolated", "--fix", "--exit-zero", "--quiet", "--stdin-filename", "model.py", "-"],
            input=code, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if fixed.stdout.strip():
            code = fixed.stdout
        done = subprocess.run(
            [ruff, "format", "--isolated", "--quiet", "--stdin-filename", "model.py", "-"],
            input=code, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return code, False
    if done.returncode != 0 or not done.stdout.strip():
        return code, False
    return _quiet_lint(ruff, done.stdout), True


def _quiet_lint(ruff, code):
    """What ruff (default rules) still flags after its safe fixes is in code
    copied from the converters as it is written there: marked `# noqa`
    line by line rather than rewritten."""
    try:
        found = subprocess.run(
            [ruff, "check", "--isolated", "--output-format", "json", "--stdin-filename", "model.py", "-"],
            input=code, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        diagnostics = json.loads(found.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return code
    codes = {}
    for d in diagnostics:
        if d.get("code"):
            codes.setdefault(d["location"]["row"], set()).add(d["code"])
    if not codes:
        return code
    lines = code.split("\n")
    for row, found_codes in codes.items():
        if 0 < row <= len(lines) and "# noqa" not in lines[row - 1]:
            lines[row - 1] += f"  # noqa: {', '.join(sorted(found_codes))}"
    return "\n".join(lines)


# safetensors' names for torch dtypes.
SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
    torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
}  # fmt: skip


def save_safetensors(state, path, metadata=None):
    """state as a .safetensors file: with the safetensors package where it
    is installed, else written here in its format (a JSON header, then the
    tensors' bytes, little-endian)."""
    meta = {"format": "pt", **{str(k): str(v) for k, v in (metadata or {}).items()}}
    for key, t in state.items():
        if t.dtype not in SAFETENSORS_DTYPES:
            raise NotExpressible(key, f"safetensors cannot hold {t.dtype}")
    try:
        from safetensors.torch import save_file
    except ImportError:
        save_file = None
    if save_file is not None:
        save_file(state, path, metadata=meta)
        return
    header, chunks, offset = {"__metadata__": meta}, [], 0
    for key, t in state.items():
        data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def write_readme(folder, summary, metadata, verification=None):
    """README.md: where the code came from, how to load it, and (once
    checked) how it verified."""
    origin = describe_origin(metadata)
    source = origin["file"] or "the ONNX model"
    lines = [f"# {summary['class']}", ""]
    lines.append(
        f"PyTorch source for `{source}`, written by {origin['created_by'] or 'onnx2pt'} from onnx2torch's conversion."
    )
    lines.append("")
    facts = []
    if origin["sha256"]:
        facts.append(f"- ONNX file: `{source}`, sha256 `{origin['sha256']}`")
    if origin["opset"]:
        facts.append(f"- opset: {origin['opset']}")
    if origin["producer"]:
        facts.append(f"- producer: {origin['producer']}")
    if origin["versions"]:
        known = {k: v for k, v in origin["versions"].items() if k in ("torch", "onnx2torch", "onnx", "python") and v}
        if known:
            facts.append("- versions: " + ", ".join(f"{k} {v}" for k, v in known.items()))
    facts.append(
        f"- {summary['parameters']:,} parameters in {summary['parameter_tensors']} tensors, "
        f"{summary['buffers']:,} buffer values; layers: "
        + (", ".join(f"{n} x{c}" for n, c in summary["layers"].items()) or "none")
    )
    if summary["copied"]:
        facts.append("- op modules copied from the converter: " + ", ".join(f"`{c}`" for c in summary["copied"]))
    lines += facts + ["", "## Loading", "", "```python"]
    lines += [
        "from safetensors.torch import load_file",
        "",
        f"from model import {summary['class']}",
        "",
        f"model = {summary['class']}()",
        'model.load_state_dict(load_file("model.safetensors"))',
        "model.eval()",
        "```",
        "",
        "model.py imports torch (and the Python standard library) only.",
        "",
        "## Verification",
        "",
    ]
    if verification is None:
        lines.append("Not verified yet.")
    else:
        lines += _verification_lines(verification)
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def _verification_lines(v):
    out = []
    outputs = v.get("outputs") or []
    batches = v.get("batches") or []
    status = "passed" if v.get("passed") else "FAILED"
    out.append(
        f"Checked in a fresh Python where onnx2torch and onnx2pt cannot be imported, at batch sizes "
        f"{', '.join(str(b) for b in batches) or '(the data given)'}, against "
        f"{v.get('against', 'the expected outputs')} (atol {v.get('atol')}, rtol {v.get('rtol')}): {status}."
    )
    if outputs:
        out += ["", "| output | max abs error | max rel error | within tolerance |", "|---|---|---|---|"]
        for o in outputs:
            out.append(
                f"| {o.get('name')} | {_fmt(o.get('max_abs_diff'))} | {_fmt(o.get('max_rel_diff'))} | "
                f"{'yes' if o.get('within_tolerance') else 'no'} |"
            )
    grads = v.get("gradients")
    if grads and grads.get("differentiable") is False:
        out += [
            "",
            "Training mode: no output depends on the parameters through differentiable ops (integer quantization).",
        ]
    elif grads:
        out += [
            "",
            f"Training mode, one backward pass: {grads.get('with_gradient')} of {grads.get('parameters')} "
            f"parameters got a gradient, {'all finite' if grads.get('finite') else 'NOT all finite'}"
            + (" (the outputs themselves are not all finite there)." if grads.get("outputs_finite") is False else "."),
        ]
    export = v.get("export")
    if export:
        if export.get("ok"):
            out += ["", "torch.export of the loaded module: works."]
        elif export.get("skipped"):
            out += ["", f"torch.export of the loaded module: not tried ({export['skipped']})."]
        else:
            out += ["", f"torch.export of the loaded module: fails ({export.get('error')})."]
    if v.get("error"):
        out += ["", f"Error: {v['error']}"]
    return out


def _fmt(x):
    return "-" if x is None else f"{x:.3g}"


# -- checking ---------------------------------------------------------------------------


def check(folder, class_name, probe_inputs, example=None, specs=None, export=True, sha256=None):
    """Run the folder in the checker (artifacts.Checker: an interpreter where
    onnx2torch and onnx2pt_py cannot be imported; source_check.py there):
    model.py and model.safetensors read once and used only if they hash to
    sha256 ({file: hex}, as written; None: unchecked), the module built,
    the weights loaded with strict=True, each probe's inputs run; then one
    backward pass in training mode on the largest probe, and (export)
    torch.export at the example inputs with the inputs' symbolic dimensions
    dynamic (specs: the ONNX inputs' {"name", "shape"}).

    Returns {"outputs": [[array]] per probe, "gradients", "export",
    "imports", "error"}."""
    from .artifacts import Checker

    with tempfile.TemporaryDirectory(prefix="onnx2pt-source-") as tmp:
        probes = []
        for i, inputs in enumerate(probe_inputs):
            probe = {"inputs": os.path.join(tmp, f"in{i}.npz"), "outputs": os.path.join(tmp, f"out{i}.npz")}
            np.savez(probe["inputs"], *[np.asarray(x) for x in inputs])
            probes.append(probe)
        request = {
            "format": FORMAT,
            "folder": os.path.abspath(folder),
            "class": class_name,
            "sha256": sha256,
            "probes": probes,
            "specs": specs or [],
            "export": bool(export),
        }
        if example is not None:
            request["example"] = os.path.join(tmp, "example.npz")
            np.savez(request["example"], *[np.asarray(x) for x in example])
        path = os.path.join(tmp, "request.json")
        with open(path, "w") as f:
            json.dump(request, f)
        answer, error = Checker.get().ask(path)
        if error:
            return {"outputs": None, "error": error}
        outputs = None
        if not answer.get("error"):
            outputs = []
            for probe in probes:
                with np.load(probe["outputs"], allow_pickle=False) as data:
                    outputs.append([data[f"arr_{i}"] for i in range(len(data.files))])
        answer["outputs"] = outputs
        return answer


def verify(folder, summary, metadata, probe_inputs, expected, names, atol, rtol, example=None, specs=None,
           export=True, export_required=None, batches=None, against=None):  # fmt: skip
    """check(), then the outputs compared with the expected ones (parity's
    statistics); the README gets the figures. Returns the verification
    dict: parity's summary plus "gradients", "export", "imports", "error",
    "passed": outputs within tolerance, every parameter with a finite
    gradient (where the outputs are finite and depend on the parameters
    differentiably), and torch.export working where export_required
    (default: export; the caller passes whether the .pt2 artifact worked)."""
    if export_required is None:
        export_required = export
    from . import parity

    answer = check(
        folder, summary["class"], probe_inputs, example=example, specs=specs, export=export, sha256=summary["sha256"]
    )
    if answer.get("error"):
        result = {"passed": False, "outputs": [], "error": answer["error"], "atol": atol, "rtol": rtol}
    else:
        stats = parity.compare_all(names, expected, answer["outputs"], atol, rtol)
        result = parity.summary(stats, atol, rtol)
        result["error"] = None
    result["gradients"] = answer.get("gradients")
    result["export"] = answer.get("export")
    result["imports"] = answer.get("imports")
    result["batches"] = list(dict.fromkeys(b or 0 for b in batches or []))  # the edge probe repeats one
    result["against"] = against or "the expected outputs"
    grads = result["gradients"] or {}
    result["passed"] = bool(
        result.get("passed")
        and not result["error"]
        and (grads.get("finite", True) or grads.get("outputs_finite") is False)
        and (grads.get("with_gradient") == grads.get("parameters") or grads.get("differentiable") is False)
        and (not (export and export_required) or (result["export"] or {}).get("ok"))
    )
    write_readme(folder, summary, metadata, result)
    return result
