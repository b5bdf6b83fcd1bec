"""The claims ledger: experiments for the source articles' claims that no topic page tests."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vgsite.nets import DeepMLP
from vgsite.plots import RATIO_LABEL, figure, finish, log_line, power_of_ten
from vgsite.probes import log_ratio, probe_at_init, random_batch, saturated_fraction
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import bn_factor
from vgsite.train import across_seeds, digits, fit


@experiment(depth=20, width=64, batch=64, gains=tuple(np.round(np.logspace(-1, 1, 13), 4)), seed=0)
def input_sensitivity(cfg):
    """The lecture notes: small and large weights both make the network 'non-responsive to input changes'."""
    fig, (left, right) = figure(ncols=2, height=3.4)
    gains = np.array(cfg.gains)
    data = {"gains": gains, "nets": {}}
    for activation in ("tanh", "sigmoid"):
        sens, sat = [], []
        for gain in gains:
            torch.manual_seed(cfg.seed)
            model = DeepMLP(cfg.depth, cfg.width, activation=activation, init="normal", gain=float(gain)).double()
            x, _ = random_batch(cfg.width, cfg.batch)
            x = x.double()
            u = torch.randn_like(x)
            u = u / u.norm(dim=1, keepdim=True)  # one unit-length input direction per example
            # Forward-mode derivative: how far the logits move per unit of input change, exact even when tiny.
            _, du = torch.func.jvp(model, (x,), (u,))
            sens.append(du.norm(dim=1).mean().item())
            with torch.no_grad():
                model(x)
            sat.append(saturated_fraction(activation, model.blocks[-1].z.float()))
        data["nets"][activation] = {"sensitivity": sens, "saturated_last_layer": sat}
        log_line(left, gains, sens, label=activation, marker="o", ms=3)
        right.plot(gains, 100 * np.array(sat), marker="o", ms=3, label=activation)
    # Small weights: each layer is nearly linear, so the response scales as gain^depth (tanh' = 1 near 0).
    small = gains <= 0.5
    ref = data["nets"]["tanh"]["sensitivity"][0]
    left.plot(gains[small], ref * (gains[small] / gains[0]) ** cfg.depth, color="0.2", ls="--", lw=1.2, zorder=3,
              label=rf"theory for small weights: $\propto g^{{{cfg.depth}}}$")
    data["theory_exponent"] = cfg.depth
    for ax in (left, right):
        ax.set_xscale("log")
        ax.axvline(1, color="0.5", ls=":", lw=1)
    gain_label = r"weight gain $g$, weights $\sim\mathcal{N}(0,\,g^2/n)$"
    finish(left, gain_label, r"$\|\Delta\,\mathrm{logits}\|\,/\,\|\Delta\,\mathrm{input}\|$",
           f"Response to an input change, {cfg.depth} layers", legend=False)
    finish(right, gain_label, "units with |g′| < 1% of its peak (%)",
           "Saturated units, last layer", legend=False)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    tanh_sens = data["nets"]["tanh"]["sensitivity"]
    return Result(data, [Plot(
        "input-sensitivity", fig,
        alt=f"Left: how much the logits of a {cfg.depth}-layer network move per unit change of its input, against "
            f"the weight gain from {gains[0]:g} to {gains[-1]:g}, log-log. Small weights make the response vanish, "
            f"to {power_of_ten(np.log10(tanh_sens[0]))} for tanh at gain {gains[0]:g}, along the dashed "
            f"gain-to-the-{cfg.depth}th line; large weights make tanh's response grow to "
            f"{power_of_ten(np.log10(tanh_sens[-1]))} at gain {gains[-1]:g}, so the network is hypersensitive, not "
            "unresponsive. Right: the share of saturated units is zero for small weights and rises to "
            f"{100 * data['nets']['tanh']['saturated_last_layer'][-1]:.0f}% (tanh) only for large weights.",
        caption=f"Fresh {cfg.depth}-layer MLPs, width {cfg.width}, weights N(0, g²/n), one random batch; the "
                "response is the exact forward-mode derivative along a random unit input direction, in 64-bit "
                "floats.")])


def tent(x):
    """2·relu(x) − 4·relu(x − 1/2): the tent map on [0, 1], two ReLU units."""
    return 2 * torch.relu(x) - 4 * torch.relu(x - 0.5)


def count_pieces(y, x):
    """Linear pieces of a piecewise-linear y(x) sampled on a fine grid: one more than the slope changes."""
    slope = torch.diff(y) / torch.diff(x)
    return int((torch.diff(slope).abs() > 1e-6 * (1 + slope.abs().max())).sum()) + 1


def pieces_exact(model, x):
    """Linear pieces of a ReLU net on a 1-D input: count changes of its on/off pattern along the line."""
    h, patterns = x[:, None], []
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            patterns.append(h > 0)
    pattern = torch.cat(patterns, dim=1)
    return int((pattern[1:] != pattern[:-1]).any(dim=1).sum()) + 1


def random_relu_net(width, depth, generator):
    layers, d = [], 1
    for _ in range(depth):
        lin = nn.Linear(d, width)
        nn.init.normal_(lin.weight, std=np.sqrt(2 / d), generator=generator)  # He et al. 2015
        nn.init.normal_(lin.bias, std=0.5, generator=generator)
        layers += [lin, nn.ReLU()]
        d = width
    return nn.Sequential(*layers)


@experiment(max_layers=10, points=2 ** 17, random_width=4, seeds=(0, 1, 2, 3, 4))
def depth_expressivity(cfg):
    """The text-networks post and the long introduction: deeper networks can represent more."""
    x = torch.linspace(0, 1, cfg.points + 1, dtype=torch.float64)
    layers = np.arange(1, cfg.max_layers + 1)
    units = 2 * layers
    deep, y = [], x.clone()
    for _ in layers:
        y = tent(y)
        deep.append(count_pieces(y, x))
    # The best a one-hidden-layer net with N ReLUs can do on a line: N kinks, N + 1 pieces.
    shallow_bound = units + 1
    line = torch.linspace(-3, 3, cfg.points + 1)
    rand_deep, rand_shallow = [], []
    with torch.no_grad():
        for n in units:
            d = n // cfg.random_width
            gens = [torch.Generator().manual_seed(s) for s in cfg.seeds]
            rand_deep.append(np.mean([pieces_exact(random_relu_net(cfg.random_width, max(d, 1), g), line)
                                      if d else np.nan for g in gens]))
            gens = [torch.Generator().manual_seed(s) for s in cfg.seeds]
            rand_shallow.append(np.mean([pieces_exact(random_relu_net(int(n), 1, g), line) for g in gens]))
    fig, ax = figure(height=5.6)
    ax.plot(units, deep, marker="o", label=f"deep: tent map composed, 2 units per layer (1–{cfg.max_layers} layers)")
    ax.plot(units, 2.0 ** layers, color="0.2", ls="--", lw=1.2, zorder=3, label=r"theory for the tent map: $2^{\mathrm{layers}}$")
    ax.plot(units, shallow_bound, color="0.45", ls=":", lw=1.6, label="the most any 1-hidden-layer net can reach: N + 1")
    ax.plot(units, rand_shallow, marker="s", ms=3, label="random 1-hidden-layer net (He init), measured")
    ok = ~np.isnan(rand_deep)
    ax.plot(units[ok], np.array(rand_deep)[ok], marker="^", ms=4,
            label=f"random deep net, width {cfg.random_width} (He init), measured")
    ax.set_yscale("log", base=2)
    ax.set_xticks(units)
    finish(ax, "ReLU units in the network (N)", "linear pieces along a line (log₂ scale)",
           "What N ReLU units can draw on a line", legend=False)
    fig.legend(loc="outside lower center", ncols=1)
    return Result({"units": units, "layers": layers, "deep_construction": deep, "shallow_bound": shallow_bound,
                   "random_deep": rand_deep, "random_shallow": rand_shallow}, [Plot(
        "depth-expressivity", fig,
        alt=f"Number of linear pieces a ReLU network draws on a line against its number of units, 2 to "
            f"{2 * cfg.max_layers}. The deep tent-map network doubles its pieces with every layer, reaching "
            f"{deep[-1]} with {units[-1]} units, on the dashed line of 2 to the power of the layers; no network with one hidden layer "
            f"can exceed N + 1, that is {shallow_bound[-1]}. Randomly initialised networks, deep or shallow, "
            "stay near or below the shallow bound.",
        caption="Pieces counted from slope changes on a grid of "
                f"{cfg.points + 1} points (the construction) or from changes of the on/off pattern of the units "
                f"(random nets, mean over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)}). Depth buys exponentially many pieces only when "
                "the weights are chosen for it.")])


@experiment(depth=6, width=64, activation="tanh", step=0.05, angles=19, directions=200, seed=0)
def descent_direction(cfg):
    """The long introduction: backpropagation updates the weights 'in the direction that minimally reduces the loss'."""
    torch.manual_seed(cfg.seed)
    x, y, _, _ = digits()
    x, y = x[:256], y[:256]
    model = DeepMLP(cfg.depth, cfg.width, activation=cfg.activation, init="xavier", d_in=x.shape[1])
    params = list(model.parameters())
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts]).double()
    start = flat(params).clone()

    def loss_after(step):  # the loss with every weight moved by the flat vector `step`
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters((start + step).float(), params)
            value = F.cross_entropy(model(x), y).item()
            torch.nn.utils.vector_to_parameters(start.float(), params)
        return value

    loss = F.cross_entropy(model(x), y)
    g = flat(torch.autograd.grad(loss, params))
    base, gnorm = loss.item(), g.norm().item()
    down = -g / gnorm
    gen = torch.Generator().manual_seed(cfg.seed)
    other = torch.randn(g.numel(), generator=gen, dtype=torch.float64)
    other -= (other @ down) * down
    other /= other.norm()
    # Directions at angle theta from -gradient, all of length `step`: to first order the loss changes by
    # -step * |grad| * cos(theta), most at theta = 0.
    theta = np.linspace(0, 180, cfg.angles)
    swept = [loss_after(cfg.step * (np.cos(np.radians(t)) * down + np.sin(np.radians(t)) * other)) - base
             for t in theta]
    rand_angle, rand_delta = [], []
    for _ in range(cfg.directions):
        d = torch.randn(g.numel(), generator=gen, dtype=torch.float64)
        d /= d.norm()
        rand_angle.append(np.degrees(np.arccos((d @ down).item())))
        rand_delta.append(loss_after(cfg.step * d) - base)
    fig, ax = figure(height=3.6)
    fine = np.linspace(0, 180, 181)
    ax.plot(fine, -cfg.step * gnorm * np.cos(np.radians(fine)), color="0.2", ls="--", lw=1.2,
            label=r"first-order theory: $-\mathrm{step}\cdot\|\nabla L\|\cdot\cos\theta$")
    ax.plot(theta, swept, "o", label="measured, directions between −∇L and +∇L")
    ax.plot(rand_angle, rand_delta, "x", ms=5, color="#D55E00", alpha=0.6,
            label=f"measured, {cfg.directions} random directions")
    ax.annotate("−∇L: the steepest descent", (0, swept[0]), xytext=(8, 14), textcoords="offset points",
                va="bottom", color="0.25")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(range(0, 181, 30))
    finish(ax, "angle θ between the step and −∇L (degrees)", "change in loss",
           f"Steps of length {cfg.step} from a fresh {cfg.depth}-layer {cfg.activation} MLP, on digits",
           loc="lower right")
    rand_delta = np.array(rand_delta)
    return Result({"loss": base, "step": cfg.step, "grad_norm": gnorm, "parameters": g.numel(), "angles": theta,
                   "delta_swept": swept, "predicted_delta_steepest": -cfg.step * gnorm,
                   "random_angle_min": min(rand_angle), "random_angle_max": max(rand_angle),
                   "delta_random_min": rand_delta.min(), "delta_random_max": rand_delta.max()}, [Plot(
        "descent-direction", fig,
        alt=f"Change in the loss after a step of length {cfg.step} in weight space against the step's angle to the "
            f"negative gradient. The loss falls most, by {-swept[0]:.3f}, at 0 degrees, rises most at 180, and "
            "follows the dashed cosine curve in between; random directions all lie within a few degrees of 90 and "
            "barely change the loss.",
        caption=f"{g.numel()} weights, Glorot initialisation, cross-entropy on 256 training digits. Every step has "
                "the same length; only its direction changes.")])


ASYMMETRY_NETS = {  # label: network settings; weights N(0, gain^2/n)
    "ReLU, N(0, 1/n)": dict(activation="relu", init="normal", gain=1.0),
    "ReLU, He N(0, 2/n)": dict(activation="relu", init="normal", gain=float(np.sqrt(2))),
    "ReLU, N(0, 4/n)": dict(activation="relu", init="normal", gain=2.0),
    "tanh, N(0, 1/n)": dict(activation="tanh", init="normal", gain=1.0),
}


@experiment(depth=30, width=64, batch=64, seeds=(0, 1, 2))
def exploding_vs_vanishing(cfg):
    """The lecture notes: initialisation and batch norm cured exploding gradients, while vanishing ones remain."""
    labels = list(ASYMMETRY_NETS)
    variants = {"no normalisation": {}, "batch norm": dict(norm="batch"),
                "batch norm + residual": dict(norm="batch", residual=True)}
    data = {"depth": cfg.depth, "nets": {}}
    fig, ax = figure(height=3.9)
    bar = 0.26
    for j, (variant, extra) in enumerate(variants.items()):
        means = []
        for label in labels:
            ratios = [log_ratio(probe_at_init(cfg.depth, cfg.width, cfg.batch, s, **ASYMMETRY_NETS[label], **extra)
                                ["signal"]) for s in cfg.seeds]
            data["nets"].setdefault(label, {})[variant] = {"log10_ratio": float(np.mean(ratios)), "per_seed": ratios}
            means.append(np.mean(ratios))
        pos = np.arange(len(labels)) + (j - 1) * bar
        ax.bar(pos, means, bar, label=variant)
    # Theory. Without normalisation each layer multiplies the gradient by sqrt(gain^2 * E[g'^2]), and ReLU passes
    # half of its units (He et al. 2015). With batch norm and ReLU, Yang et al. (2019) predict growth by
    # sqrt(pi / (pi - 1)) per layer whatever the weight scale.
    for i, label in enumerate(labels):
        net = ASYMMETRY_NETS[label]
        if net["activation"] != "relu":
            continue
        pred = (cfg.depth - 1) * np.log10(net["gain"] * np.sqrt(0.5))
        pred_bn = (cfg.depth - 1) * np.log10(bn_factor("relu"))
        data["nets"][label]["predicted_no_norm"] = pred
        data["nets"][label]["predicted_batch_norm"] = pred_bn
        for centre, value in ((i - bar, pred), (i, pred_bn)):
            ax.plot([centre - bar / 2, centre + bar / 2], [value, value], color="0.15", ls="--", lw=1.4,
                    label="theory (ReLU)" if i == 0 and centre == i else None)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(range(len(labels)), labels)
    finish(ax, "network (weights at initialisation)", RATIO_LABEL,
           f"First-layer gradient relative to the last, {cfg.depth} layers: < 0 vanishing, > 0 exploding",
           loc="lower right")
    nets = data["nets"]
    bn_relu = [nets[label]["batch norm"]["log10_ratio"] for label in labels if label.startswith("ReLU")]
    res = [abs(nets[label]["batch norm + residual"]["log10_ratio"]) for label in labels]
    return Result(data, [Plot(
        "exploding-vs-vanishing", fig,
        alt=f"Bar chart of log10 of the first- over last-layer gradient norm in {cfg.depth}-layer networks at "
            "initialisation. Without normalisation the weight scale decides symmetrically: ReLU with variance 1/n "
            f"vanishes by {-nets['ReLU, N(0, 1/n)']['no normalisation']['log10_ratio']:.1f} decades, with 4/n "
            f"explodes by {nets['ReLU, N(0, 4/n)']['no normalisation']['log10_ratio']:.1f}, He's 2/n stays within "
            f"{abs(nets['ReLU, He N(0, 2/n)']['no normalisation']['log10_ratio']):.1f} of level, on the dashed "
            f"theory marks. With batch normalisation every ReLU network explodes by the same {np.mean(bn_relu):.1f} "
            f"decades (the three within {np.ptp(bn_relu):.3f} of each other) whatever its weight scale, as Yang et "
            f"al. (2019) predict, and tanh by {nets['tanh, N(0, 1/n)']['batch norm']['log10_ratio']:.1f}; adding residual "
            f"connections brings all of them to within {max(res):.1f} decades of zero.",
        caption=f"Fresh width-{cfg.width} MLPs on one random batch, mean over {len(cfg.seeds)} seed{'s' * (len(cfg.seeds) != 1)}. An "
                "initialisation that removes exploding gradients removes vanishing ones by the same token; batch "
                "norm without skip connections makes gradients explode.")])


def circles(n, generator):
    """Two concentric rings in the plane, labelled inner 0 and outer 1: no straight line separates them."""
    label = torch.randint(0, 2, (n,), generator=generator)
    radius = 1.0 + label.float() + 0.15 * torch.randn(n, generator=generator)
    angle = 2 * np.pi * torch.rand(n, generator=generator)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1), label


@experiment(depth=6, width=32, steps=300, lr=0.01, samples=1000, seeds=(0, 1, 2, 3, 4))
def nonlinearity(cfg):
    """The short explainer: activation functions introduce the non-linearity that lets a network learn more."""
    data = {"nets": {}}
    fig, axes = figure(ncols=2, height=3.4)
    grid = torch.stack(torch.meshgrid(torch.linspace(-3, 3, 121), torch.linspace(-3, 3, 121), indexing="xy"), -1)
    for ax, activation in zip(axes, ("linear", "tanh")):
        accs, losses = [], []
        for i, seed in enumerate(cfg.seeds):  # each seed: its own rings, initialisation and batches
            gen = torch.Generator().manual_seed(seed)
            x, y = circles(cfg.samples, gen)
            x_test, y_test = circles(cfg.samples, gen)
            torch.manual_seed(seed)
            model = DeepMLP(cfg.depth, cfg.width, activation=activation, init="xavier", d_in=2, d_out=2)
            history = fit(model, (x, y, x_test, y_test), cfg.steps, lr=cfg.lr, optimizer="adam", every=cfg.steps,
                          seed=seed)
            accs.append(history["test_acc"][-1])
            losses.append(history["loss"][-1])
            if i == 0:  # the first seed's decision regions are drawn
                with torch.no_grad():
                    p = torch.softmax(model(grid.reshape(-1, 2)), 1)[:, 1].reshape(121, 121)
                ax.contourf(grid[..., 0], grid[..., 1], p, levels=[0, 0.5, 1], colors=["#0072B2", "#D55E00"],
                            alpha=0.22)  # tints that read on the light and the dark background
                ax.scatter(*x_test[:300].T, c=[("#0072B2", "#D55E00")[int(v)] for v in y_test[:300]], s=5)
        ax.set_aspect("equal")
        data["nets"][activation] = {"test_accuracy": summary(accs), "final_loss": summary(losses)}
        acc = data["nets"][activation]["test_accuracy"]
        finish(ax, "x₁", "x₂", f"{cfg.depth} layers, {activation}: test accuracy {100 * acc['median']:.1f}%\n"
                               f"(median; {100 * acc['min']:.1f}–{100 * acc['max']:.1f}% over {len(cfg.seeds)} seeds)")
    lin, tanh = (data["nets"][a]["test_accuracy"] for a in ("linear", "tanh"))
    return Result(data, [Plot(
        "nonlinearity", fig,
        alt=f"Two rings of points, inner class blue and outer class orange, with the decision regions of two "
            f"{cfg.depth}-layer networks trained on them. The network without activation functions draws a "
            f"straight boundary and scores {100 * lin['median']:.0f}% on test points (median of {len(cfg.seeds)} "
            f"seeds, {100 * lin['min']:.0f} to {100 * lin['max']:.0f}%); the same network with tanh encloses the "
            f"inner ring and scores {100 * tanh['median']:.1f}% ({100 * tanh['min']:.1f} to "
            f"{100 * tanh['max']:.1f}%).",
        caption=f"Width {cfg.width}, Glorot initialisation, Adam at learning rate {cfg.lr} for {cfg.steps} steps on "
                f"{cfg.samples} points; {len(cfg.seeds)} seeds, each with its own rings and initialisation; the "
                "regions and points shown are the first seed's (shading: the class each network predicts). Without "
                "an activation, any number of layers multiplies out to one linear map.")])


def summary(values) -> dict:
    """Median, range and every seed's value of one number."""
    s = across_seeds(values)
    return {"median": float(s["median"]), "min": float(s["min"]), "max": float(s["max"]),
            "per_seed": [float(v) for v in s["per_seed"]]}
