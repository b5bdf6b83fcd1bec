"""One plot style for the whole site, and the helpers every topic draws with.

Figures are drawn for the column they are shown in: at most WIDTH inches wide, shown at CSS_PX_PER_INCH (a
7.2-inch figure fills the 688 px content column), so a font of `pt` points is displayed at
pt × CSS_PX_PER_INCH / 72 px. The style's smallest font (the legend's 9 pt) is 12 px on the page; the site's
rule (tests/test_figures.py) is MIN_TEXT_PX = 11 px, i.e. no text below MIN_FONT_PT. `vgsite figures` saves each
figure twice, as drawn (light theme, white) and restyled by `dark()` for the dark theme, at 2× for high-density
screens, and records `meta()` (size, smallest font) in the experiment's record.
"""
import numpy as np
from cycler import cycler
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

# Okabe & Ito's colour-blind safe palette.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

WIDTH = 7.2  # inches: the widest figure; it fills the content column
COLUMN_PX = 688  # CSS px: Material's content column on a desktop
CSS_PX_PER_INCH = COLUMN_PX / WIDTH
MIN_TEXT_PX = 11  # the smallest text a figure may show, at its displayed size on a desktop
MIN_FONT_PT = MIN_TEXT_PX * 72 / CSS_PX_PER_INCH  # 8.29 pt

STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "auto",  # the figure's own: white, or the dark theme's background (see dark())
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "figure.titlesize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
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


def figure(ncols=1, nrows=1, width=WIDTH, height=3.8, **kw):
    """A new figure in the site style; returns (fig, ax) or (fig, flat array of axes). Not pyplot: no global state.

    `width` is at most WIDTH (7.2 in, the content column): a wider figure is shrunk on the page, its text with it
    (tests/test_figures.py fails it). More than two panels across are better stacked in rows.
    """
    with rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, (axes[0, 0] if axes.size == 1 else axes.ravel())


def mosaic(layout, width=WIDTH, height=3.8, **kw):
    """A figure whose panels span rows or columns (matplotlib's subplot_mosaic, e.g. "AA;BC": one wide panel
    above two); returns (fig, {name: ax})."""
    with rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplot_mosaic(layout, **kw)
    return fig, axes


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


# ---------------------------------------------------------------- recipes for the shapes that repeat

LAYER_LABEL = "layer ℓ (1 = next to the input)"
GRADIENT_LABEL = r"$\|\partial L/\partial h_\ell\|$, back-propagated gradient"
RELATIVE_LABEL = r"$\|\partial L/\partial h_\ell\|\,/\,\|\partial L/\partial h_L\|$"
RATIO_LABEL = r"$\log_{10}\,(\|\partial L/\partial h_1\|\,/\,\|\partial L/\partial h_L\|)$"


def theory_line(ax, x, y, label, color="0.35", log=False, **kw):
    """Theory's prediction: a dashed line labelled "theory: …" (label is what follows the colon; "" or None:
    no legend entry, for a figure that explains the dashes once)."""
    kw = {"ls": "--", "lw": 1.3, "color": color, "zorder": 1.5, **kw}
    label = None if not label else label if label.startswith("theory") else f"theory: {label}"
    if log:
        return log_line(ax, x, y, label=label, zero_note=False, **kw)
    (line,) = ax.plot(np.asarray(x, dtype=float), np.asarray(y, dtype=float), label=label, **kw)
    return line


def gradient_by_layer(ax, layers, values, label=None, theory=None, theory_label=None, per_seed=None,
                      xlabel=LAYER_LABEL, ylabel=GRADIENT_LABEL, **kw):
    """A per-layer gradient norm against the layer on a log axis, input layer on the left, underflow marked.

    `values` is one value per layer, or with `per_seed` (a seeds × layers array) the median is drawn with its
    range; `theory` (one value per layer) is drawn dashed in the same colour. Sets the labels; call `finish`
    (or ax.legend) for the legend once every line is drawn.
    """
    layers = np.asarray(layers, dtype=float)
    if per_seed is not None:
        line = median_band(ax, layers, per_seed, label=label, log=True, **kw)
    else:
        line = log_line(ax, layers, values, label=label, **kw)
    if theory is not None:
        theory_line(ax, layers, theory, theory_label if theory_label is not None else (label or "prediction"),
                    color=line.get_color(), log=True)
    layer_axis(ax, layers)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return line


