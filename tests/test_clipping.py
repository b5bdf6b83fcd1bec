"""The numbers behind the 'Exploding gradients and clipping' page, on small configurations."""
import math

import pytest
import torch

from vgsite.registry import load
from vgsite.rnns import SequenceModel, adding_problem, train_sequence

EXPERIMENTS = load()


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_the_cliff_is_where_the_start_becomes_the_unstable_fixed_point():
    data = EXPERIMENTS["clipping/cliff"](grid=(40, 30), slice_points=4001).data
    # x_t = w sigmoid(x_(t-1)) + b: the start x0 sits on the boundary between the two basins when it is itself a
    # fixed point, w sigmoid(x0) + b = x0.
    x0, b = 0.5, -2.5
    predicted = (x0 - b) / (1 / (1 + math.exp(-x0)))
    assert data["cliff_w"] == pytest.approx(predicted, abs=2 * data["w_spacing"])
    assert data["max_grad"] > 100 * data["median_grad"]
    assert data["loss_left_of_cliff"] > 5 * data["loss_right_of_cliff"]


def test_clipping_bounds_every_update_of_plain_sgd():
    torch.manual_seed(0)
    model = SequenceModel("rnn", hidden=16)
    with torch.no_grad():
        torch.nn.init.normal_(model.recurrent_weight, std=1.5 / 4)
    params = []
    snapshot = lambda step, m: params.append(torch.cat([p.detach().flatten().clone() for p in m.parameters()]))
    lr, clip = 0.1, 0.5
    history = train_sequence(model, lambda g: adding_problem(32, 30, g), 60, lr=lr, optimizer="sgd", clip=clip,
                             every=5, on_step=snapshot)
    steps = [(b - a).norm().item() for a, b in zip(params, params[1:])]
    assert max(steps) <= lr * clip * (1 + 1e-4)
    assert max(history["grad_norm"]) > clip  # it did have something to clip


def test_without_clipping_the_large_rate_diverges_and_with_it_it_does_not_in_every_seed():
    data = EXPERIMENTS["clipping/training"](steps=60)
    runs = data.data["runs"]
    seeds = EXPERIMENTS["clipping/training"].config["seeds"]  # the page's configuration: at least three seeds
    assert len(seeds) >= 3 and len(runs["lr 0.1, no clipping"]["diverged"]) == len(seeds)
    assert all(runs["lr 0.1, no clipping"]["diverged"])
    assert min(runs["lr 0.1, no clipping"]["max_grad_norm"]) > 1e6  # the page: past a million in every seed
    assert min(runs["lr 0.05, no clipping"]["max_grad_norm"]) > 1e4  # the spike
    for label in ("lr 0.05, clipped at 1.0", "lr 0.1, clipped at 1.0"):
        run = runs[label]
        assert not any(run["diverged"]) and max(run["final_loss"]) < 1, label
        assert max(run["max_grad_norm"]) < 1e3, label  # no spike


def test_clipping_rescales_all_gradients_by_one_factor_and_never_enlarges_them():
    torch.manual_seed(0)
    model = SequenceModel("rnn", hidden=16)
    x, y = adding_problem(32, 30, torch.Generator().manual_seed(1))
    torch.nn.functional.mse_loss(model(x), y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e6).item()  # far above: nothing changes
    assert all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters()))
    torch.nn.utils.clip_grad_norm_(model.parameters(), total / 100)
    for a, p in zip(before, model.parameters()):
        assert torch.allclose(p.grad, a / 100, rtol=1e-4, atol=1e-12)


def test_clipping_leaves_the_vanishing_ratio_and_the_result_as_they_were():
    runs = EXPERIMENTS["clipping/vanishing"](length=20, steps=150, patience=None, clips=(None, 0.05),
                                             test_size=300, seeds=(0, 1)).data["runs"]
    plain, clipped = runs["no clipping"], runs["clipped at 0.05"]
    assert min(clipped["clip_factor"]) < 1 and max(clipped["clip_factor"]) <= 1  # clipping never enlarges
    for far, shown in zip(clipped["log10_far_over_near"], clipped["log10_far_over_near_clipped"]):
        assert shown == pytest.approx(far, abs=1e-9)
    assert max(plain["log10_far_over_near"]) < -3  # it is a vanishing case to begin with
    # no better for the clipping, in any seed
    assert all(c >= p - 0.01 for c, p in zip(clipped["test_mse"], plain["test_mse"]))
    assert len(clipped["shares_shown"]["per_seed"]) == 2
