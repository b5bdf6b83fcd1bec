"""Activations that do not saturate: the ReLU family, ELU, SELU and GELU, their slopes, gradient flow and dead units."""
import numpy as np
import torch

from vgsite.nets import ACTIVATIONS, DeepMLP
from vgsite.plots import COLORS, RATIO_LABEL, figure, finish, listed, median_band
from vgsite.probes import ratio_by_depth, derivative, probe_at_init
from vgsite.registry import Plot, Result, experiment
from vgsite.train import dataset_loss, digits, fit_stacked

PRELU_A = 0.25  # PyTorch's initial PReLU slope, as in He et al. (2015)

# label: (activation, network settings with the initialisation that suits it, line style)
NETS = {
    "sigmoid (Xavier)": ("sigmoid", dict(init="xavier"), dict(color="0.55", ls=":")),
    "tanh (Xavier)": ("tanh", dict(init="xavier"), dict(color="0.25", ls=":")),
    "ReLU (He)": ("relu", dict(init="kaiming"), dict(color="#0072B2")),
    "Leaky ReLU 0.01 (He)": ("leaky_relu", dict(init="kaiming"), dict(color="#56B4E9", ls="--")),
    "PReLU 0.25 (He, PReLU gain)": ("prelu", dict(init="kaiming", gain=1 / np.sqrt(1 + PRELU_A ** 2)),
                                    dict(color="#009E73")),
    "ELU (He)": ("elu", dict(init="kaiming"), dict(color="#E69F00")),
    "SELU (LeCun normal)": ("selu", dict(init="normal", gain=1.0), dict(color="#D55E00")),
    "GELU (He)": ("gelu", dict(init="kaiming"), dict(color="#CC79A7")),
}


def net(label):
    activation, settings, _ = NETS[label]
    return dict(activation=activation, **settings)


@experiment(low=-4.0, high=4.0, points=801)
def derivatives(cfg):
    z = torch.linspace(cfg.low, cfg.high, cfg.points)
    fig, (left, right) = figure(ncols=2, height=4.3)
    data = {}
    for label, (activation, _, style) in NETS.items():
        fn = ACTIVATIONS[activation]()
        with torch.no_grad():
            g = fn(z)
        slope = derivative(activation, z)
        name = label.split(" (")[0]
        left.plot(z, g, label=name, lw=1.6, **style)
        right.plot(z, slope, label=name, lw=1.6, **style)
        at = lambda v: derivative(activation, torch.tensor([v]))[0]
        data[name] = {"slope_at_minus_2": at(-2.0), "slope_at_0.5": at(0.5), "slope_at_2": at(2.0),
                      "max_slope": slope.max(), "min_slope": slope.min(),
                      "share_of_range_with_slope_below_0.05": (slope.abs() < 0.05).float().mean()}
    right.axhline(0, color="0.3", lw=0.8)
    left.set_ylim(-2.1, 4.2)
    finish(left, "pre-activation z", "g(z)", "Activation", legend=False)
    finish(right, "pre-activation z", "g′(z)", "Its slope, multiplied in per layer", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=4)
    return Result(data, [Plot(
        "derivatives", fig,
        alt="Left: eight activation functions between z = −4 and 4. Right: their slopes. Sigmoid's slope peaks at "
            "0.25 and tanh's at 1, and both fall toward 0 on either side. ReLU's slope is 1 for positive z and "
            "exactly 0 for negative z; Leaky ReLU keeps 0.01 and PReLU 0.25 there; ELU and SELU decay smoothly to 0 "
            "for negative z (SELU's is 1.05 for positive z); GELU's slope dips below 0 (to −0.13) near z = −1.4 and "
            "overshoots 1 (to 1.13) near z = 1.4.",
        caption="The activations and their derivatives g′(z), computed by autograd. PReLU is shown at its initial "
                f"slope {PRELU_A}; in training that slope is learned.")])


