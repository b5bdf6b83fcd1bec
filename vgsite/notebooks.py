"""The companion notebooks on the shared cache (vgsite/cache.py): their key, their execute, their manifest.

The sources are docs/notebooks/NAME.ipynb, stored without outputs. `vgsite notebooks` (a step of `vgsite build`)
executes the out-of-date ones with nbclient into figures/notebooks/NAME.ipynb, and writes each image they show
to figures/notebooks/NAME/<hash>.png so that the page links the file instead of inlining it. A notebook is up
to date when its source, the vgsite code it uses (the modules its code cells import, followed transitively,
plus the topic of every experiment it names), the library versions and its outputs all match its entry in
figures/notebooks/manifest.json. What a notebook imports is vgsite/lab.py; its page HTML is vgsite/docs_hooks.py.
"""
import ast
import atexit
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from vgsite import FIGURES, ROOT
from vgsite.cache import (CacheError, Manifest, Outcome, code_hash, is_module, one_line, run_parallel, sha,
                          versions)
from vgsite.lab import DARK_FIGURES_ENV, DARK_PNG
from vgsite.lab import run_experiment, setup, show  # noqa: F401  (for notebooks that import them from here)
from vgsite.outputs import write_if_changed
from vgsite.registry import DARK_SUFFIX, TOPICS

SOURCES = ROOT / "docs" / "notebooks"
OUT_DIR = "notebooks"  # under figures/
MANIFEST = "manifest.json"
LIBRARIES = ("ipython", "ipykernel", "nbclient", "nbformat")
CELL_TIMEOUT = 120  # seconds; a notebook is meant to take a few
EXPERIMENT_ID = re.compile(r"^([a-z][\w-]*)/[\w.-]+$")
NAMES = re.compile(r"[A-Za-z0-9_][\w-]*")
REASONS = {"source": "notebook changed", "code": "code changed", "versions": "library versions changed"}


class NotebookError(Exception):
    """A notebook failed or is no notebook: args[0] says which, where and what (args[1]: the cell's traceback)."""


# ---------------------------------------------------------------- what is out of date

def sources(src: Path = SOURCES) -> dict[str, Path]:
    """The source notebooks by name, topics in reading order first."""
    found = {p.stem: p for p in src.glob("*.ipynb") if NAMES.fullmatch(p.stem) and p.is_file()}
    order = {t: i for i, t in enumerate(TOPICS)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def read_notebook(path: Path, data: bytes | None = None) -> dict:
    """A notebook file as JSON, its shape checked: NotebookError (one line) if it is no notebook."""
    where = path.name
    try:
        nb = json.loads(path.read_bytes() if data is None else data)
    except OSError as err:
        raise NotebookError(f"{where} cannot be read ({err.strerror or err})") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise NotebookError(f"{where} is not valid JSON ({err})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{where} is not a notebook (no list of cells)")
    for i, cell in enumerate(nb["cells"]):
        if not (isinstance(cell, dict) and isinstance(cell.get("cell_type"), str)
                and isinstance(cell.get("source", ""), (str, list))):
            raise NotebookError(f"{where} is not a notebook (cell {i + 1} has no type or source)")
    return nb


def code_cells(nb: dict) -> list[str]:
    return ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
            for c in nb["cells"] if c["cell_type"] == "code"]


def used_modules(nb: dict) -> set[str]:
    """vgsite modules a notebook uses: those its code cells import, and the topic of each experiment id it names.

    IPython lines (%magic, !shell) are dropped before parsing. A cell that still does not parse makes the notebook
    depend on every vgsite module.
    """
    found = set()
    for source in code_cells(nb):
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return {p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                    for p in (ROOT / "vgsite").rglob("[!_]*.py")}
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


def all_versions() -> dict:
    return versions(LIBRARIES_ALL)


LIBRARIES_ALL = ("torch", "numpy", "matplotlib", "scikit-learn") + LIBRARIES


