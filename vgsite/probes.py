"""What the topics measure: per-layer gradient norms, activation statistics and histograms.

h_l is the output of block l (l = 1 is next to the input). The back-propagated signal is dL/dh_l;
the weight gradient is dL/dW_l. Glorot & Bengio (2010) showed the two can tell different stories.
"""
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from vgsite.nets import ACTIVATIONS, DeepMLP


def derivative(activation: str, z: torch.Tensor) -> torch.Tensor:
    """g'(z) elementwise, by autograd, for any activation in nets.ACTIVATIONS."""
    z = z.detach().clone().requires_grad_(True)
    ACTIVATIONS[activation]()(z).sum().backward()
    return z.grad


@lru_cache(maxsize=None)
def max_derivative(activation: str) -> float:
    return derivative(activation, torch.linspace(-10, 10, 20001)).abs().max().item()


def saturated_fraction(activation: str, z: torch.Tensor, threshold=0.01):
    """Share of units whose local slope |g'(z)| is below 1% of the activation's steepest slope.

    For sigmoid and tanh these are saturated units; for ReLU, units that are off (z <= 0).
    z of shape (batch, units) gives one number; (layers, batch, units) gives a list, one per layer.
    """
    if activation == "linear":
        return 0.0 if z.dim() < 3 else [0.0] * len(z)
    flat = (derivative(activation, z).abs() < threshold * max_derivative(activation)).float()
    return flat.mean().item() if z.dim() < 3 else flat.mean(dim=(1, 2)).tolist()


def norm(t: torch.Tensor) -> float:
    """L2 norm in float64: in float32 the squares of entries below ~1e-19 underflow and the norm reads 0."""
    return t.detach().double().norm().item()


def gradient_flow(model: DeepMLP, x, y, loss="ce") -> dict:
    """One forward and backward pass; per-layer numbers for l = 1..depth."""
    model.zero_grad(set_to_none=True)
    out = model(x, keep=True)
    value = F.cross_entropy(out, y) if loss == "ce" else F.mse_loss(out, y)
    value.backward()
    hidden = model.hidden
    return {
        "loss": value.item(),
        "signal": [norm(h.grad) for h in hidden],
        "weight": [norm(w.grad) for w in model.weights],
        "act_mean": [h.mean().item() for h in hidden],
        "act_std": [h.std().item() for h in hidden],
        "saturated": saturated_fraction(model.activation, torch.stack([b.z for b in model.blocks])),
    }


def random_batch(width, batch=64, classes=10, generator=None):
    """Standard normal inputs and random labels: the probe the explorer and the tests share."""
    x = torch.randn(batch, width, generator=generator)
    y = torch.randint(0, classes, (batch,), generator=generator)
    return x, y


def probe_at_init(depth, width, batch=64, seed=0, **net) -> dict:
    """Gradient flow through a freshly initialised network on a random batch."""
    torch.manual_seed(seed)
    model = DeepMLP(depth, width, **net)
    x, y = random_batch(width, batch)
    return gradient_flow(model, x, y)


def ratio_by_depth(depths, seeds, width, batch=64, **net) -> np.ndarray:
    """log_ratio of fresh networks: one row per depth, one column per seed. Straight in depth means exponential."""
    return np.array([[log_ratio(probe_at_init(d, width, batch, s, **net)["signal"]) for s in seeds] for d in depths])


def log_ratio(signal) -> float:
    """log10(||dL/dh_1|| / ||dL/dh_L||): below 0 vanishing, above 0 exploding."""
    first, last = signal[0], signal[-1]
    if first == 0:
        return float("-inf")
    return float(np.log10(first / last))


def log_histogram(t: torch.Tensor, bins) -> dict:
    """Histogram of log10|t|; exact zeros are counted apart, since a log axis cannot show them."""
    v = t.detach().abs().flatten().double()
    zeros = int((v == 0).sum())
    counts, edges = np.histogram(torch.log10(v[v > 0]).numpy(), bins=bins)
    return {"counts": counts, "edges": edges, "zeros": zeros, "total": v.numel()}


class TrainingRecorder:
    """An on_step for train.fit that records per-layer numbers while a network trains.

    Every `every` steps: the weight-gradient norms ||dL/dW_l|| of the training batch (`weight_grad`, at `steps`)
    and the relative size of the update that step made, ||W_l(after) - W_l(before)|| / ||W_l(before)||
    (`update_ratio`, at `update_steps`), measured from the weights themselves, so it holds for any optimizer.
    With probe=(x, y), every `probe_every` steps it also runs gradient_flow on that fixed batch and keeps the dict
    in `flows` (at `flow_steps`); the training gradients and any BatchNorm statistics are put back afterwards.
    """

    def __init__(self, probe=None, probe_every=10, every=1):
        self.probe, self.probe_every, self.every = probe, probe_every, every
        self.steps, self.weight_grad = [], []
        self.update_steps, self.update_ratio = [], []
        self.flow_steps, self.flows = [], []
        self._before = None

    def __call__(self, step, model):
        weights = model.weights
        if self._before is not None and self._before[0] == step - 1:
            self.update_steps.append(step - 1)
            self.update_ratio.append([norm(w - b) / norm(b) for w, b in zip(weights, self._before[1])])
        self._before = None
        if step % self.every == 0:
            self.steps.append(step)
            self.weight_grad.append([norm(w.grad) if w.grad is not None else 0.0 for w in weights])
            self._before = (step, [w.detach().clone() for w in weights])
        if self.probe is not None and step % self.probe_every == 0:
            params = list(model.parameters())
            grads = [p.grad for p in params]
            buffers = [b.clone() for b in model.buffers()]
            self.flows.append(gradient_flow(model, *self.probe))
            self.flow_steps.append(step)
            for p, g in zip(params, grads):
                p.grad = g
            with torch.no_grad():
                for b, saved in zip(model.buffers(), buffers):
                    b.copy_(saved)
