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


def test_a_small_output_means_a_small_slope_for_sigmoid_and_relu_not_for_tanh():
    data = EXPERIMENTS["vanishing/activation-derivatives"](points=61).data
    for h, slope in data["sigmoid"]["slope_at_output"].items():
        assert slope == pytest.approx(float(h) * (1 - float(h))) and slope <= float(h)  # sigma' = h(1 - h) <= h
    for h, slope in data["tanh"]["slope_at_output"].items():
        assert slope == pytest.approx(1 - float(h) ** 2) and slope > 0.9  # near its largest slope
    assert max_derivative("relu") == 1.0
    assert float(torch.relu(torch.tensor(-1.0))) == 0  # an off ReLU unit: output 0, slope 0


def test_float32_squares_go_subnormal_below_1e_19_and_vanish_below_4e_23():
    smallest_normal = torch.finfo(torch.float32).tiny
    assert (torch.tensor(1e-19) ** 2).item() < smallest_normal < (torch.tensor(1.2e-19) ** 2).item()
    assert (torch.tensor(2.5e-23) ** 2).item() == 0 and (torch.tensor(3e-23) ** 2).item() > 0
