"""Exploding gradients in recurrent networks, the cliffs behind them, and what norm clipping can and cannot do."""
import math

import numpy as np
import torch
from matplotlib.colors import LogNorm

from vgsite.plots import figure, finish, listed, median_band, mosaic
from vgsite.probes import norm
from vgsite.registry import Plot, Result, experiment
from vgsite.rnns import ADDING_BASELINE, SequenceModel, adding_problem, gradient_through_time, train_sequence
from vgsite.train import across_seeds


def one_unit_state(w, b, length, x0):
    """Pascanu, Mikolov & Bengio's (2013) one-unit network x_t = w sigmoid(x_{t-1}) + b, run `length` steps from x0.

    w and b are tensors of any (equal) shape: the whole parameter grid runs at once.
    """
    x = torch.full_like(w, x0)
    for _ in range(length):
        x = w * torch.sigmoid(x) + b
    return x


@experiment(length=50, x0=0.5, target=0.7, w_range=(0.0, 12.0), b_range=(-6.0, 2.0), grid=(481, 321),
            slice_b=-2.5, slice_w=(3.0, 7.0), slice_points=8001)
def cliff(cfg):
    w = torch.linspace(*cfg.w_range, cfg.grid[0], dtype=torch.float64)
    b = torch.linspace(*cfg.b_range, cfg.grid[1], dtype=torch.float64)
    grid_w, grid_b = torch.meshgrid(w, b, indexing="xy")
    surface = (one_unit_state(grid_w, grid_b, cfg.length, cfg.x0) - cfg.target) ** 2

    ws = torch.linspace(*cfg.slice_w, cfg.slice_points, dtype=torch.float64, requires_grad=True)
    loss = (one_unit_state(ws, torch.full_like(ws, cfg.slice_b), cfg.length, cfg.x0) - cfg.target) ** 2
    (grad,) = torch.autograd.grad(loss.sum(), ws)
    ws, loss, grad = ws.detach().numpy(), loss.detach().numpy(), grad.abs().numpy()
    top = int(grad.argmax())
    near = lambda w_at: int(np.abs(ws - w_at).argmin())

    fig, panels = mosaic("AA;BC", height=6.4)
    heat, along, slope = panels["A"], panels["B"], panels["C"]
    image = heat.pcolormesh(w.numpy(), b.numpy(), surface.numpy() + 1e-6, norm=LogNorm(1e-3, surface.max().item()),
                            cmap="viridis", shading="auto", rasterized=True)
    fig.colorbar(image, ax=heat, label=f"loss $L = (x_{{{cfg.length}}} - {cfg.target})^2$")
    heat.axhline(cfg.slice_b, color="white", ls="--", lw=1.2)
    heat.annotate(f"slice b = {cfg.slice_b}", (cfg.w_range[0] + 0.3, cfg.slice_b), xytext=(0, 4),
                  textcoords="offset points", color="white")
    heat.grid(False)
    finish(heat, "recurrent weight w", "bias b", "Loss over (w, b)")
    along.plot(ws, loss, color="#0072B2")
    along.set_yscale("log")
    finish(along, "recurrent weight w", "loss L", f"L along b = {cfg.slice_b}")
    slope.plot(ws, grad, color="#D55E00")
    slope.set_yscale("log")
    slope.axvline(ws[top], color="0.4", ls=":", lw=1)
    finish(slope, "recurrent weight w", r"$|\partial L/\partial w|$", "Its gradient, same line")
    data = {"slice_w": ws[::10], "slice_loss": loss[::10], "slice_grad": grad[::10],
            "cliff_w": ws[top], "max_grad": grad[top], "median_grad": np.median(grad),
            "loss_left_of_cliff": loss[near(ws[top] - 0.05)], "loss_right_of_cliff": loss[near(ws[top] + 0.05)],
            "min_loss": loss.min(), "w_at_min_loss": ws[loss.argmin()],
            "w_spacing": ws[1] - ws[0]}
    return Result(data, [Plot(
        "cliff", fig,
        alt="Top: the loss of a one-unit recurrent network after 50 steps as a colour map over its recurrent "
            "weight w and bias b, with a sharp boundary where the loss jumps by orders of magnitude. Bottom left: a slice "
            f"at b = {cfg.slice_b}; the loss drops abruptly at w ≈ {data['cliff_w']:.2f}, from "
            f"{data['loss_left_of_cliff']:.2g} just before the wall to {data['loss_right_of_cliff']:.2g} just after "
            f"it. Bottom right: the gradient along the "
            f"slice spikes to {data['max_grad']:.2g} at the wall, against a median of {data['median_grad']:.2g}.",
        caption=f"$x_t = w\\,\\sigma(x_{{t-1}}) + b$ from $x_0 = {cfg.x0}$, {cfg.length} steps, loss "
                f"$(x_{{{cfg.length}}} - {cfg.target})^2$, as in Pascanu, Mikolov & Bengio (2013). Float64; the slice has "
                f"{cfg.slice_points} points, and a finer one finds a higher spike.")])


