"""Case study, image recognition: a deep little CNN on 8x8 digits, plain or residual, with or without batch norm."""
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from vgsite.nets import ConvNet
from vgsite.plots import GRADIENT_LABEL, figure, finish, layer_axis, listed, log_line, median_band
from vgsite.probes import gradient_flow, log_ratio
from vgsite.registry import Plot, Result, experiment
from vgsite.train import across_seeds, digits, fit_seeds

VARIANTS = {  # label: ConvNet settings (ReLU, PyTorch's default initialisation throughout)
    "plain": dict(norm=None, residual=False),
    "residual": dict(norm=None, residual=True),
    "plain + BN": dict(norm="batch", residual=False),
    "residual + BN": dict(norm="batch", residual=True),
}
STYLES = {"plain": dict(color="C0", ls=":"), "residual": dict(color="C1", ls=":"),
          "plain + BN": dict(color="C0", ls="-"), "residual + BN": dict(color="C1", ls="-")}


def _build(cfg, label):
    return lambda: ConvNet(cfg.depth, cfg.channels, activation="relu", **VARIANTS[label])


def _net(cfg, label):
    torch.manual_seed(cfg.seed)
    return _build(cfg, label)()


@experiment(depth=20, channels=12, batch=64, seed=0)
def gradient_flow_at_init(cfg):
    x, y = digits()[0][:cfg.batch], digits()[1][:cfg.batch]
    fig, ax = figure(height=4.0)
    layers = np.arange(1, cfg.depth + 1)
    data = {"layers": layers, "nets": {}}
    for label in VARIANTS:
        flow = gradient_flow(_net(cfg, label), x, y)
        log_line(ax, layers, flow["signal"], label=label, marker="o" if "BN" in label else None, ms=3,
                 **STYLES[label])
        data["nets"][label] = {"signal": flow["signal"], "weight": flow["weight"],
                               "log10_ratio_first_last": log_ratio(flow["signal"]),
                               "decades_per_layer": log_ratio(flow["signal"]) / (cfg.depth - 1),
                               "relu_off": flow["saturated"], "loss": flow["loss"]}
    layer_axis(ax, layers)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    finish(ax, "conv layer ℓ (1 = next to the input)", GRADIENT_LABEL,
           f"{cfg.depth} conv layers of {cfg.channels} channels, ReLU, default init, at initialisation",
           loc="lower right")
    r = {k: v["log10_ratio_first_last"] for k, v in data["nets"].items()}
    return Result(data, [Plot(
        "gradient-flow-at-init", fig,
        alt=f"Log-scale gradient norm at each of {cfg.depth} convolutional layers, input on the left. The plain "
            f"network's gradient falls by {-r['plain']:.1f} decades toward the input; the residual one's "
            f"changes by {r['residual']:+.1f}, the plain one with batch norm by {r['plain + BN']:+.1f} and the "
            f"residual one with batch norm by {r['residual + BN']:+.1f} decades.",
        caption=f"One batch of {cfg.batch} training digits (1×8×8 images), cross-entropy loss, nothing trained. "
                "3×3 convolutions with zero padding keep the 8×8 size; global average pooling and a linear "
                "layer make the 10 class scores. Dotted: no normalisation; solid: batch norm after every "
                "convolution.")])


