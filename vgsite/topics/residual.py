"""Residual connections: the identity path in each layer's Jacobian, and the degradation of deep plain nets."""
import math

import numpy as np

from vgsite.nets import DeepMLP
from vgsite.plots import (GRADIENT_LABEL, LAYER_LABEL, RATIO_LABEL, figure, finish, layer_axis, listed, log_line,
                          median_band, power_of_ten, ratio_vs_depth)
from vgsite.probes import ratio_by_depth, log_ratio, norm, probe_at_init
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import WEIGHT_VARIANCE, bn_factor, per_layer_factor, slope2, variance
from vgsite.train import across_seeds, dataset_loss, digits, fit_stacked

# E[tanh'(z)^2] and Var[tanh(z)] for z ~ N(0, 1): what one batch-normalised tanh branch adds per layer.
TANH_SLOPE2 = slope2("tanh")
TANH_VAR = variance("tanh")

NETS = {  # label: network settings; tanh and PyTorch's default initialisation throughout
    "plain": dict(activation="tanh"),
    "residual": dict(activation="tanh", residual=True),
    "plain + BN": dict(activation="tanh", norm="batch"),
    "residual + BN": dict(activation="tanh", norm="batch", residual=True),
}
STYLES = {"plain": dict(color="C0", ls=":"), "residual": dict(color="C1", ls=":"),
          "plain + BN": dict(color="C0", ls="-"), "residual + BN": dict(color="C1", ls="-")}


def residual_bn_prediction(depth, input_var=1.0):
    """log10 first/last gradient ratio of a residual tanh + BN net at init, large width and batch.

    The stream's variance grows by Var[tanh z] per block; the branch's Jacobian adds E[tanh'(z)^2] / Var(h) to
    the squared gain of the identity, a term that shrinks with depth: polynomial growth, not exponential.
    """
    var = input_var + TANH_VAR * np.arange(depth)  # Var(h_{l-1}) entering block l = 1..depth
    per_layer = 0.5 * np.log10(1 + TANH_SLOPE2 / var[1:])  # blocks 2..depth pass the gradient on to h_{l-1}
    return float(per_layer.sum())


def predictions(label, depths):
    depths = np.asarray(depths)
    if label == "plain":
        return math.log10(per_layer_factor("tanh", WEIGHT_VARIANCE["default"])) * (depths - 1)  # tanh' ~ 1 near 0
    if label == "plain + BN":
        return math.log10(bn_factor("tanh")) * (depths - 1)
    if label == "residual + BN":
        return np.array([residual_bn_prediction(d) for d in depths])
    return None


@experiment(depth=56, width=64, batch=128, seed=0)
def gradient_flow(cfg):
    fig, ax = figure(height=4.2)
    layers = np.arange(1, cfg.depth + 1)
    data = {"layers": layers, "nets": {}}
    for label, net in NETS.items():
        flow = probe_at_init(cfg.depth, cfg.width, cfg.batch, cfg.seed, **net)
        log_line(ax, layers, flow["signal"], label=label, marker="o" if "BN" in label else None, ms=2.5,
                 **STYLES[label])
        data["nets"][label] = {"signal": flow["signal"], "log10_ratio_first_last": log_ratio(flow["signal"])}
    layer_axis(ax, layers)
    finish(ax, LAYER_LABEL, GRADIENT_LABEL,
           f"{cfg.depth}-layer tanh MLP, width {cfg.width}, default init, at initialisation", loc="lower right")
    r = {k: v["log10_ratio_first_last"] for k, v in data["nets"].items()}
    return Result(data, [Plot(
        "gradient-flow", fig,
        alt=f"Log-scale gradient norm at each of {cfg.depth} layers, input on the left. The plain tanh net's "
            f"gradient falls by {-r['plain']:.0f} decades toward the input; with skip connections it instead "
            f"changes by {r['residual']:+.1f} decades; the plain net with batch norm grows by {r['plain + BN']:.1f} "
            f"decades and the residual one with batch norm by {r['residual + BN']:.1f}.",
        caption=f"Four {cfg.depth}-layer networks at initialisation, one random batch of {cfg.batch} inputs. Dotted: "
                "no normalisation; solid: batch norm after every linear layer. Residual: hₗ = hₗ₋₁ + "
                "tanh(BN(Wₗhₗ₋₁ + bₗ)).")])


