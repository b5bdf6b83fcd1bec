"""Backpropagation by hand: the chain rule layer by layer, checked against autograd, and the Jacobian product."""
import numpy as np
import torch
import torch.nn.functional as F

from vgsite.nets import DeepMLP
from vgsite.plots import COLORS, LAYER_LABEL, figure, finish, layer_axis, log_line
from vgsite.probes import derivative
from vgsite.registry import Plot, Result, experiment
from vgsite.theory import WEIGHT_VARIANCE, per_layer_factor
from vgsite.train import digits

ACTS = {"tanh": "tanh", "sigmoid": "sigmoid σ", "relu": "ReLU"}
EPS = {"float32": float(torch.finfo(torch.float32).eps), "float64": float(torch.finfo(torch.float64).eps)}


def slope(activation, z, h):
    """g'(z) written out by hand: no autograd."""
    if activation == "tanh":
        return 1 - h * h
    if activation == "sigmoid":
        return h * (1 - h)
    if activation == "relu":
        return (z > 0).to(z.dtype)
    raise ValueError(f"no hand-written slope for {activation!r}")


def manual_gradients(model: DeepMLP, x, y, slip=False):
    """Forward and backward pass of a DeepMLP (no norm, no residual) with plain tensor ops, mean cross-entropy.

    Row convention (a batch of rows): z_l = h_{l-1} W_l^T + b_l, h_l = g(z_l), logits = h_L W_head^T + b_head.
    delta_l = dL/dz_l = (delta_{l+1} W_{l+1}) * g'(z_l), the row form of (W_{l+1}^T delta_{l+1}) ⊙ g'(z_l);
    dL/dW_l = delta_l^T h_{l-1}, dL/db_l = sum over the batch of delta_l.
    slip=True evaluates the slope at the previous layer's activation, g'(a_{l-1}), as the lecture notes write it.
    Returns [(dL/dW_l, dL/db_l) for l = 1..L] + [(dL/dW_head, dL/db_head)], and the loss.
    """
    act = model.activation
    weights = [b.linear.weight for b in model.blocks] + [model.head.weight]
    biases = [b.linear.bias for b in model.blocks] + [model.head.bias]
    with torch.no_grad():
        hs, zs = [x], []
        for w, b in zip(weights[:-1], biases[:-1]):
            z = hs[-1] @ w.T + b
            zs.append(z)
            h = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[act](z)
            hs.append(h)
        logits = hs[-1] @ weights[-1].T + biases[-1]
        shifted = logits - logits.max(dim=1, keepdim=True).values
        p = shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)
        onehot = torch.zeros_like(p)
        onehot[torch.arange(len(y)), y] = 1
        loss = -(shifted.gather(1, y[:, None]) - shifted.exp().sum(1, keepdim=True).log()).mean()
        delta = (p - onehot) / len(y)  # dL/dlogits for the mean cross-entropy
        grads = [(delta.T @ hs[-1], delta.sum(0))]
        for l in reversed(range(len(zs))):  # l = L-1 .. 0 (0-based)
            back = delta @ weights[l + 1]
            local = slope(act, hs[l], hs[l]) if slip else slope(act, zs[l], hs[l + 1])
            delta = back * local
            grads.append((delta.T @ hs[l], delta.sum(0)))
    return grads[::-1], loss.item()


