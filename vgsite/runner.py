"""Deciding what is out of date, running it (in parallel processes), and recording it in the manifest.

An experiment is up to date when the hash of its code (its topic module and every vgsite module that
imports, transitively), its configuration, the library versions and every output file all match the
manifest entry written when it last ran.
"""
import ast
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import random
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

from vgsite import FIGURES
from vgsite.outputs import json_bytes, png_bytes, write_if_changed
from vgsite.registry import Experiment, load

MANIFEST = "manifest.json"
LIBRARIES = ("torch", "numpy", "matplotlib", "scikit-learn")


def versions() -> dict:
    return {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}}


def vgsite_imports(module: str) -> set[str]:
    """The vgsite modules `module` imports, itself included, followed transitively."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        tree = ast.parse(Path(spec.origin).read_text())
        package = name if spec.submodule_search_locations else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                    if node.level else node.module
                found = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            todo += [c for c in found if c and c.split(".")[0] == "vgsite" and is_module(c)]
    return seen


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # `from vgsite.plots import figure`: figure is no module
        return False


def code_hash(module: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(vgsite_imports(module)):
        digest.update(name.encode() + b"\0" + Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key(exp: Experiment, device: str) -> dict:
    """Everything whose change makes an experiment's outputs out of date."""
    return {"code": code_hash(exp.module), "config": exp.config, "device": device, "versions": versions()}


def read_manifest(figures: Path = FIGURES) -> dict:
    path = figures / MANIFEST
    try:
        return json.loads(path.read_text())["experiments"]
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError):
        return {}  # unreadable: everything counts as out of date, nothing is lost but time


def write_manifest(entries: dict, figures: Path = FIGURES):
    write_if_changed(figures / MANIFEST, json_bytes({"experiments": entries}))


def update_manifest(exp_id: str, entry: dict, figures: Path = FIGURES):
    """Re-read, change one entry, write back, under a lock: two runs at once keep each other's entries."""
    figures.mkdir(parents=True, exist_ok=True)
    folder = os.open(figures, os.O_RDONLY)  # the lock is on figures/ itself: no lock file to clean up
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        entries = read_manifest(figures)
        entries[exp_id] = entry
        write_manifest(entries, figures)
    finally:
        os.close(folder)  # closing releases the lock


def staleness(exp: Experiment, entry: dict | None, device: str, figures: Path = FIGURES) -> str | None:
    """Why `exp` must run again, or None when it is up to date."""
    if not entry:
        return "never run"
    return changed(entry, key(exp, device), {"code": "code changed", "config": "configuration changed",
                                             "device": "device changed", "versions": "library versions changed"},
                   figures)


def changed(entry: dict, now: dict, reasons: dict, figures: Path = FIGURES) -> str | None:
    """The first reason whose part of `now` differs from the manifest entry, or an output missing or modified.

    Shared by the experiments' and the notebooks' caches: up to date means unchanged, for both.
    """
    for part, reason in reasons.items():
        if entry.get(part) != json.loads(json_bytes(now[part])):
            return reason
    for path, digest in entry.get("outputs", {}).items():
        file = figures / path
        if not file.exists():
            return f"{path} missing"
        if sha(file.read_bytes()) != digest:
            return f"{path} modified"
    return None


def seed_everything(seed: int):
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def execute(exp_id: str, device: str = "cpu", overrides: dict | None = None) -> dict:
    """Run one experiment in this process and render its outputs to bytes (nothing is written here).

    Torch uses one thread and a fixed seed, so the bytes do not depend on --jobs.
    """
    import torch
    from matplotlib import rc_context

    from vgsite.plots import STYLE

    exp = load()[exp_id]
    torch.set_num_threads(1)
    config = {**exp.config, **(overrides or {})}
    seed_everything(config.get("seed", 0))
    start = time.perf_counter()
    with rc_context(STYLE), torch.device(device):
        result = exp(**(overrides or {}))
        files = {f"{exp.topic}/{plot.name}.png": png_bytes(plot.fig) for plot in result.plots}
    seconds = time.perf_counter() - start
    record = {
        "experiment": exp.id,
        "config": config,
        "device": device,
        "versions": versions(),
        "figures": {plot.name: {"alt": plot.alt, "caption": plot.caption} for plot in result.plots},
        "data": result.data,
    }
    files[f"{exp.topic}/{exp.name}.json"] = json_bytes(record)
    return {"files": files, "seconds": seconds}


def _execute_safely(exp_id, device):
    try:
        return {"ok": True, **execute(exp_id, device)}
    except Exception as err:  # reported in the summary; the other experiments go on
        return {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


@dataclass
class Outcome:
    exp_id: str
    ok: bool
    seconds: float = 0.0
    error: str = ""
    traceback: str = ""


def run(experiments: list[Experiment], jobs: int, device: str = "cpu", figures: Path = FIGURES,
        on_done=None) -> list[Outcome]:
    """Run the experiments, longest first; record each one in the manifest as soon as it finishes.

    Outputs and the manifest are replaced atomically, so an interruption at any point leaves the
    earlier results and a valid manifest; the next run carries on from there.
    """
    for stale in figures.rglob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink()
    manifest = read_manifest(figures)
    experiments = sorted(experiments, key=lambda e: -manifest.get(e.id, {}).get("seconds", 1e9))
    outcomes = []

    def record(exp, raw):
        if raw["ok"]:
            for path, data in raw["files"].items():
                write_if_changed(figures / path, data)
            entry = {**key(exp, device), "seconds": round(raw["seconds"], 2),
                     "outputs": {path: sha(data) for path, data in sorted(raw["files"].items())}}
            update_manifest(exp.id, entry, figures)
            outcome = Outcome(exp.id, True, raw["seconds"])
        else:
            outcome = Outcome(exp.id, False, error=raw["error"], traceback=raw["traceback"])
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)

    if jobs <= 1 or len(experiments) <= 1:
        for exp in experiments:
            record(exp, _execute_safely(exp.id, device))
        return outcomes

    workers = min(jobs, len(experiments))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(_execute_safely, e.id, device): e for e in experiments}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        raw = future.result()
                    except Exception as err:  # the worker process died (killed, out of memory)
                        raw = {"ok": False, "error": f"worker died: {err!r}", "traceback": ""}
                    record(pending.pop(future), raw)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return outcomes


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