@experiment(depths=(2, 8, 20, 56, 110, 200), width=64, batch=128, seeds=(0, 1))
def depth_sweep(cfg):
    fig, ax = figure(height=4.2)
    depths = np.array(cfg.depths)
    data = {"depths": depths, "nets": {}}
    for label, net in NETS.items():
        ratios = ratio_by_depth(depths, cfg.seeds, cfg.width, cfg.batch, **net)
        mean = ratios.mean(axis=1)
        entry = {"log10_ratio": mean, "per_seed": ratios}
        predicted = predictions(label, depths)
        ratio_vs_depth(ax, depths, mean, label=label, theory=predicted, theory_label="", **STYLES[label])
        if predicted is not None:
            entry["predicted"] = predicted
        data["nets"][label] = entry
    ax.plot([], [], color="0.4", ls="--", lw=1.3, label="theory (dashed, same colour)")
    ax.set_ylim(max(ax.get_ylim()[0], -30), None)
    finish(ax, "depth L (layers)", RATIO_LABEL,
           "First-layer gradient relative to the last, at initialisation", loc="lower left")
    d = data["nets"]
    return Result(data, [Plot(
        "depth-sweep", fig,
        alt=f"Log10 first/last gradient ratio against depth from {depths[0]} to {depths[-1]} layers for tanh "
            f"networks. The plain net falls on a straight line (exponential vanishing, "
            f"{d['plain']['log10_ratio'][2]:.1f} decades at {depths[2]} layers); plain with batch norm rises on a "
            f"straight line (exponential explosion, {d['plain + BN']['log10_ratio'][-1]:.1f} decades at "
            f"{depths[-1]}); the residual net with batch norm rises only slowly, "
            f"{d['residual + BN']['log10_ratio'][-1]:.1f} decades at {depths[-1]} layers, on its dashed "
            "power-law prediction.",
        caption=f"Mean over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)}, width {cfg.width}, one random batch of {cfg.batch}. Dashed: "
                "$(L-1)\\log_{10}$ of the per-layer factor for the plain nets; for the residual net with batch "
                "norm the product of $1 + \\mathrm{E}[\\tanh'^2]/\\mathrm{Var}(h_\\ell)$, which grows like a power of the depth. The y-axis "
                "is cut at −30.")])


def _smooth(values, window):
    values = np.asarray(values, dtype=float)
    return np.array([values[max(0, i - window + 1):i + 1].mean() for i in range(len(values))])


EARLY_STEPS = (0, 1, 2, 5, 10, 20, 50)  # when the first/last weight-gradient ratio is kept


def _weight_grad_recorder(store):
    """An on_step hook that keeps ‖∂L/∂W_l‖ of every layer at every step (before the update)."""
    return lambda step, model: store.append([norm(w.grad) for w in model.weights])


