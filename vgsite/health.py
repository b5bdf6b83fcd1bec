"""Check your own network: per-layer gradient health, recorded inside your own training loop.

    from vgsite import health

    with health.watch(model, optimizer, every=10) as h:
        ...                      # your training loop, unchanged
    h.report()                   # verdicts, each naming the page of the site that explains it
    h.figure().savefig("health.png"); h.save("health.json")

What it records, per layer (each module that holds parameters of its own), every `every` steps:

- `grad_norm`: ‖∂L/∂θ‖ over the layer's weights, its matrices and kernels (a normalisation layer's scale and shift
  when it has no matrix); biases are left out (float64, so tiny gradients do not underflow to 0);
- `signal`: ‖∂L/∂y‖, the gradient arriving at the layer's output (the back-propagated signal);
- `weight_norm`: ‖θ‖, and `update_ratio`: ‖θ_after − θ_before‖ / ‖θ_before‖ for that step's update, measured
  from the weights themselves, so it holds for any optimizer (and reads 0 for a step a GradScaler skipped);
- `act_mean`, `act_std`: mean and spread of the layer's output;
- for each activation module: the share of saturated units (tanh, sigmoid: slope below 1% of the largest) or of
  dead units (ReLU, ReLU6: zero on every example of the batch);
- on every step (not only the sampled ones): the first module whose forward or backward pass produced a value
  that is not finite, and the step. Each step costs one check of the model's output and of the gradients; only
  when it fails is the step replayed with every module checked;
- the loss scale, when a GradScaler is given (gradients are divided by it, so the norms are the true ones).

A step is one forward pass of the model with gradients on (one call of `model(...)` outside `torch.no_grad()`).
If your loop calls the model more than once per update, call `h.step()` at the start of each step instead: once
called, the forward passes no longer count steps.

It needs only torch, numpy and matplotlib.
"""
import json
import math
import os
import sys

import numpy as np
import torch
from torch import nn

# The pages of the site that explain each verdict. VGSITE_URL points them at a published copy of the site.
PAGES = {
    "vanishing": ("Why gradients vanish", "vanishing"),
    "exploding": ("Exploding gradients and clipping", "clipping"),
    "not learning": ("What it does to training", "training"),
    "large updates": ("Exploding gradients and clipping", "clipping"),
    "forward collapse": ("Seeing it", "seeing"),
    "forward growth": ("Weight scale and initialisation", "init"),
    "saturated": ("Activations that do not saturate", "activations"),
    "dead units": ("Activations that do not saturate", "activations"),
    "non-finite": ("Check your network", "check-your-network"),
    "loss scale": ("Check your network", "check-your-network"),
}

# Verdict thresholds (log10 unless said otherwise). A healthy network gives none of them.
VANISH_DECADES = 2.0       # first weight layer's gradient below 1/100 of the last one's
EXPLODE_DECADES = 2.0      # ... or above 100 times it
GROWTH_DECADES = 2.0       # a layer's gradient norm reached 100 times its weights' norm
UPDATE_LOW = -5.0          # ‖Δθ‖/‖θ‖ below 1e-5 a step: the layer is not learning
UPDATE_HIGH = -1.0         # above 1e-1 a step: each update rewrites a tenth of the weights
FORWARD_DECADES = 1.0      # the activations' spread changes 10-fold from the first hidden layer to the last
SATURATED_SHARE = 0.5
DEAD_SHARE = 0.5

SATURATING = (nn.Tanh, nn.Sigmoid)
DYING = (nn.ReLU, nn.ReLU6)


def page_link(kind: str) -> str:
    title, slug = PAGES[kind]
    base = os.environ.get("VGSITE_URL")
    return f"{title}: {base.rstrip('/')}/{slug}/" if base else f"{title} (docs/{slug}.md)"


def watch(model: nn.Module, optimizer=None, scaler=None, every: int = 10, nonfinite_every_step: bool = True):
    """Attach to `model` (and optionally its optimizer and torch.amp.GradScaler); use as a context manager.

    every: record the layers every `every` steps. nonfinite_every_step: check every step for values that are not
    finite (the default), or only the sampled ones, which makes the steps in between cost nothing.
    """
    return Watch(model, optimizer, scaler, every, nonfinite_every_step)


def first_tensor(obj):
    if torch.is_tensor(obj):
        return obj
    if isinstance(obj, (tuple, list)):
        for item in obj:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def tensors_in(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from tensors_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item)


def weights_of(module) -> list:
    """A layer's weights: its parameters of two or more dimensions (matrices, kernels); all its parameters when it
    has none (the scales and shifts of a normalisation layer). Biases are left out of a layer's numbers: a bias's
    gradient is the back-propagated signal itself, without the layer's input, and would hide what the weights get."""
    params = [p for p in module.parameters(recurse=False) if p.requires_grad]
    return [p for p in params if p.dim() >= 2] or params


