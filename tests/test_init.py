"""The numbers behind the 'Weight scale and initialisation' page, on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite.nets import DeepMLP
from vgsite.registry import load
from vgsite.theory import forward_variance
from vgsite.topics.init import first_to_last, matrix_nets, scalar_chain

EXPERIMENTS = load()
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scale():
    return EXPERIMENTS["init/weight-scale"](depth=30, depths=(2, 6, 10, 16, 20)).data


def test_scalar_chain_slope_is_log10_of_the_weight_per_layer(scale):
    for w, entry in scale["scalar"].items():
        expected = math.log10(float(w))
        assert entry["slope_per_layer"] == pytest.approx(expected, rel=0.02, abs=1e-6), w


def test_the_notes_001_power_underflows_float32_where_theory_says():
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    # 0.01^(L-1) rounds to 0 once it is below half the smallest subnormal float32
    first_zero = 1 + math.ceil(math.log10(tiny / 2) / math.log10(0.01))
    assert scalar_chain(0.01, first_zero) == 0
    assert scalar_chain(0.01, first_zero - 1) > 0


def test_matrix_chain_factor_is_scale_relative_to_one_over_sqrt_n_times_the_slope(scale):
    for label, entry in scale["matrix"]["nets"].items():
        if abs(entry["predicted_slope"]) < 1e-9:
            assert abs(entry["slope_per_layer"]) < 0.03, label
        else:
            assert entry["slope_per_layer"] == pytest.approx(entry["predicted_slope"], rel=0.1), label


def test_weights_all_below_one_can_still_explode(scale):
    width = EXPERIMENTS["init/weight-scale"].config["width"]
    label, (net, c, _) = next((k, v) for k, v in matrix_nets(width).items() if k.startswith("linear, U"))
    torch.manual_seed(0)
    model = DeepMLP(4, width, **net)
    assert max(w.abs().max().item() for w in model.weights) < 0.2  # "W < 1" in the notes' sense ...
    assert c == pytest.approx(0.2 * math.sqrt(width / 3))  # ... but the scale that counts is sigma sqrt(n)
    assert scale["matrix"]["nets"][label]["slope_per_layer"] > math.log10(1.5)  # ... and the gradient explodes


def test_smaller_weights_make_vanishing_worse_not_better(scale):
    nets = scale["matrix"]["nets"]
    assert nets["linear, N(0, 0.5²/n)"]["slope_per_layer"] < nets["linear, N(0, 1/n)"]["slope_per_layer"] - 0.2
    assert nets["ReLU, N(0, 1/n)"]["slope_per_layer"] < nets["ReLU, N(0, 2/n) (He)"]["slope_per_layer"] - 0.1


@pytest.fixture(scope="module")
def heatmap():
    return EXPERIMENTS["init/gain-depth"](log2_gains=(-1.0, 1.5, 11), depths=(10, 20, 30), width=48).data


def test_heatmap_critical_gains(heatmap):
    assert 1.2 <= heatmap["nets"]["relu"]["critical_gain_measured"] <= 1.7
    assert 0.9 <= heatmap["nets"]["tanh"]["critical_gain_measured"] <= 1.3


def test_heatmap_below_the_critical_gain_a_smaller_gain_vanishes_more(heatmap):
    gains = np.array(heatmap["gains"])
    for act, entry in heatmap["nets"].items():
        values = np.array(entry["log10_ratio"], dtype=float)
        below = gains < entry["critical_gain_theory"]
        for row in values:
            assert np.all(np.diff(row[below]) > 0), act
            assert row[0] < 0


def test_underflow_and_overflow_are_told_apart():
    assert first_to_last([0.0, 1.0]) == (-math.inf, "underflow")
    assert first_to_last([math.inf, 1.0])[1] == "overflow"
    assert first_to_last([math.nan, math.nan])[1] == "overflow"
    assert first_to_last([1.0, 0.0])[1] == "overflow"
    assert first_to_last([1.0, 10.0]) == (-1.0, "ok")
    data = EXPERIMENTS["init/gain-depth"](log2_gains=(-2.0, 2.0, 3), depths=(100,), width=32,
                                          activations=("relu",)).data["nets"]["relu"]
    assert data["status"][0] == ["underflow", "ok", "overflow"]


@pytest.fixture(scope="module")
def variance():
    return EXPERIMENTS["init/forward-variance"](depth=20, width=256, batch=256).data["nets"]


def test_he_keeps_relu_variance_within_a_factor_two_over_20_layers(variance):
    var = variance["relu"]["kaiming"]["variance"]
    assert max(var) / min(var) < 2


def test_xavier_and_orthogonal_halve_relu_variance_and_the_default_divides_by_six(variance):
    assert variance["relu"]["xavier"]["factor_per_layer"] == pytest.approx(0.5, abs=0.1)
    assert variance["relu"]["orthogonal"]["factor_per_layer"] == pytest.approx(0.5, abs=0.1)
    assert variance["relu"]["default"]["factor_per_layer"] == pytest.approx(1 / 6, rel=0.15)
    assert variance["tanh"]["default"]["factor_per_layer"] == pytest.approx(1 / 3, rel=0.15)


def test_pytorch_default_bias_puts_a_floor_under_relu_variance(variance):
    with_bias = variance["relu"]["default_with_bias"]["variance"]
    assert with_bias[-1] > 1e3 * variance["relu"]["default"]["variance"][-1]
    assert with_bias[-1] == pytest.approx(with_bias[-5], rel=0.5)


def test_mean_field_recursion_for_relu_is_the_closed_form():
    # ReLU: Var(h) = q (1/2 - 1/(2 pi)) with q_{l+1} = s q_l / 2
    s = 2 / 3
    q = s * (s / 2) ** np.arange(6)
    assert forward_variance("relu", s, 6) == pytest.approx(q * (0.5 - 0.5 / np.pi), rel=1e-6)


def test_glorot_bengio_standard_init_shrinks_back_propagated_gradients_xavier_does_not():
    data = EXPERIMENTS["init/glorot-histograms"](width=250, batch=256).data
    standard, xavier = data["inits"]["default"], data["inits"]["xavier"]
    assert np.all(np.diff(standard["std"]) > 0)  # smaller at every step towards the input
    assert standard["std_first_over_last"] < 0.2  # theory near z = 0: (1/3)^2 = 0.11
    assert xavier["std_first_over_last"] > 0.5
    spread = lambda e: max(e["median_log10"]) - min(e["median_log10"])
    assert spread(standard) > 3 * spread(xavier)
    # Glorot & Bengio's other observation: with the standard init the weight gradients stay alike across layers
    assert 0.7 < standard["weight_grad_std_first_over_last"] < 1.4


def test_he_gain_puts_tanh_in_the_chaotic_phase_not_in_saturation(variance):
    he = variance["tanh"]["kaiming"]
    theory_ = he["theory"]
    assert theory_["q_star"] == pytest.approx(0.618, abs=0.005)
    assert theory_["chi1"] == pytest.approx(1.106, abs=0.005) and theory_["chi1"] > 1  # chaotic
    assert he["variance"][-1] == pytest.approx(theory_["variance_h"], rel=0.1)  # the fixed point is reached
    assert he["beyond_3"] < 1e-3  # almost no unit is saturated
    assert variance["tanh"]["xavier"]["theory"]["chi1"] == 1.0  # gain 1: the edge of chaos


def test_tanh_at_he_gain_explodes_over_depth(heatmap):
    gains = np.array(heatmap["gains"])
    he = int(np.argmin(abs(gains - math.sqrt(2))))
    assert np.all(np.array(heatmap["nets"]["tanh"]["log10_ratio"])[:, he] > 0)
