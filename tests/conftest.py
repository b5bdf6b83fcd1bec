import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from filelock import FileLock

# As in the experiments (vgsite.runner.execute): one torch thread, so the numbers the tests check are the
# ones the figures show, and pytest's processes do not oversubscribe the cores.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent


def copy_project(dest: Path) -> Path:
    """A copy of the project with an empty figures/, as in a fresh clone."""
    for name in ("vgsite", "docs", "mkdocs.yml", "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    (dest / "figures").mkdir()
    shutil.copy(ROOT / "figures" / "README.md", dest / "figures" / "README.md")
    return dest


def run_vgsite(cwd: Path, *args, timeout=600, **kw) -> subprocess.CompletedProcess:
    """`python -m vgsite ARGS` with the package of `cwd` (not the installed one) imported."""
    env = {**os.environ, "PYTHONPATH": str(cwd), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "vgsite", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path / "project")


def shared_dir(tmp_path_factory) -> Path:
    """A temporary folder shared by every worker of this run (pytest-xdist), or this process's own without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def once(tmp_path_factory, name):
    """Make something once per test run however many xdist workers ask for it: the first to come makes it while the
    others wait, then they all use it. Yields None when it is already made, else a `done` callback to call on
    success; a failure is recorded so that the others fail with the same message instead of making it again."""
    shared = shared_dir(tmp_path_factory)
    done, failed = shared / f"{name}.done", shared / f"{name}.failed"
    with FileLock(str(shared / f"{name}.lock")):
        if failed.exists():
            pytest.fail(failed.read_text(), pytrace=False)
        if done.exists():
            yield None
            return
        try:
            yield lambda: done.write_text("")
        except BaseException as err:
            failed.write_text(f"{name} could not be made (in another worker): {err}")
            raise


@pytest.fixture(scope="session")
def built_project(tmp_path_factory):
    """One copy of the project whose `vanishing` figures have been made, shared by the read-only tests (and by
    every xdist worker: it is made once)."""
    path = shared_dir(tmp_path_factory) / "built" / "project"
    with once(tmp_path_factory, "built-project") as make:
        if make:
            shutil.rmtree(path.parent, ignore_errors=True)
            path.parent.mkdir()
            copy_project(path)
            result = run_vgsite(path, "figures", "vanishing", "--jobs", "1")
            assert result.returncode == 0, result.stdout + result.stderr
            make()
    return path


@pytest.fixture
def built_copy(built_project, tmp_path):
    """A copy of `built_project` of this test's own, to change: its `vanishing` figures made already."""
    return Path(shutil.copytree(built_project, tmp_path / "project", symlinks=True))


def site_is_current() -> bool:
    """site/ was built after the last change to the pages, the figures, the config and the package (make's rule)."""
    index = ROOT / "site" / "index.html"
    if not index.exists():
        return False
    inputs = [ROOT / "mkdocs.yml", *(ROOT / "docs").rglob("*"), *(ROOT / "figures").rglob("*"),
              *(ROOT / "vgsite").rglob("*.py")]
    return max(p.stat().st_mtime_ns for p in inputs) < index.stat().st_mtime_ns


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory):
    """The real site, built from the real figures (experiments that are out of date run first); built once per
    test run, however many xdist workers use it, and not at all when site/ is newer than everything it is built
    from (as after `make test`'s own `make site`)."""
    with once(tmp_path_factory, "site") as make:
        if make and not site_is_current():
            result = subprocess.run([sys.executable, "-m", "vgsite", "build"], cwd=ROOT, capture_output=True,
                                    text=True)
            assert result.returncode == 0, result.stdout + result.stderr
        if make:
            make()
    return ROOT / "site"


PREFIX = "/vgsite/"  # GitHub Pages serves a project site under /REPO/


