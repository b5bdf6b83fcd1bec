"""What vanishing gradients do to training: early layers that barely move, loss plateaus that grow with depth."""
import numpy as np
import torch
from matplotlib import colormaps

from vgsite.nets import DeepMLP
from vgsite.plots import figure, finish, listed, median_band
from vgsite.probes import TrainingRecorder
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import WEIGHT_VARIANCE, per_layer_factor
from vgsite.train import dataset_loss, digits, fit_stacked

SIGMOID = dict(activation="sigmoid", init="default")
RELU_HE = dict(activation="relu", init="kaiming")
SIGMOID_BN = dict(activation="sigmoid", init="default", norm="batch")
CHANCE_LOSS = float(np.log(10))  # cross-entropy of a uniform guess over 10 classes
# Per-layer factor of the back-propagated gradient in a sigmoid net at PyTorch's default init (see vanishing.py).
SIGMOID_FACTOR = per_layer_factor("sigmoid", WEIGHT_VARIANCE["default"])


def smooth(values, k):
    """Trailing moving average over k samples (the first ones average what there is)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    return np.array([(c[i + 1] - c[max(0, i + 1 - k)]) / min(i + 1, k) for i in range(len(v))])

def log_smooth(values, k):
    """Geometric moving average over k samples: for ratios that span decades."""
    return 10 ** smooth(np.log10(np.asarray(values, dtype=float)), k)


def first_escape(loss, steps, k, threshold):
    """The first sampled step where the smoothed loss fell below threshold, or None."""
    below = np.flatnonzero(smooth(loss, k) < threshold)
    return int(steps[below[0]]) if len(below) else None


def summary(values):
    """Median, min and max over the seeds of one number per seed. None (a run that never got there, as with an
    escape step) counts as later than any step for the median, which is None only when half the seeds or more
    never got there; min and max are over the seeds that did."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    if np.isnan(v).all():
        return {"median": None, "min": None, "max": None}
    median = float(np.median(np.where(np.isnan(v), np.inf, v)))
    return {"median": None if np.isinf(median) else median, "min": float(np.nanmin(v)), "max": float(np.nanmax(v))}


