"""MkDocs hooks: serve figures/ as part of the site, expand {{ figure("topic/name") }}, typeset math with KaTeX,
publish the experiment code as pages, and turn the executed notebooks into light pages. Listed under `hooks:`
in mkdocs.yml.
"""
import base64
import html
import json
import logging
import os
import re
import struct
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from vgsite import FIGURES, ROOT, katex, notebooks, quotes, runner
from vgsite.cache import sha
from vgsite.outputs import SCALE
from vgsite.registry import DARK_SUFFIX, at_1x, code_page

log = logging.getLogger("mkdocs.hooks.vgsite")

FIGURE_TAG = re.compile(r'\{\{\s*figure\(\s*"([\w.-]+/[\w.-]+)"\s*\)\s*\}\}')
FIGREF_TAG = re.compile(r'\{\{\s*figref\(\s*"([\w.-]+/[\w.-]+)"\s*\)\s*\}\}')
MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
CODE_DIR = "code"
UNPUBLISHED = {"manifest.json"}  # the caches' own records (with timings): not part of the site


def code_modules():
    """vgsite's modules, topics first: the code that makes every figure."""
    package = ROOT / "vgsite"
    topics = sorted((package / "topics").glob("[!_]*.py"))
    shared = sorted(p for p in package.glob("[!_]*.py"))
    return [(p.relative_to(ROOT).as_posix(), p) for p in topics + shared]


def code_page_uri(module_path: str) -> str:
    return code_page(module_path)


@event_priority(50)  # before mkdocs-jupyter's on_files, which turns the executed notebooks added here into pages
def on_files(files, config):
    for path in sorted(FIGURES.rglob("*")):
        if path.is_file() and path.suffix in {".png", ".svg", ".json"} and not path.name.startswith(".") \
                and path.name not in UNPUBLISHED:
            files.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                              config["use_directory_urls"]))
    shipped = katex.assets()
    if not shipped:
        raise PluginError(f"KaTeX's stylesheet and fonts are not in {katex.ASSETS}: run `make install` "
                          f"(or `python -m vgsite.katex fetch`)")
    for path in shipped:
        files.append(File.generated(config, f"{katex.SITE_DIR}/{path.relative_to(katex.ASSETS).as_posix()}",
                                    abs_src_path=str(path)))
    index = ["---", "search:", "  exclude: true", "---", "", "# The code behind the figures", "",
             "Every figure on this site is drawn by one of these modules. Topic modules hold the experiments; "
             "the others are shared by all topics. Run `vgsite list` to see every experiment.", ""]
    for rel, path in code_modules():
        uri = code_page_uri(rel)
        index.append(f"- [`{rel}`]({Path(uri).name}) — {docstring_line(path)}")
        body = f"---\nsearch:\n  exclude: true\n---\n\n# `{rel}`\n\n```python\n{path.read_text()}```\n"
        files.append(File.generated(config, uri, content=body))
    files.append(File.generated(config, f"{CODE_DIR}/index.md", content="\n".join(index) + "\n"))
    add_notebooks(files, config)
    return files


def docstring_line(path: Path) -> str:
    match = re.match(r'\s*"""(.*?)(?:\n|""")', path.read_text())
    return match.group(1).strip() if match else ""


