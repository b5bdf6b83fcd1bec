"""Figures made for the web (issue 11): drawn for the column they are shown in, so that no text is under 11 px
on a desktop; saved at 2× for high-density screens; a dark-theme twin of each; numbered on their page.

The rule for every figure in figures/ is checked from what `vgsite figures` recorded (vgsite.plots.meta: the
figure's size and its smallest font); one real figure is rendered and its text measured in the pixels.
"""
import io
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vgsite import FIGURES, docs_hooks, plots, runner
from vgsite.outputs import SCALE, png_bytes, png_dpi
from vgsite.registry import DARK_SUFFIX, load

DIGIT_HEIGHT = 0.72  # DejaVu Sans's digits are 0.729 em tall: the ink height of a tick label, per px of font size


def shown_figures():
    """(figure id, png path, its entry in the record) for every figure the manifest lists."""
    found = []
    for figure_id, (png, record_path) in sorted(runner.figure_index().items()):
        if png.is_file() and record_path.is_file():
            record = json.loads(record_path.read_bytes())
            found.append((figure_id, png, record["figures"].get(png.stem, {})))
    return found


FIGURE_LIST = shown_figures()


@pytest.mark.skipif(not FIGURE_LIST, reason="no figures yet: run `vgsite figures`")
@pytest.mark.parametrize("figure_id, png, meta", FIGURE_LIST, ids=[f[0] for f in FIGURE_LIST])
def test_every_figure_keeps_its_text_at_least_11_px_on_the_page(figure_id, png, meta):
    assert meta.get("min_font_pt") is not None, f"{figure_id}: no size recorded: run `vgsite figures {figure_id}`"
    assert meta["width_in"] <= plots.WIDTH + 1e-6, (
        f"{figure_id} is {meta['width_in']} in wide: it is shrunk into the {plots.COLUMN_PX} px column, "
        f"its text with it; draw it at most {plots.WIDTH} in wide (stack panels in rows)")
    smallest_px = meta["min_font_pt"] * plots.CSS_PX_PER_INCH / 72
    assert smallest_px >= plots.MIN_TEXT_PX, (
        f"{figure_id}: its smallest text is {meta['min_font_pt']} pt = {smallest_px:.1f} px on the page "
        f"(at least {plots.MIN_TEXT_PX} px: {plots.MIN_FONT_PT:.2f} pt); drop the fontsize= below the style's")
    with Image.open(png) as image:
        assert image.size[0] == pytest.approx(SCALE * meta["css_width"], abs=2), "the PNG is not 2× its shown size"
    dark = png.with_name(png.stem + DARK_SUFFIX)
    assert dark.is_file(), f"{figure_id} has no dark-theme twin {dark.name}"
    with Image.open(dark) as image:
        corner = image.convert("RGB").getpixel((0, 0))
    background = [int(plots.DARK_BG[i:i + 2], 16) for i in (1, 3, 5)]
    assert max(abs(a - b) for a, b in zip(corner, background)) <= 3, (  # the palette may round a level or two
        f"the dark twin's background is {corner}, not the dark theme's {plots.DARK_BG}")


# "h_L", "x_(t−1)", "q_{l}", "10^-25", "2^24"; not a code name such as d_model (say it in `code`, or as words).
PSEUDO_LATEX = re.compile(r"(?<![\w\\])[A-Za-zα-ω]_(?:\(|\{|[A-Za-z0-9](?![A-Za-z]))|(?:\d|\))\^[-−]?[\d¼½¾(]")


def plain_text(text: str) -> str:
    """Text outside $…$ math and `code`: what a reader sees as written."""
    return re.sub(r"\$[^$]*\$|`[^`]*`", "", text)


@pytest.mark.skipif(not FIGURE_LIST, reason="no figures yet: run `vgsite figures`")
def test_captions_and_alt_texts_use_real_math_or_unicode_not_pseudo_latex():
    bad = []
    for figure_id, _, meta in FIGURE_LIST:
        for field in ("caption", "alt"):
            for hit in PSEUDO_LATEX.finditer(plain_text(meta.get(field, ""))):
                bad.append(f"{figure_id} {field}: …{meta[field][max(0, hit.start() - 20):hit.end() + 20]}…")
    assert not bad, "pseudo-LaTeX (write $h_L$ in a caption, a word or Unicode in alt text):\n" + "\n".join(bad)
    # an alt text is an attribute: math in it is not typeset, and the page's math pass would break the <img> tag
    assert not [figure_id for figure_id, _, meta in FIGURE_LIST if "$" in meta.get("alt", "")]


