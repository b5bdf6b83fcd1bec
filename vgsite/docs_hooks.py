"""MkDocs hooks: serve figures/ as part of the site, expand {{ figure("topic/name") }}, typeset math as MathML,
publish the experiment code as pages, and turn the executed notebooks into light pages. Listed under `hooks:`
in mkdocs.yml.
"""
import base64
import html
import json
import os
import re
import struct
from pathlib import Path

from latex2mathml.converter import convert as latex_to_mathml
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from vgsite import FIGURES, ROOT, notebooks, quotes, runner
from vgsite.cache import sha
from vgsite.registry import code_page

FIGURE_TAG = re.compile(r'\{\{\s*figure\(\s*"([\w.-]+/[\w.-]+)"\s*\)\s*\}\}')
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


def figure_markdown(figure_id: str, page) -> str:
    png, record_path, record = find_figure(figure_id)
    up = "../" * page.file.src_uri.count("/")
    meta = record["figures"][png.stem]
    width, height = png_size(png)
    settings = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in record["config"].items())
    code = code_page_uri(f"vgsite/topics/{png.parent.name}.py")
    return (
        f'<figure class="vg-figure" markdown="1">\n\n'
        f'![{meta["alt"]}]({up}{png.relative_to(ROOT).as_posix()}){{ width="{width}" height="{height}" '
        f'loading="lazy" }}\n\n'
        f'<figcaption markdown="span">{meta["caption"]} '
        f'<span class="vg-run">Run: `vgsite figures {record["experiment"]}` with {settings}. '
        f'[Numbers]({up}{record_path.relative_to(ROOT).as_posix()}) · [code]({up}{code})</span></figcaption>\n\n'
        f'</figure>'
    )



def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(f"{CODE_DIR}/"):
        return markdown  # source listings show the tag literally
    try:
        markdown = quotes.render(markdown, page.file.src_uri, quotes.records_in(FIGURES))
    except quotes.QuoteError as err:
        raise PluginError(str(err)) from None
    return FIGURE_TAG.sub(lambda m: figure_markdown(m.group(1), page), markdown)


NOTEBOOK_SEARCH_BOOST = 0.1  # Material multiplies a page's search score by its boost: prose pages rank first


def on_page_content(content, page, config, files):
    """Replace the TeX that pymdownx.arithmatex protected with MathML, which browsers typeset natively."""
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
            mathml = latex_to_mathml(tex, display=display)
        except Exception as err:
            raise PluginError(f"{page.file.src_uri}: cannot typeset ${tex}$: {err}") from err
        # A wide display formula scrolls sideways on a phone; tabindex lets a keyboard scroll it too.
        focus = ' tabindex="0"' if tag == "div" else ""
        return f'<{tag} class="arithmatex"{focus}>{mathml}</{tag}>'

    return MATH.sub(typeset, content)


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
DATA_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"')
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
    content = CODE.sub(lambda m: f'<div class="language-{m.group(1)} highlight"><pre><span></span><code>'
                                 f'{m.group(2).removeprefix("<span></span>")}</code></pre></div>', content)
    content = content.replace('class="anchor-link"', 'class="headerlink"')

    def image(match):
        png = base64.b64decode(re.sub(r"\s", "", match.group(1)))
        file = figures / notebooks.OUT_DIR / name / f"{sha(png)[:16]}.png"
        return f'src="{up}{file.relative_to(ROOT).as_posix()}" loading="lazy"' if file.exists() else match.group(0)

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
