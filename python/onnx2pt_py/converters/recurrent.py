"""LSTM, GRU and RNN.

Where ONNX's semantics are torch's (default activations, no clip, no
peepholes, no sequence lengths, GRU with linear_before_reset, constant
weights), the node becomes a torch.nn.LSTM / GRU / RNN with the ONNX weights
reordered into torch's gate order, so the result trains like a torch model.
Everything else (sequence lengths, clip, peepholes, coupled input and forget
gates, other activations, weights computed at run time) runs an explicit
loop over time steps with the equations of the ONNX specification.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ._common import Module, constant, present, register, result_skipping_absent

# ONNX's gate order in W, R and B, and where each gate sits in torch's.
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_TORCH_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}  # i,o,f,c -> i,f,c,o; z,r,h -> r,z,h
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
# Activations that take alpha (and beta), with their defaults.
_PARAMETERS = {
    "Affine": (1.0, 0.0),
    "LeakyRelu": (0.01,),
    "ThresholdedRelu": (1.0,),
    "ScaledTanh": (1.0, 1.0),
    "HardSigmoid": (0.2, 0.5),
    "Elu": (1.0,),
}


def _activation(name, params):
    table = {
        "Relu": torch.relu,
        "Tanh": torch.tanh,
        "Sigmoid": torch.sigmoid,
        "Affine": lambda x: params[0] * x + params[1],
        "LeakyRelu": lambda x: F.leaky_relu(x, params[0]),
        "ThresholdedRelu": lambda x: torch.where(x > params[0], x, torch.zeros_like(x)),
        "ScaledTanh": lambda x: params[0] * torch.tanh(params[1] * x),
        "HardSigmoid": lambda x: torch.clamp(params[0] * x + params[1], 0, 1),
        "Elu": lambda x: F.elu(x, params[0]),
        "Softsign": F.softsign,
        "Softplus": F.softplus,
    }
    if name not in table:
        raise NotImplementedError(f"activation {name} is not implemented")
    return table[name]


def _activations(node, op, directions):
    """(name, parameters) per activation, for each direction."""
    a = node.attributes
    names = [n.decode() if isinstance(n, bytes) else n for n in a.get("activations", [])]
    count = len(_DEFAULT_ACTIVATIONS[op])
    if not names:
        names = _DEFAULT_ACTIVATIONS[op] * directions
    alphas, betas = list(a.get("activation_alpha", [])), list(a.get("activation_beta", []))
    out = []
    for name in names:
        defaults = _PARAMETERS.get(name, ())
        params = list(defaults)
        if len(defaults) >= 1 and alphas:
            params[0] = alphas.pop(0)
        if len(defaults) >= 2 and betas:
            params[1] = betas.pop(0)
        out.append((name, tuple(params)))
    return [out[d * count : (d + 1) * count] for d in range(directions)]


def _onnx_outputs(y, h, c, layout, outputs):
    """Y [time, dir, batch, hidden], Y_h and Y_c [dir, batch, hidden] as ONNX
    returns them: batch first for layout 1, as many as the node has."""
    if layout == 1:
        y, h = y.permute(2, 0, 1, 3), h.transpose(0, 1)
        c = None if c is None else c.transpose(0, 1)
    return (y, h, c)[:outputs] if outputs > 1 else y


def _reverse_within(x, lengths):
    """Each batch item's first lengths[b] time steps in reverse order, the
    rest where they were. x: [time, batch, ...]."""
    steps = x.shape[0]
    t = torch.arange(steps, device=x.device).unsqueeze(1)
    n = lengths.unsqueeze(0)
    source = torch.where(t < n, n - 1 - t, t)
    return x.gather(0, source.reshape(*source.shape, *[1] * (x.dim() - 2)).expand(x.shape))


class OnnxRecurrent(Module):
    """The explicit loop. Inputs as ONNX orders them (X, W, R, B,
    sequence_lens, initial_h, initial_c, P), absent ones as None."""

    def __init__(self, op, hidden, direction, activations, clip, layout, input_forget, linear_before_reset, outputs):
        super().__init__()
        self.op, self.hidden, self.direction = op, hidden, direction
        self.activations, self.clip, self.layout = activations, clip, layout
        self.input_forget, self.linear_before_reset, self.outputs = input_forget, linear_before_reset, outputs

    def forward(self, x, w, r, b=None, lengths=None, h0=None, c0=None, p=None):
        if self.layout == 1:  # batch first: to time first, and states [dir, batch, hidden]
            x = x.transpose(0, 1)
            h0 = None if h0 is None else h0.transpose(0, 1)
            c0 = None if c0 is None else c0.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        lengths = torch.full((batch,), steps, dtype=torch.int64) if lengths is None else lengths.to(torch.int64)
        reversed_ = [self.direction == "reverse"] if self.direction != "bidirectional" else [False, True]
        ys, hs, cs = [], [], []
        for d, reverse in enumerate(reversed_):
            xd = _reverse_within(x, lengths) if reverse else x
            y, h, c = self._direction(xd, w[d], r[d], None if b is None else b[d], lengths, h0, c0, p, d)
            ys.append(_reverse_within(y, lengths) if reverse else y)
            hs.append(h)
            cs.append(c)
        c = torch.stack(cs) if self.op == "LSTM" else None
        return _onnx_outputs(torch.stack(ys, dim=1), torch.stack(hs), c, self.layout, self.outputs)

    def _direction(self, x, w, r, b, lengths, h0, c0, p, d):
        """One direction over time: outputs past an item's length are zero
        and leave its state as it was."""
        batch, gates = x.shape[1], _GATES[self.op]
        h = x.new_zeros(batch, self.hidden) if h0 is None else h0[d]
        c = x.new_zeros(batch, self.hidden) if c0 is None else c0[d]
        wb = rb = None
        if b is not None:
            wb, rb = b[: gates * self.hidden], b[gates * self.hidden :]
        acts = [_activation(name, params) for name, params in self.activations[d]]
        outputs = []
        for t in range(x.shape[0]):
            valid = (t < lengths).unsqueeze(1)
            new_h, new_c = self._step(x[t], h, c, w, r, wb, rb, p, d, acts)
            h = torch.where(valid, new_h, h)
            if new_c is not None:
                c = torch.where(valid, new_c, c)
            outputs.append(torch.where(valid, new_h, torch.zeros_like(new_h)))
        return torch.stack(outputs), h, c

    def _gate_inputs(self, pre):
        if self.clip is not None:
            pre = torch.clamp(pre, -self.clip, self.clip)
        return pre

    def _step(self, xt, h, c, w, r, wb, rb, p, d, acts):
        hidden = self.hidden
        xw = xt @ w.T
        hr = h @ r.T
        if wb is not None:
            xw = xw + wb
        if self.op == "RNN":
            return acts[0](self._gate_inputs(xw + (hr + rb if rb is not None else hr))), None
        if self.op == "GRU":
            f, g = acts
            xz, xr, xh = xw.split(hidden, dim=1)
            rz, rr, rh_w = r.split(hidden, dim=0)
            bz = br = bh = 0
            if rb is not None:
                bz, br, bh = rb.split(hidden)
            z = f(self._gate_inputs(xz + h @ rz.T + bz))
            reset = f(self._gate_inputs(xr + h @ rr.T + br))
            if self.linear_before_reset:
                candidate = g(self._gate_inputs(xh + reset * (h @ rh_w.T + bh)))
            else:
                candidate = g(self._gate_inputs(xh + (reset * h) @ rh_w.T + bh))
            return (1 - z) * candidate + z * h, None
        f, g, hact = acts
        if rb is not None:
            hr = hr + rb
        pre = xw + hr
        pi, po, pf, pc = pre.split(hidden, dim=1)
        if p is not None:
            peep_i, peep_o, peep_f = p[d].split(hidden)
            pi, pf = pi + peep_i * c, pf + peep_f * c
        i = f(self._gate_inputs(pi))
        forget = 1 - i if self.input_forget else f(self._gate_inputs(pf))
        new_c = forget * c + i * g(self._gate_inputs(pc))
        if p is not None:
            po = po + peep_o * new_c
        o = f(self._gate_inputs(po))
        return o * hact(new_c), new_c


class TorchRecurrent(Module):
    """torch.nn.LSTM / GRU / RNN with ONNX's inputs and outputs: time-first
    (layout 0) or batch-first (1) data, states [directions, batch, hidden]
    (layout 1: [batch, directions, hidden]), Y with a direction axis."""

    def __init__(self, rnn, op, layout, outputs):
        super().__init__()
        self.rnn, self.op, self.layout, self.outputs = rnn, op, layout, outputs

    def forward(self, x, h0=None, c0=None):
        if self.layout == 1:
            x = x.transpose(0, 1)
            h0 = None if h0 is None else h0.transpose(0, 1).contiguous()
            c0 = None if c0 is None else c0.transpose(0, 1).contiguous()
        if self.op == "LSTM":
            state = None
            if h0 is not None or c0 is not None:
                zeros = x.new_zeros(
                    self.rnn.num_layers * (2 if self.rnn.bidirectional else 1), x.shape[1], self.rnn.hidden_size
                )
                state = (zeros if h0 is None else h0, zeros if c0 is None else c0)
            y, (h, c) = self.rnn(x, state)
        else:
            y, h = self.rnn(x, h0)
            c = None
        directions = 2 if self.rnn.bidirectional else 1
        y = y.reshape(y.shape[0], y.shape[1], directions, -1).transpose(1, 2)
        return _onnx_outputs(y, h, c, self.layout, self.outputs)


def _torch_module(op, node, w, r, b, hidden, directions):
    """The torch.nn module with these ONNX weights, in torch's gate order."""
    gates = _GATES[op]
    order = _TORCH_ORDER[op]
    cls = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[op]
    kwargs = {"bidirectional": directions == 2, "bias": True}
    if op == "RNN":
        kwargs["nonlinearity"] = "relu" if _activations(node, op, directions)[0][0][0] == "Relu" else "tanh"
    module = cls(w.shape[2], hidden, **kwargs)

    def reorder(t):
        blocks = t.reshape(gates, hidden, *t.shape[1:])
        return blocks[order].reshape(t.shape)

    with torch.no_grad():
        for d in range(directions):
            suffix = "_reverse" if d == 1 else ""
            getattr(module, f"weight_ih_l0{suffix}").copy_(reorder(w[d]))
            getattr(module, f"weight_hh_l0{suffix}").copy_(reorder(r[d]))
            bias = b[d] if b is not None else torch.zeros(2 * gates * hidden)
            getattr(module, f"bias_ih_l0{suffix}").copy_(reorder(bias[: gates * hidden]))
            getattr(module, f"bias_hh_l0{suffix}").copy_(reorder(bias[gates * hidden :]))
    return module


