"""Batch normalisation: it ends vanishing in a deep sigmoid net, and on its own makes deep nets' gradients explode."""
import math

import numpy as np
import torch

from vgsite.nets import DeepMLP
from vgsite.plots import (GRADIENT_LABEL, LAYER_LABEL, RATIO_LABEL, figure, finish, layer_axis, listed, log_line,
                          mark_underflow, median_band, ratio_vs_depth)
from vgsite import probes
from vgsite.probes import log_ratio, norm, probe_at_init, random_batch, ratio_by_depth
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import bn_factor
from vgsite.train import digits, fit


GRADIENT_NETS = {  # label: network settings, for the gradient-flow figure and the training curves
    "sigmoid": dict(activation="sigmoid"),
    "sigmoid + batch norm": dict(activation="sigmoid", norm="batch"),
    "tanh": dict(activation="tanh"),
    "tanh + batch norm": dict(activation="tanh", norm="batch"),
}


@experiment(depth=30, width=64, batch=64, seed=0)
def gradient_flow(cfg):
    fig, ax = figure(height=4.2)
    layers = np.arange(1, cfg.depth + 1)
    data = {"layers": layers, "nets": {}}
    for i, (label, net) in enumerate(GRADIENT_NETS.items()):
        flow = probe_at_init(cfg.depth, cfg.width, cfg.batch, cfg.seed, **net)
        log_line(ax, layers, flow["signal"], label=label, color=f"C{i // 2}",
                 ls="-" if "batch" in label else ":", marker="o" if "batch" in label else None, ms=3)
        data["nets"][label] = {"signal": flow["signal"], "log10_ratio_first_last": log_ratio(flow["signal"]),
                               "saturated": flow["saturated"]}
    layer_axis(ax, layers)
    finish(ax, LAYER_LABEL, GRADIENT_LABEL,
           f"{cfg.depth}-layer MLP, width {cfg.width}, PyTorch default init, at initialisation", loc="lower right")
    r = {k: v["log10_ratio_first_last"] for k, v in data["nets"].items()}
    return Result(data, [Plot(
        "gradient-flow", fig,
        alt=f"Log-scale gradient norm at each of {cfg.depth} layers, from the input (left) to the output (right). "
            f"Without batch norm the sigmoid net's gradient falls by {-r['sigmoid']:.0f} decades and the tanh net's "
            f"by {-r['tanh']:.0f}; with batch norm both stay within a decade of the last layer's "
            f"(the first layer's gradient is {10 ** r['sigmoid + batch norm']:.1f} and "
            f"{10 ** r['tanh + batch norm']:.1f} times the last layer's).",
        caption="The same networks with and without batch normalisation after every linear layer (dotted: "
                "without; solid: with), one random batch of standard-normal inputs, nothing trained.")])


@experiment(depths=(2, 5, 10, 20, 30, 50, 75, 100), width=64, batch=128, seeds=(0, 1))
def explosion(cfg):
    """Yang et al. (2019): without skip connections, batch norm makes the gradient grow toward the input."""
    nets = {  # label: (settings, predicted factor per layer)
        "linear + BN": (dict(activation="linear", norm="batch"), bn_factor("linear")),
        "sigmoid + BN": (dict(activation="sigmoid", norm="batch"), bn_factor("sigmoid")),
        "tanh + BN": (dict(activation="tanh", norm="batch"), bn_factor("tanh")),
        "ReLU + BN": (dict(activation="relu", norm="batch"), bn_factor("relu")),
        "ReLU, He init, no BN": (dict(activation="relu", init="kaiming"), 1.0),
    }
    fig, ax = figure(height=4.2)
    depths = np.array(cfg.depths)
    data = {"depths": depths, "nets": {}}
    for label, (net, factor) in nets.items():
        ratios = ratio_by_depth(depths, cfg.seeds, cfg.width, cfg.batch, **net)
        mean = ratios.mean(axis=1)
        predicted = math.log10(factor) * (depths - 1)
        ratio_vs_depth(ax, depths, mean, label=label, theory=predicted, theory_label="")
        data["nets"][label] = {"log10_ratio": mean, "per_seed": ratios, "predicted": predicted,
                               "predicted_factor_per_layer": factor,
                               "predicted_decades_per_layer": math.log10(factor),
                               "decades_per_layer": float(np.polyfit(depths, mean, 1)[0])}
    ax.plot([], [], color="0.4", ls="--", lw=1.3,
            label=r"theory: $\sqrt{\mathrm{E}[g'(z)^2]\,/\,\mathrm{Var}\,g(z)}$ per layer")
    finish(ax, "depth L (layers)", RATIO_LABEL,
           "Batch norm without skip connections: the gradient grows toward the input", loc="upper left")
    relu = data["nets"]["ReLU + BN"]
    return Result(data, [Plot(
        "explosion", fig,
        alt=f"Log10 of the first- to last-layer gradient ratio against depth from {depths[0]} to {depths[-1]} "
            f"layers, at initialisation. Every batch-normalised net lies above zero and rises with depth: ReLU "
            f"with batch norm by {relu['decades_per_layer']:.3f} decades per layer, reaching "
            f"{relu['log10_ratio'][-1]:.1f} decades at {depths[-1]} layers, close to its dashed prediction; tanh "
            f"less, sigmoid and linear nets least. ReLU with He initialisation and no batch norm stays at zero.",
        caption=f"Networks of width {cfg.width} with batch normalisation after every linear layer and no skip "
                f"connections, one random batch of {cfg.batch} inputs, mean over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)}. Dashed: "
                "the large-width, large-batch prediction in the same colour.")])


