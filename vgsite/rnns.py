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


# ---- Several small recurrent networks trained together (the initialisation experiments) ----------------------------


def recurrent_layer(kind, d_in=2, hidden=32, init="default", length=None):
    """A one-layer torch.nn recurrent layer (batch_first) with one of the initialisations the rnn page compares.

    kind: rnn, lstm or gru. init:
      default     as PyTorch draws it: every weight and bias from U(-1/sqrt(H), 1/sqrt(H)); the rnn is tanh;
      orthogonal  (rnn, tanh) W_hh a random orthogonal matrix (Saxe et al. 2014), the rest as PyTorch draws it;
      identity    (rnn) the IRNN of Le, Jaitly & Hinton (2015): ReLU units, W_hh = I, biases 0, W_ih from
                  N(0, 0.001^2);
      forget-N    (lstm) forget-gate bias N (Gers et al. 2000; Jozefowicz et al. 2015 use N = 1), the rest default;
      chrono      (lstm) Tallec & Ollivier (2018): forget-gate bias log(u), u ~ U(1, length - 1), input-gate bias
                  minus that, the rest default.
    A gate's bias is set in bias_ih and bias_hh is zeroed there, so the bias the gate sees is exactly the value.
    Draws from torch's global generator: seed it first.
    """
    layer = (nn.RNN(d_in, hidden, nonlinearity="relu" if init == "identity" else "tanh", batch_first=True)
             if kind == "rnn" else KINDS[kind](d_in, hidden, batch_first=True))
    h = hidden
    with torch.no_grad():
        if init == "default":
            pass
        elif init == "orthogonal" and kind == "rnn":
            nn.init.orthogonal_(layer.weight_hh_l0)
        elif init == "identity" and kind == "rnn":
            layer.weight_hh_l0.copy_(torch.eye(h))
            nn.init.normal_(layer.weight_ih_l0, std=1e-3)
            layer.bias_ih_l0.zero_()
            layer.bias_hh_l0.zero_()
        elif init.startswith("forget-") and kind == "lstm":
            layer.bias_ih_l0[h:2 * h] = float(init.split("-", 1)[1])
            layer.bias_hh_l0[h:2 * h] = 0.0
        elif init == "chrono" and kind == "lstm":
            if not length or length < 3:
                raise ValueError("chrono initialisation needs the length of the dependencies (length >= 3)")
            forget = torch.log(torch.empty(h).uniform_(1, length - 1))
            layer.bias_ih_l0[h:2 * h] = forget
            layer.bias_ih_l0[:h] = -forget
            layer.bias_hh_l0[:2 * h] = 0.0
        else:
            raise ValueError(f"no initialisation {init!r} for kind {kind!r}")
    return layer


class StackedRecurrent(nn.Module):
    """S one-layer recurrent networks of one kind (each a torch.nn layer and a Linear readout of h_T), run as one:
    each weight stacked along a new first axis, every step one batched matmul. The arithmetic is PyTorch's
    (gate order i, f, g, o for the LSTM and r, z, n for the GRU, with b_hn inside the reset gate), so member s
    computes what its own torch.nn layer computes, up to float rounding. Vanilla RNNs may mix tanh and ReLU
    members. x: (S, B, T, d_in) -> (S, B, d_out).
    """

    def __init__(self, kind, layers, readouts):
        super().__init__()
        self.kind = kind
        relu = [getattr(m, "nonlinearity", "tanh") == "relu" for m in layers]
        self.relu = torch.tensor(relu).view(-1, 1, 1) if any(relu) else None
        stack = lambda name: nn.Parameter(torch.stack([getattr(m, name).detach().clone() for m in layers]))
        self.w_ih, self.w_hh = stack("weight_ih_l0"), stack("weight_hh_l0")
        self.b_ih, self.b_hh = stack("bias_ih_l0"), stack("bias_hh_l0")
        self.w_out = nn.Parameter(torch.stack([r.weight.detach().clone() for r in readouts]))
        self.b_out = nn.Parameter(torch.stack([r.bias.detach().clone() for r in readouts]))

    def final_state(self, x):
        s, b, t, _ = x.shape
        hidden = self.w_hh.shape[2]
        # one input projection for all steps, split with unbind (one backward for all steps, not one per step)
        xi = (torch.einsum("sbtd,sgd->sbtg", x, self.w_ih) + self.b_ih[:, None, None, :]).unbind(2)
        w_hh_t, b_hh = self.w_hh.transpose(1, 2), self.b_hh[:, None, :]
        h = x.new_zeros(s, b, hidden)
        c = x.new_zeros(s, b, hidden)
        for step in range(t):
            hh = torch.baddbmm(b_hh, h, w_hh_t)
            if self.kind == "rnn":
                z = xi[step] + hh
                h = torch.tanh(z) if self.relu is None else torch.where(self.relu, torch.relu(z), torch.tanh(z))
            elif self.kind == "lstm":
                i, f, g, o = (xi[step] + hh).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                xr, xz, xn = xi[step].chunk(3, dim=-1)
                hr, hz, hn = hh.chunk(3, dim=-1)
                r, u = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                h = (1 - u) * torch.tanh(xn + r * hn) + u * h
        return h

    def forward(self, x):
        return torch.baddbmm(self.b_out[:, None, :], self.final_state(x), self.w_out.transpose(1, 2))

    def connectivity(self, x):
        """||dh_T/dx_t|| for every member and step: the Frobenius norm of the (hidden x d_in) Jacobian of the last
        state with respect to the input at step t, root mean square over the batch. x: (B, T, d_in), the same
        sequences for every member. Exact: every row of the Jacobian is one backward pass, all run as one batch.
        Returns a (S, T) float64 tensor; the parameters' .grad are left alone."""
        s, hidden = self.w_hh.shape[0], self.w_hh.shape[2]
        b = x.shape[0]
        xs = x.detach().repeat(hidden, 1, 1).expand(s, -1, -1, -1).clone().requires_grad_(True)  # (S, H*B, T, d)
        h_last = self.final_state(xs)
        rows = torch.eye(hidden, dtype=x.dtype).repeat_interleave(b, dim=0)  # replica i of the batch seeds row i
        (grad,) = torch.autograd.grad(h_last, xs, grad_outputs=rows.expand(s, -1, -1))
        squares = grad.double().pow(2).view(s, hidden, b, *grad.shape[2:]).sum(dim=(1, 4))  # (S, B, T)
        return squares.mean(dim=1).sqrt()


