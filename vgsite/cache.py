"""The cache that experiments and notebooks share: what is out of date, running it in parallel, recording it.

A unit of work (an experiment, a notebook) is up to date when its key (the hash of the code it runs, its
settings, the library versions) and the hash of every output it wrote match its entry in a manifest. Each kind
of work brings only its own key and its own execute (vgsite/runner.py, vgsite/notebooks.py); this module holds
the rest: the manifest (read as untrusted input, updated under a lock), the code hash of a set of modules, the
library versions, one Outcome, and one parallel runner that records each result as soon as it is done.
"""
import ast
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import re
import signal
import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from vgsite.outputs import json_bytes, write_if_changed

LIBRARIES = ("torch", "numpy", "matplotlib", "scikit-learn")


class CacheError(Exception):
    """Something under figures/ cannot be read or written: one line saying what and what was done."""


# ---------------------------------------------------------------- keys

@lru_cache(maxsize=None)
def _versions(libraries) -> tuple:
    def installed(lib):
        try:
            return version(lib)
        except PackageNotFoundError:
            return None
    return ("python", platform.python_version()), *((lib, installed(lib)) for lib in libraries)


def versions(libraries=LIBRARIES) -> dict:
    """The versions the outputs depend on (read once per process: the installed packages do not change under it)."""
    return dict(_versions(tuple(libraries)))


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):  # `from vgsite.plots import figure`: figure is no module
        return False


@lru_cache(maxsize=None)
def _imported_names(package: str, source: bytes) -> tuple:
    """Every name an import statement in `source` mentions (parsed once per distinct source: a status table asks
    for the same modules a hundred times)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()  # its bytes are hashed all the same; running it will say what is wrong
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module
            found += [base] + [f"{base}.{a.name}" for a in node.names]
    return tuple(dict.fromkeys(found))


def vgsite_imports(module: str) -> set[str]:
    """The vgsite modules `module` imports, itself included, followed transitively."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        package = name if spec.submodule_search_locations else name.rpartition(".")[0]
        found = _imported_names(package, Path(spec.origin).read_bytes())
        todo += [c for c in found if c and c.split(".")[0] == "vgsite" and is_module(c)]
    return seen


def code_hash(modules) -> str:
    """The hash of the source of every vgsite module the given ones import (themselves included)."""
    if isinstance(modules, str):
        modules = [modules]
    names = set()
    for module in modules:
        names |= vgsite_imports(module)
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0" + Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normal(value):
    """A value as it reads back from the manifest (tuples as lists, floats rounded as json_bytes does)."""
    return json.loads(json_bytes(value))


# ---------------------------------------------------------------- messages

_said: set = set()


def say(line: str):
    """One line on stderr about the cache (a bad manifest and what was done about it), once per process."""
    if line not in _said:
        _said.add(line)
        print(f"vgsite: {line}", file=sys.stderr, flush=True)


def shown(path: Path) -> str:
    from vgsite import ROOT

    path = Path(path)
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


# ---------------------------------------------------------------- the manifest

DIGEST = re.compile(r"^[0-9a-f]{64}$")
_held: set = set()  # folders whose lock this process holds


