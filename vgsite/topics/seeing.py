"""Seeing it: the plots a practitioner draws of one deep tanh network, and which of them tell what stalls it.

The diagnostics over training come from vgsite.health, the tool readers attach to their own networks
(see docs/check-your-network.md): the figures on the page are the ones it draws.
"""
import warnings

import numpy as np
import torch
from matplotlib import colormaps
from torch import nn

from vgsite import health
from vgsite.nets import DeepMLP
from vgsite.plots import LAYER_LABEL, figure, finish, fit_to_column, listed, median_band, power_of_ten
from vgsite.probes import gradient_flow, log_histogram, log_ratio, norm
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import WEIGHT_VARIANCE, per_layer_factor
from vgsite.train import across_seeds, digits, fit

# In the linear regime of tanh, with Glorot & Bengio's "standard" init U(-1/sqrt(n), 1/sqrt(n)) (n Var(W) = 1/3),
# both the activations (going forward) and the back-propagated gradient (going backward) shrink by sqrt(1/3) a layer.
FACTOR = per_layer_factor("tanh", WEIGHT_VARIANCE["default"])


def build(cfg, seed, gain=1.0):
    """Glorot & Bengio's setting: tanh, weights U(-1/sqrt(n), 1/sqrt(n)) (PyTorch's default) times gain, zero biases."""
    torch.manual_seed(seed)
    model = DeepMLP(cfg.depth, cfg.width, activation="tanh", init="default", gain=gain, d_in=64)
    for block in model.blocks:
        nn.init.zeros_(block.linear.bias)
    return model


def snapshot(model, x, y):
    """One probe pass: the per-layer norms and the raw tensors the histograms are made of."""
    flow = gradient_flow(model, x, y)
    inputs = [x] + [h.detach() for h in model.hidden[:-1]]  # h_{l-1}, what W_l multiplies
    flow["input_norm"] = [norm(h) for h in inputs]
    flow["tensors"] = {"activation": [h.detach().clone() for h in model.hidden],
                       "signal": [h.grad.clone() for h in model.hidden],
                       "weight": [w.grad.clone() for w in model.weights]}
    return flow


def slope(values):
    """Decades per layer of a per-layer profile (least-squares line through log10)."""
    return float(np.polyfit(np.arange(1, len(values) + 1), np.log10(values), 1)[0])


def profile_numbers(flows):
    """The numbers of one moment over the seeds: per-seed profiles and their first/last ratios and slopes."""
    out = {k: across_seeds([f[k] for f in flows]) for k in ("signal", "weight", "input_norm", "saturated")}
    for k, name in (("signal", "signal"), ("weight", "weight"), ("input_norm", "input")):
        out[f"{name}_decades_per_layer"] = [slope(f[k]) for f in flows]
    out["signal_log10_first_over_last"] = [log_ratio(f["signal"]) for f in flows]
    out["weight_log10_first_over_last"] = [log_ratio(f["weight"]) for f in flows]
    out["activation_log10_last_over_first"] = [float(np.log10(f["act_std"][-1] / f["act_std"][0])) for f in flows]
    return out


@experiment(depth=15, width=64, steps=1000, lr=0.3, probe_batch=256, every=25, hist_layers=(1, 5, 10, 15),
            saturating_gain=4.0, escape_loss=2.0, seeds=(0, 1, 2))
def deep_tanh(cfg):
    data = digits()
    probe = (data[0][: cfg.probe_batch], data[1][: cfg.probe_batch])
    starts, ends, bigs, records, histories = [], [], [], [], []
    for seed in cfg.seeds:
        model = build(cfg, seed)
        starts.append(snapshot(model, *probe))
        with health.watch(model, every=cfg.every) as watch:
            histories.append(fit(model, data, cfg.steps, lr=cfg.lr, every=cfg.every, seed=seed))
        records.append(watch.to_dict())
        ends.append(snapshot(model, *probe))
        bigs.append(snapshot(build(cfg, seed, gain=cfg.saturating_gain), *probe))
    after = f"after {cfg.steps} steps"
    big = f"weights ×{cfg.saturating_gain:g}, at initialisation"
    moments = {"at initialisation": starts, after: ends}
    out = {"predicted_decades_per_layer": float(np.log10(FACTOR)),
           "loss": {str(s): h for s, h in zip(cfg.seeds, histories)},
           "health": {str(s): r for s, r in zip(cfg.seeds, records)}}
    for key, flows in (("init", starts), ("trained", ends), ("big", bigs)):
        out[key] = profile_numbers(flows)
    out["labels"] = {"init": "at initialisation", "trained": after, "big": big}
    out["diagnostics"] = diagnostics(cfg, records, histories)
    out["most_saturated_in_training"] = [
        max((s for u in r["units"].values() for s in u["share"] if s is not None), default=0.0) for r in records]
    plots = [profile_plot(cfg, moments, out), histogram_plot(cfg, moments, out),
             heatmap_plot(cfg, records[0], out), trend_plot(cfg, records, histories, out),
             saturation_plot(cfg, out, after, big)]
    return Result(out, plots)


