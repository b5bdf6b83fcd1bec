"""The site builds strictly, shows every figure with alt text, typesets math and asks no other host."""
import re
from html.parser import HTMLParser

import pytest
from PIL import Image


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.math, self.urls = [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "math":
            self.math += 1
        for name in ("src", "href"):
            if tag in ("img", "script", "link") and attrs.get(name):
                self.urls.append(attrs[name])


def parse(path):
    parser = Images()
    parser.feed(path.read_text())
    return parser


def test_vanishing_page_shows_its_figures_with_alt_text(site_dir):
    page = parse(site_dir / "vanishing" / "index.html")
    figures = [img for img in page.images if "/figures/" in img["src"] and not img["src"].endswith(".dark.png")]
    darks = [img for img in page.images if img["src"].endswith(".dark.png")]
    assert [img["src"].replace(".dark.png", ".png") for img in darks] == [img["src"] for img in figures]
    assert [re.search(r"figures/vanishing/([\w-]+)\.png", img["src"]).group(1) for img in figures] == [
        "activation-derivatives", "gradient-norms", "depth-sweep"]
    for img in figures + darks:
        assert len(img["alt"]) > 40
        assert (site_dir / "vanishing" / img["src"]).resolve().is_file()
        # a screen of one pixel per CSS px fetches the 1x file, of the size the page shows it at
        small, one, full, two = img["srcset"].replace(",", "").split()
        assert (one, two, full) == ("1x", "2x", img["src"]) and small == img["src"].replace(".png", ".1x.png")
        with Image.open((site_dir / "vanishing" / small).resolve()) as shown:
            assert shown.size == (int(img["width"]), int(img["height"]))


def test_math_is_typeset_by_katex_not_raw_tex(site_dir):
    html = (site_dir / "vanishing" / "index.html").read_text()
    assert parse(site_dir / "vanishing" / "index.html").math > 10
    assert "\\frac" not in html and "\\partial" not in html


def test_math_needs_no_script_and_its_fonts_are_served_from_the_site(site_dir):
    """KaTeX ran at build time: pages carry its HTML and load no script for it; every font its stylesheet names
    is published beside it (offline, no CDN)."""
    html = (site_dir / "vanishing" / "index.html").read_text()
    assert html.count('class="katex"') > 10 and "katex.min.js" not in html
    assert '<annotation encoding="application/x-tex">' not in html  # no raw TeX for the search index to show
    css = (site_dir / "assets" / "katex" / "katex.min.css").read_text()
    fonts = set(re.findall(r"url\((fonts/[^)]+)\)", css))
    assert len(fonts) >= 15 and all(font.endswith(".woff2") for font in fonts)
    assert all((site_dir / "assets" / "katex" / font).is_file() for font in fonts)


def test_a_formula_katex_cannot_parse_fails_with_its_page_and_source():
    from vgsite import katex

    assert "mfrac" in katex.render(r"\frac{a}{b}", display=True)
    with pytest.raises(katex.MathError, match="expected '}'"):
        katex.render(r"\frac{a")


def test_katex_assets_are_unpacked_only_from_a_tarball_that_matches_its_checksum(tmp_path):
    import base64
    import hashlib
    import io
    import tarfile

    from vgsite import katex

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {"package/dist/katex.min.css": b"@font-face{src:url(fonts/A.woff2) format(\"woff2\"),"
                                                         b"url(fonts/A.woff) format(\"woff\")}",
                           "package/dist/fonts/A.woff2": b"font", "package/dist/fonts/A.ttf": b"ttf",
                           "package/dist/katex.js": b"script"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tgz = tmp_path / "katex.tgz"
    tgz.write_bytes(buf.getvalue())
    good = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    bad = "sha512-" + base64.b64encode(hashlib.sha512(b"other").digest()).decode()

    with pytest.raises(OSError, match="checksum"):
        katex.fetch(tgz.as_uri(), bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["katex.tgz"]
    out = katex.fetch(tgz.as_uri(), good, tmp_path / "out")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "fonts/A.woff2", "katex.min.css"]
    assert "A.woff)" not in (out / "katex.min.css").read_text()  # only the woff2 it ships is referenced
    with pytest.raises(OSError, match="cannot download"):
        katex.fetch((tmp_path / "missing.tgz").as_uri(), good, tmp_path / "again")


def test_the_search_index_holds_prose_not_code_settings_or_math_twice(site_dir):
    """Every page fetches the index: it keeps the prose, and leaves out notebook code, the folded run settings
    under each figure, and KaTeX's MathML copy of each formula (the snippet would read "L−1L−1")."""
    import json

    docs = json.loads((site_dir / "search" / "search_index.json").read_text())["docs"]
    text = {d["location"]: d["text"] for d in docs}
    everything = "\n".join(text.values())
    assert "from vgsite.lab import" not in everything
    assert "vgsite figures vanishing/" not in everything
    assert "L−1L−1" not in everything
    vanishing = " ".join(t for loc, t in text.items() if loc.startswith("vanishing/"))
    assert "slope" in vanishing and "σ′" in vanishing  # the prose and the formulas' text are still there, once


def test_no_page_loads_anything_from_another_host(site_dir):
    for path in site_dir.rglob("*.html"):
        for url in parse(path).urls:
            assert not re.match(r"(https?:)?//", url), f"{path}: {url}"


def test_every_module_has_a_code_page(site_dir):
    assert (site_dir / "code" / "vgsite.topics.vanishing" / "index.html").is_file()
    assert "gradient_norms" in (site_dir / "code" / "vgsite.topics.vanishing" / "index.html").read_text()


def test_a_broken_link_anchor_or_image_fails_the_build_and_keeps_the_old_site(site_dir, tmp_path):
    import shutil

    from conftest import ROOT, copy_project, run_vgsite

    project = copy_project(tmp_path / "project")
    shutil.rmtree(project / "figures")
    shutil.copytree(ROOT / "figures", project / "figures")  # up to date: only MkDocs runs
    shutil.copytree(site_dir, project / "site")  # the old site, as the last good build left it
    index = (project / "site" / "index.html").read_bytes()
    broken = {"[x](nosuchpage.md)": "nosuchpage.md", "[x](vanishing.md#no-such-anchor)": "#no-such-anchor",
              "![x](figures/nosuch.png)": "figures/nosuch.png"}
    page = project / "docs" / "index.md"
    page.write_text(page.read_text() + "".join(f"\n{line}\n" for line in broken))
    result = run_vgsite(project, "build", "-j", "1")
    assert result.returncode == 1
    assert "Site build failed" in result.stderr
    for target in broken.values():  # each is reported on its own: any one of them alone fails the strict build
        assert target in result.stderr, target
    assert (project / "site" / "index.html").read_bytes() == index
    assert not list(project.glob(".site-*"))


class MathText(HTMLParser):
    """The characters KaTeX lays out (inside class="katex-html"), which its fonts must draw."""
    VOID = {"br", "img", "input", "meta", "link", "hr", "wbr", "source"}

    def __init__(self):
        super().__init__()
        self.depth, self.chars = 0, set()  # depth: open elements inside a katex-html span, 0 when outside

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        if self.depth:
            self.depth += 1
        elif "katex-html" in (dict(attrs).get("class") or "").split():
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.chars |= set(data)


def test_the_published_katex_fonts_are_cut_down_and_keep_every_character_of_the_math(site_dir):
    from fontTools.ttLib import TTFont

    from vgsite import katex

    parser = MathText()
    for page in site_dir.rglob("*.html"):
        parser.feed(page.read_text())
    math = {ord(c) for c in parser.chars if not c.isspace()}
    assert len(math) > 50  # letters, digits, Greek, operators
    before = after = 0
    for original in sorted((katex.ASSETS / "fonts").glob("*.woff2")):
        shipped = site_dir / katex.SITE_DIR / "fonts" / original.name
        full, cut = TTFont(original), TTFont(shipped)
        lost = sorted(chr(c) for c in (math & full.getBestCmap().keys()) - cut.getBestCmap().keys())
        assert not lost, f"{original.name} lost {''.join(lost)}"
        assert cut["head"].modified == full["head"].modified  # no build time in it: every build, the same bytes
        before, after = before + original.stat().st_size, shipped.stat().st_size + after
    assert after < 0.75 * before, (before, after)


def test_a_code_page_lists_its_whole_module(site_dir):
    import html

    from conftest import ROOT

    source = (ROOT / "vgsite" / "topics" / "vanishing.py").read_text()
    page = (site_dir / "code" / "vgsite.topics.vanishing" / "index.html").read_text()
    blocks = re.findall(r"<pre\b.*?</pre>", page, re.S)
    assert len(blocks) == 1  # one block: Material's script sets up every code block, slow on a phone
    assert '<span class="k">' in blocks[0] and '<span class="n">' not in blocks[0]  # highlighted, no empty spans
    shown = html.unescape(re.sub(r"<[^>]+>", "", blocks[0]))
    assert [line for line in shown.splitlines() if line.strip()] == \
        [line for line in source.splitlines() if line.strip()]  # every line, in order, nothing added


def test_pages_spare_the_browser_whole_page_restyles_as_material_starts(site_dir):
    """docs_hooks: each table in a <div> of its own, the <html> classes and the color-scheme meta set in <head>,
    and no [data-md-color-switching] rule (the browser side is in test_browser's theme test)."""
    sheets = "".join(p.read_text() for p in (site_dir / "assets" / "stylesheets").glob("*.css"))
    assert "[data-md-color-scheme=slate]" in sheets  # Material's palette is there...
    assert "data-md-color-switching" not in sheets  # ...without the rule that restyles every element twice
    tables = 0
    for page in sorted(site_dir.rglob("*.html")):
        text = page.read_text()
        head, body = text.split("</head>", 1)
        assert 'document.documentElement.className = "js js-focus-visible"' in head, page
        assert 'meta.name = "color-scheme"' in head, page
        bare = re.findall(r"(.{0,24})<table>", body, re.S)
        assert all(before.endswith('<div class="vg-table">') for before in bare), (page, bare)
        tables += len(bare)
    assert tables >= 10  # the claims ledger, the numbers tables of the topic pages