def png_size(path: Path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


_index = {}


def find_figure(figure_id: str):
    """The figure's PNG and the record of the experiment that drew it, found through the manifest (the index)."""
    if not _index:
        _index.update(runner.figure_index())
    found = _index.get(figure_id)
    if found is None or not found[0].is_file():
        raise PluginError(f"figure {figure_id!r} is not in figures/: run `vgsite figures` (or `make`) first, "
                          f"or check the name against `vgsite list`")
    png, record_path = found
    try:
        record = quotes.read_record(record_path)
    except quotes.QuoteError as err:
        raise PluginError(str(err)) from None
    meta = record.get("figures", {}).get(png.stem)
    if not isinstance(meta, dict) or not isinstance(record.get("config"), dict):
        raise PluginError(f"{record_path.relative_to(ROOT)} does not describe figure {figure_id!r}: "
                          f"delete it and run `vgsite figures` again")
    return png, record_path, record


def on_pre_build(config):
    _index.clear()  # `mkdocs serve` rebuilds: the figures may have changed


def figure_anchor(figure_id: str) -> str:
    """The id a figure's <figure> gets on its page: `fig-topic-name`."""
    return "fig-" + figure_id.replace("/", "-").replace(".", "-")


def figure_markdown(figure_id: str, page, number: int | None = None) -> str:
    """One figure: its light and dark images (the page shows the one for the reader's theme), each a link to the
    full-size file (a zoom that needs no script), then "Figure N." and the caption, and the run settings folded
    into a <details>. Width and height are the displayed size: the PNG has twice the pixels, for high-density
    screens, and its 1× twin is in the srcset for the others."""
    png, record_path, record = find_figure(figure_id)
    up = "../" * page.file.src_uri.count("/")  # Markdown links: relative to the source file (MkDocs rewrites them)
    html_up = "../" * page.url.count("/")  # raw HTML is not rewritten: relative to the page's address
    meta = record["figures"][png.stem]
    width, height = meta.get("css_width"), meta.get("css_height")
    if not (isinstance(width, int) and isinstance(height, int)):
        width, height = (round(n / SCALE) for n in png_size(png))
    dark = png.with_name(png.stem + DARK_SUFFIX)
    alt = html.escape(meta["alt"], quote=True)

    def image(path, theme):  # docs/css/vgsite.css hides the link of the other theme (.vg-light, .vg-dark)
        src = f"{html_up}{path.relative_to(ROOT).as_posix()}"
        small = path.with_name(at_1x(path.name))  # a screen of one pixel per CSS px fetches a quarter of the pixels
        srcset = f' srcset="{html_up}{small.relative_to(ROOT).as_posix()} 1x, {src} 2x"' if small.is_file() else ""
        return (f'<a class="vg-zoom{f" vg-{theme}" if theme else ""}" href="{src}" title="Open the figure full size">'
                f'<img src="{src}"{srcset} alt="{alt}" width="{width}" height="{height}" loading="lazy" '
                f'decoding="async"></a>')

    images = image(png, "light") + image(dark, "dark") if dark.is_file() else image(png, None)
    settings = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in record["config"].items())
    code = code_page_uri(f"vgsite/topics/{png.parent.name}.py")
    label = f'<span class="vg-fignum">Figure {number}.</span> ' if number else ""
    return (
        f'<figure class="vg-figure" id="{figure_anchor(figure_id)}" markdown="1">\n\n'
        f'{images}\n\n'
        f'<figcaption markdown="1">\n\n{label}{meta["caption"]}\n\n'
        f'<details class="vg-run" markdown="1" data-search-exclude="true">\n<summary>How it was run</summary>\n\n'
        f'`vgsite figures {record["experiment"]}` with {settings}. '
        f'[Numbers]({up}{record_path.relative_to(ROOT).as_posix()}) · [code]({up}{code})\n\n'
        f'</details>\n\n</figcaption>\n\n'
        f'</figure>'
    )


def figure_tags(markdown: str, page) -> str:
    """Number the page's figures in the order they appear (Figure 1, 2, …) and expand {{ figure("topic/name") }}
    and {{ figref("topic/name") }} (a link "Figure N" to that figure, which must be on the same page)."""
    numbers = {}
    for match in FIGURE_TAG.finditer(markdown):
        numbers.setdefault(match.group(1), len(numbers) + 1)

    def ref(match):
        figure_id = match.group(1)
        if figure_id not in numbers:
            raise PluginError(f"{page.file.src_uri}: figref({figure_id!r}) names no figure on this page "
                              f"(its figures: {', '.join(numbers) or 'none'})")
        return f"[Figure {numbers[figure_id]}](#{figure_anchor(figure_id)})"

    markdown = FIGREF_TAG.sub(ref, markdown)
    return FIGURE_TAG.sub(lambda m: figure_markdown(m.group(1), page, numbers[m.group(1)]), markdown)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(f"{CODE_DIR}/"):
        return markdown  # source listings show the tag literally
    try:
        markdown = quotes.render(markdown, page.file.src_uri, quotes.records_in(FIGURES))
    except quotes.QuoteError as err:
        raise PluginError(str(err)) from None
    return figure_tags(markdown, page)


NOTEBOOK_SEARCH_BOOST = 0.1  # Material multiplies a page's search score by its boost: prose pages rank first