def train_stacked_sequences(kind, inits, seeds, length, steps, hidden=32, batch=64, lr=1e-2, clip=None, every=25,
                            probe=None, probe_every=None, test=None):
    """Train one network per (init, seed) on the adding problem at `length`, all together (StackedRecurrent, Adam,
    which updates every weight on its own, so stacking changes nothing but the speed). The networks of one seed
    share their initial draw of torch's generator and their batches (generator seeded with the seed), so the
    initialisations are compared on the same data. Loss: MSE of each member; clip: max gradient norm per member.

    Records every `every` steps the mean training loss of each member over those steps, and every `probe_every`
    steps (and at step 0) StackedRecurrent.connectivity on the probe batch. Returns a dict with "members" [(init,
    seed)], "step", "loss" (members x records), "probe_step", "connectivity" (members x probes x T) and
    "test_mse" (members) on test = (x, y).
    """
    members = [(init, seed) for init in inits for seed in seeds]
    layers, readouts = [], []
    for init, seed in members:
        torch.manual_seed(seed)
        layers.append(recurrent_layer(kind, 2, hidden, init=init, length=length))
        readouts.append(nn.Linear(hidden, 1))
    net = StackedRecurrent(kind, layers, readouts)
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gens = {seed: torch.Generator().manual_seed(seed) for seed in seeds}
    which = torch.tensor([seeds.index(seed) for _, seed in members])
    out = {"members": members, "step": [], "loss": [], "probe_step": [], "connectivity": []}
    window = []

    def look(step):
        if probe is not None and probe_every and step % probe_every == 0:
            out["probe_step"].append(step)
            out["connectivity"].append(net.connectivity(probe))

    look(0)
    for step in range(1, steps + 1):
        xs, ys = zip(*(adding_problem(batch, length, gens[seed]) for seed in seeds))
        x, y = torch.stack(xs)[which], torch.stack(ys)[which]
        losses = (net(x) - y).pow(2).mean(dim=(1, 2))
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        if clip:
            norms = torch.cat([p.grad.flatten(1) for p in params], 1).norm(dim=1)
            scale = (clip / (norms + 1e-6)).clamp(max=1.0)
            for p in params:
                p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
        opt.step()
        window.append(losses.detach())
        if step % every == 0 or step == steps:
            out["step"].append(step)
            out["loss"].append(torch.stack(window).mean(0))
            window = []
        look(step)
    out["loss"] = torch.stack(out["loss"], 1).double().numpy()
    if out["connectivity"]:
        out["connectivity"] = torch.stack(out["connectivity"], 1).numpy()
    if test is not None:
        with torch.no_grad():
            n = len(members)
            pred = net(test[0].expand(n, *test[0].shape))
            out["test_mse"] = (pred - test[1]).pow(2).mean(dim=(1, 2)).double().numpy()
    return out
