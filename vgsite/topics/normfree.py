"""Deep networks without normalisation: residual-branch scaling and initialisation (1/sqrt(L), zero last layer,
SkipInit/ReZero, Fixup) against plain and batch-normalised networks, at initialisation and in training.

Every residual stack here is nets.ResidualMLP: h_l = h_(l-1) + scale * alpha * f(h_(l-1)) with a two-layer ReLU
branch f(h) = W2 relu(W1 h + b1) + b2, W1 He-initialised (n Var = 2) and W2 LeCun-initialised (n Var = 1). Such a
branch, unscaled, returns a vector of the same mean square as its input and uncorrelated with it (W2 has mean 0),
so each block multiplies the stream's second moment q = E[h^2] by exactly 1 + scale^2 on average.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from vgsite.nets import DeepMLP, ResidualMLP
from vgsite.plots import RATIO_LABEL, RELATIVE_LABEL, SUPERSCRIPT, figure, finish, listed, median_band, power_of_ten
from vgsite.probes import gradient_flow, log_ratio, random_batch
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import bn_factor
from vgsite.train import across_seeds, dataset_loss, digits, fit_stacked


def schemes(blocks):
    """label: a builder of the network for `blocks` residual blocks (plain nets get 2 * blocks layers, the same
    number of weight layers). ReLU throughout, He initialisation for every layer that feeds a ReLU."""
    root = blocks ** -0.5
    return {
        "plain": lambda width, **kw: DeepMLP(2 * blocks, width, activation="relu", init="kaiming", **kw),
        "plain + BN": lambda width, **kw: DeepMLP(2 * blocks, width, activation="relu", init="kaiming",
                                                  norm="batch", **kw),
        "residual + BN in the branch": lambda width, **kw: ResidualMLP(blocks, width, norm="batch", **kw),
        "residual, unscaled": lambda width, **kw: ResidualMLP(blocks, width, **kw),
        "residual, 1/√L": lambda width, **kw: ResidualMLP(blocks, width, scale=root, **kw),
        "residual, zero last layer": lambda width, **kw: ResidualMLP(blocks, width, zero_last=True, **kw),
        "SkipInit / ReZero (α = 0)": lambda width, **kw: ResidualMLP(blocks, width, learn_alpha=True, alpha0=0.0,
                                                                     **kw),
        "Fixup": lambda width, **kw: ResidualMLP(blocks, width, zero_last=True, learn_alpha=True, alpha0=1.0,
                                                 branch_gain=root, zero_head=True, **kw),
    }


STYLES = {
    "plain": dict(color="C0", ls=":"),
    "plain + BN": dict(color="C0", ls="-"),
    "residual + BN in the branch": dict(color="C1", ls="-"),
    "residual, unscaled": dict(color="C3", ls=":"),
    "residual, 1/√L": dict(color="C2", ls="-"),
    "residual, zero last layer": dict(color="C4", ls="--"),
    "SkipInit / ReZero (α = 0)": dict(color="C5", ls="-"),
    "Fixup": dict(color="0.45", ls="-."),
}

# At initialisation the zero-last-layer, SkipInit/ReZero and Fixup stacks are all the identity map: one line for them.
ZERO = "zero-initialised branch"
AT_INIT = ("plain", "plain + BN", "residual, unscaled", "residual + BN in the branch", "residual, 1/√L",
           "residual, zero last layer")
INIT_LABEL = {"residual, zero last layer": ZERO}


def stream_theory(label, blocks, depth):
    """E[h_l^2] for l = 0..blocks, inputs of mean square 1 (the stem preserves it).

    Unscaled: each branch adds as much as the stream holds, q_l = 2^l. Scaled by 1/sqrt(L): q_l = (1 + 1/L)^l,
    e at l = L. Batch norm in the branch: W1 h is normalised to variance 1 whatever q is, relu keeps E = 1/2 of its
    square and W2 (n Var = 1) passes that on: the branch adds a constant 1/2, q_l = 1 + l/2 -- linear growth.
    Zero-initialised branch: q_l = 1.
    """
    l = np.arange(blocks + 1)
    if label == "residual, unscaled":
        return 2.0 ** l
    if label == "residual, 1/√L":
        return (1 + 1 / depth) ** l
    if label == "residual + BN in the branch":
        return 1 + l / 2
    return np.ones_like(l, dtype=float)


def flow_theory(label, blocks):
    """log10(||dL/dh_1|| / ||dL/dh_last||) of a wide network at initialisation (the site's layer count: blocks
    residual blocks, 2 * blocks plain layers).

    A block's Jacobian is I + scale W2 D W1 (D: relu's 0/1 slopes); averaged over the weights it multiplies a squared
    gradient by 1 + scale^2 n Var(W2) n Var(W1) E[relu'^2] = 1 + scale^2. With batch norm in the branch the branch
    Jacobian is divided by the spread of W1 h over the batch, sqrt(2 v_(l-1)), where v is the stream's variance over
    the batch (per unit, averaged): block l multiplies by 1 + 1/(2 v_(l-1)). The branch adds Var[relu z] =
    1/2 - 1/(2 pi) to v (its batch mean, 1/sqrt(2 pi) per unit, W2 turns into a shift shared by the whole batch,
    which counts in q but not in v), so v_l = 1 + (1/2 - 1/(2 pi)) l and the product grows like a power of L.
    Plain He: 1 per layer; plain + BN: theory.bn_factor('relu') per layer (Yang et al. 2019).
    """
    if label == "residual, unscaled":
        return 0.5 * (blocks - 1) * math.log10(2)
    if label == "residual, 1/√L":
        return 0.5 * (blocks - 1) * math.log10(1 + 1 / blocks)
    if label == "residual + BN in the branch":
        v = 1 + RELU_VAR * np.arange(1, blocks)  # batch variance of h_(l-1) entering blocks l = 2..L
        return float(0.5 * np.log10(1 + 1 / (2 * v)).sum())
    if label == "plain + BN":
        return (2 * blocks - 1) * math.log10(bn_factor("relu"))
    return 0.0


RELU_VAR = 0.5 - 1 / (2 * math.pi)  # Var[relu(z)], z ~ N(0, 1)


def _build(label, blocks, width, seed, **kw):
    torch.manual_seed(seed)
    return schemes(blocks)[label](width, **kw)


@experiment(blocks=200, width=32, batch=128, seeds=(0, 1, 2))
def stream_variance(cfg):
    """E[h_l^2] of the residual stream after each block at initialisation, against its mean-field prediction."""
    fig, (left, right) = figure(ncols=2, height=4.4)
    l = np.arange(cfg.blocks + 1)
    data = {"blocks": l, "nets": {}}
    for label in AT_INIT[2:]:
        per_seed, batch_var = [], []
        for seed in cfg.seeds:
            model = _build(label, cfg.blocks, cfg.width, seed)
            x, _ = random_batch(cfg.width, cfg.batch)
            with torch.no_grad():
                h = model.inputs(x).double()  # float64: the unscaled stream's squares overflow float32
                q, v = [h.pow(2).mean().item()], [h.var(0, unbiased=False).mean().item()]
                for block in model.blocks:
                    h = block.double()(h)
                    q.append(h.pow(2).mean().item())
                    v.append(h.var(0, unbiased=False).mean().item())
            per_seed.append(q)
            batch_var.append(v)
        per_seed, batch_var = np.array(per_seed), np.array(batch_var)
        theory = stream_theory(label, cfg.blocks, cfg.blocks)
        name = INIT_LABEL.get(label, label)
        for ax, log in ((left, True), (right, False)):
            if not log and label == "residual, unscaled":
                continue
            line = median_band(ax, l, per_seed, label=name, log=log, **STYLES[label])
            ax.plot(l, theory, color=line.get_color(), ls=(0, (2, 2)), lw=1)
        med = np.median(per_seed, axis=0)
        data["nets"][name] = {"q": across_seeds(per_seed), "theory": theory, "q_last": per_seed[:, -1],
                              "theory_last": theory[-1],
                              "log10_q_last": np.log10(per_seed[:, -1]),
                              "log10_growth_per_block": np.log10(per_seed[:, -1] / per_seed[:, 0]) / cfg.blocks,
                              "batch_var_last": batch_var[:, -1],
                              "max_abs_log10_median_over_theory": np.max(np.abs(np.log10(med / theory)))}
    data["relu_var"] = RELU_VAR
    data["nets"]["residual + BN in the branch"]["batch_var_theory_last"] = 1 + RELU_VAR * cfg.blocks
    for ax in (left, right):
        ax.plot([], [], color="0.4", ls=(0, (2, 2)), lw=1, label="theory (dashed)")
    finish(left, "block l (0 = the stem's output)", "E[h²], mean square of the stream", "All four, log scale",
           legend=False)
    right.set_ylim(0, None)
    finish(right, "block l", "E[h²]", "Without the unscaled one, linear scale", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    n = data["nets"]
    return Result(data, [Plot(
        "stream-variance", fig,
        alt=f"Mean square of the residual stream after each of {cfg.blocks} blocks at initialisation, median of "
            f"{len(cfg.seeds)} seeds with the range shaded, and dashed theory lines; left on a log scale, right on a "
            f"linear one without the unscaled stack. Unscaled branches multiply it every block, to "
            f"{power_of_ten(np.median(n['residual, unscaled']['log10_q_last']))} at block {cfg.blocks} "
            f"(theory 2{str(cfg.blocks).translate(SUPERSCRIPT)}, about "
            f"{power_of_ten(np.log10(2) * cfg.blocks)}); with batch norm in the branch it grows on a straight line, to "
            f"{np.median(n['residual + BN in the branch']['q_last']):.0f} (theory {1 + cfg.blocks / 2:.0f}); "
            f"branches scaled by 1/√L end at {np.median(n['residual, 1/√L']['q_last']):.2f} (theory e); "
            f"zero-initialised branches leave it at {np.median(n[ZERO]['q_last']):.2f}.",
        caption=f"One batch of {cfg.batch} standard-normal inputs, width {cfg.width}; blocks "
                "h + s·W₂ relu(W₁h), W₁ ~ N(0, 2/n), W₂ ~ N(0, 1/n) (or 0), batch norm after W₁ in the "
                "orange line. Dashed: 2ˡ, (1 + 1/L)ˡ, 1 + l/2 and 1. Line: median over the seeds; band: "
                "their range.")])


@experiment(blocks=100, depths=(10, 25, 50, 100, 200), width=32, batch=128, seeds=(0, 1, 2))
def gradient_flow_at_init(cfg):
    """||dL/dh_l|| at initialisation, by layer (left) and first over last against depth (right)."""
    fig, (left, right) = figure(ncols=2, height=4.6)
    data = {"blocks": cfg.blocks, "depths": np.array(cfg.depths), "nets": {}}
    for label in AT_INIT:
        name = INIT_LABEL.get(label, label)
        plain = label.startswith("plain")
        signals = {}  # depth: [signal of each seed]
        for d in sorted(set(cfg.depths) | {cfg.blocks}):
            signals[d] = [gradient_flow(_build(label, d, cfg.width, s), *random_batch(cfg.width, cfg.batch))["signal"]
                          for s in cfg.seeds]
        signal = np.array(signals[cfg.blocks]) / np.array(signals[cfg.blocks])[:, -1:]
        # residual block l ends at weight layer 2l: both kinds on one axis of weight layers
        layers = np.arange(1, signal.shape[1] + 1) * (1 if plain else 2)
        median_band(left, layers, signal, label=name, log=True, **STYLES[label])
        sweep = np.array([[log_ratio(sig) for sig in signals[d]] for d in cfg.depths])
        theory = np.array([flow_theory(label, d) for d in cfg.depths])
        line = median_band(right, cfg.depths, sweep.T, label=name, marker="o", **STYLES[label])
        right.plot(cfg.depths, theory, color=line.get_color(), ls=(0, (2, 2)), lw=1)
        data["nets"][name] = {"log10_ratio": across_seeds(sweep.T), "theory": theory, "deepest": sweep[-1],
                              "log10_ratio_at_blocks": np.log10(signal[:, 0]),
                              "max_abs_error": np.max(np.abs(np.median(sweep, axis=1) - theory))}
    finish(left, "weight layer ℓ (1 = next to the input)", RELATIVE_LABEL,
           f"{cfg.blocks} blocks = {2 * cfg.blocks} weight layers", legend=False)
    right.plot([], [], color="0.4", ls=(0, (2, 2)), lw=1, label="theory (dashed)")
    right.set_xscale("log")
    right.set_xticks(cfg.depths, [str(d) for d in cfg.depths])
    right.set_ylim(-3, 20)
    finish(right, "depth (blocks)", RATIO_LABEL,
           "First over last, against depth", legend=False)
    fig.legend(*right.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    n = data["nets"]
    at = lambda name, i: np.median(n[name]["log10_ratio"]["per_seed"][:, i])
    return Result(data, [Plot(
        "gradient-flow", fig,
        alt=f"Left: gradient norm at every weight layer of {cfg.blocks}-block networks relative to the last, log "
            f"scale, input on the left. Right: log10 of first over last against depth, {cfg.depths[0]} to {cfg.depths[-1]} blocks, with "
            f"dashed theory. At {cfg.depths[-1]} blocks: unscaled residual {at('residual, unscaled', -1):+.1f} "
            f"decades, plain with batch norm {at('plain + BN', -1):+.1f}, residual with batch norm in the branch "
            f"{at('residual + BN in the branch', -1):+.2f}, 1/√L {at('residual, 1/√L', -1):+.2f}, plain "
            f"{at('plain', -1):+.2f}, zero-initialised branches exactly 0.",
        caption=f"Width {cfg.width}, one batch of {cfg.batch} standard-normal inputs with random labels, "
                f"cross-entropy; median over {len(cfg.seeds)} seeds, band: their range. Plain nets have two weight "
                "layers per block of the residual ones. Dashed: (L − 1)·log₁₀√2, (L − 1)·log₁₀√(1 + 1/L), "
                "½·Σ log₁₀(1 + 1/(2vₗ)) with vₗ = 1 + (½ − 1/(2π))·l, (2L − 1)·log₁₀ 1.21 and 0; "
                "the zero-initialised line stands for the "
                "zero-last-layer, SkipInit/ReZero and Fixup stacks, which all start as the identity. "
                "The right panel is cut at −3 and 20 decades.")])


def _shatter_net(label, layers, width, seed):
    """A scalar-to-scalar net of `layers` weight layers (residual: layers / 2 blocks) with a random first bias,
    so that the units of the first layer switch at different inputs (Balduzzi et al. 2017's setting)."""
    model = _build(label, max(layers // 2, 1), width, seed, d_in=1, d_out=1)
    first = model.blocks[0].linear if label.startswith("plain") else model.stem
    with torch.no_grad():
        first.weight.normal_(0, 1)
        first.bias.normal_(0, 1)
    return model


def freeze_batch_norm(model, x):
    """Batch norm with the statistics of the batch x, then held fixed (eval mode), so that each output depends on
    its own input only and the summed output's gradient is every point's own df/dx."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    if bns:
        for m in bns:
            m.momentum = 1.0
        with torch.no_grad():
            model(x)
    model.eval()
    return model


def input_gradients(model, x):
    """df/dx at every point of a 1-d grid (the net maps each point to one number)."""
    freeze_batch_norm(model, x)
    x = x.clone().requires_grad_(True)
    model(x).sum().backward()
    return x.grad.detach().squeeze(1).double()


def neighbour_correlation(g):
    """Pearson correlation of the gradients at neighbouring grid points: 1 smooth, 0 white noise."""
    a, b = g[:-1] - g[:-1].mean(), g[1:] - g[1:].mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


SHATTER = ("plain", "residual, unscaled", "residual + BN in the branch", "residual, 1/√L")


@experiment(layers=(2, 4, 8, 16, 32, 64, 100), width=64, points=256, seeds=(0, 1, 2, 3, 4))
def shattered(cfg):
    """Balduzzi et al. (2017): the correlation of gradients at nearby inputs, against depth."""
    fig, (top, bottom) = figure(nrows=2, height=6.4)
    x = torch.linspace(-2, 2, cfg.points).unsqueeze(1)
    data = {"layers": np.array(cfg.layers), "nets": {}}
    deep = max(cfg.layers)
    for label in SHATTER:
        corr = np.array([[neighbour_correlation(input_gradients(_shatter_net(label, d, cfg.width, s), x))
                          for s in cfg.seeds] for d in cfg.layers])
        median_band(bottom, cfg.layers, corr.T, label=label, marker="o", **STYLES[label])
        g = input_gradients(_shatter_net(label, deep, cfg.width, cfg.seeds[0]), x).numpy()
        top.plot(x.squeeze(1).numpy(), g / np.abs(g).max(), label=label, lw=1.2, **STYLES[label])
        data["nets"][label] = {"correlation": across_seeds(corr.T), "shallowest": corr[0], "deepest": corr[-1]}
    top.set_ylim(-1.05, 1.05)
    finish(top, "input x", "∂f/∂x ÷ its largest |value|", f"The gradient over the inputs, {deep} layers, seed "
           f"{cfg.seeds[0]}", legend=False)
    bottom.axhline(0, color="0.3", lw=1)
    bottom.set_xscale("log")
    bottom.set_xticks(cfg.layers, [str(d) for d in cfg.layers])
    finish(bottom, "depth (weight layers)", "correlation of ∂f/∂x at neighbouring inputs",
           "Shattering: neighbours' gradients decorrelate with depth", loc="lower left")
    n = data["nets"]
    med = lambda label, i: np.median(n[label]["correlation"]["per_seed"][:, i])
    return Result(data, [Plot(
        "shattered", fig,
        alt=f"Top: the derivative of {deep}-layer scalar networks over {cfg.points} inputs from −2 to 2; the plain "
            f"network's jumps like noise, the residual ones' are smoother. Bottom: the correlation between the "
            f"derivatives at neighbouring inputs against depth, median of {len(cfg.seeds)} seeds: at {deep} layers "
            f"plain {med('plain', -1):.2f}, residual unscaled {med('residual, unscaled', -1):.2f}, residual with "
            f"batch norm in the branch {med('residual + BN in the branch', -1):.2f}, residual with 1/√L "
            f"{med('residual, 1/√L', -1):.2f}.",
        caption=f"Networks from one input to one output, width {cfg.width}, ReLU, He initialisation, first layer "
                f"weights and biases N(0, 1); {cfg.points} equally spaced inputs in [−2, 2], one batch (the batch "
                "norm's). Residual nets have half as many blocks as weight layers. Bottom: median over "
                f"{len(cfg.seeds)} seeds, band: their range.")])


TRAINED = ("plain", "plain + BN", "residual + BN in the branch", "residual, unscaled", "residual, 1/√L",
           "residual, zero last layer", "SkipInit / ReZero (α = 0)", "Fixup")


@experiment(blocks=50, width=32, steps=150, lr=0.1, batch_size=64, seeds=(0, 1, 2))
def training(cfg):
    """Every scheme trained on the digits with plain SGD, the seeds together (train.fit_stacked)."""
    data_set = digits()
    x_train, y_train = data_set[0], data_set[1]
    fig, (ax, acc_ax) = figure(nrows=2, height=8.4, height_ratios=(3, 2))
    data = {"blocks": cfg.blocks, "seeds": list(cfg.seeds), "runs": {}}
    for i, label in enumerate(TRAINED):
        build = schemes(cfg.blocks)[label]
        runs = fit_stacked(lambda: build(cfg.width, d_in=64), data_set, cfg.seeds, cfg.steps, lr=cfg.lr,
                           batch_size=cfg.batch_size)
        hists = [h for _, h in runs]
        steps = np.array(hists[0]["step"])
        loss = np.array([h["loss"] for h in hists])
        final = np.array([dataset_loss(m, x_train, y_train) for m, _ in runs])
        acc = np.array([h["test_acc"][-1] for h in hists])
        diverged = ~np.isfinite(final)
        first_bad = [int(steps[~np.isfinite(row)][0]) if (~np.isfinite(row)).any() else -1 for row in loss]
        if diverged.any():  # only a legend entry: a loss that is not finite has no place on the axis
            ax.plot([], [], label=f"{label}: loss not finite by step {max(first_bad)}", **STYLES[label])
        else:
            median_band(ax, steps, loss, label=label, log=True, **STYLES[label])
        acc_ax.scatter(np.full(len(acc), i), acc, color=STYLES[label]["color"], zorder=3)
        acc_ax.plot([i - 0.3, i + 0.3], [np.median(acc)] * 2, color=STYLES[label]["color"], lw=2)
        data["runs"][label] = {"step": steps, "loss": loss, "final_train_loss": final, "final_test_acc": acc,
                               "initial_loss": loss[:, 0], "log10_initial_loss": np.log10(loss[:, 0]),
                               "diverged": diverged, "diverged_at_step": first_bad,
                               "n_diverged": int(diverged.sum())}
    ax.axhline(math.log(10), color="0.3", lw=1, ls="--", label="ln 10: guessing")
    ax.set_ylim(3e-3, 30)
    finish(ax, "training step", "training loss (cross-entropy)",
           f"{cfg.blocks} blocks = {2 * cfg.blocks} weight layers on the digits, SGD, learning rate {cfg.lr}",
           legend=False)
    acc_ax.set_xticks(range(len(TRAINED)), [t.replace(" (α = 0)", "").replace("residual, ", "res., ")
                                            .replace("residual + BN in the branch", "res. + BN")
                                            for t in TRAINED], rotation=25, ha="right")
    acc_ax.set_ylim(0, 1)
    finish(acc_ax, "", "test accuracy at the end", legend=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    runs = data["runs"]
    say = lambda label: (f"{np.median(runs[label]['final_train_loss']):.2g}" if not runs[label]["diverged"].any()
                         else f"diverged in {runs[label]['n_diverged']} of {len(cfg.seeds)} seeds")
    return Result(data, [Plot(
        "training", fig,
        alt=f"Training loss over {cfg.steps} steps (log scale, median and range of {len(cfg.seeds)} seeds) and the "
            f"final test accuracy of each seed, for {cfg.blocks}-block networks. Final training loss: "
            + "; ".join(f"{label} {say(label)}" for label in TRAINED) + ".",
        caption=f"Width {cfg.width}, scikit-learn's digits, plain SGD with learning rate {cfg.lr}, batches of "
                f"{cfg.batch_size}, {cfg.steps} steps, seeds {listed(cfg.seeds)} (a seed sets the "
                "initialisation and the batches). Plain nets have 2L ReLU layers. Line: median of the batch loss "
                "over the seeds (recorded every 10 steps), band: range; a scheme whose loss stops being finite is "
                "listed in the legend. Bottom: each seed's test accuracy (dots) and the median (bar).")])