# Pygments' spans that draw nothing: Material colours a name (.n) with the code block's own colour and whitespace
# (.w) not at all. A listing of 860 lines has 2,300 of them, whose layout Lighthouse charges to the page
# (code/vgsite.health/: total blocking time 105-477 ms with them, 39-76 ms without).
PLAIN_TOKEN = re.compile(r'<span class="[nw]">([^<]*)</span>')


def on_page_content(content, page, config, files):
    """Replace the TeX that pymdownx.arithmatex protected with KaTeX's HTML (and MathML for screen readers); unwrap
    the code's PLAIN_TOKEN spans."""
    if is_notebook_page(page):
        content = site_html(content, page, files)
        # A notebook repeats its topic's terms in code and outputs; without this its page outranks the prose page
        # in the search box. Material's search plugin reads page.meta["search"]["boost"] in on_page_context, after
        # this hook; mkdocs-jupyter's pages have no front matter to set it in.
        search = page.meta.get("search")
        page.meta["search"] = {**(search if isinstance(search, dict) else {}), "boost": NOTEBOOK_SEARCH_BOOST}

    def typeset(match):
        tag, tex = match.group(1), html.unescape(match.group(2)).strip()
        display = "block" if tag == "div" else "inline"
        tex = tex[2:-2] if tex[:2] in ("\\(", "\\[") else tex
        try:
            typeset_html = katex.render(tex, display=display == "block")
        except katex.MathError as err:
            raise PluginError(f"{page.file.src_uri}: cannot typeset ${tex}$: {err}") from None
        # A wide display formula scrolls sideways on a phone; tabindex lets a keyboard scroll it too.
        focus = ' tabindex="0"' if tag == "div" else ""
        return f'<{tag} class="arithmatex"{focus}>{typeset_html}</{tag}>'

    return wrap_tables(PLAIN_TOKEN.sub(r"\1", MATH.sub(typeset, content)))


# Material moves each table into a scrolling wrapper once the page has loaded. Where a page has MathML, Chromium's
# own MathML rules (`mmultiscripts > mprescripts ~ :nth-child(2n+1)`) make any child inserted into an element
# restyle all that element's descendants: the whole article (normfree/: 2,730 elements, 238 ms at 4x CPU slowdown).
# In a <div> of its own, a table's move restyles only the table.
TABLE = re.compile(r"<table>.*?</table>", re.S)


def wrap_tables(content: str) -> str:
    return TABLE.sub(lambda m: f'<div class="vg-table">{m.group(0)}</div>', content)


# ---- Companion notebooks: docs/notebooks/NAME.ipynb is the source; the page shows its executed copy.

def add_notebooks(files, config):
    """Swap each source notebook for its executed copy in figures/notebooks/ (same URI: notebooks/NAME.ipynb)."""
    for name in notebooks.sources():
        uri = f"{notebooks.OUT_DIR}/{name}.ipynb"
        executed = FIGURES / uri
        if not executed.exists():
            raise PluginError(f"notebook {uri} has not been executed: run `vgsite notebooks` (or `make`) first")
        source = files.get_file_from_path(uri)
        if source is not None:
            files.remove(source)
        files.append(File(uri, str(FIGURES), config["site_dir"], config["use_directory_urls"]))


def is_notebook_page(page) -> bool:
    return page.file.src_uri.endswith(".ipynb")


STYLE_OR_SCRIPT = re.compile(r"<(style|script)\b[^>]*>.*?</\1>", re.S | re.I)
COPY_BUTTON = re.compile(r'<div class="zeroclipboard-container">.*?</clipboard-copy>\s*</div>', re.S)
COPY_TEXT = re.compile(r'<div[^>]*class="clipboard-copy-txt"[^>]*>.*?</div>', re.S)
COMMENT = re.compile(r"<!--.*?-->\s*", re.S)
CODE = re.compile(r'<div class="highlight-ipynb hl-(\w+)[^"]*">\s*<pre>(.*?)</pre>\s*</div>', re.S)
DATA_PNG = re.compile(r'<img\b([^>]*?)\s*src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"([^>]*)>')
MD_LINK = re.compile(r'href="(?![a-z]+:|/|#)([^"#]+\.md)(#[^"]*)?"')


