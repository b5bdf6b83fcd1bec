"""Check your network: vgsite.health on three small models, each once healthy and once broken.

Every run is a few hundred steps of the reader's kind of loop with `health.watch` around it; the page shows the
report each prints (stored in the JSON) and its figure.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vgsite import health
from vgsite.plots import fit_to_column
from vgsite.registry import Plot, Result, experiment
from vgsite.rnns import SequenceModel, adding_problem
from vgsite.train import digits

KINDS = tuple(health.PAGES)
AFTER_NONFINITE = 5  # steps a run goes on after its first non-finite value


def mlp(depth, width, activation, init, d_in=64, classes=10):
    """A plain nn.Sequential, as a reader would write it: Linear, activation, ..., Linear."""
    layers = []
    for i in range(depth - 1):
        linear = nn.Linear(d_in if i == 0 else width, width)
        if init == "kaiming":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


class PixelNorm(nn.Module):
    """Each pixel's channel vector divided by its root mean square (Karras et al. 2018). With eps inside the
    square root it is safe; with eps outside, a pixel whose channels are all exactly 0 gets a gradient 0/0."""

    def __init__(self, eps_inside=True, eps=1e-8):
        super().__init__()
        self.eps_inside, self.eps = eps_inside, eps

    def forward(self, x):
        ms = x.pow(2).mean(1, keepdim=True)
        return x / (ms + self.eps).sqrt() if self.eps_inside else x / (ms.sqrt() + self.eps)


def cnn(channels, eps_inside):
    """Digits padded to 12×12, a bias-free 3×3 convolution (a normalisation follows), PixelNorm, two more
    convolutions (the second with stride 2) and a linear head."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.ZeroPad2d(2),
        nn.Conv2d(1, channels, 3, padding=1, bias=False), PixelNorm(eps_inside), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(channels * 6 * 6, 10))


def train_digits(model, steps, lr, every, seed, batch=64):
    """The loop a reader writes: SGD on minibatches of the digits, with the watch around it."""
    x, y, _, _ = digits()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    with health.watch(model, opt, every=every) as h:
        for step in range(steps):
            idx = torch.randint(0, len(x), (batch,), generator=gen)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if h.nonfinite and step >= h.nonfinite["step"] + AFTER_NONFINITE:
                break  # everything after the first NaN is NaN: a reader would stop here too
    return h, losses


def train_adding(model, steps, lr, every, seed, length, batch=64):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    with health.watch(model, opt, every=every) as h:
        for step in range(steps):
            x, y = adding_problem(batch, length, gen)
            loss = F.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if h.nonfinite and step >= h.nonfinite["step"] + AFTER_NONFINITE:
                break
    return h, losses


def summarise(runs, seeds):
    """Per case: each seed's verdict kinds and report, flags per kind (1 when that seed got it), seed 0's record."""
    out = {}
    for case, per_seed in runs.items():
        verdicts = [w.verdicts() for w, _ in per_seed]
        kinds = [[v["kind"] for v in vs] for vs in verdicts]
        finite = [[l for l in losses if math.isfinite(l)] for _, losses in per_seed]
        out[case] = {
            "seeds": list(seeds),
            "verdicts": [[v["message"] for v in vs] for vs in verdicts],
            "kinds": kinds,
            "verdict_count": [len(k) for k in kinds],
            "has": {kind: [int(kind in k) for k in kinds] for kind in KINDS},
            "first_nonfinite_step": [w.nonfinite["step"] if w.nonfinite else None for w, _ in per_seed],
            "first_nonfinite_module": [w.nonfinite["module"] if w.nonfinite else None for w, _ in per_seed],
            "first_nonfinite_pass": [w.nonfinite["pass"] if w.nonfinite else None for w, _ in per_seed],
            "first_nonfinite_in_backward": [int(bool(w.nonfinite) and w.nonfinite["pass"] == "backward")
                                            for w, _ in per_seed],
            "final_loss": [float(np.mean(f[-10:])) if f else math.nan for f in finite],
            "loss_finite_steps": [len(f) for f in finite],
            "report": per_seed[0][0].text(),
            "record": per_seed[0][0].to_dict(),
        }
    return out


