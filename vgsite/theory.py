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


def moments(activation: str, q: float = 1.0) -> dict:
    """E[g(z)], E[g(z)^2], Var[g(z)] and E[g'(z)^2] for z ~ N(0, q).

    q = 0 is the small-signal limit: g(0) for the values, the mean of g'(0-)^2 and g'(0+)^2 for the slopes.
    """
    return {**_values(activation, float(q)), "slope2": _slope2(activation, float(q))}


@lru_cache(maxsize=None)
def _values(activation: str, q: float) -> dict:
    """The moments of g(z) alone: the variance map iterates them, and needs no slope (autograd on the grid)."""
    if q == 0:
        value = float(ACTIVATIONS[activation]()(torch.zeros(1, dtype=torch.float64)))
        return {"mean": value, "second": value ** 2, "variance": 0.0}
    if activation == "relu":  # closed forms: exact, where the grid is off by about 1e-9 at the kink
        return {"mean": math.sqrt(q / (2 * math.pi)), "second": q / 2, "variance": q / 2 - q / (2 * math.pi)}
    with torch.no_grad():
        g = ACTIVATIONS[activation]()(math.sqrt(q) * _Z)
    mean = (_W * g).sum()
    return {"mean": float(mean), "second": float((_W * g * g).sum()), "variance": float((_W * (g - mean) ** 2).sum())}


@lru_cache(maxsize=None)
def _slope2(activation: str, q: float) -> float:
    kink = float((_slope(activation, _SIDES) ** 2).mean())  # g'^2 at z = 0: the mean of its two sides
    if q == 0:
        return kink
    if activation == "relu":
        return 0.5
    slope2 = _slope(activation, math.sqrt(q) * _Z) ** 2
    slope2[_MID] = kink  # autograd's one-sided slope at a kink (leaky ReLU, SELU) would be an O(spacing) error
    return float((_W * slope2).sum())


def slope2(activation: str, q: float = 1.0) -> float:
    """E[g'(z)^2], z ~ N(0, q): what the activation multiplies the squared gradient by, on average."""
    return _slope2(activation, float(q))


def variance(activation: str, q: float = 1.0) -> float:
    """Var[g(z)], z ~ N(0, q): the spread of a unit's output."""
    return _values(activation, float(q))["variance"]


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
    return weight_variance * _values(activation, float(q))["second"] + bias_variance


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


# ------------------------------------------------------------------ the mean-field maps with biases (criticality)
# Poole et al. (2016) and Schoenholz et al. (2017): weights N(0, sw2/n), biases N(0, sb2). Two inputs keep
# pre-activation variances q and a correlation c; in a wide network they follow deterministic maps. These are
# computed with Gauss-Hermite quadrature in numpy (vectorised over arrays of sw2, sb2), for the activations whose
# value, slope and curvature are written below (quadrature is exact to ~1e-10 for the smooth tanh; ReLU's kink
# costs it a few per cent in the two-dimensional c-map, so the site uses these maps for tanh). Everything here is
# checked against Monte-Carlo estimates in tests/test_criticality.py.

def _tanh2(u):
    return 1 - np.tanh(u) ** 2


_NP_ACTS = {  # g, g', g''
    "tanh": (np.tanh, lambda u: _tanh2(u), lambda u: -2 * np.tanh(u) * _tanh2(u)),
    "relu": (lambda u: np.maximum(u, 0), lambda u: (u > 0).astype(float), lambda u: np.zeros_like(u)),
    "linear": (lambda u: u, lambda u: np.ones_like(u), lambda u: np.zeros_like(u)),
}


