"""NegativeLogLikelihoodLoss (12, 13, 22) and SoftmaxCrossEntropyLoss (12, 13).

Per element, loss = -input[n, target, d...] * weight[target], and 0 where the
target equals `ignore_index`. `mean` divides the sum by the sum of the
weights used (the count of targets not ignored without `weight`), as the
spec's examples and reference do. SoftmaxCrossEntropyLoss applies
log_softmax over the class axis first and can return it as `log_prob`.
"""

import torch

from ._common import Module, output_count, register, result


class OnnxNllLoss(Module):
    def __init__(self, reduction, ignore_index, softmax, outputs):
        super().__init__()
        if reduction not in ("none", "sum", "mean"):
            raise ValueError(f"reduction must be none, sum or mean, got {reduction!r}")
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.softmax = softmax
        self.outputs = outputs

    def forward(self, scores, target, weight=None):
        log_prob = torch.log_softmax(scores, dim=1) if self.softmax else scores
        target = target.to(torch.int64)
        if self.ignore_index is None:
            ignored = torch.zeros_like(target, dtype=torch.bool)
        else:
            ignored = target == self.ignore_index
        safe = torch.where(ignored, torch.zeros_like(target), target)
        picked = -log_prob.gather(1, safe.unsqueeze(1)).squeeze(1)
        weights = torch.ones_like(picked) if weight is None else weight[safe]
        weights = torch.where(ignored, torch.zeros_like(weights), weights)
        loss = picked * weights
        if self.reduction == "sum":
            loss = loss.sum()
        elif self.reduction == "mean":
            loss = loss.sum() / weights.sum()
        if self.outputs == 1:
            return loss
        return loss, log_prob


def _converter(softmax):
    def convert(node, graph):
        a = node.attributes
        module = OnnxNllLoss(a.get("reduction", "mean"), a.get("ignore_index"), softmax, output_count(node))
        return result(module, node)

    return convert


register("NegativeLogLikelihoodLoss", [12, 13, 22])(_converter(softmax=False))
register("SoftmaxCrossEntropyLoss", [12, 13])(_converter(softmax=True))