def finite(ts) -> bool:
    """Whether every entry of every tensor is finite. The norms of all of them (one fused call) are finite when all
    is, unless a norm overflows: only then is each entry checked."""
    ts = [t.detach() for t in ts if t.numel()]
    if not ts:
        return True
    norms = torch._foreach_norm(ts) if hasattr(torch, "_foreach_norm") else [t.norm() for t in ts]
    if math.isfinite(torch.stack(norms).sum().item()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in ts)


def l2(t) -> torch.Tensor:
    return torch.linalg.vector_norm(t.detach(), dtype=torch.float64)


def log10(x):
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(x)


def decades(x: float) -> str:
    """A ratio for the report, to one significant digit (6e-13): the scale is what matters; 0 and non-finite are
    said in words."""
    if x is None or math.isnan(x) or x == math.inf:
        return "not finite"
    if x == 0:
        return "exactly 0"
    return f"{x:.0e}"


class Watch:
    """The recorder `watch()` returns. Per-layer hooks are attached only during sampled steps; on every step it
    keeps one cheap check: the largest |entry| of the model's output and of every gradient. When that check finds
    a value that is not finite, it replays the step (same inputs, same weights, same random state, same gradient
    from the loss) with a check on every module, to name the first one that made it."""

    def __init__(self, model, optimizer=None, scaler=None, every=10, nonfinite_every_step=True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"health.watch needs a torch.nn.Module, not {type(model).__name__}")
        if int(every) < 1:
            raise ValueError("every must be at least 1")
        self.model, self.optimizer, self.scaler, self.every = model, optimizer, scaler, int(every)
        self.every_step = bool(nonfinite_every_step)
        names = {m: n or type(model).__name__ for n, m in model.named_modules()}
        self.layer_modules = {names[m]: m for m in model.modules()
                              if any(p.requires_grad for p in m.parameters(recurse=False))}
        self.leaf_modules = {names[m]: m for m in model.modules()
                             if not any(True for _ in m.children()) or names[m] in self.layer_modules}
        self.unit_modules = {names[m]: m for m in model.modules() if isinstance(m, SATURATING + DYING)}
        self.weighted = {n for n, m in self.layer_modules.items()
                         if any(p.dim() >= 2 for p in m.parameters(recurse=False))}
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.weights = {n: weights_of(m) for n, m in self.layer_modules.items()}
        self.step_index = -1
        self.steps = []          # the sampled steps
        self.order = []          # layers in the order of their first forward call
        self.series = {k: {n: [] for n in self.layer_modules}
                       for k in ("grad_norm", "signal", "weight_norm", "update_ratio", "act_mean", "act_std")}
        self.units = {n: {"kind": "saturated" if isinstance(m, SATURATING) else "dead", "share": []}
                      for n, m in self.unit_modules.items()}
        self.loss_scale = []
        self.nonfinite = None
        self.manual = False
        self._handles, self._step_handles = [], []
        self._sampling = False
        self._scale = 1.0
        self._pending = {}       # this sampled step's tensors, read out at the end of the step
        self._before = None      # (index in self.steps, weights before the update)
        self._inputs = None      # this step's (args, kwargs, random state): what a replay needs
        self._out_grads = {}     # the gradient the loss sent into each output tensor of the model
        self._queued = False
        self._replaying = False
        self._active = False

    # ---- attaching

    def __enter__(self):
        self.attach()
        return self

    def __exit__(self, *exc):
        self.finish_step()
        if self.optimizer is None and self._before is not None:
            index = self._before[0]
            self._measure_update()
            if all(self.series["update_ratio"][n][index] in (0.0, None) for n in self.layer_modules):
                for n in self.layer_modules:  # the loop ended before this step's update: nothing to measure
                    self.series["update_ratio"][n][index] = None
        self.detach()
        return False

    def attach(self):
        if self._active:
            return self
        self._active = True
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre, with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._root_post))
        if self.optimizer is not None and hasattr(self.optimizer, "register_step_post_hook"):
            self._handles.append(self.optimizer.register_step_post_hook(lambda *a: self._measure_update()))
        return self

    def detach(self):
        for handle in self._handles + self._step_handles:
            handle.remove()
        self._handles, self._step_handles = [], []
        self._active = False

    # ---- steps

    def step(self):
        """Mark the start of a training step by hand (then forward passes no longer count steps)."""
        self.manual = True
        self._new_step()

    def _root_pre(self, module, args, kwargs):
        if self._replaying or not torch.is_grad_enabled():
            return
        if not self.manual:
            self._new_step()
        if self.nonfinite is None and self._checking():
            cuda = [t.device for t in tensors_in((args, kwargs)) if t.is_cuda][:1]
            state = (torch.get_rng_state(), torch.cuda.get_rng_state(cuda[0]) if cuda else None, cuda)
            self._inputs = (args, kwargs, state)
            self._out_grads, self._queued = {}, False

    def _root_post(self, module, args, output):
        if self._replaying or not torch.is_grad_enabled() or self.step_index < 0:
            return
        if not self._checking():
            return
        outs = [t for t in tensors_in(output) if t.is_floating_point()]
        if self.nonfinite is None and outs:
            if not finite(outs):
                self._replay(None)
                return
        for i, t in enumerate(outs):
            if t.requires_grad:
                t.register_hook(self._root_grad(i))

    def _checking(self) -> bool:
        return self.every_step or self._sampling

    def _root_grad(self, i):
        def hook(grad):
            self._out_grads[i] = grad
            if not self._queued and not self._replaying:
                self._queued = True
                torch.autograd.Variable._execution_engine.queue_callback(self._after_backward)
        return hook

    def _after_backward(self):
        """End of the backward pass, before any update: check every gradient; read the sampled step's norms."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.nonfinite is None and grads:
            if not finite(grads):
                self._replay(dict(self._out_grads))
        if self._sampling and self._pending:
            for n in self.layer_modules:
                gs = [p.grad for p in self.weights[n] if p.grad is not None]
                if gs:
                    self._pending["grad"][n] = torch.stack([l2(g) for g in gs]).square().sum().sqrt()

    def _new_step(self):
        self.finish_step()
        self._measure_update()  # no optimizer hook fired: the update is whatever changed since the snapshot
        self.step_index += 1
        self._sampling = self.step_index % self.every == 0
        if not self._sampling:
            return
        self.steps.append(self.step_index)
        self._pending = {"grad": {}, "signal": {}, "mean": {}, "std": {}, "units": {}}
        self._scale = float(self.scaler.get_scale()) if self.scaler is not None and self.scaler.is_enabled() else 1.0
        if self.scaler is not None:
            self.loss_scale.append(self._scale)
        with torch.no_grad():
            before = {n: [p.detach().clone() for p in self.weights[n]] for n in self.layer_modules}
        self._before = (len(self.steps) - 1, before)
        for n in self.layer_modules:
            for key in self.series:
                self.series[key][n].append(None)
            self.series["weight_norm"][n][-1] = math.sqrt(sum(l2(p).item() ** 2 for p in before[n]))
        for n in self.units:
            self.units[n]["share"].append(None)
        for name, module in self.layer_modules.items():
            self._step_handles.append(module.register_forward_hook(self._layer_hook(name)))
        for name, module in self.unit_modules.items():
            self._step_handles.append(module.register_forward_hook(self._unit_hook(name)))

    def _measure_update(self):
        if self._before is None:
            return
        index, before = self._before
        self._before = None
        with torch.no_grad():
            for n in self.layer_modules:
                diff = sum(l2(p - b).item() ** 2 for p, b in zip(self.weights[n], before[n]))
                size = sum(l2(b).item() ** 2 for b in before[n])
                self.series["update_ratio"][n][index] = math.sqrt(diff / size) if size > 0 else None

    def finish_step(self):
        """Read out what the last sampled step recorded (called at the next step, at exit, and by report())."""
        for handle in self._step_handles:
            handle.remove()
        self._step_handles = []
        if self.step_index < 0 or not (self._sampling and self._pending):
            return
        p, i = self._pending, len(self.steps) - 1
        for key, series in (("grad", "grad_norm"), ("signal", "signal"), ("mean", "act_mean"), ("std", "act_std")):
            for n, value in p[key].items():
                if isinstance(value, list):  # a module called more than once: the sum of the squares, or the last
                    value = (torch.stack(value).square().sum().sqrt() if key == "signal" else value[-1])
                self.series[series][n][i] = value.item() / (self._scale if key in ("grad", "signal") else 1)
        for n, share in p["units"].items():
            self.units[n]["share"][i] = share.item()
        self._pending = {}

    # ---- the sampled step's hooks

    def _layer_hook(self, name):
        def hook(module, args, output):
            if self._replaying or not torch.is_grad_enabled() or not self._pending:
                return
            if name not in self.order:
                self.order.append(name)
            y = first_tensor(output)
            if y is None or not y.is_floating_point():
                return
            d = y.detach()
            self._pending["mean"].setdefault(name, []).append(d.mean(dtype=torch.float64)
                                                              if d.numel() else d.new_zeros((), dtype=torch.float64))
            self._pending["std"].setdefault(name, []).append(d.double().std() if d.numel() > 1
                                                             else d.new_zeros((), dtype=torch.float64))
            if y.requires_grad:
                y.register_hook(self._signal_hook(name))
        return hook

    def _signal_hook(self, name):
        def hook(grad):
            if self._pending and not self._replaying:
                self._pending["signal"].setdefault(name, []).append(l2(grad))
        return hook

    def _unit_hook(self, name):
        def hook(module, args, output):
            if self._replaying or not torch.is_grad_enabled() or not self._pending:
                return
            y = first_tensor(output).detach()
            if isinstance(module, nn.Tanh):
                share = ((1 - y.float() ** 2) < 0.01).float().mean()
            elif isinstance(module, nn.Sigmoid):
                share = ((y.float() * (1 - y.float())) < 0.01 * 0.25).float().mean()
            else:  # a dead unit is zero on every example; units on dim 1 of an image, the last dim otherwise
                dim = 1 if y.dim() == 4 else -1
                off = (y == 0).movedim(dim, -1).reshape(-1, y.shape[dim])
                share = off.all(0).float().mean()
            self._pending["units"][name] = share
        return hook

    # ---- naming the first module that made a non-finite value

    def _replay(self, out_grads):
        """Run this step's forward again with every module checked; then, when out_grads (the gradient the loss
        sent into the model's outputs) is given, its backward, checking the gradient each module passes back."""
        step = self.step_index
        self.nonfinite = {"step": step, "module": None, "pass": "forward" if out_grads is None else "backward",
                          "where": "not located (the replay did not reproduce it)"}
        if self._inputs is None:
            return
        args, kwargs, (cpu_state, cuda_state, cuda) = self._inputs
        events, calls, handles = [], [], []

        def forward_hook(name):
            def hook(module, a, output):
                calls.append(name)
                for t in tensors_in(a):
                    if t.is_floating_point() and not any(t is s for _, _, s in events):
                        events.append((name, "input", t))
                for t in tensors_in(output):
                    if t.is_floating_point():
                        events.append((name, "output", t))
            return hook

        buffers = [b.detach().clone() for b in self.model.buffers()]
        self._replaying = True
        try:
            for name, module in self.leaf_modules.items():
                handles.append(module.register_forward_hook(forward_hook(name)))
            rng = torch.get_rng_state()
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, cuda[0])
            with torch.enable_grad():
                output = self.model(*args, **kwargs)
            torch.set_rng_state(rng)
            for name, what, t in events:
                if not bool(torch.isfinite(t).all()):
                    where = "its output" if what == "output" else \
                        "its input (made by code outside any module, or by the data)"
                    self.nonfinite.update(module=name, pass_="forward", where=where)
                    self.nonfinite["pass"] = self.nonfinite.pop("pass_")
                    return
            if out_grads is None:
                return
            outs = [t for t in tensors_in(output) if t.is_floating_point()]
            pairs = [(outs[i], g) for i, g in out_grads.items() if i < len(outs) and outs[i].requires_grad]
            if not pairs:
                return
            for o, g in pairs:
                if not bool(torch.isfinite(g).all()):
                    self.nonfinite.update(module="the loss", where="the gradient it sends into the model's output")
                    return
            inner = [(name, t) for name, what, t in events if t.requires_grad and what == "output"]
            grads = torch.autograd.grad([o for o, _ in pairs], [t for _, t in inner], [g for _, g in pairs],
                                        allow_unused=True)
            bad = {i for i, g in enumerate(grads) if g is not None and not bool(torch.isfinite(g).all())}
            if bad:
                last = max(bad)  # nearest the output: the first one the backward pass made non-finite
                name = inner[last][0]
                consumers = [n for n, _ in inner[last + 1:] if n != name]
                culprit = consumers[0] if consumers else name
                self.nonfinite.update(module=culprit if consumers else "the loss",
                                      where=f"the gradient it passes back to {name}" if consumers
                                      else "the gradient it sends into the model's output")
                return
            params = [p for p in self.params]
            pgrads = torch.autograd.grad([o for o, _ in pairs], params, [g for _, g in pairs], allow_unused=True)
            owner = {id(p): n for n, m in self.layer_modules.items() for p in m.parameters(recurse=False)}
            for p, g in zip(params, pgrads):
                if g is not None and not bool(torch.isfinite(g).all()):
                    self.nonfinite.update(module=owner.get(id(p)), where="its parameters' gradient")
                    return
        except Exception as err:  # the replay is a best effort: the step is known even when the module is not
            self.nonfinite["where"] = f"not located (the replay failed: {type(err).__name__}: {str(err)[:80]})"
        finally:
            self._replaying = False
            for h in handles:
                h.remove()
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)

    # ---- what it found

    def layers(self) -> list:
        """Layer names, input side first: the order of the forward calls, then any layer never called."""
        return self.order + [n for n in self.layer_modules if n not in self.order]

    def to_dict(self) -> dict:
        self.finish_step()
        clean = lambda v: None if v is None or not math.isfinite(v) else v
        return {
            "steps": list(self.steps), "every": self.every, "steps_seen": self.step_index + 1,
            "layers": self.layers(), "weighted": [n for n in self.layers() if n in self.weighted],
            "types": {n: type(m).__name__ for n, m in self.leaf_modules.items()},
            **{k: {n: [clean(v) for v in self.series[k][n]] for n in self.layers()} for k in self.series},
            "not_finite": {k: {n: [v is not None and not math.isfinite(v) for v in self.series[k][n]]
                               for n in self.layers()} for k in ("grad_norm", "signal")},
            "units": {n: {"kind": u["kind"], "share": list(u["share"])} for n, u in self.units.items()},
            "loss_scale": list(self.loss_scale),
            "first_nonfinite": self.nonfinite,
            "optimizer": describe_optimizer(self.optimizer),
        }

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    def verdicts(self) -> list:
        return verdicts(self.to_dict())

    def text(self) -> str:
        return report_text(self.to_dict())

    def report(self, file=sys.stdout) -> None:
        """Print the report: the verdicts, each with the page that explains it, then the per-layer table."""
        print(self.text(), file=file)

    def figure(self, title=None):
        return figure(self.to_dict(), title)


