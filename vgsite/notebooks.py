"""Companion notebooks: executed at build time, cached like the experiments, and helpers to use inside them.

The sources are docs/notebooks/NAME.ipynb, stored without outputs. `vgsite notebooks` (a step of `vgsite build`)
executes the out-of-date ones with nbclient into figures/notebooks/NAME.ipynb, and writes each image they show
to figures/notebooks/NAME/<hash>.png so that the page links the file instead of inlining it. A notebook is up
to date when its source, the vgsite code it uses (the modules its code cells import, followed transitively,
plus the topic of every experiment it names), the library versions and its outputs all match its entry in
figures/notebooks/manifest.json. Inside a notebook: `setup()`, `run_experiment(...)` and `show(...)`.
"""
import ast
import base64
import hashlib
import html
import importlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

from vgsite import FIGURES, ROOT
from vgsite.outputs import json_bytes, png_bytes, write_if_changed
from vgsite.registry import TOPICS
from vgsite.runner import changed, is_module, seed_everything, sha, versions, vgsite_imports

SOURCES = ROOT / "docs" / "notebooks"
OUT_DIR = "notebooks"  # under figures/
MANIFEST = "manifest.json"
LIBRARIES = ("ipython", "ipykernel", "nbclient", "nbformat")
CELL_TIMEOUT = 120  # seconds; a notebook is meant to take a few
EXPERIMENT_ID = re.compile(r"^([a-z][\w-]*)/[\w.-]+$")


# ---------------------------------------------------------------- inside a notebook

def setup(seed: int = 0):
    """The site's plot style for every figure, one torch thread and a fixed seed: what `vgsite figures` uses."""
    import matplotlib
    import torch

    from vgsite.plots import STYLE

    matplotlib.rcParams.update(STYLE)
    torch.set_num_threads(1)
    seed_everything(seed)


