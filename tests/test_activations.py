"""The numbers behind the 'Activations that do not saturate' page, on small configurations."""
import math

import pytest
import torch

from vgsite.registry import load

EXPERIMENTS = load()


def test_slopes_the_page_quotes():
    d = EXPERIMENTS["activations/derivatives"]().data
    assert d["ReLU"]["slope_at_minus_2"] == 0 and d["ReLU"]["slope_at_2"] == 1
    assert d["Leaky ReLU 0.01"]["slope_at_minus_2"] == pytest.approx(0.01)
    assert d["PReLU 0.25"]["slope_at_minus_2"] == pytest.approx(0.25)
    assert d["ELU"]["slope_at_minus_2"] == pytest.approx(math.exp(-2), rel=1e-4)
    assert d["SELU"]["slope_at_2"] == pytest.approx(1.0507, rel=1e-3)  # lambda of Klambauer et al.
    assert d["GELU"]["min_slope"] < 0 < d["GELU"]["max_slope"] - 1  # dips below 0 and overshoots 1
    assert d["sigmoid"]["max_slope"] == pytest.approx(0.25, abs=1e-3)


def test_relu_family_keeps_the_gradient_level_at_depth_20_and_sigmoid_does_not():
    torch.set_num_threads(1)
    nets = EXPERIMENTS["activations/gradient-flow"](depths=(5, 20), seeds=(0, 1)).data["nets"]
    for label in ("ReLU (He)", "Leaky ReLU 0.01 (He)", "PReLU 0.25 (He, PReLU gain)", "SELU (LeCun normal)"):
        assert abs(nets[label]["log10_ratio"][1]) < 1, label  # within a decade
    # sigmoid with Xavier's variance: at most a factor 1/4 per layer, 19 layers between first and last
    assert nets["sigmoid (Xavier)"]["log10_ratio"][1] <= 19 * math.log10(0.25) + 0.5


def test_relu_units_die_at_a_high_learning_rate_and_leaky_relu_units_cannot():
    torch.set_num_threads(1)
    nets = EXPERIMENTS["activations/dead-units"](lrs=(0.001, 0.1), steps=150).data["nets"]
    relu, leaky = nets["ReLU"], nets["Leaky ReLU 0.01"]
    assert relu[1]["dead"] > 0.2 and relu[1]["dead"] > relu[0]["dead"]
    assert all(r["dead"] == 0 for r in leaky)
    assert leaky[1]["off"] > 0  # some are off on every image, but their slope 0.01 still lets gradient through


def test_deep_sigmoid_does_not_train_where_the_others_do():
    torch.set_num_threads(1)
    nets = EXPERIMENTS["activations/training"](depth=10, steps=100).data["nets"]
    assert nets["sigmoid (Xavier)"]["final_train_loss"] == pytest.approx(math.log(10), abs=0.1)
    for label in ("ELU (He)", "SELU (LeCun normal)", "PReLU 0.25 (He, PReLU gain)"):
        assert nets[label]["final_train_loss"] < 1.5, label
