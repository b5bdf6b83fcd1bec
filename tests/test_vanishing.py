"""The numbers behind the 'Why gradients vanish' page, on small configurations."""
import math

import pytest
import torch

from vgsite.probes import max_derivative, norm, probe_at_init, log_ratio
from vgsite.registry import load

EXPERIMENTS = load()


def test_sigmoid_vanishes_and_relu_with_he_init_does_not_at_depth_20():
    data = EXPERIMENTS["vanishing/gradient-norms"](depth=20).data["nets"]
    assert data["sigmoid, default init"]["log10_ratio_first_last"] < -3
    assert abs(data["ReLU, He init"]["log10_ratio_first_last"]) < 1


def test_sigmoid_gradient_stays_under_its_bound():
    data = EXPERIMENTS["vanishing/gradient-norms"](depth=12).data["nets"]["sigmoid, default init"]
    assert all(s <= b * (1 + 1e-5) for s, b in zip(data["signal"], data["bound"]))


def test_decay_per_layer_matches_theory_within_ten_percent():
    result = EXPERIMENTS["vanishing/depth-sweep"](depths=(5, 10, 20), seeds=(0, 1)).data["nets"]
    for label, net in result.items():
        if label == "ReLU, He init":
            assert abs(net["slope_per_layer"]) < 0.03
        else:
            assert net["slope_per_layer"] == pytest.approx(net["predicted_slope_per_layer"], rel=0.1), label


def test_page_claims_about_the_slopes():
    assert max_derivative("sigmoid") == pytest.approx(0.25, abs=1e-4)
    assert max_derivative("tanh") == pytest.approx(1.0, abs=1e-4)
    data = EXPERIMENTS["vanishing/activation-derivatives"]().data
    assert data["sigmoid"]["derivative_at_3"] < 0.05


def test_norms_do_not_underflow_where_the_gradient_does_not():
    tiny = torch.full((64, 64), 1e-25)
    assert (tiny * tiny).sum().item() == 0  # the float32 trap the page warns about
    assert norm(tiny) == pytest.approx(64e-25, rel=1e-5)


def test_sigmoid_gradient_underflows_to_exactly_zero_at_depth_60():
    torch.set_num_threads(1)
    flow = probe_at_init(60, 64, activation="sigmoid")
    assert flow["signal"][0] == 0 and flow["signal"][-1] > 0
    assert log_ratio(flow["signal"]) == -math.inf


def test_unknown_settings_are_refused():
    with pytest.raises(TypeError, match="no setting"):
        EXPERIMENTS["vanishing/gradient-norms"](depht=3)