@experiment(depth=50, width=64, batch=128, gains=(0.25, 0.5, 1.0, 1.4142, 2.0, 4.0), seed=0)
def init_cannot_fix(cfg):
    """The lecture notes: exploding gradients 'alleviated through weight initialization and batch normalization'."""
    fig, ax = figure(height=3.8)
    gains = np.array(cfg.gains)
    data = {"gains": gains, "nets": {}}
    for label, norm_ in (("ReLU, no BN", None), ("ReLU + BN", "batch")):
        measured = np.array([log_ratio(probe_at_init(cfg.depth, cfg.width, cfg.batch, cfg.seed, activation="relu",
                                                     init="normal", gain=g, norm=norm_)["signal"]) for g in gains])
        if norm_ is None:  # He et al. 2015: each layer multiplies the gradient by gain / sqrt(2)
            predicted = (cfg.depth - 1) * np.log10(gains / np.sqrt(2))
        else:  # BN undoes any weight scale: the factor does not depend on the gain
            predicted = np.full(len(gains), (cfg.depth - 1) * math.log10(bn_factor("relu")))
        finite = np.isfinite(measured)
        (line,) = ax.plot(gains, np.where(finite, measured, np.nan), marker="o", label=label)
        mark_underflow(ax, gains, ~finite, line.get_color(), label)
        ax.plot(gains, predicted, color=line.get_color(), ls="--", lw=1)
        data["nets"][label] = {"log10_ratio": measured, "predicted": predicted}
    ax.set_xscale("log", base=2)
    ax.set_xticks(gains, [f"{g:.2g}" for g in gains])
    ax.axhline(0, color="0.3", lw=1)
    ax.plot([], [], color="0.4", ls="--", lw=1, label="theory")
    ax.annotate("exploding ↑", (gains[0], 9), ha="left", va="bottom", color="0.35", style="italic")
    ax.annotate("vanishing ↓", (gains[0], -6), ha="left", va="top", color="0.35", style="italic")
    finish(ax, r"weight scale: gain, with $W \sim \mathcal{N}(0,\,\mathrm{gain}^2/n)$", RATIO_LABEL,
           f"{cfg.depth}-layer ReLU MLP at initialisation", loc="lower right")
    bn = data["nets"]["ReLU + BN"]["log10_ratio"]
    plain = data["nets"]["ReLU, no BN"]["log10_ratio"]
    return Result(data, [Plot(
        "init-cannot-fix", fig,
        alt=f"Log10 first/last gradient ratio of a {cfg.depth}-layer ReLU net against the weight scale. Without "
            f"batch norm it runs from {plain[0]:.0f} decades (vanishing) at gain {gains[0]:g} to "
            f"+{plain[-1]:.0f} (exploding) at gain {gains[-1]:g}, through zero at He's gain √2, on its dashed "
            f"theory line. With batch norm it is {bn.min():.1f} to {bn.max():.1f} decades at every gain: exploding, "
            "and no choice of initial weight scale changes it.",
        caption="The same random batch for every point. Without batch norm the weight scale decides vanishing or "
                "exploding; with batch norm the weight scale drops out and the explosion that batch norm itself "
                "causes remains.")])


