"""The numbers behind the 'Batch normalisation' page, on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite.registry import load
from vgsite.theory import bn_factor

EXPERIMENTS = load()
torch.set_num_threads(1)  # as the experiments run: one thread each


def test_batch_norm_ends_vanishing_in_a_deep_sigmoid_net():
    nets = EXPERIMENTS["batchnorm/gradient-flow"](depth=20).data["nets"]
    assert nets["sigmoid"]["log10_ratio_first_last"] < -3  # vanishing by more than three decades
    assert nets["tanh"]["log10_ratio_first_last"] < -3
    for label in ("sigmoid + batch norm", "tanh + batch norm"):
        assert abs(nets[label]["log10_ratio_first_last"]) < 1, label  # within a decade


def test_predicted_factor_is_at_least_one_and_exact_for_relu():  # more in test_theory.py
    # Gaussian Poincare inequality: Var g(z) <= E[g'(z)^2], equality for linear g.
    assert bn_factor("linear") == pytest.approx(1.0, abs=1e-6)
    assert bn_factor("relu") == pytest.approx(math.sqrt(math.pi / (math.pi - 1)), rel=1e-4)
    for activation in ("sigmoid", "tanh", "relu", "gelu", "elu"):
        assert bn_factor(activation) > 1.0 - 1e-9, activation


def test_batch_norm_without_skips_explodes_and_the_explosion_grows_with_depth():
    nets = EXPERIMENTS["batchnorm/explosion"](depths=(5, 20, 40), seeds=(0,)).data["nets"]
    relu = nets["ReLU + BN"]
    assert all(r > 0 for r in relu["log10_ratio"])
    assert np.all(np.diff(relu["log10_ratio"]) > 0)
    # the large-width, large-batch theory for ReLU: log10 sqrt(pi / (pi - 1)) = 0.084 decades per layer
    assert relu["decades_per_layer"] == pytest.approx(relu["predicted_decades_per_layer"], rel=0.2)
    # the closer to linear, the milder: linear < sigmoid < tanh < ReLU
    rates = [nets[k]["decades_per_layer"] for k in ("linear + BN", "sigmoid + BN", "tanh + BN", "ReLU + BN")]
    assert rates == sorted(rates)
    assert abs(nets["ReLU, He init, no BN"]["log10_ratio"][-1]) < 1


def test_no_weight_scale_removes_the_explosion_batch_norm_causes():
    nets = EXPERIMENTS["batchnorm/init-cannot-fix"](depth=20).data["nets"]
    bn = np.array(nets["ReLU + BN"]["log10_ratio"])
    assert bn.min() > 0.5 and bn.max() - bn.min() < 0.5  # exploding, and the same at every gain
    plain = np.array(nets["ReLU, no BN"]["log10_ratio"])
    np.testing.assert_allclose(plain, nets["ReLU, no BN"]["predicted"], atol=1.5)
    assert plain[0] < -3 and plain[-1] > 3  # without BN the weight scale decides, either way


def test_batch_norm_trains_a_deep_sigmoid_net_even_with_shift_injected():
    data = EXPERIMENTS["batchnorm/training"](depth=12, steps=120, seeds=(0, 1, 2)).data
    assert data["train_size"] == 1348 and data["test_size"] == 449  # 1797 digits, a quarter held out
    runs = {k: {m: np.array(v) for m, v in r.items() if m != "step"} for k, r in data["runs"].items()}
    plain, bn, noisy = (runs[k] for k in ("sigmoid", "sigmoid + batch norm", "sigmoid + batch norm + noise after it"))
    assert np.all(plain["final_loss"] > 2.0)  # ln 10 = 2.30: it has not learnt, in any seed
    assert np.all(bn["final_loss"] < 0.5 * plain["final_loss"])
    assert np.all(noisy["final_loss"] < 0.8 * plain["final_loss"])
    # the injected noise moves the layers' input distributions far more than the plain net's own drift
    assert np.all(noisy["mean_shift_per_step"] > 10 * plain["mean_shift_per_step"])
    assert np.all(noisy["mean_shift_per_step"] > 100 * bn["mean_shift_per_step"])
    assert np.all(plain["first_layer_weight_grad_at_init"] < 1e-4 * bn["first_layer_weight_grad_at_init"])
    assert np.all(bn["weight_norm_growth"] >= 1)  # the gradient is orthogonal to W: SGD can only grow ||W||


def test_batch_norm_makes_the_loss_blind_to_the_weight_scale_but_not_the_weight_gradient():
    data = EXPERIMENTS["batchnorm/scale-invariance"](depth=5, width=32, batch=64).data
    assert data["loss_change"] < 1e-3
    assert max(data["signal_ratio_first_last"]) - min(data["signal_ratio_first_last"]) < 0.01
    np.testing.assert_allclose(data["weight_grad_times_scale"], 1, rtol=0.01)  # grad(cW) = grad(W) / c
    assert data["slope"] == pytest.approx(-1, abs=0.01)


def test_the_gap_to_the_batch_norm_prediction_shrinks_with_width():
    data = EXPERIMENTS["batchnorm/width-sweep"](widths=(32, 256), seeds=(0, 1, 2)).data
    for label, net in data["nets"].items():
        rates = np.array(net["per_seed"])
        assert np.all(rates[-1] > net["predicted_decades_per_layer"]), label  # above the wide-net estimate ...
        assert net["excess"][-1] < 0.7 * net["excess"][0], label  # ... by less as the width grows
    tanh = np.array(data["nets"]["tanh + BN"]["per_seed"])
    assert tanh[-1].max() < tanh[0].min()  # for tanh in every seed