# The server of the published site: a process of its own, so that every xdist worker can use the one build; it
# ends when the test run does (the process it watches is pytest's own, or its xdist controller).
SERVER = """
import os, sys, time
from vgsite.bench import serve_site
site, prefix, watched = sys.argv[1], sys.argv[2], int(sys.argv[3])
with serve_site(site, prefix) as base:
    print(base, flush=True)
    while True:
        time.sleep(0.5)
        try:
            os.kill(watched, 0)
        except ProcessLookupError:
            break
"""


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """The site as the Pages workflow builds it (mkdocs build --strict, SITE_URL at a project sub-path), served at
    that address: http://127.0.0.1:PORT/vgsite/. Built once per test run and shared by every xdist worker (the
    browser tests spread over them): its address names the port, so one server serves it to all."""
    shared = shared_dir(tmp_path_factory)
    facts = shared / "published.json"
    with once(tmp_path_factory, "published") as make:
        if make:
            site = shared / "published" / "site"
            shutil.rmtree(site.parent, ignore_errors=True)
            site.mkdir(parents=True)
            controller = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()
            server = subprocess.Popen([sys.executable, "-c", SERVER, str(site), PREFIX, str(controller)], cwd=ROOT,
                                      stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
            base = server.stdout.readline().strip()
            server.stdout.close()
            assert base.startswith("http://"), "the server of the published site did not start"
            facts.write_text(json.dumps({"base": base, "dir": str(site), "pid": server.pid}))
            env = {**os.environ, "SITE_URL": base, "NO_MKDOCS_2_WARNING": "1"}
            proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                                   str(ROOT / "mkdocs.yml"), "--site-dir", str(site)], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"mkdocs build failed (are the figures made? run `make`):\n{proc.stderr}"
            make()
    known = json.loads(facts.read_text())
    return SimpleNamespace(base=known["base"], dir=Path(known["dir"]))


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by playwright (never `playwright install`), in which no host but the test server's
    resolves (vgsite.bench.OFFLINE): one per test module."""
    from vgsite.bench import CHROMIUM, CHROMIUM_ARGS, OFFLINE

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [OFFLINE])
        yield chromium
        chromium.close()


def pytest_sessionfinish(session):
    """Stop the published site's server as soon as the run ends (it would stop itself within half a second)."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not hasattr(session.config, "_tmp_path_factory"):
        return
    facts = session.config._tmp_path_factory.getbasetemp() / "published.json"
    if facts.exists():
        try:
            os.kill(json.loads(facts.read_text())["pid"], signal.SIGTERM)
        except (ProcessLookupError, ValueError, KeyError):
            pass


def pytest_collection_finish(session):
    """Under `--dist loadgroup` (make test), a test marked xdist_group carries its group in its id, which is how
    pytest-xdist keeps a group on one worker. Some pytest releases drop the tag silently (9.2 with xdist 3.8): then
    every worker would build and crawl the site again, so stop instead."""
    if session.config.getoption("loadgroup", False) and os.environ.get("PYTEST_XDIST_WORKER"):
        untagged = [item.nodeid for item in session.items
                    if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if untagged:
            raise pytest.UsageError(f"pytest-xdist did not tag {untagged[0]} with its xdist_group: this pytest and "
                                    "pytest-xdist do not work together (see requirements.lock)")


def pytest_terminal_summary(terminalreporter, config):
    """test_explorer's agreement table, when pytest-xdist spread its cases over workers (whose output is not shown)."""
    if not getattr(config.option, "numprocesses", None):
        return  # one process: test_report_agreement printed it
    rows = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            props = dict(getattr(report, "user_properties", ()))
            if getattr(report, "when", None) == "call" and "explorer_agreement" in props:
                rows[report.nodeid.rpartition("[")[2].rstrip("]")] = props["explorer_agreement"]
    if rows:
        worst = max(abs(a - b) for a, b in rows.values())
        terminalreporter.write_line(f"explorer vs torch, mean log10(|dL/dh_1| / |dL/dh_L|) over 5 draws; "
                                    f"worst gap {worst:.2f}")
        for key, (a, b) in rows.items():
            terminalreporter.write_line(f"  {key:40s} explorer {a:8.2f}  torch {b:8.2f}  gap {a - b:+.2f}")


def type_search(page, term: str):
    """Type `term` into Material's search box as a reader does (it searches on key events); wait for results."""
    box = page.locator("input.md-search__input")
    box.fill("")
    box.click()
    box.press_sequentially(term)
    page.wait_for_function("""term => document.querySelector(".md-search__input").value === term
        && /matching document/i.test(document.querySelector(".md-search-result__meta").textContent)""",
                           arg=term, timeout=10_000)
