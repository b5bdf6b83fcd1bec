"""Never lose a file (issue 16): untrusted manifests, temporary files, locks, one-line errors, the site swap,
signals and concurrent runs. Most cases run on a tiny project (one fake topic of three instant experiments, a
one-page site) so that the battery stays fast; a few run in this process."""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_vgsite
from vgsite import cache
from vgsite.cache import Manifest

TINY = '''"""A tiny topic for the reliability tests."""
import os
import time

from vgsite.plots import figure, finish
from vgsite.registry import Plot, Result, experiment


def draw(name, n):
    fig, ax = figure(width=2, height=1.5)
    ax.plot(range(n), range(n))
    finish(ax, "x", "y", legend=False)
    return Plot(name, fig, alt=f"a line of {n} points")


@experiment(n=3)
def line(cfg):
    return Result({"values": list(range(cfg.n))}, [draw("line", cfg.n)])


@experiment(n=4)
def other(cfg):
    return Result({"values": list(range(cfg.n))}, [draw("other", cfg.n)])


@experiment(n=5)
def slow(cfg):
    time.sleep(float(os.environ.get("TINY_SLEEP", "0")))
    return Result({"values": list(range(cfg.n))}, [draw("slow", cfg.n)])
'''

MKDOCS = """site_name: tiny
docs_dir: docs
strict: true
hooks:
  - vgsite/docs_hooks.py
  - slow_hook.py
markdown_extensions:
  - attr_list
  - md_in_html
nav:
  - Home: index.md
  - Notebooks:
      - notebooks/tiny.ipynb
"""

NOTEBOOK = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# Tiny"]},
                      {"cell_type": "code", "execution_count": None, "id": "b", "metadata": {}, "outputs": [],
                       "source": ["import os, time\n", "time.sleep(float(os.environ.get('NB_SLEEP', '0')))\n",
                                  "print(6 * 7)"]}],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}

# Fault injection in the child process: PYTHONPATH holds the project, so its sitecustomize.py runs at start-up.
SITECUSTOMIZE = '''import errno, os, tempfile
FAULT = os.environ.get("VGSITE_FAULT")
if FAULT:
    FIGURES = os.path.join(os.getcwd(), "figures")
    if FAULT == "readonly":
        _mkstemp = tempfile.mkstemp
        def mkstemp(*a, dir=None, **kw):
            if dir is not None and os.path.abspath(dir).startswith(FIGURES):
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return _mkstemp(*a, dir=dir, **kw)
        tempfile.mkstemp = mkstemp
    if FAULT == "enospc":
        _replace = os.replace
        def replace(src, dst, *a, **kw):
            if os.path.abspath(dst).startswith(FIGURES):
                raise OSError(errno.ENOSPC, "No space left on device", str(dst))
            return _replace(src, dst, *a, **kw)
        os.replace = replace
'''


def make_tiny(dest: Path) -> Path:
    shutil.copytree(ROOT / "vgsite", dest / "vgsite", ignore=shutil.ignore_patterns("__pycache__"))
    for topic in (dest / "vgsite" / "topics").glob("[!_]*.py"):
        topic.unlink()
    (dest / "vgsite" / "topics" / "tiny.py").write_text(TINY)
    (dest / "docs" / "notebooks").mkdir(parents=True)
    (dest / "docs" / "index.md").write_text('# Tiny\n\n{{ figure("tiny/line") }}\n')
    (dest / "docs" / "notebooks" / "tiny.ipynb").write_text(json.dumps(NOTEBOOK, indent=1) + "\n")
    (dest / "mkdocs.yml").write_text(MKDOCS)
    (dest / "figures").mkdir()
    (dest / "figures" / "README.md").write_text("# figures/\n")
    (dest / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (dest / "slow_hook.py").write_text("import os, time\n\n\ndef on_post_build(config):\n"
                                       "    time.sleep(float(os.environ.get('MKDOCS_SLEEP', '0')))\n")
    return dest


@pytest.fixture
def tiny(tmp_path):
    return make_tiny(tmp_path / "tiny")


def vg(project, *args, env=None, **kw):
    if env:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return run_vgsite(project, *args, **kw)
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return run_vgsite(project, *args, **kw)


def start(project, *args, env=None):
    full = {**os.environ, "PYTHONPATH": str(project), "NO_COLOR": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "vgsite", *args], cwd=project, env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def no_traceback(result):
    text = (result.stdout or "") + (result.stderr or "")
    assert "Traceback" not in text, text


def one_error_line(result, needle):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0], lines[0]
    no_traceback(result)


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def manifest_of(project):
    return json.loads((project / "figures" / "manifest.json").read_text())["experiments"]


def wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- untrusted manifests (in this process)

def book(tmp_path, content, kind="experiments"):
    folder = tmp_path / "figures"
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_text(content if isinstance(content, str) else json.dumps(content))
    names = __import__("vgsite.runner", fromlist=["NAMES"]).NAMES
    return Manifest(folder, kind, names, rebuild=lambda: {})


GOOD = {"outputs": {"t/a.png": "0" * 64}, "seconds": 1.0}


@pytest.mark.parametrize("content, needle", [
    ("[1, 2, 3]", "is not a manifest (list)"),
    ('{"experiments": [1]}', "is not a manifest (no 'experiments' object)"),
    ('{"experiments": {"t/a": ', "is not valid JSON"),
    ("\xff\xfe", "is not valid JSON"),
])
def test_a_manifest_of_the_wrong_shape_is_said_in_one_line_and_rebuilt(tmp_path, capsys, content, needle):
    assert book(tmp_path, content).read() == {}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "rebuilt from the outputs" in err[0]


@pytest.mark.parametrize("entry, needle", [
    ("a string", "is a str, not an object"),
    ({"outputs": ["t/a.png"]}, "outputs that are a list"),
    ({"outputs": {"../docs/index.md": "0" * 64}}, "outside"),
    ({"outputs": {"/etc/passwd": "0" * 64}}, "outside"),
    ({"outputs": {"t": "0" * 64}}, "names a folder"),
    ({"outputs": {"manifest.json": "0" * 64}}, "outside"),
    ({"outputs": {"t/a.png": "not a digest"}}, "no sha256"),
    ({"outputs": {}, "seconds": "slow"}, "no number"),
])
def test_a_bad_entry_is_dropped_with_one_line_and_the_good_ones_kept(tmp_path, capsys, entry, needle):
    (tmp_path / "figures" / "t").mkdir(parents=True)
    entries = book(tmp_path, {"experiments": {"t/bad": entry, "t/good": GOOD}}).read()
    assert entries == {"t/good": GOOD}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "'t/bad'" in err[0] and "entry ignored" in err[0]


@pytest.mark.parametrize("name", ["..", "../x", "/abs", ".hidden/x", "a/../../b"])
def test_a_name_that_could_be_a_path_is_refused(tmp_path, capsys, name):
    assert book(tmp_path, {"experiments": {name: GOOD}}).read() == {}
    assert "is not a valid name" in capsys.readouterr().err


def test_a_link_out_of_the_folder_is_refused(tmp_path, capsys):
    (tmp_path / "outside.txt").write_text("precious")
    (tmp_path / "figures" / "t").mkdir(parents=True)
    (tmp_path / "figures" / "t" / "a.png").symlink_to(tmp_path / "outside.txt")
    assert book(tmp_path, {"experiments": {"t/a": GOOD}}).read() == {}
    assert "outside" in capsys.readouterr().err


def test_a_manifest_that_is_a_folder_gives_one_line_on_read_and_write(tmp_path, capsys):
    (tmp_path / "figures" / "manifest.json").mkdir(parents=True)
    manifest = Manifest(tmp_path / "figures", "experiments", __import__("vgsite.runner").runner.NAMES)
    assert manifest.read() == {}
    assert "cannot be read" in capsys.readouterr().err
    with pytest.raises(cache.CacheError, match="cannot write figures|cannot write .*manifest.json"):
        manifest.update({"t/a": GOOD})


