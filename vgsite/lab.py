"""What a companion notebook imports: `setup()`, `run_experiment(...)`, `show(...)`; and the one run setup.

`run_setup` is the single place where a run's conditions are set: one torch thread, a fixed seed (random, numpy,
torch), the site's plot style, and the torch device. `vgsite figures` (vgsite/runner.py), the notebooks and the
tests all use it, so a number or a figure is the same wherever it is computed.
"""
import base64
import html
import importlib
import os
import pickle
import random
import re
from contextlib import contextmanager, nullcontext

from vgsite.outputs import SCALE, png_bytes

THREADS = 1
# The site's notebook executor (vgsite/notebooks.py) sets DARK_FIGURES_ENV, and show() then adds the dark theme's
# copy of each figure to the output under DARK_PNG. Jupyter and nbconvert show the types they know, so a reader's
# notebook looks the same; the site's page shows the copy for its theme.
DARK_FIGURES_ENV = "VGSITE_DARK_FIGURES"
DARK_PNG = "image/vnd.vgsite.dark+png"


def seed_everything(seed: int):
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_seed(config: dict) -> int:
    """The seed a run starts from: its `seed` setting, else 0 (experiments with `seeds` seed each run)."""
    return config.get("seed", 0)


@contextmanager
def run_setup(seed: int = 0, device: str | None = None, threads: int = THREADS):
    """One torch thread, a fixed seed, the site's plot style and (if given) the device, for the `with` body."""
    import torch
    from matplotlib import rc_context

    from vgsite.plots import STYLE

    torch.set_num_threads(threads)
    seed_everything(seed)
    # torch.device(...) as a context routes every torch call through a Python hook (a TorchFunctionMode): a fifth
    # of the time of the small recurrent experiments. The CPU is torch's default device already.
    target = torch.device(device) if device else None
    with rc_context(STYLE), (target if target is not None and target.type != "cpu" else nullcontext()):
        yield


# ---------------------------------------------------------------- inside a notebook

def setup(seed: int = 0):
    """The site's plot style for every figure, one torch thread and a fixed seed: what `vgsite figures` uses."""
    import matplotlib
    import torch

    from vgsite.plots import STYLE

    matplotlib.rcParams.update(STYLE)
    torch.set_num_threads(THREADS)
    seed_everything(seed)


def run_experiment(exp_id: str, show_only=None, **overrides):
    """Run one registered experiment (`"vanishing/depth-sweep"`) with some settings changed; show its figures.

    Seeds and style as in `vgsite figures`. show_only: names of the figures to show (default: all of them).
    Returns the Result: `.data` holds the numbers it plotted, `.plots` every figure.
    """
    from vgsite.registry import EXPERIMENTS

    importlib.import_module(f"vgsite.topics.{exp_id.split('/')[0]}")  # only this topic, not every one
    exp = EXPERIMENTS[exp_id]
    with run_setup(run_seed({**exp.config, **overrides})):
        result = exp(**overrides)
    for plot in result.plots:
        if show_only is None or plot.name in show_only:
            show(plot)
    return result


def show(obj, alt: str = "", caption: str = ""):
    """Display a figure (a matplotlib Figure, a Plot, or every Plot of a Result) as a PNG with alt text.

    The PNG bytes are those `vgsite figures` would write (vgsite.outputs.png_bytes).
    """
    from IPython.display import display
    from matplotlib import rc_context

    from vgsite.plots import STYLE, dark

    plots = getattr(obj, "plots", None)
    if plots is not None:
        for plot in plots:
            show(plot)
        return
    fig = getattr(obj, "fig", obj)
    alt = alt or getattr(obj, "alt", "") or describe(fig)
    caption = caption or getattr(obj, "caption", "")
    with rc_context(STYLE):
        png = png_bytes(fig)
        night = png_bytes(dark(pickle.loads(pickle.dumps(fig)))) if os.environ.get(DARK_FIGURES_ENV) else None
    data = base64.b64encode(png).decode()
    # Drawn at 2x for sharp screens: shown at its CSS size, the one the site shows it at.
    width, height = (int.from_bytes(png[i:i + 4], "big") // SCALE for i in (16, 20))
    tag = (f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" width="{width}" height="{height}">')
    figure = f'<figure class="vg-figure">{tag}' + (
        f"<figcaption>{caption_html(caption)}</figcaption>" if caption else "") + "</figure>"
    bundle = {"text/html": figure, "image/png": data, "text/plain": alt}
    if night is not None:
        bundle[DARK_PNG] = base64.b64encode(night).decode()
    display(bundle, raw=True)


def caption_html(caption: str) -> str:
    """A caption's $…$ math marked as pymdownx.arithmatex marks it: Jupyter typesets `\\(…\\)` in HTML output,
    and the site's build typesets it with KaTeX like the pages' own math."""
    parts = re.split(r"\$([^$]+)\$", caption)
    return "".join(html.escape(part) if i % 2 == 0 else f'<span class="arithmatex">\\({html.escape(part)}\\)</span>'
                   for i, part in enumerate(parts))


def describe(fig) -> str:
    """Default alt text: what each panel plots."""
    parts = []
    for ax in fig.axes:
        what = f"{ax.get_ylabel() or 'y'} against {ax.get_xlabel() or 'x'}"
        parts.append(f"{ax.get_title()}: {what}" if ax.get_title() else what)
    return "Plot of " + "; ".join(parts) if parts else "A figure"
