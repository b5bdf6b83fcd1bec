"""Weight scale and initialisation: the per-layer factor (scale relative to 1/sqrt(n), times the slope) to the depth."""
import math

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.lines import Line2D

from vgsite.nets import DeepMLP
from vgsite.plots import LAYER_LABEL, RATIO_LABEL, figure, finish, log_line
from vgsite.probes import derivative, gradient_flow, log_histogram, random_batch
from vgsite.registry import Plot, Result, experiment
from vgsite import theory
from vgsite.theory import WEIGHT_VARIANCE, per_layer_factor, slope2
from vgsite.train import digits


def scalar_chain(scale, depth, dtype=torch.float32):
    """y = w_L ... w_2 w_1 x with every w_l = scale and x = 1; returns dy/dw_1 = scale^(depth-1) by autograd."""
    ws = [torch.tensor(scale, dtype=dtype, requires_grad=True) for _ in range(depth)]
    h = torch.tensor(1.0, dtype=dtype)
    for w in ws:
        h = w * h
    h.backward()
    return ws[0].grad.item()


def zero_biases(model):
    with torch.no_grad():
        for block in model.blocks:
            block.linear.bias.zero_()
    return model


# The matrix networks of the weight-scale figure: label -> (net settings, c = sqrt(n Var W), the activation's
# factor sqrt(E[g'^2]) at initialisation). The gradient's predicted per-layer factor is their product.
def matrix_nets(width):
    u = 0.2 * math.sqrt(width)  # default init times this gain is U(-0.2, 0.2): every weight below 0.2 in size
    nets = {
        "linear, N(0, 0.5²/n)": (dict(activation="linear", init="normal", gain=0.5), 0.5),
        "linear, N(0, 1/n)": (dict(activation="linear", init="normal", gain=1.0), 1.0),
        "linear, N(0, 1.5²/n)": (dict(activation="linear", init="normal", gain=1.5), 1.5),
        f"linear, U(±0.2): every |w| < 0.2, n = {width}": (dict(activation="linear", init="default", gain=u),
                                                           u / math.sqrt(3)),
        "ReLU, N(0, 1/n)": (dict(activation="relu", init="normal", gain=1.0), 1.0),
        "ReLU, N(0, 2/n) (He)": (dict(activation="relu", init="normal", gain=math.sqrt(2)), math.sqrt(2)),
    }
    return {label: (net, c, math.sqrt(slope2(net["activation"], 0))) for label, (net, c) in nets.items()}


def first_to_last(signal):
    """log10(||dL/dh_1|| / ||dL/dh_L||) and what happened: 'ok', 'underflow' (exactly 0) or 'overflow' (inf/nan)."""
    first, last = signal[0], signal[-1]
    if not (math.isfinite(first) and math.isfinite(last)) or last == 0:
        return float("nan"), "overflow"
    if first == 0:
        return float("-inf"), "underflow"
    return math.log10(first / last), "ok"


@experiment(depth=30, scales=(0.01, 0.5, 1.0, 1.5), width=256, batch=64, seed=0, depths=(2, 4, 6, 8, 10, 12, 15,
                                                                                            20, 25, 30))