def relative_error(a, b) -> float:
    """||a - b|| / ||b|| in float64 (Frobenius norm)."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm()).item()


@experiment(depth=4, width=64, batch=64, seed=0, activations=("tanh", "sigmoid", "relu"))
def manual_backward(cfg):
    x_all, y_all, _, _ = digits()
    x, y = x_all[:cfg.batch], y_all[:cfg.batch]
    layers = [str(l) for l in range(1, cfg.depth + 1)] + ["head"]
    data = {"layers": layers, "nets": {}}
    fig, ax = figure(height=4.4)
    pos = np.arange(1, cfg.depth + 2)
    for i, act in enumerate(cfg.activations):
        torch.manual_seed(cfg.seed)
        base = DeepMLP(cfg.depth, cfg.width, activation=act, d_in=x.shape[1])
        entry = {}
        for dtype, torch_dtype in (("float32", torch.float32), ("float64", torch.float64)):
            model = DeepMLP(cfg.depth, cfg.width, activation=act, d_in=x.shape[1]).to(torch_dtype)
            model.load_state_dict(base.state_dict())
            xx = x.to(torch_dtype)
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xx), y)
            loss.backward()
            auto = [(b.linear.weight.grad, b.linear.bias.grad) for b in model.blocks]
            auto.append((model.head.weight.grad, model.head.bias.grad))
            variants = [(dtype, False)] + ([("slip", True)] if dtype == "float64" else [])
            for name, slip in variants:
                manual, manual_loss = manual_gradients(model, xx, y, slip=slip)
                entry[name] = {
                    "weight_rel_error": [relative_error(m[0], a[0]) for m, a in zip(manual, auto)],
                    "bias_rel_error": [relative_error(m[1], a[1]) for m, a in zip(manual, auto)],
                    "loss_abs_error": abs(manual_loss - loss.item()),
                }
        data["nets"][act] = entry
        color = COLORS[i]
        for name, marker in (("float32", "o"), ("float64", "s"), ("slip", "X")):
            err = np.array(entry[name]["weight_rel_error"])
            shown = pos if name != "slip" else pos[:-1]  # the slip changes the hidden layers only
            err_shown = err[:len(shown)]
            xs = shown + (i - 1) * 0.12
            ax.plot(xs, np.where(err_shown > 0, err_shown, np.nan), color=color, marker=marker, ms=6, lw=0.8,
                    ls=":" if name == "slip" else "-", label=ACTS[act] if name == "float32" else None)
            if (err_shown == 0).any():  # bit-identical to autograd: drawn on the bottom edge, not dropped
                ax.scatter(xs[err_shown == 0], np.full((err_shown == 0).sum(), 3e-18), marker="v", color=color,
                           zorder=5)
                entry[name]["identical_layers"] = [layers[j] for j in np.flatnonzero(err_shown == 0)]
    ax.set_yscale("log")
    ax.set_ylim(1e-18, 1e4)
    for dtype, eps in EPS.items():
        ax.axhline(eps, color="0.35", lw=1, ls="-.")
    notes = ((1e-14, r"float64, by hand vs autograd (squares); dash-dot: its machine ε, $2.2\times10^{-16}$"),
             (2e-6, r"float32, by hand vs autograd (circles); dash-dot: its machine ε, $1.2\times10^{-7}$"),
             (3e2, r"float64, slope taken at $a_{\ell-1}$ as the lecture notes write it (crosses)"))
    for y, text in notes:
        ax.annotate(text, (0.01, y), xycoords=("axes fraction", "data"), color="0.25", fontsize=9, va="bottom")
    ax.set_xticks(pos, layers)
    ax.set_xlim(0.6, pos[-1] + 0.4)
    finish(ax, LAYER_LABEL, r"relative error of $\partial L/\partial W_\ell$",
           f"Hand-written backward pass vs autograd: {cfg.depth}-layer MLP, width {cfg.width}", legend=False)
    ax.legend(loc="center", bbox_to_anchor=(0.5, 0.36), ncols=3, title="activation (colour)")
    data["machine_eps"] = EPS
    worst32 = max(max(e["float32"]["weight_rel_error"]) for e in data["nets"].values())
    worst64 = max(max(e["float64"]["weight_rel_error"]) for e in data["nets"].values())
    best_slip = min(min(e["slip"]["weight_rel_error"][:-1]) for e in data["nets"].values())
    data.update(worst_float32=worst32, worst_float64=worst64, smallest_slip_error=best_slip)
    any_identical = any("identical_layers" in v for e in data["nets"].values() for v in e.values())
    identical = " A triangle on the bottom edge: bit-identical to autograd." if any_identical else ""
    return Result(data, [Plot(
        "manual-backward", fig,
        alt=f"Log-scale plot of the relative difference between weight gradients computed by a hand-written "
            f"backward pass and by PyTorch's autograd, per layer of a {cfg.depth}-layer MLP, for tanh, sigmoid and "
            f"ReLU. In float32 every layer agrees to within {worst32:.0e}, near float32's machine epsilon; in "
            f"float64 to within {worst64:.0e}. Evaluating the slope at the previous layer's activation, as the "
            f"lecture notes write it, is off by at least {best_slip:.0%} in the hidden layers.",
        caption=f"One batch of {cfg.batch} digits, cross-entropy loss, PyTorch's default initialisation, seed "
                f"{cfg.seed}.{identical} The notes' slip leaves the head's gradient untouched, so it is plotted "
                "for the hidden layers only.")])


def jacobian_flow(model: DeepMLP, x, y):
    """Per example: the layer Jacobians J_l = dh_l/dh_{l-1} = diag(g'(z_l)) W_l for l = 2..L, and from the top down
    the bound prod ||J_k||_2, the measured ||dh_L/dh_l||_2 and ||dL/dh_l|| / ||dL/dh_L||. Runs in float64."""
    model = model.double()
    x = x.double()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x, keep=True), y).backward()
    signal = torch.stack([h.grad.norm(dim=1) for h in model.hidden], dim=1)  # (batch, L)
    slopes = [derivative(model.activation, b.z) for b in model.blocks]  # (batch, n) each
    depth = len(model.blocks)
    spectral = torch.zeros(len(x), depth)  # ||J_l||_2 per example; column 0 (layer 1) unused
    bound = torch.ones(len(x), depth)
    measured = torch.ones(len(x), depth)
    width = model.blocks[-1].linear.out_features
    product = torch.eye(width, dtype=torch.float64).expand(len(x), -1, -1)
    with torch.no_grad():
        for l in range(depth - 1, 0, -1):  # J_l for layer l+1 in 1-based terms: dh_{l+1}/dh_l
            jac = slopes[l][:, :, None] * model.blocks[l].linear.weight[None]
            spectral[:, l] = torch.linalg.matrix_norm(jac, ord=2)
            product = product @ jac  # dh_L/dh_l
            bound[:, l - 1] = bound[:, l] * spectral[:, l]
            measured[:, l - 1] = torch.linalg.matrix_norm(product, ord=2)
    gradient = signal / signal[:, -1:]
    return {"spectral": spectral, "bound": bound, "measured": measured, "gradient": gradient}


def geomean(t, dim=0):
    return t.log().mean(dim=dim).exp()


# Mean-field prediction of the gradient's per-layer factor near z = 0: sqrt(n Var(W) E[g'^2]), with
# n Var(W) = 1/3 for PyTorch's default initialisation (see the vanishing page).
PER_LAYER_FACTOR = {act: per_layer_factor(act, WEIGHT_VARIANCE["default"]) for act in ("tanh", "sigmoid")}


@experiment(depth=30, width=64, examples=16, seed=0, activations=("tanh", "sigmoid"))
def jacobian_product(cfg):
    x_all, y_all, _, _ = digits()
    x, y = x_all[:cfg.examples], y_all[:cfg.examples]
    layers = np.arange(1, cfg.depth + 1)
    fig, axes = figure(nrows=len(cfg.activations), height=3.2 * len(cfg.activations) + 0.4, sharex=True)
    fig2, ax2 = figure(height=4.6)
    data = {"layers": layers, "nets": {}}
    for i, (ax, act) in enumerate(zip(axes, cfg.activations)):
        torch.manual_seed(cfg.seed)
        model = DeepMLP(cfg.depth, cfg.width, activation=act, d_in=x.shape[1])
        flow = jacobian_flow(model, x, y)
        bound, measured, gradient = (geomean(flow[k]).numpy() for k in ("bound", "measured", "gradient"))
        spectral = geomean(flow["spectral"][:, 1:]).numpy()  # layers 2..L
        steps = cfg.depth - 1
        entry = {
            "bound": bound, "measured_jacobian": measured, "gradient_ratio": gradient,
            "layer_jacobian_norm": spectral,
            "mean_factor_bound": float(np.exp(np.log(spectral).mean())),
            "mean_factor_jacobian": float(measured[0] ** (1 / steps)),
            "mean_factor_gradient": float(gradient[0] ** (1 / steps)),
            "predicted_factor": PER_LAYER_FACTOR.get(act),
            "bound_holds_every_example": bool((flow["measured"] <= flow["bound"] * (1 + 1e-9)).all()
                                              and (flow["gradient"] <= flow["measured"] * (1 + 1e-9)).all()),
            "bound_over_gradient_at_layer_1": float(bound[0] / gradient[0]),
        }
        data["nets"][act] = entry
        ax.plot(layers, bound, color=COLORS[1], ls="--",
                label=rf"bound $\prod_k\|J_k\|_2$: ×{entry['mean_factor_bound']:.2f}/layer")
        log_line(ax, layers, measured, color=COLORS[0], marker="o", ms=3,
                 label=rf"$\|\partial h_L/\partial h_\ell\|_2$: ×{entry['mean_factor_jacobian']:.2f}/layer")
        log_line(ax, layers, gradient, color=COLORS[2], marker="s", ms=3,
                 label=rf"$\|\partial L/\partial h_\ell\|\,/\,\|\partial L/\partial h_L\|$: "
                       f"×{entry['mean_factor_gradient']:.2f}/layer")
        if act in PER_LAYER_FACTOR:
            ax.plot(layers, PER_LAYER_FACTOR[act] ** (cfg.depth - layers), color="0.4", ls=":", lw=1.2,
                    label=rf"theory: ${PER_LAYER_FACTOR[act]:.3f}^{{L-\ell}}$")
        layer_axis(ax, layers)
        finish(ax, LAYER_LABEL if ax is axes[-1] else "", "norm relative to layer L",
               f"{ACTS[act]}, {cfg.depth} layers, width {cfg.width}", loc="lower right")
        ax2.plot(layers[1:], spectral, color=COLORS[i], marker="o", ms=3,
                 label=rf"{ACTS[act]}: $\|\mathrm{{diag}}(g'(z_\ell))\,W_\ell\|_2$")
        local = gradient[:-1] / gradient[1:]  # ||dL/dh_{l-1}|| / ||dL/dh_l|| for l = 2..L
        entry["gradient_factor_per_layer"] = local
        ax2.plot(layers[1:], local, color=COLORS[i], marker="x", ms=4, lw=0.8, ls=":",
                 label=rf"{ACTS[act]}: $\|\partial L/\partial h_{{\ell-1}}\|\,/\,\|\partial L/\partial h_\ell\|$")
        ax2.axhline(entry["mean_factor_gradient"], color=COLORS[i], ls="--", lw=1,
                    label=f"{ACTS[act]}: its mean, {entry['mean_factor_gradient']:.3f}")
    ax2.axhline(1, color="0.3", lw=1)
    ax2.set_yscale("log")
    ticks = [0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1, 1.5]
    ax2.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax2.minorticks_off()
    finish(ax2, LAYER_LABEL, "factor per layer", "Each layer's Jacobian norm vs the gradient's shrink factor",
           legend=False)
    fig2.legend(loc="outside lower center", ncols=2)
    t, s = data["nets"].get("tanh"), data["nets"].get("sigmoid")
    alt = (f"Two log-scale panels, tanh above and sigmoid below, {cfg.depth}-layer networks, layer 1 (the input "
           "side) on the left. In each, three curves fall from the last layer back to layer 1: the product of the "
           "per-layer Jacobian norms on top, the measured norm of the Jacobian from each layer to the last below "
           "it, and the actual gradient ratio lowest.")
    if t and s:
        alt += (f" For tanh the bound grows by {t['mean_factor_bound']:.2f} per layer while the gradient shrinks by "
                f"{t['mean_factor_gradient']:.2f}; for sigmoid the bound shrinks by {s['mean_factor_bound']:.2f} "
                f"and the gradient by {s['mean_factor_gradient']:.3f} per layer.")
    alt2 = ("Per-layer spectral norm of each layer's Jacobian on a log scale, with the gradient's measured shrink "
            "factor per layer (crosses) and its mean (dashed) below it.")
    if t and s:
        alt2 += (f" Tanh: norms about {t['mean_factor_bound']:.2f}, above 1, while the gradient shrinks by "
                 f"{t['mean_factor_gradient']:.3f} per layer; sigmoid: norms about {s['mean_factor_bound']:.2f}, "
                 f"gradient factor {s['mean_factor_gradient']:.3f}. Each layer's norm is about twice the factor "
                 "the gradient actually loses.")
    return Result(data, [
        Plot("jacobian-product", fig, alt=alt,
             caption=f"Geometric mean over {cfg.examples} digits images, PyTorch's default initialisation, seed "
                     f"{cfg.seed}, float64. $J_\\ell = \\partial h_\\ell/\\partial h_{{\\ell-1}} = "
                     "\\operatorname{diag}(g'(z_\\ell))\\,W_\\ell$. The bound is the product of "
                     "the layers' spectral norms; the gradient can never exceed it."),
        Plot("jacobian-factors", fig2,
             alt=alt2,
             caption="The same networks: the spectral norm of every layer's Jacobian, and (dashed) the factor by "
                     "which the gradient actually shrinks per layer, averaged over depth."),
    ])
