"""What vanishing gradients do to training: early layers that barely move, loss plateaus that grow with depth."""
import numpy as np
import torch
from matplotlib import colormaps

from vgsite.nets import DeepMLP
from vgsite.plots import figure, finish
from vgsite.probes import TrainingRecorder
from vgsite.registry import Plot, Result, experiment
from vgsite.train import dataset_loss, digits, fit

SIGMOID = dict(activation="sigmoid", init="default")
RELU_HE = dict(activation="relu", init="kaiming")
SIGMOID_BN = dict(activation="sigmoid", init="default", norm="batch")
CHANCE_LOSS = float(np.log(10))  # cross-entropy of a uniform guess over 10 classes
# Per-layer factor of the back-propagated gradient in a sigmoid net at PyTorch's default init (see vanishing.py).
SIGMOID_FACTOR = np.sqrt(1 / 3) / 4


def smooth(values, k):
    """Trailing moving average over k samples (the first ones average what there is)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    return np.array([(c[i + 1] - c[max(0, i + 1 - k)]) / min(i + 1, k) for i in range(len(v))])

def log_smooth(values, k):
    """Geometric moving average over k samples: for ratios that span decades."""
    return 10 ** smooth(np.log10(np.asarray(values, dtype=float)), k)


def train_one(cfg, depth, net, lr, record):
    torch.manual_seed(cfg.seed)
    data = digits()
    model = DeepMLP(depth, cfg.width, d_in=64, **net)
    recorder = TrainingRecorder(every=cfg.ratio_every) if record else None
    history = fit(model, data, cfg.steps, lr=lr, every=cfg.every, on_step=recorder, seed=cfg.seed)
    smoothed = smooth(history["loss"], cfg.smooth)
    below = np.flatnonzero(smoothed < cfg.escape_loss)
    run = {"depth": depth, "lr": lr, "step": history["step"], "loss": history["loss"],
           "test_acc": history["test_acc"], "final_train_loss": dataset_loss(model, data[0], data[1]),
           "final_test_acc": history["test_acc"][-1],
           "escape_step": int(history["step"][below[0]]) if len(below) else None}
    if record:
        ratio = np.array(recorder.update_ratio)  # (updates, layers)
        run["update_steps"] = recorder.update_steps
        run["update_ratio"] = ratio
        first_window = ratio[: max(1, len(ratio) // 10)]
        run["first_over_last_early"] = float(np.median(first_window[:, 0] / first_window[:, -1]))
        run["first_over_last_end"] = float(np.median(ratio[-max(1, len(ratio) // 10):, 0] /
                                                     ratio[-max(1, len(ratio) // 10):, -1]))
        # decades lost per layer at the first update, layers 2..L (layer 1 sees the raw inputs, not sigmoid outputs)
        if depth > 2:
            run["decades_per_layer_at_start"] = float(np.polyfit(np.arange(2, depth + 1), np.log10(ratio[0, 1:]), 1)[0])
    return run


@experiment(depths=(1, 2, 3, 4, 5, 6), relu_depths=(2, 6, 8), width=32, steps=2000, lr_sigmoid=1.0,
            lr_relu=0.1, remedy_depth=6, ratio_depths=(4, 6), every=20, ratio_every=10, smooth=3, escape_loss=2.0,
            seed=0)
def depth_runs(cfg):
    runs = {"sigmoid": {}, "ReLU + He init": {}, "sigmoid + batch norm": {}}
    for d in cfg.depths:
        runs["sigmoid"][d] = train_one(cfg, d, SIGMOID, cfg.lr_sigmoid, d in cfg.ratio_depths)
    for d in sorted(set(cfg.relu_depths) | {cfg.remedy_depth}):
        runs["ReLU + He init"][d] = train_one(cfg, d, RELU_HE, cfg.lr_relu, d == cfg.remedy_depth)
    runs["sigmoid + batch norm"][cfg.remedy_depth] = train_one(cfg, cfg.remedy_depth, SIGMOID_BN, cfg.lr_sigmoid,
                                                               True)
    data = {"chance_loss": CHANCE_LOSS, "predicted_decades_per_layer": float(-np.log10(SIGMOID_FACTOR)),
            "nets": {label: {str(d): run for d, run in by_depth.items()} for label, by_depth in runs.items()}}
    plots = [loss_curves(cfg, runs), update_ratios(cfg, runs), depth_sweep(cfg, runs)]
    return Result(data, plots)


def depth_colour(d, depths):
    return colormaps["viridis"](0.85 * (list(depths).index(d)) / max(1, len(depths) - 1))


def loss_curves(cfg, runs):
    fig, (left, right) = figure(ncols=2, height=4.0, width=8.4)
    for d, run in runs["sigmoid"].items():
        colour = depth_colour(d, cfg.depths)
        left.plot(run["step"], smooth(run["loss"], cfg.smooth), color=colour, lw=1.4, label=f"sigmoid, depth {d}")
        right.plot(run["step"], smooth(run["test_acc"], cfg.smooth), color=colour, lw=1.4)
    for label, style in (("ReLU + He init", dict(color="#D55E00", ls="--")),
                         ("sigmoid + batch norm", dict(color="#CC79A7", ls="-."))):
        run = runs[label][cfg.remedy_depth]
        left.plot(run["step"], smooth(run["loss"], cfg.smooth), lw=2, label=f"{label}, depth {cfg.remedy_depth}",
                  **style)
        right.plot(run["step"], smooth(run["test_acc"], cfg.smooth), lw=2, **style)
    left.axhline(CHANCE_LOSS, color="0.3", ls=":", lw=1)
    left.annotate("ln 10: guessing", (cfg.steps, CHANCE_LOSS), xytext=(0, 3), textcoords="offset points",
                  ha="right", va="bottom", color="0.3", fontsize=8.5)
    right.axhline(0.1, color="0.3", ls=":", lw=1)
    right.annotate("chance", (cfg.steps, 0.1), xytext=(0, 3), textcoords="offset points", ha="right",
                   va="bottom", color="0.3", fontsize=8.5)
    left.set_ylim(0, 2.7)
    right.set_ylim(0, 1)
    finish(left, "training step", "training loss (cross-entropy)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Test accuracy", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside right center", fontsize=8)
    sig = runs["sigmoid"]
    stuck = [d for d, r in sig.items() if r["escape_step"] is None]
    escaped = {d: r["escape_step"] for d, r in sig.items() if r["escape_step"] is not None}
    return Plot("loss-curves", fig,
                alt=f"Training loss and test accuracy over {cfg.steps} steps for sigmoid networks of depth "
                    f"{', '.join(map(str, cfg.depths))}, width {cfg.width}. Each sits on the guessing level ln 10 "
                    f"before dropping; the drop comes later the deeper the net ("
                    + ", ".join(f"depth {d} at step {s}" for d, s in escaped.items())
                    + (f"), and depth {', '.join(map(str, stuck))} never leave it" if stuck else ")")
                    + f". ReLU with He initialisation and sigmoid with batch normalisation, both {cfg.remedy_depth} "
                      "layers deep, fall at once.",
                caption=f"Digits, width {cfg.width}, plain SGD, batch 64, seed {cfg.seed}; learning rate "
                        f"{cfg.lr_sigmoid} for the sigmoid nets, {cfg.lr_relu} for ReLU. Minibatch loss and test "
                        f"accuracy sampled every {cfg.every} steps, moving average over {cfg.smooth} samples.")


def update_ratios(cfg, runs):
    panels = [(f"sigmoid, depth {d}", runs["sigmoid"][d]) for d in cfg.ratio_depths]
    panels += [(f"{label}, depth {cfg.remedy_depth}", runs[label][cfg.remedy_depth])
               for label in ("ReLU + He init", "sigmoid + batch norm")]
    fig, axes = figure(ncols=len(panels), height=3.9, width=2.6 * len(panels) + 1.2, sharey=True)
    deepest = max(r["depth"] for _, r in panels)
    for ax, (title, run) in zip(axes, panels):
        ratio = np.asarray(run["update_ratio"])
        depth = run["depth"]
        for layer in range(depth):
            colour = colormaps["viridis"](0.85 * layer / max(1, deepest - 1))
            ax.plot(run["update_steps"], log_smooth(ratio[:, layer], 5), color=colour, lw=1.3,
                    label=f"layer {layer + 1}" if ax is axes[0] or depth == deepest else None)
        if title.startswith("sigmoid,"):
            # theory at the first update: each layer down from the last loses a factor sqrt(1/3)/4
            predicted = ratio[0, -1] * SIGMOID_FACTOR ** np.arange(depth - 1, 0, -1)
            ax.scatter(np.zeros(depth - 1), predicted, marker="_", s=140, color="0.2", zorder=5,
                       label="theory at step 0" if ax is axes[0] else None)
        ax.set_yscale("log")
        finish(ax, "training step", "‖ΔW_l‖ / ‖W_l‖ per update" if ax is axes[0] else "", title, legend=False)
    handles, labels = [], []
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("theory"))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    s4 = runs["sigmoid"][cfg.ratio_depths[-1]]
    return Plot("update-ratios", fig,
                alt=f"Relative size of each layer's weight update, log scale, over {cfg.steps} training steps. In the "
                    f"{cfg.ratio_depths[-1]}-layer sigmoid net the first layer's updates start "
                    f"{-np.log10(s4['first_over_last_early']):.1f} decades below the last layer's and stay there; in "
                    f"the {cfg.ratio_depths[0]}-layer sigmoid net the gap closes when the loss leaves its plateau. "
                    "With ReLU and He initialisation, or with batch normalisation, all layers move at the same rate.",
                caption=f"‖ΔW_l‖/‖W_l‖ of one SGD update, every {cfg.ratio_every} steps, geometric moving average "
                        "over 5 samples; the same runs as the loss curves. Dashes at step 0: the ratio of the last "
                        "layer times (√(1/3)/4) per layer below it.")


def depth_sweep(cfg, runs):
    fig, (loss_ax, acc_ax, esc_ax) = figure(ncols=3, height=4.1, width=10)
    depths = sorted(set(cfg.depths) | set(cfg.relu_depths) | {cfg.remedy_depth})
    for label, marker, colour in (("sigmoid", "o", "#0072B2"), ("ReLU + He init", "s", "#D55E00"),
                                  ("sigmoid + batch norm", "D", "#CC79A7")):
        ds = np.array(sorted(runs[label]))
        loss_ax.plot(ds, [runs[label][d]["final_train_loss"] for d in ds], marker=marker, color=colour, label=label)
        acc_ax.plot(ds, [runs[label][d]["final_test_acc"] for d in ds], marker=marker, color=colour, label=label)
        esc = np.array([runs[label][d]["escape_step"] if runs[label][d]["escape_step"] is not None else np.nan
                        for d in ds], dtype=float)
        esc_ax.plot(ds, np.maximum(esc, cfg.every), marker=marker, color=colour, label=label)
        never = np.isnan(esc)
        if never.any():
            esc_ax.scatter(ds[never], np.full(never.sum(), cfg.steps * 1.6), marker="^", s=40, color=colour,
                           zorder=5, clip_on=False, label=f"{label}: not within {cfg.steps} steps")
    loss_ax.axhline(CHANCE_LOSS, color="0.3", ls=":", lw=1, label="guessing (ln 10)")
    acc_ax.axhline(0.1, color="0.3", ls=":", lw=1, label="chance")
    esc_ax.axhline(cfg.steps, color="0.3", ls=":", lw=1)
    esc_ax.set_yscale("log")
    esc_ax.set_ylim(cfg.every * 0.7, cfg.steps * 2)
    loss_ax.set_yscale("log")
    acc_ax.set_ylim(0, 1)
    for ax in (loss_ax, acc_ax, esc_ax):
        ax.set_xticks(depths)
    finish(loss_ax, "depth (layers)", "training-set loss after training", f"Loss after {cfg.steps} steps",
           legend=False)
    finish(acc_ax, "depth (layers)", "test accuracy", f"Test accuracy after {cfg.steps} steps", legend=False)
    finish(esc_ax, "depth (layers)", f"steps until loss < {cfg.escape_loss}", "Time to leave the plateau",
           legend=False)
    handles, labels = loss_ax.get_legend_handles_labels()
    for h, l in zip(*esc_ax.get_legend_handles_labels()):
        if l not in labels:
            handles.append(h)
            labels.append(l)
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    sig = runs["sigmoid"]
    last_ok = max(d for d, r in sig.items() if r["escape_step"] is not None)
    return Plot("depth-sweep", fig,
                alt=f"Three panels against depth 1 to {max(depths)}. Sigmoid networks reach a training loss near "
                    f"zero up to depth {last_ok} and stay at ln 10 (guessing, test accuracy near 0.1) from depth "
                    f"{last_ok + 1} on; the steps they need to leave the plateau grow steeply with depth. ReLU with He "
                    "initialisation leaves it within the first few dozen steps at every depth.",
                caption=f"The same runs as the loss curves, one per network and depth: training-set loss and "
                        f"test accuracy at step {cfg.steps}, and the first step where the smoothed minibatch loss "
                        f"fell below {cfg.escape_loss} (guessing is ln 10 ≈ 2.30; triangles: never).")