def key(path: Path) -> dict:
    """Everything whose change makes an executed notebook out of date (NotebookError if it is no notebook)."""
    data = path.read_bytes()
    return {"source": sha(data), "code": code_hash(sorted(used_modules(read_notebook(path, data)))),
            "versions": all_versions()}


def manifest(figures: Path = FIGURES) -> Manifest:
    return Manifest(figures / OUT_DIR, "notebooks", NAMES, base=figures, rebuild=lambda: verified_entries(figures))


def read_manifest(figures: Path = FIGURES) -> dict:
    return manifest(figures).read()


def staleness(path: Path, entry: dict | None, figures: Path = FIGURES) -> str | None:
    """Why the notebook at `path` must be executed again, or None when its executed copy is current."""
    try:
        now = key(path)
    except (NotebookError, OSError) as err:
        return f"invalid: {err.args[0] if isinstance(err, NotebookError) else one_line(err)}"
    if not entry:
        return "never executed"
    return manifest(figures).changed(entry, now, REASONS)


def images_of(nb: dict) -> dict:
    """{file name: PNG bytes} of every image a notebook shows: HASH.png, and HASH.dark.png for the dark theme's copy
    that vgsite.lab.show adds (HASH: the light image's)."""
    images = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if isinstance(cell, dict) else []:
            data = output.get("data", {}) if isinstance(output, dict) else {}
            light, night = data.get("image/png"), data.get(DARK_PNG)
            if isinstance(light, str):
                png = base64.b64decode(light)
                name = sha(png)[:16]
                images[f"{name}.png"] = png
                if isinstance(night, str):
                    images[f"{name}{DARK_SUFFIX}"] = base64.b64decode(night)
    return images


def verified_entries(figures: Path = FIGURES) -> dict:
    """Entries rebuilt from the executed copies whose code cells are those of today's source, images on disk."""
    entries = {}
    for name, path in sources().items():
        try:
            executed = (figures / OUT_DIR / f"{name}.ipynb").read_bytes()
            if code_cells(read_notebook(path)) != code_cells(read_notebook(path, executed)):
                continue
            files = {f"{OUT_DIR}/{name}.ipynb": executed}
            for img, png in images_of(json.loads(executed)).items():
                if (figures / OUT_DIR / name / img).read_bytes() != png:
                    raise ValueError(img)
                files[f"{OUT_DIR}/{name}/{img}"] = png
            entries[name] = {**json.loads(json.dumps(key(path))),
                             "outputs": {rel: sha(data) for rel, data in sorted(files.items())}}
        except (NotebookError, OSError, ValueError, TypeError, AttributeError):
            continue
    return entries


# ---------------------------------------------------------------- executing

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


KERNEL_STARTS = 3  # a kernel that dies before its first reply is started again, this many times in all


