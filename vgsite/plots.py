"""One plot style for the whole site, and the helpers every topic draws with.

Figures have an opaque white background so they read the same on the light and the dark theme.
"""
import numpy as np
from cycler import cycler
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

# Okabe & Ito's colour-blind safe palette.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=COLORS),
    "lines.linewidth": 1.8,
    "lines.markersize": 4,
    "svg.hashsalt": "vgsite",
}


def figure(ncols=1, nrows=1, width=7.2, height=3.8, **kw):
    """A new figure in the site style; returns (fig, ax) or (fig, flat array of axes). Not pyplot: no global state."""
    with rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, (axes[0, 0] if axes.size == 1 else axes.ravel())


def log_line(ax, x, y, label=None, zero_note=True, **kw):
    """Plot y on a log axis and mark entries that are exactly 0 (underflow) instead of dropping them.

    Zeros are drawn as downward triangles on the bottom edge of the axes, in the line's colour.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    positive = y > 0
    ax.set_yscale("log")
    shown = np.where(positive, y, np.nan)
    (line,) = ax.plot(x, shown, label=label, **kw)
    mark_underflow(ax, x, ~positive, line.get_color(), label if zero_note else None)
    return line


def mark_underflow(ax, x, mask, color, label=None):
    """Draw the points where a value underflowed (exactly 0, or log of it -inf) on the bottom edge."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        edge = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(np.asarray(x, dtype=float)[mask], np.full(mask.sum(), 0.02), transform=edge, marker="v", s=30,
                   color=color, clip_on=False, zorder=5, label=f"{label}: exactly 0 (underflow)" if label else None)


def finish(ax, xlabel, ylabel, title=None, legend=True, **legend_kw):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(**legend_kw)


def median_band(ax, x, per_seed, label=None, log=False, **kw):
    """The median over seeds as a line, the min–max range as a shaded band: a trained curve with its spread."""
    per_seed = np.asarray(per_seed, dtype=float)
    low, mid, high = per_seed.min(axis=0), np.median(per_seed, axis=0), per_seed.max(axis=0)
    if log:
        line = log_line(ax, x, mid, label=label, **kw)
    else:
        (line,) = ax.plot(x, mid, label=label, **kw)
    ax.fill_between(np.asarray(x, dtype=float), low, high, color=line.get_color(), alpha=0.2, lw=0)
    return line
