"""Activations that do not saturate: the ReLU family, ELU, SELU and GELU, their slopes, gradient flow and dead units."""
import numpy as np
import torch

from vgsite.nets import ACTIVATIONS, DeepMLP
from vgsite.plots import figure, finish
from vgsite.probes import ratio_by_depth, derivative, probe_at_init
from vgsite.registry import Plot, Result, experiment
from vgsite.train import dataset_loss, digits, fit

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
    fig, (left, right) = figure(ncols=2, height=3.9, width=9)
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
    finish(left, "pre-activation z", "g(z)", "Activation", legend=True, loc="upper left", fontsize=7.5)
    finish(right, "pre-activation z", "g′(z)", "Its slope: the factor each layer multiplies in", legend=False)
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
    fig, (left, right) = figure(ncols=2, height=4.4, width=9.6)
    depths = np.array(cfg.depths)
    layers = np.arange(1, cfg.profile_depth + 1)
    data = {"depths": depths, "nets": {}}
    for label, (_, _, style) in NETS.items():
        profiles = [probe_at_init(cfg.profile_depth, cfg.width, cfg.batch, s, **net(label))["signal"]
                    for s in cfg.seeds]
        rel = np.mean([np.log10(np.array(p) / p[-1]) for p in profiles], axis=0)
        left.plot(layers, rel, marker="o", ms=2.5, lw=1.4, label=label.replace(" (", "\n("), **style)
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
                  xytext=(0, 6), textcoords="offset points", color="0.4", fontsize=8)
    right.annotate("sigmoid: off the scale ↓", (depths[1], -4), xytext=(0, 6), textcoords="offset points",
                   color="0.4", fontsize=8)
    finish(left, "layer l (input side on the left)", "log₁₀(‖∂L/∂h_l‖ / ‖∂L/∂h_L‖)",
           f"Per layer, depth {cfg.profile_depth}", legend=False)
    finish(right, "depth (layers)", "log₁₀(‖∂L/∂h₁‖ / ‖∂L/∂h_L‖)", "First layer against last, by depth",
           legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside right center", fontsize=7.5)
    fam = ["ReLU (He)", "Leaky ReLU 0.01 (He)", "PReLU 0.25 (He, PReLU gain)"]
    worst = max(abs(data["nets"][k]["log10_ratio"][list(depths).index(cfg.profile_depth)]) for k in fam)
    return Result(data, [Plot(
        "gradient-flow", fig,
        alt=f"Left: the back-propagated gradient at each of {cfg.profile_depth} layers relative to the last, log10, "
            "for eight freshly initialised networks. Right: the first-to-last ratio against depth up to "
            f"{max(depths)}. ReLU, Leaky ReLU and PReLU with He's variance stay within {worst:.1f} decades of level "
            f"at depth {cfg.profile_depth}; ELU and SELU drift slightly upward, GELU and tanh slightly downward; "
            f"sigmoid with Xavier's variance falls {-sig['profile_log10_relative_to_last'][0]:.0f} decades, off the "
            "scale, along its dashed prediction of 0.6 decades a layer.",
        caption=f"Width {cfg.width}, one random batch of {cfg.batch} standard-normal inputs, mean of log10 over "
                f"seeds {', '.join(map(str, cfg.seeds))}. Dashed: level (the prediction for the ReLU family at He's "
                "variance), and sigmoid's prediction (grey).")])


@experiment(depth=20, width=64, steps=300, lr=0.05, every=20, smooth=3, seed=0)
def training(cfg):
    data_set = digits()
    fig, (left, right) = figure(ncols=2, height=3.9, width=9.6)
    data = {"nets": {}}
    for label, (_, _, style) in NETS.items():
        torch.manual_seed(cfg.seed)
        model = DeepMLP(cfg.depth, cfg.width, d_in=64, **net(label))
        history = fit(model, data_set, cfg.steps, lr=cfg.lr, every=cfg.every, seed=cfg.seed)
        loss = np.array(history["loss"])
        k = cfg.smooth
        smoothed = np.array([loss[max(0, i + 1 - k): i + 1].mean() for i in range(len(loss))])
        left.plot(history["step"], smoothed, lw=1.5, label=label, **style)
        right.plot(history["step"], history["test_acc"], lw=1.3, **style)
        data["nets"][label] = {"step": history["step"], "loss": history["loss"], "test_acc": history["test_acc"],
                               "final_train_loss": dataset_loss(model, data_set[0], data_set[1]),
                               "final_test_acc": history["test_acc"][-1]}
    left.axhline(np.log(10), color="0.3", lw=0.8, ls=":")
    left.set_ylim(0, 3)
    right.set_ylim(0, 1)
    finish(left, "training step", "training loss (moving average)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Test accuracy", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside right center", fontsize=7.5)
    accs = {k: v["final_test_acc"] for k, v in data["nets"].items()}
    best = max(accs, key=accs.get)
    return Result(data, [Plot(
        "training", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} SGD steps for {cfg.depth}-layer networks with eight "
            f"activations. Sigmoid stays at ln 10 (test accuracy {accs['sigmoid (Xavier)']:.2f}); every other "
            f"network learns; {best} ends highest at {accs[best]:.2f}. ReLU and Leaky ReLU learn with large "
            "spikes in the loss.",
        caption=f"Digits, depth {cfg.depth}, width {cfg.width}, plain SGD at learning rate {cfg.lr}, batch 64, seed "
                f"{cfg.seed}; each activation with the initialisation in its label. Loss: moving average over "
                f"{cfg.smooth} samples taken every {cfg.every} steps.")])


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


@experiment(lrs=(0.001, 0.003, 0.01, 0.03, 0.1), depth=4, width=64, steps=300, track_every=10, seed=0)
def dead_units(cfg):
    data_set = digits()
    x = data_set[0]
    fig, (left, mid, right) = figure(ncols=3, height=3.7, width=10.5)
    data = {"lrs": cfg.lrs, "nets": {}}
    styles = {"relu": ("ReLU", dict(color="#0072B2", marker="o")),
              "leaky_relu": ("Leaky ReLU 0.01", dict(color="#56B4E9", marker="s"))}
    for activation, (label, style) in styles.items():
        runs = []
        for lr in cfg.lrs:
            torch.manual_seed(cfg.seed)
            model = DeepMLP(cfg.depth, cfg.width, activation=activation, init="kaiming", d_in=64)
            dead0, off0 = unit_shares(model, x)
            track = {"step": [], "dead": [], "off": []}

            def on_step(step, m):
                if step % cfg.track_every == 0:
                    d, o = unit_shares(m, x)
                    track["step"].append(step)
                    track["dead"].append(float(np.mean(d)))
                    track["off"].append(float(np.mean(o)))

            history = fit(model, data_set, cfg.steps, lr=lr, optimizer="adam", every=cfg.steps,
                          on_step=on_step if lr == max(cfg.lrs) else None, seed=cfg.seed)
            dead, off = unit_shares(model, x)
            runs.append({"lr": lr, "dead_per_layer_at_init": dead0, "dead_per_layer": dead, "off_per_layer": off,
                         "dead": float(np.mean(dead)), "off": float(np.mean(off)),
                         "dead_at_init": float(np.mean(dead0)), "final_test_acc": history["test_acc"][-1],
                         "final_train_loss": dataset_loss(model, data_set[0], data_set[1]),
                         "track": track if track["step"] else None})
        data["nets"][label] = runs
        lrs = np.array(cfg.lrs)
        dead_label = f"{label}: dead" + (" (= never positive)" if activation == "relu" else "")
        left.plot(lrs, [r["dead"] for r in runs], label=dead_label, **style)
        mid.plot(lrs, [r["final_test_acc"] for r in runs], label=label, **style)
        t = runs[-1]["track"]
        right.plot(t["step"], t["dead"], color=style["color"], label=dead_label)
        if activation != "relu":  # for ReLU, slope 0 and never positive are the same thing
            left.plot(lrs, [r["off"] for r in runs], ls="--", lw=1.2, label=f"{label}: never positive, not dead",
                      color=style["color"])
            right.plot(t["step"], t["off"], color=style["color"], ls="--", lw=1.2)
    for ax in (left, mid):
        ax.set_xscale("log")
    left.set_ylim(-0.02, 1.02)
    mid.set_ylim(0, 1)
    right.set_ylim(-0.02, 1.02)
    finish(left, "Adam learning rate", "share of hidden units", f"Units after {cfg.steps} steps", legend=True,
           loc="upper left", fontsize=7)
    finish(mid, "Adam learning rate", "test accuracy", "Test accuracy", legend=True, loc="lower left", fontsize=7.5)
    finish(right, "training step", "share of hidden units", f"During training at lr {max(cfg.lrs):g}", legend=False)
    right.annotate("dead: slope exactly 0 on every image", (0.02, 0.97), xycoords="axes fraction", va="top",
                   fontsize=7.5, color="0.3")
    relu = data["nets"]["ReLU"][-1]
    leaky = data["nets"]["Leaky ReLU 0.01"][-1]
    return Result(data, [Plot(
        "dead-units", fig,
        alt=f"Left: the share of hidden units that never fire on any of the {len(x)} training images, after "
            f"{cfg.steps} Adam steps, against the learning rate. For ReLU it rises from "
            f"{data['nets']['ReLU'][0]['dead']:.0%} at learning rate {cfg.lrs[0]:g} to {relu['dead']:.0%} at "
            f"{cfg.lrs[-1]:g}; Leaky ReLU has none, although {leaky['off']:.0%} of its units are never positive "
            f"at {cfg.lrs[-1]:g}. Middle: test accuracy, {relu['final_test_acc']:.2f} for ReLU and "
            f"{leaky['final_test_acc']:.2f} for Leaky ReLU at the highest rate. Right: both shares during "
            "training at that rate.",
        caption=f"Depth {cfg.depth}, width {cfg.width}, He initialisation, Adam, batch 64, seed {cfg.seed}; a unit is "
                "dead when its slope is exactly 0 on every training image, so no gradient reaches its weights. "
                "Pooled over all hidden layers.")])
