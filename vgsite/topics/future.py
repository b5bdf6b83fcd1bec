"""What came after: layer norm, pre-norm residual stacks, self-normalising activations, isometric initialisation."""
import numpy as np
import torch
from torch import nn

from vgsite.nets import DeepMLP
from vgsite.plots import LAYER_LABEL, RATIO_LABEL, RELATIVE_LABEL, figure, finish, layer_axis, log_line
from vgsite.probes import derivative, gradient_flow, log_ratio, random_batch
from vgsite.registry import Plot, Result, experiment


class PostNormMLP(DeepMLP):
    """Post-norm residual stack, as in the original transformer: h_l = LN(h_(l-1) + g(W_l h_(l-1) + b_l)).

    DeepMLP's own norm="layer", residual=True puts the norm inside the branch (h + g(LN(W h))); here it sits on
    the main path, after the addition, where every gradient has to pass through it.
    """

    def __init__(self, depth, width, **net):
        super().__init__(depth, width, **net)
        self.post = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))

    def forward(self, x, keep=False):
        self.hidden = []
        h = x
        for block, post in zip(self.blocks, self.post):
            h = post(h + block(h))
            if keep and h.requires_grad:
                h.retain_grad()
            if keep:
                self.hidden.append(h)
        return self.head(h)


# label: (class, settings). ReLU with He initialisation throughout, so the plain stack starts as well as it can.
STACKS = {
    "plain, no norm": (DeepMLP, dict()),
    "residual, no norm": (DeepMLP, dict(residual=True)),
    "post-norm residual: LN(h + f(h))": (PostNormMLP, dict()),
    "pre-norm residual: h + f(LN(h))": (DeepMLP, dict(residual=True, norm="layer", norm_first=True)),
    "norm inside the branch: h + g(LN(Wh))": (DeepMLP, dict(residual=True, norm="layer")),
}
STACK_COLORS = ("#000000", "#CC79A7", "#D55E00", "#0072B2", "#009E73")


def probe(cls, net, depth, width, batch, seed, **common):
    torch.manual_seed(seed)
    model = cls(depth, width, **common, **net)
    x, y = random_batch(width, batch)
    return gradient_flow(model, x, y)


@experiment(depth=64, width=64, batch=64, seeds=(0, 1, 2), depths=(8, 16, 32, 64, 128), activation="relu",
            init="kaiming")
