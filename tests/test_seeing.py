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
    return EXPERIMENTS["seeing/deep-tanh"](depth=10, steps=50, probe_every=25, probe_batch=128,
                                           hist_layers=(1, 5, 10)).data


def test_signal_vanishes_at_the_predicted_rate_while_weight_gradients_stay_level(data):
    init = data["at initialisation"]
    per_layer = math.log10(math.sqrt(1 / 3))  # Glorot & Bengio's standard init in tanh's linear regime
    assert init["signal_decades_per_layer"] == pytest.approx(-per_layer, rel=0.2)  # grows toward the output
    assert init["signal_log10_first_over_last"] < 9 * per_layer * 0.8  # more than 1.7 decades over 10 layers
    assert abs(init["weight_log10_first_over_last"]) < 0.5  # level: what a weight-gradient plot alone shows
    # the compensation: the inputs h_{l-1} shrink going forward at the same rate
    assert init["input_decades_per_layer"] == pytest.approx(per_layer, rel=0.2)


def test_vanishing_here_is_not_saturation_and_saturation_is_not_vanishing(data):
    assert max(data["at initialisation"]["saturated"]) < 0.01
    big = [k for k in data if k.startswith("weights ×")][0]
    assert min(data[big]["saturated"]) > 0.03
    assert data[big]["signal_log10_first_over_last"] > 0  # saturated units, yet the gradient grows toward the input


def test_histograms_count_every_entry_and_heatmap_has_one_row_per_probe(data):
    for moment in ("at initialisation", "after 50 steps"):
        for kind in ("activation", "signal", "weight"):
            for layer in ("1", "5", "10"):
                h = data["histograms"][moment][kind][layer]
                assert sum(h["counts"]) + h["zeros"] == h["total"]
    heat = data["heatmap"]
    assert heat["step"] == [0, 25, 50]
    assert np.array(heat["signal"]).shape == (3, 10)
