"""The small training loop and the data sets every topic trains on. Nothing is downloaded."""
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@lru_cache(maxsize=None)
def digits(test_fraction=0.25, seed=0):
    """scikit-learn's bundled 8x8 digits (1797 images), standardised; a fixed train/test split.

    Returns (x_train, y_train, x_test, y_test) with x of shape (n, 64).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return t(x[train]), t(data.target[train]), t(x[test]), t(data.target[test])


def accuracy(model, x, y) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was_training)
    return acc


def dataset_loss(model, x, y) -> float:
    """Mean cross-entropy over a whole data set (eval mode, no gradients): a final loss without minibatch noise."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        value = F.cross_entropy(model(x), y).item()
    model.train(was_training)
    return value


def fit(model, data, steps, lr=0.1, batch_size=64, optimizer="sgd", momentum=0.0, clip=None,
        every=10, on_step=None, seed=0):
    """Minibatch training with cross-entropy; returns the history sampled every `every` steps.

    on_step(step, model) runs after each backward pass, before the update, so it sees the gradients.
    clip is a max global gradient norm (torch.nn.utils.clip_grad_norm_).
    """
    x, y, x_test, y_test = data
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=lr, momentum=momentum) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr))
    history = {"step": [], "loss": [], "test_acc": [], "grad_norm": []}
    for step in range(steps + 1):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if on_step:
            on_step(step, model)
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
        if step % every == 0 or step == steps:
            history["step"].append(step)
            history["loss"].append(loss.item())
            history["grad_norm"].append(norm.item())
            history["test_acc"].append(accuracy(model, x_test, y_test))
        if step < steps:
            opt.step()
    return history


def fit_seeds(build, data, seeds, steps, hooks=None, **fit_kw):
    """Train one model per seed, each with its own initialisation and batches; returns [(model, history)].

    A claim about trained networks is only as good as its spread: train at least 3 seeds and quote the median
    and the range (across_seeds). hooks(seed) may return the on_step hook of that seed's run.
    """
    runs = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = build()
        on_step = hooks(seed) if hooks else None
        runs.append((model, fit(model, data, steps, seed=seed, on_step=on_step, **fit_kw)))
    return runs


def across_seeds(values) -> dict:
    """Median, min and max over the first axis (the seeds), with every seed's value kept."""
    values = np.asarray(values, dtype=float)
    return {"median": np.median(values, axis=0), "min": values.min(axis=0), "max": values.max(axis=0),
            "per_seed": values}