class NoisyNorm:
    """Forward hook for a BatchNorm layer: after it, z <- s z + m with a fresh random s, m per unit and step.

    Santurkar et al. (2018): this puts back a changing ('covariate-shifted') distribution after every batch norm.
    Only while training; evaluation sees the plain network.
    """

    def __init__(self, shift, scale, seed):
        self.shift, self.log_scale = shift, math.log(scale)
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, module, inputs, output):
        if not module.training:
            return output
        units = output.shape[1]
        s = torch.exp((torch.rand(units, generator=self.gen) * 2 - 1) * self.log_scale)
        m = (torch.rand(units, generator=self.gen) * 2 - 1) * self.shift
        return output * s + m


def _shift_recorder():
    """on_step hook: each unit's batch mean of z_l at every step, kept for the layers' covariate-shift measure."""
    means = []

    def on_step(step, model_):
        means.append(torch.stack([b.z.detach().mean(0) for b in model_.blocks]))

    def shift():
        m = torch.stack(means)  # (steps, layers, units)
        return (m[1:] - m[:-1]).abs().mean(dim=(0, 2)).tolist()  # mean |change| per step, per layer

    return on_step, shift


@experiment(depth=20, width=64, steps=300, lr=0.1, batch_size=64, noise_shift=1.0, noise_scale=2.0, seeds=(0, 1, 2))
def training(cfg):
    variants = {
        "sigmoid": dict(norm=None),
        "sigmoid + batch norm": dict(norm="batch"),
        "sigmoid + batch norm + noise after it": dict(norm="batch", noise=True),
    }
    data_set = digits()
    fig, (left, right) = figure(ncols=2, height=3.6)
    data = {"train_size": len(data_set[0]), "test_size": len(data_set[2]), "runs": {}}
    for i, (label, v) in enumerate(variants.items()):
        seeds = []
        for seed in cfg.seeds:
            torch.manual_seed(seed)
            model = DeepMLP(cfg.depth, cfg.width, activation="sigmoid", norm=v["norm"], d_in=64)
            if v.get("noise"):
                hook = NoisyNorm(cfg.noise_shift, cfg.noise_scale, seed)
                for block in model.blocks:
                    block.norm.register_forward_hook(hook)
            on_step, shift = _shift_recorder()
            first_grad = []
            start = [w.detach().clone() for w in model.weights]

            def record(step, m, on_step=on_step, first_grad=first_grad):
                on_step(step, m)
                first_grad.append(norm(m.blocks[0].linear.weight.grad))

            hist = fit(model, data_set, cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, on_step=record, seed=seed)
            layer_shift = shift()
            growth = [norm(w) / norm(w0) for w, w0 in zip(model.weights, start)]
            seeds.append({**hist, "final_loss": hist["loss"][-1], "final_test_acc": hist["test_acc"][-1],
                          "shift_per_step_by_layer": layer_shift, "mean_shift_per_step": float(np.mean(layer_shift)),
                          "first_layer_weight_grad_at_init": first_grad[0],
                          "weight_norm_growth": float(np.median(growth))})
        keys = ("final_loss", "final_test_acc", "mean_shift_per_step", "first_layer_weight_grad_at_init",
                "weight_norm_growth")
        run = {"step": seeds[0]["step"], "loss": [r["loss"] for r in seeds],
               "test_acc": [r["test_acc"] for r in seeds], **{k: [r[k] for r in seeds] for k in keys},
               "shift_per_step_by_layer": [r["shift_per_step_by_layer"] for r in seeds]}
        data["runs"][label] = run
        median_band(left, run["step"], run["loss"], label=label, color=f"C{i}")
        median_band(right, run["step"], run["test_acc"], label=label, color=f"C{i}")
    right.axhline(0.1, color="0.5", ls=":", lw=1)
    right.annotate("chance", (cfg.steps, 0.1), xytext=(0, 3), textcoords="offset points", ha="right", color="0.4")
    finish(left, "training step", "training loss (cross-entropy, one batch)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Accuracy on held-out digits", legend=False)
    right.set_ylim(0, 1)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    runs = data["runs"]
    med = lambda label, key: float(np.median(runs[label][key]))
    n = len(cfg.seeds)
    return Result(data, [Plot(
        "training", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} SGD steps on the digits for a {cfg.depth}-layer "
            f"sigmoid net, median of {n} seeds with the range shaded. Without batch norm the loss stays at "
            f"{med('sigmoid', 'final_loss'):.2f} and accuracy at chance ({med('sigmoid', 'final_test_acc'):.0%}); "
            f"with batch norm the loss falls to {med('sigmoid + batch norm', 'final_loss'):.2f} and accuracy "
            f"reaches {med('sigmoid + batch norm', 'final_test_acc'):.0%}; with random shifts and scalings injected "
            f"after every batch norm the loss still falls to "
            f"{med('sigmoid + batch norm + noise after it', 'final_loss'):.2f}.",
        caption=f"{cfg.depth} sigmoid layers of width {cfg.width}, PyTorch's default initialisation, plain SGD with "
                f"learning rate {cfg.lr}, batches of {cfg.batch_size}, seeds {listed(cfg.seeds)}: the "
                f"line is the median, the band the range over seeds (the loss is that step's batch). Noise: after "
                f"every batch norm each unit is scaled by a random factor in "
                f"[1/{cfg.noise_scale:g}, {cfg.noise_scale:g}] and shifted by a random amount in "
                f"[−{cfg.noise_shift:g}, {cfg.noise_shift:g}], drawn afresh at every step.")])


