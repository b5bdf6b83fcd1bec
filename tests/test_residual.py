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


def test_deeper_plain_net_trains_worse_and_the_residual_one_does_not():
    runs = EXPERIMENTS["residual/degradation"](depths=(4, 24), steps=150).data["runs"]
    shallow, deep = runs["plain + BN, 4 layers"], runs["plain + BN, 24 layers"]
    res_deep = runs["residual + BN, 24 layers"]
    assert deep["final_train_loss"] > 2 * shallow["final_train_loss"]  # degradation
    assert res_deep["final_train_loss"] < 0.5 * deep["final_train_loss"]
    # ... and not because the deep plain net's gradient vanished: at its first layer it is larger, not smaller
    assert deep["log10_weight_grad_first_over_last_at_init"] > 0
    assert min(deep["weight_grad_last_100_steps"]) > 0.1 * max(deep["weight_grad_last_100_steps"])


def test_prediction_for_one_layer_is_zero():
    assert residual_bn_prediction(1) == pytest.approx(0.0)
