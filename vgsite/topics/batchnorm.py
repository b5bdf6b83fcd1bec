"""Batch normalisation: it ends vanishing in a deep sigmoid net, and on its own makes deep nets' gradients explode."""
import math

import numpy as np
import torch

from vgsite.nets import ACTIVATIONS, DeepMLP
from vgsite.plots import figure, finish, log_line, mark_underflow
from vgsite.probes import ratio_by_depth, derivative, log_ratio, norm, probe_at_init
from vgsite.registry import Plot, Result, experiment
from vgsite.train import digits, fit


def bn_factor(activation: str) -> float:
    """Predicted per-layer growth of ||dL/dh|| in a wide net with batch norm and large batches, no skips.

    BN makes each pre-activation z ~ N(0, 1) over the batch whatever the weights, so a layer multiplies the
    squared gradient by E[g'(z)^2] (the slopes) and divides it by Var[g(z)] (BN's division by the spread of
    its own input). The Gaussian Poincare inequality Var[g(z)] <= E[g'(z)^2] makes the factor >= 1 for every
    activation, equal to 1 only for a linear one. For ReLU it is sqrt(pi / (pi - 1)) = 1.21 (Yang et al. 2019).
    """
    z = torch.linspace(-12, 12, 240001, dtype=torch.float64)
    weight = torch.exp(-z ** 2 / 2)
    weight /= weight.sum()
    g = ACTIVATIONS[activation]()(z)
    mean = (weight * g).sum()
    var = (weight * (g - mean) ** 2).sum()
    slope2 = (weight * derivative(activation, z) ** 2).sum()
    return math.sqrt((slope2 / var).item())


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
    ax.invert_xaxis()
    finish(ax, "layer l (the output is on the left, the input on the right)",
           "‖∂L/∂h_l‖, back-propagated gradient",
           f"{cfg.depth}-layer MLP, width {cfg.width}, PyTorch default init, at initialisation", loc="lower left")
    r = {k: v["log10_ratio_first_last"] for k, v in data["nets"].items()}
    return Result(data, [Plot(
        "gradient-flow", fig,
        alt=f"Log-scale gradient norm at each of {cfg.depth} layers, from the output (left) to the input (right). "
            f"Without batch norm the sigmoid net's gradient falls by {-r['sigmoid']:.0f} decades and the tanh net's "
            f"by {-r['tanh']:.0f}; with batch norm both stay within a decade of the last layer's "
            f"(first/last ratio 10^{r['sigmoid + batch norm']:.2f} and 10^{r['tanh + batch norm']:.2f}).",
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
        (line,) = ax.plot(depths, mean, marker="o", label=label)
        predicted = math.log10(factor) * (depths - 1)
        ax.plot(depths, predicted, color=line.get_color(), ls="--", lw=1)
        data["nets"][label] = {"log10_ratio": mean, "per_seed": ratios, "predicted": predicted,
                               "predicted_factor_per_layer": factor,
                               "predicted_decades_per_layer": math.log10(factor),
                               "decades_per_layer": float(np.polyfit(depths, mean, 1)[0])}
    ax.axhline(0, color="0.3", lw=1)
    ax.plot([], [], color="0.4", ls="--", lw=1, label="theory: √(E[g′(z)²] / Var g(z)) per layer")
    finish(ax, "depth (layers)", "log₁₀(‖∂L/∂h₁‖ / ‖∂L/∂h_L‖)",
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
    finish(ax, "weight scale: W ~ N(0, gain²/n), gain", "log₁₀(‖∂L/∂h₁‖ / ‖∂L/∂h_L‖)",
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


@experiment(depth=20, width=64, steps=300, lr=0.1, batch_size=64, noise_shift=1.0, noise_scale=2.0, seed=0)
def training(cfg):
    variants = {
        "sigmoid": dict(norm=None),
        "sigmoid + batch norm": dict(norm="batch"),
        "sigmoid + batch norm + noise after it": dict(norm="batch", noise=True),
    }
    data_set = digits()
    fig, (left, right) = figure(ncols=2, height=3.6)
    data = {"runs": {}}
    for i, (label, v) in enumerate(variants.items()):
        torch.manual_seed(cfg.seed)
        model = DeepMLP(cfg.depth, cfg.width, activation="sigmoid", norm=v["norm"], d_in=64)
        if v.get("noise"):
            hook = NoisyNorm(cfg.noise_shift, cfg.noise_scale, cfg.seed)
            for block in model.blocks:
                block.norm.register_forward_hook(hook)
        on_step, shift = _shift_recorder()
        first_grad = []

        def record(step, m, on_step=on_step, first_grad=first_grad):
            on_step(step, m)
            first_grad.append(norm(m.blocks[0].linear.weight.grad))

        hist = fit(model, data_set, cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, on_step=record, seed=cfg.seed)
        left.plot(hist["step"], hist["loss"], label=label, color=f"C{i}")
        right.plot(hist["step"], hist["test_acc"], label=label, color=f"C{i}")
        layer_shift = shift()
        data["runs"][label] = {**hist, "final_loss": hist["loss"][-1], "final_test_acc": hist["test_acc"][-1],
                               "shift_per_step_by_layer": layer_shift,
                               "mean_shift_per_step": float(np.mean(layer_shift)),
                               "first_layer_weight_grad_at_init": first_grad[0]}
    right.axhline(0.1, color="0.5", ls=":", lw=1)
    right.annotate("chance", (cfg.steps, 0.1), xytext=(0, 3), textcoords="offset points", ha="right", color="0.4")
    finish(left, "training step", "training loss (cross-entropy, one batch)", "Loss", legend=False)
    finish(right, "training step", "test accuracy", "Accuracy on held-out digits", legend=False)
    right.set_ylim(0, 1)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    runs = data["runs"]
    return Result(data, [Plot(
        "training", fig,
        alt=f"Training loss and test accuracy over {cfg.steps} SGD steps on the digits for a {cfg.depth}-layer "
            f"sigmoid net. Without batch norm the loss stays at {runs['sigmoid']['final_loss']:.2f} and accuracy at "
            f"chance ({runs['sigmoid']['final_test_acc']:.0%}); with batch norm the loss falls to "
            f"{runs['sigmoid + batch norm']['final_loss']:.2f} and accuracy reaches "
            f"{runs['sigmoid + batch norm']['final_test_acc']:.0%}; with random shifts and scalings injected after "
            f"every batch norm the loss still falls to "
            f"{runs['sigmoid + batch norm + noise after it']['final_loss']:.2f}.",
        caption=f"{cfg.depth} sigmoid layers of width {cfg.width}, PyTorch's default initialisation, plain SGD with "
                f"learning rate {cfg.lr}, batches of {cfg.batch_size}, the same seed and batches for every run. "
                f"Noise: after every batch norm each unit is scaled by a random factor in "
                f"[1/{cfg.noise_scale:g}, {cfg.noise_scale:g}] and shifted by a random amount in "
                f"[−{cfg.noise_shift:g}, {cfg.noise_shift:g}], drawn afresh at every step.")])
