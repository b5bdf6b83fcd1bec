import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="session")
def built_project(tmp_path_factory):
    """One copy of the project whose `vanishing` figures have been made, shared by the read-only tests."""
    path = copy_project(tmp_path_factory.mktemp("built") / "project")
    result = run_vgsite(path, "figures", "vanishing", "--jobs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    return path


@pytest.fixture(scope="session")
def site_dir():
    """The real site, built from the real figures (experiments that are out of date run first)."""
    result = subprocess.run([sys.executable, "-m", "vgsite", "build"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return ROOT / "site"
