"""Up to date means unchanged; failures and interruptions lose nothing; outputs do not depend on --jobs."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_vgsite

TOPIC = "vanishing"


def manifest(project):
    return json.loads((project / "figures" / "manifest.json").read_text())["experiments"]


def outputs(project):
    return {p.relative_to(project / "figures").as_posix(): p.read_bytes()
            for p in sorted((project / "figures").rglob("*")) if p.is_file() and p.name not in ("manifest.json", "README.md")}


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_nothing_reruns_when_nothing_changed_and_an_edit_reruns_its_topic(built_copy):
    project = built_copy  # its TOPIC figures are made already (conftest.built_project)
    mtimes = {p: p.stat().st_mtime_ns for p in (project / "figures").rglob("*.png")}

    again = run_vgsite(project, "figures", TOPIC, "-j", "1")
    assert again.returncode == 0
    assert "All 3 experiments are up to date." in again.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes

    assert run_vgsite(project, "figures", "overview", "-j", "1").returncode == 0
    edit(project / "vgsite" / "topics" / f"{TOPIC}.py", '"""Why gradients vanish', '"""Why gradients vanish (edited)')
    edited = run_vgsite(project, "figures", TOPIC, "overview", "-j", "1")
    assert edited.returncode == 0
    assert "code changed" in edited.stdout
    assert "3 ran, 0 failed, 1 up to date" in edited.stdout  # the edited topic only, not overview
    # Re-running made the same bytes, so no file was rewritten (mkdocs serve would reload otherwise).
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_an_edit_to_a_shared_module_reruns_the_topics_that_import_it(built_copy):
    project = built_copy  # its TOPIC figures are made already (conftest.built_project)
    edit(project / "vgsite" / "probes.py", '"""What the topics measure', '"""What the topics measure (edited)')
    result = run_vgsite(project, "list")
    assert "code changed" in result.stdout
    edit(project / "vgsite" / "cli.py", '"""The vgsite command line', '"""The vgsite command line (edited)')
    assert run_vgsite(project, "figures", TOPIC, "-j", "1").returncode == 0
    # the code that renders every experiment's figures to bytes is part of every experiment's code
    edit(project / "vgsite" / "outputs.py", '"""Writing results so that', '"""Writing results (edited) so that')
    assert "code changed" in run_vgsite(project, "list").stdout
    assert "3 ran" in run_vgsite(project, "figures", TOPIC, "-j", "1").stdout
    edit(project / "vgsite" / "cli.py", "(edited)", "(edited twice)")  # no experiment imports the CLI
    assert "All 3 experiments are up to date." in run_vgsite(project, "figures", TOPIC, "-j", "1").stdout


def test_force_reruns_and_a_changed_output_is_detected(built_copy):
    project = built_copy  # its TOPIC figures are made already (conftest.built_project)
    forced = run_vgsite(project, "figures", TOPIC, "--force", "-j", "1")
    assert "3 ran" in forced.stdout
    (project / "figures" / TOPIC / "depth-sweep.png").write_bytes(b"not a png")
    listing = run_vgsite(project, "list").stdout
    assert f"{TOPIC}/depth-sweep.png modified" in listing
    assert "1 ran" in run_vgsite(project, "figures", TOPIC, "-j", "1").stdout


def test_a_failing_experiment_keeps_earlier_results_and_a_valid_manifest(built_copy):
    project = built_copy  # its TOPIC figures are made already (conftest.built_project)
    before = outputs(project)
    entry = manifest(project)[f"{TOPIC}/gradient-norms"]
    module = project / "vgsite" / "topics" / f"{TOPIC}.py"
    edit(module, "def gradient_norms(cfg):\n", "def gradient_norms(cfg):\n    raise RuntimeError('boom')\n")

    result = run_vgsite(project, "figures", TOPIC, "-j", "2")
    assert result.returncode == 1
    assert f"FAIL {TOPIC}/gradient-norms" in result.stdout
    assert "RuntimeError: boom" in result.stdout
    assert "2 ran, 1 failed" in result.stdout
    assert outputs(project) == before  # the others re-ran to the same bytes; the failed one kept its old files
    assert manifest(project)[f"{TOPIC}/gradient-norms"] == entry
    assert "code changed" in run_vgsite(project, "list").stdout


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_run_keeps_what_finished_and_the_next_run_carries_on(project, how):
    module = project / "vgsite" / "topics" / f"{TOPIC}.py"
    edit(module, "def depth_sweep(cfg):\n",
         "def depth_sweep(cfg):\n    import os, time; time.sleep(120 if os.environ.get('SLOW') else 0)\n")
    env = {**os.environ, "PYTHONPATH": str(project), "NO_COLOR": "1", "SLOW": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vgsite", "figures", TOPIC, "-j", "1"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal, even when pytest itself runs in the background
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline:
        entries = manifest(project) if (project / "figures" / "manifest.json").exists() else {}
        if len(entries) == 2:
            break
        time.sleep(0.2)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    if how == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, out + err
        assert "Interrupted: 2 finished experiments were kept" in err
    assert set(manifest(project)) == {f"{TOPIC}/activation-derivatives", f"{TOPIC}/gradient-norms"}
    assert not list((project / "figures").rglob("*.tmp"))

    result = run_vgsite(project, "figures", TOPIC, "-j", "1")
    assert "Running 1 of 3 experiments" in result.stdout


def test_outputs_are_byte_identical_whatever_the_number_of_jobs(tmp_path):
    from conftest import copy_project

    one = copy_project(tmp_path / "one")
    two = copy_project(tmp_path / "two")
    assert run_vgsite(one, "figures", TOPIC, "-j", "1").returncode == 0
    assert run_vgsite(two, "figures", TOPIC, "-j", "2").returncode == 0
    assert outputs(one) == outputs(two)
    assert len(outputs(one)) == 15  # 3 figures, light and dark, each at 2x and 1x, and 3 records
    for data in outputs(one).values():
        assert b"Software" not in data and b"Date" not in data


def _record_many(figures, worker):
    from vgsite.runner import update_manifest

    for j in range(40):
        update_manifest(f"topic/exp-{worker}-{j}", {"seconds": j}, figures)


def test_two_runs_at_once_keep_each_others_manifest_entries(tmp_path):
    import multiprocessing

    from vgsite.runner import read_manifest

    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_record_many, args=(tmp_path, w)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert len(read_manifest(tmp_path)) == 3 * 40
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no lock file or temp file left
