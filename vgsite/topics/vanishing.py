"""Why gradients vanish: saturating derivatives multiplied layer after layer."""
import numpy as np
import torch

from vgsite.plots import RATIO_LABEL, figure, finish, gradient_by_layer, ratio_vs_depth
from vgsite.probes import ratio_by_depth, derivative, log_ratio, probe_at_init
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import WEIGHT_VARIANCE, per_layer_factor

NETS = {  # label: network settings
    "sigmoid, default init": dict(activation="sigmoid", init="default"),
    "tanh, default init": dict(activation="tanh", init="default"),
    "ReLU, default init": dict(activation="relu", init="default"),
    "ReLU, He init": dict(activation="relu", init="kaiming"),
}

# Predicted factor per layer, sqrt(n Var(W) E[g'(z)^2]) near z = 0 (Glorot & Bengio 2010; He et al. 2015):
# PyTorch's default init has n Var(W) = 1/3, He's 2; sigmoid' = 1/4 and tanh' = 1 at 0; ReLU passes half its units.
PER_LAYER_FACTOR = {label: per_layer_factor(net["activation"], WEIGHT_VARIANCE[net["init"]])
                    for label, net in NETS.items()}


@experiment(low=-6.0, high=6.0, points=601, small_outputs=(0.01, 0.1))
def activation_derivatives(cfg):
    z = torch.linspace(cfg.low, cfg.high, cfg.points)
    fig, (left, right) = figure(ncols=2, height=3.2)
    data = {}
    for name, label in (("sigmoid", "sigmoid σ"), ("tanh", "tanh"), ("relu", "ReLU")):
        g = derivative(name, z)
        left.plot(z, {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[name](z), label=label)
        right.plot(z, g, label=label)
        data[name] = {"max_derivative": g.max(), "derivative_at_3": derivative(name, torch.tensor([3.0]))[0]}
    # The slope of a unit whose output h is small (the three-paragraph summary's claim): sigmoid' = h(1 - h) <= h,
    # tanh' = 1 - h^2 is near 1, ReLU's slope is 0 where its output is 0 and 1 for any positive output.
    outputs = torch.tensor(cfg.small_outputs, dtype=torch.float64)
    inverse = {"sigmoid": torch.logit(outputs), "tanh": torch.atanh(outputs), "relu": outputs}
    for name, z_of_h in inverse.items():
        data[name]["slope_at_output"] = dict(zip(map(str, cfg.small_outputs), derivative(name, z_of_h).tolist()))
    right.axhline(0.25, color="0.4", ls=":", lw=1)
    right.annotate("σ′ ≤ 1/4", (cfg.high, 0.25), xytext=(-4, 4), textcoords="offset points", ha="right",
                   color="0.3")
    finish(left, "pre-activation z", "g(z)", "Activation")
    finish(right, "pre-activation z", "g′(z)", "Its slope g′(z), multiplied in per layer")
    return Result(data, [Plot("activation-derivatives", fig,
                              alt="Left: sigmoid, tanh and ReLU against their input. Right: their derivatives; "
                                  "the sigmoid's peaks at 0.25, tanh's at 1, and both fall to nearly 0 for |z| "
                                  "above 4, while ReLU's is 1 for every positive input.",
                              caption="The activations and their slopes. Backpropagation multiplies one slope "
                                      "per layer into the gradient.")])


@experiment(depth=30, width=64, batch=64, seed=0)
def gradient_norms(cfg):
    fig, ax = figure(height=4.2)
    layers = np.arange(1, cfg.depth + 1)
    data = {"layers": layers, "nets": {}}
    for i, (label, net) in enumerate(NETS.items()):
        flow = probe_at_init(cfg.depth, cfg.width, cfg.batch, cfg.seed, **net)
        gradient_by_layer(ax, layers, flow["signal"], label=label, marker="o", ms=3)
        data["nets"][label] = {"signal": flow["signal"], "log10_ratio_first_last": log_ratio(flow["signal"])}
        if net["activation"] == "sigmoid":
            # Bound: ||dL/dh_{l-1}|| <= ||W_l||_2 * max sigma' * ||dL/dh_l||, with max sigma' = 1/4.
            torch.manual_seed(cfg.seed)
            from vgsite.nets import DeepMLP

            model = DeepMLP(cfg.depth, cfg.width, **net)
            spectral = [torch.linalg.matrix_norm(w, ord=2).item() for w in model.weights]
            bound = [flow["signal"][-1]]
            for s in spectral[:0:-1]:  # W_L down to W_2
                bound.append(bound[-1] * s / 4)
            bound = bound[::-1]
            ax.plot(layers, bound, color=ax.lines[-1].get_color(), ls="--", lw=1.2,
                    label=r"sigmoid bound: $\prod\,\|W_\ell\|_2\,/\,4$")
            data["nets"][label]["bound"] = bound
    finish(ax, ax.get_xlabel(), ax.get_ylabel(), f"{cfg.depth}-layer MLP, width {cfg.width}, at initialisation",
           loc="lower right")
    r = {label: net["log10_ratio_first_last"] for label, net in data["nets"].items()}
    return Result(data, [Plot("gradient-norms", fig,
                              alt=f"Log-scale plot of the back-propagated gradient norm at each of {cfg.depth} "
                                  f"layers, from the input (left) to the output (right). Sigmoid falls by "
                                  f"{-r['sigmoid, default init']:.1f} decades, a factor of ten every "
                                  f"{(cfg.depth - 1) / -r['sigmoid, default init']:.1f} layers, below its dashed "
                                  f"bound; tanh and ReLU with PyTorch's default initialisation also shrink steadily "
                                  f"({r['tanh, default init']:+.1f} and {r['ReLU, default init']:+.1f} decades); "
                                  f"ReLU with He initialisation stays level ({r['ReLU, He init']:+.1f}).",
                              caption="Gradient norm by layer in freshly initialised networks, on one random "
                                      "batch. The dashed line is the most the sigmoid network's gradient can be.")])


@experiment(depths=(2, 5, 10, 15, 20, 30, 40, 50, 60), width=64, batch=64, seeds=(0, 1, 2))
def depth_sweep(cfg):
    fig, ax = figure(height=3.8)
    data = {"depths": list(cfg.depths), "nets": {}}
    for label, net in NETS.items():
        ratios = ratio_by_depth(cfg.depths, cfg.seeds, cfg.width, cfg.batch, **net)
        mean = np.array([np.mean(r) for r in ratios])  # -inf where a first-layer gradient underflowed to 0
        predicted = np.log10(PER_LAYER_FACTOR[label]) * (np.array(cfg.depths) - 1)
        ratio_vs_depth(ax, cfg.depths, mean, label=label, theory=predicted, theory_label="")
        data["nets"][label] = {"log10_ratio": mean, "per_seed": ratios, "predicted": predicted,
                               "predicted_slope_per_layer": np.log10(PER_LAYER_FACTOR[label]),
                               "slope_per_layer": float(np.polyfit(np.array(cfg.depths)[np.isfinite(mean)],
                                                                   mean[np.isfinite(mean)], 1)[0])}
    ax.plot([], [], color="0.4", ls="--", lw=1.3, label="theory (dashed, same colour)")
    finish(ax, "depth L (layers)", RATIO_LABEL,
           "How much the gradient shrinks from the last layer to the first", loc="lower left")
    return Result(data, [Plot("depth-sweep", fig,
                              alt="Log10 of the ratio of first-layer to last-layer gradient norm against depth "
                                  "from 2 to 60 layers. Each network with PyTorch's default initialisation "
                                  "falls on a straight line, steepest for sigmoid; ReLU with He "
                                  "initialisation stays near zero at every depth. Dashed lines, the "
                                  "theoretical prediction for each network, lie on top of the measurements. "
                                  "Sigmoid's gradient underflows to exactly zero from 50 layers on, marked by "
                                  "triangles on the bottom edge.",
                              caption=f"Mean over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)} (a triangle: at least one seed underflowed to 0). A straight line on this plot is "
                                      "exponential decay: each layer multiplies the gradient by the same factor.")])
