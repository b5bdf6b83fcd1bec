"""The experiments on the shared cache (vgsite/cache.py): their key, their execute, their manifest.

An experiment is up to date when the hash of its code (its topic module and every vgsite module it imports,
transitively), its configuration, the device, the library versions and every output file all match its entry
in figures/manifest.json. That manifest is also the index of the figures: which record holds which plot.
"""
import json
import os
import re
import time
from pathlib import Path

from vgsite import FIGURES
from vgsite.cache import (CacheError, Manifest, Outcome, code_hash, failed, is_module, normal,  # noqa: F401
                          one_line, run_parallel, sha, versions, vgsite_imports)
from vgsite.lab import run_seed, run_setup, seed_everything  # noqa: F401  (seed_everything: vgsite.verify)
from vgsite.outputs import json_bytes, render_figures, write_if_changed
from vgsite.registry import DARK_SUFFIX, ONE_X_SUFFIX, Experiment, figure_files, load, record_file

MANIFEST = "manifest.json"
NAMES = re.compile(r"[a-z0-9_][\w-]*/[A-Za-z0-9_][\w.-]*")
REASONS = {"code": "code changed", "config": "configuration changed", "device": "device changed",
           "versions": "library versions changed"}


def key(exp: Experiment, device: str) -> dict:
    """Everything whose change makes an experiment's outputs out of date: its code (the modules it imports, and
    vgsite.outputs, which renders its figures and record to bytes), its settings, the device and the libraries."""
    return {"code": code_hash([exp.module, "vgsite.outputs"]), "config": exp.config, "device": device,
            "versions": versions()}


def manifest(figures: Path = FIGURES) -> Manifest:
    return Manifest(figures, "experiments", NAMES, rebuild=lambda: verified_entries(figures))


def read_manifest(figures: Path = FIGURES) -> dict:
    return manifest(figures).read()


def write_manifest(entries: dict, figures: Path = FIGURES):
    manifest(figures).write(entries)


def update_manifest(exp_id: str, entry: dict, figures: Path = FIGURES):
    """Re-read, change one entry, write back, under a lock: two runs at once keep each other's entries."""
    manifest(figures).update({exp_id: entry})


def staleness(exp: Experiment, entry: dict | None, device: str, figures: Path = FIGURES) -> str | None:
    """Why `exp` must run again, or None when it is up to date."""
    if not entry:
        return "never run"
    return manifest(figures).changed(entry, key(exp, device), REASONS)


def verified_entries(figures: Path = FIGURES) -> dict:
    """Manifest entries rebuilt from the records on disk: those whose experiment, configuration and library
    versions match today's and whose figures exist. (The code cannot be checked from a record: it is taken as
    unchanged; `vgsite figures --force` recomputes.)"""
    entries, now = {}, normal(versions())
    for exp in load().values():
        try:
            record_bytes = (figures / record_file(exp.id)).read_bytes()
            record = json.loads(record_bytes)
            if not (isinstance(record, dict) and record.get("experiment") == exp.id
                    and record.get("config") == normal(exp.config) and record.get("versions") == now
                    and isinstance(record.get("figures"), dict) and isinstance(record.get("device"), str)):
                continue
            files = {record_file(exp.id): record_bytes}
            for plot in record["figures"]:
                for rel in figure_files(exp.topic, plot):
                    files[rel] = (figures / rel).read_bytes()
        except (OSError, ValueError, TypeError):
            continue
        entries[exp.id] = {**normal(key(exp, record["device"])),
                           "outputs": {rel: sha(data) for rel, data in sorted(files.items())}}
    return entries


def figure_index(figures: Path = FIGURES) -> dict:
    """{"topic/plot": (png path, record path)} for every figure the manifest lists: no record is parsed.
    The png is the light theme's; its dark twin is dark_figure_file() beside it."""
    index = {}
    for exp_id, entry in read_manifest(figures).items():
        record = record_file(exp_id)
        if record not in entry.get("outputs", {}):
            continue
        for rel in entry["outputs"]:
            if rel.endswith(".png") and not rel.endswith((DARK_SUFFIX, ONE_X_SUFFIX)):
                index[rel[:-4]] = (figures / rel, figures / record)
    return index


def execute(exp_id: str, device: str = "cpu", overrides: dict | None = None) -> dict:
    """Run one experiment in this process and render its outputs to bytes (nothing is written here).

    The run setup (vgsite.lab.run_setup: one torch thread, a fixed seed) makes the bytes independent of --jobs.
    """
    exp = load()[exp_id]
    config = {**exp.config, **(overrides or {})}
    start = time.perf_counter()
    with run_setup(run_seed(config), device):
        result = exp(**(overrides or {}))
        files, shown = render_figures(exp.topic, result.plots)
    seconds = time.perf_counter() - start
    record = {
        "experiment": exp.id,
        "config": config,
        "device": device,
        "versions": versions(),
        "figures": shown,
        "data": result.data,
    }
    files[record_file(exp.id)] = json_bytes(record)
    return {"files": files, "seconds": seconds}


def _execute_safely(exp_id, device="cpu"):
    try:
        return {"ok": True, **execute(exp_id, device)}
    except Exception as err:  # reported in the summary; the other experiments go on
        return failed(err)


def record(exp: Experiment, raw: dict, device: str, figures: Path = FIGURES) -> Outcome:
    """Write a finished experiment's outputs, then its manifest entry; a write that fails fails it alone."""
    if not raw["ok"]:
        return Outcome(exp.id, False, error=raw["error"], traceback=raw.get("traceback", ""))
    try:
        for rel, data in raw["files"].items():
            write_if_changed(figures / rel, data)
        entry = {**key(exp, device), "seconds": round(raw["seconds"], 2),
                 "outputs": {rel: sha(data) for rel, data in sorted(raw["files"].items())}}
        update_manifest(exp.id, entry, figures)
    except OSError as err:
        return Outcome(exp.id, False, error=f"cannot write its outputs ({err.strerror or one_line(err)}: "
                                            f"{err.filename or figures}); computed, not kept")
    except CacheError as err:
        return Outcome(exp.id, False, error=str(err))
    return Outcome(exp.id, True, raw["seconds"])


def run(experiments: list[Experiment], jobs: int, device: str = "cpu", figures: Path = FIGURES,
        on_done=None) -> list[Outcome]:
    """Run the experiments, longest first; record each one in the manifest as soon as it finishes.

    Outputs and the manifest are replaced atomically, so an interruption at any point leaves the
    earlier results and a valid manifest; the next run carries on from there.
    """
    known = read_manifest(figures)
    by_id = {e.id: e for e in sorted(experiments, key=lambda e: -known.get(e.id, {}).get("seconds", 1e9))}
    return run_parallel(list(by_id), _Work(device), lambda i, raw: record(by_id[i], raw, device, figures),
                        jobs, on_done=on_done)


class _Work:
    """Picklable `work(exp_id)` for the process pool."""

    def __init__(self, device):
        self.device = device

    def __call__(self, exp_id):
        return _execute_safely(exp_id, self.device)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