class _Stacked(torch.nn.Module):
    """Several DeepMLPs of one architecture as one module: each weight stacked along a new first axis (the seed),
    every layer one batched matmul. The per-seed models' parameters and buffers become views of the stacked ones,
    so they always hold the current weights (and, after `share_grads`, the current gradients)."""

    def __init__(self, models):
        super().__init__()
        first = models[0]
        if not hasattr(first, "blocks") or not all(isinstance(b.linear, torch.nn.Linear) for b in first.blocks):
            raise TypeError("fit_stacked trains DeepMLP-like models (blocks of Linear layers and a Linear head)")
        self.models, self.blocks = models, list(first.blocks)  # plain lists: not submodules
        params = [dict(m.named_parameters()) for m in models]
        buffers = [dict(m.named_buffers()) for m in models]
        self.names, self.buffer_names = list(params[0]), list(buffers[0])
        self.stacked = torch.nn.ParameterList(
            torch.nn.Parameter(torch.stack([p[n].detach() for p in params])) for n in self.names)
        self.buffers_ = [torch.stack([b[n] for b in buffers]) for n in self.buffer_names]
        self.param = dict(zip(self.names, self.stacked))
        self.buffer = dict(zip(self.buffer_names, self.buffers_))
        for i, (p, b) in enumerate(zip(params, buffers)):
            for n, param in p.items():
                param.data = self.param[n].data[i]
            for n, buffer in b.items():
                buffer.data = self.buffer[n][i]

    def share_grads(self):
        for i, m in enumerate(self.models):
            for p, s in zip(m.parameters(), self.stacked):
                p.grad = None if s.grad is None else s.grad[i]

    def linear(self, name, h):
        bias = self.param.get(f"{name}.bias")
        w = self.param[f"{name}.weight"].transpose(1, 2)
        return torch.bmm(h, w) if bias is None else torch.baddbmm(bias.unsqueeze(1), h, w)

    def norm(self, name, module, z, training):
        if isinstance(module, torch.nn.Identity):
            return z
        weight, bias = self.param.get(f"{name}.weight"), self.param.get(f"{name}.bias")
        if isinstance(module, torch.nn.LayerNorm):
            z = torch.nn.functional.layer_norm(z, module.normalized_shape, eps=module.eps)
        elif isinstance(module, torch.nn.BatchNorm1d):
            # one batch norm over seeds x channels: (S, B, C) -> (B, S*C), the running statistics as flat views
            s, b, c = z.shape
            flat = F.batch_norm(z.transpose(0, 1).reshape(b, s * c), self.buffer[f"{name}.running_mean"].view(-1),
                                self.buffer[f"{name}.running_var"].view(-1),
                                None if weight is None else weight.reshape(-1),
                                None if bias is None else bias.reshape(-1),
                                training, module.momentum, module.eps)
            if training:
                self.buffer[f"{name}.num_batches_tracked"].add_(1)
            return flat.view(b, s, c).transpose(0, 1)
        else:
            raise TypeError(f"fit_stacked does not know the normalisation {type(module).__name__}")
        if weight is not None:
            z = z * weight.unsqueeze(1) + bias.unsqueeze(1)
        return z

    def act(self, name, module, z):
        if isinstance(module, torch.nn.PReLU):
            a = self.param[f"{name}.weight"].unsqueeze(1)
            return torch.where(z >= 0, z, a * z)
        return module(z)

    def forward(self, x, training=True):
        h = x
        if "stem.weight" in self.param:  # a linear stem before the blocks (nets.ResidualMLP)
            h = self.linear("stem", h)
        for i, block in enumerate(self.blocks):
            pre = f"blocks.{i}"
            if hasattr(block, "stacked"):  # a block that computes itself on stacked weights (nets.BranchBlock)
                h = block.stacked(self, pre, h, training)
                continue
            if block.norm_first:
                z = self.linear(f"{pre}.linear", self.norm(f"{pre}.norm", block.norm, h, training))
            else:
                z = self.norm(f"{pre}.norm", block.norm, self.linear(f"{pre}.linear", h), training)
            out = self.act(f"{pre}.act", block.act, z)
            h = h + out if block.residual else out
        return self.linear("head", h)


def fit_stacked(build, data, seeds, steps, hooks=None, lr=0.1, batch_size=64, optimizer="sgd", momentum=0.0,
                clip=None, every=10):
    """fit_seeds for DeepMLPs, with the seeds trained together: the same models, initialisations, minibatches and
    optimizer as fit_seeds (so the same runs, up to float rounding), each layer one batched matmul over the seeds:
    on a CPU, where these small nets cost Python overhead more than arithmetic, 5 seeds take about 1.5 to 2.5
    times as long as one, not 5 times. Returns [(model, history)], the models holding the trained weights.

    hooks(seed) may return an on_step(step, model) for that seed, called after the backward pass as in fit; the
    model's parameters and .grad are views of the stacked ones, so a hook must not replace them or run backward
    passes of its own that accumulate into them.
    """
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build())
    net = _Stacked(models)
    on_steps = [hooks(seed) if hooks else None for seed in seeds]
    x, y, x_test, y_test = data
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    params = list(net.stacked)
    opt = (torch.optim.SGD(params, lr=lr, momentum=momentum) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr))
    n = len(seeds)
    histories = [{"step": [], "loss": [], "test_acc": [], "grad_norm": []} for _ in seeds]
    for step in range(steps + 1):
        idx = torch.stack([torch.randint(0, len(x), (batch_size,), generator=g) for g in gens])
        out = net(x[idx])
        losses = F.cross_entropy(out.flatten(0, 1), y[idx].flatten(), reduction="none").view(n, -1).mean(1)
        for p in params:  # zeroed, not freed: the models' .grad are views of them (opt.zero_grad is slower)
            if p.grad is not None:
                p.grad.zero_()
        losses.sum().backward()
        if step == 0:
            net.share_grads()
        if any(on_steps):
            for model, on_step in zip(models, on_steps):
                if on_step:
                    on_step(step, model)
        record = step % every == 0 or step == steps
        if clip or record:
            grads = [p.grad.flatten(1) for p in params if p.grad is not None]
            norms = torch.cat(grads, 1).norm(dim=1) if grads else torch.zeros(n)
        if clip:
            scale = (clip / (norms + 1e-6)).clamp(max=1.0)
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
        if record:
            with torch.no_grad():
                acc = (net(x_test.expand(n, *x_test.shape), training=False).argmax(2) == y_test).float().mean(1)
            for i, h in enumerate(histories):
                h["step"].append(step)
                h["loss"].append(losses[i].item())
                h["grad_norm"].append(norms[i].item())
                h["test_acc"].append(acc[i].item())
        if step < steps:
            opt.step()
    for m in models:
        for p in m.parameters():
            p.grad = None
    return list(zip(models, histories))


