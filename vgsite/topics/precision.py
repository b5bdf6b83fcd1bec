"""Number formats: where float16's and bfloat16's range cuts a deep net's gradients, and what loss scaling does.

The half-precision backward pass is real, not simulated: torch.autocast on the CPU with dtype float16 or bfloat16
runs the matrix products in that format, hands the activation gradients from layer to layer as float16/bfloat16
tensors and casts a weight gradient to float32 only where it reaches the float32 weight. A gradient entry that is
exactly 0 there but not in the float32 backward pass underflowed. The format limits come from torch.finfo.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ticker import FixedLocator, NullLocator

from vgsite.nets import DeepMLP
from vgsite.plots import COLORS, LAYER_LABEL, figure, finish, listed, median_band, power
from vgsite.probes import log_histogram
from vgsite.registry import Plot, Result, experiment
from vgsite.train import DynamicLossScale, across_seeds, digits, fit_amp

FORMATS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def limits(dtype) -> dict:
    """The format's range from torch.finfo: smallest subnormal, smallest normal, largest finite, machine epsilon."""
    info = torch.finfo(dtype)
    return {"subnormal": info.smallest_normal * info.eps, "normal": info.smallest_normal, "max": info.max,
            "eps": info.eps, "unit_roundoff": info.eps / 2, "log2_max": math.log2(info.max)}


def build(cfg):
    return DeepMLP(cfg.depth, cfg.width, activation=cfg.activation, d_in=64)


def batch(cfg, seed):
    x, y, _, _ = digits()
    idx = torch.randint(0, len(x), (cfg.batch,), generator=torch.Generator().manual_seed(seed))
    return x[idx], y[idx]


def backward(model, x, y, dtype=None, scale=1.0) -> dict:
    """One forward and backward pass, in float32 (dtype None) or under autocast in dtype, the loss times `scale`.

    Returns the weight gradients as the optimizer would see them (still multiplied by the scale), the activation
    gradients dL/dh_l, and whether every gradient is finite.
    """
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss = F.cross_entropy(model(x, keep=True), y)
    (loss * scale).backward()
    grads = [p.grad for p in model.parameters()]
    return {"weight": [w.grad.detach().clone() for w in model.weights],
            "signal": [h.grad.detach().float().clone() for h in model.hidden],
            "finite": all(bool(torch.isfinite(g).all()) for g in grads),
            "max_abs": max(float(g.detach().double().abs().max()) for g in grads)}


def underflow(measured, reference) -> float:
    """Share of the entries that are nonzero in float32 and exactly 0 in the lower precision."""
    nonzero = reference != 0
    return float(((measured == 0) & nonzero).sum() / nonzero.sum())


def subnormal(measured, reference, tiny) -> float:
    """Share of the nonzero float32 entries whose stored value (scaled, if the loss was) is a subnormal."""
    nonzero = reference != 0
    a = measured.abs()
    return float(((a > 0) & (a < tiny) & nonzero).sum() / nonzero.sum())


def zero_bin_axis(ax, edges, zero_at):
    """A log x-axis whose leftmost tick, at `zero_at`, stands for the exactly-0 bin."""
    ax.set_xscale("log")
    decades = [10.0 ** k for k in range(int(math.ceil(edges[0])), int(math.floor(edges[-1])) + 1, 4)]
    ax.xaxis.set_major_locator(FixedLocator([zero_at] + decades))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(["0"] + [f"$10^{{{int(round(math.log10(d)))}}}$" for d in decades])
    ax.set_xlim(zero_at / 30, 10.0 ** edges[-1])


def draw_histograms(ax, hist_by_layer, shown, edges, zero_at, title):
    centres = 10.0 ** ((edges[:-1] + edges[1:]) / 2)
    step = 10.0 ** 0.45  # the zero bars side by side, one per layer shown, centred on zero_at
    for i, (color, layer) in enumerate(zip(COLORS, shown)):
        h = hist_by_layer[layer - 1]
        total = h["total"]
        ax.step(centres, np.asarray(h["counts"]) / total, where="mid", color=color, label=f"layer {layer}")
        if h["zeros"]:
            at = zero_at * step ** (i - (len(shown) - 1) / 2)
            ax.bar([at], [h["zeros"] / total], width=at * 0.6, color=color, alpha=0.6, edgecolor=color)
    ax.set_title(title)


