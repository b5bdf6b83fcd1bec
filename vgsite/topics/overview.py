"""The headline figure: one number per layer, the gradient's per-layer factor, decides vanishing or exploding."""
import numpy as np

from vgsite.plots import RATIO_LABEL, figure, finish, ratio_vs_depth
from vgsite.probes import ratio_by_depth
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import WEIGHT_VARIANCE, per_layer_factor

# label: (network settings, predicted per-layer factor or None where no simple theory applies)
NETS = {
    "sigmoid, default init": (dict(activation="sigmoid", init="default"),
                              per_layer_factor("sigmoid", WEIGHT_VARIANCE["default"])),
    "ReLU, weights N(0, 1/n)": (dict(activation="relu", init="normal", gain=1.0), per_layer_factor("relu", 1.0)),
    "ReLU, He init N(0, 2/n)": (dict(activation="relu", init="normal", gain=np.sqrt(2)),
                                per_layer_factor("relu", 2.0)),
    "ReLU, weights N(0, 4/n)": (dict(activation="relu", init="normal", gain=2.0), per_layer_factor("relu", 4.0)),
    "sigmoid + batch norm + residual": (dict(activation="sigmoid", init="default", norm="batch", residual=True),
                                        None),
}


@experiment(depths=(2, 5, 10, 20, 30, 40, 50), width=64, batch=64, seeds=(0, 1, 2))
def headline(cfg):
    fig, ax = figure(height=5.2)
    depths = np.array(cfg.depths)
    data = {"depths": depths, "nets": {}}
    for label, (net, factor) in NETS.items():
        ratios = ratio_by_depth(depths, cfg.seeds, cfg.width, cfg.batch, **net)
        mean = ratios.mean(axis=1)
        entry = {"log10_ratio": mean, "per_seed": ratios}
        if factor is not None:
            entry["predicted"] = np.log10(factor) * (depths - 1)
        ratio_vs_depth(ax, depths, mean, label=label, theory=entry.get("predicted"), theory_label="")
        data["nets"][label] = entry
    ax.plot([], [], color="0.4", ls="--", lw=1.3, label=r"theory: $(L-1)\,\log_{10}$(factor per layer)")
    ax.set_ylim(-45, 12)
    ax.annotate("exploding ↑", (depths[-1], 11), ha="right", va="top", color="0.35", style="italic")
    ax.annotate("vanishing ↓", (depths[-1], -20), ha="right", va="top", color="0.35", style="italic")
    finish(ax, "depth L (layers)", RATIO_LABEL,
           "Gradient at the first layer relative to the last, at initialisation", legend=False)
    fig.legend(loc="outside lower center", ncols=2)
    for entry in data["nets"].values():
        finite = np.isfinite(entry["log10_ratio"])
        entry["slope_per_layer"] = float(np.polyfit(depths[finite], entry["log10_ratio"][finite], 1)[0])
    n = data["nets"]
    slope = lambda label: n[label]["slope_per_layer"]
    last = n["sigmoid + batch norm + residual"]["log10_ratio"]
    return Result(data, [Plot(
        "headline", fig,
        alt=f"Log10 of the ratio between the first- and the last-layer gradient norm against depth, {depths[0]} to "
            f"{depths[-1]} layers, for five freshly initialised networks. Sigmoid with PyTorch's default "
            f"initialisation falls steeply (vanishing, {-slope('sigmoid, default init'):.2f} decades per layer); "
            f"ReLU with weight variance 1/n falls {-slope('ReLU, weights N(0, 1/n)'):.2f} decades per layer; ReLU "
            f"with He's variance 2/n stays at zero ({slope('ReLU, He init N(0, 2/n)'):+.3f}); ReLU with variance "
            f"4/n rises {slope('ReLU, weights N(0, 4/n)'):.2f} decades per layer (exploding); a sigmoid network "
            f"with batch normalisation and residual connections stays between {last.min():.1f} and "
            f"{last.max():.1f} decades. Dashed theory lines lie on the measurements.",
        caption=f"One random batch per network and seed, mean over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)}; dashed: the prediction "
                "from the per-layer factor √(n·Var(W)·E[g′²]).")])
