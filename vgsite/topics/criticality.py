"""The edge of chaos: the mean-field phase diagram of tanh networks, its depth scales, how deep a network trains,
the finite-width fluctuations, and the singular values of the input-output Jacobian (dynamical isometry)."""
import math

import numpy as np
import torch
from matplotlib.colors import LogNorm

from vgsite import theory
from vgsite.nets import DeepMLP
from vgsite.plots import COLORS, figure, finish, listed, median_band
from vgsite.registry import Plot, Result, experiment
from vgsite.train import across_seeds, digits, fit_stacked

TANH_GAIN = 5 / 3  # torch.nn.init.calculate_gain("tanh"): weights N(0, (5/3)^2 / n)


def critical_sw2(sb2, lo=0.5, hi=6.0, steps=40):
    """The sigma_w^2 of the critical line chi_1 = 1 for tanh at each sigma_b^2 (bisection)."""
    sb2 = np.asarray(sb2, dtype=float)
    lo, hi = np.full(sb2.shape, lo), np.full(sb2.shape, hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        chaotic = theory.chi_1("tanh", mid, sb2) > 1
        lo, hi = np.where(chaotic, lo, mid), np.where(chaotic, mid, hi)
    return (lo + hi) / 2


@experiment(sw2=(0.5, 4.5, 31), sb2=(0.0, 0.3, 21), row_sb2=0.05)
def phase_diagram(cfg):
    sw2 = np.linspace(*cfg.sw2[:2], int(cfg.sw2[2]))
    sb2 = np.linspace(*cfg.sb2[:2], int(cfg.sb2[2]))
    grid_w, grid_b = np.meshgrid(sw2, sb2)
    xi_c = theory.xi_c("tanh", grid_w, grid_b)
    line_b = np.linspace(sb2[0], sb2[-1], 31)
    line_w = critical_sw2(line_b)
    row = theory.xi_c("tanh", sw2, cfg.row_sb2), theory.xi_q("tanh", sw2, cfg.row_sb2)
    row_chi = theory.chi_1("tanh", sw2, cfg.row_sb2)
    crit = float(critical_sw2(cfg.row_sb2))
    g2 = TANH_GAIN ** 2
    gain = {"sw2": g2, "sb2": 0.0, "q_star": float(theory.q_star("tanh", g2, 0.0)),
            "chi1": float(theory.chi_1("tanh", g2, 0.0)), "xi_c": float(theory.xi_c("tanh", g2, 0.0)),
            "xi_q": float(theory.xi_q("tanh", g2, 0.0)), "c_star": float(theory.c_star("tanh", g2, 0.0))}
    gain["six_xi_c"] = 6 * gain["xi_c"]
    gain["log10_gradient_growth_100"] = 99 * math.log10(math.sqrt(gain["chi1"]))
    data = {"sw2": sw2, "sb2": sb2, "xi_c": np.minimum(xi_c, 1e6), "critical_line": {"sb2": line_b, "sw2": line_w},
            "row": {"sb2": cfg.row_sb2, "xi_c": np.minimum(row[0], 1e6), "xi_q": row[1], "chi1": row_chi,
                    "critical_sw2": crit},
            "tanh_gain": gain}

    fig, (left, right) = figure(ncols=2, width=7.2, height=3.9)
    mesh = left.pcolormesh(sw2, sb2, np.clip(xi_c, 0.5, 500), norm=LogNorm(0.5, 500), cmap="viridis",
                           shading="nearest")
    left.plot(line_w, line_b, color=COLORS[1], lw=2, ls="--", label=r"theory: $\chi_1 = 1$ (critical line)")
    left.axhline(cfg.row_sb2, color=COLORS[5], lw=1.2, ls=":",
                 label=rf"$\sigma_b^2 = {cfg.row_sb2:g}$ (right, trained)")
    left.plot([g2], [0.0], marker="*", ms=13, color=COLORS[4], clip_on=False, zorder=5, ls="",
              label=r"tanh gain 5/3, biases 0")
    left.text(0.7, 0.25, "ordered", color="white", weight="bold")
    left.text(3.3, 0.02, "chaotic", color="white", weight="bold")
    left.grid(False)
    bar = fig.colorbar(mesh, ax=left, location="top", shrink=0.9)
    bar.set_label(r"depth scale $\xi_c$ (layers)")
    finish(left, r"$\sigma_w^2$ (weights $\mathcal{N}(0, \sigma_w^2/n)$)", r"$\sigma_b^2$ (bias variance)",
           legend=False)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    right.plot(sw2, row[0], color=COLORS[0], label=r"$\xi_c$: correlations")
    right.plot(sw2, row[1], color=COLORS[2], label=r"$\xi_q$: lengths")
    right.axvline(crit, color=COLORS[1], ls="--", lw=1.4, label=rf"critical $\sigma_w^2 = {crit:.2f}$")
    right.set_yscale("log")
    right.set_ylim(0.5, 1e3)
    finish(right, r"$\sigma_w^2$", "depth scale (layers)", rf"tanh, $\sigma_b^2 = {cfg.row_sb2:g}$", legend=False)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    alt = (f"Left: a heatmap of the correlation depth scale ξc of tanh networks over the weight variance "
           f"σw² ({sw2[0]:g} to {sw2[-1]:g}) and the bias variance σb² ({sb2[0]:g} to {sb2[-1]:g}), "
           f"largest along the critical line χ₁ = 1, which runs from σw² = {line_w[0]:.2f} at zero bias "
           f"to {line_w[-1]:.2f} at σb² = {line_b[-1]:g}; the ordered phase lies left of it, the chaotic "
           f"phase right. PyTorch's tanh gain 5/3 (σw² = {g2:.2f}, zero bias) is a star in the chaotic "
           f"phase, where ξc = {gain['xi_c']:.1f} layers. Right: ξc and ξq at σb² = {cfg.row_sb2:g}: "
           f"ξc peaks at the critical σw² = {crit:.2f} while ξq stays below "
           f"{float(np.max(row[1])):.1f} layers.")
    return Result(data, [Plot(
        "phase-diagram", fig, alt=alt,
        caption="Mean-field theory only (Gauss–Hermite quadrature of the length and correlation maps): no network "
                "was run. Colours clipped to 0.5–500 layers.")])


def _tanh_builds(specs, width, d_in=64):
    """One builder for fit_stacked that returns a different network on each call: fit_stacked calls it once per
    entry of its seeds, in order, so `specs` lists (depth, sw2, sb2, init, first_q) in that same order."""
    queue = iter(specs)

    def build():
        depth, sw2, sb2, init, first_q = next(queue)
        model = DeepMLP(depth, width, activation="tanh", init=init, gain=math.sqrt(sw2), d_in=d_in)
        with torch.no_grad():
            for block in model.blocks:
                block.linear.bias.normal_(0, math.sqrt(sb2))
            if first_q is not None:  # the inputs (variance 1 per feature) enter at q_1 = first_q
                model.blocks[0].linear.weight.mul_(math.sqrt(max(first_q - sb2, 1e-12) / sw2))
        return model

    return build


@experiment(sw2=(0.6, 1.0, 1.4, 1.76, 2.2, 25 / 9, 4.0), depths=(4, 8, 16, 24, 32), sb2=0.05, width=32,
            steps=200, lr=0.1, batch_size=64, threshold=0.5, seeds=(0, 1, 2))
def trainability(cfg):
    data_set = digits()
    sw2, depths = np.array(cfg.sw2), np.array(cfg.depths)
    acc = np.zeros((len(cfg.seeds), len(depths), len(sw2)))
    for i, depth in enumerate(depths):  # every sigma_w^2 and seed of one depth trained together
        specs = [(int(depth), s, cfg.sb2, "normal", None) for s in sw2 for _ in cfg.seeds]
        runs = fit_stacked(_tanh_builds(specs, cfg.width), data_set, list(cfg.seeds) * len(sw2), cfg.steps,
                           lr=cfg.lr, batch_size=cfg.batch_size, every=cfg.steps)
        for k, (_, history) in enumerate(runs):
            acc[k % len(cfg.seeds), i, k // len(cfg.seeds)] = history["test_acc"][-1]
    summary = across_seeds(acc)
    xi = theory.xi_c("tanh", sw2, cfg.sb2)
    trainable = summary["median"] >= cfg.threshold
    # the deepest trained depth of each sigma_w^2 below which every depth trains (None: not even the shallowest)
    deepest = []
    for j in range(len(sw2)):
        ok = [int(d) for i, d in enumerate(depths) if trainable[: i + 1, j].all()]
        deepest.append(ok[-1] if ok else None)
    fine_w = np.linspace(sw2[0], sw2[-1], 200)
    six_xi = 6 * theory.xi_c("tanh", fine_w, cfg.sb2)
    inside = [bool(trainable[i, j]) == bool(depths[i] <= 6 * xi[j]) for i in range(len(depths))
              for j in range(len(sw2))]
    data = {"sw2": sw2, "depths": depths, "sb2": cfg.sb2, "test_acc": {k: v for k, v in summary.items()},
            "xi_c": xi, "six_xi_c": 6 * xi, "trainable": trainable, "deepest_trainable": deepest,
            "seed_acc": acc.transpose(1, 2, 0),  # [depth][sw2] -> the seeds' accuracies
            "agreement": float(np.mean(inside)), "critical_sw2": float(critical_sw2(cfg.sb2)),
            "chance": 0.1}

    fig, ax = figure(width=7.2, height=4.8)
    edges_w = np.concatenate([[sw2[0] - (sw2[1] - sw2[0]) / 2], (sw2[1:] + sw2[:-1]) / 2,
                              [sw2[-1] + (sw2[-1] - sw2[-2]) / 2]])
    edges_d = np.concatenate([[depths[0] - (depths[1] - depths[0]) / 2], (depths[1:] + depths[:-1]) / 2,
                              [depths[-1] + (depths[-1] - depths[-2]) / 2]])
    mesh = ax.pcolormesh(edges_w, edges_d, summary["median"], cmap="viridis", vmin=0.1, vmax=1.0)
    for i, d in enumerate(depths):
        for j, s in enumerate(sw2):
            ax.text(s, d, f"{summary['median'][i, j]:.2f}", ha="center", va="center",
                    color="white" if summary["median"][i, j] < 0.6 else "black")
    ax.plot(fine_w, six_xi, color=COLORS[1], lw=2.2, ls="--", label=r"theory: $6\,\xi_c$")
    ax.axvline(data["critical_sw2"], color=COLORS[4], lw=1.2, ls=":", label=r"critical $\sigma_w^2$")
    ax.set_ylim(edges_d[0], max(edges_d[-1], 1.6 * depths[-1]))  # room above the grid for 6 xi_c to come down
    ax.text(sw2.mean(), (edges_d[-1] + ax.get_ylim()[1]) / 2, "depths not run", ha="center", va="center", color="0.5")
    ax.grid(False)
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label(f"test accuracy after {cfg.steps} steps\n(median of {len(cfg.seeds)} seeds)")
    finish(ax, r"$\sigma_w^2$ (tanh, $\sigma_b^2 = " + f"{cfg.sb2:g}" + "$)", "depth L (layers)", legend=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2)
    alt = (f"A heatmap of test accuracy on the digits after {cfg.steps} SGD steps over σw² ({sw2[0]:g} to "
           f"{sw2[-1]:.2f}) and depth ({depths[0]} to {depths[-1]} layers) for tanh networks of width {cfg.width}, "
           f"with the curve 6 ξc drawn over it. Accuracy is high at small depth and falls with depth fastest far "
           f"from the critical σw² = {data['critical_sw2']:.2f}; the cells counted trainable (median "
           f"accuracy at least {cfg.threshold:.0%}) lie on the same side of 6 ξc as theory puts them in "
           f"{data['agreement']:.0%} of the cells.")
    return Result(data, [Plot(
        "trainability", fig, alt=alt,
        caption=f"Tanh MLPs of width {cfg.width}, weights $\\mathcal{{N}}(0, \\sigma_w^2/n)$, "
                f"biases $\\mathcal{{N}}(0, {cfg.sb2:g})$, digits "
                f"(64 inputs), plain SGD, learning rate {cfg.lr}, batches of {cfg.batch_size}, {cfg.steps} steps; "
                f"seeds {listed(cfg.seeds)}. Numbers: median test accuracy over the seeds (chance "
                f"0.10). Dashed: $6\\,\\xi_c$ from the mean-field maps.")])


def relu_gradient_ratio(depth, width, nets, generator):
    """ln(||dL/dh_1||^2 / ||dL/dh_L||^2) for `nets` ReLU networks with He weights N(0, 2/n), zero biases, one
    standard-normal input each and a random linear readout L = u . h_L; float64, all nets at once."""
    h = torch.randn(nets, width, 1, dtype=torch.float64, generator=generator)
    masks, ws = [], []
    for _ in range(depth):
        w = torch.randn(nets, width, width, dtype=torch.float64, generator=generator) * math.sqrt(2 / width)
        h = torch.relu(w @ h)
        ws.append(w)
        masks.append((h > 0).double())
    v = torch.randn(nets, width, 1, dtype=torch.float64, generator=generator)  # dL/dh_L = u
    last = (v ** 2).sum((1, 2))
    for w, m in zip(ws[:0:-1], masks[:0:-1]):  # layers L .. 2: dL/dh_(l-1) = W_l^T D_l dL/dh_l
        v = w.transpose(1, 2) @ (m * v)
    return torch.log((v ** 2).sum((1, 2)) / last).numpy()


@experiment(widths=(16, 32, 64), depths=(3, 5, 9, 17, 33), nets=80, seed=0)
def finite_width(cfg):
    gen = torch.Generator().manual_seed(cfg.seed)
    cells = []
    for n in cfg.widths:
        for d in cfg.depths:
            r = relu_gradient_ratio(d, n, cfg.nets, gen)
            cells.append({"width": n, "depth": d, "beta": (d - 1) / n, "var_ln_sq": float(np.var(r, ddof=1)),
                          "mean_ln_sq": float(np.mean(r)), "std_log10": float(np.std(r / 2 / math.log(10), ddof=1))})
    beta = np.array([c["beta"] for c in cells])
    var = np.array([c["var_ln_sq"] for c in cells])
    fit = float(np.sum(beta * var) / np.sum(beta * beta))  # least squares through the origin
    exponent = float(np.polyfit(np.log(beta), np.log(var), 1)[0])  # var ~ beta^exponent; theory: 1
    data = {"exponent": exponent, "cells": cells, "theory_slope": 5.0, "fitted_slope": fit, "nets": cfg.nets,
            "ratio_to_theory": var / (5 * beta)}
    fig, ax = figure(width=7.2, height=4.0)
    markers = "osD^v<"
    for k, n in enumerate(cfg.widths):
        sel = [c for c in cells if c["width"] == n]
        ax.plot([c["beta"] for c in sel], [c["std_log10"] for c in sel], marker=markers[k % 6], ls="",
                color=COLORS[k], label=f"width {n}")
    b = np.geomspace(beta.min(), beta.max(), 50)
    ax.plot(b, np.sqrt(5 * b) / (2 * math.log(10)), color="0.4", ls="--",
            label=r"theory: $\sqrt{5 (L-1)/n}\,/\,(2 \ln 10)$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    finish(ax, r"$(L-1)/n$: depth over width",
           r"spread across nets of $\log_{10}(\|\partial L/\partial h_1\| / \|\partial L/\partial h_L\|)$")
    alt = (f"Log-log scatter of the standard deviation, across {cfg.nets} freshly initialised ReLU networks with He "
           f"weights, of log10 of the first- to last-layer gradient ratio, against depth over width, for widths "
           f"{', '.join(map(str, cfg.widths))}: the points of all widths fall on one line that follows the "
           f"dashed prediction sqrt(5 (L-1)/n)/(2 ln 10); the fitted variance of ln of the squared ratio is "
           f"{fit:.2f} (L-1)/n against 5 (L-1)/n.")
    return Result(data, [Plot(
        "finite-width", fig, alt=alt,
        caption=f"ReLU, weights N(0, 2/n), biases 0, one standard-normal input and a random linear readout per "
                f"network; {cfg.nets} networks per point (random draws, seed {cfg.seed}), float64. Nothing trained.")])


def _orthogonal(nets, n, generator):
    a = torch.randn(nets, n, n, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)  # Haar-distributed


SPECTRUM_NETS = {  # label -> (activation, weights)
    "ReLU, Gaussian": ("relu", "gaussian"),
    "ReLU, orthogonal": ("relu", "orthogonal"),
    "tanh, Gaussian": ("tanh", "gaussian"),
    "tanh, orthogonal": ("tanh", "orthogonal"),
}


def jacobian_singular_values(activation, weights, sw2, sb2, q, depths, width, nets, generator):
    """Singular values of J = D_L W_L ... D_1 W_1 (dh_L/dh_0) at each depth in `depths` (one network grown layer
    by layer), for `nets` networks at once; the input h_0 is drawn so that z_1 has variance q. float64."""
    if activation == "tanh":
        h = torch.tanh(math.sqrt(q) * torch.randn(nets, width, 1, dtype=torch.float64, generator=generator))
    else:
        h = torch.randn(nets, width, 1, dtype=torch.float64, generator=generator)
    jac = torch.eye(width, dtype=torch.float64).expand(nets, width, width)
    out = {}
    for layer in range(1, max(depths) + 1):
        if weights == "gaussian":
            w = torch.randn(nets, width, width, dtype=torch.float64, generator=generator) / math.sqrt(width)
        else:
            w = _orthogonal(nets, width, generator)
        w = w * math.sqrt(sw2)
        z = w @ h + math.sqrt(sb2) * torch.randn(nets, width, 1, dtype=torch.float64, generator=generator)
        if activation == "tanh":
            h, slope = torch.tanh(z), 1 - torch.tanh(z) ** 2
        else:
            h, slope = torch.relu(z), (z > 0).double()
        jac = slope * (w @ jac)
        if layer in depths:
            out[layer] = torch.linalg.svdvals(jac).numpy()
    return out


@experiment(depths=(10, 50, 100), every=10, width=128, nets=4, q_star=1 / 64, seed=0)
def jacobian_spectra(cfg):
    gen = torch.Generator().manual_seed(cfg.seed)
    tanh_sw2, tanh_sb2 = theory.critical_point("tanh", cfg.q_star)
    recorded = sorted(set(cfg.depths) | set(range(cfg.every, max(cfg.depths) + 1, cfg.every)))
    data = {"width": cfg.width, "depths": list(cfg.depths), "recorded": recorded,
            "tanh_point": {"sw2": tanh_sw2, "sb2": tanh_sb2, "q_star": cfg.q_star,
                           "chi1": float(theory.chi_1("tanh", tanh_sw2, tanh_sb2))}, "nets": {}}
    for label, (act, weights) in SPECTRUM_NETS.items():
        sw2, sb2 = (2.0, 0.0) if act == "relu" else (tanh_sw2, tanh_sb2)
        sv = jacobian_singular_values(act, weights, sw2, sb2, cfg.q_star, recorded, cfg.width, cfg.nets, gen)
        entry = {"sw2": sw2, "sb2": sb2, "by_depth": {}}
        for d in recorded:
            lam = sv[d].ravel() ** 2
            pred = theory.jacobian_moments(act, sw2, cfg.q_star, d, weights)
            entry["by_depth"][str(d)] = {
                "singular_values": np.sort(sv[d].ravel()) if d in cfg.depths else None,
                "mean_lambda": float(lam.mean()), "var_lambda": float(lam.var()),
                "var_lambda_per_net": (sv[d] ** 2).var(axis=1), "max_s": float(sv[d].max()),
                "max_s_per_net": sv[d].max(axis=1), "min_s": float(sv[d].min()),
                "median_s": float(np.median(sv[d])),
                "p05_s": float(np.percentile(sv[d], 5)), "p95_s": float(np.percentile(sv[d], 95)),
                "tiny_fraction": float((sv[d] < 1e-5).mean()),
                "predicted_mean_lambda": pred["mean"], "predicted_var_lambda": pred["variance"],
                "predicted_max_s": math.sqrt(theory.jacobian_edge(act, sw2, cfg.q_star, d, weights))}
        rows = entry["by_depth"].values()
        entry["worst_var_error"] = max(abs(e["var_lambda"] / e["predicted_var_lambda"] - 1) for e in rows)
        entry["worst_edge_error"] = max(abs(e["max_s"] / e["predicted_max_s"] - 1) for e in rows)
        data["nets"][label] = entry

    fig, axes = figure(ncols=2, nrows=2, width=7.2, height=6.4, sharex=True)
    bins = np.linspace(-5, 2, 71)
    for ax, (label, entry) in zip(axes, data["nets"].items()):
        for k, d in enumerate(cfg.depths):
            e = entry["by_depth"][str(d)]
            s = np.clip(np.log10(np.maximum(e["singular_values"], 1e-300)), bins[0], bins[-1] - 1e-9)
            ax.hist(s, bins=bins, histtype="step", lw=1.6, color=COLORS[k], label=f"L = {d}")
            ax.axvline(math.log10(e["predicted_max_s"]), color=COLORS[k], ls="--", lw=1.1)
        ax.set_title(label)
        ax.set_yscale("log")
        finish(ax, r"$\log_{10} s$ (singular value of $J$)" if ax in axes[2:] else "",
               "count" if ax in axes[::2] else "", legend=False)
    axes[0].plot([], [], color="0.4", ls="--", lw=1.1, label="theory: largest s")
    axes[0].legend(loc="upper left")
    t = data["nets"]
    dmax = str(max(cfg.depths))
    alt = (f"Four log-count histograms of the log10 singular values of the input-output Jacobian of networks of "
           f"width {cfg.width} at depths {', '.join(map(str, cfg.depths))}, each with a dashed line at the "
           f"free-probability prediction of the largest singular value. ReLU with Gaussian weights spreads over "
           f"many decades as depth grows (largest {t['ReLU, Gaussian']['by_depth'][dmax]['max_s']:.1f} at depth "
           f"{dmax}, predicted {t['ReLU, Gaussian']['by_depth'][dmax]['predicted_max_s']:.1f}); orthogonal ReLU "
           f"spreads less but still widens; tanh with orthogonal weights at the critical point keeps every "
           f"singular value between {t['tanh, orthogonal']['by_depth'][dmax]['min_s']:.2f} and "
           f"{t['tanh, orthogonal']['by_depth'][dmax]['max_s']:.2f} at depth {dmax}.")
    fig2, (left, right) = figure(ncols=2, width=7.2, height=4.2)
    for k, (label, entry) in enumerate(t.items()):
        var = [entry["by_depth"][str(d)]["var_lambda"] for d in recorded]
        pvar = [entry["by_depth"][str(d)]["predicted_var_lambda"] for d in recorded]
        mx = [entry["by_depth"][str(d)]["max_s"] for d in recorded]
        pmx = [entry["by_depth"][str(d)]["predicted_max_s"] for d in recorded]
        left.plot(recorded, var, marker="o", ms=3, ls="", color=COLORS[k], label=label)
        left.plot(recorded, pvar, color=COLORS[k], ls="--", lw=1.2)
        right.plot(recorded, mx, marker="o", ms=3, ls="", color=COLORS[k], label=label)
        right.plot(recorded, pmx, color=COLORS[k], ls="--", lw=1.2)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.plot([], [], color="0.4", ls="--", lw=1.2, label="theory (free probability)")
    finish(left, "depth L", r"variance of $\lambda = s^2$", legend=False)
    finish(right, "depth L", "largest singular value", legend=False)
    handles, names = left.get_legend_handles_labels()
    fig2.legend(handles, names, loc="outside lower center", ncols=3)
    alt2 = (f"Two log-scale panels against depth (up to {max(recorded)} layers): the variance of the squared "
            f"singular values, and the largest singular value, measured (dots) and predicted (dashed) for ReLU "
            f"and tanh with Gaussian and orthogonal weights. The prediction for orthogonal tanh at the critical "
            f"point is a variance of {t['tanh, orthogonal']['by_depth'][dmax]['predicted_var_lambda']:.2f} at "
            f"depth {dmax} (measured {t['tanh, orthogonal']['by_depth'][dmax]['var_lambda']:.2f}); for Gaussian "
            f"ReLU {t['ReLU, Gaussian']['by_depth'][dmax]['predicted_var_lambda']:.0f} (measured "
            f"{t['ReLU, Gaussian']['by_depth'][dmax]['var_lambda']:.0f}).")
    caption = (f"Width {cfg.width}, {cfg.nets} networks per setting (seed {cfg.seed}), float64, "
               f"$J = \\partial h_L/\\partial h_0$ formed as the product of the $D_\\ell W_\\ell$. "
               f"ReLU at $\\sigma_w^2 = 2$, $\\sigma_b^2 = 0$; tanh on the critical line at "
               f"$q^* = {cfg.q_star:g}$ ($\\sigma_w^2 = {tanh_sw2:.3f}$, $\\sigma_b^2 = {tanh_sb2:.1e}$). "
               f"Values below 10⁻⁵ (ReLU's "
               f"exact zeros among them) are counted in the first bin.")
    return Result(data, [Plot("jacobian-spectra", fig, alt=alt, caption=caption),
                         Plot("spectrum-moments", fig2, alt=alt2, caption=caption)])


@experiment(depth=48, width=32, q_star=1 / 64, steps=200, lr=0.05, batch_size=64, every=10, seeds=(0, 1, 2))
def isometry_training(cfg):
    sw2, sb2 = theory.critical_point("tanh", cfg.q_star)
    inits = ("orthogonal", "normal")
    specs = [(cfg.depth, sw2, sb2, init, cfg.q_star) for init in inits for _ in cfg.seeds]
    runs = fit_stacked(_tanh_builds(specs, cfg.width, d_in=64), digits(), list(cfg.seeds) * len(inits), cfg.steps,
                       lr=cfg.lr, batch_size=cfg.batch_size, every=cfg.every)
    n = len(cfg.seeds)
    steps = np.array(runs[0][1]["step"])
    data = {"steps": steps, "sw2": sw2, "sb2": sb2, "runs": {}}
    fig, (left, right) = figure(ncols=2, width=7.2, height=3.7)
    labels = {"orthogonal": "orthogonal", "normal": "Gaussian"}
    for k, init in enumerate(inits):
        hist = [h for _, h in runs[k * n:(k + 1) * n]]
        loss = np.array([h["loss"] for h in hist])
        acc = np.array([h["test_acc"] for h in hist])
        reach = [next((int(s) for s, a in zip(steps, row) if a >= 0.5), None) for row in acc]
        data["runs"][labels[init]] = {"loss": across_seeds(loss), "test_acc": across_seeds(acc),
                                      "final_test_acc": acc[:, -1], "steps_to_50": reach}
        median_band(left, steps, loss, label=labels[init], log=True, color=COLORS[k])
        median_band(right, steps, acc, label=labels[init], color=COLORS[k])
    right.axhline(0.1, color="0.5", lw=0.8, ls=":")
    finish(left, "training step", "training loss (batch)")
    finish(right, "training step", "test accuracy", loc="center right")
    o, g = data["runs"]["orthogonal"], data["runs"]["Gaussian"]
    alt = (f"Training loss (log scale) and test accuracy over {cfg.steps} SGD steps of {cfg.depth}-layer tanh "
           f"networks at the same critical point, orthogonal against Gaussian weights, median of {n} seeds with "
           f"the range shaded: the orthogonal networks reach a median test accuracy of "
           f"{float(np.median(o['final_test_acc'])):.2f}, the Gaussian ones "
           f"{float(np.median(g['final_test_acc'])):.2f}.")
    return Result(data, [Plot(
        "isometry-training", fig, alt=alt,
        caption=f"Tanh MLPs, {cfg.depth} layers of width {cfg.width}, on the critical line at $q^* = {cfg.q_star:g}$ "
                f"($\\sigma_w^2 = {sw2:.3f}$, $\\sigma_b^2 = {sb2:.1e}$; the first layer scaled so the digits "
                f"enter at $q^*$), plain SGD, "
                f"learning rate {cfg.lr}, batches of {cfg.batch_size}; seeds {listed(cfg.seeds)}, "
                f"line: median, band: range.")])