def test_the_text_of_a_real_figure_measures_at_least_11_px_when_shown():
    """Render vanishing/activation-derivatives as `vgsite figures` does and measure its tick labels' ink."""
    exp = load()["vanishing/activation-derivatives"]
    with runner.run_setup(runner.run_seed(exp.config)):
        fig = exp().plots[0].fig
        png = png_bytes(fig)
    meta = plots.meta(fig)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float) / 255
    assert pixels.shape[1] == SCALE * meta["css_width"]
    assert meta["css_width"] <= plots.COLUMN_PX
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(png_dpi())
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    heights = []
    for label in fig.axes[0].get_yticklabels() + fig.axes[0].get_xticklabels():
        if not (label.get_visible() and re.fullmatch(r"[\d.−-]+", label.get_text())):
            continue
        box = label.get_window_extent(renderer)
        top, bottom = pixels.shape[0] - int(np.ceil(box.y1)), pixels.shape[0] - int(box.y0)
        crop = pixels[max(top, 0):bottom, max(int(box.x0), 0):int(np.ceil(box.x1))]
        rows = np.flatnonzero((crop < 0.6).any(axis=1))
        if rows.size:
            heights.append((rows[-1] - rows[0] + 1) / SCALE)  # CSS px on the page
    assert len(heights) >= 4
    digit_px = float(np.median(heights))  # a label cut by the axes' edge or a tick mark can read short
    assert digit_px >= DIGIT_HEIGHT * plots.MIN_TEXT_PX, (
        f"tick labels' digits are {digit_px:.1f} px tall on the page: text under {plots.MIN_TEXT_PX} px")


def test_the_dark_twin_has_light_text_and_keeps_the_data_apart():
    fig, ax = plots.figure(height=2.5)
    for i, color in enumerate(plots.COLORS):
        ax.plot([0, 1], [i, i + 1], color=color, label=f"line {i}")
    grey, = ax.plot([0, 1], [1, 0], color="0.2", marker="o")  # its markers follow the line: mapped once
    ax.fill_between([0, 1], [0, 0], [1, 1], color=plots.COLORS[0], alpha=0.2)
    ax.annotate("note", (0.5, 0.5), color="0.3")
    plots.finish(ax, "x", "y", "title")
    png_bytes(fig)
    plots.dark(fig)
    bg = plots.DARK_BG
    from matplotlib.colors import to_rgb

    for text in plots.texts(fig):
        assert plots._contrast(to_rgb(text.get_color()), to_rgb(bg)) >= 4.5, text.get_text()
    lines = [line.get_color() for line in ax.get_lines()]
    assert all(plots._contrast(to_rgb(c), to_rgb(bg)) >= 4.5 for c in lines)
    assert len({tuple(np.round(to_rgb(c), 2)) for c in lines[:len(plots.COLORS)]}) == len(plots.COLORS)
    assert to_rgb(fig.get_facecolor()) == to_rgb(bg) and to_rgb(ax.get_facecolor()) == to_rgb(bg)
    assert to_rgb(grey.get_markerfacecolor()) == to_rgb(grey.get_color())
    assert plots._contrast(to_rgb(grey.get_color()), to_rgb(bg)) >= 4.5


def test_figures_are_numbered_on_their_page_and_figref_links_them(monkeypatch):
    monkeypatch.setattr(docs_hooks, "figure_markdown", lambda fid, page, number: f"<F{number} {fid}>")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="topic.md"))
    text = ('As {{ figref("t/b") }} shows.\n{{ figure("t/a") }}\n{{ figure("t/b") }}\n'
            'And {{ figref("t/a") }}.')
    out = docs_hooks.figure_tags(text, page)
    assert out == ("As [Figure 2](#fig-t-b) shows.\n<F1 t/a>\n<F2 t/b>\nAnd [Figure 1](#fig-t-a).")
    with pytest.raises(docs_hooks.PluginError, match="names no figure on this page"):
        docs_hooks.figure_tags('{{ figref("t/c") }}', page)


def test_a_figure_on_the_page_has_both_themes_a_zoom_link_a_number_and_folded_settings():
    made = [f for f in FIGURE_LIST if f[1].with_name(f[1].stem + DARK_SUFFIX).is_file()]
    if not made:
        pytest.skip("no figures yet: run `vgsite figures`")
    figure_id, png, meta = made[0]
    page = SimpleNamespace(file=SimpleNamespace(src_uri=f"{png.parent.name}.md"), url=f"{png.parent.name}/")
    docs_hooks._index.clear()
    out = docs_hooks.figure_markdown(figure_id, page, 3)
    assert f'id="{docs_hooks.figure_anchor(figure_id)}"' in out
    light = re.search(r'<a class="vg-zoom vg-light" href="([^"]+\.png)"[^>]*><img src="([^"]+)"', out)
    dark = re.search(r'<a class="vg-zoom vg-dark" href="([^"]+\.dark\.png)"[^>]*><img src="([^"]+)"', out)
    assert light and dark and light.group(1) == light.group(2) and dark.group(1) == dark.group(2)
    # raw HTML is not rewritten by MkDocs: relative to the page's address (topic/), not to topic.md
    assert light.group(1) == f"../{FIGURES.name}/{png.parent.name}/{png.name}"
    assert f'width="{meta["css_width"]}" height="{meta["css_height"]}"' in out
    assert "Figure 3." in out and '<details class="vg-run"' in out
    assert FIGURES.name in out