def _train(cfg, labels, title):
    """Each variant trained once per seed (its initialisation and its batches; the variants share a seed's
    batches); the figure shows the median over the seeds and the min–max band, the data every seed."""
    data_set = digits()
    fig, (left, right) = figure(ncols=2, height=3.6)
    data = {"seeds": list(cfg.seeds), "runs": {}, "summary": {}}
    for label in labels:
        hists = [h for _, h in fit_seeds(_build(cfg, label), data_set, cfg.seeds, cfg.steps, lr=cfg.lr,
                                         batch_size=cfg.batch_size, every=cfg.every)]
        steps = hists[0]["step"]
        loss = np.array([h["loss"] for h in hists])
        acc = np.array([h["test_acc"] for h in hists])
        color = STYLES[label]["color"]
        finite = np.isfinite(loss).all(axis=1)  # a run whose loss turned NaN or inf diverged
        shown = f"{label} ({(~finite).sum()} of {len(finite)} seeds diverged, not drawn)" if not finite.all() else label
        median_band(left, steps, loss[finite] if finite.any() else loss, label=shown, log=True, color=color)
        median_band(right, steps, acc, label=shown, color=color)
        tail = max(1, loss.shape[1] // 5)
        entry = {"step": steps, "loss": loss, "test_acc": acc, "final_test_acc": acc[:, -1],
                 "best_test_acc": acc.max(axis=1), "mean_test_acc_last_fifth": acc[:, -tail:].mean(axis=1),
                 "mean_loss_last_fifth": loss[:, -tail:].mean(axis=1), "last_loss": loss[:, -1],
                 "initial_loss": loss[:, 0], "loss_at_first_record": loss[:, 1],
                 "diverged": [int(not f) for f in finite],
                 "finite_loss_at_first_record": loss[finite, 1],  # the runs that did not diverge
                 "largest_accuracy_drop": (acc[:, :-1] - acc[:, 1:]).max(axis=1)}
        data["runs"][label] = entry
        data["summary"][label] = {k: {s: v for s, v in across_seeds(entry[k]).items() if s != "per_seed"}
                                  for k in ("final_test_acc", "best_test_acc", "mean_test_acc_last_fifth",
                                            "mean_loss_last_fifth")}
    left.set_ylim(*cfg.loss_range)
    right.axhline(0.1, color="0.5", ls=":", lw=1)
    right.annotate("chance", (cfg.steps, 0.1), xytext=(0, 3), textcoords="offset points", ha="right", color="0.4")
    right.set_ylim(0, 1)
    finish(left, "training step", "training loss (one batch, log scale)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Accuracy on held-out digits", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=len(labels))
    fig.suptitle(title)
    return fig, data


_TRAIN = dict(depth=20, channels=12, steps=300, lr=0.1, batch_size=64, every=20, loss_range=(0.01, 20.0),
              seeds=(0, 1, 2))


def _caption(cfg):
    n = len(cfg.seeds)
    return (f"{cfg.depth} 3×3 conv layers of {cfg.channels} channels, ReLU, PyTorch's default initialisation, plain "
            f"SGD with learning rate {cfg.lr}, batches of {cfg.batch_size} digits; each network trained with {n} "
            f"seeds ({listed(cfg.seeds)}: the initialisation and the batches; both networks see a "
            f"seed's batches). Line: the median over the seeds; band: the lowest to the highest seed. Loss of the "
            f"current batch and accuracy on the 449 held-out digits, every {cfg.every} steps.")


def _acc(runs, label, key="final_test_acc"):
    a = runs[label][key]
    return f"{np.median(a):.0%} (seeds: {min(a):.0%} to {max(a):.0%})"


@experiment(**_TRAIN)
def training_without_norm(cfg):
    fig, data = _train(cfg, ("plain", "residual"), "Without normalisation")
    runs = data["runs"]
    return Result(data, [Plot(
        "training-without-norm", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} steps, median of {len(cfg.seeds)} seeds with their "
            f"range. The plain {cfg.depth}-layer CNN without normalisation does not learn: its final test accuracy "
            f"is {_acc(runs, 'plain')}. The residual one starts from a much larger loss and ends at "
            f"{_acc(runs, 'residual')}.",
        caption=_caption(cfg))])


@experiment(**_TRAIN)
def training_with_norm(cfg):
    fig, data = _train(cfg, ("plain + BN", "residual + BN"), "With batch norm after every convolution")
    runs = data["runs"]
    return Result(data, [Plot(
        "training-with-norm", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} steps, both with batch norm, median of "
            f"{len(cfg.seeds)} seeds with their range. The plain {cfg.depth}-layer CNN ends at "
            f"{_acc(runs, 'plain + BN')} test accuracy, the residual one at {_acc(runs, 'residual + BN')}.",
        caption=_caption(cfg))])
