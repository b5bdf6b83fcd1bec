"""Every command-line path, error paths included."""
import json

import pytest

from conftest import run_vgsite


def snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, needle", [
    (["figures", "nosuchtopic"], "unknown topic 'nosuchtopic'; choose from: overview, "),
    (["figures", "--jobs", "0"], "'--jobs'"),
    (["figures", "--jobs", "two"], "'--jobs'"),
    (["figures", "--device", "tpu"], "'tpu' is not one of 'cpu', 'cuda'"),
    (["list", "--device", "gpu"], "'gpu' is not one of 'cpu', 'cuda'"),
    (["figures", "--frobnicate"], "No such option '--frobnicate'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
])
def test_bad_input_gets_one_line_exit_2_and_changes_nothing(built_project, args, needle):
    before = snapshot(built_project / "figures")
    result = run_vgsite(built_project, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert lines[0].startswith("vgsite: error: ")
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(built_project / "figures") == before


def test_cuda_without_a_gpu_is_a_usage_error(built_project):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_vgsite(built_project, "figures", "--device", "cuda")
    assert result.returncode == 2
    assert result.stderr.strip() == "vgsite: error: Invalid value for '--device': no CUDA device is available here; use cpu"


def test_list_shows_every_experiment_and_its_status(built_project):
    result = run_vgsite(built_project, "list")
    assert result.returncode == 0
    rows = [line.split() for line in result.stdout.splitlines()[1:]]  # one table: experiments and notebooks
    assert ["vanishing", "vanishing.ipynb", "never", "executed", "-"] in rows
    rows = [r for r in rows if not r[1].endswith(".ipynb")]
    assert {(r[0], r[1]) for r in rows} >= {("vanishing", "gradient-norms"), ("vanishing", "depth-sweep"),
                                            ("vanishing", "activation-derivatives")}
    assert all(" ".join(r[2:5]) == "up to date" for r in rows if r[0] == "vanishing")


@pytest.mark.parametrize("args", [["--help"], []])
def test_help_lists_the_commands(built_project, args):
    result = run_vgsite(built_project, *args)
    assert result.returncode == 0
    for command in ("list", "figures", "build", "serve", "clean"):
        assert f"  {command} " in result.stdout


def test_figures_of_one_topic_reports_a_summary(project):
    result = run_vgsite(project, "figures", "vanishing", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "3 ran, 0 failed, 0 up to date" in result.stdout
    manifest = json.loads((project / "figures" / "manifest.json").read_text())["experiments"]
    assert set(manifest) == {"vanishing/activation-derivatives", "vanishing/gradient-norms",
                             "vanishing/depth-sweep"}
    for entry in manifest.values():
        for path in entry["outputs"]:
            assert (project / "figures" / path).is_file()


def test_one_experiment_can_be_named_by_id(project):
    result = run_vgsite(project, "figures", "vanishing/gradient-norms", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "1 ran, 0 failed, 0 up to date" in result.stdout
    assert (project / "figures" / "vanishing" / "gradient-norms.png").is_file()
    assert not (project / "figures" / "vanishing" / "depth-sweep.png").exists()


def test_clean_removes_generated_files_but_keeps_the_readme(built_project, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built_project, copy)
    result = run_vgsite(copy, "clean")
    assert result.returncode == 0
    assert [p.name for p in (copy / "figures").iterdir()] == ["README.md"]


def test_the_reading_order_is_the_nav_of_mkdocs_yml():
    """TOPICS is read from the nav (the notebooks' order); every topic has its page and notebook there, in the
    same order, so adding a topic touches no list in the code."""
    from vgsite.registry import TOPICS, nav_entries, topic_modules

    nav = nav_entries()
    assert sorted(TOPICS) == topic_modules()
    notebooks = [p.split("/")[1][:-6] for p in nav if p.startswith("notebooks/") and p.endswith(".ipynb")]
    missing = [t for t in TOPICS if f"notebooks/{t}.ipynb" not in nav]
    assert not missing, f"add these topics' notebooks (and pages) to the nav of mkdocs.yml: {', '.join(missing)}"
    assert list(TOPICS) == [t for t in notebooks if t in TOPICS]
    pages = ["overview" if p == "index.md" else p[:-3] for p in nav if p.endswith(".md") and "/" not in p]
    assert [p for p in pages if p in TOPICS] == [t for t in TOPICS if t in pages]  # pages in the same order


def test_the_runner_and_the_hooks_share_one_figure_layout():
    import matplotlib.pyplot as plt

    from vgsite import docs_hooks, outputs, runner
    from vgsite.registry import Plot, code_page, figure_file, figure_files, record_file

    assert figure_file("vanishing", "depth-sweep") == "vanishing/depth-sweep.png"
    assert record_file("vanishing/depth-sweep") == "vanishing/depth-sweep.json"
    assert code_page("vgsite/topics/vanishing.py") == code_page("vgsite.topics.vanishing") == \
        "code/vgsite.topics.vanishing.md"
    assert docs_hooks.code_page_uri("vgsite/topics/vanishing.py") == code_page("vgsite.topics.vanishing")
    assert runner.figure_files is figure_files and runner.record_file is record_file
    fig = plt.figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1])
    files, _ = outputs.render_figures("vanishing", [Plot("line", fig, alt="A line.", caption="A line.")])
    plt.close(fig)
    assert sorted(files) == sorted(figure_files("vanishing", "line")) == [
        "vanishing/line.1x.png", "vanishing/line.dark.1x.png", "vanishing/line.dark.png", "vanishing/line.png"]


def test_figures_are_found_through_the_manifest_not_by_reading_records(built_project, monkeypatch):
    import vgsite.runner as runner

    index = runner.figure_index(built_project / "figures")
    png, record = index["vanishing/depth-sweep"]
    assert png == built_project / "figures" / "vanishing" / "depth-sweep.png"
    assert record == built_project / "figures" / "vanishing" / "depth-sweep.json"