def plots(name, data, titles, what):
    found = []
    for case, title in titles.items():
        d = data[case]
        fig = fit_to_column(health.figure(d["record"], title=f"{title}, seed {d['seeds'][0]}"))
        verdicts = d["verdicts"][0]
        found.append(Plot(
            f"{name}-{case}", fig,
            alt=f"vgsite.health's heatmaps for the {title.lower()}, seed {d['seeds'][0]}: gradient norm and update "
                f"ratio of each layer (rows, input side at the bottom) at each sampled step (columns), log colour "
                "scales. " + (f"Its report: {'; '.join(verdicts)}." if verdicts else "Its report finds no problem."),
            caption=f"{what} The figure `h.figure()` draws after the run; grey: not recorded, exactly 0 or not "
                    "finite."))
    return found


@experiment(depth=20, width=32, steps=150, lr=0.05, every=5, seeds=(0, 1, 2))
def mlp_pair(cfg):
    """A 20-layer MLP on the digits: ReLU with He initialisation, and sigmoid with PyTorch's default."""
    runs = {"healthy": [], "broken": []}
    for seed in cfg.seeds:
        for case, (act, init) in (("healthy", ("relu", "kaiming")), ("broken", ("sigmoid", "default"))):
            torch.manual_seed(seed)
            runs[case].append(train_digits(mlp(cfg.depth, cfg.width, act, init), cfg.steps, cfg.lr, cfg.every, seed))
    data = summarise(runs, cfg.seeds)
    return Result(data, plots("mlp", data, {"healthy": f"{cfg.depth}-layer ReLU MLP, He initialisation",
                                            "broken": f"{cfg.depth}-layer sigmoid MLP, PyTorch's default init"},
                              f"{cfg.depth} layers of {cfg.width} units on the digits, SGD at learning rate "
                              f"{cfg.lr}, {cfg.steps} steps, sampled every {cfg.every}."))


@experiment(hidden=32, length=30, steps=200, lr=0.05, rnn_gain=2.5, every=5, broken_every=1, seeds=(0, 1, 2))
def recurrent_pair(cfg):
    """The adding problem: an LSTM with PyTorch's defaults, and a ReLU RNN whose recurrent weights have a spectral
    radius of about rnn_gain (Le et al. 2015's IRNN has 1)."""
    runs = {"healthy": [], "broken": []}
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        lstm = SequenceModel("lstm", hidden=cfg.hidden)
        runs["healthy"].append(train_adding(lstm, cfg.steps, cfg.lr, cfg.every, seed, cfg.length))
        torch.manual_seed(seed)
        rnn = SequenceModel("rnn", hidden=cfg.hidden)
        rnn.cell = nn.RNN(2, cfg.hidden, nonlinearity="relu", batch_first=True)  # no tanh to bound the state
        with torch.no_grad():
            nn.init.normal_(rnn.recurrent_weight, std=cfg.rnn_gain / math.sqrt(cfg.hidden))
        runs["broken"].append(train_adding(rnn, cfg.steps, cfg.lr, cfg.broken_every, seed, cfg.length))
    data = summarise(runs, cfg.seeds)
    return Result(data, plots("recurrent", data, {"healthy": "LSTM, PyTorch's default initialisation",
                                                  "broken": f"ReLU RNN, recurrent weights N(0, {cfg.rnn_gain:g}²/n)"},
                              f"The adding problem of length {cfg.length}, {cfg.hidden} hidden units, SGD at "
                              f"learning rate {cfg.lr}, {cfg.steps} steps, sampled every {cfg.every}."))


@experiment(channels=8, steps=100, lr=0.1, every=5, broken_every=1, seeds=(0, 1, 2))
def cnn_pair(cfg):
    """A small CNN on the digits with a hand-written PixelNorm: eps inside the square root, and outside it."""
    runs = {"healthy": [], "broken": []}
    for seed in cfg.seeds:
        for case, inside, every in (("healthy", True, cfg.every), ("broken", False, cfg.broken_every)):
            torch.manual_seed(seed)
            runs[case].append(train_digits(cnn(cfg.channels, inside), cfg.steps, cfg.lr, every, seed))
    data = summarise(runs, cfg.seeds)
    return Result(data, plots("cnn", data, {"healthy": "CNN, PixelNorm with eps inside the square root",
                                            "broken": "CNN, PixelNorm with eps outside the square root"},
                              f"Digits padded to 12×12, {cfg.channels} channels, SGD at learning rate {cfg.lr}, "
                              f"{cfg.steps} steps, sampled every {cfg.every} (the broken one every "
                              f"{cfg.broken_every}, and stopped {AFTER_NONFINITE} steps after its first non-finite "
                              "value)."))
