"""The claims of the Optimisers page, on small configurations, against Adam's update rule (Kingma & Ba 2015)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vgsite.nets import DeepMLP
from vgsite.registry import load
from vgsite.theory import WEIGHT_VARIANCE, per_layer_factor
from vgsite.topics.optimisers import adam_first_step, adam_step_bound

EXPERIMENTS = load()
LN10 = math.log(10)


def one_step(optimizer, scale=1.0, seed=0, **opt_kw):
    """One step of `optimizer` on a small float64 tanh net whose loss is multiplied by `scale`; (grads, steps)."""
    torch.manual_seed(seed)
    model = DeepMLP(4, 16, activation="tanh").double()
    x, y = torch.randn(32, 16, dtype=torch.float64), torch.randint(0, 10, (32,))
    (scale * F.cross_entropy(model(x), y)).backward()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    grads = [p.grad.detach().clone() for p in params]
    optimizer(params, **opt_kw).step()
    return grads, [p.detach() - b for p, b in zip(params, before)]


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_adams_first_step_is_lr_per_parameter_whatever_the_gradient_scale(scale):
    grads, steps = one_step(torch.optim.Adam, scale, lr=1e-3, eps=1e-30)
    for g, s in zip(grads, steps):
        moved = s[g != 0].abs()
        assert torch.allclose(moved, torch.full_like(moved, 1e-3), rtol=1e-9)
        assert torch.equal(torch.sign(s[g != 0]), -torch.sign(g[g != 0]))
        assert torch.all(s[g == 0] == 0)  # no gradient, no step: Adam cannot scale up an exact zero


def test_adam_with_epsilon_far_above_the_gradient_is_sgd_with_lr_over_epsilon():
    lr, eps = 1e-3, 1e3
    grads, steps = one_step(torch.optim.Adam, lr=lr, eps=eps)
    for g, s in zip(grads, steps):
        assert torch.allclose(s, -(lr / eps) * g, rtol=1e-3, atol=0)
        assert torch.allclose(s, -adam_first_step(g, lr, eps), rtol=1e-6, atol=1e-15)  # float64 steps read off weights near 0.1


def test_sgd_and_momentum_steps_scale_with_the_gradient():
    small = one_step(torch.optim.SGD, 1.0, lr=0.1, momentum=0.9)[1]
    large = one_step(torch.optim.SGD, 1e3, lr=0.1, momentum=0.9)[1]
    for a, b in zip(small, large):
        assert torch.allclose(b, 1e3 * a, rtol=1e-9)


def test_the_largest_adam_step_after_silent_steps_is_the_bound():
    # a parameter whose gradient was 0 for t-1 steps and is g at step t moves by adam_step_bound(t), whatever g
    for t, g in ((1, 1e-3), (10, 5.0), (101, 1e4), (3000, 1e-2)):
        w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([w], lr=1e-3, eps=1e-30)
        for step in range(1, t + 1):
            w.grad = torch.full_like(w, g if step == t else 0.0)
            before = w.detach().clone()
            opt.step()
        assert abs((w.detach() - before).item()) == pytest.approx(adam_step_bound(1e-3, 0.9, 0.999, t), rel=1e-9)
    # Kingma & Ba's bound lr (1 - beta1) / sqrt(1 - beta2) for large t
    assert adam_step_bound(1.0, 0.9, 0.999, 10 ** 6) == pytest.approx(0.1 / math.sqrt(0.001), rel=1e-9)


@pytest.fixture(scope="module")
def epsilon():
    torch.set_num_threads(1)
    return EXPERIMENTS["optimisers/epsilon"](eps_decades=(-14, 0), eps_per_decade=1).data


def test_at_small_epsilon_every_layer_moves_by_lr_per_parameter(epsilon):
    assert np.allclose(epsilon["plateau_match"], 1, atol=0.01)
    # layer 1 reads 64 pixels, the others 32 units: sqrt(3 n_in) is larger by sqrt(2) at the default init
    assert np.all(np.abs(np.array(epsilon["adam_gap_decades_small_eps"]) - math.log10(math.sqrt(2))) < 0.05)
    # while the gradient falls by the sigmoid's factor per layer (layer 1 sees pixels, so allow for it)
    decades = -math.log10(per_layer_factor("sigmoid", WEIGHT_VARIANCE["default"]))
    assert np.all(np.array(epsilon["sgd_gap_decades"]) < -0.7 * decades * (10 - 2))


def test_each_layer_turns_into_sgd_with_lr_over_epsilon_where_epsilon_passes_its_gradient(epsilon):
    half = np.array(epsilon["eps_half_over_rms"])
    assert np.all(half > 1 / 3) and np.all(half < 3)
    assert np.allclose(epsilon["sgd_limit_match_last"], 1, atol=0.01)
    # at the default epsilon the first layer, whose entries are far below it, is on the SGD side
    assert np.all(np.array(epsilon["rms_first"]) < 1e-8) and np.all(np.array(epsilon["layers_on_sgd_side"]) >= 1)
    assert np.all(np.array(epsilon["adam_gap_decades_at_default"]) > np.array(epsilon["sgd_gap_decades"]) + 2)


@pytest.fixture(scope="module")
def gaps():
    torch.set_num_threads(1)
    return EXPERIMENTS["optimisers/layer-gaps"](steps=100).data["nets"]


def test_adam_levels_the_update_sizes_of_tanh_and_relu_nets_and_sgd_does_not(gaps):
    for label in ("tanh", "ReLU"):
        runs = gaps[label]["runs"]
        assert np.all(np.abs(runs["Adam"]["gap_start"]) < 0.6), label
        assert np.all(runs["SGD"]["gap_start"] < -0.5), label
        # SGD's step is lr g: its gap is the gradient's (both layers' weights have the same norm at this init)
        assert np.allclose(runs["SGD"]["gap_start"], runs["SGD"]["grad_gap_start"], atol=0.05), label
    assert np.allclose(gaps["tanh"]["adam_first_match"], 1, atol=0.02)


def test_below_epsilon_adam_does_not_level_the_sigmoid_net(gaps):
    sig = gaps["sigmoid"]
    assert np.all(np.array(sig["adam_first_match"])[:, 0] < 0.1)  # layer 1: |g| ~ 1e-10 << eps = 1e-8
    assert np.all(np.array(sig["adam_first_match"])[:, -1] > 0.99)
    assert np.all(sig["runs"]["Adam"]["gap_start"] < -1)


def test_the_sigmoid_nets_forward_signal_collapses_by_the_theory_factor_and_stays_collapsed(gaps):
    sig = gaps["sigmoid"]
    spread = np.log10(np.median(sig["input_dependence_start"], axis=0))
    slope = np.polyfit(np.arange(2, len(spread) + 1), spread[1:], 1)[0]
    assert slope == pytest.approx(math.log10(per_layer_factor("sigmoid", WEIGHT_VARIANCE["default"])), rel=0.15)
    for name, run in sig["runs"].items():
        assert all(abs(v - LN10) < 0.05 for v in run["final_train_loss"]), name
    assert max(sig["runs"]["Adam"]["input_dependence_last_end"]) < 1e-6


def test_adam_trains_the_relu_net_that_sgd_leaves_at_the_guessing_loss(gaps):
    relu = gaps["ReLU"]["runs"]
    assert max(relu["Adam"]["final_train_loss"]) < min(relu["SGD"]["final_train_loss"]) - 0.2
    assert all(abs(v - LN10) < 0.05 for v in relu["SGD"]["final_train_loss"])


@pytest.fixture(scope="module")
def clipping():
    torch.set_num_threads(1)
    return EXPERIMENTS["optimisers/clipping"](steps=160, spike_step=60, after=30).data


def test_a_gradient_spike_breaks_sgd_but_not_clipped_sgd(clipping):
    runs = clipping["runs"]
    assert all(runs["SGD"]["diverged"])
    assert not any(runs["SGD, clipped at 1"]["diverged"])
    assert np.all(np.array(runs["SGD, clipped at 1"]["spike_over_before"]) < 2)


def test_adams_step_on_the_spike_is_bounded_but_its_later_steps_shrink(clipping):
    runs = clipping["runs"]
    assert np.all(np.array(runs["Adam"]["spike_max_move_over_lr"]) < 0.1 / math.sqrt(0.001))
    assert not any(runs["Adam"]["diverged"])
    assert max(runs["Adam"]["ratio_end"]) < min(runs["Adam, clipped at 1"]["ratio_end"])


def test_a_clipping_threshold_that_scales_every_gradient_leaves_adams_step_alone(clipping):
    ratio = np.array(clipping["runs"]["Adam, clipped at 0.01"]["ratio_before_over_clipped"])
    assert np.all(np.abs(ratio - 1) < 0.15)