def test_a_poisoned_notebook_manifest_deletes_nothing_outside_its_folder(tmp_path, capsys):
    from vgsite import notebooks

    figures, src = tmp_path / "figures", tmp_path / "src"
    (figures / "notebooks").mkdir(parents=True)
    src.mkdir()
    (figures / "README.md").write_text("keep")
    (figures / "manifest.json").write_text("{}")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("keep")
    (figures / "notebooks" / "manifest.json").write_text(json.dumps({"notebooks": {
        "..": {"outputs": {}},
        "old": {"outputs": {"../docs/index.md": "0" * 64, "notebooks/../manifest.json": "0" * 64}},
        "gone": {"outputs": {"notebooks/gone.ipynb": "0" * 64}}}}))
    (figures / "notebooks" / "gone.ipynb").write_text("{}")
    notebooks.forget_deleted(figures, src)
    assert (tmp_path / "docs" / "index.md").read_text() == "keep"
    assert (figures / "README.md").read_text() == "keep" and (figures / "manifest.json").exists()
    assert not (figures / "notebooks" / "gone.ipynb").exists()  # a deleted notebook's own output does go
    assert notebooks.manifest(figures).read() == {}
    err = capsys.readouterr().err
    assert "'..' is not a valid name" in err and "'old' names a path outside" in err


def _update_notebooks(figures, worker):
    from vgsite import notebooks

    for j in range(25):
        notebooks.manifest(figures).update({f"nb{worker}x{j}": {"seconds": j}})


def test_the_notebook_manifest_is_updated_under_a_lock(tmp_path):
    import multiprocessing

    from vgsite import notebooks

    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_update_notebooks, args=(tmp_path, w)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert len(notebooks.manifest(tmp_path).read()) == 50


# ---------------------------------------------------------------- temporary files and modes (in this process)

def test_a_temporary_file_names_its_process_and_only_dead_owners_files_are_swept(tmp_path):
    from vgsite.outputs import sweep_tmp, write_if_changed

    seen = []
    real = os.replace
    os.replace = lambda a, b: seen.append(Path(a).name) or real(a, b)
    try:
        write_if_changed(tmp_path / "x.json", b"{}")
    finally:
        os.replace = real
    assert seen[0].startswith(f".x.json.{os.getpid()}.") and seen[0].endswith(".tmp")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    try:
        live = tmp_path / f".a.png.{sleeper.pid}.abc123.tmp"
        gone = tmp_path / "sub" / f".b.png.{int(dead.stdout)}.abc123.tmp"
        gone.parent.mkdir()
        live.write_bytes(b"x")
        gone.write_bytes(b"x")
        assert sweep_tmp(tmp_path) == 1
        assert live.exists() and not gone.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_modes_the_umask_allows(tmp_path, mask, mode):
    from vgsite.outputs import write_if_changed

    old = os.umask(mask)
    try:
        write_if_changed(tmp_path / "new" / "x.png", b"png")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new" / "x.png").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == mode | (mode & 0o444) >> 2


def test_the_swap_exchanges_two_folders_in_one_step(tmp_path):
    from vgsite.cli import exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b" / "x").write_text("b")
    if not exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("no renameat2 here: the swap falls back to two renames")
    assert (tmp_path / "a" / "x").read_text() == "b" and (tmp_path / "b" / "x").read_text() == "a"


# ---------------------------------------------------------------- the command line on a tiny project

def test_the_tiny_project_runs_its_experiments_and_modes_are_0644(tiny):
    old = os.umask(0o022)
    try:
        result = vg(tiny, "figures", "-j", "1")
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 ran, 0 failed, 0 up to date" in result.stdout
    for path in (tiny / "figures").rglob("*"):
        want = 0o755 if path.is_dir() else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def test_figures_of_an_unknown_experiment_says_unknown_experiment(tiny):
    result = vg(tiny, "figures", "tiny/nope")
    assert result.returncode == 2
    one_error_line(result, "unknown experiment 'tiny/nope'")


def test_a_broken_topic_breaks_only_itself(tiny):
    (tiny / "vgsite" / "topics" / "broken.py").write_text('"""Broken."""\nx = 1 / 0\n')
    (tiny / "vgsite" / "topics" / "typo.py").write_text('"""Typo."""\ndef f(:\n')
    listing = vg(tiny, "list")
    assert listing.returncode == 0, listing.stderr
    assert "import failed: ZeroDivisionError: division by zero (vgsite/topics/broken.py, line 2)" in listing.stdout
    assert "import failed: SyntaxError" in listing.stdout and "typo.py, line 2" in listing.stdout
    assert "tiny         line" in listing.stdout or "tiny  " in listing.stdout
    no_traceback(listing)
    one = vg(tiny, "figures", "tiny", "-j", "1")
    assert one.returncode == 0 and "3 ran" in one.stdout, one.stderr
    named = vg(tiny, "figures", "broken")
    assert named.returncode == 1
    one_error_line(named, "topic 'broken' cannot be imported: ZeroDivisionError")
    every = vg(tiny, "figures", "-j", "1")
    assert every.returncode == 1 and "All 3 experiments are up to date." in every.stdout
    no_traceback(every)