def _convert(node, graph, op):
    a = node.attributes
    direction = a.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    directions = 2 if direction == "bidirectional" else 1
    hidden = int(a["hidden_size"])
    layout = int(a.get("layout", 0))
    outputs = max(i + 1 for i, name in enumerate(node.output_values) if name)
    activations = _activations(node, op, directions)
    w, r = constant(node, 1, graph), constant(node, 2, graph)
    b = constant(node, 3, graph)
    plain = (
        w is not None
        and r is not None
        and (b is not None or not present(node, 3))
        and not present(node, 4)  # sequence_lens
        and not present(node, 7)  # peepholes
        and direction != "reverse"
        and "clip" not in a
        and not a.get("input_forget", 0)
        and (op != "GRU" or a.get("linear_before_reset", 0))
        and all(
            [name for name, _ in acts] == _DEFAULT_ACTIVATIONS[op] or op == "RNN" and acts == [("Relu", ())]
            for acts in activations
        )
    )
    if plain:
        module = TorchRecurrent(_torch_module(op, node, w, r, b, hidden, directions), op, layout, outputs)
        states = [node.input_values[i] if present(node, i) else "" for i in (5, 6)[: 2 if op == "LSTM" else 1]]
        inputs = [node.input_values[0]] + states
        while inputs and inputs[-1] == "":
            inputs.pop()
        if "" in inputs:  # an initial c without an initial h: the loop takes it
            plain = False
    if not plain:
        module = OnnxRecurrent(
            op,
            hidden,
            direction,
            activations,
            a.get("clip"),
            layout,
            bool(a.get("input_forget", 0)),
            bool(a.get("linear_before_reset", 0)),
            outputs,
        )
        inputs = list(node.input_values)
    return result_skipping_absent(module, node, inputs)


@register("LSTM", [7, 14, 22])
def convert_lstm(node, graph):
    return _convert(node, graph, "LSTM")


@register("GRU", [7, 14, 22])
def convert_gru(node, graph):
    return _convert(node, graph, "GRU")


@register("RNN", [7, 14, 22])
def convert_rnn(node, graph):
    return _convert(node, graph, "RNN")
