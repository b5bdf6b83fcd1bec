"""What the optimiser changes: per-layer gradient norms against per-layer update sizes under SGD, SGD with momentum
and Adam, where Adam's per-parameter normalisation closes the gap between layers and where it does not (epsilon,
a collapsed forward signal), and how Adam meets gradient clipping."""
import math

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.lines import Line2D

from vgsite.nets import DeepMLP
from vgsite.plots import figure, finish, listed, median_band, power_of_ten
from vgsite.probes import TrainingRecorder, norm
from vgsite.registry import Plot, Result, experiment
from vgsite.train import across_seeds, dataset_loss, digits, fit_stacked

NETS = {"sigmoid": "sigmoid", "tanh": "tanh", "ReLU": "relu"}
OPT_COLORS = {"SGD": "#0072B2", "SGD + momentum": "#009E73", "Adam": "#D55E00"}
CHANCE_LOSS = float(np.log(10))
RATIO_TOP = 1.0  # the clipping figure's update-size axis ends here


# ---------------------------------------------------------------- theory (Kingma & Ba 2015)

def adam_first_step(grad: torch.Tensor, lr: float, eps: float) -> torch.Tensor:
    """Adam's first update, entry by entry: the bias-corrected moments are g and g^2, so the step is
    lr * g / (|g| + eps): lr per parameter when |g| >> eps, and (lr / eps) * g, plain SGD, when |g| << eps."""
    return lr * grad / (grad.abs() + eps)


def adam_step_bound(lr: float, beta1: float, beta2: float, t: int) -> float:
    """The largest |step| of one parameter at Adam step t (1-based), reached when its gradient was zero before and
    is anything but zero now: lr (1 - beta1) / (1 - beta1^t) * sqrt((1 - beta2^t) / (1 - beta2)). For large t it is
    Kingma & Ba's lr (1 - beta1) / sqrt(1 - beta2), whatever the size of the gradient."""
    return lr * (1 - beta1) / (1 - beta1 ** t) * math.sqrt((1 - beta2 ** t) / (1 - beta2))


def first_batch(seed, batch, n):
    """The indices of the first minibatch train.fit / fit_stacked draw for this seed."""
    return torch.randint(0, n, (batch,), generator=torch.Generator().manual_seed(seed))


def input_dependence(model, x) -> list:
    """Per layer: how much h_l still varies from input to input, relative to its size: the mean over units of
    the standard deviation over the inputs, over the root mean square of h_l. Near 0 the forward signal has
    collapsed: every input gives the same h_l."""
    with torch.no_grad():
        model(x, keep=True)
        return [float(h.double().std(0).mean() / h.double().pow(2).mean().sqrt()) for h in model.hidden]


def layer_colour(layer, depth):
    return colormaps["viridis"](0.85 * layer / max(1, depth - 1))


# ---------------------------------------------------------------- epsilon: Adam's first step against epsilon

@experiment(depth=10, width=32, activation="sigmoid", init="default", batch=64, lr=1e-3, eps_decades=(-16, 0),
            eps_per_decade=2, default_eps=1e-8, resolvable=1e-5,
            seeds=(0, 1, 2))
