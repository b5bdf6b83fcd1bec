"""MkDocs hooks: serve figures/ as part of the site, expand {{ figure("topic/name") }}, typeset math as MathML,
and publish the experiment code as pages. Listed under `hooks:` in mkdocs.yml.
"""
import html
import json
import re
import struct
from pathlib import Path

from latex2mathml.converter import convert as latex_to_mathml
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from vgsite import FIGURES, ROOT, quotes

FIGURE_TAG = re.compile(r'\{\{\s*figure\(\s*"([\w.-]+/[\w.-]+)"\s*\)\s*\}\}')
MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
CODE_DIR = "code"


def code_modules():
    """vgsite's modules, topics first: the code that makes every figure."""
    package = ROOT / "vgsite"
    topics = sorted((package / "topics").glob("[!_]*.py"))
    shared = sorted(p for p in package.glob("[!_]*.py"))
    return [(p.relative_to(ROOT).as_posix(), p) for p in topics + shared]


def code_page_uri(module_path: str) -> str:
    return f"{CODE_DIR}/{Path(module_path).with_suffix('').as_posix().replace('/', '.')}.md"


@event_priority(50)  # before mkdocs-jupyter's on_files, which turns the executed notebooks added here into pages
def on_files(files, config):
    for path in sorted(FIGURES.rglob("*")):
        if path.is_file() and path.suffix in {".png", ".svg", ".json"} and not path.name.startswith("."):
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


def find_figure(figure_id: str):
    """The figure's PNG and the record of the experiment that drew it."""
    topic, name = figure_id.split("/")
    png = FIGURES / topic / f"{name}.png"
    for record_path in sorted((FIGURES / topic).glob("*.json")) if png.exists() else []:
        record = json.loads(record_path.read_text())
        if name in record.get("figures", {}):
            return png, record_path, record
    raise PluginError(f"figure {figure_id!r} is not in figures/: run `vgsite figures` (or `make`) first, "
                      f"or check the name against `vgsite list`")


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


def experiment_record(exp_id: str) -> dict:
    if not re.fullmatch(r"[\w-]+/[\w-]+", exp_id):
        raise quotes.QuoteError(f"{exp_id!r} is not an experiment id (topic/name; `vgsite list` shows them)")
    return quotes.read_record(FIGURES / f"{exp_id}.json")


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(f"{CODE_DIR}/"):
        return markdown  # source listings show the tag literally
    try:
        markdown = quotes.render(markdown, page.file.src_uri, experiment_record)
    except quotes.QuoteError as err:
        raise PluginError(str(err)) from None
    return FIGURE_TAG.sub(lambda m: figure_markdown(m.group(1), page), markdown)


def on_page_content(content, page, config, files):
    """Replace the TeX that pymdownx.arithmatex protected with MathML, which browsers typeset natively."""
    if is_notebook_page(page):
        content = notebooks.site_html(content, page, files)

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

from vgsite import notebooks  # noqa: E402


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
