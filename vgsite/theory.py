"""Mean-field theory of a freshly initialised deep network: each formula the pages compare with, written once.

A layer is z_l = W_l h_(l-1) + b_l, h_l = g(z_l), with weights of variance Var(W) = s / n (s = n Var(W), n the
fan-in forward, the fan-out backward; the two are equal for the square layers the site measures) and zero biases.
In a wide network each pre-activation is close to Gaussian, z ~ N(0, q), and everything below is an expectation
over that Gaussian (Poole et al. 2016; Schoenholz et al. 2017):

    q_(l+1) = s E[g(z)^2]                          the forward-variance map; its fixed point is q*
    chi     = s E[g'(z)^2]                         what a layer multiplies the squared gradient by (chi_1 at q*)
    factor  = sqrt(chi)                            the gradient norm's factor per layer
    bn      = sqrt(E[g'(z)^2] / Var g(z)), q = 1   the same with batch norm after the linear map (Yang et al. 2019)
    xi      = -1 / ln chi                          the depth over which the gradient changes by a factor e

`q = 0` means the small-signal limit: units near z = 0, where sigmoid' = 1/4, tanh' = 1 and ReLU passes half of
its units (the limit of E[g'(z)^2] as q -> 0 from above). The expectations are sums over a fine grid of the
standard normal in float64 (spacing 1e-4 on [-12, 12]): exact to about 1e-10 even for ReLU's kink, which sits on a
grid point; tests/test_theory.py checks every function against a Monte-Carlo estimate.
"""
import math
from functools import lru_cache

import numpy as np
import torch

from vgsite.nets import ACTIVATIONS

# n Var(W) of each initialisation for a square layer (fan_in = fan_out = n): PyTorch's default U(+-1/sqrt(n)) has
# variance 1/(3n); Glorot & Bengio's normalised init 2/(n_in + n_out) = 1/n; He's 2/n; an orthogonal matrix
# keeps every length, like 1.
WEIGHT_VARIANCE = {"default": 1 / 3, "xavier": 1.0, "kaiming": 2.0, "orthogonal": 1.0}

_Z = torch.linspace(-12, 12, 240001, dtype=torch.float64)  # standard-normal nodes
_W = torch.exp(-_Z ** 2 / 2)
_W /= _W.sum()
_MID = len(_Z) // 2  # the node at z = 0
_SIDES = torch.tensor([-1e-30, 1e-30], dtype=torch.float64)


def _slope(activation: str, z: torch.Tensor) -> torch.Tensor:
    """g'(z) by autograd, for any activation in nets.ACTIVATIONS."""
    z = z.detach().clone().requires_grad_(True)
    ACTIVATIONS[activation]()(z).sum().backward()
    return z.grad


def gaussian(f, q: float = 1.0) -> float:
    """E[f(z)] for z ~ N(0, q); f maps a float64 tensor to one of the same shape."""
    return float((_W * f(math.sqrt(q) * _Z)).sum())


@lru_cache(maxsize=None)
def moments(activation: str, q: float = 1.0) -> dict:
    """E[g(z)], E[g(z)^2], Var[g(z)] and E[g'(z)^2] for z ~ N(0, q).

    q = 0 is the small-signal limit: g(0) for the values, the mean of g'(0-)^2 and g'(0+)^2 for the slopes.
    """
    kink = float((_slope(activation, _SIDES) ** 2).mean())  # g'^2 at z = 0: the mean of its two sides
    if q == 0:
        value = float(ACTIVATIONS[activation]()(torch.zeros(1, dtype=torch.float64)))
        return {"mean": value, "second": value ** 2, "variance": 0.0, "slope2": kink}
    if activation == "relu":  # closed forms: exact, where the grid is off by about 1e-9 at the kink
        return {"mean": math.sqrt(q / (2 * math.pi)), "second": q / 2, "variance": q / 2 - q / (2 * math.pi),
                "slope2": 0.5}
    z = math.sqrt(q) * _Z
    with torch.no_grad():
        g = ACTIVATIONS[activation]()(z)
    mean = (_W * g).sum()
    slope2 = _slope(activation, z) ** 2
    slope2[_MID] = kink  # autograd's one-sided slope at a kink (leaky ReLU, SELU) would be an O(spacing) error
    return {"mean": float(mean), "second": float((_W * g * g).sum()), "variance": float((_W * (g - mean) ** 2).sum()),
            "slope2": float((_W * slope2).sum())}