def site_html(content: str, page, files=None, figures: Path = FIGURES) -> str:
    """Slim mkdocs-jupyter's HTML for one notebook page.

    Drops the stylesheets it inlines (~600 KB of JupyterLab CSS per page; docs/notebooks/notebook.css and the
    theme style the cells instead) and its scripts (MathJax, mermaid and require.js from CDNs: the site makes
    no request to another host). Code cells become Material code blocks (highlighting in both colour schemes,
    copy button). Images link figures/notebooks/NAME/<hash>.png instead of inlining base64, which keeps the page
    small and the blobs out of the search index. Links to pages (`../vanishing.md`) point at the built pages.
    Adds a download link to the executed notebook.
    """
    name = Path(page.file.src_uri).stem
    up = "../" * page.url.count("/")
    content = STYLE_OR_SCRIPT.sub("", content)
    content = COPY_BUTTON.sub("", content)
    content = COPY_TEXT.sub("", content)
    content = COMMENT.sub("", content)
    # Code cells stay out of the search index (the prose pages hold the terms; the index is fetched on every page)
    content = CODE.sub(lambda m: f'<div class="language-{m.group(1)} highlight" data-search-exclude="true">'
                                 f'<pre><span></span><code>'
                                 f'{m.group(2).removeprefix("<span></span>")}</code></pre></div>', content)
    content = content.replace('class="anchor-link"', 'class="headerlink"')

    def image(match):
        before, data, after = match.group(1), match.group(2), match.group(3).rstrip("/ ")
        png = base64.b64decode(re.sub(r"\s", "", data))
        file = figures / notebooks.OUT_DIR / name / f"{sha(png)[:16]}.png"
        if not file.exists():
            return match.group(0)
        src = lambda path: f'src="{up}{path.relative_to(ROOT).as_posix()}"'
        night = file.with_name(file.stem + DARK_SUFFIX)
        if not night.exists():
            return f'<img{before} {src(file)}{after} loading="lazy">'
        # vgsite.lab.show's figure and its dark theme's copy, each a link to its full-size file as on the topic
        # pages: docs/css/vgsite.css shows the reader's theme's one
        return "".join(f'<a class="vg-zoom vg-{theme}" href="{up}{path.relative_to(ROOT).as_posix()}" '
                       f'title="Open the figure full size"><img{before} {src(path)}{after} loading="lazy"></a>'
                       for path, theme in ((file, "light"), (night, "dark")))

    def page_link(match):
        target, anchor = match.group(1), match.group(2) or ""
        uri = os.path.normpath(os.path.join(os.path.dirname(page.file.src_uri), target)).replace(os.sep, "/")
        found = files.get_file_from_path(uri) if files is not None else None
        if found is None:
            return match.group(0)
        return f'href="{up}{found.url}{anchor}"'

    content = DATA_PNG.sub(image, content)
    content = MD_LINK.sub(page_link, content)
    download = (f'<p class="vg-nb-download">Download <a href="{name}.ipynb" download>{name}.ipynb</a>: the '
                f'notebook as executed for this page, outputs included (its source, without outputs, is '
                f'<code>docs/notebooks/{name}.ipynb</code> in the project).</p>')
    head = f'<link rel="stylesheet" href="{up}notebooks/notebook.css">'
    content, n = re.subn(r"(</h1>)", lambda m: m.group(1) + download, content, count=1)
    return head + (content if n else download + content)


# ---- Every page's search dialog gets a name; the 404 page works under any sub-path, with or without SITE_URL.

SEARCH_DIALOG = '<div class="md-search" data-md-component="search" role="dialog">'


def label_search_dialog(output: str) -> str:
    """Material's search dialog has no accessible name (axe's aria-dialog-name): give it one."""
    return output.replace(SEARCH_DIALOG, SEARCH_DIALOG[:-1] + ' aria-label="Search">')


# Material fetches the search index (a third of a first visit's bytes) and parses it on the main thread as every
# page loads. This script, put before Material's, holds that one request back until the reader first comes near
# the search box (hover, tap, focus, or the f / s / / keys, which focus it); the search then works as before.
LAZY_SEARCH_INDEX = r"""<script>/* vgsite: the search index is fetched when the reader first goes to the search box */
(function () {
  var proto = XMLHttpRequest.prototype, open = proto.open, send = proto.send, held = [], wanted = false;
  function want() {
    if (wanted) return;
    wanted = true;
    held.splice(0).forEach(function (go) { go(); });
  }
  proto.open = function (method, url) {
    this.vgIndex = /\/search\/search_index\.json$/.test(String(url));
    return open.apply(this, arguments);
  };
  proto.send = function () {
    var xhr = this, args = arguments;
    if (!xhr.vgIndex || wanted) return send.apply(xhr, args);
    held.push(function () { send.apply(xhr, args); });
  };
  function near(event) {
    var t = event.target;
    if (t && t.closest && t.closest(".md-search, [for=__search], #__search")) want();
  }
  ["focusin", "pointerover", "pointerdown", "change"].forEach(function (type) {
    document.addEventListener(type, near, true);
  });
})();</script>"""