def execute(path: Path, timeout: int = CELL_TIMEOUT) -> dict:
    """Execute one notebook in a fresh kernel; returns the executed notebook and its images as bytes.

    Nothing is written here. The bytes depend only on the notebook and the code: no timings, no kernel ids.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    read_notebook(path)  # one line if it is no notebook
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:
        raise NotebookError(f"{path.name} is not a valid notebook ({one_line(err)})") from None
    for cell in nb.cells:  # a source saved with outputs: execute from clean
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "agg",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1", DARK_FIGURES_ENV: "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    start, cpu_start = time.perf_counter(), cpu_time()
    started = []  # index of each cell as it starts: the last one is the one that failed
    for attempt in range(KERNEL_STARTS):
        with tempfile.TemporaryDirectory(prefix="vgsite-nb-") as cwd:  # notebooks write nothing into the project
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                    allow_errors=False, resources={"metadata": {"path": cwd}},
                                    extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no TCP warning
                                    on_cell_start=lambda **kw: started.append(kw["cell_index"]))
            try:
                client.execute(env=env, stderr=subprocess.DEVNULL)  # the kernel's own log: not for a user
                break
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
                raise NotebookError(failure(path, nb, err, started[-1] if started else None),
                                    traceback_text(nb)) from None
            except RuntimeError as err:
                # Kernels started at once by two processes can pick the same free port; the loser dies before
                # it answers. Nothing ran yet, so start it again.
                atexit.unregister(client._cleanup_kernel)  # it has no kernel to clean up: no traceback at exit
                if started or "before replying to kernel_info" not in str(err) or attempt == KERNEL_STARTS - 1:
                    raise
    seconds, cpu = time.perf_counter() - start, cpu_time() - cpu_start
    nb.metadata.pop("widgets", None)
    nb.metadata.get("language_info", {}).pop("version", None)  # python's version is in the key already
    return {"notebook": (nbformat.writes(nb) + "\n").encode(), "images": images_of(nb), "seconds": seconds,
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
        return {"ok": False, "error": err.args[0], "traceback": err.args[1] if len(err.args) > 1 else ""}
    except Exception as err:  # the kernel would not start ...
        return {"ok": False, "error": f"{Path(path).name} failed: {one_line(err)}"}


def record(name: str, raw: dict, path: Path, figures: Path = FIGURES) -> Outcome:
    """Write an executed notebook and its images, drop images it no longer shows, update the manifest."""
    if not raw["ok"]:
        return Outcome(name, False, error=raw["error"], traceback=raw.get("traceback", ""))
    out = figures / OUT_DIR
    files = {f"{OUT_DIR}/{name}.ipynb": raw["notebook"],
             **{f"{OUT_DIR}/{name}/{img}": png for img, png in raw["images"].items()}}
    try:
        entry = {**key(path), "seconds": round(raw["seconds"], 2), "cpu_seconds": round(raw["cpu_seconds"], 2),
                 "outputs": {rel: sha(data) for rel, data in sorted(files.items())}}
        with manifest(figures).locked():
            for rel, data in files.items():
                write_if_changed(figures / rel, data)
            for old in (out / name).glob("*.png") if (out / name).is_dir() else []:
                if f"{OUT_DIR}/{name}/{old.name}" not in files:
                    old.unlink()
            book = manifest(figures)
            entries = book.read()
            entries[name] = entry
            book.write(entries)
    except OSError as err:
        return Outcome(name, False, error=f"{name}.ipynb: cannot write its outputs ({err.strerror or one_line(err)}"
                                          f": {err.filename or out}); executed, not kept")
    except (CacheError, NotebookError) as err:
        return Outcome(name, False, error=str(err.args[0]))
    return Outcome(name, True, raw["seconds"], cpu_seconds=raw["cpu_seconds"])


def forget_deleted(figures: Path = FIGURES, src: Path = SOURCES):
    """A notebook whose source was deleted: its entry and its outputs go (only paths the manifest may name)."""
    book = manifest(figures)
    with book.locked():
        entries = book.read()
        gone = set(entries) - set(sources(src))
        for name in gone:
            for rel in entries.pop(name).get("outputs", {}):
                file = book.output(rel)
                if file is not None and (file.is_file() or file.is_symlink()):
                    file.unlink()
            folder = figures / OUT_DIR / name
            if folder.is_dir() and not folder.is_symlink() and folder.resolve().parent == book.folder.resolve():
                shutil.rmtree(folder)
        if gone:
            book.write(entries)


def run(names: list[str], jobs: int = 1, src: Path = SOURCES, figures: Path = FIGURES, on_done=None) -> list[Outcome]:
    """Execute the named notebooks, `jobs` at a time, each in a worker process; record each one as it finishes.

    A failed notebook leaves its previous executed copy and entry alone (so it stays out of date); the others
    are recorded whatever happens to it.
    """
    paths = sources(src)
    forget_deleted(figures, src)
    known = read_manifest(figures)
    names = sorted(names, key=lambda n: -known.get(n, {}).get("seconds", 1e9))
    return run_parallel(names, _Work(paths), lambda n, raw: record(n, raw, paths[n], figures), jobs,
                        isolate=True, on_done=on_done)


class _Work:
    def __init__(self, paths):
        self.paths = {n: str(p) for n, p in paths.items()}

    def __call__(self, name):
        return _execute_safely(self.paths[name])