def describe_optimizer(opt):
    if opt is None:
        return None
    lrs = sorted({g.get("lr") for g in opt.param_groups if isinstance(g.get("lr"), (int, float))})
    return {"name": type(opt).__name__, "lr": lrs}


# ---- verdicts and the report, from the numbers alone (a saved JSON gives the same report)

def matrix(record, key) -> np.ndarray:
    """steps × layers, NaN where nothing was recorded or the value was not finite."""
    rows = [[np.nan if v is None else v for v in record[key][n]] for n in record["layers"]]
    return np.array(rows, dtype=float).T.reshape(len(record["steps"]), len(record["layers"]))


def median_log(values) -> float:
    """Median of log10 over the samples; an exact 0 counts as -inf (it is the smallest), NaN is left out."""
    values = log10(values)
    values = values[~np.isnan(values) & (values != np.inf)]
    return float(np.median(values)) if values.size else math.nan


def verdicts(record: dict) -> list:
    """[{kind, message, page, value}]: what is wrong, in one line each; an empty list for a healthy run."""
    found = []

    def say(kind, message, value):
        value = float(value) if value is not None and math.isfinite(value) else None
        found.append({"kind": kind, "message": message, "page": page_link(kind), "value": value})

    layers, weighted = record["layers"], record["weighted"]
    number = {n: i + 1 for i, n in enumerate(layers)}
    types = record.get("types", {})
    label = lambda n: f"layer {number[n]} ({n}: {types[n]})" if n in types else f"layer {number[n]} ({n})"
    named = lambda n: f"{n} ({types[n]})" if n in types else (n or "a module")
    grad = matrix(record, "grad_norm")
    nf = record.get("first_nonfinite")
    if nf:
        where = nf["where"]
        for n in sorted(types, key=len, reverse=True):  # name the module the gradient went back to, with its type
            if where.endswith(f" to {n}"):
                where = where[: -len(n)] + named(n)
                break
        say("non-finite", f"first non-finite value: {named(nf['module'])} {nf['pass']} at step {nf['step']} "
                          f"({where})", nf["step"])
    if len(weighted) >= 2:
        first, last = layers.index(weighted[0]), layers.index(weighted[-1])
        gap = median_log(grad[:, first] / grad[:, last])
        if gap < -VANISH_DECADES:
            say("vanishing", f"vanishing: {label(weighted[0])} receives {decades(10 ** gap)} of "
                             f"{label(weighted[-1])}'s gradient", gap)
        elif gap > EXPLODE_DECADES:
            say("exploding", f"exploding: {label(weighted[0])} receives {decades(10 ** gap)} times "
                             f"{label(weighted[-1])}'s gradient", gap)
    size = matrix(record, "weight_norm")
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = log10(grad / size)  # the gradient measured in units of the weights it updates
    if np.isfinite(relative).any():
        i, j = np.unravel_index(np.nanargmax(np.where(np.isfinite(relative), relative, -np.inf)), relative.shape)
        if relative[i, j] > GROWTH_DECADES:
            say("exploding", f"exploding: at step {record['steps'][i]} the gradient of {label(layers[j])} is "
                             f"{decades(10 ** relative[i, j])} times the size of its weights", relative[i, j])
    ratios = matrix(record, "update_ratio")
    if np.isfinite(ratios).any():
        logs = {n: median_log(ratios[:, i]) for i, n in enumerate(layers) if n in weighted}
        low = [n for n, v in logs.items() if v < UPDATE_LOW]  # -inf: the update did not change the weights
        if low:
            worst = min(low, key=logs.get)
            others = f" and {len(low) - 1} more layer{'s' if len(low) > 2 else ''}" if len(low) > 1 else ""
            lost = " (the update is lost to rounding)" if logs[worst] == -math.inf else ""
            say("not learning", f"not learning: the update ratio of {label(worst)} is {decades(10 ** logs[worst])} "
                                f"a step{lost}{others} (below {decades(10 ** UPDATE_LOW)})", logs[worst])
        high = [n for n, v in logs.items() if v > UPDATE_HIGH]
        if high:
            worst = max(high, key=logs.get)
            say("large updates", f"large updates: each step changes {label(worst)} by {decades(10 ** logs[worst])} "
                                 f"of its size (above {decades(10 ** UPDATE_HIGH)})", logs[worst])
    spread = matrix(record, "act_std")
    hidden = weighted[:-1]
    if len(hidden) >= 3:
        a, b = layers.index(hidden[0]), layers.index(hidden[-1])
        change = median_log(spread[:, b] / spread[:, a])
        if change < -FORWARD_DECADES:
            say("forward collapse", f"forward signal collapses: the spread of {label(hidden[-1])}'s output is "
                                    f"{decades(10 ** change)} of {label(hidden[0])}'s", change)
        elif change > FORWARD_DECADES:
            say("forward growth", f"forward signal grows: the spread of {label(hidden[-1])}'s output is "
                                  f"{decades(10 ** change)} times {label(hidden[0])}'s", change)
    for n, u in record["units"].items():
        shares = np.array([np.nan if s is None else s for s in u["share"]], dtype=float)
        if np.isfinite(shares).any():
            share = float(np.nanmedian(shares))
            if u["kind"] == "saturated" and share > SATURATED_SHARE:
                say("saturated", f"saturated: {share:.0%} of the units of {n} are saturated (slope below 1% of "
                                 "the largest)", share)
            if u["kind"] == "dead" and share > DEAD_SHARE:
                say("dead units", f"dead units: {share:.0%} of the units of {n} are zero on every example", share)
    scale = [s for s in record.get("loss_scale", []) if s]
    if len(scale) >= 2 and scale[-1] < scale[0] / 2 ** 10:
        say("loss scale", f"loss scale collapsed from {scale[0]:g} to {scale[-1]:g}: most steps overflowed",
            scale[-1])
    return found