@experiment(depths=(8, 20, 56), width=32, steps=300, lr=0.1, batch_size=64, smooth=5, seeds=(0, 1, 2))
def degradation(cfg):
    """He et al. (2016): the deeper plain net trains worse than the shallower one; the residual one does not.

    Every network is trained once per seed (its own initialisation and minibatches), the seeds together
    (train.fit_stacked); the figures show the median over the seeds and the min–max band."""
    data_set = digits()
    x_train, y_train = data_set[0], data_set[1]
    fig, axes = figure(ncols=2, height=3.8, sharey=True)
    grads_fig, grads_ax = figure(height=3.8)
    data = {"depths": list(cfg.depths), "seeds": list(cfg.seeds), "runs": {}, "summary": {}}
    scalars = ("final_train_loss", "final_test_acc", "log10_weight_grad_first_over_last_at_init",
               "log10_weight_grad_first_over_last_late")
    for col, (kind, net) in enumerate((("plain + BN", NETS["plain + BN"]), ("residual + BN", NETS["residual + BN"]))):
        for i, depth in enumerate(cfg.depths):
            grads = {seed: [] for seed in cfg.seeds}
            runs = fit_stacked(lambda: DeepMLP(depth, cfg.width, d_in=64, **net), data_set, cfg.seeds, cfg.steps,
                               hooks=lambda seed: _weight_grad_recorder(grads[seed]), lr=cfg.lr,
                               batch_size=cfg.batch_size)
            hists = [h for _, h in runs]
            per_seed = np.array([np.array(grads[seed]) for seed in cfg.seeds])  # (seeds, steps + 1, depth)
            at_init, late = per_seed[:, 0], per_seed[:, -100:].mean(axis=1)
            loss = np.array([h["loss"] for h in hists])
            smooth = np.array([_smooth(row, cfg.smooth) for row in loss])
            steps = hists[0]["step"]
            median_band(axes[col], steps, smooth, label=f"{depth} layers", log=True, color=f"C{i}")
            entry = {
                "step": steps, "loss": loss, "smoothed_loss": smooth,
                "test_acc": np.array([h["test_acc"] for h in hists]),
                "final_train_loss": [dataset_loss(model, x_train, y_train) for model, _ in runs],
                "final_test_acc": [h["test_acc"][-1] for h in hists],
                "weight_grad_at_init": at_init, "weight_grad_last_100_steps": late,
                "weight_grad_at_init_median": np.median(at_init, axis=0),
                "weight_grad_last_100_steps_median": np.median(late, axis=0),
                "initial_loss": loss[:, 0],
                "log10_weight_grad_first_over_last_early": {
                    f"step {k}": np.log10(per_seed[:, k, 0] / per_seed[:, k, -1]) for k in EARLY_STEPS},
                "log10_weight_grad_first_over_last_at_init": np.log10(at_init[:, 0] / at_init[:, -1]),
                "log10_weight_grad_first_over_last_late": np.log10(late[:, 0] / late[:, -1])}
            label = f"{kind}, {depth} layers"
            data["runs"][label] = entry
            data["summary"][label] = {k: {s: v for s, v in across_seeds(entry[k]).items() if s != "per_seed"}
                                      for k in scalars}
            if depth == max(cfg.depths):
                layers = np.arange(1, depth + 1)
                median_band(grads_ax, layers, at_init, label=f"{kind}: at initialisation", log=True, ls=":",
                            color=f"C{col}")
                median_band(grads_ax, layers, late, label=f"{kind}: mean of the last 100 steps", log=True,
                            color=f"C{col}")
        axes[col].set_yscale("log")
        finish(axes[col], "training step", "training loss (cross-entropy)" if col == 0 else "",
               f"{kind.split(' ')[0]} (tanh + batch norm)", loc="lower left")
    layer_axis(grads_ax, layers)
    finish(grads_ax, LAYER_LABEL, r"$\|\partial L/\partial W_\ell\|$, weight gradient",
           f"{max(cfg.depths)}-layer nets on the digits: no layer's gradient vanishes", loc="best")
    runs = data["runs"]
    final = {k: np.median(v["final_train_loss"]) for k, v in runs.items()}
    deep = max(cfg.depths)
    plain_deep = runs[f"plain + BN, {deep} layers"]
    n = len(cfg.seeds)
    per_depth = lambda kind: ", ".join(f"{final[f'{kind}, {d} layers']:.3g} at {d} layers" for d in cfg.depths)
    return Result(data, [
        Plot("degradation", fig,
             alt=f"Training loss over {cfg.steps} steps, log scale, median of {n} seeds with the min–max range "
                 f"shaded. Left, plain nets, median final training loss {per_depth('plain + BN')}: the deeper, the "
                 f"worse. Right, residual nets: {per_depth('residual + BN')}: depth no longer hurts.",
             caption=f"tanh MLPs of width {cfg.width} with batch norm, PyTorch's default initialisation, SGD with "
                     f"learning rate {cfg.lr}, batches of {cfg.batch_size}; each network trained with {n} seeds "
                     f"({listed(cfg.seeds)}: the initialisation and the batches), a depth's six "
                     f"networks sharing a seed's batches. Line: the median over the seeds of the mean batch loss of "
                     f"the last {cfg.smooth} records (one every 10 steps); band: the lowest to the highest seed. "
                     "The numbers quoted are the loss on the whole training set at the end."),
        Plot("training-gradients", grads_fig,
             alt=f"Weight-gradient norm of each of the {deep} layers, log scale, at initialisation (dotted) and "
                 f"averaged over the last 100 training steps (solid), median of {n} seeds with the range shaded. "
                 f"In the plain net the first layer's gradient is "
                 f"{power_of_ten(np.median(plain_deep['log10_weight_grad_first_over_last_at_init']), 1)} times "
                 f"the last layer's at initialisation and "
                 f"{power_of_ten(np.median(plain_deep['log10_weight_grad_first_over_last_late']), 1)} times late in "
                 "training: larger, not vanishing. The residual net's gradients are of similar size at every layer.",
             caption=f"The {deep}-layer runs of the degradation figure. $\\|\\partial L/\\partial W_\\ell\\|$ at every step of training, recorded "
                     "before each update; line: median over the seeds, band: their range.")])
