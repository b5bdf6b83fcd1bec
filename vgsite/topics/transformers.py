"""Transformers: gradient scale by layer at initialisation (Post-LN, Pre-LN, DeepNorm), learning-rate warm-up,
rank collapse in pure-attention stacks, and attention-logit growth with and without QK-layernorm.

The model is PyTorch's own `nn.TransformerEncoderLayer` (its `norm_first` switches Post-LN and Pre-LN): each seed's
layers are built, and initialised, by it; their weights are then stacked along a first axis (the seed, or the
seed and the learning rate), and one small forward pass of our own runs all of them at once, so several seeds
train for about the price of one. `StackedTransformer(..., variant="post"|"pre")` computes exactly what the
stacked `nn.TransformerEncoderLayer`s compute (tests/test_transformers.py checks it); the variants PyTorch's
module has no switch for are a few lines here: DeepNorm's scaled residual (Wang et al. 2022) and QK-layernorm
(Dehghani et al. 2023), plus the attention-only blocks of the rank-collapse experiment (Dong et al. 2021).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from vgsite.plots import COLORS, figure, finish, listed, median_band, power_of_ten, theory_line
from vgsite.registry import Plot, Result, experiment
from vgsite.train import across_seeds

VARIANTS = {"post": "Post-LN", "pre": "Pre-LN", "deepnorm": "DeepNorm"}


# ---------------------------------------------------------------- the model: stacked TransformerEncoderLayers

def _layer_tensors(layer: torch.nn.TransformerEncoderLayer) -> dict:
    a = layer.self_attn
    return {"w_qkv": a.in_proj_weight, "b_qkv": a.in_proj_bias, "w_o": a.out_proj.weight, "b_o": a.out_proj.bias,
            "w_1": layer.linear1.weight, "b_1": layer.linear1.bias, "w_2": layer.linear2.weight,
            "b_2": layer.linear2.bias, "g_1": layer.norm1.weight, "n_1": layer.norm1.bias,
            "g_2": layer.norm2.weight, "n_2": layer.norm2.bias}


def deepnorm_constants(depth: int) -> tuple:
    """DeepNorm for an encoder of `depth` layers (Wang et al. 2022): residual weight α = (2N)^¼, init gain β = (8N)^-¼."""
    return (2 * depth) ** 0.25, (8 * depth) ** -0.25


def encoder_layers(depth, d_model, heads, variant, seed):
    """`depth` nn.TransformerEncoderLayers (ReLU, feed-forward 4·d_model, no dropout) as PyTorch initialises them;
    for DeepNorm, the value, output and feed-forward weights re-initialised Xavier-normal with gain β."""
    torch.manual_seed(seed)
    layers = [torch.nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, batch_first=True,
                                               norm_first=(variant == "pre")) for _ in range(depth)]
    if variant == "deepnorm":
        _, beta = deepnorm_constants(depth)
        with torch.no_grad():
            for layer in layers:
                w = layer.self_attn.in_proj_weight
                for part, gain in zip(w.split(d_model), (1.0, 1.0, beta)):  # q, k: gain 1; v: β
                    torch.nn.init.xavier_normal_(part, gain=gain)
                for lin in (layer.self_attn.out_proj, layer.linear1, layer.linear2):
                    torch.nn.init.xavier_normal_(lin.weight, gain=beta)
    return layers


class StackedTransformer(torch.nn.Module):
    """n_models independent encoder-only transformers of one shape, trained together.

    Token embedding N(0, 1) plus a learned position embedding, `depth` encoder layers, a final LayerNorm (Pre-LN
    needs one; the others get one too, so the heads see the same scale), a linear head per position. Every weight
    has the model as its first axis. variant: "post" (x ← LN(x + f(x))), "pre" (x ← x + f(LN(x))), "deepnorm"
    (x ← LN(α·x + f(x))). qk_norm: LayerNorm on each head's queries and keys before their dot product.
    """

    def __init__(self, seeds, depth=4, d_model=32, heads=4, vocab=16, length=8, variant="pre", qk_norm=False):
        super().__init__()
        self.depth, self.d, self.heads, self.variant, self.qk_norm = depth, d_model, heads, variant, qk_norm
        self.alpha = deepnorm_constants(depth)[0] if variant == "deepnorm" else 1.0
        per_seed = []
        for seed in seeds:
            layers = encoder_layers(depth, d_model, heads, variant, seed)
            torch.manual_seed(10_000 + seed)
            head = torch.nn.Linear(d_model, vocab)
            per_seed.append({"emb": torch.randn(vocab, d_model), "pos": 0.02 * torch.randn(length, d_model),
                             "layers": [_layer_tensors(layer) for layer in layers], "head_w": head.weight,
                             "head_b": head.bias})
        stack = lambda get: torch.nn.Parameter(torch.stack([get(s).detach().clone() for s in per_seed]))
        self.emb, self.pos = stack(lambda s: s["emb"]), stack(lambda s: s["pos"])
        self.layers = torch.nn.ModuleList()
        for i in range(depth):
            params = torch.nn.ParameterDict({k: stack(lambda s: s["layers"][i][k]) for k in per_seed[0]["layers"][i]})
            if qk_norm:
                dh = d_model // heads
                params["g_q"] = torch.nn.Parameter(torch.ones(len(seeds), dh))
                params["g_k"] = torch.nn.Parameter(torch.ones(len(seeds), dh))
            self.layers.append(params)
        n = len(seeds)
        self.g_f, self.n_f = torch.nn.Parameter(torch.ones(n, d_model)), torch.nn.Parameter(torch.zeros(n, d_model))
        self.head_w, self.head_b = stack(lambda s: s["head_w"]), stack(lambda s: s["head_b"])
        self.max_logit = None  # per model: the largest |attention logit| of the last forward pass

    @staticmethod
    def linear(x, w, b):  # x (S, B, T, i), w (S, o, i), b (S, o)
        return torch.einsum("sbti,soi->sbto", x, w) + b[:, None, None, :]

    @staticmethod
    def norm(x, g, b):
        return F.layer_norm(x, x.shape[-1:]) * g[:, None, None, :] + b[:, None, None, :]

    def attention(self, x, p, logits_out=None):
        s, b, t, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = self.linear(x, p["w_qkv"], p["b_qkv"]).view(s, b, t, 3, h, dh).permute(3, 0, 1, 4, 2, 5)
        if self.qk_norm:
            q = F.layer_norm(q, (dh,)) * p["g_q"][:, None, None, None, :]
            k = F.layer_norm(k, (dh,)) * p["g_k"][:, None, None, None, :]
        logits = q @ k.transpose(-1, -2) / math.sqrt(dh)  # (S, B, H, T, T)
        if logits_out is not None:
            logits_out.append(logits.detach().abs().flatten(1).max(1).values)
        out = (logits.softmax(-1) @ v).permute(0, 1, 3, 2, 4).reshape(s, b, t, d)
        return self.linear(out, p["w_o"], p["b_o"])

    def feed_forward(self, x, p):
        return self.linear(F.relu(self.linear(x, p["w_1"], p["b_1"])), p["w_2"], p["b_2"])

    def block(self, x, p, logits_out=None):
        if self.variant == "pre":
            x = x + self.attention(self.norm(x, p["g_1"], p["n_1"]), p, logits_out)
            return x + self.feed_forward(self.norm(x, p["g_2"], p["n_2"]), p)
        x = self.norm(self.alpha * x + self.attention(x, p, logits_out), p["g_1"], p["n_1"])
        return self.norm(self.alpha * x + self.feed_forward(x, p), p["g_2"], p["n_2"])

    def hidden(self, tokens):
        """tokens (S, B, T) or (B, T) shared by all models -> (S, B, T, d) after the last encoder layer."""
        if tokens.dim() == 2:
            tokens = tokens.expand(len(self.emb), *tokens.shape)
        x = torch.stack([e[t] for e, t in zip(self.emb, tokens)]) + self.pos[:, None]
        logits = []
        for p in self.layers:
            x = self.block(x, p, logits)
        self.max_logit = torch.stack(logits).max(0).values
        return x

    def forward(self, tokens):
        x = self.norm(self.hidden(tokens), self.g_f, self.n_f)
        return self.linear(x, self.head_w, self.head_b)  # (S, B, T, vocab)


# ---------------------------------------------------------------- the task and the training loop

def sort_task(batch, length, vocab, gen):
    """Sorting, generated in code: `length` random tokens in, the same tokens in ascending order out."""
    x = torch.randint(0, vocab, (batch, length), generator=gen)
    return x, x.sort(dim=1).values


def warmup_schedule(step, warmup):
    """Linear warm-up from lr/warmup to lr over `warmup` steps, then constant; no warm-up: constant."""
    return min(1.0, (step + 1) / warmup) if warmup else 1.0


def train_stacked(model, lrs, warmups, steps, batch=32, length=8, vocab=16, seed=0, every=10,
                  betas=(0.9, 0.98), eps=1e-9):
    """Adam on every stacked model at once, model i with peak learning rate lrs[i] and warm-up warmups[i] steps.

    Adam is elementwise, so the stacked update is each model's own Adam update (written out here: torch.optim has
    one learning rate per parameter group, and here it differs along the stacked axis). All models see the same
    batches. Returns per-model histories: loss and largest |attention logit| every `every` steps, and whether and
    when the loss became non-finite. A model whose loss is non-finite is frozen from then on.
    """
    n = len(lrs)
    lrs, params = torch.tensor(lrs, dtype=torch.float32), list(model.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    gen = torch.Generator().manual_seed(seed)
    alive = torch.ones(n, dtype=torch.bool)
    hist = {"step": [], "loss": [], "max_logit": []}
    nan_at = [None] * n
    for step in range(steps + 1):
        x, y = sort_task(batch, length, vocab, gen)
        out = model(x)
        losses = F.cross_entropy(out.flatten(1, 3).view(n * batch * length, vocab),
                                 y.repeat(n, 1).flatten(), reduction="none").view(n, -1).mean(1)
        finite = torch.isfinite(losses)
        for i in torch.nonzero(alive & ~finite).flatten().tolist():
            nan_at[i] = step
        alive &= finite
        if step % every == 0 or step == steps:
            hist["step"].append(step)
            hist["loss"].append(torch.where(alive, losses.detach(), torch.nan).tolist())
            hist["max_logit"].append(torch.where(alive, model.max_logit, torch.nan).tolist())
        if step == steps:
            break
        for p in params:
            p.grad = None
        torch.where(alive, losses, 0.0).sum().backward()
        rate = lrs * torch.tensor([warmup_schedule(step, w) for w in warmups]) * alive
        c1, c2 = 1 - betas[0] ** (step + 1), 1 - betas[1] ** (step + 1)
        with torch.no_grad():
            for p, mi, vi in zip(params, m, v):
                g = torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
                mi.mul_(betas[0]).add_(g, alpha=1 - betas[0])
                vi.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
                shape = (n,) + (1,) * (p.dim() - 1)
                p.sub_(rate.view(shape) * (mi / c1) / ((vi / c2).sqrt() + eps))
    hist = {k: np.array(val, dtype=float).T if k != "step" else np.array(val) for k, val in hist.items()}
    return {**hist, "nan_at": nan_at}


# ---------------------------------------------------------------- 1. gradient by layer at initialisation

def init_gradients(variant, depth, seeds, d_model=64, heads=4, vocab=16, length=16, batch=8, data_seed=0):
    """One batch of the sort task through freshly initialised models: per model and layer, ‖∂L/∂W‖ of the second
    feed-forward weight (Xiong et al.'s W^(2,l)); returns an array (seeds, depth)."""
    model = StackedTransformer(seeds, depth=depth, d_model=d_model, heads=heads, vocab=vocab, length=length,
                               variant=variant)
    x, y = sort_task(batch, length, vocab, torch.Generator().manual_seed(data_seed))
    out = model(x)
    n = len(seeds)
    loss = F.cross_entropy(out.reshape(-1, vocab), y.repeat(n, 1).flatten(), reduction="none").view(n, -1).mean(1)
    loss.sum().backward()  # the models are independent: each one's gradient is its own loss's
    return np.array([[p["w_2"].grad[s].norm().item() for p in model.layers] for s in range(n)])


def loglog_slope(x, y):
    """Least-squares slope of log y against log x, for each row of y."""
    lx = np.log(np.asarray(x, dtype=float))
    return np.array([np.polyfit(lx, np.log(row), 1)[0] for row in np.atleast_2d(y)])


@experiment(depths=(6, 12, 24, 48), d_model=64, heads=4, length=16, batch=8, seeds=(0, 1, 2))
def init_gradient(cfg):
    variants = tuple(VARIANTS)
    data = {"depths": cfg.depths, "seeds": cfg.seeds, "nets": {}}
    for variant in variants:
        per_depth = [init_gradients(variant, depth, cfg.seeds, cfg.d_model, cfg.heads, length=cfg.length,
                                    batch=cfg.batch) for depth in cfg.depths]
        last = np.array([g[:, -1] for g in per_depth]).T  # (seeds, depths)
        mean = np.array([g.mean(1) for g in per_depth]).T
        deepest = per_depth[-1]
        data["nets"][VARIANTS[variant]] = {
            "by_layer": across_seeds(deepest),  # at the largest depth
            "last_layer": across_seeds(last), "mean_over_layers": across_seeds(mean),
            "last_layer_deepest": last[:, -1],
            "last_slope": loglog_slope(cfg.depths, last), "mean_slope": loglog_slope(cfg.depths, mean),
            # output half over input half of the deepest stack: > 1 means larger near the output
            "log10_last_over_first": np.log10(deepest[:, -1] / deepest[:, 0]),
            "log10_top_over_bottom_half": np.log10(deepest[:, cfg.depths[-1] // 2:].mean(1)
                                                   / deepest[:, :cfg.depths[-1] // 2].mean(1)),
        }
    fig, (left, right) = figure(ncols=2, height=4.8)
    deep = cfg.depths[-1]
    for variant, color in zip(variants, COLORS):
        net = data["nets"][VARIANTS[variant]]
        median_band(left, np.arange(1, deep + 1), net["by_layer"]["per_seed"], label=VARIANTS[variant], log=True,
                    color=color)
        median_band(right, cfg.depths, net["last_layer"]["per_seed"], log=True, color=color, marker="o")
    depths = np.asarray(cfg.depths, dtype=float)
    post0 = np.median(data["nets"]["Post-LN"]["last_layer"]["per_seed"][:, 0])
    pre0 = np.median(data["nets"]["Pre-LN"]["last_layer"]["per_seed"][:, 0])
    theory_line(right, depths, np.full_like(depths, post0), "theory (Post-LN): independent of L", color=COLORS[0])
    theory_line(right, depths, pre0 * np.sqrt(depths[0] / depths), "theory (Pre-LN): ∝ 1/√L", color=COLORS[1])
    right.set_xscale("log")
    right.set_xticks(depths, [str(d) for d in cfg.depths])
    right.minorticks_off()
    finish(left, f"layer l (of {deep}; input on the left)", r"$\|\partial L/\partial W^{(2,l)}\|$",
           f"At initialisation, {deep} layers", legend=False)
    finish(right, "depth L", r"$\|\partial L/\partial W^{(2,L)}\|$ of the last layer", "Last layer against depth",
           legend=False)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    n = data["nets"]
    return Result(data, [Plot(
        "init-gradient", fig,
        alt=f"Left, log scale: the gradient norm of each layer's second feed-forward weight at initialisation in a "
            f"{deep}-layer transformer encoder, median over {len(cfg.seeds)} seeds with the range shaded. Post-LN's "
            f"last layer has {power_of_ten(np.median(n['Post-LN']['log10_last_over_first']), 1)} times its first layer's "
            f"gradient; Pre-LN's ratio is {power_of_ten(np.median(n['Pre-LN']['log10_last_over_first']), 1)}, DeepNorm's "
            f"{power_of_ten(np.median(n['DeepNorm']['log10_last_over_first']), 1)}. Right, log-log: the last layer's gradient "
            f"against depth {', '.join(map(str, cfg.depths))}; slopes: Post-LN "
            f"{np.median(n['Post-LN']['last_slope']):.2f}, Pre-LN {np.median(n['Pre-LN']['last_slope']):.2f} "
            f"(theory 0 and −0.5, dashed).",
        caption=f"nn.TransformerEncoderLayer (d_model {cfg.d_model}, {cfg.heads} heads, feed-forward "
                f"{4 * cfg.d_model}, ReLU, PyTorch's initialisation; DeepNorm: residual $\\times(2L)^{{1/4}}$, value, output and "
                f"feed-forward weights Xavier-normal with gain $(8L)^{{-1/4}}$), a final LayerNorm and a linear head; one "
                f"batch of {cfg.batch} sort-task sequences of {cfg.length} tokens, cross-entropy; seeds "
                f"{listed(cfg.seeds)}, median line and min–max band.")])


# ---------------------------------------------------------------- 2. learning-rate warm-up

CHANCE = math.log(16)  # cross-entropy of a uniform guess over the 16 tokens


def final_loss(hist, last=5):
    """Mean training loss over the last `last` recorded points (nan if the run became non-finite)."""
    return np.nanmean(hist["loss"][:, -last:], axis=1) if hist["loss"].size else np.array([])


@experiment(depth=6, d_model=32, heads=4, length=8, vocab=16, batch=16, steps=200, warmup=50, lrs=(0.01, 0.03),
            every=10, seeds=(0, 1, 2))
def warmup(cfg):
    """Adam (β₂ 0.98) on the sort task, Post-LN and Pre-LN, each at two peak learning rates, with a linear
    warm-up of `warmup` steps and without, every seed; the models of one variant train together."""
    combos = [(lr, w, s) for lr in cfg.lrs for w in (0, cfg.warmup) for s in cfg.seeds]
    data = {"seeds": cfg.seeds, "chance": CHANCE, "runs": {}}
    fig, axes = figure(ncols=2, nrows=1, height=4.2, sharey=True)
    for variant, ls in (("post", "-"), ("pre", "--")):
        model = StackedTransformer([s for *_, s in combos], depth=cfg.depth, d_model=cfg.d_model, heads=cfg.heads,
                                   vocab=cfg.vocab, length=cfg.length, variant=variant)
        hist = train_stacked(model, [lr for lr, *_ in combos], [w for _, w, _ in combos], cfg.steps, batch=cfg.batch,
                             length=cfg.length, vocab=cfg.vocab, every=cfg.every)
        finals = final_loss(hist)
        for ax, lr in zip(axes, cfg.lrs):
            for w, color in ((0, COLORS[1]), (cfg.warmup, COLORS[0])):
                rows = [i for i, (l, ww, _) in enumerate(combos) if l == lr and ww == w]
                label = f"{VARIANTS[variant]}, " + (f"warm-up {w} steps" if w else "no warm-up")
                data["runs"][f"{label}, lr {lr}"] = {
                    "final_loss": finals[rows], "loss": across_seeds(hist["loss"][rows]),
                    "nan_at": [hist["nan_at"][i] for i in rows],
                    "stuck": finals[rows] > 0.9 * CHANCE}
                median_band(ax, hist["step"], hist["loss"][rows], label=label, color=color, ls=ls,
                            log=True)
    data["step"] = hist["step"]
    for ax, lr in zip(axes, cfg.lrs):
        ax.axhline(CHANCE, color="0.4", ls=":", lw=1.1, label="chance: ln 16")
        ax.axvline(cfg.warmup, color="0.6", lw=0.8)
        finish(ax, "training step", "training loss (cross-entropy)" if ax is axes[0] else "",
               f"peak learning rate {lr}", legend=ax is axes[1], fontsize=8.5, loc="lower left")
    r = data["runs"]
    key = lambda v, w, lr: f"{v}, " + (f"warm-up {cfg.warmup} steps" if w else "no warm-up") + f", lr {lr}"
    lo = cfg.lrs[0]
    return Result(data, [Plot(
        "warmup", fig,
        alt=f"Training loss on the sort task of a {cfg.depth}-layer transformer, log scale, median over "
            f"{len(cfg.seeds)} seeds with the range shaded, at peak learning rates {cfg.lrs[0]} (left) and "
            f"{cfg.lrs[1]} (right). At {lo}, Post-LN without warm-up ends at a median loss of "
            f"{np.median(r[key('Post-LN', 0, lo)]['final_loss']):.2f}, with warm-up at "
            f"{np.median(r[key('Post-LN', 1, lo)]['final_loss']):.2f}; Pre-LN at "
            f"{np.median(r[key('Pre-LN', 0, lo)]['final_loss']):.2f} and "
            f"{np.median(r[key('Pre-LN', 1, lo)]['final_loss']):.2f}. The dotted line is chance, ln 16.",
        caption=f"nn.TransformerEncoderLayer stacks, depth {cfg.depth}, d_model {cfg.d_model}, {cfg.heads} heads; "
                f"sort {cfg.length} tokens of {cfg.vocab}; Adam (β = 0.9, 0.98), batches of {cfg.batch}, "
                f"{cfg.steps} steps; warm-up: linear over the first {cfg.warmup} steps (grey line), then constant. "
                f"Solid: Post-LN, dashed: Pre-LN; seeds {listed(cfg.seeds)}, median and min–max band.")])


# ---------------------------------------------------------------- 3. rank collapse

def token_residual(x):
    """Dong et al.'s res(X) = X − 1xᵀ with the best x (the token mean, in the Frobenius norm), relative to ‖X‖;
    x (..., T, d) -> (...,)."""
    return (x - x.mean(-2, keepdim=True)).flatten(-2).norm(dim=-1) / x.flatten(-2).norm(dim=-1)


RANK_VARIANTS = {"attention only": (False, False), "attention + MLP": (False, True),
                 "attention + skip": (True, False), "attention + skip + MLP": (True, True)}


def rank_collapse(depth, seeds, d_model=64, heads=4, length=16, batch=8, data_seed=0):
    """Relative token residual after each layer of attention-only blocks (no LayerNorm), float64, at
    nn.TransformerEncoderLayer's initialisation: layer 0 is the input; returns {variant: (seeds, depth + 1)}."""
    model = StackedTransformer(seeds, depth=depth, d_model=d_model, heads=heads, length=length).double()
    gen = torch.Generator().manual_seed(data_seed)
    x0 = torch.randn(batch, length, d_model, generator=gen, dtype=torch.float64).expand(len(seeds), -1, -1, -1)
    out = {}
    with torch.no_grad():
        for name, (skip, mlp) in RANK_VARIANTS.items():
            x, res = x0, [token_residual(x0).median(-1).values]
            for p in model.layers:
                a = model.attention(x, p)
                x = x + a if skip else a
                if mlp:
                    f = model.feed_forward(x, p)
                    x = x + f if skip else f
                res.append(token_residual(x).median(-1).values)
            out[name] = torch.stack(res, 1).numpy()
    return out


FLOAT64_FLOOR = 1e-14  # below this a float64 relative residual is rounding, not signal


@experiment(depth=24, d_model=64, heads=4, length=16, batch=8, seeds=(0, 1, 2))
def rank_collapse_depth(cfg):
    res = rank_collapse(cfg.depth, cfg.seeds, cfg.d_model, cfg.heads, cfg.length, cfg.batch)
    data = {"seeds": cfg.seeds, "floor": FLOAT64_FLOOR, "nets": {}}
    fig, ax = figure(height=4.0)
    layers = np.arange(cfg.depth + 1)
    for (name, r), color, marker in zip(res.items(), COLORS, "osD^"):
        logs = np.log10(r)
        # the ratio log r(l+1) / log r(l) while both are above the rounding floor and below 0.5: 3 in Dong's bound
        ratios = [[logs[s, l + 1] / logs[s, l] for l in range(1, cfg.depth)
                   if r[s, l + 1] > FLOAT64_FLOOR and r[s, l] < 0.5] for s in range(len(r))]
        below = [float(np.argmax(row < FLOAT64_FLOOR)) if (row < FLOAT64_FLOOR).any() else math.nan for row in r]
        # log r(3) / log r(2), Dong et al.'s bound's exponent (3), where layer 3 is still above the rounding floor
        exps = [logs[s, 3] / logs[s, 2] for s in range(len(r))
                if cfg.depth >= 3 and r[s, 3] > FLOAT64_FLOOR and r[s, 2] < 0.5]
        data["nets"][name] = {"residual": across_seeds(r), "log10_residual": across_seeds(logs),
                              "exponent_2_to_3": exps, "n_exponents": len(exps),
                              "exponent_median": float(np.median(exps)) if exps else math.nan,
                              "log_ratios": ratios, "max_log_ratio": [max(x) if x else math.nan for x in ratios],
                              "layer_at_floor": below, "collapsed": [not math.isnan(b) for b in below],
                              "log10_last": logs[:, -1]}
        median_band(ax, layers, r, label=name, log=True, color=color, marker=marker, markersize=3)
    ax.axhspan(1e-17, FLOAT64_FLOOR, color="0.85", lw=0, label="float64 rounding (below 10⁻¹⁴)")
    ax.set_ylim(1e-17, 3)
    finish(ax, f"layer (0 = input; {cfg.depth} layers)", r"relative residual $\|X - \mathbf{1}\bar x^\top\| / \|X\|$",
           "Distance from rank 1 (all tokens equal), at initialisation", fontsize=8.5, loc="center right")
    n = data["nets"]
    return Result(data, [Plot(
        "rank-collapse", fig,
        alt=f"Log scale: how far the {cfg.length} token vectors are from all being equal, relative to their size, "
            f"after each of {cfg.depth} blocks at initialisation, median over {len(cfg.seeds)} seeds. Pure "
            f"attention falls to float64 rounding by layer {int(np.median(n['attention only']['layer_at_floor']))}, "
            f"attention with an MLP and no skip just as fast; with skip connections the residual stays near 1 "
            f"(after {cfg.depth} layers {power_of_ten(np.median(n['attention + skip']['log10_last']), 2)} without an MLP, "
            f"{power_of_ten(np.median(n['attention + skip + MLP']['log10_last']), 2)} with one).",
        caption=f"Blocks built from nn.TransformerEncoderLayer's weights and initialisation (d_model {cfg.d_model}, "
                f"{cfg.heads} heads, feed-forward {4 * cfg.d_model}, ReLU), without LayerNorm, in float64; input "
                f"{cfg.batch} sequences of {cfg.length} standard-normal token vectors; median over the sequences, "
                f"then median line and min–max band over seeds {listed(cfg.seeds)}.")])


# ---------------------------------------------------------------- 4. attention-logit growth and QK-layernorm

@experiment(depth=2, d_model=32, heads=4, length=8, vocab=16, batch=16, steps=200, warmup=50,
            lrs=(0.001, 0.003, 0.01, 0.03, 0.1), every=10, seeds=(0, 1, 2))
def logit_growth(cfg):
    """Pre-LN with and without QK-layernorm, a learning-rate sweep, every seed; Adam with warm-up."""
    combos = [(lr, s) for lr in cfg.lrs for s in cfg.seeds]
    data = {"lrs": cfg.lrs, "seeds": cfg.seeds, "chance": CHANCE, "nets": {}}
    fig, (left, right) = figure(ncols=2, height=4.0)
    top = cfg.lrs[-1]
    for (name, qk), color in zip((("Pre-LN", False), ("Pre-LN + QK-layernorm", True)), COLORS):
        model = StackedTransformer([s for _, s in combos], depth=cfg.depth, d_model=cfg.d_model, heads=cfg.heads,
                                   vocab=cfg.vocab, length=cfg.length, variant="pre", qk_norm=qk)
        hist = train_stacked(model, [lr for lr, _ in combos], [cfg.warmup] * len(combos), cfg.steps,
                             batch=cfg.batch, length=cfg.length, vocab=cfg.vocab, every=cfg.every)
        finals = final_loss(hist).reshape(len(cfg.lrs), len(cfg.seeds)).T  # (seeds, lrs)
        peak = np.nanmax(hist["max_logit"], axis=1).reshape(len(cfg.lrs), len(cfg.seeds)).T
        rows = [i for i, (lr, _) in enumerate(combos) if lr == top]
        data["nets"][name] = {"final_loss": across_seeds(finals), "max_logit": across_seeds(peak),
                              "logit_at_top_lr": across_seeds(hist["max_logit"][rows]),
                              "loss_at_top_lr": across_seeds(hist["loss"][rows]),
                              "nan_at": hist["nan_at"]}
        median_band(left, hist["step"], hist["max_logit"][rows], label=f"{name}, lr {top}", log=True, color=color)
        median_band(right, cfg.lrs, finals, label=name, color=color, marker="o")
    data["step"] = hist["step"]
    right.axhline(CHANCE, color="0.4", ls=":", lw=1.1, label="chance: ln 16")
    right.set_xscale("log")
    finish(left, "training step", "largest |attention logit| in the batch", "Attention logits during training")
    finish(right, "peak learning rate", f"final training loss (steps {cfg.steps - 4 * cfg.every}–{cfg.steps})",
           "Learning-rate sensitivity", loc="center")
    n = data["nets"]
    return Result(data, [Plot(
        "logit-growth", fig,
        alt=f"Left, log scale: the largest attention logit during training at learning rate {top}, median over "
            f"{len(cfg.seeds)} seeds with the range shaded; it reaches "
            f"{np.median(n['Pre-LN']['max_logit']['per_seed'][:, -1]):.0f} without QK-layernorm and "
            f"{np.median(n['Pre-LN + QK-layernorm']['max_logit']['per_seed'][:, -1]):.1f} with it. Right: final "
            f"training loss against peak learning rate ({', '.join(map(str, cfg.lrs))}) for both.",
        caption=f"Pre-LN nn.TransformerEncoderLayer stacks (depth {cfg.depth}, d_model {cfg.d_model}, {cfg.heads} "
                f"heads), with or without a LayerNorm (with its gain) on each head's queries and keys; sort "
                f"{cfg.length} tokens of {cfg.vocab}; Adam (β = 0.9, 0.98), {cfg.warmup} warm-up steps, batches of "
                f"{cfg.batch}, {cfg.steps} steps; seeds {listed(cfg.seeds)}, median and min–max band.")])