@experiment(depths=(5, 10, 20, 30, 50), profile_depth=20, width=64, batch=64, seeds=(0, 1, 2))
def gradient_flow(cfg):
    fig, (left, right) = figure(ncols=2, height=5.0)
    depths = np.array(cfg.depths)
    layers = np.arange(1, cfg.profile_depth + 1)
    data = {"depths": depths, "nets": {}}
    for label, (_, _, style) in NETS.items():
        profiles = [probe_at_init(cfg.profile_depth, cfg.width, cfg.batch, s, **net(label))["signal"]
                    for s in cfg.seeds]
        rel = np.mean([np.log10(np.array(p) / p[-1]) for p in profiles], axis=0)
        left.plot(layers, rel, marker="o", ms=2.5, lw=1.4, label=label, **style)
        ratios = ratio_by_depth(depths, cfg.seeds, cfg.width, cfg.batch, **net(label))
        mean = ratios.mean(axis=1)
        right.plot(depths, mean, marker="o", ms=3, lw=1.4, label=label, **style)
        slope_fit = float(np.polyfit(depths, mean, 1)[0])
        data["nets"][label] = {"profile_log10_relative_to_last": rel, "log10_ratio": mean, "per_seed": ratios,
                               "decades_per_layer": slope_fit}
    for ax in (left, right):
        ax.axhline(0, color="0.3", lw=0.9, ls="--")
    # sigmoid with Xavier's variance: n Var(W) = 1 and sigma' <= 1/4, so at least 0.6 decades a layer
    right.plot(depths, np.log10(0.25) * (depths - 1), color="0.55", ls="--", lw=1)
    left.plot(layers, np.log10(0.25) * (cfg.profile_depth - layers), color="0.55", ls="--", lw=1)
    for ax in (left, right):
        ax.set_ylim(-4, 3)
    sig = data["nets"]["sigmoid (Xavier)"]
    left.annotate(f"sigmoid: {sig['profile_log10_relative_to_last'][0]:.0f} at layer 1", (4, -4),
                  xytext=(0, 6), textcoords="offset points", color="0.4")
    right.annotate("sigmoid: off the scale ↓", (depths[1], -4), xytext=(0, 6), textcoords="offset points",
                   color="0.4")
    finish(left, "layer ℓ (1 = next to the input)",
           r"$\log_{10}\,(\|\partial L/\partial h_\ell\|\,/\,\|\partial L/\partial h_L\|)$",
           f"Per layer, depth {cfg.profile_depth}", legend=False)
    finish(right, "depth L (layers)", RATIO_LABEL, "First layer against last", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    fam = ["ReLU (He)", "Leaky ReLU 0.01 (He)", "PReLU 0.25 (He, PReLU gain)"]
    worst = max(abs(data["nets"][k]["log10_ratio"][list(depths).index(cfg.profile_depth)]) for k in fam)
    return Result(data, [Plot(
        "gradient-flow", fig,
        alt=f"Left: the back-propagated gradient at each of {cfg.profile_depth} layers relative to the last, log10, "
            "for eight freshly initialised networks. Right: the first-to-last ratio against depth up to "
            f"{max(depths)}. ReLU, Leaky ReLU and PReLU with He's variance stay within {worst:.1f} decades of level "
            f"at depth {cfg.profile_depth} on average; ELU and SELU drift slightly upward, tanh slightly downward, and "
            "GELU scatters from seed to seed; "
            f"sigmoid with Xavier's variance falls {-sig['profile_log10_relative_to_last'][0]:.0f} decades, off the "
            "scale, along its dashed prediction of 0.6 decades a layer.",
        caption=f"Width {cfg.width}, one random batch of {cfg.batch} standard-normal inputs, mean of log10 over "
                f"seeds {listed(cfg.seeds)}. Dashed: level (the prediction for the ReLU family at He's "
                "variance), and sigmoid's prediction (grey).")])


def summary(values):
    """Median, min and max over the seeds (the first axis)."""
    v = np.asarray(values, dtype=float)
    return {"median": np.median(v, axis=0), "min": v.min(axis=0), "max": v.max(axis=0)}


def moving_average(values, k):
    v = np.asarray(values, dtype=float)
    return np.array([v[max(0, i + 1 - k): i + 1].mean() for i in range(len(v))])


@experiment(depth=20, width=64, steps=300, lr=0.05, every=20, smooth=3, seeds=(0, 1, 2, 3, 4))
def training(cfg):
    data_set = digits()
    fig, (left, right) = figure(ncols=2, height=4.4)
    data = {"nets": {}}
    for label, (_, _, style) in NETS.items():
        trained = fit_stacked(lambda: DeepMLP(cfg.depth, cfg.width, d_in=64, **net(label)), data_set, cfg.seeds,
                              cfg.steps, lr=cfg.lr, every=cfg.every)
        steps = trained[0][1]["step"]
        loss = np.array([h["loss"] for _, h in trained])
        acc = np.array([h["test_acc"] for _, h in trained])
        smoothed = np.array([moving_average(l, cfg.smooth) for l in loss])
        median_band(left, steps, smoothed, lw=1.5, label=label, **style)
        median_band(right, steps, acc, lw=1.3, **style)
        final_loss = [dataset_loss(m, data_set[0], data_set[1]) for m, _ in trained]
        run = {"step": steps, "loss": loss, "test_acc": acc, "final_train_loss": final_loss,
               "final_test_acc": acc[:, -1],
               # the best test accuracy a seed reached on the way, and the largest smoothed loss after its lowest:
               # a run that learned and then fell apart has a high best and a low final accuracy
               "best_test_acc": acc.max(axis=1),
               "rise_after_best_loss": [float(sl[np.argmin(sl):].max() - sl.min()) for sl in smoothed]}
        run["summary"] = {k: summary(run[k]) for k in ("final_train_loss", "final_test_acc", "best_test_acc")}
        data["nets"][label] = run
    left.axhline(np.log(10), color="0.3", lw=0.8, ls=":")
    left.set_ylim(0, 3)
    right.set_ylim(0, 1)
    finish(left, "training step", "training loss (moving average)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Test accuracy", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    accs = {k: float(np.median(v["final_test_acc"])) for k, v in data["nets"].items()}
    best = max(accs, key=accs.get)
    sig = data["nets"]["sigmoid (Xavier)"]["final_test_acc"]
    return Result(data, [Plot(
        "training", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} SGD steps for {cfg.depth}-layer networks with eight "
            f"activations, {len(cfg.seeds)} seeds each: median line and min–max band. Sigmoid stays at ln 10 "
            f"(test accuracy {min(sig):.2f}–{max(sig):.2f}); every other network learns; {best} ends highest in "
            f"the median, at {accs[best]:.2f}. The bands of ReLU, Leaky ReLU and GELU are wide: some seeds learn "
            "and then fall apart.",
        caption=f"Digits, depth {cfg.depth}, width {cfg.width}, plain SGD at learning rate {cfg.lr}, batch 64, seeds "
                f"{listed(cfg.seeds)} (line: median, band: range); each activation with the "
                f"initialisation in its label. Loss: moving average over {cfg.smooth} samples taken every "
                f"{cfg.every} steps.")])


def unit_shares(model, x):
    """Per layer: share of units whose slope is exactly 0 on every example (dead), and that are never positive."""
    was = model.training
    model.eval()
    with torch.no_grad():
        model(x)
    model.train(was)
    dead, off = [], []
    for block in model.blocks:
        z = block.z
        dead.append((derivative(model.activation, z) == 0).all(dim=0).float().mean().item())
        off.append((z <= 0).all(dim=0).float().mean().item())
    return dead, off


@experiment(lrs=(0.001, 0.003, 0.01, 0.03, 0.1), depth=4, width=64, steps=300, track_every=10,
            seeds=(0, 1, 2, 3, 4))
def dead_units(cfg):
    data_set = digits()
    x = data_set[0]
    fig, (left, mid, right, key) = figure(ncols=2, nrows=2, height=6.6)
    data = {"lrs": cfg.lrs, "nets": {}}
    styles = {"relu": ("ReLU", dict(color="#0072B2", marker="o")),
              "leaky_relu": ("Leaky ReLU 0.01", dict(color=COLORS[1], marker="s"))}
    lrs = np.array(cfg.lrs)

    def whiskers(ax, values, shift, **kw):
        v = np.asarray(values, dtype=float)  # (lrs, seeds)
        m = np.median(v, axis=1)
        return ax.errorbar(lrs * shift, m, yerr=[m - v.min(axis=1), v.max(axis=1) - m], capsize=2.5, **kw)

    for activation, (label, style) in styles.items():
        runs = []
        for lr in cfg.lrs:
            at_init = {}
            tracks = {s: {"step": [], "dead": [], "off": []} for s in cfg.seeds}

            def hooks(seed):
                def on_step(step, m):
                    if step == 0:
                        at_init[seed] = unit_shares(m, x)
                    if lr == max(cfg.lrs) and step % cfg.track_every == 0:
                        d, o = unit_shares(m, x)
                        tracks[seed]["step"].append(step)
                        tracks[seed]["dead"].append(float(np.mean(d)))
                        tracks[seed]["off"].append(float(np.mean(o)))
                return on_step

            trained = fit_stacked(lambda: DeepMLP(cfg.depth, cfg.width, activation=activation, init="kaiming",
                                                  d_in=64),
                                  data_set, cfg.seeds, cfg.steps, hooks=hooks, lr=lr, optimizer="adam",
                                  every=cfg.steps)
            shares = [unit_shares(m, x) for m, _ in trained]
            dead = np.array([d for d, _ in shares])  # (seeds, layers)
            off = np.array([o for _, o in shares])
            dead0 = np.array([at_init[s][0] for s in cfg.seeds])
            run = {"lr": lr, "seeds": list(cfg.seeds), "dead_per_layer_at_init": dead0, "dead_per_layer": dead,
                   "off_per_layer": off, "dead": dead.mean(axis=1), "off": off.mean(axis=1),
                   "dead_at_init": dead0.mean(axis=1),
                   "final_test_acc": [h["test_acc"][-1] for _, h in trained],
                   "final_train_loss": [dataset_loss(m, data_set[0], data_set[1]) for m, _ in trained]}
            if lr == max(cfg.lrs):
                run["track"] = {"step": tracks[cfg.seeds[0]]["step"],
                                "dead": [tracks[s]["dead"] for s in cfg.seeds],
                                "off": [tracks[s]["off"] for s in cfg.seeds]}
                run["track"]["summary"] = {k: summary(run["track"][k]) for k in ("dead", "off")}
            run["summary"] = {k: summary(run[k]) for k in
                              ("dead", "off", "dead_per_layer", "off_per_layer", "final_test_acc",
                               "final_train_loss")}
            runs.append(run)
        data["nets"][label] = runs
        shift = 1.0 if activation == "relu" else 1.06
        dead_label = f"{label}: dead" + (" (= never positive)" if activation == "relu" else "")
        whiskers(left, [r["dead"] for r in runs], shift, label=dead_label, **style)
        whiskers(mid, [r["final_test_acc"] for r in runs], shift, label=label, **style)
        t = runs[-1]["track"]
        median_band(right, t["step"], t["dead"], color=style["color"], label=dead_label)
        if activation != "relu":  # for ReLU, slope 0 and never positive are the same thing
            whiskers(left, [r["off"] for r in runs], shift, ls="--", lw=1.2, color=style["color"],
                     label=f"{label}: never positive, not dead")
            median_band(right, t["step"], t["off"], color=style["color"], ls="--", lw=1.2)
    for ax in (left, mid):
        ax.set_xscale("log")
    left.set_ylim(-0.02, 1.02)
    mid.set_ylim(0, 1)
    right.set_ylim(-0.02, 1.02)
    finish(left, "Adam learning rate", "share of hidden units", f"Units after {cfg.steps} steps", legend=False)
    finish(mid, "Adam learning rate", "test accuracy", "Test accuracy", legend=False)
    finish(right, "training step", "share of hidden units", f"During training at lr {max(cfg.lrs):g}", legend=False)
    key.axis("off")
    key.legend(*left.get_legend_handles_labels(), loc="upper left", frameon=False,
               title="median over seeds, bars: range")
    key.annotate("dead: slope exactly 0\non every training image", (0.03, 0.25), xycoords="axes fraction",
                 va="top", color="0.3")
    relu = data["nets"]["ReLU"][-1]["summary"]
    leaky = data["nets"]["Leaky ReLU 0.01"][-1]["summary"]
    relu_low = data["nets"]["ReLU"][0]["summary"]
    return Result(data, [Plot(
        "dead-units", fig,
        alt=f"Top left: the share of hidden units that never fire on any of the {len(x)} training images, after "
            f"{cfg.steps} Adam steps, against the learning rate, median and range over {len(cfg.seeds)} seeds. For "
            f"ReLU it rises from {relu_low['dead']['median']:.0%} at learning rate {cfg.lrs[0]:g} to "
            f"{relu['dead']['median']:.0%} at {cfg.lrs[-1]:g}; Leaky ReLU has none, although "
            f"{leaky['off']['median']:.0%} of its units are never positive at {cfg.lrs[-1]:g}. Top right: test "
            f"accuracy, {relu['final_test_acc']['median']:.2f} for ReLU and "
            f"{leaky['final_test_acc']['median']:.2f} for Leaky ReLU at the highest rate. Bottom: both shares "
            "during training at that rate.",
        caption=f"Depth {cfg.depth}, width {cfg.width}, He initialisation, Adam, batch 64, seeds "
                f"{listed(cfg.seeds)} (median, whiskers and bands: range); a unit is dead when its "
                "slope is exactly 0 on every training image, so no gradient reaches its weights. Pooled over all "
                "hidden layers. Leaky ReLU's markers are shifted a little to the right.")])