def format_lines(ax, lim16, y=0.97):
    for key, text, style in (("subnormal", "float16 smallest subnormal", ":"),
                             ("normal", "float16 smallest normal", "--"), ("max", "float16 largest", "-.")):
        ax.axvline(lim16[key], color=COLORS[6], ls=style, lw=1.1, label=f"theory: {text} (torch.finfo)")


@experiment(depth=10, width=64, activation="sigmoid", batch=64, seeds=(0, 1, 2, 3, 4), scale=2.0 ** 16,
            shown=(1, 4, 5, 7, 10), bins=(-16.0, 6.0, 45))
def histograms(cfg):
    """Per-layer weight-gradient histograms of a fresh deep sigmoid net on digits: float32, float16, float16 with
    the loss scaled, and bfloat16; 5 initialisations (one batch each), the histograms pooled over them."""
    lim16, lim_b = limits(torch.float16), limits(torch.bfloat16)
    edges = np.linspace(*cfg.bins[:2], int(cfg.bins[2]))
    depth = cfg.depth
    keys = ("float32", "float16", "float16 scaled", "bfloat16")
    pooled = {k: [None] * depth for k in keys}
    per_seed = {k: {"underflow": [], "subnormal": [], "signal_underflow": []} for k in keys[1:]}
    predicted, ref_median, ref_max = [], [], []
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        model = build(cfg)
        x, y = batch(cfg, seed)
        ref = backward(model, x, y)
        runs = {"float32": ref, "float16": backward(model, x, y, torch.float16),
                "float16 scaled": backward(model, x, y, torch.float16, cfg.scale),
                "bfloat16": backward(model, x, y, torch.bfloat16)}
        for k, run in runs.items():
            for i, g in enumerate(run["weight"]):
                h = log_histogram(g, edges)
                if pooled[k][i] is None:
                    pooled[k][i] = h
                else:
                    pooled[k][i] = {"counts": pooled[k][i]["counts"] + h["counts"], "edges": edges,
                                    "zeros": pooled[k][i]["zeros"] + h["zeros"],
                                    "total": pooled[k][i]["total"] + h["total"]}
        for k in keys[1:]:
            run, tiny = runs[k], (lim16 if k.startswith("float16") else lim_b)["normal"]
            per_seed[k]["underflow"].append([underflow(g, r) for g, r in zip(run["weight"], ref["weight"])])
            per_seed[k]["subnormal"].append([subnormal(g, r, tiny) for g, r in zip(run["weight"], ref["weight"])])
            per_seed[k]["signal_underflow"].append([underflow(g, r) for g, r in zip(run["signal"], ref["signal"])])
        # theory: round the exact (float32) weight gradient to float16 once; what becomes 0 would underflow even if
        # every step of the backward pass before it had been exact
        predicted.append([underflow(r.half(), r) for r in ref["weight"]])
        ref_median.append([float(r[r != 0].abs().median()) for r in ref["weight"]])
        ref_max.append(ref["max_abs"])

    data = {"limits": {"float16": lim16, "bfloat16": lim_b}, "layers": list(range(1, depth + 1)),
            "seeds": cfg.seeds, "scale": cfg.scale, "log2_scale": math.log2(cfg.scale),
            "median_abs_grad": across_seeds(ref_median), "max_abs_grad": across_seeds(ref_max),
            "predicted_underflow": across_seeds(predicted),
            "histograms": {k: [{"counts": h["counts"], "zeros": h["zeros"], "total": h["total"]} for h in v]
                           for k, v in pooled.items()}, "edges": edges}
    # entries outside the bins would be missing from the figure: counted, so a test can see there are none
    data["outside_bins"] = int(sum(h["total"] - h["zeros"] - int(np.sum(h["counts"])) for v in pooled.values()
                                   for h in v))
    logs = np.log10(np.asarray(ref_median))  # seeds x layers
    data["decades_per_layer"] = across_seeds(np.polyfit(np.arange(1, depth + 1), logs.T, 1)[0])
    data["decades_first_to_last"] = across_seeds(logs[:, -1] - logs[:, 0])
    data["decades_first_to_largest"] = across_seeds(np.log10(ref_max) - logs[:, 0])
    data["formats"] = {}
    for k in keys[1:]:
        data["formats"][k] = {m: across_seeds(v) for m, v in per_seed[k].items()}
        # the same numbers layer by layer, each a list over the seeds: formats[k].by_layer.underflow[4] is layer 5
        data["formats"][k]["by_layer"] = {m: np.asarray(v).T for m, v in per_seed[k].items()}
    data["predicted_by_layer"] = np.asarray(predicted).T

    zero_at = 10.0 ** (edges[0] - 2)
    blank = data["histograms"]["float32"][0]["zeros"] / data["histograms"]["float32"][0]["total"]
    fig, axes = figure(nrows=3, height=8.4, sharex=True)
    titles = {"float32": "float32 backward pass (the reference)",
              "float16": "float16 backward pass (autocast): the bar at 0 is what underflowed",
              "float16 scaled": f"float16, loss × 2^{int(math.log2(cfg.scale))}, before unscaling: the histogram moves right"}
    for ax, k in zip(axes, titles):
        draw_histograms(ax, data["histograms"][k], cfg.shown, edges, zero_at, titles[k].replace(
            f"2^{int(math.log2(cfg.scale))}", f"$2^{{{int(math.log2(cfg.scale))}}}$"))
        format_lines(ax, lim16)
        ax.set_ylabel("share of entries")
    zero_bin_axis(axes[-1], edges, zero_at)
    axes[-1].set_xlabel(r"$|\partial L/\partial W_\ell|$ per entry (log scale; the tick 0 is the exactly-zero bin)")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles[:len(cfg.shown)], labels[:len(cfg.shown)], loc="upper left", ncols=2)
    axes[1].legend(handles[len(cfg.shown):], labels[len(cfg.shown):], loc="upper center")

    u16 = data["formats"]["float16"]["underflow"]["median"]
    us = data["formats"]["float16 scaled"]["underflow"]["median"]
    alt = (f"Three stacked histograms of the per-entry weight gradients of layers {', '.join(map(str, cfg.shown))} of a "
           f"fresh {depth}-layer sigmoid network, on a log axis with float16's smallest subnormal "
           f"({lim16['subnormal']:.2g}), smallest normal ({lim16['normal']:.2g}) and largest value "
           f"({lim16['max']:.5g}) as vertical lines. In float32 the layers sit decade after decade to the left, the "
           f"input layer's around {data['median_abs_grad']['median'][0]:.1g}. In float16 the left ones collapse "
           f"into the bar at 0: {u16[0]:.0%} of layer 1's entries and {u16[depth - 1]:.0%} of layer {depth}'s. With "
           f"the loss scaled by {cfg.scale:.0f} the histograms shift right by that factor and only "
           f"{us[0]:.1%} of layer 1's entries are 0.")
    caption = (f"{depth} sigmoid layers of width {cfg.width}, PyTorch's default initialisation, one batch of "
               f"{cfg.batch} digits; histograms pooled over {len(cfg.seeds)} initialisations (seeds "
               f"{listed(cfg.seeds)}). float16 via torch.autocast on the CPU; a gradient counts as "
               "underflowed where it is exactly 0 in float16 and not in float32. Limits from torch.finfo. The "
               f"bar at 0 in the float32 panel, {blank:.1%} of layer 1's entries, is the weights of pixels that are "
               "blank in every digit: 0 in every format.")
    return Result(data, [Plot("histograms", fig, alt=alt, caption=caption)])


