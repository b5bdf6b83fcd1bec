"""The numbers behind the 'Residual connections' page, on small configurations."""
import numpy as np
import pytest
import torch

from vgsite.registry import load
from vgsite.topics.residual import residual_bn_prediction

EXPERIMENTS = load()
torch.set_num_threads(1)  # as the experiments run: one thread each


def test_skip_connections_stop_the_plain_net_vanishing():
    nets = EXPERIMENTS["residual/gradient-flow"](depth=30, batch=64).data["nets"]
    assert nets["plain"]["log10_ratio_first_last"] < -3
    assert abs(nets["residual"]["log10_ratio_first_last"]) < 1.5
    assert 0 < nets["residual + BN"]["log10_ratio_first_last"] < nets["plain + BN"]["log10_ratio_first_last"]


def test_residual_batch_norm_net_grows_like_a_power_of_depth_not_exponentially():
    nets = EXPERIMENTS["residual/depth-sweep"](depths=(10, 40, 80), seeds=(0,), batch=64).data["nets"]
    res, plain_bn = nets["residual + BN"], nets["plain + BN"]
    np.testing.assert_allclose(res["log10_ratio"], res["predicted"], rtol=0.25)
    # exponential: doubling the depth roughly doubles the log ratio; a power law adds a constant
    assert plain_bn["log10_ratio"][2] / plain_bn["log10_ratio"][1] > 1.7
    assert res["log10_ratio"][2] / res["log10_ratio"][1] < 1.5
    assert residual_bn_prediction(400) - residual_bn_prediction(200) < residual_bn_prediction(20)


@pytest.fixture(scope="module")
def degradation():
    return EXPERIMENTS["residual/degradation"](depths=(4, 40), steps=110, seeds=(0, 1, 2)).data


def test_deeper_plain_net_trains_worse_in_every_seed_and_the_residual_one_does_not(degradation):
    runs = degradation["runs"]
    loss = lambda label: np.array(runs[label]["final_train_loss"])
    shallow, deep = loss("plain + BN, 4 layers"), loss("plain + BN, 40 layers")
    assert len(deep) == 3 and degradation["seeds"] == [0, 1, 2]
    assert deep.min() > 2 * shallow.max()  # degradation, in every seed
    assert loss("residual + BN, 40 layers").max() < 0.5 * deep.min()
    # the summaries the page quotes are those of the per-seed values
    summary = degradation["summary"]["plain + BN, 40 layers"]["final_train_loss"]
    assert summary["median"] == pytest.approx(np.median(deep)) and summary["max"] == pytest.approx(deep.max())


def test_the_deep_plain_nets_gradient_explodes_at_init_and_levels_off_after_a_few_steps(degradation):
    plain, res = degradation["runs"]["plain + BN, 40 layers"], degradation["runs"]["residual + BN, 40 layers"]
    at_init = np.array(plain["log10_weight_grad_first_over_last_at_init"])
    # explodes toward the input (not vanishing), more than the residual net's
    assert at_init.min() > 1.5 and at_init.min() > max(res["log10_weight_grad_first_over_last_at_init"]) + 0.5
    early = {k: np.array(v) for k, v in plain["log10_weight_grad_first_over_last_early"].items()}
    assert np.median(early["step 1"]) < np.median(at_init) - 0.5  # one step already shrinks the range
    assert np.abs(early["step 20"]).max() < 1
    assert np.abs(plain["log10_weight_grad_first_over_last_late"]).max() < 0.5  # level late in training
    assert np.min(plain["weight_grad_last_100_steps"]) > 0.01  # nothing vanishes


def test_prediction_for_one_layer_is_zero():
    assert residual_bn_prediction(1) == pytest.approx(0.0)
