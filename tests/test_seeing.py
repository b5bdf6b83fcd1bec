"""The numbers behind the 'Seeing it' page, on a small configuration."""
import math

import numpy as np
import pytest
import torch

from vgsite.registry import load

EXPERIMENTS = load()


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return EXPERIMENTS["seeing/deep-tanh"](depth=10, steps=50, every=25, probe_batch=128, hist_layers=(1, 5, 10),
                                           seeds=(0, 1, 2)).data


def test_signal_vanishes_at_the_predicted_rate_while_weight_gradients_stay_level(data):
    init = data["init"]
    per_layer = math.log10(math.sqrt(1 / 3))  # Glorot & Bengio's standard init in tanh's linear regime
    for seed in range(3):
        assert init["signal_decades_per_layer"][seed] == pytest.approx(-per_layer, rel=0.2)  # grows to the output
        assert init["signal_log10_first_over_last"][seed] < 9 * per_layer * 0.8  # > 1.7 decades over 10 layers
        assert abs(init["weight_log10_first_over_last"][seed]) < 0.5  # level: what a weight-gradient plot shows
        # the compensation: the inputs h_{l-1} shrink going forward at the same rate
        assert init["input_decades_per_layer"][seed] == pytest.approx(per_layer, rel=0.2)


def test_vanishing_here_is_not_saturation_and_saturation_is_not_vanishing(data):
    assert np.max(data["init"]["saturated"]["max"]) < 0.01
    assert np.min(data["big"]["saturated"]["min"]) > 0.03
    assert min(data["big"]["signal_log10_first_over_last"]) > 0  # saturated units, yet the gradient grows


def test_health_sees_the_collapsed_forward_signal_and_level_weight_gradients(data):
    d = data["diagnostics"]
    for seed in range(3):
        assert d["forward_init"][seed] < -1.5  # layer 10's output far smaller than layer 1's
        assert abs(d["gradient_init"][seed]) < 0.5  # the weight gradients level
        assert d["backward_init"][seed] < -1.5  # the back-propagated signal vanishing
    record = data["health"]["0"]
    assert record["steps"] == [0, 25, 50]
    assert len(record["layers"]) == 11  # ten hidden layers and the head


def test_histograms_count_every_entry(data):
    for moment in ("init", "trained"):
        for kind in ("activation", "signal", "weight"):
            for layer in ("1", "5", "10"):
                h = data["histograms"][moment][kind][layer]
                assert sum(h["counts"]) + h["zeros"] == h["total"]
                assert len(h["median_log10"]) == 3  # one per seed
