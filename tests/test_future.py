"""The numbers behind the 'What comes next' page, on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite.registry import load

EXPERIMENTS = load()


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def stacks():
    torch.set_num_threads(1)
    return EXPERIMENTS["future/norm-stacks"](depth=32, depths=(16, 64), seeds=(0, 1)).data["stacks"]


def test_post_norm_grows_in_proportion_to_depth_and_pre_norm_much_slower(stacks):
    post = stacks["post-norm residual: LN(h + f(h))"]["sweep_log10_ratio"]
    pre = stacks["pre-norm residual: h + f(LN(h))"]["sweep_log10_ratio"]
    assert post[1] / post[0] > 3          # four times the depth, about four times the decades: exponential in depth
    assert pre[1] - pre[0] < 0.8          # pre-norm: a fraction of a decade more
    assert post[1] > pre[1] + 1


def test_residual_without_normalisation_explodes_and_the_branch_norm_is_flat(stacks):
    assert stacks["residual, no norm"]["sweep_log10_ratio"][1] > 10
    assert abs(stacks["norm inside the branch: h + g(LN(Wh))"]["log10_first_over_last"]) < 0.5
    # post-norm puts a LayerNorm at the end of every block: the activations leave it with standard deviation 1
    assert stacks["post-norm residual: LN(h + f(h))"]["act_std_last"] == pytest.approx(1, abs=0.01)


def test_selu_keeps_the_variance_near_one_and_relu_with_lecun_init_halves_it_per_layer():
    data = EXPERIMENTS["future/selu"](depth=24, seeds=(0, 1)).data
    nets = data["nets"]
    assert 0.8 < nets["SELU, N(0, 1/n)"]["variance_last"] < 1.25
    assert abs(nets["SELU, N(0, 1/n)"]["mean_last"]) < 0.15
    # backward, SELU's gradient grows slightly: chi = E[selu'(z)^2] > 1 at the fixed point (about 1.07)
    assert 1.05 < data["selu_chi"] < 1.09
    measured, predicted = nets["SELU, N(0, 1/n)"]["log10_first_over_last"], data["selu_predicted_log10_first_over_last"]
    assert 0.6 * predicted < measured < 1.6 * predicted
    # ReLU with Var(W) = 1/n: E[relu(z)^2] = Var(z)/2, so the second moment halves every layer
    var = np.array(nets["ReLU, N(0, 1/n)"]["variance"])
    slope = np.polyfit(np.arange(len(var)), np.log10(var), 1)[0]
    assert slope == pytest.approx(math.log10(0.5), rel=0.15)


def test_orthogonal_linear_network_is_an_exact_isometry_and_gaussian_is_not():
    nets = EXPERIMENTS["future/isometry"](depth=16, seeds=(0,)).data["nets"]
    assert nets["linear, orthogonal"]["log10_max_over_min"] < 1e-4
    assert nets["linear, Gaussian N(0, 1/n)"]["log10_max_over_min"] > 4
    assert nets["tanh, orthogonal"]["log10_max_over_min"] < 1