def test_a_read_only_figures_folder_fails_in_one_line_before_computing(tiny):
    result = vg(tiny, "figures", "-j", "1", env={"VGSITE_FAULT": "readonly"})
    assert result.returncode == 1
    one_error_line(result, "figures/ is not writable (Permission denied): nothing was run")
    assert "Running" not in result.stdout


def test_a_full_disk_fails_each_experiment_in_one_line_and_tries_them_all(tiny):
    result = vg(tiny, "figures", "-j", "1", env={"VGSITE_FAULT": "enospc"})
    assert result.returncode == 1
    no_traceback(result)
    assert result.stdout.count("FAIL") == 3 and "No space left on device" in result.stdout
    assert "0 ran, 3 failed" in result.stdout
    assert not list((tiny / "figures").rglob("*.tmp"))


def test_an_unreadable_manifest_is_rebuilt_from_the_outputs(tiny):
    assert vg(tiny, "figures", "-j", "1").returncode == 0
    before = manifest_of(tiny)
    record = tiny / "figures" / "tiny" / "other.json"
    data = json.loads(record.read_text())
    data["config"]["n"] = 99  # this record no longer matches its experiment: it must run again
    record.write_text(json.dumps(data))
    (tiny / "figures" / "manifest.json").write_text('{"experiments": {"tiny/li')
    listing = vg(tiny, "list")
    assert listing.returncode == 0
    one_error_line(listing, "figures/manifest.json is not valid JSON: rebuilt from the outputs that match their "
                            "records (2 experiments kept")
    assert re.search(r"tiny\s+other\s+never run", listing.stdout), listing.stdout
    assert re.search(r"tiny\s+line\s+up to date", listing.stdout), listing.stdout
    again = vg(tiny, "figures", "tiny/line", "-j", "1")
    assert again.returncode == 0 and "All 1 experiments are up to date." in again.stdout, again.stdout
    rebuilt = manifest_of(tiny)
    assert set(rebuilt) == {"tiny/line", "tiny/slow"}  # the rest kept, not only the topic asked for
    assert rebuilt["tiny/line"]["outputs"] == before["tiny/line"]["outputs"]


def test_a_stale_temporary_file_is_swept_even_when_nothing_runs(tiny):
    assert vg(tiny, "figures", "-j", "1").returncode == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tiny / "figures" / "tiny" / f".line.png.{int(dead.stdout)}.zz9.tmp"
    stale.write_bytes(b"half")
    assert "All 3 experiments are up to date." in vg(tiny, "figures").stdout
    assert not stale.exists()


