"""The numbers behind the 'What it does to training' page, on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite.nets import DeepMLP
from vgsite.probes import TrainingRecorder, norm
from vgsite.registry import load
from vgsite.train import digits, fit

EXPERIMENTS = load()


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    result = EXPERIMENTS["training/depth-runs"](depths=(2, 3, 6), relu_depths=(6,), ratio_depths=(6,), steps=400)
    return result.data["nets"]


def test_first_layer_of_a_deep_sigmoid_net_moves_orders_of_magnitude_less_than_the_last(runs):
    sig = runs["sigmoid"]["6"]
    assert sig["first_over_last_early"] < 0.1
    assert sig["first_over_last_end"] < 0.1  # still stuck: the gap has not closed
    # each layer up gains a factor 4*sqrt(3): 0.84 decades a layer (layers 2..6; layer 1 sees the raw pixels)
    assert sig["decades_per_layer_at_start"] == pytest.approx(-math.log10(math.sqrt(1 / 3) / 4), rel=0.25)


def test_with_a_remedy_all_layers_move_at_a_similar_rate(runs):
    for label in ("ReLU + He init", "sigmoid + batch norm"):
        assert 0.1 < runs[label]["6"]["first_over_last_early"] < 10, label


def test_shallow_sigmoid_learns_while_deep_sigmoid_sits_at_the_guessing_loss(runs):
    shallow, deep = runs["sigmoid"]["2"], runs["sigmoid"]["6"]
    assert shallow["final_train_loss"] < 0.5
    assert deep["final_train_loss"] == pytest.approx(math.log(10), abs=0.05)
    assert deep["escape_step"] is None and shallow["escape_step"] is not None
    assert runs["ReLU + He init"]["6"]["final_train_loss"] < 0.5


def test_the_plateau_lasts_longer_in_a_deeper_sigmoid_net(runs):
    assert runs["sigmoid"]["3"]["escape_step"] > runs["sigmoid"]["2"]["escape_step"]


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