@experiment(hidden=32, length=50, batch=64, gain=1.5, lrs=(0.05, 0.1), clip=1.0, steps=300, every=10,
            seeds=(0, 1, 2), loss_ylim=(0.05, 1e4), grad_ylim=(0.1, 1e9))
def training(cfg):
    """Plain SGD on a vanilla RNN started with large recurrent weights, with and without clipping, once per seed."""
    fig, (left, right) = figure(ncols=2, height=4.6)
    data = {"clip": cfg.clip, "seeds": cfg.seeds, "runs": {}}
    colors = {(cfg.lrs[0], None): "#0072B2", (cfg.lrs[0], cfg.clip): "#56B4E9",
              (cfg.lrs[-1], None): "#D55E00", (cfg.lrs[-1], cfg.clip): "#E69F00"}
    for lr in cfg.lrs:
        for clip in (None, cfg.clip):
            label = f"lr {lr}, " + (f"clipped at {clip}" if clip else "no clipping")
            color = colors.get((lr, clip))
            ls = "-" if clip is None else "--"
            per_seed = []
            for n, seed in enumerate(cfg.seeds):
                torch.manual_seed(seed)
                model = SequenceModel("rnn", hidden=cfg.hidden)
                with torch.no_grad():
                    torch.nn.init.normal_(model.recurrent_weight, std=cfg.gain / math.sqrt(cfg.hidden))
                history = train_sequence(model, lambda gen: adding_problem(cfg.batch, cfg.length, gen), cfg.steps,
                                         lr=lr, optimizer="sgd", clip=clip, every=cfg.every, seed=seed)
                steps, loss, grads = (np.array(history[k], dtype=float) for k in ("step", "loss", "grad_norm"))
                for ax, values, top in ((left, loss, cfg.loss_ylim[1]), (right, grads, cfg.grad_ylim[1])):
                    ax.plot(steps, values, color=color, ls=ls, lw=1.1, alpha=0.9, label=label if n == 0 else None)
                    over = np.isfinite(values) & (values > top)
                    if over.any():  # finite but off the scale: small triangles on the top edge
                        ax.scatter(steps[over], np.full(over.sum(), 0.99), transform=ax.get_xaxis_transform(),
                                   marker="^", s=22, color=color, zorder=5, clip_on=False)
                    bad = ~np.isfinite(values)
                    if bad.any():  # nan or inf: mark it on the top edge, where the curve left the plot
                        ax.scatter(steps[bad], np.full(bad.sum(), 0.97), transform=ax.get_xaxis_transform(),
                                   marker="X", s=70, color=color, zorder=5, clip_on=False)
                finite = grads[np.isfinite(grads)]
                top_at = int(np.nanargmax(np.where(np.isfinite(grads), grads, np.nan))) if finite.size else -1
                per_seed.append({**history, "max_grad_norm": finite.max() if finite.size else math.nan,
                                 "step_of_max_grad": int(steps[top_at]) if finite.size else -1,
                                 "final_loss": history["loss"][-1], "max_loss": np.nanmax(loss),
                                 "clipped_fraction": sum(history["clipped"]) / history["steps_run"],
                                 "diverged": history["stopped"] == "diverged"})
            keys = ("max_grad_norm", "step_of_max_grad", "final_loss", "max_loss", "clipped_fraction", "diverged",
                    "steps_run")
            data["runs"][label] = {**{k: [r[k] for r in per_seed] for k in keys},
                                   "diverged_at": [r["steps_run"] if r["diverged"] else math.nan for r in per_seed],
                                   "histories": [{k: r[k] for k in ("step", "loss", "grad_norm", "clipped")}
                                                 for r in per_seed]}
    for ax in (left, right):
        if any(any(r["diverged"]) for r in data["runs"].values()):
            ax.scatter([], [], marker="X", s=50, color="0.35", label="loss became nan")
        ax.scatter([], [], marker="^", s=22, color="0.35", label="value above the axis")
    left.axhline(ADDING_BASELINE, color="0.3", ls=":", lw=1.1, label="always answer 1: MSE 1/6")
    left.set_yscale("log")
    right.set_yscale("log")
    left.set_ylim(*cfg.loss_ylim)  # a diverging run leaves through the top edge
    right.set_ylim(*cfg.grad_ylim)
    right.axhline(cfg.clip, color="0.3", ls=":", lw=1.1, label=f"clipping threshold {cfg.clip}")
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=1)
    finish(left, "training step", f"training MSE (mean of each {cfg.every} steps)", "Loss", **below)
    finish(right, "training step", rf"largest $\|\nabla_\theta L\|$ in each {cfg.every} steps, unclipped",
           "Gradient norm", **below)
    runs = data["runs"]
    unclipped = [r for label, r in runs.items() if "no clipping" in label]
    clipped = [r for label, r in runs.items() if "clipped" in label]
    top = np.nanmax([g for r in unclipped for g in r["max_grad_norm"]])
    top_clipped = np.nanmax([g for r in clipped for g in r["max_grad_norm"]])
    return Result(data, [Plot(
        "training", fig,
        alt="Training loss and gradient norm of a vanilla RNN trained by plain gradient descent with two learning "
            f"rates, with and without clipping the gradient norm at {cfg.clip}, log scales, one line per seed "
            f"({len(cfg.seeds)} seeds). Without clipping, the gradient norm spikes as high as {top:.1g} and the "
            "loss with it; runs whose loss becomes nan are marked by a cross on the top edge and stop there. With "
            f"clipping, the largest gradient norm is {top_clipped:.2g} and the losses stay near the baseline.",
        caption=f"{cfg.hidden}-unit tanh RNN, recurrent weights N(0, {cfg.gain}²/{cfg.hidden}) (spectral radius about "
                f"{cfg.gain}), adding problem of length {cfg.length}, batches of {cfg.batch}, plain SGD, "
                f"{cfg.steps} steps at most, seeds {listed(cfg.seeds)} (one line each; a seed sets the "
                f"initialisation and the batches). Solid: no clipping; dashed: global norm clipped at "
                f"{cfg.clip}. Triangles on the top edge: values above the axis; a cross: the loss became nan.")])


