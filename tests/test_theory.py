"""vgsite.theory against Monte-Carlo estimates and the closed forms that exist."""
import math

import numpy as np
import pytest
import torch

from vgsite import theory
from vgsite.nets import ACTIVATIONS, DeepMLP

N = 300_000
ACTS = ("linear", "sigmoid", "tanh", "relu", "gelu", "elu", "leaky_relu", "selu")


@pytest.fixture(scope="module")
def z():
    return torch.randn(N, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def monte_carlo(activation, q, z):
    """Sample means of g, g^2, g'^2 over z ~ N(0, q), with their standard errors."""
    x = (math.sqrt(q) * z).requires_grad_(True)
    g = ACTIVATIONS[activation]()(x)
    g.sum().backward()
    g, s2 = g.detach(), x.grad ** 2
    err = lambda t: 5 * t.std().item() / math.sqrt(N) + 1e-12  # five standard errors
    return {"mean": (g.mean().item(), err(g)), "second": ((g * g).mean().item(), err(g * g)),
            "variance": (g.var().item(), err((g - g.mean()) ** 2)), "slope2": (s2.mean().item(), err(s2))}


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("q", [0.3, 2.5])
def test_gaussian_moments_match_monte_carlo(activation, q, z):
    exact = theory.moments(activation, q)
    for key, (estimate, err) in monte_carlo(activation, q, z).items():
        assert exact[key] == pytest.approx(estimate, abs=err), (activation, q, key)


def test_gaussian_expectation_of_a_function(z):
    assert theory.gaussian(lambda t: t ** 2, 2.0) == pytest.approx(2.0, rel=1e-12)
    assert theory.gaussian(lambda t: t ** 4, 0.5) == pytest.approx(3 * 0.25, rel=1e-12)
    assert theory.gaussian(torch.cos) == pytest.approx(math.exp(-0.5), rel=1e-12)


def test_closed_forms_for_relu_and_linear():
    for q in (0.1, 1.0, 7.0):
        relu = theory.moments("relu", q)
        assert relu["second"] == q / 2 and relu["slope2"] == 0.5
        assert relu["mean"] == pytest.approx(math.sqrt(q / (2 * math.pi)))
        assert theory.variance("linear", q) == pytest.approx(q, rel=1e-10)
    assert theory.bn_factor("relu") == pytest.approx(math.sqrt(math.pi / (math.pi - 1)), rel=1e-12)


def test_small_signal_limit_is_the_slope_at_zero():
    assert theory.slope2("sigmoid", 0) == 1 / 16
    assert theory.slope2("tanh", 0) == 1.0
    assert theory.slope2("relu", 0) == 0.5  # half of the units are on
    assert theory.slope2("leaky_relu", 0) == pytest.approx((1 + 0.01 ** 2) / 2)
    # and it is the limit of the Gaussian average as q -> 0
    for act in ("sigmoid", "tanh", "gelu"):
        assert theory.slope2(act, 1e-8) == pytest.approx(theory.slope2(act, 0), rel=1e-6), act


def test_per_layer_factors_the_pages_use():
    assert theory.per_layer_factor("sigmoid", 1 / 3) == pytest.approx(math.sqrt(1 / 3) / 4, rel=1e-15)
    assert theory.per_layer_factor("tanh", 1 / 3) == pytest.approx(math.sqrt(1 / 3), rel=1e-15)
    assert theory.per_layer_factor("relu", 2.0) == 1.0  # He et al. 2015
    assert theory.per_layer_factor("relu", 1.0) == pytest.approx(math.sqrt(0.5))


def test_batch_norm_factor_matches_monte_carlo_and_poincare(z):
    for act in ACTS:
        mc = monte_carlo(act, 1.0, z)
        estimate = math.sqrt(mc["slope2"][0] / mc["variance"][0])
        assert theory.bn_factor(act) == pytest.approx(estimate, rel=5e-3), act
        assert theory.bn_factor(act) >= 1 - 1e-12, act  # Gaussian Poincare: Var g <= E[g'^2]
    assert theory.bn_factor("linear") == pytest.approx(1.0, abs=1e-9)


def test_forward_variance_map_matches_a_wide_network():
    """The map's prediction of Var(h_l), against a 2048-wide tanh net at He's gain (chaotic phase)."""
    torch.manual_seed(0)
    depth, width = 8, 2048
    model = DeepMLP(depth, width, activation="tanh", init="normal", gain=math.sqrt(2))
    for block in model.blocks:
        torch.nn.init.zeros_(block.linear.bias)
    with torch.no_grad():
        model(torch.randn(256, width), keep=True)
    measured = np.array([h.double().var().item() for h in model.hidden])
    predicted = theory.forward_variance("tanh", 2.0, depth)
    np.testing.assert_allclose(measured, predicted, rtol=0.03)


def test_fixed_point_chi_and_depth_scale_for_tanh():
    # He's gain on tanh: chaotic phase, chi_1 > 1 (Schoenholz et al. 2017)
    q_star = theory.fixed_point("tanh", 2.0)
    assert theory.variance_map("tanh", 2.0, q_star) == pytest.approx(q_star, rel=1e-10)
    assert q_star == pytest.approx(0.618, abs=0.002)
    chi = theory.chi("tanh", 2.0, q_star)
    assert chi == pytest.approx(1.106, abs=0.002)
    assert theory.depth_scale(chi) < 0  # negative: the gradient grows
    # Xavier's gain on tanh: the map shrinks q towards 0, where chi -> 1 (the edge of chaos)
    assert theory.fixed_point("tanh", 1.0) < 1e-3
    assert theory.chi("tanh", 1.0, 0) == 1.0 and theory.depth_scale(1.0) == math.inf
    assert theory.depth_scale(math.exp(-0.1)) == pytest.approx(10)
    # ReLU: q_(l+1) = s q_l / 2 exactly; a fixed point only at He's gain
    assert theory.variance_map("relu", 2.0, 0.7) == pytest.approx(0.7)


def test_tail_fraction(z):
    q = 0.62
    assert theory.tail_fraction(q, 3.0) == pytest.approx((math.sqrt(q) * z).abs().gt(3).double().mean().item(),
                                                        rel=0.15)
