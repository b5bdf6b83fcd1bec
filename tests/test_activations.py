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
    data = EXPERIMENTS["activations/dead-units"](lrs=(0.001, 0.1), steps=150, seeds=(0, 1, 2)).data
    relu, leaky = data["nets"]["ReLU"], data["nets"]["Leaky ReLU 0.01"]
    # every seed: many dead units at the high rate, more than at the low one, and none in the first layer
    assert min(relu[1]["dead"]) > 0.2 and min(relu[1]["dead"]) > max(relu[0]["dead"])
    assert all(r["summary"]["dead_per_layer"]["max"][0] == 0 for r in relu)
    assert max(relu[0]["dead_at_init"]) < 0.05  # almost none at initialisation
    assert all(max(r["dead"]) == 0 for r in leaky)
    assert min(leaky[1]["off"]) > 0  # some are off on every image, but their slope 0.01 still lets gradient through
    # per-seed values and their summaries are stored side by side
    assert len(relu[1]["dead"]) == 3 and relu[1]["summary"]["dead"]["median"] == sorted(relu[1]["dead"])[1]
    track = relu[1]["track"]
    assert len(track["dead"]) == 3 and track["summary"]["dead"]["max"][-1] == max(d[-1] for d in track["dead"])


def test_deep_sigmoid_does_not_train_where_the_others_do():
    torch.set_num_threads(1)
    nets = EXPERIMENTS["activations/training"](depth=10, steps=100, seeds=(0, 1, 2)).data["nets"]
    sig = nets["sigmoid (Xavier)"]
    assert all(abs(x - math.log(10)) < 0.1 for x in sig["final_train_loss"])  # every seed at the guessing loss
    for label in ("ELU (He)", "SELU (LeCun normal)", "PReLU 0.25 (He, PReLU gain)"):
        assert max(nets[label]["final_train_loss"]) < 1.5, label
        assert min(nets[label]["final_test_acc"]) > max(sig["final_test_acc"]), label
    for run in nets.values():  # the best accuracy on the way is at least the final one, seed by seed
        assert len(run["final_test_acc"]) == 3
        assert all(b >= f for b, f in zip(run["best_test_acc"], run["final_test_acc"]))