def ratio_vs_depth(ax, depths, log10_ratio, label=None, theory=None, theory_label=None, per_seed=None,
                   xlabel="depth L (layers)", ylabel=RATIO_LABEL, **kw):
    """log₁₀ of the first layer's gradient over the last one's against the depth, with theory's line dashed.

    0 is level flow, below 0 vanishing, above 0 exploding: a grey line marks 0. Non-finite values (underflow
    to 0 gives -inf) are marked on the bottom edge.
    """
    depths = np.asarray(depths, dtype=float)
    kw = {"marker": "o", **kw}
    if per_seed is not None:
        line = median_band(ax, depths, per_seed, label=label, **kw)
        y = np.median(np.asarray(per_seed, dtype=float), axis=0)
    else:
        y = np.asarray(log10_ratio, dtype=float)
        (line,) = ax.plot(depths, np.where(np.isfinite(y), y, np.nan), label=label, **kw)
    mark_underflow(ax, depths, ~np.isfinite(y), line.get_color(), label)
    if theory is not None:
        theory_line(ax, depths, theory, theory_label if theory_label is not None else (label or "prediction"),
                    color=line.get_color())
    ax.axhline(0, color="0.5", lw=0.8, zorder=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return line


def layer_axis(ax, layers):
    """The layer axis runs from the input (layer 1) on the left to the output on the right."""
    layers = np.asarray(layers, dtype=float)
    if ax.xaxis_inverted():
        ax.invert_xaxis()
    if layers.size and layers.max() <= 12:
        ax.set_xticks(np.arange(int(layers.min()), int(layers.max()) + 1))


# ---------------------------------------------------------------- what the site needs to show a figure

def walk(artist):
    """The visible artists under `artist` (an invisible one hides its children)."""
    if not artist.get_visible():
        return
    yield artist
    for child in artist.get_children():
        yield from walk(child)


def texts(fig):
    """The Text artists a reader sees: visible, non-empty."""
    from matplotlib.text import Text

    return [a for a in walk(fig) if isinstance(a, Text) and a.get_text().strip()]


def meta(fig) -> dict:
    """What the page and the font-size test need to know about a drawn figure (call after it has been drawn)."""
    width, height = fig.get_size_inches()
    sizes = [t.get_fontsize() for t in texts(fig)]
    return {"width_in": round(float(width), 3), "height_in": round(float(height), 3),
            "css_width": round(float(width) * CSS_PX_PER_INCH), "css_height": round(float(height) * CSS_PX_PER_INCH),
            "min_font_pt": round(float(min(sizes)), 2) if sizes else None}


# Material's slate scheme: background hsl(225, 15%, 14%), text hsl(225, 15%, 90%) at 82 % over it.
DARK_BG = "#1e2129"
DARK_FG = "#c4c7cf"
DARK_MIN_CONTRAST = 4.5


def _luminance(rgb):
    c = np.asarray(rgb[:3], dtype=float)
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def _contrast(a, b):
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def dark_color(color, keep_white=False):
    """The dark theme's version of a light-theme colour: greys inverted between the dark background and the
    dark theme's text colour (black text turns light, a white fill turns into the background), colours lightened
    until they stand out from the dark background (contrast ≥ 4.5). Alpha is kept."""
    import colorsys

    from matplotlib.colors import to_rgb, to_rgba

    if color is None or (isinstance(color, str) and color.lower() == "none"):
        return color
    r, g, b, a = to_rgba(color)
    if a == 0:
        return (r, g, b, a)
    h, light, s = colorsys.rgb_to_hls(r, g, b)
    bg, fg = np.array(to_rgb(DARK_BG)), np.array(to_rgb(DARK_FG))
    if s < 0.15 or light > 0.97 or light < 0.03:  # a grey: black → text colour, white → background
        if keep_white and light > 0.97:
            return (r, g, b, a)
        v = 0.2126 * r + 0.7152 * g + 0.0722 * b
        new = bg + (fg - bg) * (1 - v)
        return (*new, a)
    while _contrast((r, g, b), bg) < DARK_MIN_CONTRAST and light < 0.85:
        light = min(0.85, light + 0.03)
        r, g, b = colorsys.hls_to_rgb(h, light, s)
    return (r, g, b, a)


def _lighten_to(color, contrast):
    """`color` mixed with white until it stands out from DARK_BG by `contrast` (alpha kept)."""
    from matplotlib.colors import to_rgb, to_rgba

    *rgb, a = to_rgba(color)
    rgb, bg = np.array(rgb), np.array(to_rgb(DARK_BG))
    for _ in range(20):
        if _contrast(rgb, bg) >= contrast:
            break
        rgb = rgb + (1 - rgb) * 0.08
    return (*rgb, a)


def dark(fig):
    """Restyle a drawn figure, in place, for the dark theme: background, text, ticks, spines, grid, legend frames
    and data colours (see dark_color). Colour-mapped images and meshes keep their colour maps, and what is drawn
    over them its colours."""
    from matplotlib.collections import Collection
    from matplotlib.image import AxesImage
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.text import Text

    # Lines, markers and notes drawn over a colour map were chosen to read on that map, which keeps its colours.
    on_maps = set()
    for ax in fig.axes:
        if ax.images or any(c.get_array() is not None for c in ax.collections):
            on_maps.update(id(a) for a in (*ax.lines, *ax.collections, *ax.texts, *ax.patches))
    data_lines = {id(line) for ax in fig.axes for line in ax.lines}
    for artist in list(walk(fig)):
        if id(artist) in on_maps:
            continue
        if isinstance(artist, Text):
            artist.set_color(dark_color(artist.get_color(), keep_white=True))
            patch = artist.get_bbox_patch()
            if patch is not None:
                patch.set_facecolor(dark_color(patch.get_facecolor()))
                patch.set_edgecolor(dark_color(patch.get_edgecolor()))
        elif isinstance(artist, Line2D):  # a white line is drawn on a colour map: it stays white
            # Marker colours left to "auto" follow the line's; only those set explicitly are mapped (once).
            explicit = [(c, set_) for c, set_ in ((artist._markerfacecolor, artist.set_markerfacecolor),
                                                  (artist._markeredgecolor, artist.set_markeredgecolor))
                        if not (isinstance(c, str) and c.lower() in ("none", "auto"))]
            color = dark_color(artist.get_color(), keep_white=True)
            if id(artist) in data_lines:  # a mid grey turns into a dim one: lighten data lines to 3:1 at least
                color = _lighten_to(color, 3.0)
            artist.set_color(color)
            for c, set_ in explicit:
                set_(dark_color(c))
        elif isinstance(artist, Collection):
            if artist.get_array() is not None:  # colour-mapped: the map decides
                continue
            faces, edges = artist.get_facecolor(), artist.get_edgecolor()
            if len(faces):
                artist.set_facecolor([dark_color(c) for c in faces])
            if len(edges) and not (isinstance(artist._original_edgecolor, str)
                                   and artist._original_edgecolor == "face"):
                artist.set_edgecolor([dark_color(c) for c in edges])
        elif isinstance(artist, Patch):
            artist.set_facecolor(dark_color(artist.get_facecolor()))
            artist.set_edgecolor(dark_color(artist.get_edgecolor()))
        elif isinstance(artist, AxesImage):
            continue
    for ax in fig.axes:
        ax.tick_params(which="both", colors=DARK_FG, labelcolor=DARK_FG)
    fig.set_facecolor(DARK_BG)
    if fig.get_layout_engine() is not None:  # already laid out by the first save: keep that layout, skip the work
        fig.set_layout_engine("none")
    return fig


SUPERSCRIPT = str.maketrans("0123456789-−+.", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁻⁺·")


def power(base, exponent, digits=0) -> str:
    """A power in clean Unicode for alt texts and labels: power(10, -21) == "10⁻²¹", power(2, 24) == "2²⁴" (never
    "10^-21")."""
    return f"{base}" + f"{exponent:.{digits}f}".translate(SUPERSCRIPT)


def power_of_ten(exponent, digits=0) -> str:
    return power(10, exponent, digits)


def listed(seeds) -> str:
    """The seeds of a run as its caption names them: "0, 1, 2"."""
    return ", ".join(map(str, seeds))


def fit_to_column(fig, width=WIDTH, min_pt=9.0):
    """Fit a figure drawn elsewhere (vgsite.health's, for readers' own runs) to the site's column: at most
    `width` inches wide (the height stays: the panels get narrower, not the text smaller) and no text under
    `min_pt` points."""
    w, h = fig.get_size_inches()
    if w > width:
        fig.set_size_inches(width, h)
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = axis.get_ticklabels()
            if labels and min(t.get_fontsize() for t in labels) < min_pt:
                ax.tick_params(axis=name, which="both", labelsize=min_pt)
    for text in texts(fig):
        if text.get_fontsize() < min_pt:
            text.set_fontsize(min_pt)
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if legend is not None and legend.get_title().get_fontsize() < min_pt:
            legend.get_title().set_fontsize(min_pt)
    return fig
