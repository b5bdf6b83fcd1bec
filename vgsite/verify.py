"""Do the pages' claims survive other seeds and another machine? `vgsite verify` reruns every experiment that
trains (those with a `seeds` setting) with shifted seeds and another thread count into a scratch folder, then
evaluates every {{ check() }} of every page against those numbers. A claim one seed decided fails here.
"""
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import click

from vgsite import FIGURES, ROOT, quotes

DOCS = ROOT / "docs"


def shifted(seeds, shift: int) -> tuple:
    return tuple(int(s) + shift for s in seeds)


def trained_experiments() -> list:
    from vgsite.registry import load

    return [exp for exp in load().values() if "seeds" in exp.config]


def rerun(exp_id: str, shift: int, threads: int) -> dict:
    """One experiment with its seeds shifted, on `threads` threads; its record as the pages read it."""
    import torch
    from matplotlib import rc_context

    from vgsite.outputs import plain
    from vgsite.plots import STYLE
    from vgsite.registry import load
    from vgsite.runner import seed_everything

    exp = load()[exp_id]
    torch.set_num_threads(threads)
    overrides = {"seeds": shifted(exp.config["seeds"], shift)}
    config = {**exp.config, **overrides}
    seed_everything(config["seeds"][0])
    start = time.perf_counter()
    with rc_context(STYLE):
        result = exp(**overrides)
    return {"experiment": exp_id, "config": plain(config), "data": plain(result.data),
            "seconds": time.perf_counter() - start}


def page_checks(records, docs: Path = DOCS) -> list[str]:
    """Every check() of every page against `records`: the failures, one line each."""
    failures = []
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text()
        for match in quotes.TEMPLATE.finditer(text):
            if match.group(1) != "check":
                continue
            try:
                quotes.render(match.group(0), page.name, records)
            except quotes.QuoteError as err:
                line = text.count("\n", 0, match.start()) + 1
                failures.append(f"{page.relative_to(docs.parent)}:{line}: {str(err).split(': ', 2)[-1]}")
    return failures


def verify(shift: int = 1000, threads: int = 2, jobs: int = 1, out: Path | None = None, echo=print) -> list[str]:
    from vgsite.outputs import json_bytes, write_if_changed
    from vgsite.registry import record_file

    out = Path(out or tempfile.mkdtemp(prefix="vgsite-verify-"))
    ids = [exp.id for exp in trained_experiments()]
    echo(f"verify: {len(ids)} training experiments with seeds shifted by {shift}, {threads} thread(s) each, "
         f"into {out}")
    with ProcessPoolExecutor(max(1, jobs), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(rerun, exp_id, shift, threads): exp_id for exp_id in ids}
        for i, future in enumerate(as_completed(futures), 1):
            record = future.result()
            write_if_changed(out / record_file(record["experiment"]), json_bytes(record))
            echo(f"[{i}/{len(ids)}] {record['experiment']}  seeds {record['config']['seeds']}  "
                 f"{record['seconds']:.1f} s")

    return page_checks(quotes.records_in(out, FIGURES))


@click.command("verify")
@click.option("--shift", type=int, default=1000, show_default=True, help="Added to every seed of every run.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="torch threads per experiment (the figures use 1).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Experiments at once.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch folder for the rerun records (default: a new temporary folder).")
def verify_command(shift, threads, jobs, out):
    """Rerun every training experiment with other seeds and threads; every page's check() must still hold."""
    failures = verify(shift, threads, jobs, out, echo=click.echo)
    for failure in failures:
        click.echo(f"FAIL {failure}", err=True)
    if failures:
        click.echo(f"verify: {len(failures)} claim(s) do not hold with seeds shifted by {shift}", err=True)
        sys.exit(1)
    click.echo("verify: every check on every page holds")
