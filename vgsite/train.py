"""The small training loop and the data sets every topic trains on. Nothing is downloaded."""
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@lru_cache(maxsize=None)
def digits(test_fraction=0.25, seed=0):
    """scikit-learn's bundled 8x8 digits (1797 images), standardised; a fixed train/test split.

    Returns (x_train, y_train, x_test, y_test) with x of shape (n, 64).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return t(x[train]), t(data.target[train]), t(x[test]), t(data.target[test])


def accuracy(model, x, y) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was_training)
    return acc


def dataset_loss(model, x, y) -> float:
    """Mean cross-entropy over a whole data set (eval mode, no gradients): a final loss without minibatch noise."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        value = F.cross_entropy(model(x), y).item()
    model.train(was_training)
    return value


def fit(model, data, steps, lr=0.1, batch_size=64, optimizer="sgd", momentum=0.0, clip=None,
        every=10, on_step=None, seed=0):
    """Minibatch training with cross-entropy; returns the history sampled every `every` steps.

    on_step(step, model) runs after each backward pass, before the update, so it sees the gradients.
    clip is a max global gradient norm (torch.nn.utils.clip_grad_norm_).
    """
    x, y, x_test, y_test = data
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=lr, momentum=momentum) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr))
    history = {"step": [], "loss": [], "test_acc": [], "grad_norm": []}
    for step in range(steps + 1):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if on_step:
            on_step(step, model)
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
        if step % every == 0 or step == steps:
            history["step"].append(step)
            history["loss"].append(loss.item())
            history["grad_norm"].append(norm.item())
            history["test_acc"].append(accuracy(model, x_test, y_test))
        if step < steps:
            opt.step()
    return history


def fit_seeds(build, data, seeds, steps, hooks=None, **fit_kw):
    """Train one model per seed, each with its own initialisation and batches; returns [(model, history)].

    A claim about trained networks is only as good as its spread: train at least 3 seeds and quote the median
    and the range (across_seeds). hooks(seed) may return the on_step hook of that seed's run.
    """
    runs = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = build()
        on_step = hooks(seed) if hooks else None
        runs.append((model, fit(model, data, steps, seed=seed, on_step=on_step, **fit_kw)))
    return runs


def across_seeds(values) -> dict:
    """Median, min and max over the first axis (the seeds), with every seed's value kept."""
    values = np.asarray(values, dtype=float)
    return {"median": np.median(values, axis=0), "min": values.min(axis=0), "max": values.max(axis=0),
            "per_seed": values}