def sci(x) -> str:
    """One significant digit, as in 3e-04: enough to read a scale at a glance."""
    if x is None:
        return "-"
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else "inf"
    return "0" if x == 0 else f"{x:.0e}"


def report_text(record: dict, max_rows: int = 24) -> str:
    found = verdicts(record)
    steps = record["steps"]
    opt = record.get("optimizer")
    head = (f"vgsite health: {len(record['layers'])} layers, {record['steps_seen']} steps, sampled every "
            f"{record['every']} ({len(steps)} samples)"
            + (f"; optimizer {opt['name']}" if opt else "; no optimizer given"))
    lines = [head]
    if found:
        lines.append(f"{len(found)} problem{'s' if len(found) > 1 else ''}:")
        for v in found:
            lines.append(f"  ✗ {v['message']}")
            lines.append(f"      → {v['page']}")
    else:
        lines.append("no problems found: gradients, updates and activations are within the healthy ranges")
    lines.append("per layer, median over the samples (input side first):")
    lines.append(f"  {'#':>3} {'layer':<24} {'‖∂L/∂θ‖':>8} {'‖∂L/∂y‖':>8} {'‖θ‖':>8} {'update':>8} {'act std':>8}")
    layers = record["layers"]
    median = lambda key, n: (lambda v: float(np.median(v)) if v else None)(
        [x for x in record[key][n] if x is not None])
    rows = list(range(len(layers)))
    if len(rows) > max_rows:
        rows = rows[:max_rows // 2] + [None] + rows[-(max_rows // 2):]
    for i in rows:
        if i is None:
            lines.append(f"  {'…':>3}")
            continue
        n = layers[i]
        name = f"{n}: {record['types'][n]}" if n in record.get("types", {}) else n
        lines.append(f"  {i + 1:>3} {name[:24]:<24} " + " ".join(
            f"{sci(median(k, n)):>8}" for k in ("grad_norm", "signal", "weight_norm", "update_ratio", "act_std")))
    if record.get("loss_scale"):
        lines.append(f"loss scale: {record['loss_scale'][0]:g} at the first sample, {record['loss_scale'][-1]:g} "
                     "at the last")
    return "\n".join(lines)


def report_from_json(path) -> str:
    with open(path) as f:
        return report_text(json.load(f))


def figure(record: dict, title=None):
    """Layer × step heatmaps of the gradient norm and the update ratio, log colour scales; input side at the bottom.

    Grey cells: nothing recorded, exactly 0 (underflow) or not finite; a cross marks the first non-finite value.
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    layers, steps = record["layers"], np.asarray(record["steps"], dtype=float)
    height = min(9.0, 2.6 + 0.32 * len(layers)) if len(layers) > 6 else 3.6
    fig = Figure(figsize=(10.0, height), layout="constrained", facecolor="white")
    axes = fig.subplots(1, 2, sharey=True)
    if len(steps) > 1:
        half = np.diff(steps) / 2
        x_edges = np.concatenate([[steps[0] - half[0]], steps[:-1] + half, [steps[-1] + half[-1]]])
    else:
        x_edges = np.array([steps[0] - 0.5, steps[0] + 0.5]) if len(steps) else np.array([0.0, 1.0])
    y_edges = np.arange(0.5, len(layers) + 1)
    for ax, key, name in ((axes[0], "grad_norm", "gradient norm ‖∂L/∂θ‖"),
                          (axes[1], "update_ratio", "update ratio ‖Δθ‖ / ‖θ‖")):
        values = matrix(record, key) if len(steps) else np.full((1, len(layers)), np.nan)
        shown = np.ma.masked_where(~(np.isfinite(values) & (values > 0)), values)
        cmap = colormaps["viridis"].with_extremes(bad="0.82")
        good = shown.compressed()
        norm = LogNorm(good.min(), max(good.max(), good.min() * 10)) if good.size else LogNorm(1e-8, 1)
        mesh = ax.pcolormesh(x_edges, y_edges, shown.T, cmap=cmap, norm=norm)
        ax.grid(False)
        fig.colorbar(mesh, ax=ax, label=f"{name} (log scale)", shrink=0.95)
        ax.set_xlabel("training step")
        ax.set_title(name, fontsize=11)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    nf = record.get("first_nonfinite")
    if nf and nf["module"] in layers:
        for ax in axes:
            ax.scatter([nf["step"]], [layers.index(nf["module"]) + 1], marker="x", s=60, color="#D55E00",
                       linewidths=2, zorder=5, label=f"first non-finite: {nf['module']} {nf['pass']}")
        axes[1].legend(loc="upper right", fontsize=8, framealpha=0.9)
    ticks = list(range(1, len(layers) + 1))
    if len(layers) > 16:
        ticks = sorted({1, len(layers), *range(1, len(layers) + 1, max(1, len(layers) // 8))})
    types = record.get("types", {})
    axes[0].set_yticks(ticks, [(f"{layers[t - 1]} ({types[layers[t - 1]]})" if layers[t - 1] in types
                                else layers[t - 1])[:26] for t in ticks], fontsize=8)
    axes[0].set_ylabel("layer (input side at the bottom)")
    title = title or "vgsite health: layer × step (grey: not recorded, 0 or not finite)"
    if nf:
        where = f"{nf['module']} ({types[nf['module']]})" if nf["module"] in types else nf["module"]
        title += f"\nfirst non-finite value: {where} {nf['pass']} at step {nf['step']}"
    fig.suptitle(title, fontsize=11)
    return fig


# ---- a quick look from the command line: vgsite health MODULE:FUNCTION

class BadInput(ValueError):
    """What is wrong with what the reader's function gave back: one line for the command line."""


def quick_look(got, steps=20, every=1, lr=None):
    """Run `steps` training steps on what a reader's function returned and return the Watch.

    It returns (model, batch) with batch = (inputs, targets) or just inputs, or (model, loss_fn, loader).
    Without a loss function: cross-entropy for integer targets, mean squared error for float ones, and the mean
    output when there are no targets. The optimizer is SGD (lr 0.01 unless given).
    """
    if not isinstance(got, tuple) or len(got) not in (2, 3) or not isinstance(got[0], nn.Module):
        raise BadInput("the function must return (model, batch) or (model, loss_fn, loader), with model a "
                       f"torch.nn.Module; it returned {describe(got)}")
    model = got[0]
    if len(got) == 2:
        batch = got[1]
        loss_fn = None
        batches = lambda: iter(lambda: batch, None)
    else:
        loss_fn, loader = got[1], got[2]
        if not callable(loss_fn):
            raise BadInput(f"the loss function it returned is not callable: {describe(loss_fn)}")
        try:
            iter(loader)
        except TypeError:
            raise BadInput(f"the loader it returned is not iterable: {describe(loader)}") from None

        def batches():
            while True:
                empty = True
                for b in loader:
                    empty = False
                    yield b
                if empty:
                    raise BadInput("the loader it returned gave no batch")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BadInput("the model has no trainable parameters")
    opt = torch.optim.SGD(params, lr=lr or 0.01)
    model.train()
    source = batches()
    with watch(model, opt, every=every) as h:
        for _ in range(steps):
            b = next(source)
            inputs, targets = split_batch(b)
            out = model(*inputs)
            loss = compute_loss(out, targets, loss_fn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return h


def split_batch(b):
    if torch.is_tensor(b):
        return (b,), None
    if isinstance(b, (tuple, list)) and b and all(torch.is_tensor(t) for t in b):
        if len(b) == 1:
            return (b[0],), None
        return tuple(b[:-1]), b[-1]
    raise BadInput(f"a batch must be a tensor or a tuple of tensors (inputs..., targets); got {describe(b)}")


def compute_loss(out, targets, loss_fn):
    import torch.nn.functional as F

    y = first_tensor(out)
    if y is None:
        raise BadInput(f"the model's output holds no tensor: {describe(out)}")
    try:
        if loss_fn is not None:
            loss = loss_fn(out, targets) if targets is not None else loss_fn(out)
        elif targets is None:
            loss = y.float().mean()
        elif targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8) and y.dim() >= 2:
            loss = F.cross_entropy(y, targets.long())
        else:
            loss = F.mse_loss(y, targets.to(y.dtype).reshape(y.shape))
    except (RuntimeError, ValueError, TypeError) as err:
        raise BadInput(f"cannot compute a loss from the model's output: {str(err).splitlines()[0]}") from None
    if not torch.is_tensor(loss) or loss.numel() != 1:
        raise BadInput(f"the loss must be a single number, got {describe(loss)}")
    return loss


def describe(obj) -> str:
    if torch.is_tensor(obj):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}: ({', '.join(type(o).__name__ for o in obj[:4])}" \
               f"{', …' if len(obj) > 4 else ''})"
    return f"a value of type {type(obj).__name__}"