WIDTH_NETS = {"tanh + BN": "tanh", "sigmoid + BN": "sigmoid"}


@experiment(widths=(32, 64, 128, 256, 512), depth=30, batch=128, fit_layers=25, seeds=(0, 1, 2))
def width_sweep(cfg):
    """The batch-normalised tanh and sigmoid nets grow faster than the wide-net prediction: does it shrink with width?

    Each network's rate is the slope of log10 ||dL/dh_l|| over its first `fit_layers` layers (away from the head),
    at initialisation, one random batch.
    """
    widths = np.array(cfg.widths)
    layers = np.arange(1, cfg.fit_layers + 1)
    fig, (left, right) = figure(ncols=2, height=4.6)
    data = {"widths": widths, "nets": {}}
    for i, (label, act) in enumerate(WIDTH_NETS.items()):
        rates = np.array([[-np.polyfit(layers, np.log10(probe_at_init(
            cfg.depth, int(w), cfg.batch, s, activation=act, norm="batch")["signal"][:cfg.fit_layers]), 1)[0]
            for s in cfg.seeds] for w in widths])  # (widths, seeds): decades gained per layer toward the input
        predicted = math.log10(bn_factor(act))
        excess = rates - predicted
        median = np.median(rates, axis=1)
        color = f"C{i}"
        left.errorbar(widths, median, yerr=[median - rates.min(1), rates.max(1) - median], color=color, marker="o",
                      capsize=3, label=f"{label}, measured")
        left.axhline(predicted, color=color, ls="--", lw=1, label=f"{label}, wide-net theory {predicted:.4f}")
        med_excess = np.median(excess, axis=1)
        right.errorbar(widths, med_excess, yerr=[med_excess - excess.min(1), excess.max(1) - med_excess],
                       color=color, marker="o", capsize=3, label=label)
        slope = float(np.polyfit(np.log10(widths), np.log10(np.maximum(med_excess, 1e-12)), 1)[0])
        data["nets"][label] = {"decades_per_layer": median, "per_seed": rates, "min": rates.min(1),
                               "max": rates.max(1), "predicted_decades_per_layer": predicted,
                               "excess": med_excess, "excess_min": excess.min(1), "excess_max": excess.max(1),
                               "excess_log_slope": slope}
    guide = data["nets"]["tanh + BN"]["excess"][0] * np.sqrt(widths[0] / widths)
    right.plot(widths, guide, color="0.4", ls=":", lw=1, label="∝ 1/√width")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
    right.set_yscale("log")
    finish(left, "width (units per layer)", "decades gained per layer",
           r"Growth of $\|\partial L/\partial h_\ell\|$ toward the input", legend=False)
    finish(right, "width (units per layer)", "measured − predicted (decades/layer)",
           "The excess over the wide-net theory", legend=False)
    handles, labels = left.get_legend_handles_labels()
    guide_handles, guide_labels = right.get_legend_handles_labels()
    fig.legend(handles + guide_handles[-1:], labels + guide_labels[-1:], loc="outside lower center", ncols=2)
    t, g = data["nets"]["tanh + BN"], data["nets"]["sigmoid + BN"]
    return Result(data, [Plot(
        "width-sweep", fig,
        alt=f"Left: the per-layer growth rate of the back-propagated gradient in batch-normalised tanh and sigmoid "
            f"nets at initialisation, against width from {widths[0]} to {widths[-1]}, with the wide-net prediction "
            f"as a dashed line. Tanh falls from {t['decades_per_layer'][0]:.4f} to {t['decades_per_layer'][-1]:.4f} "
            f"decades per layer toward its prediction {t['predicted_decades_per_layer']:.4f}, sigmoid from "
            f"{g['decades_per_layer'][0]:.4f} to {g['decades_per_layer'][-1]:.4f} toward "
            f"{g['predicted_decades_per_layer']:.4f}. Right: the excess over the prediction on log-log axes, "
            f"falling roughly as one over the square root of the width.",
        caption=f"{cfg.depth}-layer MLPs with batch norm after every linear layer, PyTorch's default initialisation, "
                f"one random batch of {cfg.batch} standard-normal inputs; the rate is the slope of "
                r"$\log_{10}\|\partial L/\partial h_\ell\|$ "
                f"over layers 1–{cfg.fit_layers}; median over seeds {listed(cfg.seeds)}, whiskers the "
                f"range. Dashed: $\\log_{{10}}\\sqrt{{\\mathrm{{E}}[g'(z)^2] / \\operatorname{{Var}} g(z)}}$, the "
                "infinite-width, infinite-batch factor.")])