def diagnostics(cfg, records, histories):
    """Per seed: when the loss leaves the plateau, and how far apart the layers are before that (medians of
    vgsite.health's spreads over the plateau's samples) and at the first and last samples."""
    per = {k: [] for k in ("escape_step", "forward_plateau", "backward_plateau", "gradient_plateau",
                           "update_plateau", "forward_init", "backward_init", "gradient_init", "update_init",
                           "forward_end", "backward_end", "gradient_end", "update_plateau_median_log10")}
    warnings.filterwarnings("ignore", "Mean of empty slice|All-NaN slice", RuntimeWarning)
    for record, history in zip(records, histories):
        below = [s for s, l in zip(history["step"], history["loss"]) if l < cfg.escape_loss]
        escape = below[0] if below else None
        sp = health.spreads(record)
        steps = np.array(sp["step"])
        plateau = steps < (escape if escape is not None else cfg.steps + 1) - cfg.every
        per["escape_step"].append(escape)
        for key in ("forward", "backward", "gradient", "update"):
            values = np.asarray(sp[key], dtype=float)
            per[f"{key}_plateau"].append(float(np.nanmedian(values[plateau])))
            per[f"{key}_init"].append(float(values[0]))
            if key != "update":
                per[f"{key}_end"].append(float(values[-1]))
        upd = health.matrix(record, "update_ratio")[plateau]
        hidden = [record["layers"].index(n) for n in record["weighted"][:-1]]
        per["update_plateau_median_log10"].append(float(np.nanmedian(np.log10(upd[:, hidden]))))
    kinds = [[v["kind"] for v in health.verdicts(r)] for r in records]
    per["verdicts"] = [[v["message"] for v in health.verdicts(r)] for r in records]
    per["forward_collapse_verdict"] = [int("forward collapse" in k) for k in kinds]
    per["vanishing_verdict"] = [int("vanishing" in k) for k in kinds]
    escaped = [s for s in per["escape_step"] if s is not None]
    per["escaped"] = len(escaped)
    per["escaped_steps"] = escaped
    return per


