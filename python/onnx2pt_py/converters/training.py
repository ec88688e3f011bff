"""The optimiser steps of ai.onnx.preview.training: Adagrad, Momentum
(standard and Nesterov) and Adam, one step for several tensors at once.

Inputs are R (learning rate), T (update count), then each group of
per-tensor inputs in turn (X1..Xn, G1..Gn, ...); outputs are the groups of
new values (X1_new..Xn_new, ...). The scalar factors are computed in
float64, then everything in X's type, which is the outputs' type.
onnxruntime has no kernels for these ops: the tests compare with the ONNX
reference evaluator.
"""

import torch

from ._common import Module, register, result

TRAINING = "ai.onnx.preview.training"


class OnnxOptimizerStep(Module):
    """Splits R, T, X.., G.., (V.. and/or H..) and applies `step` to each
    tensor; returns X_new.., then the new states."""

    inputs_per_tensor = 0  # X, G and the optimiser's states

    def forward(self, r, t, *tensors):
        n = len(tensors) // self.inputs_per_tensor
        groups = [tensors[i * n : (i + 1) * n] for i in range(self.inputs_per_tensor)]
        r, t = r.reshape(()).to(torch.float64), t.reshape(()).to(torch.float64)
        new = [self.step(r, t, *per_tensor) for per_tensor in zip(*groups)]
        return tuple(values[k] for k in range(len(new[0])) for values in new)


class OnnxAdagrad(OnnxOptimizerStep):
    inputs_per_tensor = 3

    def __init__(self, norm_coefficient, epsilon, decay_factor):
        super().__init__()
        self.norm_coefficient, self.epsilon, self.decay_factor = norm_coefficient, epsilon, decay_factor

    def step(self, r, t, x, g, h):
        rate = (r / (1 + t * self.decay_factor)).to(x.dtype)
        g = self.norm_coefficient * x + g
        h_new = h + g * g
        return x - rate * g / (torch.sqrt(h_new) + self.epsilon), h_new


class OnnxMomentum(OnnxOptimizerStep):
    inputs_per_tensor = 3

    def __init__(self, norm_coefficient, alpha, beta, nesterov):
        super().__init__()
        self.norm_coefficient, self.alpha, self.beta, self.nesterov = norm_coefficient, alpha, beta, nesterov

    def step(self, r, t, x, g, v):
        g = self.norm_coefficient * x + g
        beta = torch.where(t > 0, self.beta, 1.0).to(x.dtype)  # the first step takes the whole gradient
        v_new = self.alpha * v + beta * g
        direction = g + self.alpha * v_new if self.nesterov else v_new
        return x - r.to(x.dtype) * direction, v_new


class OnnxAdam(OnnxOptimizerStep):
    inputs_per_tensor = 4

    def __init__(self, norm_coefficient, norm_coefficient_post, alpha, beta, epsilon):
        super().__init__()
        self.norm_coefficient, self.norm_coefficient_post = norm_coefficient, norm_coefficient_post
        self.alpha, self.beta, self.epsilon = alpha, beta, epsilon

    def step(self, r, t, x, g, v, h):
        g = self.norm_coefficient * x + g
        v_new = self.alpha * v + (1 - self.alpha) * g
        h_new = self.beta * h + (1 - self.beta) * (g * g)
        # bias correction from the second step on (at T = 0 it would divide by zero)
        corrected = r * torch.sqrt(1 - self.beta**t) / (1 - self.alpha**t)
        rate = torch.where(t > 0, corrected, r).to(x.dtype)
        x_new = x - rate * (v_new / (torch.sqrt(h_new) + self.epsilon))
        return (1 - self.norm_coefficient_post) * x_new, v_new, h_new


def _check_arity(node, module_class):
    """ValueError unless the inputs split into whole groups (ONNX's shape
    inference checks the outputs)."""
    per_tensor = module_class.inputs_per_tensor
    tensors = len(node.input_values) - 2
    if tensors <= 0 or tensors % per_tensor or "" in node.input_values:
        raise ValueError(
            f"{node.operation_type} needs R, T and {per_tensor} inputs per optimised tensor, got {len(node.input_values)} inputs"
        )


@register("Adagrad", [1], domain=TRAINING)
def convert_adagrad(node, graph):
    a = node.attributes
    _check_arity(node, OnnxAdagrad)
    module = OnnxAdagrad(
        float(a.get("norm_coefficient", 0.0)),
        float(a.get("epsilon", 1e-6)),
        float(a.get("decay_factor", 0.0)),
    )
    return result(module, node)


@register("Momentum", [1], domain=TRAINING)
def convert_momentum(node, graph):
    a = node.attributes
    mode = a["mode"].decode() if isinstance(a["mode"], bytes) else a["mode"]
    if mode not in ("standard", "nesterov"):
        raise ValueError(f"Momentum mode {mode!r} is neither 'standard' nor 'nesterov'")
    _check_arity(node, OnnxMomentum)
    module = OnnxMomentum(
        float(a["norm_coefficient"]),
        float(a["alpha"]),
        float(a["beta"]),
        mode == "nesterov",
    )
    return result(module, node)


@register("Adam", [1], domain=TRAINING)
def convert_adam(node, graph):
    a = node.attributes
    _check_arity(node, OnnxAdam)
    module = OnnxAdam(
        float(a.get("norm_coefficient", 0.0)),
        float(a.get("norm_coefficient_post", 0.0)),
        float(a.get("alpha", 0.9)),
        float(a.get("beta", 0.999)),
        float(a.get("epsilon", 1e-6)),
    )
    return result(module, node)