def spreads(record: dict) -> dict:
    """Per sampled step, how far apart the layers are, in decades (log10), hidden weight layers only:
    forward: spread of the last hidden layer's output over the first's; backward: back-propagated signal at the first
    over the last; gradient: weight gradient at the first over the last; update: largest over smallest update ratio."""
    layers, hidden = record["layers"], record["weighted"][:-1] or record["weighted"]
    cols = [layers.index(n) for n in hidden]
    first, last = cols[0], cols[-1]
    act, sig, grad, upd = (matrix(record, k) for k in ("act_std", "signal", "grad_norm", "update_ratio"))
    with np.errstate(divide="ignore", invalid="ignore"):
        upd_hidden = upd[:, cols]
        return {"step": list(record["steps"]),
                "forward": log10(act[:, last] / act[:, first]),
                "backward": log10(sig[:, first] / sig[:, last]),
                "gradient": log10(grad[:, first] / grad[:, last]),
                "update": spread_of(upd_hidden)}


def spread_of(values) -> np.ndarray:
    """log10 of the largest over the smallest of each row; NaN for a row with nothing recorded."""
    out = np.full(values.shape[0], np.nan)
    for i, row in enumerate(values):
        row = row[np.isfinite(row) & (row > 0)]
        if row.size:
            out[i] = np.log10(row.max() / row.min())
    return out


