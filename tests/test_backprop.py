"""The numbers behind the 'Backpropagation and the chain rule' page, on small configurations."""
import pytest
import torch
import torch.nn.functional as F

from vgsite.nets import DeepMLP
from vgsite.registry import load
from vgsite.topics.backprop import manual_gradients, relative_error

EXPERIMENTS = load()
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def manual():
    return EXPERIMENTS["backprop/manual-backward"](depth=3, width=64, batch=32).data


def test_hand_written_backward_matches_autograd_to_rounding(manual):
    for act, entry in manual["nets"].items():
        for kind in ("weight_rel_error", "bias_rel_error"):
            assert max(entry["float32"][kind]) < 1e-5, act  # float32: eps 1.2e-7, a few roundings
            assert max(entry["float64"][kind]) < 1e-12, act  # float64: eps 2.2e-16
        assert entry["float64"]["loss_abs_error"] < 1e-12


def test_the_notes_slope_at_the_previous_activation_is_wrong(manual):
    for act, entry in manual["nets"].items():
        hidden = entry["slip"]["weight_rel_error"][:-1]
        assert min(hidden) > 1e-2, act  # not rounding: a different number
        assert entry["slip"]["weight_rel_error"][-1] < 1e-12  # the head's gradient does not involve any g'


def test_manual_gradients_work_when_the_widths_differ():
    torch.manual_seed(1)
    model = DeepMLP(3, 16, activation="tanh", d_in=7).double()
    x, y = torch.randn(5, 7, dtype=torch.float64), torch.tensor([0, 3, 9, 2, 2])
    F.cross_entropy(model(x), y).backward()
    grads, _ = manual_gradients(model, x, y)
    assert grads[0][0].shape == (16, 7)
    assert relative_error(grads[0][0], model.blocks[0].linear.weight.grad) < 1e-12


@pytest.fixture(scope="module")
def jacobians():
    return EXPERIMENTS["backprop/jacobian-product"](depth=15, examples=8).data["nets"]


def test_gradient_below_jacobian_norm_below_product_of_norms(jacobians):
    for act, entry in jacobians.items():
        assert entry["bound_holds_every_example"], act
        assert all(g <= m * (1 + 1e-9) <= b * (1 + 1e-9) ** 2
                   for g, m, b in zip(entry["gradient_ratio"], entry["measured_jacobian"], entry["bound"]))


def test_gradient_factor_matches_mean_field_theory(jacobians):
    for act, entry in jacobians.items():
        assert entry["mean_factor_gradient"] == pytest.approx(entry["predicted_factor"], rel=0.1), act


def test_tanh_bound_grows_while_the_gradient_vanishes(jacobians):
    tanh = jacobians["tanh"]
    assert tanh["mean_factor_bound"] > 1 > tanh["mean_factor_gradient"]


def test_each_layer_norm_is_about_twice_the_typical_stretch(jacobians):
    # A square random matrix's largest singular value is about 2 sigma sqrt(n); a typical vector is stretched
    # by sigma sqrt(n) (Marchenko-Pastur), so the bound loses about a factor 2 per layer.
    for act, entry in jacobians.items():
        assert 1.6 < entry["mean_factor_bound"] / entry["mean_factor_gradient"] < 2.2, act


def test_the_slip_is_worst_for_sigmoid_near_the_input_and_about_the_gradients_size_for_relu(manual):
    sigmoid = manual["nets"]["sigmoid"]["slip"]["weight_rel_error"][:-1]
    assert max(sigmoid) == sigmoid[0] and sigmoid[0] > 1  # off by more than the gradient itself
    relu = manual["nets"]["relu"]["slip"]["weight_rel_error"][:-1]
    assert all(0.5 < e < 2 for e in relu)


def test_rounding_is_of_the_order_of_machine_epsilon(manual):
    assert manual["worst_float32"] < 20 * manual["machine_eps"]["float32"]
    assert manual["worst_float64"] < 20 * manual["machine_eps"]["float64"]
