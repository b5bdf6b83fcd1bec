"""Case study, image recognition: a deep little CNN on 8x8 digits, plain or residual, with or without batch norm."""
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from vgsite.nets import ConvNet
from vgsite.plots import figure, finish, log_line
from vgsite.probes import gradient_flow, log_ratio
from vgsite.registry import Plot, Result, experiment
from vgsite.train import digits, fit

VARIANTS = {  # label: ConvNet settings (ReLU, PyTorch's default initialisation throughout)
    "plain": dict(norm=None, residual=False),
    "residual": dict(norm=None, residual=True),
    "plain + BN": dict(norm="batch", residual=False),
    "residual + BN": dict(norm="batch", residual=True),
}
STYLES = {"plain": dict(color="C0", ls=":"), "residual": dict(color="C1", ls=":"),
          "plain + BN": dict(color="C0", ls="-"), "residual + BN": dict(color="C1", ls="-")}


def _net(cfg, label):
    torch.manual_seed(cfg.seed)
    return ConvNet(cfg.depth, cfg.channels, activation="relu", **VARIANTS[label])


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
    ax.invert_xaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    finish(ax, "conv layer l (the output is on the left, the input on the right)",
           "‖∂L/∂h_l‖, back-propagated gradient",
           f"{cfg.depth} conv layers of {cfg.channels} channels, ReLU, default init, at initialisation",
           loc="lower left")
    r = {k: v["log10_ratio_first_last"] for k, v in data["nets"].items()}
    return Result(data, [Plot(
        "gradient-flow-at-init", fig,
        alt=f"Log-scale gradient norm at each of {cfg.depth} convolutional layers, output on the left. The plain "
            f"network's gradient falls by {-r['plain']:.1f} decades toward the input; the residual one's "
            f"changes by {r['residual']:+.1f}, the plain one with batch norm by {r['plain + BN']:+.1f} and the "
            f"residual one with batch norm by {r['residual + BN']:+.1f} decades.",
        caption=f"One batch of {cfg.batch} training digits (1×8×8 images), cross-entropy loss, nothing trained. "
                "3×3 convolutions with zero padding keep the 8×8 size; global average pooling and a linear "
                "layer make the 10 class scores. Dotted: no normalisation; solid: batch norm after every "
                "convolution.")])


def _train(cfg, labels, title):
    data_set = digits()
    fig, (left, right) = figure(ncols=2, height=3.6)
    data = {"runs": {}}
    for label in labels:
        model = _net(cfg, label)
        hist = fit(model, data_set, cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, every=cfg.every,
                   seed=cfg.seed)
        color = STYLES[label]["color"]
        left.plot(hist["step"], hist["loss"], label=label, color=color)
        right.plot(hist["step"], hist["test_acc"], label=label, color=color)
        tail = max(1, len(hist["loss"]) // 5)
        data["runs"][label] = {**hist, "final_test_acc": hist["test_acc"][-1],
                               "best_test_acc": max(hist["test_acc"]),
                               "mean_loss_last_fifth": float(np.mean(hist["loss"][-tail:]))}
    left.set_yscale("log")
    left.set_ylim(*cfg.loss_range)
    right.axhline(0.1, color="0.5", ls=":", lw=1)
    right.annotate("chance", (cfg.steps, 0.1), xytext=(0, 3), textcoords="offset points", ha="right", color="0.4")
    right.set_ylim(0, 1)
    finish(left, "training step", "training loss (one batch, log scale)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Accuracy on held-out digits", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=len(labels))
    fig.suptitle(title)
    return fig, data


_TRAIN = dict(depth=20, channels=12, steps=300, lr=0.1, batch_size=64, every=10, loss_range=(0.03, 20.0), seed=0)


def _caption(cfg):
    return (f"{cfg.depth} 3×3 conv layers of {cfg.channels} channels, ReLU, PyTorch's default initialisation, plain "
            f"SGD with learning rate {cfg.lr}, batches of {cfg.batch_size} digits, the same seed and batches for "
            f"both. Loss and accuracy every {cfg.every} steps; accuracy on the 449 held-out digits.")


@experiment(**_TRAIN)
def training_without_norm(cfg):
    fig, data = _train(cfg, ("plain", "residual"), "Without normalisation")
    runs = data["runs"]
    return Result(data, [Plot(
        "training-without-norm", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} steps. The plain {cfg.depth}-layer CNN without "
            f"normalisation does not learn: its accuracy stays at {runs['plain']['final_test_acc']:.0%}. The residual "
            f"one starts from a much larger loss and ends at {runs['residual']['final_test_acc']:.0%}.",
        caption=_caption(cfg))])


@experiment(**_TRAIN)
def training_with_norm(cfg):
    fig, data = _train(cfg, ("plain + BN", "residual + BN"), "With batch norm after every convolution")
    runs = data["runs"]
    return Result(data, [Plot(
        "training-with-norm", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} steps, both with batch norm. The plain "
            f"{cfg.depth}-layer CNN reaches {runs['plain + BN']['final_test_acc']:.0%} test accuracy, the residual "
            f"one {runs['residual + BN']['final_test_acc']:.0%}.",
        caption=_caption(cfg))])