def step_contributions(model: SequenceModel, x, y):
    """For a vanilla RNN: the norm of each time step's share of ∂L/∂W_hh, δ_t h_(t−1)ᵀ with δ_t = (1 − h_t²) ⊙ ∂L/∂h_t,
    for t = T down to 2, and the global gradient norm over all parameters."""
    gradient_through_time(model, x, y)
    hidden = model.hidden  # each (1, batch, hidden), with .grad
    shares = []
    for t in range(len(hidden) - 1, 0, -1):  # step 1 has none: h_0 = 0
        h = hidden[t].detach()[0]
        delta = (1 - h ** 2) * hidden[t].grad[0]
        shares.append(norm(delta.T @ hidden[t - 1].detach()[0]))
    total = math.sqrt(sum(norm(p.grad) ** 2 for p in model.parameters()))
    return np.array(shares), total


@experiment(hidden=32, length=50, batch=64, lr=0.05, clips=(None, 1.0, 0.05), steps=400, every=25,
            patience=300, test_size=1000, seeds=(0, 1, 2))
def vanishing(cfg):
    """Clipping on a vanishing problem: the vanilla RNN on the adding problem, with and without it, once per seed."""
    test = adding_problem(cfg.test_size, cfg.length, torch.Generator().manual_seed(20_000 + cfg.length))
    fig, (left, right) = figure(ncols=2, height=4.6)
    data = {"seeds": cfg.seeds, "runs": {}}
    colors = ("#0072B2", "#D55E00", "#009E73")
    for clip, color, ls in zip(cfg.clips, colors, ("-", "--", ":")):
        label = f"clipped at {clip}" if clip else "no clipping"
        per_seed = []
        for n, seed in enumerate(cfg.seeds):
            torch.manual_seed(seed)
            model = SequenceModel("rnn", hidden=cfg.hidden)
            history = train_sequence(model, lambda gen: adding_problem(cfg.batch, cfg.length, gen), cfg.steps,
                                     lr=cfg.lr, optimizer="sgd", clip=clip, every=cfg.every, seed=seed,
                                     patience=cfg.patience, test=test)
            shares, total = step_contributions(model, *test)
            factor = min(1.0, clip / total) if clip else 1.0
            left.plot(history["step"], history["loss"], color=color, ls=ls, lw=1.1, label=label if n == 0 else None)
            per_seed.append({**history, "clipped_fraction": sum(history["clipped"]) / history["steps_run"],
                             "shares": shares, "clip_factor": factor, "grad_norm_after": total,
                             "log10_far_over_near": np.log10(shares[-1] / shares[0]),
                             "log10_far_over_near_clipped": np.log10(shares[-1] * factor / (shares[0] * factor))})
        shown = np.array([r["shares"] * r["clip_factor"] for r in per_seed])
        factors = [r["clip_factor"] for r in per_seed]
        median_band(right, np.arange(shown.shape[1]), shown, log=True, color=color, ls=ls,
                    label=f"{label} (× {min(factors):.2g}" + (f"–{max(factors):.2g})" if max(factors) > min(factors)
                                                              else ")"))
        keys = ("test_mse", "clipped_fraction", "clip_factor", "grad_norm_after", "log10_far_over_near",
                "log10_far_over_near_clipped", "steps_run", "stopped")
        data["runs"][label] = {**{k: [r[k] for r in per_seed] for k in keys},
                               "test_mse_summary": across_seeds([r["test_mse"] for r in per_seed]),
                               "shares_shown": across_seeds(shown),
                               "histories": [{k: r[k] for k in ("step", "loss", "grad_norm", "clipped")}
                                             for r in per_seed]}
    left.axhline(ADDING_BASELINE, color="0.3", ls=":", lw=1.1, label="always answer 1: MSE 1/6")
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.16))
    finish(left, "training step", f"training MSE (mean of each {cfg.every} steps)",
           f"Vanilla RNN, adding problem, length {cfg.length}", **below)
    finish(right, "distance back in time T − t (steps)", r"$\|$share of $\partial L/\partial W_{hh}$ from step $t\|$",
           r"After training: $\partial L/\partial W_{hh}$ by step", **below)
    mses = "; ".join(f"{label} {np.median(r['test_mse']):.3f}" for label, r in data["runs"].items())
    return Result(data, [Plot(
        "vanishing", fig,
        alt="Left: training loss of a vanilla RNN on the adding problem of length "
            f"{cfg.length} without clipping and with clipping at 1 and at 0.05, one line per seed "
            f"({len(cfg.seeds)} seeds); all stay at the baseline of 1/6 (median test MSE {mses}). Right, log scale: "
            "each time step's share of the recurrent weight gradient after training against the distance back in "
            "time, median over the seeds with the range shaded; each run's shares are multiplied by the factor "
            "clipping would apply to its gradient, which shifts a curve down equally at every distance, so the "
            "share from far back stays as many orders of magnitude below the recent one.",
        caption=f"{cfg.hidden}-unit tanh RNN, PyTorch's default initialisation, plain SGD at learning rate {cfg.lr}, "
                f"batches of {cfg.batch}, at most {cfg.steps} steps (stopped after {cfg.patience} steps without a 5% "
                f"improvement), seeds {listed(cfg.seeds)}. Right: shares on {cfg.test_size} test "
                "sequences, each multiplied by the factor min(1, c/‖g‖) clipping at c would apply to that gradient; "
                "median line, min–max band.")])