def test_two_figures_runs_at_once_both_succeed_and_keep_everything(tiny):
    procs = [start(tiny, "figures", "--force", "-j", "1") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert set(manifest_of(tiny)) == {"tiny/line", "tiny/other", "tiny/slow"}
    assert not list((tiny / "figures").rglob("*.tmp"))
    for rel, digest in manifest_of(tiny)["tiny/line"]["outputs"].items():
        assert cache.sha((tiny / "figures" / rel).read_bytes()) == digest


@pytest.mark.parametrize("content, needle", [("{not json", "tiny.ipynb is not valid JSON"),
                                             ('{"nbformat": 4}', "tiny.ipynb is not a notebook")])
def test_a_broken_notebook_is_named_in_one_line(tiny, content, needle):
    (tiny / "docs" / "notebooks" / "tiny.ipynb").write_text(content)
    listing = vg(tiny, "list")
    assert listing.returncode == 0 and needle in listing.stdout
    no_traceback(listing)
    run = vg(tiny, "notebooks")
    assert run.returncode == 1 and needle in run.stderr
    no_traceback(run)


def test_a_corrupt_notebook_manifest_is_rebuilt_from_the_executed_copies(tiny):
    (tiny / "figures" / "notebooks").mkdir()
    shutil.copy(tiny / "docs" / "notebooks" / "tiny.ipynb", tiny / "figures" / "notebooks" / "tiny.ipynb")
    (tiny / "figures" / "notebooks" / "manifest.json").write_text("[1, 2, 3]")
    listing = vg(tiny, "list")
    assert re.search(r"tiny\s+tiny\.ipynb\s+up to date", listing.stdout), listing.stdout
    one_error_line(listing, "figures/notebooks/manifest.json is not a manifest (list): rebuilt")


def test_serve_refuses_a_bad_address_with_exit_2_and_a_busy_port_with_one_line(tiny):
    import socket

    for bad in ("nonsense", "127.0.0.1:99999", "127.0.0.1:"):
        result = vg(tiny, "serve", "-a", bad)
        assert result.returncode == 2, bad
        one_error_line(result, "vgsite: error: Invalid value for '--dev-addr'")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.time()
        result = vg(tiny, "serve", "-a", f"127.0.0.1:{port}")
    assert result.returncode == 1 and time.time() - started < 30
    one_error_line(result, f"cannot serve on 127.0.0.1:{port}")
    assert not (tiny / "site").exists()


def test_clean_without_a_figures_folder(tiny):
    shutil.rmtree(tiny / "figures")
    result = vg(tiny, "clean")
    assert result.returncode == 0, result.stderr
    no_traceback(result)


# ---------------------------------------------------------------- notebooks (a kernel each: a few seconds)

def test_two_notebook_runs_at_once_keep_both_entries_and_a_poisoned_entry_harms_nothing(tiny):
    nb_dir = tiny / "docs" / "notebooks"
    shutil.copy(nb_dir / "tiny.ipynb", nb_dir / "second.ipynb")
    (tiny / "figures" / "notebooks").mkdir()
    (tiny / "figures" / "notebooks" / "manifest.json").write_text(json.dumps({"notebooks": {
        "..": {"outputs": {}}, "old": {"outputs": {"../docs/index.md": "0" * 64}}}}))
    before = snapshot(tiny / "docs")
    procs = [start(tiny, "notebooks", name, "--force") for name in ("tiny", "second")]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    for out, err in results:
        assert "Traceback" not in out + err
    entries = json.loads((tiny / "figures" / "notebooks" / "manifest.json").read_text())["notebooks"]
    assert set(entries) == {"tiny", "second"}
    assert snapshot(tiny / "docs") == before and (tiny / "figures" / "README.md").exists()


def test_sigterm_during_the_notebooks_exits_130_with_one_line(tiny):
    proc = start(tiny, "notebooks", "-j", "1", env={"NB_SLEEP": "60"})
    time.sleep(6)  # the kernel is up and the cell sleeps
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["Interrupted: 0 finished notebooks were kept; run again to carry on."], err
    time.sleep(1)
    assert "Traceback" not in err


# ---------------------------------------------------------------- signals at every phase

@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_exits_130_with_one_line(tiny, how):
    proc = start(tiny, "list")
    time.sleep(0.3)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal")
    assert proc.returncode == 130, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1 and "Interrupted" in err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_during_the_experiments_stops_at_once_and_keeps_what_finished(tiny, jobs):
    proc = start(tiny, "figures", "-j", jobs, env={"TINY_SLEEP": "60"})
    assert wait_for(lambda: (tiny / "figures" / "manifest.json").exists() and len(manifest_of(tiny)) == 2)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.time() - sent < 15  # the sleeping experiment is stopped, not waited for
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines() == ["Interrupted: 2 finished experiments were kept; run again to carry on."]
    assert set(manifest_of(tiny)) == {"tiny/line", "tiny/other"}
    assert not list((tiny / "figures").rglob("*.tmp"))


def test_random_kills_during_the_experiments_never_leave_a_torn_file(tiny):
    for delay in (0.8, 1.6, 2.4):
        proc = start(tiny, "figures", "--force", "-j", "2")
        time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=60)  # its workers end with it: none holds the pipes open
        if (tiny / "figures" / "manifest.json").exists():
            for entry in manifest_of(tiny).values():
                for rel, digest in entry["outputs"].items():
                    assert cache.sha((tiny / "figures" / rel).read_bytes()) == digest
    result = vg(tiny, "figures", "-j", "1")
    assert result.returncode == 0
    assert not list((tiny / "figures").rglob("*.tmp"))