def lazy_search_index(output: str) -> str:
    return output.replace('<script id="__config"', LAZY_SEARCH_INDEX + '<script id="__config"', 1)


# As Material's script starts, at the end of the page, it makes Chromium restyle the whole page three times over,
# which Lighthouse counts as blocking time (claims/: 3 x 46-92 ms at 4x CPU slowdown, of 3,714 elements each):
# - it swaps <html>'s class no-js for js, and its focus-visible polyfill adds js-focus-visible. Any change to a
#   class attribute restyles all that element's descendants, because of rules like
#   `.md-typeset table:not([class]) td > :first-child`. Here both are set while the page is still empty;
#   Material's own calls then change nothing (an attribute set to the value it has is no change).
# - it appends <meta name="color-scheme"> and then sets its content, and Chromium restyles the page for each
#   change to that meta. Here the meta is made in <head>, with the scheme Material will choose (the reader's
#   stored choice, else the system's), and Material's own, kept out of the page, is mirrored into it: a toggle of
#   the theme still changes it.
QUIET_START = r"""<script>/* vgsite: set what Material's script sets first, before the page exists to restyle */
document.documentElement.className = "js js-focus-visible";
(function () {
  var head = document.head, append = head.appendChild, meta = document.createElement("meta"), dark, stored;
  try { stored = __md_get("__palette"); } catch (e) { stored = null; }
  dark = matchMedia("(prefers-color-scheme: dark)").matches;
  if (stored && stored.color && stored.color.media !== "(prefers-color-scheme)") dark = stored.color.scheme === "slate";
  meta.name = "color-scheme";
  meta.content = dark ? "dark" : "light";
  append.call(head, meta);
  head.appendChild = function (node) {
    if (node.nodeName !== "META" || node.name !== "color-scheme") return append.call(head, node);
    delete head.appendChild;
    new MutationObserver(function () {
      if (meta.content !== node.content) meta.content = node.content;
    }).observe(node, { attributes: true, attributeFilter: ["content"] });
    return node;
  };
})();</script>"""


def quiet_start(output: str) -> str:
    return output.replace("</head>", QUIET_START + "</head>", 1)


# The browser finds which KaTeX fonts a page needs only as it lays the formulas out, and each font that arrives later
# restyles every element drawn in it, in whichever task runs next: often Material's first, as a long task (Lighthouse
# on criticality/: total blocking time 25-150 ms, or 450-690 ms in one run of three). Preloaded, they are there first.
KATEX_STYLESHEET = re.compile(r'<link rel="stylesheet" href="([^"]*)' + re.escape(katex.SITE_DIR) + r'/katex\.min\.css">')


def preload_fonts(output: str) -> str:
    def links(match):
        fonts = f"{match.group(1)}{katex.SITE_DIR}/fonts"
        return "".join(f'<link rel="preload" href="{fonts}/{name}" as="font" type="font/woff2" crossorigin>'
                       for name in katex.fonts_used(output)) + match.group(0)

    return KATEX_STYLESHEET.sub(links, output, count=1)


def on_post_page(output, page, config):
    return preload_fonts(quiet_start(lazy_search_index(label_search_dialog(output))))