def weight_scale(cfg):
    fig, (left, right) = figure(nrows=2, height=9.6)
    depths = np.arange(1, cfg.depth + 1)
    data = {"scalar": {}, "matrix": {"depths": list(cfg.depths), "nets": {}}}
    for scale in cfg.scales:
        grads = np.array([scalar_chain(scale, d) for d in depths])
        finite = grads > 0
        slope = float(np.polyfit(depths[finite], np.log10(grads[finite]), 1)[0])
        data["scalar"][str(scale)] = {"depths": depths, "grad_w1": grads, "slope_per_layer": slope,
                                      "predicted_slope": math.log10(scale),
                                      "first_zero_depth": int(depths[~finite][0]) if (~finite).any() else None}
        notes = " (the notes)" if scale in (0.01, 1.5) else ""
        line = log_line(left, depths, grads, label=f"w = {scale:g}{notes}: ×$10^{{{slope:+.3f}}}$/layer", marker="o",
                        ms=3, zero_note=False)
        left.plot(depths, float(scale) ** (depths - 1.0), color=line.get_color(), ls="--", lw=1)
    left.axhline(np.finfo(np.float32).smallest_subnormal, color="0.4", lw=0.8, ls=":")
    left.annotate(r"smallest float32 ≈ $1.4\times10^{-45}$", (1, np.finfo(np.float32).smallest_subnormal),
                  xytext=(2, 3), textcoords="offset points", fontsize=9, color="0.3")
    finish(left, "depth L (layers)", r"$\partial y/\partial w_1 = w^{L-1}$", "Scalar chain, every weight = w",
           legend=False)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
    for label, (net, c, act_factor) in matrix_nets(cfg.width).items():
        rows = [first_to_last(_flow(d, cfg.width, cfg.batch, cfg.seed, net)) for d in cfg.depths]
        ratios = np.array([r[0] for r in rows])
        ok = np.isfinite(ratios)
        factor = c * act_factor
        slope = float(np.polyfit(np.array(cfg.depths)[ok] - 1, ratios[ok], 1)[0])
        data["matrix"]["nets"][label] = {"log10_ratio": ratios, "slope_per_layer": slope, "c": c,
                                         "predicted_factor": factor, "predicted_slope": math.log10(factor)}
        line = log_line(right, cfg.depths, 10.0 ** ratios, label=f"{label}: ×{10 ** slope:.3f}/layer",
                        marker="o", ms=3)
        right.plot(cfg.depths, factor ** (np.array(cfg.depths) - 1.0), color=line.get_color(), ls="--", lw=1)
    right.plot([], [], color="0.4", ls="--", lw=1,
               label=r"dashed: $(c\,\sqrt{\mathrm{E}[g'^2]})^{L-1}$, $c = \sigma_w\sqrt{n}$")
    finish(right, "depth L (layers)", r"$\|\partial L/\partial h_1\|\,/\,\|\partial L/\partial h_L\|$",
           rf"Matrices, $n = {cfg.width}$: $\sigma_w\sqrt{{n}}$ counts", legend=False)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=1)
    s = data["scalar"]
    m = data["matrix"]["nets"]
    u_label = next(k for k in m if k.startswith("linear, U"))
    alt = ("Top: in a chain of scalar weights the first weight's gradient is w to the power depth minus one: "
           f"with w = 0.01 it falls two decades per layer and is exactly 0 (float32 underflow) from depth "
           f"{s['0.01']['first_zero_depth']}, with w = 1.5 it grows by 0.176 decades per layer, with w = 1 it stays "
           f"at 1. Bottom: in {cfg.width}-wide networks the ratio of first- to last-layer gradient follows "
           f"the weights' standard deviation times √n times the slope, to the power depth − 1: a linear network whose weights are all below 0.2 in size explodes by "
           f"×{10 ** m[u_label]['slope_per_layer']:.2f} per layer, ReLU with N(0, 1/n) weights vanishes by "
           f"×{10 ** m['ReLU, N(0, 1/n)']['slope_per_layer']:.2f} per layer and ReLU with He's N(0, 2/n) stays level.")
    return Result(data, [Plot(
        "weight-scale", fig, alt=alt,
        caption=f"Top: float32 autograd through a chain of identical scalar weights (triangles on the bottom "
                f"edge: exactly 0, float32 underflow). Bottom: freshly initialised "
                f"networks of width {cfg.width}, one random batch of {cfg.batch} standard-normal inputs with random "
                f"labels, cross-entropy, seed {cfg.seed}. Dashed: the prediction.")])


