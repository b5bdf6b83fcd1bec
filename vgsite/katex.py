"""Math typeset at build time by KaTeX: HTML that needs no script to read, with TeX's spacing, and fonts the site
ships itself (no CDN).

KaTeX runs in this process (pykatex embeds KaTeX 0.16.22 in QuickJS). Its stylesheet and fonts, of the same
release, come from npm's tarball: `make install` runs `python -m vgsite.katex fetch` once, which checks the
tarball against the sha512 npm publishes and keeps only what a browser needs (the CSS and the woff2 fonts).
When the site is built, the published fonts are cut down to the characters its pages use (`subset_fonts`): a
page's math then fetches about 35 kB of fonts instead of 80.
"""
import base64
import functools
import hashlib
import html
import io
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

VERSION = "0.16.22"  # the KaTeX inside pykatex 0.1.1 (requirements.lock): stylesheet and fonts must match it
TARBALL = f"https://registry.npmjs.org/katex/-/katex-{VERSION}.tgz"
INTEGRITY = "sha512-XCHRdUw4lf3SKBaJe4EvgqIuWwkPSo9XoeO8GjQW94Bp7TWv9hNhzZjZ+OH9yf1UmLygb7DIT5GSFQiyt16zYg=="
ASSETS = Path(sys.prefix) / f"katex-{VERSION}"  # in the virtual environment: `make distclean` removes it
STYLESHEET = "katex.min.css"
SITE_DIR = "assets/katex"  # where the site serves them
TEX_ANNOTATION = re.compile(r'<annotation encoding="application/x-tex">.*?</annotation>', re.S)


class MathError(ValueError):
    """A formula KaTeX cannot typeset."""


def render(tex: str, display: bool = False) -> str:
    """HTML for one formula: KaTeX's layout, with MathML beside it for screen readers."""
    import pykatex

    try:
        typeset = pykatex.renderToString(tex, displayMode=display, output=pykatex.OUTPUT_HTML_AND_MATHML,
                                         throwOnError=True, strict=pykatex.STRICT_IGNORE)
    except pykatex.ParseError as err:
        raise MathError(str(err).removeprefix("KaTeX parse error: ")) from None
    # The TeX source KaTeX keeps in the MathML is read by no screen reader, but the search index would show it;
    # and the index takes the formula's text once, from the HTML, not twice ("L−1L−1").
    return TEX_ANNOTATION.sub("", typeset).replace('<span class="katex-mathml">',
                                                   '<span class="katex-mathml" data-search-exclude="true">')


def assets() -> list[Path]:
    """The stylesheet and fonts to publish; empty if they have not been fetched."""
    if not (ASSETS / STYLESHEET).is_file():
        return []
    return [ASSETS / STYLESHEET] + sorted((ASSETS / "fonts").glob("*.woff2"))


def fetch(url: str = TARBALL, integrity: str = INTEGRITY, into: Path = ASSETS) -> Path:
    """Download KaTeX's release from npm once, check it, and unpack its CSS and woff2 fonts into `into`."""
    if (into / STYLESHEET).is_file():
        return into
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as err:
        raise OSError(f"cannot download KaTeX {VERSION} from {url} ({err}); the site's math needs its "
                      f"stylesheet and fonts") from None
    algorithm, _, expected = integrity.partition("-")
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
        raise OSError(f"{url} does not match its published {algorithm} checksum; not unpacked")
    into.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".katex-", dir=into.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("package/dist/")
                keep = name == STYLESHEET or (name.startswith("fonts/") and name.endswith(".woff2")
                                               and "/" not in name[6:])
                if member.isfile() and keep:
                    (scratch / name).parent.mkdir(exist_ok=True)
                    (scratch / name).write_bytes(tar.extractfile(member).read())
        css = scratch / STYLESHEET
        if not css.is_file():
            raise OSError(f"{url} has no dist/{STYLESHEET}")
        # Only woff2 is shipped (every browser the theme supports reads it): drop the woff and ttf fallbacks.
        css.write_text(re.sub(r',url\(fonts/[^)]+\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)', "",
                              css.read_text()))
        scratch.rename(into)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return into


# ---- the fonts the site publishes, subset to its text

TAG = re.compile(r"<[^>]+>")


def site_characters(site_dir: Path) -> set[str]:
    """Every character of every page's text (markup dropped, entities decoded): a superset of its math."""
    chars = set()
    for page in Path(site_dir).rglob("*.html"):
        chars |= set(html.unescape(TAG.sub("", page.read_text(encoding="utf-8"))))
    return chars


def subset_font(data: bytes, chars: set[str]) -> bytes:
    """A woff2 font with only the glyphs of `chars` (and what they need: ligatures, kerning, the .notdef box)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.flavor, options.layout_features, options.notdef_outline = "woff2", ["*"], True
    font = TTFont(io.BytesIO(data), recalcTimestamp=False)  # the same bytes from every build
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(map(ord, chars)))
    subsetter.subset(font)
    out = io.BytesIO()
    font.flavor = "woff2"
    font.save(out)
    return out.getvalue()


def subset_fonts(site_dir: Path):
    """Cut the fonts published under SITE_DIR down to the characters the built site's pages use. A character the
    site does not use cannot be missing from a formula: every formula's text is in a page."""
    chars = site_characters(site_dir)
    for path in sorted((Path(site_dir) / SITE_DIR / "fonts").glob("*.woff2")):
        path.write_bytes(subset_font(path.read_bytes(), chars))


# A rule of KaTeX's stylesheet that picks a font for the elements with some classes: `.katex .mathcal{font-family:
# KaTeX_Caligraphic}`. (The base rule, `.katex{font:… KaTeX_Main…}`, is the shorthand: every formula uses Main.)
FONT_RULE = re.compile(r"([^{}@]+)\{([^{}]*font-family:\s*KaTeX_(\w+)[^{}]*)\}")
MAIN_FONT = "KaTeX_Main-Regular.woff2"


@functools.cache
def font_rules() -> tuple:
    """((classes, font file), ...) from KaTeX's stylesheet: an element with all those classes is drawn in that file."""
    rules = []
    for selectors, body, family in FONT_RULE.findall((ASSETS / "katex.min.css").read_text(encoding="utf-8")):
        bold = re.search(r"font-weight:\s*(bold|[6-9]00)", body) is not None
        italic = re.search(r"font-style:\s*italic", body) is not None
        variant = ("Bold" if bold else "") + ("Italic" if italic else "") or "Regular"
        for selector in selectors.split(","):
            # the last compound that names classes: those of one element (`.delimsizing.size1`)
            compounds = [c for c in re.split(r"[\s>+~]+", selector.strip()) if "." in c and c != ".katex"]
            if compounds:
                rules.append((frozenset(re.findall(r"\.([\w-]+)", compounds[-1])), f"KaTeX_{family}-{variant}.woff2"))
    return tuple(rules)


def fonts_used(page: str) -> list[str]:
    """The KaTeX font files a built page's formulas are drawn in (those the browser will fetch), for <link
    rel=preload>: a font that arrives after the page is laid out makes the browser restyle every formula."""
    if 'class="katex"' not in page:
        return []
    elements = {frozenset(attr.split()) for attr in re.findall(r'class="([^"]*)"', page)}
    return sorted({MAIN_FONT} | {font for need, font in font_rules() if any(need <= has for has in elements)})


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m vgsite.katex fetch")
    try:
        print(f"KaTeX {VERSION} stylesheet and fonts in {fetch()}")
    except OSError as err:
        sys.exit(f"Error: {err}")
