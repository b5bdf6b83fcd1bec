"""The headline figure's claims, on fewer depths and seeds."""
import numpy as np
import pytest

from vgsite.registry import load


@pytest.fixture(scope="module")
def nets():
    return load()["overview/headline"](depths=(5, 20), seeds=(0, 1)).data["nets"]


def test_each_network_follows_its_per_layer_factor(nets):
    for label, net in nets.items():
        if "predicted" in net:
            measured, predicted = np.array(net["log10_ratio"]), np.array(net["predicted"])
            assert measured == pytest.approx(predicted, abs=0.5 + 0.1 * abs(predicted).max()), label


def test_vanishing_flat_and_exploding_are_where_the_page_says(nets):
    at_20 = {label: net["log10_ratio"][1] for label, net in nets.items()}
    assert at_20["sigmoid, default init"] < -10
    assert at_20["ReLU, weights N(0, 1/n)"] < -2
    assert abs(at_20["ReLU, He init N(0, 2/n)"]) < 0.5
    assert at_20["ReLU, weights N(0, 4/n)"] > 2
    assert abs(at_20["sigmoid + batch norm + residual"]) < 1


def test_the_headline_slopes_are_the_theory_factors():
    from vgsite.theory import per_layer_factor
    nets = load()["overview/headline"](depths=(5, 10, 20), seeds=(0, 1)).data["nets"]
    assert nets["ReLU, He init N(0, 2/n)"]["slope_per_layer"] == pytest.approx(0, abs=0.03)
    assert nets["ReLU, weights N(0, 4/n)"]["slope_per_layer"] == pytest.approx(
        np.log10(per_layer_factor("relu", 4.0)), abs=0.02)
