"""Recurrent networks for the topics about time: the models, the adding problem, one training loop, the probe.

h_t is the hidden state after step t (t = 1..T). The probe measures dL/dh_t for a loss on the last step only,
so T - t is how far back in time the gradient has travelled (Bengio, Simard & Frasconi 1994).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from vgsite.probes import norm

KINDS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
LABELS = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM", "gru": "GRU", "linear": "linear RNN"}

# Always answering 1, the mean of a sum of two U(0, 1), misses by Var = 2 * 1/12 = 1/6 on the adding problem.
ADDING_BASELINE = 1 / 6


def adding_problem(batch, length, generator=None):
    """Hochreiter & Schmidhuber's (1997) adding problem, in the form of Le et al. (2015) and later papers.

    Each step has two inputs: a value drawn from U(0, 1) and a marker, 1 at exactly two steps (one in each
    half of the sequence) and 0 elsewhere. The target is the sum of the two marked values.
    Returns x of shape (batch, length, 2) and y of shape (batch, 1).
    """
    values = torch.rand(batch, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    marks = torch.zeros(batch, length)
    rows = torch.arange(batch)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = torch.stack([values, marks], dim=2)
    y = (values * marks).sum(1, keepdim=True)
    return x, y


class LinearRNN(nn.Module):
    """h_t = W h_{t-1} + U x_t, no nonlinearity: the case where dL/dh_t = (W^T)^(T-t) dL/dh_T exactly."""

    def __init__(self, d_in, hidden):
        super().__init__()
        self.weight_hh = nn.Parameter(torch.empty(hidden, hidden))
        self.weight_ih = nn.Parameter(torch.empty(hidden, d_in))
        nn.init.orthogonal_(self.weight_hh)
        nn.init.normal_(self.weight_ih, std=1 / math.sqrt(d_in))

    def forward(self, x, state=None):
        h = state[0] if state is not None else x.new_zeros(x.shape[0], self.weight_hh.shape[0])  # state: (1, B, H)
        outs = []
        for t in range(x.shape[1]):
            h = h @ self.weight_hh.T + x[:, t] @ self.weight_ih.T
            outs.append(h)
        return torch.stack(outs, 1), h.unsqueeze(0)


class SequenceModel(nn.Module):
    """A one-layer recurrent network (kind: rnn, lstm, gru from torch.nn, or linear) and a linear readout of h_T.

    forward(x) runs the fused torch.nn layer; forward(x, keep=True) runs it one step at a time and keeps every
    h_t (in self.hidden, each of shape (1, batch, hidden)) with its gradient, for the probe. Both compute the same.
    """

    def __init__(self, kind, d_in=2, hidden=32, d_out=1, gate_bias=None, orthogonal=False):
        super().__init__()
        if kind not in (*KINDS, "linear"):
            raise ValueError(f"unknown kind {kind!r}; choose from {', '.join([*KINDS, 'linear'])}")
        self.kind = kind
        self.cell = LinearRNN(d_in, hidden) if kind == "linear" else KINDS[kind](d_in, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, d_out)
        self.hidden = []
        with torch.no_grad():
            if orthogonal and kind == "rnn":  # W_hh orthogonal (Saxe et al. 2014): every singular value 1
                nn.init.orthogonal_(self.cell.weight_hh_l0)
            if gate_bias is not None and kind in ("lstm", "gru"):
                # The gate that keeps the old state: the LSTM's forget gate f (rows H..2H of i, f, g, o) or the
                # GRU's update gate z (rows H..2H of r, z, n; h_t = (1 - z) n + z h_{t-1}). A bias b opens it to
                # about sigmoid(b) (Gers et al. 2000; Jozefowicz et al. 2015 use b = 1 for the LSTM).
                self.cell.bias_ih_l0[hidden:2 * hidden] = gate_bias
                self.cell.bias_hh_l0[hidden:2 * hidden] = 0.0

    @property
    def recurrent_weight(self):
        return self.cell.weight_hh if self.kind == "linear" else self.cell.weight_hh_l0

    def forward(self, x, keep=False):
        if not keep:
            out, _ = self.cell(x)
            return self.readout(out[:, -1])
        self.hidden, state = [], None
        for t in range(x.shape[1]):
            _, state = self.cell(x[:, t:t + 1], state)
            h = state[0] if self.kind == "lstm" else state  # LSTM state: (h, c)
            if h.requires_grad:
                h.retain_grad()
            self.hidden.append(h)
        return self.readout(self.hidden[-1][0])


def gradient_through_time(model: SequenceModel, x, y) -> list:
    """||dL/dh_t|| for t = 1..T (float64 norm over the batch), for the MSE of the readout at the last step."""
    model.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(x, keep=True), y)
    loss.backward()
    return [norm(h.grad) for h in model.hidden]


def train_sequence(model, batch_fn, steps, lr=1e-3, optimizer="adam", clip=None, every=25, seed=0,
                   solved=None, patience=None, min_delta=0.05, test=None, on_step=None):
    """The one training loop of the recurrent experiments: MSE on fresh batches from batch_fn(generator).

    Every `every` steps it records the mean training loss of the last `every` steps, the largest gradient norm
    among them (before clipping) and how many of them clip rescaled. It stops early once that mean is below
    `solved`, once it has not improved by a fraction `min_delta` on its best in `patience` steps (a plateau), or
    once the loss is not finite (divergence; recorded as nan). clip: max global gradient norm
    (torch.nn.utils.clip_grad_norm_), which multiplies every gradient by min(1, clip / ||g||).
    on_step(step, model) runs after each backward pass, before clipping. test: (x, y) for the final test MSE.
    """
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    history = {"step": [], "loss": [], "grad_norm": [], "clipped": [], "stopped": "steps", "steps_run": 0}
    window, norms, clipped = [], [], 0
    best, best_step = math.inf, 0
    for step in range(1, steps + 1):
        x, y = batch_fn(gen)
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if on_step:
            on_step(step, model)
        total = torch.nn.utils.clip_grad_norm_(params, clip if clip else math.inf).item()
        window.append(loss.item())
        norms.append(total)
        clipped += bool(clip and total > clip)
        finite = math.isfinite(window[-1]) and math.isfinite(total)
        if finite:
            opt.step()
        history["steps_run"] = step
        if step % every == 0 or step == steps or not finite:
            mean = sum(window) / len(window)
            history["step"].append(step)
            history["loss"].append(mean if math.isfinite(mean) else math.nan)
            history["grad_norm"].append(max(norms) if all(map(math.isfinite, norms)) else math.nan)
            history["clipped"].append(clipped)
            window, norms, clipped = [], [], 0
            if not finite or not math.isfinite(mean):
                history["stopped"] = "diverged"
                break
            if solved is not None and mean < solved:
                history["stopped"] = "solved"
                break
            if mean < best * (1 - min_delta):
                best, best_step = mean, step
            if patience is not None and step - best_step >= patience:
                history["stopped"] = "plateau"
                break
    if test is not None:
        with torch.no_grad():
            history["test_mse"] = F.mse_loss(model(test[0]), test[1]).item()
    return history