@experiment(depth=10, width=64, batch=128, scales=(0.25, 0.5, 1.0, 2.0, 4.0), seed=0)
def scale_invariance(cfg):
    """A batch-normalised net computes the same function for weights cW: its loss and the ratios of its back-propagated
    signals do not change, but the weight gradients shrink as 1/c (van Laarhoven 2017; Arora, Li & Lyu 2019)."""
    scales = np.array(cfg.scales)
    torch.manual_seed(cfg.seed)
    base = DeepMLP(cfg.depth, cfg.width, activation="relu", norm="batch")
    x, y = random_batch(cfg.width, cfg.batch)
    rows = []
    for c in scales:
        model = DeepMLP(cfg.depth, cfg.width, activation="relu", norm="batch")
        model.load_state_dict(base.state_dict())
        with torch.no_grad():
            for w in model.weights:
                w.mul_(float(c))
        rows.append(probes.gradient_flow(model, x, y))
    one = int(np.flatnonzero(scales == 1.0)[0])
    weight = np.array([r["weight"] for r in rows])  # (scales, layers)
    signal = np.array([r["signal"] for r in rows])
    weight_rel = weight / weight[one]
    data = {"scales": scales, "loss": [r["loss"] for r in rows],
            "loss_change": float(max(abs(r["loss"] - rows[one]["loss"]) for r in rows)),
            "signal_ratio_first_last": [log_ratio(r["signal"]) for r in rows],
            "weight_grad_relative": weight_rel,
            "weight_grad_times_scale": weight_rel * scales[:, None],
            "slope": float(np.polyfit(np.log10(scales), np.log10(np.median(weight_rel, axis=1)), 1)[0]),
            "signal_relative": signal / signal[one]}
    fig, ax = figure(height=3.6)
    layers = (1, cfg.depth // 2, cfg.depth)
    for i, l in enumerate(layers):
        ax.plot(scales, weight_rel[:, l - 1], marker="o", color=f"C{i}", label=rf"$\|\partial L/\partial W_{{{l}}}\|$, layer {l}",
                ls="none", ms=9 - 2.5 * i)
    ax.plot(scales, 1 / scales, color="0.2", ls="--", lw=1.2, label="theory: 1/c", zorder=5)
    ax.plot(scales, np.array(data["loss"]) / data["loss"][one], color="C3", marker="s", ms=4,
            label=r"loss (and $\|\partial L/\partial h_1\|\,/\,\|\partial L/\partial h_L\|$)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(scales, [f"{c:g}" for c in scales])
    ax.minorticks_off()
    finish(ax, "every hidden weight matrix multiplied by c", "relative to c = 1",
           f"{cfg.depth}-layer ReLU net with batch norm, at initialisation", loc="lower left")
    return Result(data, [Plot(
        "scale-invariance", fig,
        alt=f"Log-log plot against the factor c by which every hidden weight matrix of a {cfg.depth}-layer "
            f"batch-normalised ReLU net is multiplied, {scales[0]:g} to {scales[-1]:g}. The loss and the ratio of "
            f"the first- to the last-layer back-propagated gradient stay the same; the weight gradients of the "
            f"first, middle and last layers fall on the dashed line 1/c (fitted slope {data['slope']:.3f}).",
        caption=f"The same initial network and batch of {cfg.batch} standard-normal inputs with random labels for "
                f"every c, seed {cfg.seed}. Batch norm divides out the scale of W, so the function, the loss and "
                "$\\partial L/\\partial h$ are unchanged while $\\partial L/\\partial W$ scales as $1/c$: the step a "
                "learning rate $\\eta$ makes relative to the weights scales as $\\eta/c^2$.")])