def slope2(activation: str, q: float = 1.0) -> float:
    """E[g'(z)^2], z ~ N(0, q): what the activation multiplies the squared gradient by, on average."""
    return moments(activation, float(q))["slope2"]


def variance(activation: str, q: float = 1.0) -> float:
    """Var[g(z)], z ~ N(0, q): the spread of a unit's output."""
    return moments(activation, float(q))["variance"]


def chi(activation: str, weight_variance: float, q: float = 0.0) -> float:
    """s E[g'(z)^2], z ~ N(0, q): the factor by which one layer multiplies the squared gradient.

    At the fixed point q* this is Schoenholz et al.'s chi_1: below 1 the ordered phase (gradients vanish), above 1
    the chaotic phase (they explode), equal to 1 the edge of chaos.
    """
    return weight_variance * slope2(activation, q)


def per_layer_factor(activation: str, weight_variance: float, q: float = 0.0) -> float:
    """sqrt(n Var(W) E[g'(z)^2]): what one layer multiplies the gradient's norm by (Glorot & Bengio 2010;
    He et al. 2015). The default q = 0 is the small-signal limit of a freshly initialised net."""
    return math.sqrt(chi(activation, weight_variance, q))


def variance_map(activation: str, weight_variance: float, q: float, bias_variance: float = 0.0) -> float:
    """q_(l+1) = s E[g(z)^2] + sigma_b^2, z ~ N(0, q_l): the next layer's pre-activation variance."""
    return weight_variance * moments(activation, float(q))["second"] + bias_variance


def forward_variance(activation: str, weight_variance: float, depth: int, q_in: float = 1.0) -> np.ndarray:
    """Var(h_l), l = 1..depth, for inputs of variance q_in and zero biases: q_1 = s q_in, then variance_map."""
    q, out = weight_variance * q_in, []
    for _ in range(depth):
        out.append(variance(activation, q))
        q = variance_map(activation, weight_variance, q)
    return np.array(out)


def fixed_point(activation: str, weight_variance: float, q: float = 1.0, steps: int = 2000, tol: float = 1e-13):
    """q* = s E[g(z)^2], z ~ N(0, q*), by iterating the variance map from q for at most `steps` layers.

    Where q* = 0 (tanh with s <= 1) the iteration only approaches it, slowly at s = 1 (q_l falls like 1/l):
    the result is then q after `steps` layers, not 0.
    """
    for _ in range(steps):
        new = variance_map(activation, weight_variance, q)
        if abs(new - q) <= tol * max(q, 1e-300):
            return new
        q = new
    return q


def bn_factor(activation: str) -> float:
    """Per-layer growth of ||dL/dh|| in a wide net with batch norm after each linear map and large batches, no skips.

    BN makes each pre-activation z ~ N(0, 1) over the batch whatever the weights, so a layer multiplies the
    squared gradient by E[g'(z)^2] (the slopes) and divides it by Var[g(z)] (BN's division by the spread of
    its own input). The Gaussian Poincare inequality Var[g(z)] <= E[g'(z)^2] makes the factor >= 1 for every
    activation, equal to 1 only for a linear one. For ReLU it is sqrt(pi / (pi - 1)) = 1.21 (Yang et al. 2019).
    """
    return math.sqrt(slope2(activation, 1.0) / variance(activation, 1.0))


def depth_scale(chi_value: float) -> float:
    """xi = -1 / ln chi: the number of layers over which the squared gradient changes by a factor e
    (Schoenholz et al. 2017); positive where it shrinks (chi < 1), negative where it grows, infinite at chi = 1."""
    return math.inf if chi_value == 1 else -1 / math.log(chi_value)


def tail_fraction(q: float, threshold: float) -> float:
    """P(|z| > threshold) for z ~ N(0, q): the share of units driven beyond `threshold`."""
    return math.erfc(threshold / math.sqrt(2 * q))
