"""Seeing it: the plots a practitioner draws of one deep tanh network, and why weight gradients alone mislead."""
import numpy as np
import torch
from matplotlib import colormaps
from torch import nn

from vgsite.nets import DeepMLP
from vgsite.plots import figure, finish, log_line
from vgsite.probes import TrainingRecorder, gradient_flow, log_histogram, log_ratio, norm
from vgsite.registry import Plot, Result, experiment
from vgsite.train import digits, fit

# In the linear regime of tanh, with Glorot & Bengio's "standard" init U(-1/sqrt(n), 1/sqrt(n)) (n Var(W) = 1/3),
# both the activations (going forward) and the back-propagated gradient (going backward) shrink by sqrt(1/3) a layer.
FACTOR = np.sqrt(1 / 3)


def build(cfg, gain=1.0):
    """Glorot & Bengio's setting: tanh, weights U(-1/sqrt(n), 1/sqrt(n)) (PyTorch's default) times gain, zero biases."""
    torch.manual_seed(cfg.seed)
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


@experiment(depth=15, width=64, steps=1000, lr=0.3, probe_batch=256, probe_every=25, hist_layers=(1, 5, 10, 15),
            saturating_gain=4.0, seed=0)
def deep_tanh(cfg):
    data = digits()
    probe = (data[0][: cfg.probe_batch], data[1][: cfg.probe_batch])
    model = build(cfg)
    start = snapshot(model, *probe)
    recorder = TrainingRecorder(probe=probe, probe_every=cfg.probe_every, every=cfg.probe_every)
    history = fit(model, data, cfg.steps, lr=cfg.lr, every=cfg.probe_every, on_step=recorder, seed=cfg.seed)
    end = snapshot(model, *probe)
    big = snapshot(build(cfg, gain=cfg.saturating_gain), *probe)
    moments = {"at initialisation": start, f"after {cfg.steps} steps": end}
    data_out = {"loss": {"step": history["step"], "loss": history["loss"], "test_acc": history["test_acc"]},
                "predicted_decades_per_layer": float(np.log10(FACTOR))}
    for label, flow in list(moments.items()) + [(f"weights ×{cfg.saturating_gain:g}, at initialisation", big)]:
        data_out[label] = {
            "signal": flow["signal"], "weight": flow["weight"], "input_norm": flow["input_norm"],
            "saturated": flow["saturated"],
            "signal_log10_first_over_last": log_ratio(flow["signal"]),
            "weight_log10_first_over_last": log_ratio(flow["weight"]),
            "signal_decades_per_layer": slope(flow["signal"]),
            "weight_decades_per_layer": slope(flow["weight"]),
            "input_decades_per_layer": slope(flow["input_norm"]),
        }
    heat = {"step": recorder.flow_steps,
            "signal": np.array([f["signal"] for f in recorder.flows]),
            "weight": np.array([f["weight"] for f in recorder.flows]),
            "saturated": np.array([f["saturated"] for f in recorder.flows])}
    data_out["heatmap"] = heat
    plots = [profile_plot(cfg, moments), histogram_plot(cfg, moments, data_out),
             heatmap_plot(cfg, history, heat), saturation_plot(cfg, start, end, big, heat)]
    return Result(data_out, plots)