def run_experiment(exp_id: str, show_only=None, **overrides):
    """Run one registered experiment (`"vanishing/depth-sweep"`) with some settings changed; show its figures.

    Seeds and style as in `vgsite figures`. show_only: names of the figures to show (default: all of them).
    Returns the Result: `.data` holds the numbers it plotted, `.plots` every figure.
    """
    import torch
    from matplotlib import rc_context

    from vgsite.plots import STYLE
    from vgsite.registry import EXPERIMENTS

    importlib.import_module(f"vgsite.topics.{exp_id.split('/')[0]}")  # only this topic, not every one
    exp = EXPERIMENTS[exp_id]
    torch.set_num_threads(1)
    seed_everything({**exp.config, **overrides}.get("seed", 0))
    with rc_context(STYLE):
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

    from vgsite.plots import STYLE

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
    data = base64.b64encode(png).decode()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    tag = (f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" width="{width}" height="{height}">')
    figure = f'<figure class="vg-figure">{tag}' + (
        f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "") + "</figure>"
    display({"text/html": figure, "image/png": data, "text/plain": alt}, raw=True)


def describe(fig) -> str:
    """Default alt text: what each panel plots."""
    parts = []
    for ax in fig.axes:
        what = f"{ax.get_ylabel() or 'y'} against {ax.get_xlabel() or 'x'}"
        parts.append(f"{ax.get_title()}: {what}" if ax.get_title() else what)
    return "Plot of " + "; ".join(parts) if parts else "A figure"


# ---------------------------------------------------------------- what is out of date

def sources(src: Path = SOURCES) -> dict[str, Path]:
    """The source notebooks by name, topics in reading order first."""
    found = {p.stem: p for p in src.glob("*.ipynb") if not p.name.startswith(".")}
    order = {t: i for i, t in enumerate(TOPICS)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def code_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


def used_modules(nb: dict) -> set[str]:
    """vgsite modules a notebook uses: those its code cells import, and the topic of each experiment id it names.

    IPython lines (%magic, !shell) are dropped before parsing. A cell that still does not parse makes the notebook
    depend on every vgsite module.
    """
    found = {"vgsite.notebooks"}  # executes it, and its helpers run inside it
    for source in code_cells(nb):
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return {p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                    for p in (ROOT / "vgsite").rglob("[!_]*.py")} | found
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and EXPERIMENT_ID.match(node.value):
                topic = node.value.split("/")[0]
                names = [f"vgsite.topics.{topic}"] if topic in TOPICS else []
            else:
                continue
            found |= {n for n in names if n.split(".")[0] == "vgsite" and is_module(n)}
    return found


def code_hash(modules) -> str:
    """As runner.code_hash, over every module the given ones import."""
    names = set()
    for module in modules:
        names |= vgsite_imports(module)
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0" + Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()


def all_versions() -> dict:
    return {**versions(), **{lib: version(lib) for lib in LIBRARIES}}


def key(path: Path) -> dict:
    """Everything whose change makes an executed notebook out of date."""
    data = path.read_bytes()
    return {"source": sha(data), "code": code_hash(used_modules(json.loads(data))), "versions": all_versions()}


def read_manifest(figures: Path = FIGURES) -> dict:
    try:
        return json.loads((figures / OUT_DIR / MANIFEST).read_text())["notebooks"]
    except (FileNotFoundError, ValueError, KeyError):
        return {}


def write_manifest(entries: dict, figures: Path = FIGURES):
    write_if_changed(figures / OUT_DIR / MANIFEST, json_bytes({"notebooks": entries}))


def staleness(path: Path, entry: dict | None, figures: Path = FIGURES) -> str | None:
    """Why the notebook at `path` must be executed again, or None when its executed copy is current."""
    if not entry:
        return "never executed"
    return changed(entry, key(path), {"source": "notebook changed", "code": "code changed",
                                      "versions": "library versions changed"}, figures)


# ---------------------------------------------------------------- executing

class NotebookError(Exception):
    """A cell failed: says which notebook, which cell and what error (args[1]: the cell's traceback)."""


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def execute(path: Path, timeout: int = CELL_TIMEOUT) -> dict:
    """Execute one notebook in a fresh kernel; returns the executed notebook and its images as bytes.

    Nothing is written here. The bytes depend only on the notebook and the code: no timings, no kernel ids.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # a source saved with outputs: execute from clean
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "agg",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    start, cpu_start = time.perf_counter(), cpu_time()
    started = []  # index of each cell as it starts: the last one is the one that failed
    with tempfile.TemporaryDirectory(prefix="vgsite-nb-") as cwd:  # notebooks write nothing into the project
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                allow_errors=False, resources={"metadata": {"path": cwd}},
                                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no TCP warning
                                on_cell_start=lambda **kw: started.append(kw["cell_index"]))
        try:
            client.execute(env=env)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            raise NotebookError(failure(path, nb, err, started[-1] if started else None),
                                traceback_text(nb)) from None
    seconds, cpu = time.perf_counter() - start, cpu_time() - cpu_start
    nb.metadata.pop("widgets", None)
    nb.metadata.get("language_info", {}).pop("version", None)  # python's version is in the key already
    images = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                png = base64.b64decode(data)
                images[f"{sha(png)[:16]}.png"] = png
    return {"notebook": (nbformat.writes(nb) + "\n").encode(), "images": images, "seconds": seconds,
            "cpu_seconds": cpu}


def cpu_time() -> float:
    """CPU seconds of this process and its finished children (the kernel, once shut down)."""
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def failure(path: Path, nb, err, index=None) -> str:
    """One message: notebook, cell (number and first line), error."""
    cell = nb.cells[index] if index is not None else None
    where = f"cell {index + 1} of {len(nb.cells)}" if cell is not None else "before the first cell"
    first = next((line for line in (cell.source if cell else "").splitlines() if line.strip()), "")
    error = f"{err.ename}: {err.evalue}" if getattr(err, "ename", None) else f"{type(err).__name__}: {err}"
    error = ANSI.sub("", error).strip().splitlines()[0] if error.strip() else type(err).__name__
    return f"{path.name}, {where} ({first.strip()!r}) failed: {error}"


def traceback_text(nb) -> str:
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                return ANSI.sub("", "\n".join(output.get("traceback", [])))
    return ""


def _execute_safely(path: str) -> dict:
    try:
        return {"ok": True, **execute(Path(path))}
    except NotebookError as err:
        return {"ok": False, "error": err.args[0], "traceback": err.args[1]}
    except Exception as err:  # the kernel would not start, the file is no notebook ...
        return {"ok": False, "error": f"{Path(path).name} failed: {type(err).__name__}: {err}"}


@dataclass
class Outcome:
    name: str
    ok: bool
    seconds: float = 0.0
    error: str = ""
    traceback: str = ""
    cpu_seconds: float = 0.0


def record(name: str, raw: dict, path: Path, manifest: dict, figures: Path = FIGURES):
    """Write an executed notebook and its images, drop images it no longer shows, update the manifest."""
    out = figures / OUT_DIR
    files = {f"{OUT_DIR}/{name}.ipynb": raw["notebook"],
             **{f"{OUT_DIR}/{name}/{img}": png for img, png in raw["images"].items()}}
    for rel, data in files.items():
        write_if_changed(figures / rel, data)
    for old in (out / name).glob("*.png") if (out / name).is_dir() else []:
        if f"{OUT_DIR}/{name}/{old.name}" not in files:
            old.unlink()
    manifest[name] = {**key(path), "seconds": round(raw["seconds"], 2), "cpu_seconds": round(raw["cpu_seconds"], 2),
                      "outputs": {rel: sha(data) for rel, data in sorted(files.items())}}
    write_manifest(manifest, figures)


def run(names: list[str], jobs: int = 1, src: Path = SOURCES, figures: Path = FIGURES, on_done=None) -> list[Outcome]:
    """Execute the named notebooks, `jobs` at a time; record each one as soon as it finishes.

    A failed notebook leaves its previous executed copy and entry alone (so it stays out of date); the others
    are recorded whatever happens to it.
    """
    for stale in (figures / OUT_DIR).rglob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink()
    paths = sources(src)
    manifest = read_manifest(figures)
    for gone in set(manifest) - set(paths):  # its source was deleted: so go its outputs
        for rel in manifest.pop(gone).get("outputs", {}):
            (figures / rel).unlink(missing_ok=True)
        if (figures / OUT_DIR / gone).is_dir():
            shutil.rmtree(figures / OUT_DIR / gone)
        write_manifest(manifest, figures)
    names = sorted(names, key=lambda n: -manifest.get(n, {}).get("seconds", 1e9))
    outcomes = []

    def done(name, raw):
        if raw["ok"]:
            record(name, raw, paths[name], manifest, figures)
            outcome = Outcome(name, True, raw["seconds"], cpu_seconds=raw["cpu_seconds"])
        else:
            outcome = Outcome(name, False, error=raw["error"], traceback=raw.get("traceback", ""))
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)

    if jobs <= 1 or len(names) <= 1:
        for name in names:
            done(name, _execute_safely(str(paths[name])))
        return outcomes
    with ProcessPoolExecutor(min(jobs, len(names)), mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(_execute_safely, str(paths[n])): n for n in names}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        raw = future.result()
                    except Exception as err:
                        raw = {"ok": False, "error": f"{pending[future]}.ipynb: worker died: {err!r}"}
                    done(pending.pop(future), raw)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return outcomes


# ---------------------------------------------------------------- on the site (called by vgsite/docs_hooks.py)

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
        file = figures / OUT_DIR / name / f"{sha(png)[:16]}.png"
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