class Manifest:
    """`FOLDER/manifest.json`: {kind: {name: entry}}, each entry a key plus `outputs` {path: sha256}.

    The file is untrusted input (a poisoned cache can be restored in CI): names must match `names`, entries be
    objects, and every output path resolve inside `folder`. A bad entry is dropped and a bad file rebuilt from
    the outputs that `rebuild()` can verify; either way one line says what was wrong and what was done.
    Output paths are relative to `base` (figures/).
    """

    def __init__(self, folder: Path, kind: str, names: re.Pattern, base: Path | None = None,
                 rebuild: Callable[[], dict] | None = None):
        self.folder, self.kind, self.names = Path(folder), kind, names
        self.base = Path(base) if base is not None else self.folder
        self.path = self.folder / "manifest.json"
        self.rebuild = rebuild

    def output(self, rel) -> Path | None:
        """The file an output path names, or None when it is no path or leaves the folder."""
        if not isinstance(rel, str) or not rel or "\0" in rel or os.path.isabs(rel):
            return None
        path = self.base / rel
        try:
            resolved, inside = path.resolve(), self.folder.resolve()
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(inside) or resolved == inside or resolved == self.path.resolve():
            return None
        return path

    def problem(self, entry_name, entry) -> str | None:
        if not isinstance(entry_name, str) or not self.names.fullmatch(entry_name):
            return f"entry {entry_name!r} is not a valid name"
        if not isinstance(entry, dict):
            return f"entry {entry_name!r} is a {type(entry).__name__}, not an object"
        outputs = entry.get("outputs", {})
        if not isinstance(outputs, dict):
            return f"entry {entry_name!r} has outputs that are a {type(outputs).__name__}, not an object"
        for rel, digest in outputs.items():
            path = self.output(rel)
            if path is None:
                return f"entry {entry_name!r} names a path outside {shown(self.folder)}/ ({rel!r})"
            if not isinstance(digest, str) or not DIGEST.match(digest):
                return f"entry {entry_name!r} has no sha256 for {rel!r}"
            if path.is_dir():
                return f"entry {entry_name!r} names a folder as an output ({rel!r})"
        seconds = entry.get("seconds", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            return f"entry {entry_name!r} has a time that is no number"
        return None

    def read(self) -> dict:
        """The valid entries. Never raises for a bad file: says what is wrong and rebuilds."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            return self._rebuilt(f"cannot be read ({err.strerror or err})")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return self._rebuilt("is not valid JSON")
        if not isinstance(data, dict) or not isinstance(data.get(self.kind), dict):
            what = type(data).__name__ if not isinstance(data, dict) else f"no {self.kind!r} object"
            return self._rebuilt(f"is not a manifest ({what})")
        entries = {}
        for name, entry in data[self.kind].items():
            problem = self.problem(name, entry)
            if problem:
                say(f"{shown(self.path)}: {problem}: entry ignored (its outputs are left alone; it will run again)")
                continue
            entries[name] = entry
        return entries

    def _rebuilt(self, what: str) -> dict:
        entries = self.rebuild() if self.rebuild else {}
        say(f"{shown(self.path)} {what}: rebuilt from the outputs that match their records "
            f"({len(entries)} {self.kind} kept, the rest will run again)")
        if str(self.folder) not in _held and not self.path.is_dir():  # else update() writes it
            try:
                with self.locked():
                    self.write(entries)
            except (OSError, CacheError):
                pass  # a read-only figures/: the entries serve this run
        return entries

    @contextmanager
    def locked(self):
        """Hold an exclusive lock on the folder (no lock file to clean up; closing releases it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if str(self.folder) in _held:  # this process holds it already (a second flock here would wait forever)
            yield
            return
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _held.add(str(self.folder))
            yield
        finally:
            _held.discard(str(self.folder))
            os.close(fd)

    def write(self, entries: dict):
        try:
            write_if_changed(self.path, json_bytes({self.kind: entries}))
        except OSError as err:
            raise CacheError(f"cannot write {shown(self.path)} ({err.strerror or err})") from None

    def update(self, changes: dict):
        """Re-read, apply {name: entry, or None to drop it}, write back, under the lock: two runs at once keep
        each other's entries."""
        with self.locked():
            entries = self.read()
            for name, entry in changes.items():
                if entry is None:
                    entries.pop(name, None)
                else:
                    entries[name] = entry
            self.write(entries)
            return entries

    def changed(self, entry: dict, now: dict, reasons: dict) -> str | None:
        """The first reason whose part of `now` differs from the entry, or an output missing or modified."""
        for part, reason in reasons.items():
            if entry.get(part) != normal(now[part]):
                return reason
        for rel, digest in entry.get("outputs", {}).items():
            file = self.output(rel)
            if file is None or not file.is_file():
                return f"{rel} missing"
            try:
                if sha(file.read_bytes()) != digest:
                    return f"{rel} modified"
            except OSError:
                return f"{rel} unreadable"
        return None


# ---------------------------------------------------------------- running

@dataclass
class Outcome:
    name: str
    ok: bool
    seconds: float = 0.0
    error: str = ""
    traceback: str = ""
    cpu_seconds: float = 0.0

    @property
    def exp_id(self) -> str:  # the name under which experiments knew it
        return self.name


def failed(err: BaseException, prefix: str = "") -> dict:
    return {"ok": False, "error": prefix + one_line(err), "traceback": traceback.format_exc()}


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


@contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM while a result is being recorded; they act right after."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_init(parent: int):
    """Workers leave Ctrl-C to the main process, which stops them itself; they end when it is gone (SIGKILL).

    `parent` is the main process's pid, passed in: a worker that starts after its parent was killed already has
    another parent (init), and must see that and end, not wait for a change that already happened."""
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_parallel(names: list[str], work: Callable, record: Callable, jobs: int, isolate: bool = False,
                 on_done=None) -> list[Outcome]:
    """Run `work(name)` for each name, `jobs` at a time in spawned processes; `record(name, raw)` -> Outcome
    as each finishes (in this process, with signals held, so a result computed is a result kept).

    With one job the work runs here, unless `isolate`. On an interrupt the workers are stopped at once and
    KeyboardInterrupt goes on up; what was recorded stays recorded.
    """
    outcomes = []

    def done(name, raw):
        with signals_deferred():  # recorded and counted together: an interrupt never sees one without the other
            outcome = record(name, raw)
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)

    if not names:
        return outcomes
    if (jobs <= 1 or len(names) <= 1) and not isolate:
        for name in names:
            done(name, work(name))
        return outcomes
    pool = ProcessPoolExecutor(min(jobs, len(names)), mp_context=get_context("spawn"), initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        pending = {pool.submit(work, name): name for name in names}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                name = pending.pop(future)
                try:
                    raw = future.result()
                except Exception as err:  # the worker process died (killed, out of memory)
                    raw = {"ok": False, "error": f"{name}: worker died: {one_line(err)}", "traceback": ""}
                done(name, raw)
    except BaseException:
        stop(pool)
        raise
    pool.shutdown(wait=True)
    return outcomes


def stop(pool: ProcessPoolExecutor):
    """Stop every worker now (a result still being computed is lost; those recorded are not)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        try:
            process.terminate()
        except Exception:
            pass
    for process in processes:
        process.join(timeout=5)
    pool.shutdown(wait=False, cancel_futures=True)
