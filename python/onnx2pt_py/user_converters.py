"""The user's own converters (the `converters` setting): Python files and
importable modules that register with onnx2torch's `add_converter`, as
onnx2pt's own converters do.

Each interpreter loads them once, before any conversion or pre-flight, after
onnx2pt's converters (an op that onnx2torch or onnx2pt already converts at
that version is refused by `add_converter`, and the import fails saying so).
A file is run from the very bytes that were hashed, so the sha256 recorded
is that of the code that ran. Its module is named after the file ("my_ops"
for my_ops.py) when nothing else in the interpreter goes by that name, so a
checkpoint that pickles its classes loads wherever the file is importable;
otherwise it gets a name of its own (onnx2pt_user_my_ops_<hash>).
"""

import hashlib
import importlib
import importlib.util
import logging
import os
import re
import sys

from .errors import UserError, first_line

log = logging.getLogger("onnx2pt.converters")

# What load() loaded, in order: one dict per converter (see load), and the
# converter functions each registered, for converted_nodes.
LOADED = []
_FUNCTIONS = {}  # converter function -> index in LOADED


def load(specs):
    """Import each converter: a dict {"path": file} or {"module": name}, in
    order. Returns what was loaded, one dict each: path (files only), module
    (the name it was imported as), sha256 (the file's content; for a module,
    its file's, for the record) and ops (what it registered: domain, op,
    version). A converter that cannot be imported raises UserError naming it
    and the exception, chained to the exception (its traceback)."""
    from onnx2torch.node_converters import registry

    from . import converters  # noqa: F401  (onnx2pt's own first: see the module's docstring)

    out = []
    for spec in specs:
        path, name = spec.get("path"), spec.get("module")
        label = path or name
        before = dict(registry._CONVERTER_REGISTRY)
        try:
            if path:
                module, sha256 = _load_file(path)
            else:
                module = importlib.import_module(name)
                sha256 = _file_sha256(getattr(module, "__file__", None))
        except UserError:
            raise
        except BaseException as e:  # SyntaxError, ImportError, ValueError from add_converter, SystemExit...
            if isinstance(e, KeyboardInterrupt):
                raise
            raise UserError(f"user converter {label} failed to import: {type(e).__name__}: {_describe(e)}") from e
        added = {k: v for k, v in registry._CONVERTER_REGISTRY.items() if before.get(k) is not v}
        entry = {
            "path": path or "",
            "module": module.__name__,
            "sha256": sha256,
            "ops": [{"domain": k.domain or "ai.onnx", "op": k.operation_type, "version": k.version} for k in added],
        }
        if not added:
            log.warning("user converter %s registered no converter (use onnx2torch's add_converter)", label)
        for fn in added.values():
            _FUNCTIONS.setdefault(fn, len(LOADED))
        LOADED.append(entry)
        out.append(entry)
    return out


def _load_file(path):
    abspath = os.path.abspath(path)
    try:
        with open(abspath, "rb") as f:
            source = f.read()
    except OSError as e:
        raise UserError(f"user converter {path}: cannot read it: {e.strerror or first_line(e)}") from e
    sha256 = hashlib.sha256(source).hexdigest()
    name = _module_name(abspath)
    spec = importlib.util.spec_from_file_location(name, abspath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: pickle finds the module's classes by its name
    try:
        exec(compile(source, abspath, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module, sha256


def _module_name(abspath):
    """The file's stem when it is a Python name nothing else goes by (no
    module of that name is loaded or importable), else a name of its own."""
    stem = os.path.splitext(os.path.basename(abspath))[0]
    if stem.isidentifier() and stem not in sys.modules:
        try:
            taken = importlib.util.find_spec(stem) is not None
        except (ImportError, ValueError):
            taken = True
        if not taken:
            return stem
    safe = re.sub(r"\W", "_", stem)
    return f"onnx2pt_user_{safe}_{hashlib.sha256(abspath.encode()).hexdigest()[:10]}"


def _file_sha256(path):
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return ""


def _describe(e):
    """The exception's first line; for a syntax error, where it is."""
    if isinstance(e, SyntaxError) and e.lineno:
        return f"{e.msg} ({os.path.basename(e.filename or '')}, line {e.lineno})"
    return first_line(e)


def converted_nodes(model):
    """The nodes of model's main graph that the user converters convert: a
    list per converter loaded (in load order) of node names (unnamed nodes
    as "Op#index", as the pre-flight names them)."""
    out = [[] for _ in LOADED]
    if not LOADED or model is None:
        return out
    from onnx2torch.node_converters import get_converter

    from .preflight import node_name

    opsets = {o.domain: o.version for o in model.opset_import}
    for index, node in enumerate(model.graph.node):
        try:
            converter = get_converter(
                domain=node.domain, operation_type=node.op_type, version=opsets.get(node.domain, 0)
            )
        except Exception:  # no converter: the pre-flight says so
            continue
        which = _FUNCTIONS.get(converter)
        if which is not None:
            out[which].append(node_name(node, index))
    return out