def norm_stacks(cfg):
    fig, (left, right) = figure(ncols=2, height=4.6)
    layers = np.arange(1, cfg.depth + 1)
    common = dict(activation=cfg.activation, init=cfg.init)
    data = {"layers": layers, "depths": cfg.depths, "stacks": {}}
    for (label, (cls, net)), color in zip(STACKS.items(), STACK_COLORS):
        flows = [probe(cls, net, cfg.depth, cfg.width, cfg.batch, s, **common) for s in cfg.seeds]
        signal = 10 ** np.mean([np.log10(f["signal"]) for f in flows], axis=0)
        log_line(left, layers, signal / signal[-1], label=label, color=color)
        sweep = [np.mean([log_ratio(probe(cls, net, d, cfg.width, cfg.batch, s, **common)["signal"])
                          for s in cfg.seeds]) for d in cfg.depths]
        right.plot(cfg.depths, sweep, marker="o", color=color, label=label)
        data["stacks"][label] = {"signal": signal, "log10_first_over_last": np.log10(signal[0] / signal[-1]),
                                 "log10_max_over_min": np.log10(signal.max() / signal.min()),
                                 "sweep_log10_ratio": sweep,
                                 "act_std_last": float(np.mean([f["act_std"][-1] for f in flows]))}
    layer_axis(left, layers)
    finish(left, "block ℓ (1 = next to the input)", RELATIVE_LABEL,
           f"{cfg.depth} blocks, width {cfg.width}, at initialisation", legend=False)
    right.axhline(0, color="0.3", lw=1)
    right.set_xscale("log", base=2)
    right.set_xticks(cfg.depths, [str(d) for d in cfg.depths])
    right.set_ylim(-2, 15)
    finish(right, "depth L (blocks)", RATIO_LABEL, "The same ratio as depth grows", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    stacks = data["stacks"]
    say = lambda label: f"{stacks[label]['log10_first_over_last']:+.1f}"
    return Result(data, [Plot(
        "norm-stacks", fig,
        alt=f"Left: the gradient norm at each of {cfg.depth} blocks relative to the last, log scale, for five ReLU "
            "stacks with He initialisation at initialisation. Decades between the first and the last block: plain "
            f"{say('plain, no norm')}, residual without normalisation {say('residual, no norm')} (exploding), "
            f"post-norm {say('post-norm residual: LN(h + f(h))')}, pre-norm "
            f"{say('pre-norm residual: h + f(LN(h))')}, norm inside the branch "
            f"{say('norm inside the branch: h + g(LN(Wh))')}. Right: that number against depth from "
            f"{cfg.depths[0]} to {cfg.depths[-1]}: the residual stack without normalisation and the post-norm one "
            "climb in a straight line with depth, exponential growth, while pre-norm rises slowly and the "
            "branch-normalised one stays flat.",
        caption=f"Width {cfg.width}, ReLU, He initialisation, biases 0, LayerNorm with its default gain 1 and bias 0; "
                f"one batch of {cfg.batch} standard-normal inputs with random labels, cross-entropy; geometric mean "
                f"over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)} (left), mean of the log over seeds (right, log-scaled depth axis).")])


ACTIVATION_NETS = {  # label: settings; LeCun's N(0, 1/n) for all but the He line
    "SELU, N(0, 1/n)": dict(activation="selu", init="normal", gain=1.0),
    "tanh, N(0, 1/n)": dict(activation="tanh", init="normal", gain=1.0),
    "ReLU, N(0, 1/n)": dict(activation="relu", init="normal", gain=1.0),
    "ReLU, He N(0, 2/n)": dict(activation="relu", init="normal", gain=float(np.sqrt(2))),
}


@experiment(depth=64, width=64, batch=256, seeds=(0, 1, 2))
def selu(cfg):
    fig, (left, right) = figure(ncols=2, height=4.6)
    layers = np.arange(1, cfg.depth + 1)
    data = {"layers": layers, "nets": {}}
    for label, net in ACTIVATION_NETS.items():
        flows = [probe(DeepMLP, net, cfg.depth, cfg.width, cfg.batch, s) for s in cfg.seeds]
        var = np.mean([np.square(f["act_std"]) for f in flows], axis=0)
        mean = np.mean([f["act_mean"] for f in flows], axis=0)
        signal = 10 ** np.mean([np.log10(f["signal"]) for f in flows], axis=0)
        log_line(left, layers, var, label=label)
        log_line(right, layers, signal / signal[-1], label=label)
        data["nets"][label] = {"variance": var, "mean": mean, "signal": signal,
                               "variance_last": var[-1], "mean_last": mean[-1],
                               "log10_first_over_last": np.log10(signal[0] / signal[-1])}
    # Backward factor per layer at SELU's fixed point (mean 0, variance 1): chi = n Var(W) E[selu'(z)^2], z ~ N(0, 1)
    z = torch.linspace(-10, 10, 200_001, dtype=torch.float64)
    density = torch.exp(-z ** 2 / 2) / np.sqrt(2 * np.pi)
    chi = (derivative("selu", z) ** 2 * density).sum().item() * (z[1] - z[0]).item()
    predicted = chi ** ((cfg.depth - layers) / 2)
    right.plot(layers, predicted, color=right.lines[0].get_color(), ls="--", lw=1.1,
               label=rf"SELU theory: $\sqrt{{\chi}}$ per layer, $\chi = {chi:.3f}$")
    data["selu_chi"] = chi
    data["selu_predicted_log10_first_over_last"] = np.log10(predicted[0])
    left.axhline(1, color="0.3", ls="--", lw=1.1, label="SELU's fixed point: variance 1")
    finish(left, LAYER_LABEL, r"$\mathrm{Var}(h_\ell)$, activations", "Forward: activations", legend=False)
    layer_axis(right, layers)
    finish(right, LAYER_LABEL, RELATIVE_LABEL, "Backward: gradients", legend=False)
    handles, labels = left.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    fig.legend(handles + extra[0][-1:], labels + extra[1][-1:], loc="outside lower center", ncols=3)
    nets = data["nets"]
    return Result(data, [Plot(
        "selu", fig,
        alt=f"Left: variance of the activations over {cfg.depth} layers, log scale. With SELU it stays at "
            f"{nets['SELU, N(0, 1/n)']['variance_last']:.2f} at the last layer, on its predicted fixed point 1; "
            f"tanh falls to {nets['tanh, N(0, 1/n)']['variance_last']:.2g}, ReLU with N(0, 1/n) to "
            f"{nets['ReLU, N(0, 1/n)']['variance_last']:.1e}, and ReLU with He's variance stays near "
            f"{nets['ReLU, He N(0, 2/n)']['variance_last']:.2g}. Right: the back-propagated gradient, SELU's "
            f"grows by {nets['SELU, N(0, 1/n)']['log10_first_over_last']:.1f} decades from the last layer to the first, "
            f"beside a dashed prediction of {data['selu_predicted_log10_first_over_last']:.2f}; ReLU with N(0, 1/n) "
            f"vanishes by {-nets['ReLU, N(0, 1/n)']['log10_first_over_last']:.0f} decades.",
        caption=f"Plain {cfg.depth}-layer perceptrons of width {cfg.width}, weights N(0, gain²/n), biases 0, "
                f"at initialisation, on {cfg.batch} standard-normal inputs; mean over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)} "
                "(gradients: geometric mean).")])


@experiment(depth=32, width=64, seeds=(0, 1, 2))
def isometry(cfg):
    """Singular values of the input-output Jacobian of a deep network at one input (Saxe et al. 2014;
    Pennington, Schoenholz & Ganguli 2017)."""
    nets = {
        "linear, Gaussian N(0, 1/n)": dict(activation="linear", init="normal"),
        "linear, orthogonal": dict(activation="linear", init="orthogonal"),
        "tanh, Gaussian N(0, 1/n)": dict(activation="tanh", init="normal"),
        "tanh, orthogonal": dict(activation="tanh", init="orthogonal"),
    }
    colors = ("#56B4E9", "#0072B2", "#E69F00", "#D55E00")
    fig, ax = figure(height=4.0)
    rank = np.arange(1, cfg.width + 1)
    data = {"rank": rank, "nets": {}}
    for (label, net), color in zip(nets.items(), colors):
        spectra = []
        for seed in cfg.seeds:
            torch.manual_seed(seed)
            model = DeepMLP(cfg.depth, cfg.width, **net).double()
            with torch.no_grad():
                for block in model.blocks:
                    nn.init.zeros_(block.linear.bias)
            # a small input: near the linear regime, where isometry is possible
            x = torch.randn(cfg.width, dtype=torch.float64) * 0.1

            def body(v):
                for block in model.blocks:
                    v = block(v)
                return v

            jac = torch.autograd.functional.jacobian(body, x)
            spectra.append(torch.linalg.svdvals(jac).numpy())
        spectra = np.array(spectra)
        for i, s in enumerate(spectra):
            ax.plot(rank, s, color=color, lw=1.4, alpha=0.9, label=label if i == 0 else None)
        data["nets"][label] = {"singular_values": spectra,
                               "log10_max_over_min": np.mean(np.log10(spectra[:, 0] / spectra[:, -1])),
                               "log10_median": np.mean(np.log10(np.median(spectra, axis=1)))}
    ax.set_yscale("log")
    ax.axhline(1, color="0.3", ls="--", lw=1.1, label="isometry: every singular value 1")
    finish(ax, "rank", r"singular value of $\partial h_L/\partial x$", f"Input–output Jacobian of {cfg.depth} layers, width "
           f"{cfg.width}", loc="lower left", ncols=2)
    d = data["nets"]
    return Result(data, [Plot(
        "isometry", fig,
        alt=f"The {cfg.width} singular values of the input-output Jacobian of {cfg.depth}-layer networks, sorted, "
            "log scale. With orthogonal weights the linear network's are all exactly 1 and the tanh network's "
            f"nearly so (spread {d['tanh, orthogonal']['log10_max_over_min']:.1f} decades); with Gaussian weights "
            f"the same networks spread over {d['linear, Gaussian N(0, 1/n)']['log10_max_over_min']:.0f} (linear) and "
            f"{d['tanh, Gaussian N(0, 1/n)']['log10_max_over_min']:.0f} (tanh) decades.",
        caption=f"One input of standard deviation 0.1, biases 0, float64, {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)} (one line each). A gradient "
                "keeps its size through the network in every direction only when all singular values are near 1: "
                "dynamical isometry.")])