def built(tiny):
    assert vg(tiny, "figures", "-j", "1").returncode == 0
    (tiny / "figures" / "notebooks").mkdir(exist_ok=True)
    shutil.copy(tiny / "docs" / "notebooks" / "tiny.ipynb", tiny / "figures" / "notebooks" / "tiny.ipynb")
    (tiny / "figures" / "notebooks" / "manifest.json").write_text("{}")
    return tiny


def site_build(tiny, mkdocs_sleep=0):
    """The MkDocs step and the swap alone, as `vgsite build` runs them (the steps before are tested above);
    MkDocs lingers `mkdocs_sleep` seconds after writing the site, so that a signal surely lands in its step."""
    env = {**os.environ, "PYTHONPATH": str(tiny), "NO_COLOR": "1", "MKDOCS_SLEEP": str(mkdocs_sleep)}
    return subprocess.Popen([sys.executable, "-c", SITE_ONLY], cwd=tiny, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


SITE_ONLY = """
from vgsite import ROOT, cli
@cli.cli.command("site-only")
def site_only():
    return cli.build_site(ROOT / "site")
cli.main(["site-only"])
"""


def test_the_site_build_swaps_in_a_readable_site_without_manifests_and_removes_leftovers(tiny):
    built(tiny)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tiny / f".site-{int(dead.stdout)}-abc"
    leftover.mkdir()
    (tiny / ".site-xyz").mkdir()  # an older vgsite's leftover, without a pid
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    live = tiny / f".site-{sleeper.pid}-abc"
    live.mkdir()
    try:
        old = os.umask(0o022)
        try:
            proc = site_build(tiny)
            out, err = proc.communicate(timeout=120)
        finally:
            os.umask(old)
        assert proc.returncode == 0, out + err
        assert not leftover.exists() and not (tiny / ".site-xyz").exists() and live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    site = tiny / "site"
    assert stat.S_IMODE(site.stat().st_mode) == 0o755
    assert stat.S_IMODE((site / "index.html").stat().st_mode) == 0o644
    assert not list(site.rglob("manifest.json"))  # timings stay out of the published site
    assert "figures/tiny/line.png" in (site / "index.html").read_text()


def test_a_truncated_record_fails_the_site_build_in_one_line_and_keeps_the_old_site(tiny):
    built(tiny)
    proc = site_build(tiny)
    proc.communicate(timeout=120)
    index = (tiny / "site" / "index.html").read_bytes()
    (tiny / "figures" / "tiny" / "line.json").write_text('{"experiment": "tiny/li')
    proc = site_build(tiny)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in out + err
    assert "tiny/line.json is not valid JSON" in err
    assert (tiny / "site" / "index.html").read_bytes() == index
    assert not list(tiny.glob(".site-*"))


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_kill_during_the_mkdocs_step_keeps_the_old_site(tiny, how):
    built(tiny)
    proc = site_build(tiny)
    proc.communicate(timeout=120)
    index = (tiny / "site" / "index.html").read_bytes()
    proc = site_build(tiny, mkdocs_sleep=30)
    assert wait_for(lambda: list(tiny.glob(".site-*/index.html")), timeout=60)  # MkDocs has written, not swapped
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    assert (tiny / "site" / "index.html").read_bytes() == index
    if how == signal.SIGTERM:
        assert proc.returncode == 130, out + err
        assert err.strip().splitlines()[-1] == "Interrupted: the site was not rebuilt; site/ is as it was."
        assert "Traceback" not in err
        assert not list(tiny.glob(".site-*"))
    else:
        proc = site_build(tiny)  # a later build removes what the killed one left
        assert proc.communicate(timeout=120) and proc.returncode == 0
        assert not list(tiny.glob(".site-*"))


def test_two_site_builds_at_once_and_kills_at_any_point_always_leave_a_whole_site(tiny):
    built(tiny)
    procs = [site_build(tiny) for _ in range(2)]
    assert [p.communicate(timeout=120) and p.returncode for p in procs] == [0, 0]
    assert (tiny / "site" / "index.html").is_file() and not list(tiny.glob(".site-*"))
    for delay in (1.0, 2.0, 3.0, 4.0):  # during start-up, MkDocs, the swap or the clean-up
        proc = site_build(tiny)
        time.sleep(delay)
        proc.kill()
        proc.communicate()
        assert (tiny / "site" / "index.html").is_file(), delay
    proc = site_build(tiny)
    assert proc.communicate(timeout=120) and proc.returncode == 0
    assert not list(tiny.glob(".site-*"))