def profile_plot(cfg, moments):
    fig, axes = figure(ncols=2, height=4.0, width=8.6, sharey=True)
    layers = np.arange(1, cfg.depth + 1)
    for ax, (title, flow) in zip(axes, moments.items()):
        log_line(ax, layers, flow["signal"], label="‖∂L/∂h_l‖, back-propagated signal", marker="o", ms=3,
                 color="#0072B2")
        log_line(ax, layers, flow["weight"], label="‖∂L/∂W_l‖, weight gradient", marker="s", ms=3, color="#D55E00")
        log_line(ax, layers, flow["input_norm"], label="‖h_(l−1)‖, the layer's input", marker="^", ms=3,
                 color="#009E73", lw=1.2)
        if title == "at initialisation":
            ax.plot(layers, flow["signal"][-1] * FACTOR ** (cfg.depth - layers), color="#0072B2", ls="--", lw=1,
                    label="theory: ×√(1/3) per layer")
            ax.plot(layers[1:], flow["input_norm"][1] * FACTOR ** (layers[1:] - 2), color="#009E73", ls="--", lw=1)
        finish(ax, "layer l (input side on the left)", "norm over a batch of 256" if ax is axes[0] else "", title,
               legend=False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    s = moments["at initialisation"]
    return Plot("gradient-norms", fig,
                alt=f"Per-layer norms in a {cfg.depth}-layer tanh network, log scale. At initialisation the "
                    f"back-propagated gradient falls by {-log_ratio(s['signal']):.1f} decades from the last layer "
                    f"to the first and the layer inputs grow by about as much toward the input, so the weight "
                    f"gradients stay within {abs(log_ratio(s['weight'])):.1f} decades of each other across all "
                    f"layers. After {cfg.steps} steps of training all three profiles are nearly flat.",
                caption=f"Tanh, depth {cfg.depth}, width {cfg.width}, weights U(±1/√n), zero biases (Glorot & "
                        f"Bengio's standard initialisation), on the digits; one batch of {cfg.probe_batch} training "
                        f"images. Right: the same network after {cfg.steps} SGD steps at learning rate {cfg.lr}.")


def histogram_plot(cfg, moments, data_out):
    kinds = (("activation", "log₁₀|h_l|, activations"), ("signal", "log₁₀|∂L/∂h_l|, back-propagated"),
             ("weight", "log₁₀|∂L/∂W_l|, weight gradients"))
    fig, axes = figure(ncols=3, nrows=2, height=5.6, width=10, sharex="col")
    axes = axes.reshape(2, 3)
    data_out["histograms"] = {}
    for col, (kind, xlabel) in enumerate(kinds):
        every = torch.cat([t.flatten() for flow in moments.values() for t in flow["tensors"][kind]]).abs()
        logs = torch.log10(every[every > 0].double())
        edges = np.linspace(np.floor(logs.min().item()), np.ceil(logs.max().item()), 61)
        for row, (moment, flow) in enumerate(moments.items()):
            ax = axes[row, col]
            notes = []
            for layer in cfg.hist_layers:
                h = log_histogram(flow["tensors"][kind][layer - 1], edges)
                share = h["counts"] / h["total"]
                if h["zeros"]:
                    notes.append(f"layer {layer}: {h['zeros']} of {h['total']}")
                colour = colormaps["viridis"](0.85 * (layer - 1) / max(1, cfg.depth - 1))
                ax.stairs(share, h["edges"], color=colour, lw=1.5, label=f"layer {layer}")
                data_out["histograms"].setdefault(moment, {}).setdefault(kind, {})[str(layer)] = {
                    "counts": h["counts"], "zeros": h["zeros"], "total": h["total"],
                    "median_log10": float(np.median(np.log10(flow["tensors"][kind][layer - 1].abs()
                                                             .double().clamp_min(1e-300).numpy())))}
            if notes:
                ax.text(0.02, 0.97, "exact zeros (not on the axis):\n" + "\n".join(notes), transform=ax.transAxes,
                        va="top", fontsize=7.5, color="0.25")
            data_out["histograms"][moment].setdefault("edges", {})[kind] = edges
            finish(ax, xlabel if row == 1 else "", "share of entries" if col == 0 else "",
                   f"{moment}" if col == 1 else None, legend=(row == 0 and col == 0), loc="upper left",
                   fontsize=7.5)
    init = data_out["histograms"]["at initialisation"]
    spread = {k: init[k][str(cfg.hist_layers[-1])]["median_log10"] - init[k][str(cfg.hist_layers[0])]["median_log10"]
              for k, _ in kinds}
    after = data_out["histograms"][list(moments)[-1]]
    after_spread = (after["signal"][str(cfg.hist_layers[-1])]["median_log10"]
                    - after["signal"][str(cfg.hist_layers[0])]["median_log10"])
    return Plot("histograms", fig,
                alt=f"Histograms of log10 magnitudes for layers {', '.join(map(str, cfg.hist_layers))}. At "
                    f"initialisation the activations' peaks move {abs(spread['activation']):.1f} decades down from "
                    f"layer {cfg.hist_layers[0]} to layer {cfg.hist_layers[-1]}, the back-propagated gradients' "
                    f"peaks move {abs(spread['signal']):.1f} decades up, and the weight-gradient histograms of all "
                    f"layers lie on top of each other. After training the activation histograms overlap near 1, "
                    f"but the typical back-propagated entry is still {abs(after_spread):.1f} decades smaller at layer "
                    f"{cfg.hist_layers[0]} than at layer {cfg.hist_layers[-1]}; a shoulder of large entries carries "
                    "its norm.",
                caption="Per-layer histograms on a log axis (the share of entries per bin; exact zeros, which a log "
                        "axis cannot show, are counted in the panel's note). Top: at initialisation; bottom: after "
                        f"{cfg.steps} steps. Same network and batch as above.")


def heatmap_plot(cfg, history, heat):
    fig, axes = figure(nrows=3, height=7.4, width=8.0, sharex=True, gridspec_kw={"height_ratios": [1, 2, 2]})
    loss_ax, sig_ax, w_ax = axes
    loss_ax.plot(history["step"], history["loss"], color="0.25", lw=1.2)
    loss_ax.axhline(np.log(10), color="0.3", ls=":", lw=1)
    finish(loss_ax, "", "training loss", f"{cfg.depth}-layer tanh network during training", legend=False)
    steps = np.array(heat["step"], dtype=float)
    half = np.diff(steps).mean() / 2
    x_edges = np.concatenate([steps - half, [steps[-1] + half]])
    y_edges = np.arange(0.5, cfg.depth + 1)
    logs = {k: np.log10(heat[k]) for k in ("signal", "weight")}
    vmin = min(v.min() for v in logs.values())
    vmax = max(v.max() for v in logs.values())
    for ax, key, title in ((sig_ax, "signal", "‖∂L/∂h_l‖, back-propagated signal"),
                           (w_ax, "weight", "‖∂L/∂W_l‖, weight gradient")):
        mesh = ax.pcolormesh(x_edges, y_edges, logs[key].T, cmap="magma", vmin=vmin, vmax=vmax)
        ax.grid(False)
        ax.set_yticks([1, 5, 10, 15] if cfg.depth >= 15 else range(1, cfg.depth + 1))
        finish(ax, "training step" if ax is w_ax else "", "layer", title, legend=False)
    fig.colorbar(mesh, ax=[sig_ax, w_ax], label="log₁₀ norm", shrink=0.9)
    sig0 = logs["signal"][0]
    return Plot("heatmap", fig,
                alt=f"Training loss and two heatmaps, layer against training step, of log10 gradient norms. In the "
                    f"signal heatmap a vertical gradient of colour spans {sig0[-1] - sig0[0]:.1f} decades from the "
                    "last layer to the first while the loss sits at ln 10; when the loss drops the colour evens "
                    "out across layers. The weight-gradient heatmap is even across layers the whole time, plateau "
                    "included.",
                caption=f"The same run, probed every {cfg.probe_every} steps on the fixed batch of "
                        f"{cfg.probe_batch}; one shared colour scale.")


def saturation_plot(cfg, start, end, big, heat):
    fig, (left, right) = figure(ncols=2, height=4.3, width=8.6)
    layers = np.arange(1, cfg.depth + 1)
    most = np.asarray(heat["saturated"]).max(axis=0)
    series = (("standard init, at initialisation", start["saturated"], start["signal"], dict(color="#0072B2")),
              (f"standard init, after {cfg.steps} steps", end["saturated"], end["signal"],
               dict(color="#0072B2", ls="--")),
              (f"weights ×{cfg.saturating_gain:g}, at initialisation", big["saturated"], big["signal"],
               dict(color="#D55E00")))
    for label, sat, signal, style in series:
        left.plot(layers, sat, marker="o", ms=3, label=label, **style)
        log_line(right, layers, signal, label=label, marker="o", ms=3, **style)
    left.plot(layers, most, color="#0072B2", ls=":", lw=1.2, label="standard init, most at any probe")
    left.set_ylim(-0.01, max(0.05, 1.25 * max(max(big["saturated"]), most.max())))
    finish(left, "layer l", "share of saturated units (|tanh′| < 0.01)", "Saturation", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    finish(right, "layer l", "‖∂L/∂h_l‖", "Back-propagated gradient", legend=False)
    return Plot("saturation", fig,
                alt=f"Left: the share of saturated tanh units per layer. The {cfg.depth}-layer network with standard "
                    f"initialisation has {max(start['saturated']):.0%} saturated units at initialisation and at most "
                    f"{most.max():.0%} at any point of training, yet its gradient vanishes by "
                    f"{-log_ratio(start['signal']):.1f} decades. With weights {cfg.saturating_gain:g} times larger "
                    f"{min(big['saturated']):.0%} to {max(big['saturated']):.0%} of the units are saturated and the "
                    f"gradient falls {-log_ratio(big['signal']):.1f} decades. Right: the gradient norms per layer.",
                caption="A unit counts as saturated on an input when its slope is below 1% of tanh's largest "
                        f"slope (|z| > 3); share over units and the {cfg.probe_batch} probe images "
                        "(probes.saturated_fraction). Two different causes of vanishing, one symptom.")
