"""Version aliases: an existing converter registered again under newer (or
older) schema versions of the same op whose semantics did not change.

Most new schema versions since opset 19 only allow more types (float8, int4,
bfloat16, ...). onnx2torch looks a node up by the schema's since_version, so
a model at opset 21 using Reshape needs a converter under Reshape 21 even
though Reshape 14's converter computes the same thing.

The aliases are computed, not listed: versions v and w of an op (adjacent in
onnx.defs) are taken as equivalent when their signatures match: attribute
names, types, required flags and defaults; input and output names and
optionality; input and output counts. Type constraints may differ, since a
converter handles whatever torch types arrive. A missing version inherits the
converter of an adjacent registered version along a chain of equivalent
versions, upwards and (for versions older than every converter) downwards.

A changed signature breaks the chain (Pad 18 added `axes`, Split 18
`num_outputs`, Reduce* 18 moved `axes` to an input, Range 27 added
`stash_type`, ...). Semantic changes the signature does not show are in
EXCLUDED, with the reason; ops converted explicitly in this package have
their own converters registered before this module runs, and are never
aliased over.

The documentation changes between aliased versions were read: besides types
they only widen what is accepted, which the older converters already handle
(Max/Min/Mean/Sum 8 added broadcasting to 6, ArgMax/ArgMin 11 negative axes
to 1, PRelu 7 numpy broadcasting to 6's per-channel slope, which
onnx2torch's PRelu applies per channel; ScatterND 18 added the max/min
reductions, which onnx2torch's converter refuses like add/mul). The alias
list is pinned by a test, so a new onnx release's versions get the same
review.
"""

import collections

from onnx import defs
from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription

from . import (  # noqa: F401  (their converters first: an explicit converter is never aliased over)
    attention,
    cast,
    contrib,
    contrib_attention,
    control,
    conv,
    cumulative,
    elementwise,
    image,
    loss,
    normalization,
    pooling,
    quantize,
    recurrent,
    reduce,
    resize,
    rotary,
    sampling,
    signal,
    sorting,
    state,
    tensor,
    text,
    training,
    unsigned,
)
from ._common import ALIASED, register

# (op, version): why it must not inherit the converter of an adjacent version.
EXCLUDED = {
    ("Mod", 28): "fmod=0 became defined for floats and fmod=1 for integers (elementwise.py converts it)",
    ("Resize", 19): "adds coordinate_transformation_mode half_pixel_symmetric (resize.py converts it)",
    ("MaxPool", 22): "clarifies ceil_mode windows starting in the end padding (pooling.py converts it)",
    ("Dropout", 22): "onnx2torch's Dropout 13 ignores training_mode (tensor.py converts it)",
    ("NonZero", 9): "onnx2torch's NonZero 13 returns (count, rank), not (rank, count) (tensor.py converts it)",
}


def _signature(schema):
    attributes = sorted(
        (name, int(a.type), bool(a.required), a.default_value.SerializeToString())
        for name, a in schema.attributes.items()
    )
    inputs = [(p.name, int(p.option)) for p in schema.inputs]
    outputs = [(p.name, int(p.option)) for p in schema.outputs]
    counts = (schema.min_input, schema.max_input, schema.min_output, schema.max_output)
    return attributes, inputs, outputs, counts


def _since_versions(domain):
    versions = collections.defaultdict(set)
    for schema in defs.get_all_schemas_with_history():
        if schema.domain == domain and not schema.deprecated:
            versions[schema.name].add(schema.since_version)
    return {op: sorted(v) for op, v in versions.items()}


def compute_aliases(registry=None, domain=defs.ONNX_DOMAIN):
    """[(op, version, source version)] for the versions without a converter
    that can use the converter registered under `source version`."""
    registry = _CONVERTER_REGISTRY if registry is None else registry
    have = collections.defaultdict(set)
    for key in registry:
        if key.domain == domain:
            have[key.operation_type].add(key.version)
    aliases = []
    for op, versions in sorted(_since_versions(domain).items()):
        if not have.get(op):
            continue
        signature = {v: _signature(defs.get_schema(op, max_inclusive_version=v, domain=domain)) for v in versions}
        source = {v: v for v in have[op]}  # version -> version whose converter it uses
        for order in (versions, versions[::-1]):  # newer versions first, then older ones
            for previous, v in zip(order, order[1:]):
                if v in source or previous not in source or (op, v) in EXCLUDED or (op, previous) in EXCLUDED:
                    continue
                if signature[v] == signature[previous]:
                    source[v] = source[previous]
                    aliases.append((op, v, source[v]))
    return sorted(aliases)


def _register(aliases):
    for op, version, source in aliases:
        converter = _CONVERTER_REGISTRY[
            OperationDescription(domain=defs.ONNX_DOMAIN, operation_type=op, version=source)
        ]
        register(op, [version])(converter)
        ALIASED[(op, version)] = source
    # kept in _common, so that running this module again (when it finds
    # nothing left to alias) still lists what was aliased
    return sorted((op, version, source) for (op, version), source in ALIASED.items())


# [(op, version, version whose converter it got)]
ALIASES = _register(compute_aliases())
