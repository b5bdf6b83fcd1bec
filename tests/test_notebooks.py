"""The companion notebooks: executed at build time, cached, failing loudly, and light on the site."""
import json
import re

import nbformat
import pytest

from conftest import ROOT, run_vgsite
from vgsite import notebooks
from vgsite.cache import vgsite_imports

SOURCES = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in SOURCES]
MAX_PAGE = 250_000


def write_notebook(path, *cells):
    """A notebook of code cells (strings) and markdown cells (strings starting with '#')."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for i, text in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(text) if text.startswith("#") else nbformat.v4.new_code_cell(text)
        cell["id"] = f"c{i}"
        nb.cells.append(cell)
    path.write_text(nbformat.writes(nb) + "\n")


# ---------------------------------------------------------------- the sources

@pytest.mark.parametrize("path", SOURCES, ids=NAMES)
def test_source_is_stored_without_outputs_and_says_how_to_run_it(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip the outputs before committing"
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# ")
    assert "pip install -e ." in "".join(first["source"])
    sources = "\n".join("".join(c["source"]) for c in code)
    assert "from vgsite" in sources  # the package, not a copy of its code
    assert any(m.startswith("vgsite.topics.") for m in notebooks.used_modules(nb)), "runs no topic's code"
    assert any("Your turn" in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_used_modules_follow_imports_and_experiment_ids():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('%matplotlib inline\nfrom vgsite.probes import probe_at_init\n'
                                          'import numpy\nrun("vanishing/depth-sweep")\nx = "a/b"')]
    found = notebooks.used_modules(nb)
    assert found == {"vgsite.probes", "vgsite.topics.vanishing"}  # what it imports, not the code that runs it
    # the hash covers what those import in turn: nets (through probes)
    assert "vgsite.nets" in set().union(*(vgsite_imports(m) for m in found))


def test_the_notebook_helpers_are_not_in_a_notebooks_code_hash():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from vgsite.lab import run_experiment, setup, show")]
    covered = set().union(*(vgsite_imports(m) for m in notebooks.used_modules(nb)))
    assert "vgsite.lab" in covered
    assert not covered & {"vgsite.notebooks", "vgsite.runner", "vgsite.cache", "vgsite.docs_hooks", "vgsite.cli"}


@pytest.mark.parametrize("path", SOURCES, ids=NAMES)
def test_notebooks_import_the_lab_not_the_runner(path):
    assert "vgsite.notebooks" not in path.read_text()


# ---------------------------------------------------------------- executing and caching

def test_cache_reexecutes_only_what_changed_and_a_failing_cell_fails_clearly(project):
    src = project / "docs" / "notebooks"
    for path in src.glob("*.ipynb"):
        path.unlink()
    write_notebook(src / "alpha.ipynb", "# Alpha", "from vgsite.probes import probe_at_init",
                   "print(len(probe_at_init(3, 8)['signal']))")
    write_notebook(src / "beta.ipynb", "# Beta", "from vgsite.plots import figure\nfrom vgsite.lab import show",
                   "fig, ax = figure(width=3, height=2)\nax.plot([0, 1], [1, 0])\nshow(fig, alt='a line')")
    out = project / "figures" / "notebooks"

    first = run_vgsite(project, "notebooks", "-j", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 executed, 0 failed" in first.stdout
    alpha, beta = out / "alpha.ipynb", out / "beta.ipynb"
    executed = nbformat.reads(alpha.read_text(), as_version=4)
    assert executed.cells[2].outputs[0]["text"] == "3\n"
    assert "execution" not in executed.cells[2].metadata  # no timestamps: a rerun writes the same bytes
    light, night = sorted((out / "beta").glob("*.png"), key=lambda p: p.name.endswith(".dark.png"))
    assert night.name == light.name.replace(".png", ".dark.png")  # the image and its dark copy, files for the page
    from PIL import Image
    with Image.open(light) as day, Image.open(night) as dark:
        assert day.size == dark.size and day.convert("L").getpixel((1, 1)) > 240 > 60 > dark.convert("L").getpixel((1, 1))
    shown = nbformat.reads(beta.read_text(), as_version=4).cells[2].outputs[0]["data"]
    assert "<img" in shown["text/html"] and notebooks.DARK_PNG in shown  # Jupyter shows the light one
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    second = run_vgsite(project, "notebooks")
    assert second.returncode == 0 and "All 2 notebooks are up to date." in second.stdout, second.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps  # nothing rewritten

    forced = run_vgsite(project, "notebooks", "beta", "--force")  # executed again: the very same bytes
    assert forced.returncode == 0 and "1 executed" in forced.stdout, forced.stdout + forced.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"} == \
        {p: t for p, t in stamps.items() if p.name != "manifest.json"}

    beta_before = beta.read_bytes()
    nb = nbformat.read(src / "beta.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("ratio = 1 / 0  # oops\nprint(ratio)"))
    nbformat.write(nb, src / "beta.ipynb")
    third = run_vgsite(project, "notebooks")
    assert third.returncode == 1
    assert "Executing 1 of 2" in third.stdout and "beta: notebook changed" in third.stdout
    assert ("beta.ipynb, cell 4 of 4 ('ratio = 1 / 0  # oops') failed: ZeroDivisionError: division by zero"
            in third.stderr), third.stderr
    assert beta.read_bytes() == beta_before and alpha.stat().st_mtime_ns == stamps[alpha]  # earlier copies kept

    probes = project / "vgsite" / "probes.py"
    probes.write_text(probes.read_text() + "\n# a change\n")
    listing = run_vgsite(project, "list")
    assert re.search(r"alpha\.ipynb\s+code changed", listing.stdout), listing.stdout  # imports probes
    assert re.search(r"beta\.ipynb\s+notebook changed", listing.stdout), listing.stdout  # still the failed edit


# ---------------------------------------------------------------- the real notebooks, as built

@pytest.mark.parametrize("name", NAMES)
def test_notebook_executed_without_error_and_is_current(site_dir, name):
    source = ROOT / "docs" / "notebooks" / f"{name}.ipynb"
    entry = notebooks.read_manifest().get(name)
    assert notebooks.staleness(source, entry) is None
    nb = nbformat.read(ROOT / "figures" / "notebooks" / f"{name}.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no figure"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_page_shows_its_figure_and_is_light(site_dir, name):
    page = site_dir / "notebooks" / name / "index.html"
    html = page.read_text()
    assert len(html.encode()) < MAX_PAGE
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    pngs = [src for src in images if src.startswith("data:image/png") or src.endswith(".png")]
    assert pngs, "no PNG figure on the page"
    for src in pngs:
        assert src.startswith("data:") or (page.parent / src).resolve().is_file(), src
    assert re.search(r'<img [^>]*alt="[^"]{10,}"', html), "figures need alt text"
    # no request to another host: no script, stylesheet or image from a URL (links to read are fine)
    assert not re.search(r'<(script|img|iframe)[^>]+src="(https?:)?//', html)
    assert not re.search(r'<link[^>]+href="(https?:)?//', html)
    assert "mathjax" not in html.lower() and "require.js" not in html
    assert (page.parent / f"{name}.ipynb").is_file()  # the download
    assert f'href="{name}.ipynb"' in html


def test_show_adds_the_dark_copy_only_for_the_site_and_leaves_the_figure_as_it_was(monkeypatch):
    import IPython.display

    from vgsite import lab
    from vgsite.plots import figure

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda bundle, raw: shown.append(bundle))
    fig, ax = figure(width=3, height=2)
    (line,) = ax.plot([0, 1], [1, 0])
    color = line.get_color()
    monkeypatch.delenv(lab.DARK_FIGURES_ENV, raising=False)
    lab.show(fig, alt="a line")
    monkeypatch.setenv(lab.DARK_FIGURES_ENV, "1")
    lab.show(fig, alt="a line")
    assert lab.DARK_PNG not in shown[0] and lab.DARK_PNG in shown[1]
    assert shown[1]["image/png"] != shown[1][lab.DARK_PNG]
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0) and line.get_color() == color  # the reader's figure as it was


@pytest.mark.parametrize("name", NAMES)
def test_notebook_page_shows_each_figure_in_the_readers_theme(site_dir, name):
    page = site_dir / "notebooks" / name / "index.html"
    pairs = re.findall(r'<a class="vg-zoom vg-light" href="([^"]+)"[^>]*><img [^>]*></a>'
                       r'<a class="vg-zoom vg-dark" href="([^"]+)"', page.read_text())
    assert pairs, "no figure with a dark theme's copy"
    for light, dark in pairs:
        assert dark == light.replace(".png", ".dark.png") and (page.parent / dark).resolve().is_file()
    assert "data:image/png" not in page.read_text()


def test_search_index_has_no_image_blobs(site_dir):
    index = (site_dir / "search" / "search_index.json").read_text()
    assert "base64" not in index and "iVBORw0KGgo" not in index  # a PNG's first bytes, base64-encoded
    docs = json.loads(index)["docs"]
    assert any(d["location"].startswith("notebooks/") and len(d["text"]) > 50 for d in docs)


@pytest.mark.parametrize("name", NAMES)
def test_topic_page_links_its_notebook(name):
    from vgsite.registry import topic_page

    page = topic_page(name)
    text = page.read_text()
    if len(text.splitlines()) < 5:
        pytest.skip(f"{page.name} is still a stub")
    assert f"notebooks/{name}.ipynb" in text, f"{page.name} does not link its companion notebook"


def test_build_executes_the_notebooks_after_the_figures_and_before_the_site(monkeypatch):
    from vgsite import cli

    calls = []
    monkeypatch.setattr(cli, "run_figures", lambda *a: calls.append("figures") or 0)
    monkeypatch.setattr(cli, "run_notebooks", lambda *a: calls.append("notebooks") or 0)
    monkeypatch.setattr(cli, "build_site", lambda dest: calls.append("site") or 0)
    with pytest.raises(SystemExit) as done:
        cli.main(["build"])
    assert done.value.code == 0 and calls == ["figures", "notebooks", "site"]

    calls.clear()
    monkeypatch.setattr(cli, "run_notebooks", lambda *a: calls.append("notebooks") or 1)  # a cell failed
    with pytest.raises(SystemExit) as done:
        cli.main(["build"])
    assert done.value.code == 1 and calls == ["figures", "notebooks"]  # the old site stays


def test_a_kernel_that_dies_before_its_first_reply_is_started_again(monkeypatch, tmp_path):
    """Two processes starting kernels at once can race for a port; the loser dies before kernel_info."""
    import nbclient
    import nbformat

    from vgsite import notebooks

    path = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), path)
    real, calls = nbclient.NotebookClient.execute, []

    def flaky(self, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(self, **kw)

    monkeypatch.setattr(nbclient.NotebookClient, "execute", flaky)
    result = notebooks.execute(path)
    assert len(calls) == 2
    assert json.loads(result["notebook"])["cells"][0]["outputs"][0]["data"]["text/plain"] in ("2", ["2"])