def trend_figure(records, histories=None, labels=None, title=None):
    """Several runs (seeds) over training: the loss (when histories with 'step' and 'loss' are given) and how far
    apart the first and last hidden layers are, forward and backward, in decades. One thin line per run."""
    from matplotlib.figure import Figure

    colors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"]
    panels = [("forward", "forward signal: spread of the last hidden layer's output over the first's"),
              ("backward", "back-propagated signal ‖∂L/∂y‖: first hidden layer over the last"),
              ("gradient", "weight gradient ‖∂L/∂W‖: first hidden layer over the last"),
              ("update", "update ratio ‖ΔW‖/‖W‖: largest over smallest of the hidden layers")]
    rows = len(panels) + (1 if histories else 0)
    fig = Figure(figsize=(8.0, 1.6 * rows + 0.9), layout="constrained", facecolor="white")
    axes = fig.subplots(rows, 1, sharex=True)
    labels = labels or [f"run {i + 1}" for i in range(len(records))]
    if histories:
        ax = axes[0]
        for i, h in enumerate(histories):
            ax.plot(h["step"], h["loss"], color=colors[i % len(colors)], lw=1.2, label=labels[i])
        ax.axhline(math.log(10), color="0.3", ls=":", lw=1)
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8, ncols=len(records), loc="lower left")
    for ax, (key, name) in zip(axes[-len(panels):], panels):
        for i, r in enumerate(records):
            sp = spreads(r)
            ax.plot(sp["step"], sp[key], color=colors[i % len(colors)], lw=1.2, marker="o", ms=2)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_ylabel("log₁₀ ratio")
    axes[-1].set_xlabel("training step")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.suptitle(title or "vgsite health: how far apart the layers are (0: level)", fontsize=11)
    return fig