def epsilon(cfg):
    """One Adam step from the same fresh network and minibatch, for each epsilon: its size per layer."""
    x, y = digits()[:2]
    eps = 10.0 ** np.linspace(*cfg.eps_decades, (cfg.eps_decades[1] - cfg.eps_decades[0]) * cfg.eps_per_decade + 1)
    eps_list = sorted(set(eps.tolist()) | {cfg.default_eps})
    ratio, grad_norm, weight_norm, numel, rms_entry, plateau, sgd_limit_slope, formula = [], [], [], [], [], [], [], []
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        model = DeepMLP(cfg.depth, cfg.width, d_in=64, activation=cfg.activation, init=cfg.init)
        idx = first_batch(seed, cfg.batch, len(x))
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        weights = model.weights
        grads = [w.grad.detach().clone() for w in weights]
        wn = [norm(w) for w in weights]
        grad_norm.append([norm(g) for g in grads])
        weight_norm.append(wn)
        numel.append([int((g != 0).sum()) for g in grads])  # entries with a gradient: Adam moves only these
        rms_entry.append([norm(g) / math.sqrt(g.numel()) for g in grads])
        plateau.append([cfg.lr * math.sqrt(int((g != 0).sum())) / n for g, n in zip(grads, wn)])
        sgd_limit_slope.append([cfg.lr * norm(g) / n for g, n in zip(grads, wn)])  # times 1/eps
        params = list(model.parameters())
        start = [p.detach().clone() for p in params]
        w_start = [w.detach().clone() for w in weights]
        per_eps, per_formula = [], []
        for e in eps_list:
            with torch.no_grad():  # the fresh network again, with the same gradients
                for p, s in zip(params, start):
                    p.copy_(s)
            torch.optim.Adam(params, lr=cfg.lr, eps=e).step()
            per_eps.append([norm(w - b) / norm(b) for w, b in zip(model.weights, w_start)])
            per_formula.append([norm(adam_first_step(g.double(), cfg.lr, e)) / n for g, n in zip(grads, wn)])
        ratio.append(per_eps)
        formula.append(per_formula)
    ratio, formula = np.array(ratio), np.array(formula)  # (seeds, eps, layers)
    plateau, sgd_limit_slope = np.array(plateau), np.array(sgd_limit_slope)
    eps_arr = np.array(eps_list)
    d = eps_list.index(cfg.default_eps)
    # epsilon at which each layer's step has fallen to half its plateau: theory puts it at about that layer's |g|
    half = np.array([[10 ** np.interp(-math.log10(0.5), -np.log10(np.maximum(r[:, l], 1e-300) / plateau[s, l]),
                                      np.log10(eps_arr))
                      for l in range(cfg.depth)] for s, r in enumerate(ratio)])
    data = {"eps": eps_arr, "default_eps": cfg.default_eps, "lr": cfg.lr, "ratio": ratio, "formula": formula,
            "grad_norm": np.array(grad_norm), "weight_norm": np.array(weight_norm), "numel": np.array(numel),
            "rms_grad_entry": np.array(rms_entry), "plateau": plateau, "sgd_limit_slope": sgd_limit_slope,
            "eps_half": half,
            # measured / theory at the smallest epsilon (lr per parameter), and at the largest for the last layer
            # (SGD with lr / eps); the first layers' steps at large eps are too small for float32 weights to register
            "plateau_match": ratio[:, 0, :] / plateau,
            "sgd_limit_match_last": ratio[:, -1, -1] / (sgd_limit_slope[:, -1] / eps_arr[-1]),
            "formula_max_dev": [float(np.max(np.abs(np.log10(r[f > cfg.resolvable] / f[f > cfg.resolvable]))))
                                for r, f in zip(ratio, formula)],
            "rounded_away_at_largest": (ratio[:, -1, :] == 0).sum(axis=1),
            "smallest_formula_at_largest": formula[:, -1, :].min(axis=1),
            "eps_half_over_rms": half / np.array(rms_entry),
            "at_default": ratio[:, d, :],
            "at_default_first": ratio[:, d, 0], "at_default_last": ratio[:, d, -1],
            "rms_first": np.array(rms_entry)[:, 0], "rms_last": np.array(rms_entry)[:, -1],
            "plateau_first": plateau[:, 0], "plateau_last": plateau[:, -1],
            # layers whose step at the default epsilon is less than half of lr per parameter (on the SGD side)
            "layers_on_sgd_side": (ratio[:, d, :] / plateau < 0.5).sum(axis=1),
            "sgd_gap_decades": np.log10(np.array(grad_norm)[:, 0] / np.array(weight_norm)[:, 0])
            - np.log10(np.array(grad_norm)[:, -1] / np.array(weight_norm)[:, -1]),
            "adam_gap_decades_at_default": np.log10(ratio[:, d, 0] / ratio[:, d, -1]),
            "adam_gap_decades_small_eps": np.log10(ratio[:, 0, 0] / ratio[:, 0, -1])}

    fig, ax = figure(width=7.2, height=4.4)
    for layer in range(cfg.depth):
        median_band(ax, eps_arr, ratio[:, :, layer], log=True, color=layer_colour(layer, cfg.depth), lw=1.4)
    handles = [Line2D([], [], color=layer_colour(0, cfg.depth), lw=1.4, label="layer 1 (next to the input)"),
               Line2D([], [], color=layer_colour(cfg.depth // 2, cfg.depth), lw=1.4,
                      label=f"layers 2 to {cfg.depth - 1}, in order"),
               Line2D([], [], color=layer_colour(cfg.depth - 1, cfg.depth), lw=1.4, label=f"layer {cfg.depth}")]
    for layer in (0, cfg.depth - 1):
        ax.plot(eps_arr, np.full(len(eps_arr), np.median(plateau[:, layer])), ls="--", lw=1, color="0.35")
        sgd = np.median(sgd_limit_slope[:, layer]) / eps_arr
        shown = sgd < 3 * np.median(plateau[:, layer])
        ax.plot(eps_arr[shown], sgd[shown], ls=":", lw=1.4, color="0.35")
    handles += [Line2D([], [], ls="--", lw=1, color="0.35", label="theory: lr·√n/‖W‖ (lr per parameter)"),
                Line2D([], [], ls=":", lw=1.4, color="0.35", label="theory: SGD with lr/ε"),
                Line2D([], [], ls="", marker="v", color="0.35", label="exactly 0: lost to float32 rounding")]
    ax.axvline(cfg.default_eps, color="0.5", lw=1, ls="-.")
    ax.annotate("PyTorch's default ε", (cfg.default_eps, 0.5), xycoords=("data", "axes fraction"), xytext=(-4, 0),
                textcoords="offset points", ha="right", va="center", rotation=90, color="0.3")
    ax.set_xscale("log")
    finish(ax, "Adam's ε", r"first update $\|\Delta W_\ell\| / \|W_\ell\|$", legend=False)
    fig.legend(handles=handles, loc="outside right center")
    med_gap = float(np.median(data["sgd_gap_decades"]))
    return Result(data, [Plot(
        "epsilon", fig,
        alt=f"Size of Adam's first update relative to the weights, per layer of a {cfg.depth}-layer {cfg.activation} "
            f"network, against ε from 1e{cfg.eps_decades[0]} to 1e{cfg.eps_decades[1]}, log–log, median and range "
            f"over {len(cfg.seeds)} seeds. For small ε every layer moves by nearly the same amount, lr·√n/‖W‖, "
            f"although the first layer's gradient is {-med_gap:.1f} decades below the last layer's; each layer's curve bends down onto the line of "
            "SGD with learning rate lr/ε once ε exceeds that layer's typical gradient entry, the first layer first. "
            f"At the default ε = {cfg.default_eps:g} the first "
            f"{int(np.sum(np.median(ratio[:, d, :] / plateau, axis=0) < 0.5))} layers are already on the SGD side.",
        caption=f"{cfg.depth} {cfg.activation} layers of width {cfg.width}, PyTorch's default initialisation, digits, "
                f"the first minibatch of {cfg.batch} of each seed (seeds {listed(cfg.seeds)}); one torch.optim.Adam step "
                f"at lr {cfg.lr:g} per ε (line: median over the seeds, band: range). Dashed: lr·√n/‖W‖ for layer 1 "
                f"(top) and layer {cfg.depth}, what an update of lr per parameter gives (n: the weights with a gradient); dotted: (lr/ε)·‖∂L/∂W‖/‖W‖ "
                "for the same two layers, plain SGD at learning rate lr/ε.")])


# ---------------------------------------------------------------- layer gaps: SGD, momentum and Adam in training

def optimisers(cfg):
    return {"SGD": dict(optimizer="sgd", lr=cfg.lr_sgd),
            "SGD + momentum": dict(optimizer="sgd", lr=cfg.lr_momentum, momentum=cfg.momentum),
            "Adam": dict(optimizer="adam", lr=cfg.lr_adam)}


def train_one(cfg, activation, opt_kw):
    """Every seed of one net and one optimiser, trained together; per-layer gradient norms and update ratios."""
    data = digits()
    recorders = {s: TrainingRecorder(every=cfg.ratio_every) for s in cfg.seeds}
    hook = lambda s: lambda step, model: recorders[s](step, model) if step % cfg.ratio_every in (0, 1) else None
    build = lambda: DeepMLP(cfg.depth, cfg.width, d_in=64, activation=activation, init=cfg.init)
    trained = fit_stacked(build, data, cfg.seeds, cfg.steps, hooks=hook, every=cfg.every, **opt_kw)
    ratio = np.array([recorders[s].update_ratio for s in cfg.seeds])  # (seeds, updates, layers)
    grad = np.array([recorders[s].weight_grad for s in cfg.seeds])  # (seeds, samples, layers)
    probe = data[0][:cfg.probe_examples]
    with np.errstate(divide="ignore"):  # an update float32 rounded away entirely reads as a gap of -inf decades
        return {"step": np.array(trained[0][1]["step"]), "loss": np.array([h["loss"] for _, h in trained]),
                "test_acc": np.array([h["test_acc"] for _, h in trained]),
                "final_train_loss": [dataset_loss(m, data[0], data[1]) for m, _ in trained],
                "final_test_acc": [h["test_acc"][-1] for _, h in trained],
                "update_steps": np.array(recorders[cfg.seeds[0]].update_steps), "update_ratio": ratio,
                "grad_start": grad[:, 0, :],
                "ratio_start": ratio[:, 0, :],
                "ratio_median": np.median(ratio, axis=1),  # per seed and layer, over the run's updates
                "grad_gap_start": np.log10(grad[:, 0, 0] / grad[:, 0, -1]),
                "gap_start": np.log10(ratio[:, 0, 0] / ratio[:, 0, -1]),
                "gap_run": np.log10(np.median(ratio[:, :, 0] / ratio[:, :, -1], axis=1)),
                "input_dependence_end": [input_dependence(m, probe) for m, _ in trained]}


@experiment(depth=10, width=32, init="default", steps=400, every=20, ratio_every=10, lr_sgd=0.1, lr_momentum=0.01,
            momentum=0.9, lr_adam=1e-3, probe_examples=512, seeds=(0, 1, 2))
def layer_gaps(cfg):
    x, y = digits()[:2]
    data_x = x[:cfg.probe_examples]
    nets = {}
    for label, activation in NETS.items():
        runs = {name: train_one(cfg, activation, kw) for name, kw in optimisers(cfg).items()}
        fresh, weights = [], []
        for seed in cfg.seeds:  # the fresh networks and the first minibatch of each seed, as fit_stacked has them
            torch.manual_seed(seed)
            model = DeepMLP(cfg.depth, cfg.width, d_in=64, activation=activation, init=cfg.init)
            fresh.append(input_dependence(model, data_x))
            idx = first_batch(seed, 64, len(x))
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            weights.append([((w.grad != 0).sum().item(), w.numel(), norm(w), norm(w.grad)) for w in model.weights])
        weights = np.array(weights, dtype=float)  # (seeds, layers, 4)
        adam_theory = cfg.lr_adam * np.sqrt(weights[:, :, 0]) / weights[:, :, 2]
        sgd_theory = cfg.lr_sgd * weights[:, :, 3] / weights[:, :, 2]
        nets[label] = {"runs": runs, "input_dependence_start": np.array(fresh),
                       "zero_grad_fraction": 1 - weights[:, :, 0] / weights[:, :, 1],
                       # Adam's first step if every |g| >> eps: lr per parameter with a gradient
                       "adam_first_theory": adam_theory,
                       "adam_first_match": runs["Adam"]["ratio_start"] / adam_theory,
                       # SGD's first step, lr ||g|| / ||W||, and the share of it float32 weights registered
                       "sgd_first_theory": sgd_theory,
                       "sgd_first_match": runs["SGD"]["ratio_start"] / sgd_theory}
        net = nets[label]
        for key in ("zero_grad_fraction", "adam_first_match", "sgd_first_match", "input_dependence_start"):
            net[f"{key}_median"] = np.median(net[key], axis=0)  # over the seeds, one per layer
        net["input_dependence_last_start"] = net["input_dependence_start"][:, -1]
        # Adam's updates over the run against its first step's prediction: median over the layers, per seed
        net["adam_run_over_first_theory"] = np.median(runs["Adam"]["ratio_median"] / adam_theory, axis=1)
        for run in runs.values():
            run["input_dependence_last_end"] = [d[-1] for d in run["input_dependence_end"]]
    data = {"chance_loss": CHANCE_LOSS, "nets": nets}
    return Result(data, [gaps_plot(cfg, nets), training_plot(cfg, nets)])


def gaps_plot(cfg, nets):
    fig, axes = figure(ncols=2, nrows=3, width=7.2, height=9.0, sharex=True)
    layers = np.arange(1, cfg.depth + 1)
    for row, (label, net) in enumerate(nets.items()):
        left, right = axes[2 * row], axes[2 * row + 1]
        runs = net["runs"]
        median_band(left, layers, runs["SGD"]["grad_start"], log=True, color="0.35", marker="o", ms=3,
                    label="gradient at step 0 (every optimiser)")
        for name, run in runs.items():
            median_band(right, layers, run["ratio_median"], log=True, color=OPT_COLORS[name], marker="o", ms=3,
                        label=name)
        right.plot(layers, np.median(runs["Adam"]["ratio_start"], axis=0), ls="", marker="x", ms=6,
                   color=OPT_COLORS["Adam"], label="Adam, first update")
        right.plot(layers, np.median(net["adam_first_theory"], axis=0), ls="--", color="0.35", lw=1,
                   label="theory: Adam's first update, lr·√n/‖W‖")
        finish(left, "layer" if row == 2 else "", r"$\|\partial L/\partial W_\ell\|$", f"{label}: gradient",
               legend=False)
        finish(right, "layer" if row == 2 else "", r"$\|\Delta W_\ell\|/\|W_\ell\|$ per update",
               f"{label}: update size", legend=False)
    for ax in axes:
        ax.set_xticks(layers)
    handles, labels = axes[0].get_legend_handles_labels()
    for h, l in zip(*axes[1].get_legend_handles_labels()):
        handles.append(h)
        labels.append(l)
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    gaps = {label: {name: float(np.median(run["gap_run"])) for name, run in net["runs"].items()}
            for label, net in nets.items()}
    return Plot(
        "layer-gaps", fig,
        alt=f"Three rows, {cfg.depth}-layer sigmoid, tanh and ReLU networks. Left: the norm of each layer's weight "
            "gradient at the first step, log scale, smallest at layer 1. Right: the relative size of each layer's "
            "update, median over the training run, for SGD, SGD with momentum and Adam, with crosses for Adam's first "
            "update and a dashed line for its prediction lr·√n/‖W‖. Under SGD and momentum the "
            "update sizes fall toward layer 1 like the gradient (first over last layer under SGD, median over seeds: "
            + "; ".join(f"{label} {power_of_ten(g['SGD'], 1)}" for label, g in gaps.items())
            + "); Adam's lie close to a flat line in the tanh and ReLU networks but fall in the sigmoid network's "
            "first layers (" + "; ".join(f"{label} {power_of_ten(g['Adam'], 1)}" for label, g in gaps.items()) + ").",
        caption=f"Digits, width {cfg.width}, PyTorch's default initialisation, batch 64, {cfg.steps} steps, "
                f"seeds {listed(cfg.seeds)} (line: median, band: range over the seeds). SGD at lr {cfg.lr_sgd}, SGD "
                f"with momentum {cfg.momentum} at lr {cfg.lr_momentum} (the same step once the momentum has built "
                f"up), Adam at lr {cfg.lr_adam:g} with its defaults (β₁ 0.9, β₂ 0.999, ε 1e-8). Right: each seed's "
                f"median over the updates sampled every {cfg.ratio_every} steps. Dashed: an update of lr per "
                "parameter, lr·√n/‖W‖ with n the layer's number of weights.")


def training_plot(cfg, nets):
    fig, axes = figure(ncols=2, nrows=2, width=7.2, height=6.4)
    for ax, (label, net) in zip(axes, nets.items()):
        for name, run in net["runs"].items():
            median_band(ax, run["step"], run["loss"], color=OPT_COLORS[name], lw=1.3, label=name)
        ax.axhline(CHANCE_LOSS, color="0.4", ls=":", lw=1)
        ax.set_ylim(0, 2.6)
        finish(ax, "training step", "training loss", f"{label}, {cfg.depth} layers", legend=label == "sigmoid")
    ax = axes[3]
    layers = np.arange(1, cfg.depth + 1)
    for (label, net), colour in zip(nets.items(), ("#CC79A7", "#E69F00", "#56B4E9")):
        median_band(ax, layers, net["input_dependence_start"], log=True, color=colour, marker="o", ms=3, label=label)
    ax.set_xticks(layers)
    finish(ax, "layer", "spread of $h_\\ell$ over inputs / its size", "Forward signal at step 0")
    final = {label: {name: float(np.median(run["final_train_loss"])) for name, run in net["runs"].items()}
             for label, net in nets.items()}
    last = {label: float(np.median(net["input_dependence_start"][:, -1])) for label, net in nets.items()}
    return Plot(
        "training", fig,
        alt=f"Training loss over {cfg.steps} steps of the {cfg.depth}-layer networks of the previous figure, median "
            "and range over the seeds, for SGD, SGD with momentum and Adam; the dotted line is ln 10, guessing. "
            "Final training-set loss (medians): "
            + "; ".join(f"{label}: " + ", ".join(f"{name} {v:.2f}" for name, v in f.items()) for label, f in final.items())
            + ". The fourth panel shows how much each layer's output varies from input to input at initialisation, "
            "log scale; at the last layer: "
            + ", ".join(f"{label} {v:.1g}" for label, v in last.items()) + ".",
        caption=f"The runs of the previous figure (seeds {listed(cfg.seeds)}): minibatch loss sampled every "
                f"{cfg.every} steps. Bottom right: for the fresh networks, the standard deviation of each unit of "
                f"$h_\\ell$ over {cfg.probe_examples} training images, averaged over the units, divided by the root "
                "mean square of $h_\\ell$; near 0, every input gives the same $h_\\ell$.")


# ---------------------------------------------------------------- Adam and clipping: one gradient spike

@experiment(depth=6, width=32, activation="relu", init="kaiming", steps=300, spike_step=100, spike=1e4, clip=1.0,
            small_clip=0.01, lr_sgd=0.1, lr_adam=1e-3, every=5, after=50, seeds=(0, 1, 2))
def clipping(cfg):
    """One minibatch gradient multiplied by `spike` at step spike_step, under SGD and Adam, with and without
    clipping the global gradient norm."""
    data = digits()
    settings = {"SGD": dict(optimizer="sgd", lr=cfg.lr_sgd),
                f"SGD, clipped at {cfg.clip:g}": dict(optimizer="sgd", lr=cfg.lr_sgd, clip=cfg.clip),
                "Adam": dict(optimizer="adam", lr=cfg.lr_adam),
                f"Adam, clipped at {cfg.clip:g}": dict(optimizer="adam", lr=cfg.lr_adam, clip=cfg.clip),
                f"Adam, clipped at {cfg.small_clip:g}": dict(optimizer="adam", lr=cfg.lr_adam, clip=cfg.small_clip)}
    runs = {}
    for name, kw in settings.items():
        recorders = {s: TrainingRecorder(every=1) for s in cfg.seeds}
        spike_move = {}

        def hook(seed):
            def on_step(step, model):
                if step == cfg.spike_step:
                    for p in model.parameters():
                        p.grad.mul_(cfg.spike)
                    spike_move[seed] = [w.detach().clone() for w in model.weights]
                elif step == cfg.spike_step + 1:  # how far each weight moved on the spike's update
                    spike_move[seed] = [float((w - b).detach().abs().max()) for w, b in zip(model.weights, spike_move[seed])]
                recorders[seed](step, model)
            return on_step

        build = lambda: DeepMLP(cfg.depth, cfg.width, d_in=64, activation=cfg.activation, init=cfg.init)
        trained = fit_stacked(build, data, cfg.seeds, cfg.steps, hooks=hook, every=cfg.every, **kw)
        ratio = np.array([recorders[s].update_ratio for s in cfg.seeds])  # (seeds, steps, layers)
        ratio = np.where(np.isfinite(ratio), ratio, np.nan)
        steps = np.array(trained[0][1]["step"])
        loss = np.array([h["loss"] for _, h in trained], dtype=float)
        before = (steps >= cfg.spike_step - cfg.after) & (steps <= cfg.spike_step)
        after = (steps > cfg.spike_step) & (steps <= cfg.spike_step + cfg.after)
        mean_ratio = np.exp(np.log(ratio).mean(axis=2))  # geometric mean over the layers, per step
        final = [dataset_loss(m, data[0], data[1]) for m, _ in trained]
        run = {"step": steps, "loss": loss, "update_steps": np.arange(ratio.shape[1]), "mean_ratio": mean_ratio,
               "final_train_loss": [v if math.isfinite(v) else math.nan for v in final],
               "diverged": [not math.isfinite(v) for v in final],
               "grad_norm": np.array([h["grad_norm"] for _, h in trained], dtype=float),
               "ratio_before": np.median(mean_ratio[:, cfg.spike_step - cfg.after:cfg.spike_step], axis=1),
               "ratio_spike": mean_ratio[:, cfg.spike_step],
               "ratio_end": np.median(mean_ratio[:, -cfg.after:], axis=1),  # nan for a run that diverged
               "loss_before": np.median(loss[:, before], axis=1),
               "loss_after_max": np.max(loss[:, after], axis=1),
               "spike_max_move": [max(spike_move[s]) if isinstance(spike_move[s][0], float) else math.nan
                                  for s in cfg.seeds]}
        run["spike_over_before"] = run["ratio_spike"] / run["ratio_before"]
        runs[name] = run
    for name, run in runs.items():
        run["ratio_before_over_clipped"] = run["ratio_before"] / runs[f"Adam, clipped at {cfg.clip:g}"]["ratio_before"]
        run["spike_max_move_over_lr"] = np.array(run["spike_max_move"]) / settings[name]["lr"]
    bound = adam_step_bound(cfg.lr_adam, 0.9, 0.999, cfg.spike_step + 1)
    data = {"runs": runs, "spike": cfg.spike, "spike_step": cfg.spike_step, "lr_adam": cfg.lr_adam,
            "adam_bound": bound, "adam_bound_late": cfg.lr_adam * 0.1 / math.sqrt(0.001),
            "sgd_clip_bound": cfg.lr_sgd * cfg.clip}
    return Result(data, [clipping_plot(cfg, runs, data)])


def clipping_plot(cfg, runs, data):
    fig, (top, bottom) = figure(nrows=2, width=7.2, height=7.0, sharex=True)
    styles = {"SGD": ("#0072B2", "-"), f"SGD, clipped at {cfg.clip:g}": ("#56B4E9", "--"),
              "Adam": ("#D55E00", "-"), f"Adam, clipped at {cfg.clip:g}": ("#E69F00", "--"),
              f"Adam, clipped at {cfg.small_clip:g}": ("#CC79A7", ":")}
    for name, run in runs.items():
        colour, ls = styles[name]
        loss = np.where(np.isfinite(run["loss"]), run["loss"], np.nan)
        median_band(top, run["step"], loss, color=colour, ls=ls, lw=1.4, label=name)
        bad = ~np.isfinite(np.median(run["loss"], axis=0))
        if bad.any():
            first = run["step"][bad][0]
            top.scatter([first], [0.97], transform=top.get_xaxis_transform(), marker="X", s=70, color=colour,
                        zorder=5, clip_on=False, label=f"{name}: loss is nan from here")
        ratio = run["mean_ratio"]
        finite = np.isfinite(ratio).all(axis=0)
        shown = finite & (np.where(finite, ratio, 0).max(axis=0) < RATIO_TOP)
        median_band(bottom, run["update_steps"][shown], ratio[:, shown], log=True, color=colour, ls=ls, lw=1.2)
        over = finite & ~shown
        if over.any():  # off the scale: a triangle on the top edge, with the median value
            at = run["update_steps"][over][0]
            bottom.scatter([at], [0.97], transform=bottom.get_xaxis_transform(), marker="^", s=50, color=colour,
                           zorder=5, clip_on=False)
            bottom.annotate(f"{name}: {np.median(ratio[:, at]):.0f} (off the scale)", (at, 0.97),
                            xycoords=("data", "axes fraction"), xytext=(8, 0), textcoords="offset points",
                            va="top", color=colour)
    for ax in (top, bottom):
        ax.axvline(cfg.spike_step, color="0.5", lw=1, ls="-.")
    top.annotate(f"gradient × {cfg.spike:g}", (cfg.spike_step, 0.97), xycoords=("data", "axes fraction"),
                 xytext=(-4, 0), textcoords="offset points", ha="right", va="top", color="0.3")
    bottom.set_ylim(1e-4, RATIO_TOP)
    top.set_ylim(0, 2.6)
    finish(top, "", "training loss", "Loss", loc="upper right")
    finish(bottom, "training step", r"$\|\Delta W_\ell\|/\|W_\ell\|$, geometric mean over layers",
           "Update size", legend=False)
    adam, clipped = runs["Adam"], runs[f"Adam, clipped at {cfg.clip:g}"]
    return Plot(
        "clipping", fig,
        alt=f"Training loss (top) and the relative size of each update (bottom, log scale, geometric mean over the "
            f"layers) of a {cfg.depth}-layer ReLU network over {cfg.steps} steps, with one minibatch gradient "
            f"multiplied by {cfg.spike:g} at step {cfg.spike_step}, median and range over {len(cfg.seeds)} seeds. "
            f"Plain SGD takes a step {np.median(runs['SGD']['ratio_spike']):.0f} times the size of the weights "
            "there and its loss turns into nan; clipped SGD does not notice. Adam's step on the spike is "
            f"{np.median(adam['spike_over_before']):.1f} times its usual size ({np.median(adam['ratio_spike']):.1g} "
            "of the weights), but its loss jumps to "
            f"{np.median(adam['loss_after_max']):.2f} and its later updates shrink, to "
            f"{np.median(adam['ratio_end']):.1g} at the end against {np.median(clipped['ratio_end']):.1g} with "
            f"clipping. Adam clipped at {cfg.clip:g} and at {cfg.small_clip:g} run almost on top of each other.",
        caption=f"Digits, width {cfg.width}, ReLU with He initialisation, batch 64, seeds {listed(cfg.seeds)} (line: "
                f"median, band: range); SGD at lr {cfg.lr_sgd}, Adam at lr {cfg.lr_adam:g} with its defaults. At step "
                f"{cfg.spike_step} the gradient of every parameter is multiplied by {cfg.spike:g} (an outlier "
                "batch), before clipping. Clipping: the global gradient norm of each seed's network, "
                "torch.nn.utils.clip_grad_norm_'s rule. Minibatch loss every "
                f"{cfg.every} steps; update sizes every step.")