# The 404 page is served for any missing address, at any depth, so its links cannot be relative to its own URL;
# MkDocs writes them from the server root (`/assets/...`), or from SITE_URL's path. Instead they are made relative
# to a <base> that a script at the top of <head> sets from the address: the part before the first segment that
# is one of the site's own top-level names (`/REPO/vanishing/typo` -> `/REPO/`), else SITE_URL's path where the
# address is under it, else the address's first segment (a project site, `/REPO/typo` -> `/REPO/`), else `/`.
# The stylesheets and scripts are written by scripts after that <base> exists: as plain tags, the browser's
# preload scanner would fetch them before, from the wrong folder.
BASE_SCRIPT = """<script>(function () {
  var known = %s, site = %s, parts = location.pathname.split("/"), root = null, i;
  for (i = 1; i < parts.length && root === null; i++)
    if (known.indexOf(decodeURIComponent(parts[i])) >= 0) root = parts.slice(0, i).join("/") + "/";
  if (root === null && site && location.pathname.indexOf(site) === 0) root = site;
  if (root === null) root = parts.length > 2 ? "/" + parts[1] + "/" : "/";
  var base = document.createElement("base");
  base.href = root;
  document.head.appendChild(base);
})();
document.write(%s);</script>"""
# Material's scripts read their base and the search worker's address from the page's __config: make them absolute.
CONFIG_SCRIPT = """<script>(function () {
  var c = document.getElementById("__config"), j = JSON.parse(c.textContent);
  j.base = document.baseURI;
  j.search = new URL(j.search, document.baseURI).href;
  c.textContent = JSON.stringify(j);
})();</script>"""
RELATIVE_LINK = re.compile(r'<link\b[^>]*\bhref="(?![a-z]+:|/|#)[^"]*"[^>]*>')
RELATIVE_SCRIPT = re.compile(r'<script src="(?![a-z]+:|/)[^"]*"></script>')


def js_string(markup: str) -> str:
    return json.dumps(markup).replace("</", "<\\/")


def relocatable_404(output: str, config) -> str:
    from urllib.parse import urlsplit

    site = urlsplit(config.get("site_url") or "").path.rstrip("/") + "/" if config.get("site_url") else None
    prefix = re.escape(site or "/")
    docs = Path(config["docs_dir"])
    known = sorted({p.stem if p.suffix == ".md" else p.name for p in docs.iterdir() if not p.name.startswith(".")}
                   | {"assets", "search", "figures", CODE_DIR, "sitemap.xml", "404.html"})
    output = re.sub(rf'\b(href|src)="{prefix}(?!/)([^"]*)"', lambda m: f'{m.group(1)}="{m.group(2) or "."}"', output)
    output = re.sub(rf'("search": "){prefix}(?!/)', r"\1", output)
    head_end = output.index("</head>")
    links = RELATIVE_LINK.findall(output[:head_end])
    head = RELATIVE_LINK.sub("", output[:head_end])
    output = head + output[head_end:]
    script = BASE_SCRIPT % (json.dumps(known), json.dumps(site), js_string("".join(links)))
    output, n = re.subn(r'(<meta charset="utf-8">)', lambda m: m.group(1) + script, output, count=1)
    if not n:
        raise PluginError("404.html: no <meta charset> to put the <base> script after")
    # (a theme without Material's __config, e.g. a stripped-down build, has nothing there to relocate)
    output = re.sub(r'(<script id="__config"[^>]*>.*?</script>)', lambda m: m.group(1) + CONFIG_SCRIPT, output,
                    count=1, flags=re.S)
    return RELATIVE_SCRIPT.sub(lambda m: f"<script>document.write({js_string(m.group(0))});</script>", output)


# Material sets data-md-color-switching on <body> for a moment as each page starts (and at each theme switch), to
# stop transitions while the colours change. Its rule, `[data-md-color-switching] *`, makes Chromium restyle the
# whole page when the attribute comes and again when it goes: a long task of its own (claims/: 180-400 ms at 4x CPU
# slowdown). Without the rule, a theme switch fades the header's colour where Material gives it a transition.
COLOR_SWITCHING_RULE = re.compile(r"\[data-md-color-switching\][^{}]*\{[^{}]*\}")


def drop_color_switching_rule(site_dir: Path):
    sheets = sorted((site_dir / "assets" / "stylesheets").glob("*.css"))
    found = 0
    for path in sheets:
        css = path.read_text(encoding="utf-8")
        css, n = COLOR_SWITCHING_RULE.subn("", css)
        if n:
            found += n
            path.write_text(css, encoding="utf-8")
    if sheets and not found:
        log.warning("Material's stylesheets have no [data-md-color-switching] rule any more: check docs_hooks")


def on_post_build(config):
    site_dir = Path(config["site_dir"])
    katex.subset_fonts(site_dir)
    drop_color_switching_rule(site_dir)


def on_post_template(output_content, template_name, config):
    if template_name != "404.html":
        return output_content
    return quiet_start(lazy_search_index(label_search_dialog(relocatable_404(output_content, config))))