class DynamicLossScale:
    """Dynamic loss scaling for half-precision gradients (Micikevicius et al. 2018), the algorithm of
    torch.amp.GradScaler written out: multiply the loss by `scale` before the backward pass; afterwards, if any
    gradient is inf or nan, skip the step and multiply the scale by `backoff` (0.5); otherwise divide the gradients
    by the scale, take the step, and after `interval` good steps in a row multiply the scale by `growth` (2).
    """

    def __init__(self, init_scale=2.0 ** 16, growth=2.0, backoff=0.5, interval=2000):
        self.scale, self.growth, self.backoff, self.interval = float(init_scale), growth, backoff, interval
        self.good = 0

    def unscale(self, params) -> bool:
        """Divide the gradients by the scale in place; True when all are finite (the step may be taken)."""
        grads = [p.grad for p in params if p.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        if finite:
            for g in grads:
                g.div_(self.scale)
        return finite

    def update(self, finite: bool):
        if not finite:
            self.scale *= self.backoff
            self.good = 0
        else:
            self.good += 1
            if self.good == self.interval:
                self.scale *= self.growth
                self.good = 0


def fit_amp(model, data, steps, dtype=None, loss_scale=None, lr=1e-3, batch_size=64, optimizer="adam", every=10,
            on_step=None, seed=0):
    """fit with the forward and backward passes in a lower precision: torch.autocast on the CPU with `dtype`
    (torch.float16 or torch.bfloat16; None trains in float32). The weights stay float32 (the master copy); autocast
    runs the matrix products in `dtype` and the backward pass hands float16/bfloat16 gradients from layer to layer,
    cast to float32 only where they reach a float32 weight. loss_scale: None (no scaling), a number (a static
    scale) or a DynamicLossScale. A step whose gradients are not all finite is skipped when the loss is scaled
    (and taken, inf or nan and all, when it is not). History: step, loss, test_acc, grad_norm every `every` steps;
    scale and finite at every step. on_step(step, model) sees the unscaled gradients before the update.
    """
    x, y, x_test, y_test = data
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr))
    history = {"step": [], "loss": [], "test_acc": [], "grad_norm": [], "scale": [], "finite": []}
    for step in range(steps + 1):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        scale = (loss_scale.scale if isinstance(loss_scale, DynamicLossScale)
                 else 1.0 if loss_scale is None else float(loss_scale))
        (loss * scale).backward()
        if loss_scale is None:
            finite = all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)
        elif isinstance(loss_scale, DynamicLossScale):
            finite = loss_scale.unscale(params)
        else:
            finite = all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)
            if finite:
                for p in params:
                    if p.grad is not None:
                        p.grad.div_(scale)
        if on_step:
            on_step(step, model)
        history["scale"].append(scale)
        history["finite"].append(finite)
        if step % every == 0 or step == steps:
            grads = [p.grad.detach().double().flatten() for p in params if p.grad is not None]
            history["step"].append(step)
            history["loss"].append(loss.item())
            history["grad_norm"].append(torch.cat(grads).norm().item())
            history["test_acc"].append(accuracy(model, x_test, y_test))
        if step < steps and (finite or loss_scale is None):
            opt.step()
        if isinstance(loss_scale, DynamicLossScale):
            loss_scale.update(finite)
    return history
