"""The edge of chaos: the mean-field maps against Monte-Carlo estimates, the free-probability predictions against
their closed forms and against sampled networks, and the page's claims on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite import theory
from vgsite.topics.criticality import (_tanh_builds, critical_sw2, jacobian_singular_values,
                                       relu_gradient_ratio)
from vgsite.train import digits, fit_stacked

torch.set_num_threads(1)
RNG = np.random.default_rng(0)
Z1, Z2 = RNG.standard_normal(400_000), RNG.standard_normal(400_000)


def mc(f):
    """Sample mean and five standard errors."""
    return f.mean(), 5 * f.std() / math.sqrt(len(f))


@pytest.mark.parametrize("sw2, sb2, q", [(1.5, 0.05, 0.7), (3.0, 0.0, 2.0), (0.8, 0.2, 0.3)])
def test_q_map_and_chi_1_match_monte_carlo(sw2, sb2, q):
    u = math.sqrt(q) * Z1
    mean, err = mc(sw2 * np.tanh(u) ** 2 + sb2)
    assert theory.q_map("tanh", sw2, sb2, q) == pytest.approx(mean, abs=err)
    mean, err = mc(sw2 * (1 - np.tanh(u) ** 2) ** 2)
    assert theory.chi_1("tanh", sw2, sb2, q) == pytest.approx(mean, abs=err)


@pytest.mark.parametrize("c", [-0.5, 0.0, 0.6, 0.95])
def test_c_map_and_its_slope_match_monte_carlo(c):
    sw2, sb2 = 2.5, 0.1
    q = float(theory.q_star("tanh", sw2, sb2))
    assert theory.q_map("tanh", sw2, sb2, q) == pytest.approx(q, rel=1e-10)  # q* is the fixed point
    u1 = math.sqrt(q) * Z1
    u2 = math.sqrt(q) * (c * Z1 + math.sqrt(1 - c * c) * Z2)
    mean, err = mc((sw2 * np.tanh(u1) * np.tanh(u2) + sb2) / q)
    assert theory.c_map("tanh", sw2, sb2, c) == pytest.approx(mean, abs=err)
    mean, err = mc(sw2 * (1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2))
    assert theory.chi_c("tanh", sw2, sb2, c) == pytest.approx(mean, abs=err)


def test_relu_and_linear_length_maps_have_their_closed_forms():
    assert theory.q_map("relu", 2.0, 0.0, 3.0) == pytest.approx(3.0, rel=1e-3)  # sw2 q / 2
    assert theory.q_map("linear", 1.5, 0.1, 2.0) == pytest.approx(3.1, rel=1e-10)
    assert theory.c_map("linear", 1.0, 0.0, 0.3, q=2.0) == pytest.approx(0.3, rel=1e-10)


@pytest.mark.parametrize("sw2", [0.8, 1.3, 2.5, 4.0])
def test_xi_c_is_the_rate_at_which_correlations_settle(sw2):
    """Iterate the c-map from near c*: |c_l - c*| shrinks by exp(-1/xi_c) per layer. The slope of the map is also
    estimated by a Monte-Carlo finite difference, with the same random numbers on both sides."""
    sb2 = 0.05
    q = float(theory.q_star("tanh", sw2, sb2))
    c_star = float(theory.c_star("tanh", sw2, sb2))
    xi = float(theory.xi_c("tanh", sw2, sb2))
    c = c_star - 0.02
    gaps = []
    for _ in range(12):
        c = float(theory.c_map("tanh", sw2, sb2, c, q))
        gaps.append(abs(c - c_star))
    rate = np.polyfit(np.arange(6, 12), np.log(gaps[6:]), 1)[0]
    assert rate == pytest.approx(-1 / xi, rel=0.03)
    if c_star < 1:  # chaotic: the slope at c* by Monte Carlo
        h = 1e-3
        maps = []
        for cc in (c_star - h, c_star + h):
            u2 = math.sqrt(q) * (cc * Z1 + math.sqrt(1 - cc * cc) * Z2)
            maps.append((sw2 * np.tanh(math.sqrt(q) * Z1) * np.tanh(u2) + sb2).mean() / q)
        assert (maps[1] - maps[0]) / (2 * h) == pytest.approx(math.exp(-1 / xi), rel=0.02)


@pytest.mark.parametrize("sw2", [1.0, 1.76, 3.0])
def test_xi_q_is_the_rate_at_which_the_variance_settles(sw2):
    sb2 = 0.05
    q_star = float(theory.q_star("tanh", sw2, sb2))
    q, gaps = 1.1 * q_star, []
    for _ in range(8):
        q = float(theory.q_map("tanh", sw2, sb2, q))
        gaps.append(abs(q - q_star))
    rate = np.polyfit(np.arange(4, 8), np.log(gaps[4:]), 1)[0]
    assert rate == pytest.approx(-1 / float(theory.xi_q("tanh", sw2, sb2)), rel=0.03)


def test_a_wide_network_follows_the_maps():
    """Two inputs through a random tanh network of width 2000: their correlation follows the c-map."""
    sw2, sb2, n = 2.5, 0.1, 2000
    gen = torch.Generator().manual_seed(0)
    q = float(theory.q_star("tanh", sw2, sb2))
    a = torch.randn(n, dtype=torch.float64, generator=gen)
    b = 0.9 * a + math.sqrt(1 - 0.81) * torch.randn(n, dtype=torch.float64, generator=gen)
    z = torch.stack([a, b]) * math.sqrt(q)  # pre-activations at q*, correlation 0.9
    c = 0.9
    for _ in range(4):
        w = torch.randn(n, n, dtype=torch.float64, generator=gen) * math.sqrt(sw2 / n)
        bias = torch.randn(n, dtype=torch.float64, generator=gen) * math.sqrt(sb2)
        z = torch.tanh(z) @ w.T + bias
        c = float(theory.c_map("tanh", sw2, sb2, c, q))
        measured = float((z[0] * z[1]).mean() / z.pow(2).mean(1).prod().sqrt())
        assert measured == pytest.approx(c, abs=0.04)
        assert float(z.pow(2).mean()) == pytest.approx(q, rel=0.08)


def test_critical_line_starts_at_one_and_tanh_gain_is_chaotic():
    assert float(critical_sw2(0.0)) == pytest.approx(1.0, abs=0.02)  # chi_1 = sw2 at q* = 0
    assert float(critical_sw2(0.05)) > 1.5  # biases push it right (Schoenholz et al. 2017, fig. 1)
    assert float(theory.chi_1("tanh", 25 / 9, 0.0)) > 1.1  # gain 5/3: the chaotic phase
    assert float(theory.c_star("tanh", 25 / 9, 0.0)) < 1e-6  # ...where distinct inputs decorrelate fully
    assert float(theory.xi_c("tanh", 1.76, 0.05)) > 100  # xi_c diverges at the critical line
    sw2, sb2 = theory.critical_point("tanh", 0.1)
    assert float(theory.chi_1("tanh", sw2, sb2)) == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("depth", [1, 5, 20, 100])
def test_edge_of_a_product_of_gaussian_matrices_is_fuss_catalan(depth):
    exact = (depth + 1) ** (depth + 1) / depth ** depth
    assert theory.jacobian_edge("linear", 1.0, 1.0, depth) == pytest.approx(exact, rel=1e-6)
    assert theory.jacobian_edge("linear", 1.0, 1.0, depth, "orthogonal") == pytest.approx(1, rel=1e-6)
    m = theory.jacobian_moments("linear", 1.0, 1.0, depth)
    assert m["variance"] == pytest.approx(depth)  # Fuss-Catalan: m2 = L + 1


def test_relu_edge_has_its_closed_form():
    for depth in (10, 100):  # maximise w / ((1 + w)(1 + 2w)^L): 2L w^2 + (2L - 2) w - 1 = 0
        w = (-(2 * depth - 2) + math.sqrt((2 * depth - 2) ** 2 + 8 * depth)) / (4 * depth)
        exact = (1 + w) * (1 + 2 * w) ** depth / w
        assert theory.jacobian_edge("relu", 2.0, 1.0, depth) == pytest.approx(exact, rel=1e-6)


def test_sampled_jacobians_match_free_probability():
    """Orthogonal tanh at the critical point: the mean and the variance of lambda = s^2, and the largest s."""
    q = 1 / 64
    sw2, sb2 = theory.critical_point("tanh", q)
    gen = torch.Generator().manual_seed(0)
    sv = jacobian_singular_values("tanh", "orthogonal", sw2, sb2, q, [30], 256, 2, gen)[30]
    lam = sv.ravel() ** 2
    pred = theory.jacobian_moments("tanh", sw2, q, 30, "orthogonal")
    assert lam.mean() == pytest.approx(1.0, abs=0.05)
    assert lam.var() == pytest.approx(pred["variance"], rel=0.25)
    assert sv.max() == pytest.approx(math.sqrt(theory.jacobian_edge("tanh", sw2, q, 30, "orthogonal")), rel=0.05)
    # ReLU cannot be isometric: even with orthogonal weights the variance grows like L (mu2 / mu1^2 = 2)
    relu = theory.jacobian_moments("relu", 2.0, 1.0, 30, "orthogonal")
    assert relu["variance"] == pytest.approx(30)
    gauss = theory.jacobian_moments("tanh", sw2, q, 30, "gaussian")
    assert gauss["variance"] > 100 * pred["variance"]


def test_finite_width_spread_grows_like_depth_over_width():
    """Var ln(||dL/dh_1||^2 / ||dL/dh_L||^2) = 5 (L - 1) / n for ReLU at He's scale (each layer multiplies the
    squared norm by an independent factor of variance 5/n; Hanin 2018: the variance grows with sum 1/n_j)."""
    gen = torch.Generator().manual_seed(0)
    for depth, width in ((9, 32), (17, 64)):
        r = relu_gradient_ratio(depth, width, 400, gen)
        assert np.var(r, ddof=1) == pytest.approx(5 * (depth - 1) / width, rel=0.25)


def test_depth_beyond_six_xi_c_does_not_train_and_within_it_does():
    """Ordered side, sigma_w^2 = 0.6: 6 xi_c is about 9 layers (Schoenholz et al. 2017's bound); 4 layers train,
    16 stay at chance."""
    assert 6 * float(theory.xi_c("tanh", 0.6, 0.05)) < 12
    acc = []
    for depth in (4, 16):
        specs = [(depth, 0.6, 0.05, "normal", None)] * 3
        runs = fit_stacked(_tanh_builds(specs, 32), digits(), [0, 1, 2], 100, lr=0.1, every=100)
        acc += [h["test_acc"][-1] for _, h in runs]
    assert min(acc[:3]) > 0.6
    assert max(acc[3:]) < 0.2
