"""The numbers behind the 'Case study: image recognition' page, and the ConvNet the probes run on."""
import math

import numpy as np
import pytest
import torch

from vgsite.nets import ConvNet, DeepMLP
from vgsite.probes import gradient_flow
from vgsite.registry import load
from vgsite.train import digits

EXPERIMENTS = load()
torch.set_num_threads(1)  # as the experiments run: one thread each


def test_convnet_has_the_probe_interface():
    torch.manual_seed(0)
    net = ConvNet(5, 4, norm="batch", residual=True)
    x, y = digits()[0][:16], digits()[1][:16]
    flow = gradient_flow(net, x, y)
    assert len(flow["signal"]) == len(flow["weight"]) == len(flow["saturated"]) == 5
    assert net(x).shape == (16, 10)
    assert not net.blocks[0].residual and all(b.residual for b in net.blocks[1:])  # 1 -> 4 channels first
    assert all(0.3 < s < 0.7 for s in flow["saturated"])  # about half the ReLUs are off at init


def test_normal_init_uses_the_kernels_fan_in_and_mlp_init_is_unchanged():
    torch.manual_seed(0)
    net = ConvNet(3, 16, init="normal", gain=2.0)
    w = net.blocks[1].linear.weight
    assert w.std().item() == pytest.approx(2.0 / math.sqrt(16 * 9), rel=0.05)
    torch.manual_seed(0)
    mlp = DeepMLP(2, 256, init="normal", gain=2.0)
    assert mlp.blocks[1].linear.weight.std().item() == pytest.approx(2.0 / 16, rel=0.02)


def test_plain_cnn_vanishes_and_the_other_three_do_not():
    nets = EXPERIMENTS["images/gradient-flow-at-init"](depth=10, channels=8).data["nets"]
    assert nets["plain"]["log10_ratio_first_last"] < -3
    for label in ("residual", "plain + BN", "residual + BN"):
        assert abs(nets[label]["log10_ratio_first_last"]) < 1.5, label
    # the skips let the activations grow with depth: larger class scores, a larger loss than guessing
    assert nets["residual"]["loss"] > 1.25 * math.log(10) > 1.1 * nets["plain"]["loss"]


def test_batch_norm_lets_the_deep_cnn_learn_where_the_plain_one_cannot_in_every_seed():
    small = dict(depth=12, channels=6, steps=100, seeds=(0, 1, 2))
    data = EXPERIMENTS["images/training-without-norm"](**small).data
    plain, residual = data["runs"]["plain"], data["runs"]["residual"]
    normed = EXPERIMENTS["images/training-with-norm"](**small).data["runs"]
    assert data["seeds"] == [0, 1, 2] and len(plain["final_test_acc"]) == 3
    assert max(plain["best_test_acc"]) < 0.2  # chance is 0.1, in every seed
    assert max(abs(np.array(plain["mean_loss_last_fifth"]) - math.log(10))) < 0.05  # stuck at guessing
    # the residual net without BN starts from inflated scores (less inflated at this depth) and drops fast
    assert min(residual["initial_loss"]) > 1.1 * math.log(10)
    assert max(residual["finite_loss_at_first_record"]) < min(residual["initial_loss"])
    for label in ("plain + BN", "residual + BN"):
        assert min(normed[label]["best_test_acc"]) > 0.3, label  # three times chance after 100 steps
        assert max(normed[label]["mean_loss_last_fifth"]) < 0.8 * min(plain["mean_loss_last_fifth"]), label
