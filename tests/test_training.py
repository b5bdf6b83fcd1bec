"""The numbers behind the 'What it does to training' page, on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite.nets import DeepMLP
from vgsite.probes import TrainingRecorder, norm
from vgsite.registry import load
from vgsite.train import digits, fit, fit_seeds, fit_stacked

EXPERIMENTS = load()


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    result = EXPERIMENTS["training/depth-runs"](depths=(2, 3, 6), relu_depths=(2, 6), ratio_depths=(6,), steps=400,
                                                seeds=(0, 1, 2))
    return result.data["nets"]


def test_first_layer_of_a_deep_sigmoid_net_moves_orders_of_magnitude_less_than_the_last(runs):
    sig = runs["sigmoid"]["6"]
    assert max(sig["first_over_last_early"]) < 0.01  # two decades and more, in every seed
    assert max(sig["first_over_last_end"]) < 0.01  # still stuck: the gap has not closed
    assert max(sig["first_layer_total"]) < 0.01  # it moves less than a percent in all
    # each layer up gains a factor 4*sqrt(3): 0.84 decades a layer (layers 2..6; layer 1 sees the raw pixels)
    predicted = -math.log10(math.sqrt(1 / 3) / 4)
    assert np.median(sig["decades_per_layer_at_start"]) == pytest.approx(predicted, rel=0.15)
    # layer 1 starts above the prediction (it multiplies the raw pixels, larger than sigmoid outputs)
    assert all(np.asarray(sig["first_layer_start"]) > np.asarray(sig["last_layer_start"]) * 10 ** (-5 * predicted))


def test_with_a_remedy_all_layers_move_at_a_similar_rate(runs):
    for label in ("ReLU + He init", "sigmoid + batch norm"):
        assert all(1 / 3 < r < 3 for r in runs[label]["6"]["first_over_last_early"]), label


def test_shallow_sigmoid_learns_while_deep_sigmoid_sits_at_the_guessing_loss(runs):
    shallow, deep = runs["sigmoid"]["2"], runs["sigmoid"]["6"]
    assert max(shallow["final_train_loss"]) < 0.5
    assert all(abs(x - math.log(10)) < 0.05 for x in deep["final_train_loss"])
    assert all(e is None for e in deep["escape_step"]) and all(e is not None for e in shallow["escape_step"])
    assert max(runs["ReLU + He init"]["6"]["final_train_loss"]) < 0.5
    assert max(runs["ReLU + He init"]["6"]["escape_step"]) <= 100


def test_the_plateau_lasts_longer_in_a_deeper_sigmoid_net_in_every_seed(runs):
    assert max(runs["sigmoid"]["2"]["escape_step"]) < min(runs["sigmoid"]["3"]["escape_step"])


def test_a_deeper_relu_net_ends_with_a_lower_training_loss_in_every_seed(runs):
    assert max(runs["ReLU + He init"]["6"]["final_train_loss"]) < min(runs["ReLU + He init"]["2"]["final_train_loss"])


def test_seeds_trained_together_are_the_runs_trained_one_by_one():
    torch.set_num_threads(1)
    data = digits()
    for net in (dict(activation="sigmoid"), dict(activation="prelu", init="kaiming"),
                dict(activation="tanh", norm="batch")):
        build = lambda: DeepMLP(3, 16, d_in=64, **net)
        alone = fit_seeds(build, data, (0, 1), 30, lr=0.5, every=10)
        together = fit_stacked(build, data, (0, 1), 30, lr=0.5, every=10)
        for (m1, h1), (m2, h2) in zip(alone, together):
            np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
            np.testing.assert_allclose(h1["test_acc"], h2["test_acc"], atol=1e-6)
            for p1, p2 in zip(m1.parameters(), m2.parameters()):
                np.testing.assert_allclose(p1.detach(), p2.detach(), rtol=1e-4, atol=1e-6)


def test_recorder_measures_the_sgd_update_exactly():
    torch.manual_seed(0)
    model = DeepMLP(3, 16, activation="tanh", d_in=64)
    x, y, xt, yt = digits()
    lr = 0.1
    rec = TrainingRecorder(probe=(x[:32], y[:32]), probe_every=2)
    fit(model, (x, y, xt, yt), 6, lr=lr, on_step=rec)
    # without momentum an SGD update is -lr * grad, so ||dW|| / ||W|| = lr ||grad|| / ||W before||
    assert rec.update_steps == list(range(6))
    torch.manual_seed(0)
    again = DeepMLP(3, 16, activation="tanh", d_in=64)
    expected = []
    fit(again, (x, y, xt, yt), 6, lr=lr,
        on_step=lambda s, m: expected.append([lr * norm(w.grad) / norm(w) for w in m.weights]))
    # the probe passes in between did not change the training: same updates with and without them
    np.testing.assert_allclose(rec.update_ratio, expected[:6], rtol=1e-3)
    assert rec.flow_steps == [0, 2, 4, 6]