def profile_plot(cfg, moments, out):
    fig, axes = figure(ncols=2, height=4.6, sharey=True)
    layers = np.arange(1, cfg.depth + 1)
    for ax, (key, title) in zip(axes, (("init", "at initialisation"), ("trained", list(moments)[-1]))):
        o = out[key]
        median_band(ax, layers, o["signal"]["per_seed"], label=r"$\|\partial L/\partial h_\ell\|$, back-propagated signal", log=True,
                    marker="o", ms=3, color="#0072B2")
        median_band(ax, layers, o["weight"]["per_seed"], label=r"$\|\partial L/\partial W_\ell\|$, weight gradient", log=True,
                    marker="s", ms=3, color="#D55E00")
        median_band(ax, layers, o["input_norm"]["per_seed"], label=r"$\|h_{\ell-1}\|$, the layer's input", log=True,
                    marker="^", ms=3, color="#009E73", lw=1.2)
        if title == "at initialisation":
            sig, inp = o["signal"]["median"], o["input_norm"]["median"]
            ax.plot(layers, sig[-1] * FACTOR ** (cfg.depth - layers), color="#0072B2", ls="--", lw=1,
                    label=r"theory: $\times\sqrt{1/3}$ per layer")
            ax.plot(layers[1:], inp[1] * FACTOR ** (layers[1:] - 2), color="#009E73", ls="--", lw=1)
        finish(ax, LAYER_LABEL, "norm over a batch of 256" if ax is axes[0] else "", title,
               legend=False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    s, e = out["init"], out["trained"]
    return Plot("gradient-norms", fig,
                alt=f"Per-layer norms in a {cfg.depth}-layer tanh network, log scale, median of {len(cfg.seeds)} "
                    f"seeds with their range as a band. At initialisation the back-propagated gradient falls by "
                    f"{-np.median(s['signal_log10_first_over_last']):.1f} decades from the last layer to the first and "
                    f"the layer inputs grow by about as much toward the input, so the weight gradients stay within "
                    f"{np.max(np.abs(s['weight_log10_first_over_last'])):.1f} decades of each other. After "
                    f"{cfg.steps} steps the back-propagated signal's first-to-last ratio is "
                    f"{np.median(e['signal_log10_first_over_last']):+.1f} decades (median).",
                caption=f"Tanh, depth {cfg.depth}, width {cfg.width}, weights U(±1/√n), zero biases (Glorot & "
                        f"Bengio's standard initialisation), on the digits; one fixed batch of {cfg.probe_batch} "
                        f"training images. Right: the same networks after {cfg.steps} SGD steps at learning rate "
                        f"{cfg.lr}. Lines: median of seeds {listed(cfg.seeds)}; bands: their range.")


def histogram_plot(cfg, moments, out):
    kinds = (("activation", r"$\log_{10}|h_\ell|$, activations"),
             ("signal", r"$\log_{10}|\partial L/\partial h_\ell|$, backward"),
             ("weight", r"$\log_{10}|\partial L/\partial W_\ell|$, weights"))
    fig, axes = figure(ncols=3, nrows=2, height=6.4, sharex="col")
    axes = axes.reshape(2, 3)
    out["histograms"] = {}
    for col, (kind, xlabel) in enumerate(kinds):
        every = torch.cat([t.flatten() for flows in moments.values() for f in flows
                           for t in f["tensors"][kind]]).abs()
        logs = torch.log10(every[every > 0].double())
        edges = np.linspace(np.floor(logs.min().item()), np.ceil(logs.max().item()), 61)
        for row, (moment, flows) in enumerate(moments.items()):
            ax = axes[row, col]
            key = ("init", "trained")[row]
            notes = []
            for layer in cfg.hist_layers:
                pooled = torch.cat([f["tensors"][kind][layer - 1].flatten() for f in flows])
                h = log_histogram(pooled, edges)
                if h["zeros"]:
                    notes.append(f"layer {layer}: {h['zeros']} of {h['total']}")
                colour = colormaps["viridis"](0.85 * (layer - 1) / max(1, cfg.depth - 1))
                ax.stairs(h["counts"] / h["total"], h["edges"], color=colour, lw=1.5, label=f"layer {layer}")
                medians = [float(np.median(np.log10(f["tensors"][kind][layer - 1].abs().double()
                                                    .clamp_min(1e-300).numpy()))) for f in flows]
                out["histograms"].setdefault(key, {}).setdefault(kind, {})[str(layer)] = {
                    "counts": h["counts"], "zeros": h["zeros"], "total": h["total"],
                    "zeros_per_seed": h["zeros"] // len(flows), "median_log10": medians}
            if notes:
                ax.set_title("exact zeros, not shown:\n" + "\n".join(notes), loc="right", fontsize=9, color="0.25")
            out["histograms"][key].setdefault("edges", {})[kind] = edges
            finish(ax, xlabel if row == 1 else "", "share of entries" if col == 0 else "",
                   f"{moment}" if col == 1 else None, legend=False)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=len(cfg.hist_layers))
    first, last = str(cfg.hist_layers[0]), str(cfg.hist_layers[-1])
    gap = lambda moment, kind: np.median(np.subtract(out["histograms"][moment][kind][last]["median_log10"],
                                                     out["histograms"][moment][kind][first]["median_log10"]))
    init, end = "init", "trained"
    return Plot("histograms", fig,
                alt=f"Histograms of log10 magnitudes for layers {', '.join(map(str, cfg.hist_layers))}, entries of "
                    f"{len(cfg.seeds)} seeds pooled. At initialisation the activations' typical entry is "
                    f"{abs(gap(init, 'activation')):.1f} decades smaller at layer {last} than at layer {first}, the "
                    f"back-propagated gradient's {abs(gap(init, 'signal')):.1f} decades larger, and the "
                    f"weight-gradient histograms of all layers lie close together. After training the activation "
                    f"histograms overlap, and the typical back-propagated entry at layer {first} is "
                    f"{abs(gap(end, 'signal')):.1f} decades "
                    f"{'smaller' if gap(end, 'signal') > 0 else 'larger'} than at layer {last} (median over seeds).",
                caption="Per-layer histograms on a log axis (the share of entries per bin; exact zeros, which a log "
                        "axis cannot show, are counted in the panel's note), the seeds' entries pooled. Top: at "
                        f"initialisation; bottom: after {cfg.steps} steps. Same networks and batch as above.")


def heatmap_plot(cfg, record, out):
    seed = cfg.seeds[0]
    fig = fit_to_column(health.figure(record, title=f"vgsite.health's figure for the {cfg.depth}-layer tanh "
                                                    f"network, seed {seed}"))
    d = out["diagnostics"]
    return Plot("heatmap", fig,
                alt=f"Two heatmaps drawn by vgsite.health, layer against training step, log colour scales: the "
                    f"weight-gradient norm and the update ratio of each layer of seed {seed}. During the plateau "
                    f"both are level across the hidden layers (the weight gradient of the first hidden layer is "
                    f"{d['gradient_plateau'][0]:+.1f} decades from the last's, median over the plateau), and dark: "
                    f"updates of about {power_of_ten(d['update_plateau_median_log10'][0], 1)} of the weights a step. When the "
                    f"loss leaves the plateau"
                    + (f" at step {d['escape_step'][0]}" if d['escape_step'][0] is not None else "")
                    + " both brighten in every layer at once. The last sample has no update (training ended).",
                caption=f"What `health.watch(model, every={cfg.every})` draws for this network, seed {seed} (the "
                        "other seeds are in the numbers). Weight gradients and updates are of the weight matrices; "
                        "grey: not recorded.")


def trend_plot(cfg, records, histories, out):
    fig = fit_to_column(health.trend_figure(records, histories, labels=[f"seed {s}" for s in cfg.seeds],
                                            title=f"vgsite.health on the {cfg.depth}-layer tanh network: layers 1 "
                                                  f"and {cfg.depth} compared, {len(cfg.seeds)} seeds"))
    d = out["diagnostics"]
    return Plot("diagnostics", fig,
                alt=f"Five panels against the training step, one line per seed. The loss sits at ln 10 until it "
                    f"drops (first below {cfg.escape_loss:g} at steps "
                    f"{', '.join(str(s) for s in d['escaped_steps']) or 'none'}). During the plateau the spread of "
                    f"the last hidden layer's output is {-np.median(d['forward_plateau']):.1f} decades below the "
                    f"first's and the back-propagated signal at the first hidden layer "
                    f"{-np.median(d['backward_plateau']):.1f} decades below the last's; both return near 0 when the "
                    f"loss drops. The weight gradients of the first and last hidden layer differ by "
                    f"{abs(np.median(d['gradient_plateau'])):.1f} decades and the update ratios of all hidden layers "
                    f"by {np.median(d['update_plateau']):.1f} (medians over the plateau).",
                caption=f"vgsite.health's summary of the layers, sampled every {cfg.every} steps on the training "
                        f"batch of each step; seeds {listed(cfg.seeds)}. 0 means level across layers. "
                        "Top: the training loss of each minibatch (dotted: ln 10, guessing).")


def saturation_plot(cfg, out, after, big):
    fig, (left, right) = figure(ncols=2, height=4.6)
    layers = np.arange(1, cfg.depth + 1)
    series = (("standard init, at initialisation", out["init"], dict(color="#0072B2")),
              (f"standard init, {after}", out["trained"], dict(color="#0072B2", ls="--")),
              (big, out["big"], dict(color="#D55E00")))
    for label, o, style in series:
        median_band(left, layers, o["saturated"]["per_seed"], label=label, marker="o", ms=3, **style)
        median_band(right, layers, o["signal"]["per_seed"], label=label, log=True, marker="o", ms=3, **style)
    most = max(out["most_saturated_in_training"])
    left.axhline(most, color="#0072B2", ls=":", lw=1.2, label="standard init, most in any layer during training")
    left.set_ylim(-0.01, max(0.05, 1.25 * max(np.max(out["big"]["saturated"]["max"]), most)))
    finish(left, LAYER_LABEL, "share of saturated units (|tanh′| < 0.01)", "Saturation", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    finish(right, LAYER_LABEL, r"$\|\partial L/\partial h_\ell\|$", "Back-propagated gradient", legend=False)
    s, b = out["init"], out["big"]
    return Plot("saturation", fig,
                alt=f"Left: the share of saturated tanh units per layer, median of {len(cfg.seeds)} seeds. The "
                    f"{cfg.depth}-layer network with standard initialisation has at most "
                    f"{np.max(s['saturated']['max']):.1%} saturated units at initialisation and at most {most:.1%} in "
                    f"any layer during training, yet its gradient vanishes by "
                    f"{-np.median(s['signal_log10_first_over_last']):.1f} decades. With weights "
                    f"{cfg.saturating_gain:g} times larger {np.min(b['saturated']['median']):.0%} to "
                    f"{np.max(b['saturated']['median']):.0%} of the units are saturated and the gradient changes by "
                    f"{np.median(b['signal_log10_first_over_last']):+.1f} decades from the last layer to the first. "
                    "Right: the gradient norms per layer.",
                caption="A unit counts as saturated on an input when its slope is below 1% of tanh's largest "
                        f"slope (|z| > 3); share over units and the {cfg.probe_batch} probe images "
                        "(probes.saturated_fraction); during training, vgsite.health's share on each sampled training "
                        "batch. Two different causes of vanishing, one symptom.")
