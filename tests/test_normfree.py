"""The claims of the 'Deep networks without normalisation' page, on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite.nets import ResidualMLP
from vgsite.registry import load
from vgsite.topics.normfree import (RELU_VAR, ZERO, flow_theory, freeze_batch_norm, input_gradients,
                                    stream_theory)
from vgsite.train import digits, fit_seeds, fit_stacked

EXPERIMENTS = load()
torch.set_num_threads(1)  # as the experiments run: one thread each


def test_theory_lines():
    # unscaled branches double the stream; 1/sqrt(L) ends at (1 + 1/L)^L -> e; a normalised branch adds 1/2
    assert stream_theory("residual, unscaled", 10, 10)[-1] == 2 ** 10
    assert stream_theory("residual, 1/√L", 1000, 1000)[-1] == pytest.approx(math.e, rel=1e-3)
    assert stream_theory("residual + BN in the branch", 40, 40)[-1] == 21
    assert flow_theory("residual, 1/√L", 10 ** 5) == pytest.approx(0.5 * math.log10(math.e), rel=1e-4)
    assert flow_theory("residual, unscaled", 3) == pytest.approx(math.log10(2))
    assert flow_theory(ZERO, 50) == 0
    # batch norm in the branch: power law, not exponential: doubling the depth adds a shrinking amount
    bn = [flow_theory("residual + BN in the branch", d) for d in (50, 100, 200, 400)]
    assert np.all(np.diff(np.diff(bn)) < 0.01) and bn[-1] < 2
    assert RELU_VAR == pytest.approx(0.5 - 1 / (2 * math.pi))


def test_stream_doubles_grows_linearly_or_stays_bounded():
    nets = EXPERIMENTS["normfree/stream-variance"](blocks=30).data["nets"]
    growth = np.asarray(nets["residual, unscaled"]["log10_growth_per_block"])
    assert np.all(growth > 0.22) and np.all(growth < math.log10(2) + 0.01)  # x2 per block, less at finite width
    bn = np.median(nets["residual + BN in the branch"]["q_last"])
    assert bn == pytest.approx(1 + 30 / 2, rel=0.2)
    assert np.median(nets["residual + BN in the branch"]["batch_var_last"]) == pytest.approx(1 + RELU_VAR * 30,
                                                                                              rel=0.2)
    assert np.median(nets["residual, 1/√L"]["q_last"]) == pytest.approx(math.e, rel=0.3)
    assert np.all(np.asarray(nets[ZERO]["log10_growth_per_block"]) == 0)


def test_gradient_at_initialisation_follows_the_theory():
    nets = EXPERIMENTS["normfree/gradient-flow-at-init"](blocks=10, depths=(10, 30)).data["nets"]
    unscaled = nets["residual, unscaled"]
    np.testing.assert_allclose(unscaled["log10_ratio"]["median"], [4.5 * math.log10(2), 14.5 * math.log10(2)],
                               rtol=0.15)
    np.testing.assert_allclose(nets["residual, 1/√L"]["log10_ratio"]["median"], 0.5 * math.log10(math.e),
                               atol=0.1)
    assert nets["residual + BN in the branch"]["max_abs_error"] < 0.15
    bn = nets["plain + BN"]["log10_ratio"]["median"]
    np.testing.assert_allclose(bn, [(2 * d - 1) * math.log10(math.sqrt(math.pi / (math.pi - 1))) for d in (10, 30)],
                               rtol=0.15)
    assert np.all(np.asarray(nets[ZERO]["log10_ratio"]["per_seed"]) == 0)


def test_branch_blocks_train_the_same_stacked_and_one_by_one():
    build = lambda: ResidualMLP(4, 16, d_in=64, norm="batch", learn_alpha=True, alpha0=0.5, scale=0.7)
    stacked = fit_stacked(build, digits(), (0, 1), 15, lr=0.05)
    single = fit_seeds(build, digits(), (0, 1), 15, lr=0.05)
    for (_, a), (_, b) in zip(stacked, single):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)


@pytest.fixture(scope="module")
def training():
    return EXPERIMENTS["normfree/training"](blocks=30, steps=60).data["runs"]


def test_without_scaling_or_a_skip_path_deep_nets_fail(training):
    assert min(training["plain"]["final_train_loss"]) > 2.2  # ln 10: guessing
    assert training["residual, unscaled"]["n_diverged"] == 3
    assert min(training["residual, unscaled"]["initial_loss"]) > 100


def test_scaled_or_zero_started_branches_train_without_normalisation(training):
    for label in ("SkipInit / ReZero (α = 0)", "residual, 1/√L", "Fixup", "residual + BN in the branch"):
        run = training[label]
        assert run["n_diverged"] == 0
        assert max(run["final_train_loss"]) < 0.5 * math.log(10), label
    np.testing.assert_allclose(training["Fixup"]["initial_loss"], math.log(10), rtol=1e-5)  # zero classifier


def test_zero_last_layer_alone_diverges(training):
    assert training["residual, zero last layer"]["n_diverged"] == 3


def test_batch_norm_gradients_are_each_inputs_own():
    torch.manual_seed(0)
    model = ResidualMLP(3, 8, norm="batch", d_in=1, d_out=1)
    x = torch.linspace(-2, 2, 32).unsqueeze(1)
    grads = input_gradients(model, x)  # freezes the batch statistics, then differentiates the summed output
    one = x[5:6].clone().requires_grad_(True)
    model(one).sum().backward()
    assert grads[5].item() == pytest.approx(one.grad.item(), rel=1e-5)
    assert not model.training and freeze_batch_norm(model, x) is model


def test_plain_nets_shatter_their_gradients_residual_ones_do_not():
    nets = EXPERIMENTS["normfree/shattered"](layers=(2, 64), width=32, seeds=(0, 1, 2)).data["nets"]
    plain, scaled = nets["plain"], nets["residual, 1/√L"]
    assert np.median(plain["deepest"]) < np.median(plain["shallowest"])
    assert np.median(plain["deepest"]) < np.median(scaled["deepest"])
    assert np.min(scaled["deepest"]) > 0.8