@experiment(depth=10, width=64, activation="sigmoid", batch=64, seeds=(0, 1, 2, 3, 4), log2_scales=tuple(range(0, 31)),
            shown=(1, 2, 3, 4, 5, 6))
def loss_scaling(cfg):
    """Sweep a static loss scale 2^k: per-layer underflow of the float16 gradients, and where they overflow."""
    lim16, lim_b = limits(torch.float16), limits(torch.bfloat16)
    uf, finite, predicted_k = [], [], []
    by_layer = {"float16": [], "bfloat16": [], "predicted": []}
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        model = build(cfg)
        x, y = batch(cfg, seed)
        ref = backward(model, x, y)
        rows, ok = [], []
        for k in cfg.log2_scales:
            run = backward(model, x, y, torch.float16, 2.0 ** k)
            ok.append(run["finite"])
            rows.append([underflow(g, r) if run["finite"] else float("nan") for g, r in zip(run["weight"], ref["weight"])])
        uf.append(rows)
        finite.append(ok)
        # theory: the largest gradient anywhere in the backward pass (weights, biases, dL/dh) times the scale
        # reaches float16's largest value at 2^k = max / largest
        largest = max(ref["max_abs"], max(float(s.abs().max()) for s in ref["signal"]))
        predicted_k.append(math.log2(lim16["max"] / largest))
        by_layer["float16"].append(rows[0])
        by_layer["bfloat16"].append([underflow(g, r) for g, r in zip(backward(model, x, y, torch.bfloat16)["weight"],
                                                                       ref["weight"])])
        by_layer["predicted"].append([underflow(r.half(), r) for r in ref["weight"]])
    uf = np.asarray(uf)  # seeds x scales x layers
    finite = np.asarray(finite)
    first_overflow = [int(np.asarray(cfg.log2_scales)[~f][0]) if (~f).any() else None for f in finite]
    best = [int(np.asarray(cfg.log2_scales)[f][-1]) for f in finite]  # the largest scale that does not overflow
    at_best = [uf[i, list(cfg.log2_scales).index(b)] for i, b in enumerate(best)]
    data = {"limits": {"float16": lim16, "bfloat16": lim_b}, "log2_scales": cfg.log2_scales,
            "layers": list(range(1, cfg.depth + 1)), "seeds": cfg.seeds,
            "first_overflow_log2": first_overflow, "predicted_overflow_log2": across_seeds(predicted_k),
            "largest_safe_log2": best, "underflow_at_largest_safe": across_seeds(at_best),
            "underflow_unscaled": across_seeds(by_layer["float16"]),
            "underflow_bfloat16": across_seeds(by_layer["bfloat16"]),
            "predicted_underflow_unscaled": across_seeds(by_layer["predicted"]),
            "underflow_by_scale": {f"layer {l}": across_seeds(uf[:, :, l - 1]) for l in range(1, cfg.depth + 1)},
            "all_finite": finite.tolist()}

    fig, (left, right) = figure(ncols=2, width=7.2, height=4.2)
    layers = data["layers"]
    median_band(left, layers, uf[:, 0, :], label="float16, no scaling", marker="o")
    median_band(left, layers, np.asarray(at_best), label="float16, largest safe scale", marker="s")
    median_band(left, layers, np.asarray(by_layer["bfloat16"]), label="bfloat16, no scaling", marker="^")
    left.plot(layers, np.median(by_layer["predicted"], axis=0), ls="--", color=COLORS[6], lw=1.2,
              label="theory: float32 gradient\nrounded to float16 once")
    left.set_xticks(layers)
    finish(left, LAYER_LABEL, r"share of $\partial L/\partial W_\ell$ entries that are 0",
           "Underflow by layer", loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ks = np.asarray(cfg.log2_scales)
    for color, layer in zip(COLORS, cfg.shown):
        median_band(right, ks, uf[:, :, layer - 1], label=f"layer {layer}", color=color)
    lo = min(f for f in first_overflow if f is not None)
    right.axvspan(lo - 0.5, ks[-1] + 0.5, color=COLORS[1], alpha=0.12, lw=0)
    right.text(lo + 0.4, 0.5, "overflow:\ninf or nan\nin the\ngradients", color=COLORS[1], va="center")
    right.axvline(np.median(predicted_k), color=COLORS[6], ls="--", lw=1.2,
                  label="theory: overflow at\nfloat16 max / largest |g|")
    right.set_xlim(ks[0] - 0.5, ks[-1] + 0.5)
    finish(right, r"loss scale $S$ (as $\log_2 S$)", "share of entries that underflow",
           "Scaling the loss by $S$", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    alt = (f"Left: the share of each layer's weight-gradient entries that are exactly 0 in float16, by layer, for a "
           f"{cfg.depth}-layer sigmoid net: without scaling {data['underflow_unscaled']['median'][0]:.0%} in layer 1 "
           f"down to {data['underflow_unscaled']['median'][-1]:.0%} in layer {cfg.depth}; with the largest loss scale "
           f"that does not overflow ({power(2, np.median(best))}) at most {np.max(at_best):.1%}; bfloat16 "
           f"{np.max(by_layer['bfloat16']):.0%} everywhere. Right: the share against the loss scale, falling layer by "
           f"layer as the scale grows, until at {power(2, lo)} the gradients overflow (shaded), as predicted from the largest "
           f"float32 gradient (dashed line at {power(2, np.median(predicted_k), 1)}).")
    caption = (f"Static loss scales $2^{{0}}$ to $2^{{{ks[-1]}}}$, {len(cfg.seeds)} initialisations (seeds "
               f"{listed(cfg.seeds)}), one batch of {cfg.batch} digits each; median line, min–max band. "
               "Gradients counted after unscaling, only where float32 gives a nonzero entry.")
    return Result(data, [Plot("loss-scaling", fig, alt=alt, caption=caption)])


@experiment(depth=10, width=64, activation="sigmoid", batch=64, seeds=(0, 1, 2, 3, 4), scale=2.0 ** 16)
def rounding(cfg):
    """bfloat16 needs no loss scale but keeps 8 significant bits to float16's 11: the gradient's relative error."""
    lim16, lim_b = limits(torch.float16), limits(torch.bfloat16)
    err = {"float16, loss scaled": [], "bfloat16": []}
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        model = build(cfg)
        x, y = batch(cfg, seed)
        model64 = build(cfg).double()
        model64.load_state_dict(model.state_dict())
        ref = backward(model64, x.double(), y)
        scaled = backward(model, x, y, torch.float16, cfg.scale)
        bf = backward(model, x, y, torch.bfloat16)
        rel = lambda g, r: float((g.double() - r).norm() / r.norm())
        err["float16, loss scaled"].append([rel(g / cfg.scale, r) for g, r in zip(scaled["weight"], ref["weight"])])
        err["bfloat16"].append([rel(g, r) for g, r in zip(bf["weight"], ref["weight"])])
    layers = list(range(1, cfg.depth + 1))
    data = {"limits": {"float16": lim16, "bfloat16": lim_b}, "layers": layers, "seeds": cfg.seeds,
            "scale": cfg.scale, "relative_error": {k: across_seeds(v) for k, v in err.items()}}
    e16, eb = np.asarray(err["float16, loss scaled"]), np.asarray(err["bfloat16"])
    data["bf16_over_fp16"] = across_seeds(np.median(eb / e16, axis=1))
    data["by_layer"] = {k: np.asarray(v).T for k, v in err.items()}  # [layer][seed]
    fig, ax = figure(height=3.9)
    median_band(ax, layers, e16, label=f"float16, loss × $2^{{{int(math.log2(cfg.scale))}}}$", log=True, marker="o")
    median_band(ax, layers, eb, label="bfloat16, no scaling", log=True, marker="^")
    for color, (name, lim) in zip(COLORS, (("float16", lim16), ("bfloat16", lim_b))):
        ax.axhline(lim["unit_roundoff"], color=color, ls="--", lw=1.2,
                   label=f"theory: {name} unit roundoff ε/2 = $2^{{{int(round(math.log2(lim['unit_roundoff'])))}}}$")
    ax.set_xticks(layers)
    finish(ax, LAYER_LABEL,
           r"$\|g - g_{64}\| \,/\, \|g_{64}\|$ for $g = \partial L/\partial W_\ell$", "The precision cost",
           loc="upper right", ncols=2)
    ax.set_ylim(top=ax.get_ylim()[1] * 3)
    alt = (f"The relative error of each layer's weight gradient against float64, on a log axis: float16 with the "
           f"loss scaled by {cfg.scale:.0f}, median {np.median(e16):.2g}, and bfloat16 without scaling, median "
           f"{np.median(eb):.2g}, about {np.median(eb / e16):.0f} times larger; the dashed lines are the unit "
           f"roundoffs {lim16['unit_roundoff']:.2g} and {lim_b['unit_roundoff']:.2g} from torch.finfo.")
    caption = (f"The network and batches of the figures above ({cfg.depth} sigmoid layers, width {cfg.width}, "
               f"{len(cfg.seeds)} initialisations); reference: the same backward pass in float64. "
               "Median line, min–max band.")
    return Result(data, [Plot("rounding", fig, alt=alt, caption=caption)])


SETTINGS = {"float32": (None, None), "float16, no scaling": (torch.float16, None),
            "float16, dynamic scaling": (torch.float16, "dynamic"), "bfloat16, no scaling": (torch.bfloat16, None)}


@experiment(depth=10, width=64, activation="sigmoid", steps=120, lr=1e-3, seeds=(0, 1, 2), init_scale=2.0 ** 24,
            interval=20, every=20)
def dynamic(cfg):
    """Train with Adam in four number formats; dynamic loss scaling from a scale that is too large on purpose."""
    data = {"seeds": cfg.seeds, "runs": {}, "limits": {"float16": limits(torch.float16)}}
    traces = {}
    for label, (dtype, scaling) in SETTINGS.items():
        per = {"final_loss": [], "first_layer_change": [], "last_layer_change": [], "skipped": [],
               "n_skipped": [], "final_scale_log2": [], "loss": []}
        scales = []
        for seed in cfg.seeds:
            torch.manual_seed(seed)
            model = build(cfg)
            w0 = [w.detach().clone() for w in model.weights]
            scaler = DynamicLossScale(cfg.init_scale, interval=cfg.interval) if scaling else None
            h = fit_amp(model, digits(), cfg.steps, dtype=dtype, loss_scale=scaler, lr=cfg.lr, every=cfg.every,
                        seed=seed)
            change = [float((w.detach() - b).norm() / b.norm()) for w, b in zip(model.weights, w0)]
            skipped = [s for s, ok in enumerate(h["finite"]) if not ok]
            per["final_loss"].append(h["loss"][-1])
            per["loss"].append(h["loss"])
            per["first_layer_change"].append(change[0])
            per["last_layer_change"].append(change[-1])
            per["skipped"].append(skipped)
            per["n_skipped"].append(len(skipped))
            per["final_scale_log2"].append(math.log2(h["scale"][-1]))
            per["layer_change"] = per.get("layer_change", []) + [change]
            scales.append(h["scale"])
        per["steps"] = h["step"]
        per["layer_change_summary"] = across_seeds(per["layer_change"])
        per["layer_change_by_layer"] = np.asarray(per["layer_change"]).T  # [layer][seed]
        data["runs"][label] = per
        traces[label] = scales
    ratio = lambda label, key, i=None: [a / b for a, b in zip(
        data["runs"][label][key] if i is None else data["runs"][label]["layer_change_by_layer"][i],
        data["runs"]["float32"][key] if i is None else data["runs"]["float32"]["layer_change_by_layer"][i])]
    data["layer1_vs_float32"] = {k: ratio(k, "first_layer_change") for k in SETTINGS if k != "float32"}
    data["layer5_vs_float32"] = {k: ratio(k, None, 4) for k in SETTINGS if k != "float32"}
    data["all_final_losses"] = [v for run in data["runs"].values() for v in run["final_loss"]]
    dyn = data["runs"]["float16, dynamic scaling"]
    # the opening backoff: the steps skipped in a row from step 0
    opening = []
    for skips in dyn["skipped"]:
        n = 0
        while n in skips:
            n += 1
        opening.append(n)
    dyn["opening_skips"] = opening
    dyn["scale_after_opening_log2"] = [math.log2(cfg.init_scale) - n for n in opening]
    later = [np.log2(sc[n:]) for sc, n in zip(traces["float16, dynamic scaling"], opening)]
    dyn["later_min_log2"] = [float(v.min()) for v in later]
    dyn["later_max_log2"] = [float(v.max()) for v in later]
    dyn["later_skips"] = [sum(1 for s in sk if s >= n) for sk, n in zip(dyn["skipped"], opening)]

    fig, (top, bottom) = figure(nrows=2, height=7.0)
    for i, (color, scales) in enumerate(zip(COLORS, traces["float16, dynamic scaling"])):
        steps = np.arange(len(scales))
        top.step(steps, np.log2(scales), where="post", color=color, label=f"seed {cfg.seeds[i]}")
        sk = np.asarray(dyn["skipped"][i], dtype=int)
        top.scatter(sk, np.log2(np.asarray(scales))[sk], marker="x", color=color, s=30, zorder=4,
                    label="overflow: step skipped, scale halved" if i == 0 else None)
    top.axhline(math.log2(cfg.init_scale), color=COLORS[6], ls=":", lw=1)
    top.set_xlabel("training step")
    finish(top, "training step", r"$\log_2$ loss scale", "Dynamic loss scaling (float16)", loc="upper right")
    layers = list(range(1, cfg.depth + 1))
    for color, marker, label in zip(COLORS, "os^D", SETTINGS):
        median_band(bottom, layers, data["runs"][label]["layer_change"], label=label, color=color, log=True,
                    marker=marker, markersize=5, alpha=0.9)
    bottom.set_xticks(layers)
    finish(bottom, LAYER_LABEL, r"$\|W_\ell - W_\ell^{(0)}\| \,/\, \|W_\ell^{(0)}\|$",
           f"How far each layer's weights moved in {cfg.steps} steps", loc="lower right")
    alt = (f"Top: the loss scale of float16 training with dynamic scaling, {len(cfg.seeds)} seeds, on a log2 axis. It "
           f"starts at {power(2, math.log2(cfg.init_scale))}, overflows and halves {min(opening)} to {max(opening)} "
           f"times in the first steps, then climbs by a factor of 2 every {cfg.interval} good steps and halves "
           f"again at each overflow (crosses), between {power(2, min(dyn['later_min_log2']))} and "
           f"{power(2, max(dyn['later_max_log2']))}. Bottom: how far each layer's weights moved, on a log axis: float32, "
           f"bfloat16 and float16 with dynamic scaling on top of each other; float16 without scaling leaves layers "
           f"1 to {sum(1 for c in data['runs']['float16, no scaling']['layer_change_summary']['max'] if c == 0)} "
           f"exactly where they started (triangles on the bottom edge).")
    caption = (f"{cfg.depth} sigmoid layers of width {cfg.width} on digits, Adam at learning rate {cfg.lr}, batches "
               f"of 64, {cfg.steps} steps, seeds {listed(cfg.seeds)}; float16/bfloat16 through "
               f"torch.autocast with float32 master weights. Dynamic scaling: ×2 after {cfg.interval} finite steps, "
               "÷2 and skip the step on inf or nan (torch.amp.GradScaler's rule).")
    return Result(data, [Plot("dynamic", fig, alt=alt, caption=caption)])


@experiment(depth=10, width=64, activation="sigmoid", batch=64, seeds=(0, 1, 2), scale=2.0 ** 24, max_norm=1.0,
            lr=0.1)
def clip_trap(cfg):
    """What clip_grad_norm_ does with a gradient that overflowed: it returns inf or nan and goes on, unless told."""
    out = {"returned_norm": [], "raised": [], "nan_weights_after_step": [], "loss_after_step": [],
           "raised_with_flag": [], "message": None, "scaler_skipped": [], "weights_finite_with_scaler": []}
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        model = build(cfg)
        x, y = batch(cfg, seed)
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=cfg.lr)
        backward(model, x, y, torch.float16, cfg.scale)  # a scale too large: some gradients are inf
        try:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_norm)
            raised = False
        except RuntimeError:
            norm, raised = torch.tensor(float("nan")), True
        out["returned_norm"].append(float(norm))
        out["raised"].append(raised)
        opt.step()
        weights = torch.cat([p.detach().flatten() for p in params])
        out["nan_weights_after_step"].append(float(torch.isnan(weights).float().mean()))
        with torch.no_grad():
            out["loss_after_step"].append(float(F.cross_entropy(model(x), y)))
        # the same with the flag
        torch.manual_seed(seed)
        model = build(cfg)
        params = list(model.parameters())
        backward(model, x, y, torch.float16, cfg.scale)
        try:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_norm, error_if_nonfinite=True)
            out["raised_with_flag"].append(False)
        except RuntimeError as err:
            out["raised_with_flag"].append(True)
            out["message"] = str(err).strip().splitlines()[0]
        # and the order loss scaling needs: check for inf first (skip), unscale, then clip
        scaler = DynamicLossScale(cfg.scale)
        before = torch.cat([p.detach().flatten().clone() for p in params])
        finite = scaler.unscale(params)
        if finite:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_norm, error_if_nonfinite=True)
            torch.optim.SGD(params, lr=cfg.lr).step()
        out["scaler_skipped"].append(not finite)
        after = torch.cat([p.detach().flatten() for p in params])
        out["weights_finite_with_scaler"].append(bool(torch.isfinite(after).all() and torch.equal(before, after)))
    out["seeds"] = cfg.seeds
    out["norm_is_finite"] = [math.isfinite(n) for n in out["returned_norm"]]
    return Result(out, [])