def train_group(cfg, depth, net, lr, record):
    """One network and depth, every seed in cfg.seeds trained together; per-seed values and their summaries."""
    data = digits()
    recorders = {s: TrainingRecorder(every=cfg.ratio_every) for s in cfg.seeds} if record else {}
    # a recorder acts on the steps it samples and the step after (to see that update): call it only there
    hook = lambda s: lambda step, model: recorders[s](step, model) if step % cfg.ratio_every in (0, 1) else None
    trained = fit_stacked(lambda: DeepMLP(depth, cfg.width, d_in=64, **net), data, cfg.seeds, cfg.steps,
                          hooks=hook if record else None, lr=lr, every=cfg.every)
    steps = np.array(trained[0][1]["step"])
    run = {"depth": depth, "lr": lr, "seeds": list(cfg.seeds), "step": steps,
           "loss": np.array([h["loss"] for _, h in trained]), "test_acc": np.array([h["test_acc"] for _, h in trained]),
           "final_train_loss": [dataset_loss(m, data[0], data[1]) for m, _ in trained],
           "final_test_acc": [h["test_acc"][-1] for _, h in trained],
           "escape_step": [first_escape(h["loss"], steps, cfg.smooth, cfg.escape_loss) for _, h in trained]}
    if record:
        ratio = np.array([recorders[s].update_ratio for s in cfg.seeds])  # (seeds, updates, layers)
        n = max(1, ratio.shape[1] // 10)
        early, late = ratio[:, :n], ratio[:, -n:]
        run["update_steps"] = recorders[cfg.seeds[0]].update_steps
        run["update_ratio"] = ratio
        # medians over the first and the last tenth of the updates, one per seed
        run["first_over_last_early"] = np.median(early[:, :, 0] / early[:, :, -1], axis=1)
        run["first_over_last_end"] = np.median(late[:, :, 0] / late[:, :, -1], axis=1)
        run["first_layer_end"] = np.median(late[:, :, 0], axis=1)
        run["first_layer_start"] = ratio[:, 0, 0]
        run["last_layer_start"] = ratio[:, 0, -1]
        run["last_layer_end"] = np.median(late[:, :, -1], axis=1)
        # how far the first layer moved in all, relative to its size: the mean ratio times the number of updates
        run["first_layer_total"] = ratio[:, :, 0].mean(axis=1) * cfg.steps
        # decades lost per layer at the first update, layers 2..L (layer 1 sees the raw inputs, not sigmoid outputs)
        if depth > 2:
            run["decades_per_layer_at_start"] = [
                float(np.polyfit(np.arange(2, depth + 1), np.log10(r[0, 1:]), 1)[0]) for r in ratio]
    run["summary"] = {k: summary(run[k]) for k in
                      ("final_train_loss", "final_test_acc", "escape_step", "first_over_last_early",
                       "first_over_last_end", "decades_per_layer_at_start") if k in run}
    return run


@experiment(depths=(1, 2, 3, 4, 5, 6), relu_depths=(2, 6, 8), width=32, steps=2000, lr_sigmoid=1.0,
            lr_relu=0.1, remedy_depth=6, ratio_depths=(4, 6), every=20, ratio_every=10, smooth=3, escape_loss=2.0,
            seeds=(0, 1, 2, 3, 4))
def depth_runs(cfg):
    runs = {"sigmoid": {}, "ReLU + He init": {}, "sigmoid + batch norm": {}}
    for d in cfg.depths:
        runs["sigmoid"][d] = train_group(cfg, d, SIGMOID, cfg.lr_sigmoid, d in cfg.ratio_depths)
    for d in sorted(set(cfg.relu_depths) | {cfg.remedy_depth}):
        runs["ReLU + He init"][d] = train_group(cfg, d, RELU_HE, cfg.lr_relu, d == cfg.remedy_depth)
    runs["sigmoid + batch norm"][cfg.remedy_depth] = train_group(cfg, cfg.remedy_depth, SIGMOID_BN,
                                                                 cfg.lr_sigmoid, True)
    data = {"chance_loss": CHANCE_LOSS, "predicted_decades_per_layer": float(-np.log10(SIGMOID_FACTOR)),
            "nets": {label: {str(d): run for d, run in by_depth.items()} for label, by_depth in runs.items()}}
    plots = [loss_curves(cfg, runs), update_ratios(cfg, runs), depth_sweep(cfg, runs)]
    return Result(data, plots)


def depth_colour(d, depths):
    return colormaps["viridis"](0.85 * (list(depths).index(d)) / max(1, len(depths) - 1))


def smoothed(run, key, k):
    return np.array([smooth(v, k) for v in run[key]])


def loss_curves(cfg, runs):
    fig, (left, right) = figure(ncols=2, height=4.6)
    for d, run in runs["sigmoid"].items():
        colour = depth_colour(d, cfg.depths)
        median_band(left, run["step"], smoothed(run, "loss", cfg.smooth), color=colour, lw=1.4,
                    label=f"sigmoid, depth {d}")
        median_band(right, run["step"], smoothed(run, "test_acc", cfg.smooth), color=colour, lw=1.4)
    for label, style in (("ReLU + He init", dict(color="#D55E00", ls="--")),
                         ("sigmoid + batch norm", dict(color="#CC79A7", ls="-."))):
        run = runs[label][cfg.remedy_depth]
        median_band(left, run["step"], smoothed(run, "loss", cfg.smooth), lw=2,
                    label=f"{label}, depth {cfg.remedy_depth}", **style)
        median_band(right, run["step"], smoothed(run, "test_acc", cfg.smooth), lw=2, **style)
    left.axhline(CHANCE_LOSS, color="0.3", ls=":", lw=1)
    left.annotate("ln 10: guessing", (cfg.steps, CHANCE_LOSS), xytext=(0, 3), textcoords="offset points",
                  ha="right", va="bottom", color="0.3", fontsize=9)
    right.axhline(0.1, color="0.3", ls=":", lw=1)
    right.annotate("chance", (cfg.steps, 0.1), xytext=(0, 3), textcoords="offset points", ha="right",
                   va="bottom", color="0.3", fontsize=9)
    left.set_ylim(0, 2.7)
    right.set_ylim(0, 1)
    finish(left, "training step", "training loss (cross-entropy)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Test accuracy", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    sig = runs["sigmoid"]
    stuck = [d for d, r in sig.items() if all(e is None for e in r["escape_step"])]
    escaped = {d: summary(r["escape_step"]) for d, r in sig.items() if d not in stuck}
    span = lambda s: f"{s['min']:.0f}" if s["min"] == s["max"] else f"{s['min']:.0f}–{s['max']:.0f}"
    return Plot("loss-curves", fig,
                alt=f"Training loss and test accuracy over {cfg.steps} steps for sigmoid networks of depth "
                    f"{', '.join(map(str, cfg.depths))}, width {cfg.width}, {len(cfg.seeds)} seeds each: median "
                    "line and min–max band. Each sits on the guessing level ln 10 before dropping; the drop comes "
                    "later the deeper the net ("
                    + ", ".join(f"depth {d} at step {span(s)}" for d, s in escaped.items())
                    + (f"), and depth {', '.join(map(str, stuck))} never leave it" if stuck else ")")
                    + f". ReLU with He initialisation and sigmoid with batch normalisation, both {cfg.remedy_depth} "
                      "layers deep, fall at once.",
                caption=f"Digits, width {cfg.width}, plain SGD, batch 64, seeds {listed(cfg.seeds)}: the line is the median "
                        f"over the seeds, the band their range. Learning rate {cfg.lr_sigmoid} for the sigmoid nets, "
                        f"{cfg.lr_relu} for ReLU. Minibatch loss and test accuracy sampled every {cfg.every} steps, "
                        f"moving average over {cfg.smooth} samples.")


def update_ratios(cfg, runs):
    panels = [(f"sigmoid, depth {d}", runs["sigmoid"][d]) for d in cfg.ratio_depths]
    panels += [(f"{label}, depth {cfg.remedy_depth}", runs[label][cfg.remedy_depth])
               for label in ("ReLU + He init", "sigmoid + batch norm")]
    cols = 2
    rows = -(-len(panels) // cols)
    fig, axes = figure(ncols=cols, nrows=rows, height=2.9 * rows + 1.0, sharey=True, sharex=True)
    deepest = max(r["depth"] for _, r in panels)
    for ax, (title, run) in zip(axes, panels):
        ratio = np.asarray(run["update_ratio"])  # (seeds, updates, layers)
        depth = run["depth"]
        for layer in range(depth):
            colour = colormaps["viridis"](0.85 * layer / max(1, deepest - 1))
            per_seed = np.array([log_smooth(r[:, layer], 5) for r in ratio])
            median_band(ax, run["update_steps"], per_seed, color=colour, lw=1.3,
                        label=f"layer {layer + 1}" if ax is axes[0] or depth == deepest else None)
        if title.startswith("sigmoid,"):
            # theory at the first update: each layer down from the last loses a factor sqrt(1/3)/4
            predicted = np.median(ratio[:, 0, -1]) * SIGMOID_FACTOR ** np.arange(depth - 1, 0, -1)
            ax.scatter(np.zeros(depth - 1), predicted, marker="_", s=140, color="0.2", zorder=5,
                       label="theory at step 0" if ax is axes[0] else None)
        ax.set_yscale("log")
        first_column, bottom_row = list(axes).index(ax) % cols == 0, list(axes).index(ax) >= len(axes) - cols
        finish(ax, "training step" if bottom_row else "",
               r"$\|\Delta W_\ell\|\,/\,\|W_\ell\|$ per update" if first_column else "", title, legend=False)
    for ax in list(axes)[len(panels):]:
        ax.remove()
    handles, labels = [], []
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("theory"))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(handles, labels, loc="outside lower center", ncols=4)
    s6, s4 = runs["sigmoid"][cfg.ratio_depths[-1]], runs["sigmoid"][cfg.ratio_depths[0]]
    gap = -np.log10(np.asarray(s6["first_over_last_early"]))
    closed = np.asarray(s4["first_over_last_end"]) > np.asarray(s4["first_over_last_early"])
    return Plot("update-ratios", fig,
                alt=f"Relative size of each layer's weight update, log scale, over {cfg.steps} training steps, median "
                    f"and range over {len(cfg.seeds)} seeds. In the {cfg.ratio_depths[-1]}-layer sigmoid net the "
                    f"first layer's updates start {gap.min():.1f} to {gap.max():.1f} decades below the last layer's "
                    f"and stay there; in the {cfg.ratio_depths[0]}-layer sigmoid net the gap "
                    + ("closes" if closed.all() else "closes in some seeds") + " when the loss leaves its plateau. "
                    "With ReLU and He initialisation, or with batch normalisation, all layers move at about the same "
                    "rate.",
                caption=f"$\\|\\Delta W_\\ell\\|/\\|W_\\ell\\|$ of one SGD update, every {cfg.ratio_every} steps, geometric moving average "
                        f"over 5 samples; the same runs as the loss curves (seeds {listed(cfg.seeds)}; line: median, band: "
                        "range). Dashes at step 0: the median ratio of the last layer times $\\sqrt{1/3}/4$ per layer "
                        "below it.")


def depth_sweep(cfg, runs):
    fig, (loss_ax, acc_ax, esc_ax, key_ax) = figure(ncols=2, nrows=2, height=6.8)
    depths = sorted(set(cfg.depths) | set(cfg.relu_depths) | {cfg.remedy_depth})
    offsets = {"sigmoid": -0.12, "ReLU + He init": 0.0, "sigmoid + batch norm": 0.12}
    for label, marker, colour in (("sigmoid", "o", "#0072B2"), ("ReLU + He init", "s", "#D55E00"),
                                  ("sigmoid + batch norm", "D", "#CC79A7")):
        ds = np.array(sorted(runs[label]))
        for ax, key in ((loss_ax, "final_train_loss"), (acc_ax, "final_test_acc")):
            per_seed = np.array([runs[label][d][key] for d in ds])  # (depths, seeds)
            mid = np.median(per_seed, axis=1)
            ax.errorbar(ds + offsets[label], mid, yerr=[mid - per_seed.min(axis=1), per_seed.max(axis=1) - mid],
                        marker=marker, color=colour, capsize=2.5, label=label)
        esc = np.array([[np.nan if e is None else e for e in runs[label][d]["escape_step"]] for d in ds], dtype=float)
        for j, d in enumerate(ds):
            got = esc[j][~np.isnan(esc[j])]
            esc_ax.scatter(np.full(len(got), d + offsets[label]), np.maximum(got, cfg.every), marker=marker, s=14,
                           color=colour, alpha=0.6, lw=0)
        all_escaped = ~np.isnan(esc).any(axis=1)
        med = np.where(all_escaped, np.median(np.where(np.isnan(esc), np.inf, esc), axis=1), np.nan)
        esc_ax.plot(ds + offsets[label], np.maximum(med, cfg.every), marker=marker, color=colour, label=label)
        never = np.isnan(esc).any(axis=1)
        if never.any():
            esc_ax.scatter(ds[never] + offsets[label], np.full(never.sum(), cfg.steps * 1.6), marker="^", s=40,
                           color=colour, zorder=5, clip_on=False,
                           label=f"{label}: not within {cfg.steps} steps\n(some or all seeds)")
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
    key_ax.axis("off")
    key_ax.legend(handles, labels, loc="center left", frameon=False)
    sig = runs["sigmoid"]
    last_ok = max(d for d, r in sig.items() if all(e is not None for e in r["escape_step"]))
    return Plot("depth-sweep", fig,
                alt=f"Three panels against depth 1 to {max(depths)}, median over {len(cfg.seeds)} seeds with "
                    f"min–max whiskers. Sigmoid networks leave the guessing loss in every seed up to depth {last_ok}, "
                    f"and stay at ln 10 (guessing, test accuracy near 0.1) from depth {last_ok + 1} on; the steps "
                    "they need to leave the plateau grow steeply with depth. ReLU with He initialisation leaves it "
                    "within the first few dozen steps at every depth.",
                caption=f"The same runs as the loss curves, seeds {listed(cfg.seeds)}: training-set loss and test accuracy "
                        f"at step {cfg.steps} (median, whiskers: range over the seeds), and the first step where the "
                        f"smoothed minibatch loss fell below {cfg.escape_loss} (small dots: each seed; line: median; "
                        "guessing is ln 10 ≈ 2.30; triangles: not reached in some or all seeds). Markers are "
                        "shifted sideways a little so that they do not hide each other.")
