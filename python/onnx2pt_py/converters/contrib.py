"""onnxruntime's com.microsoft ops that its transformer optimizer writes:
Gelu, FastGelu, BiasGelu, QuickGelu, SkipLayerNormalization,
SkipSimplifiedLayerNormalization and FusedMatMul, as onnxruntime's
contrib-op documentation defines them (they are not in the ONNX
specification; the tests compare with onnxruntime's kernels).
"""

import math

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph

from ._common import Module, register, result_skipping_absent

MICROSOFT = "com.microsoft"

# onnx2torch names a node's module "<domain>/<name>", and torch refuses a
# module name with a dot: no node of a dotted domain (com.microsoft,
# ai.onnx.ml) could be converted at all. The dots become underscores.
# (importlib.reload wraps onnx2torch's function again, not this one)
_generate_node_name = OnnxGraph.__dict__["generate_node_name"].__func__
_generate_node_name = getattr(_generate_node_name, "wrapped", _generate_node_name)


def _dotless_node_name(node):
    return _generate_node_name(node).replace(".", "_")


_dotless_node_name.wrapped = _generate_node_name
OnnxGraph.generate_node_name = staticmethod(_dotless_node_name)


class OnnxGeluFamily(Module):
    """gelu(x + bias): exact (erf) or the tanh approximation; QuickGelu is
    x * sigmoid(alpha * x)."""

    def __init__(self, kind, alpha=1.702):
        super().__init__()
        self.kind, self.alpha = kind, alpha

    def forward(self, x, bias=None):
        if bias is not None:
            x = x + bias
        if self.kind == "quick":
            return x * torch.sigmoid(self.alpha * x)
        if self.kind == "tanh":
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
        return F.gelu(x)


@register("Gelu", [1], domain=MICROSOFT)
@register("BiasGelu", [1], domain=MICROSOFT)
def convert_gelu(node, graph):
    return result_skipping_absent(OnnxGeluFamily("erf"), node)


@register("FastGelu", [1], domain=MICROSOFT)
def convert_fast_gelu(node, graph):
    return result_skipping_absent(OnnxGeluFamily("tanh"), node)


@register("QuickGelu", [1], domain=MICROSOFT)
def convert_quick_gelu(node, graph):
    return result_skipping_absent(OnnxGeluFamily("quick", float(node.attributes.get("alpha", 1.702))), node)


class OnnxSkipNormalization(Module):
    """s = input + skip (+ bias), normalised over the last axis (LayerNorm,
    or RMS for the simplified form), times gamma (+ beta). Outputs: the
    result, mean, inverse standard deviation, and s."""

    def __init__(self, epsilon, simplified, outputs):
        super().__init__()
        self.epsilon, self.simplified, self.outputs = epsilon, simplified, outputs

    def forward(self, x, skip, gamma, beta=None, bias=None):
        if self.simplified:  # (input, skip, gamma, bias): no beta
            beta, bias = None, beta
        s = x + skip
        if bias is not None:
            s = s + bias
        stashed = s.to(torch.float32)
        mean = stashed.mean(dim=-1, keepdim=True)
        centred = stashed if self.simplified else stashed - mean
        inv_std = torch.rsqrt((centred * centred).mean(dim=-1, keepdim=True) + self.epsilon)
        y = (centred * inv_std).to(s.dtype) * gamma
        if beta is not None:
            y = y + beta
        if self.outputs == 1:
            return y
        return (y, mean, inv_std, s)[: self.outputs]


@register("SkipLayerNormalization", [1], domain=MICROSOFT)
@register("SkipSimplifiedLayerNormalization", [1], domain=MICROSOFT)
def convert_skip_normalization(node, graph):
    outputs = max(i + 1 for i, name in enumerate(node.output_values) if name)
    simplified = node.operation_type.startswith("SkipSimplified")
    module = OnnxSkipNormalization(float(node.attributes.get("epsilon", 1e-12)), simplified, outputs)
    return result_skipping_absent(module, node)


class OnnxFusedMatMul(Module):
    """alpha * op(A) @ op(B). op: with transBatch, the first axis moved to
    the rows' place (A [M, B..., K] read as [B..., M, K]: a Transpose
    onnxruntime fused in), then with trans the last two axes swapped."""

    def __init__(self, alpha, trans_a, trans_b, trans_batch_a=False, trans_batch_b=False):
        super().__init__()
        self.alpha, self.trans_a, self.trans_b = alpha, trans_a, trans_b
        self.trans_batch_a, self.trans_batch_b = trans_batch_a, trans_batch_b

    @staticmethod
    def _op(x, trans_batch, trans):
        if trans_batch and x.dim() > 2:
            x = x.permute(*range(1, x.dim() - 1), 0, x.dim() - 1)
        return x.transpose(-1, -2) if trans else x

    def forward(self, a, b):
        y = torch.matmul(self._op(a, self.trans_batch_a, self.trans_a), self._op(b, self.trans_batch_b, self.trans_b))
        return y if self.alpha == 1.0 else y * self.alpha


@register("FusedMatMul", [1], domain=MICROSOFT)
def convert_fused_matmul(node, graph):
    a = node.attributes
    module = OnnxFusedMatMul(
        float(a.get("alpha", 1.0)),
        bool(a.get("transA", 0)),
        bool(a.get("transB", 0)),
        bool(a.get("transBatchA", 0)),
        bool(a.get("transBatchB", 0)),
    )
    return result_skipping_absent(module, node)