@lru_cache(maxsize=None)
def hermite(n: int = 81):
    """Nodes and weights of n-point Gauss-Hermite quadrature for the standard normal (weights sum to 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


def _e1(f, q, n=81):
    """E[f(sqrt(q) z)], z ~ N(0, 1), for q of any shape (broadcast over a trailing node axis)."""
    x, w = hermite(n)
    q = np.asarray(q, dtype=float)
    return (f(np.sqrt(q)[..., None] * x) * w).sum(-1)


def _e2(f1, f2, q, c, n=41):
    """E[f1(u1) f2(u2)] with u1, u2 ~ N(0, q), correlation c; q, c of any (common) shape."""
    x, w = hermite(n)
    z1, z2 = x[:, None], x[None, :]
    ww = (w[:, None] * w[None, :])
    q = np.asarray(q, dtype=float)[..., None, None]
    c = np.clip(np.asarray(c, dtype=float), -1, 1)[..., None, None]
    u1 = np.sqrt(q) * z1
    u2 = np.sqrt(q) * (c * z1 + np.sqrt(1 - c ** 2) * z2)
    return (f1(u1) * f2(u2) * ww).sum((-1, -2))


def q_map(activation: str, sw2, sb2, q):
    """q_(l+1) = sw2 E[g(sqrt(q_l) z)^2] + sb2: the length map (Poole et al. 2016)."""
    g = _NP_ACTS[activation][0]
    return np.asarray(sw2) * _e1(lambda u: g(u) ** 2, q) + np.asarray(sb2)


def q_star(activation: str, sw2, sb2, q0: float = 1.0, steps: int = 500):
    """The fixed point of q_map, by iteration from q0 (vectorised). Where q* = 0 (sb2 = 0, ordered) it returns
    the value after `steps` layers, a small positive number."""
    q = np.broadcast_to(np.asarray(q0, dtype=float), np.broadcast(np.asarray(sw2), np.asarray(sb2)).shape).copy()
    for _ in range(steps):
        new = q_map(activation, sw2, sb2, q)
        if np.all(np.abs(new - q) <= 1e-13 * np.maximum(q, 1e-300)):
            return new
        q = new
    return q


def c_map(activation: str, sw2, sb2, c, q=None):
    """c_(l+1) = (sw2 E[g(u1) g(u2)] + sb2) / q*: the correlation map of two inputs at the fixed point q*."""
    q = q_star(activation, sw2, sb2) if q is None else np.asarray(q, dtype=float)
    g = _NP_ACTS[activation][0]
    return (np.asarray(sw2) * _e2(g, g, q, c) + np.asarray(sb2)) / q


def chi_1(activation: str, sw2, sb2, q=None):
    """chi_1 = sw2 E[g'(sqrt(q*) z)^2]: the slope of the c-map at c = 1, and the factor by which a layer
    multiplies the squared gradient. Below 1 the ordered phase, above 1 the chaotic phase."""
    q = q_star(activation, sw2, sb2) if q is None else np.asarray(q, dtype=float)
    d = _NP_ACTS[activation][1]
    return np.asarray(sw2) * _e1(lambda u: d(u) ** 2, q)


def c_star(activation: str, sw2, sb2, q=None, steps: int = 45):
    """The stable fixed point of the c-map: 1 in the ordered phase (chi_1 <= 1), the root of c_map(c) = c in
    [0, 1) in the chaotic phase, where c = 1 is unstable (bisection, `steps` halvings, vectorised)."""
    q = q_star(activation, sw2, sb2) if q is None else np.asarray(q, dtype=float)
    ordered = chi_1(activation, sw2, sb2, q) <= 1
    lo, hi = np.zeros(np.shape(q)), np.full(np.shape(q), 1 - 1e-12)  # c_map(lo) >= lo, c_map(hi) < hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        up = c_map(activation, sw2, sb2, mid, q) >= mid
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return np.where(ordered, 1.0, (lo + hi) / 2)


def chi_c(activation: str, sw2, sb2, c, q=None):
    """sw2 E[g'(u1) g'(u2)]: the slope of the c-map at c (u1, u2 with variance q*, correlation c)."""
    q = q_star(activation, sw2, sb2) if q is None else np.asarray(q, dtype=float)
    d = _NP_ACTS[activation][1]
    return np.asarray(sw2) * _e2(d, d, q, c)


def _xi(slope):
    slope = np.asarray(slope, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(slope == 1, np.inf, -1 / np.log(np.where(slope == 1, 0.5, slope)))


def xi_q(activation: str, sw2, sb2):
    """xi_q = -1 / ln(chi_1 + sw2 E[g''(u) g(u)]): the depth over which the variance q_l settles to q*
    (Schoenholz et al. 2017, their eq. 5); finite everywhere, also at the critical line."""
    q = q_star(activation, sw2, sb2)
    g, _, dd = _NP_ACTS[activation]
    return _xi(chi_1(activation, sw2, sb2, q) + np.asarray(sw2) * _e1(lambda u: dd(u) * g(u), q))


def xi_c(activation: str, sw2, sb2):
    """xi_c = -1 / ln(chi_c at c*): the depth over which the correlation of two inputs settles to c*, how deep
    information about the input travels; it diverges on the critical line chi_1 = 1 (Schoenholz et al. 2017).
    In the ordered phase c* = 1 and chi_c(c*) = chi_1."""
    q = q_star(activation, sw2, sb2)
    c = c_star(activation, sw2, sb2, q)  # noqa: the chaotic phase's c* < 1
    return _xi(np.where(c >= 1, chi_1(activation, sw2, sb2, q), chi_c(activation, sw2, sb2, c, q)))


def critical_point(activation: str, q: float):
    """The point (sw2, sb2) of the critical line chi_1 = 1 whose fixed point is q* = q: sw2 = 1 / E[g'^2],
    sb2 = q - sw2 E[g^2]. Small q* puts tanh's units near its linear middle (Pennington et al. 2017)."""
    g, d, _ = _NP_ACTS[activation]
    sw2 = 1 / float(_e1(lambda u: d(u) ** 2, q))
    return sw2, float(q - sw2 * _e1(lambda u: g(u) ** 2, q))


# ------------------------------------------------------- the input-output Jacobian's spectrum (free probability)
# J = D_L W_L ... D_1 W_1, D_l = diag(g'(z_l)). Pennington, Schoenholz & Ganguli (2017, 2018): in a wide network at
# the fixed point q*, the squared singular values of J (the eigenvalues lambda of J J^T) have a limiting density
# whose S-transform is the product of the layers': S_J = (S_{D^2} S_{W W^T})^L, with S_{WW^T}(w) = 1/(sw2 (1 + w))
# for Gaussian weights and 1/sw2 for orthogonal ones.

def slope2_distribution(activation: str, q: float, n: int = 201):
    """The distribution of g'(u)^2, u ~ N(0, q), as (values, weights)."""
    if activation == "relu":
        return np.array([0.0, 1.0]), np.array([0.5, 0.5])
    if activation == "linear":
        return np.array([1.0]), np.array([1.0])
    x, w = hermite(n)
    return _NP_ACTS[activation][1](np.sqrt(q) * x) ** 2, w


def jacobian_moments(activation: str, sw2: float, q: float, depth: int, weights: str = "gaussian") -> dict:
    """Mean and variance of lambda (the squared singular values of J) in the wide limit (Pennington et al. 2017):
    mean = (sw2 mu1)^L and variance = mean^2 L (mu2/mu1^2 - 1 - s1), mu_k = E[g'(u)^(2k)], s1 = -1 for Gaussian
    weights and 0 for orthogonal ones. At chi_1 = sw2 mu1 = 1 the variance is L (mu2/mu1^2 - 1 - s1): zero, i.e.
    dynamical isometry at any depth, only for orthogonal weights and mu2 = mu1^2 (a slope that does not vary)."""
    v, w = slope2_distribution(activation, q)
    mu1, mu2 = float((w * v).sum()), float((w * v * v).sum())
    s1 = {"gaussian": -1.0, "orthogonal": 0.0}[weights]
    mean = (sw2 * mu1) ** depth
    return {"mean": mean, "variance": mean ** 2 * depth * (mu2 / mu1 ** 2 - 1 - s1), "mu1": mu1, "mu2": mu2}


def _chi_slope2(v, w, targets):
    """The inverse of psi(z) = E[z d / (1 - z d)] (d = g'^2 with values v, weights w) at each target, by bisection."""
    lo, hi = np.zeros_like(targets), np.full_like(targets, 1 / v.max())
    for _ in range(64):
        mid = (lo + hi) / 2
        psi = (w * mid[:, None] * v / (1 - mid[:, None] * v)).sum(1)
        lo, hi = np.where(psi < targets, mid, lo), np.where(psi < targets, hi, mid)
    return (lo + hi) / 2


@lru_cache(maxsize=None)
def _slope2_s_transform(activation: str, q: float):
    """S_{D^2}(w) = (1 + w) / w * psi^(-1)(w) of the slopes' distribution, on a fixed grid of w > 0."""
    v, wt = slope2_distribution(activation, q)
    grid = np.geomspace(1e-7, 1e3, 4001)
    return grid, (1 + grid) / grid * _chi_slope2(v, wt, grid)


def jacobian_edge(activation: str, sw2: float, q: float, depth: int, weights: str = "gaussian") -> float:
    """The largest eigenvalue of J J^T (the largest singular value squared) in the wide limit: the edge of the
    support, 1 / max over w > 0 of chi_J(w) = w S_J(w) / (1 + w), where the density ends in a square root
    (the maximum over a fine grid of w, refined by a parabola in log w). Checked against the closed form
    (L+1)^(L+1) / L^L of a product of L Gaussian matrices (Fuss-Catalan)."""
    grid, s_d = _slope2_s_transform(activation, float(q))
    s_w = 1 / (sw2 * (1 + grid)) if weights == "gaussian" else np.full_like(grid, 1 / sw2)
    lc = np.log(grid / (1 + grid)) + depth * np.log(s_d * s_w)
    if int(np.argmax(lc)) == len(grid) - 1:  # no interior maximum (orthogonal linear): the limit w -> infinity
        return float(np.exp(-depth * np.log(s_d[-1] * s_w[-1])))
    i = int(np.clip(np.argmax(lc), 1, len(grid) - 2))
    a, b, c = lc[i - 1], lc[i], lc[i + 1]  # equally spaced in log w: the parabola's peak
    peak = b + (a - c) ** 2 / (8 * (2 * b - a - c)) if 2 * b - a - c > 0 else b
    return float(np.exp(-peak))