def _flow(depth, width, batch, seed, net):
    torch.manual_seed(seed)
    model = DeepMLP(depth, width, **net)
    x, y = random_batch(width, batch)
    return gradient_flow(model, x, y)["signal"]


CRITICAL_GAIN = {"tanh": 1.0, "relu": math.sqrt(2)}


def crossing(gains, values):
    """Where values (over increasing gains) first cross 0, interpolated in log(gain); None if they do not."""
    lg = np.log(gains)
    for i in range(len(values) - 1):
        a, b = values[i], values[i + 1]
        if np.isfinite(a) and np.isfinite(b) and a < 0 <= b:
            return float(np.exp(lg[i] + (lg[i + 1] - lg[i]) * (-a) / (b - a)))
    return None


@experiment(log2_gains=(-2.0, 2.0, 17), depths=(2, 5, 10, 20, 30, 50, 75, 100), width=64, batch=64, seed=0,
            activations=("tanh", "relu"), vmax=30)
def gain_depth(cfg):
    gains = 2.0 ** np.linspace(*cfg.log2_gains[:2], int(cfg.log2_gains[2]))
    depths = np.array(cfg.depths)
    fig, axes = figure(ncols=len(cfg.activations), height=5.4, sharey=True)
    axes = np.atleast_1d(axes)
    norm = TwoSlopeNorm(vcenter=0, vmin=-cfg.vmax, vmax=cfg.vmax)
    data = {"gains": gains, "depths": depths, "nets": {}}
    edges = 2.0 ** np.concatenate([[np.log2(gains[0]) - 0.125], (np.log2(gains[1:]) + np.log2(gains[:-1])) / 2,
                                   [np.log2(gains[-1]) + 0.125]])
    rows = np.arange(len(depths) + 1) - 0.5
    for ax, act in zip(axes, cfg.activations):
        values = np.full((len(depths), len(gains)), np.nan)
        status = np.empty((len(depths), len(gains)), dtype=object)
        for i, d in enumerate(depths):
            for j, g in enumerate(gains):
                values[i, j], status[i, j] = first_to_last(
                    _flow(int(d), cfg.width, cfg.batch, cfg.seed, dict(activation=act, init="normal", gain=g)))
        shown = np.where(status == "ok", values, np.nan)
        mesh = ax.pcolormesh(edges, rows, np.ma.masked_invalid(shown), cmap="RdBu_r", norm=norm)
        ax.set_facecolor("0.6")  # cells with no finite value show grey under their marker
        for kind, marker, label in (("underflow", "v", "exactly 0 at layer 1 (underflow)"),
                                    ("overflow", "X", "inf or nan (overflow)")):
            ii, jj = np.nonzero(status == kind)
            ax.scatter(gains[jj], ii, marker=marker, s=28, color="black", label=label, zorder=4)
        ax.set_xscale("log")
        ax.axvline(CRITICAL_GAIN[act], color="black", ls="--", lw=1.4)
        finite = np.isfinite(shown)
        if min(shown.shape) >= 2:
            ax.contour(gains, np.arange(len(depths)),
                       np.where(finite, shown, np.where(status == "underflow", -99, 99)), levels=[0], colors="0.1",
                       linewidths=1.2)
        crossings = [crossing(gains, values[i]) for i in range(len(depths))]
        deep = [c for d, c in zip(depths, crossings) if d >= 10 and c is not None]
        data["nets"][act] = {"log10_ratio": values, "status": status.tolist(), "critical_gain_by_depth": crossings,
                             "critical_gain_measured": float(np.median(deep)) if deep else None,
                             "critical_gain_theory": CRITICAL_GAIN[act],
                             "underflow_cells": int((status == "underflow").sum()),
                             "overflow_cells": int((status == "overflow").sum())}
        name = {"tanh": "tanh", "relu": "ReLU"}[act]
        theory = {"tanh": "1", "relu": "√2"}[act]
        measured = data["nets"][act]["critical_gain_measured"]
        ax.set_title(f"{name}: critical gain {theory} in theory,\n"
                     f"{'—' if measured is None else f'{measured:.2f}'} measured (depth ≥ 10)")
        ticks = [0.25, 0.5, 1, math.sqrt(2), 2, 4]
        ax.set_xticks(ticks, ["0.25", "0.5", "1", "√2", "2", "4"])
        ax.minorticks_off()
        ax.set_yticks(np.arange(len(depths)), [str(d) for d in depths])
        ax.set_xlabel("gain g: weights N(0, g²/n)")
        ax.grid(False)
        ax.annotate("← vanishing", (0.03, 0.03), xycoords="axes fraction", color="#08306b", weight="bold")
        ax.annotate("exploding →", (0.97, 0.03), xycoords="axes fraction", ha="right", color="#67000d",
                    weight="bold")
    axes[0].set_ylabel("depth L (layers)")
    bar = fig.colorbar(mesh, ax=list(axes), extend="both", shrink=0.95)
    bar.set_label(RATIO_LABEL + "\nblue < 0: vanishing, red > 0: exploding")
    handles = [Line2D([], [], color="black", ls="--", lw=1.4, label="theoretical critical gain"),
               Line2D([], [], color="0.1", lw=1.2, label="measured: ratio = 1 (contour)"),
               Line2D([], [], color="black", marker="v", ls="", label="gradient at layer 1 exactly 0 (underflow)"),
               Line2D([], [], color="black", marker="X", ls="", label="inf or nan (overflow)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    t, r = data["nets"].get("tanh"), data["nets"].get("relu")
    alt = (f"Two heatmaps of log10 of the first- to last-layer gradient ratio over gain (x, {gains[0]:g} to "
           f"{gains[-1]:g}, log scale) and depth (y, {depths[0]} to {depths[-1]} layers), blue for vanishing and "
           "red for exploding, with white along the critical gain.")
    if t and r and t["critical_gain_measured"] and r["critical_gain_measured"]:
        alt += (f" For tanh the boundary lies near gain 1 (measured {t['critical_gain_measured']:.2f}), for ReLU "
                f"near √2 (measured {r['critical_gain_measured']:.2f}); the contrast grows with depth. Cells where "
                f"the first-layer gradient underflowed to exactly 0 ({t['underflow_cells']} for tanh, "
                f"{r['underflow_cells']} for ReLU) or the numbers overflowed to inf or nan ({t['overflow_cells']} "
                f"for tanh, {r['overflow_cells']} for ReLU) are grey with a marker.")
    return Result(data, [Plot(
        "gain-depth", fig, alt=alt,
        caption=f"Freshly initialised MLPs of width {cfg.width}, weights N(0, g²/n), biases 0, one batch of "
                f"{cfg.batch} standard-normal inputs with random labels, cross-entropy, seed {cfg.seed}. Colours "
                f"are clipped at ±{cfg.vmax} decades.")])


INIT_LABELS = {"default": "PyTorch default U(±1/√n)", "xavier": "Xavier/Glorot", "kaiming": "He/Kaiming N(0, 2/n)",
               "orthogonal": "orthogonal"}


@experiment(depth=20, width=256, batch=512, seed=0, inits=("default", "xavier", "kaiming", "orthogonal"),
            activations=("tanh", "relu"))
def forward_variance(cfg):
    fig, axes = figure(ncols=len(cfg.activations), height=6.4, sharey=True)
    axes = np.atleast_1d(axes)
    layers = np.arange(1, cfg.depth + 1)
    data = {"layers": layers, "nets": {}}
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.batch, cfg.width, generator=gen)
    for ax, act in zip(axes, cfg.activations):
        data["nets"][act] = {}
        for init in cfg.inits:
            torch.manual_seed(cfg.seed)
            model = zero_biases(DeepMLP(cfg.depth, cfg.width, activation=act, init=init))
            with torch.no_grad():
                model(x, keep=True)
            var = np.array([h.double().var().item() for h in model.hidden])
            predicted = theory.forward_variance(act, WEIGHT_VARIANCE[init], cfg.depth)
            ok = var > 0
            factor = float(10 ** np.polyfit(layers[ok], np.log10(var[ok]), 1)[0])
            z = torch.stack([b.z for b in model.blocks]).double()  # (layers, batch, units) pre-activations
            data["nets"][act][init] = {"variance": var, "predicted": predicted, "factor_per_layer": factor,
                                       "last_over_first": float(var[-1] / var[0]),
                                       "preactivation_variance": z.var(dim=(1, 2)).numpy(),
                                       "beyond_3": float((z[cfg.depth // 2:].abs() > 3).double().mean())}
            if act == "tanh":  # the mean-field fixed point and its chi_1 (Schoenholz et al. 2017)
                s = WEIGHT_VARIANCE[init]
                q_star = theory.fixed_point(act, s) if s > 1 else 0.0  # s <= 1: q shrinks to 0, slowly at s = 1
                chi1 = theory.chi(act, s, q_star)
                data["nets"][act][init]["theory"] = {
                    "weight_variance": s, "q_star": q_star, "chi1": chi1, "variance_h": theory.variance(act, q_star),
                    "beyond_3": theory.tail_fraction(q_star, 3.0) if q_star > 0 else 0.0,
                    "depth_scale": abs(theory.depth_scale(chi1)) if chi1 != 1 else None}
            line = log_line(ax, layers, var, label=f"{INIT_LABELS[init]}: ×{factor:.3g}/layer", marker="o", ms=3)
            ax.plot(layers, predicted, color=line.get_color(), ls="--", lw=1)
        if act == "relu" and "default" in cfg.inits:  # what nn.Linear does out of the box: its bias sets a floor
            torch.manual_seed(cfg.seed)
            model = DeepMLP(cfg.depth, cfg.width, activation=act, init="default")
            with torch.no_grad():
                model(x, keep=True)
            var = np.array([h.double().var().item() for h in model.hidden])
            data["nets"][act]["default_with_bias"] = {"variance": var}
            log_line(ax, layers, var, label="PyTorch default incl. its bias U(±1/√n)", color="0.5", lw=1, ls=":",
                     marker=".")
        ax.plot([], [], color="0.4", ls="--", lw=1, label="dashed: mean-field prediction")
        name = {"tanh": "tanh", "relu": "ReLU"}[act]
        finish(ax, LAYER_LABEL, r"$\mathrm{Var}(h_\ell)$, over units and inputs", f"{name}, width {cfg.width}, "
               "biases 0", legend=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14))
    r = data["nets"].get("relu", {})
    alt = "Two log-scale panels of the variance of each layer's activations over 20 layers, tanh and ReLU."
    if r:
        alt += (f" With ReLU, He initialisation keeps it level (last over first layer "
                f"{r['kaiming']['last_over_first']:.2f}), Xavier and orthogonal halve it every layer "
                f"(×{r['xavier']['factor_per_layer']:.2f} and ×{r['orthogonal']['factor_per_layer']:.2f}) and "
                f"PyTorch's default divides it by about six (×{r['default']['factor_per_layer']:.3f}); with tanh, "
                "the default shrinks it by about three per layer, Xavier and orthogonal let it decay slowly and He "
                "holds it at a fixed level, where tanh is far from saturated but each layer stretches the gradient "
                "(the chaotic phase). Dashed predictions lie on the measurements.")
    return Result(data, [Plot(
        "forward-variance", fig, alt=alt,
        caption=f"One batch of {cfg.batch} standard-normal inputs, width {cfg.width}, seed {cfg.seed}, biases set "
                "to 0 except for the grey dotted line. Dashed: the infinite-width (mean-field) prediction "
                "$q_{\\ell+1} = n\\,\\mathrm{Var}(W)\\,\\mathrm{E}[g(z)^2]$, $z \\sim \\mathcal{N}(0, q_\\ell)$.")])


@experiment(depth=5, width=500, batch=512, seed=0, bins=(-8.5, -3.5, 51))
def glorot_histograms(cfg):
    x_all, y_all, _, _ = digits()
    x, y = x_all[:cfg.batch], y_all[:cfg.batch]
    bins = np.linspace(*cfg.bins[:2], int(cfg.bins[2]))
    fig, axes = figure(ncols=2, height=4.0, sharey=True, sharex=True)
    layers = np.arange(1, cfg.depth + 1)
    data = {"layers": layers, "bins": bins, "inits": {}}
    colors = colormaps["viridis"](np.linspace(0, 0.85, cfg.depth))
    for ax, (init, title) in zip(axes, (("default", "standard init $U(\\pm 1/\\sqrt{n_{\\mathrm{in}}})$\n"
                                                    "(PyTorch's default)"),
                                        ("xavier", "normalised (Xavier) init\n"
                                                   "$U(\\pm\\sqrt{6/(n_{\\mathrm{in}}+n_{\\mathrm{out}})})$"))):
        torch.manual_seed(cfg.seed)
        model = zero_biases(DeepMLP(cfg.depth, cfg.width, activation="tanh", init=init, d_in=x.shape[1]))
        gradient_flow(model, x, y)
        entry = {"std": [], "median_log10": [], "weight_grad_std": [], "counts": [], "zeros": []}
        for l, (block, h) in enumerate(zip(model.blocks, model.hidden)):
            back = h.grad * derivative("tanh", block.z)  # dL/dz_l, the back-propagated gradient G&B plot
            hist = log_histogram(back, bins)
            frac = hist["counts"] / hist["total"]
            ax.stairs(frac, hist["edges"], color=colors[l], lw=1.6, label=f"layer {l + 1}")
            entry["std"].append(back.double().std().item())
            entry["median_log10"].append(float(np.median(np.log10(back.detach().double().abs().numpy()))))
            entry["weight_grad_std"].append(block.linear.weight.grad.double().std().item())
            entry["counts"].append(hist["counts"])
            entry["zeros"].append(hist["zeros"])
        entry["std_first_over_last"] = entry["std"][0] / entry["std"][-1]
        entry["weight_grad_std_first_over_last"] = entry["weight_grad_std"][0] / entry["weight_grad_std"][-1]
        data["inits"][init] = entry
        finish(ax, r"$\log_{10}|\partial L/\partial z_\ell|$, back-propagated", "fraction of units × examples",
               title, loc="upper left")
    d, xv = data["inits"]["default"], data["inits"]["xavier"]
    # Per-layer factor sqrt(n Var W E[g'^2]) near z = 0: 1/sqrt(3) for the standard initialisation, 1 for Xavier.
    data["predicted_std_first_over_last"] = {
        init: per_layer_factor("tanh", WEIGHT_VARIANCE[init]) ** (cfg.depth - 1) for init in ("default", "xavier")}
    return Result(data, [Plot(
        "glorot-histograms", fig,
        alt=f"Histograms of log10 of the back-propagated gradient in each of the {cfg.depth} layers of a tanh "
            f"network. With the standard initialisation the histograms shift left layer by layer towards the "
            f"input: the standard deviation at layer 1 is {d['std_first_over_last']:.2f} times that at layer "
            f"{cfg.depth}. With Xavier's normalised initialisation they lie on top of each other (ratio "
            f"{xv['std_first_over_last']:.2f}).",
        caption=f"Glorot & Bengio's comparison, redone: a {cfg.depth}-layer tanh MLP of width {cfg.width}, biases "
                f"0, at initialisation, on {cfg.batch} digits images (cross-entropy over 10 classes), seed "
                f"{cfg.seed}.")])
