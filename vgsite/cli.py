"""The vgsite command line: run the experiments, build and serve the site."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from vgsite import FIGURES, ROOT, runner
from vgsite.registry import TOPICS, load


def select(names) -> list:
    """Experiments named by topic (`vanishing`) or by id (`vanishing/gradient-norms`); all when none."""
    experiments = load()
    if not names:
        return list(experiments.values())
    chosen = []
    for name in names:
        found = [e for e in experiments.values() if name in (e.topic, e.id)]
        if not found:
            raise click.BadParameter(f"unknown topic {name!r}; choose from: {', '.join(TOPICS)} "
                                     "(or TOPIC/EXPERIMENT, see 'vgsite list')", param_hint="TOPIC")
        chosen += [e for e in found if e not in chosen]
    return chosen


def check_device(device):
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter("no CUDA device is available here; use cpu", param_hint="'--device'")
    return device


jobs_option = click.option("--jobs", "-j", type=click.IntRange(min=1), default=runner.default_jobs,
                           show_default="number of cores", help="Experiments run at once, in separate processes.")
device_option = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                             help="Where torch runs the experiments.")
force_option = click.option("--force", is_flag=True, help="Run even the experiments that are up to date.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.pass_context
def cli(ctx):
    """Experiments on vanishing and exploding gradients, and the site that shows them."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.command("list")
@device_option
def list_(device):
    """Topics, their experiments, and whether each is up to date."""
    manifest = runner.read_manifest()
    rows = []
    for exp in load().values():
        why = runner.staleness(exp, manifest.get(exp.id), device)
        seconds = manifest.get(exp.id, {}).get("seconds")
        rows.append((exp.topic, exp.name, why or "up to date", f"{seconds:.1f} s" if seconds is not None else "-"))
    table(("topic", "experiment", "status", "last run"), rows)
    list_notebooks()


@cli.command()
@click.argument("topics", nargs=-1, metavar="[TOPIC]...")
@force_option
@jobs_option
@device_option
def figures(topics, force, jobs, device):
    """Run the experiments that are out of date (of the TOPICs given, else of all)."""
    return run_figures(topics, force, jobs, device)


def interrupt(signum, frame):
    raise KeyboardInterrupt


def run_with_progress(headline, where, todo, run, jobs, describe, kept) -> list | None:
    """Say what runs and why, print a line as each item finishes, and stop as cleanly on a kill as on Ctrl-C.

    todo is [(name, reason)]; run(on_done) does the work; describe(outcome) gives (name, time or error).
    Returns the outcomes, or None when interrupted (what finished is kept).
    """
    workers = min(jobs, len(todo))
    click.echo(f"{headline} on {workers} process{'es' if workers > 1 else ''}{where}.")
    for name, reason in todo:
        click.echo(f"  {name}: {reason}")
    done = []

    def progress(outcome):
        done.append(outcome)
        mark = click.style("ok  ", fg="green") if outcome.ok else click.style("FAIL", fg="red")
        name, detail = describe(outcome)
        click.echo(f"[{len(done)}/{len(todo)}] {mark} {name}  {detail}")

    previous = signal.signal(signal.SIGTERM, interrupt)  # a kill stops as cleanly as Ctrl-C
    try:
        return run(progress)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted: {sum(o.ok for o in done)} {kept} were kept; run again to carry on.", err=True)
        return None
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_figures(topics, force, jobs, device) -> int:
    chosen = select(topics)
    check_device(device)
    manifest = runner.read_manifest()
    reasons = {e.id: "forced" if force else runner.staleness(e, manifest.get(e.id), device) for e in chosen}
    todo = [e for e in chosen if reasons[e.id]]
    if not todo:
        click.echo(f"All {len(chosen)} experiments are up to date.")
        return 0
    outcomes = run_with_progress(
        f"Running {len(todo)} of {len(chosen)} experiments", f" ({device})", [(e.id, reasons[e.id]) for e in todo],
        lambda on_done: runner.run(todo, jobs, device, on_done=on_done), jobs,
        lambda o: (o.exp_id, f"{o.seconds:.1f} s" if o.ok else o.error), "finished experiments")
    if outcomes is None:
        return 130
    by_id = {o.exp_id: o for o in outcomes}
    rows = []
    for e in chosen:
        o = by_id.get(e.id)
        status = "up to date" if o is None else "ran" if o.ok else "FAILED"
        rows.append((e.id, status, f"{o.seconds:.1f} s" if o and o.ok else "-", o.error if o else ""))
    click.echo()
    table(("experiment", "status", "time", "error"), rows)
    failed = [o for o in outcomes if not o.ok]
    total = sum(o.seconds for o in outcomes)
    click.echo(f"\n{len(outcomes) - len(failed)} ran, {len(failed)} failed, "
               f"{len(chosen) - len(outcomes)} up to date; {total:.1f} s of experiment time.")
    for o in failed:
        click.echo(click.style(f"\n{o.exp_id} failed:", fg="red") + f"\n{o.traceback.rstrip()}", err=True)
    return 1 if failed else 0


@cli.command()
@force_option
@jobs_option
@device_option
def build(force, jobs, device):
    """Run the out-of-date experiments and notebooks, then build the site into site/ (mkdocs build --strict)."""
    status = run_figures((), force, jobs, device)
    if status:
        return status
    status = run_notebooks((), force, jobs)
    if status:
        return status
    return build_site(ROOT / "site")


@cli.command("notebooks")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@force_option
@jobs_option
def notebooks_(names, force, jobs):
    """Execute the companion notebooks that are out of date (docs/notebooks/NAME.ipynb into figures/notebooks/)."""
    return run_notebooks(names, force, jobs)


def run_notebooks(names, force, jobs) -> int:
    from vgsite import notebooks

    found = notebooks.sources()
    unknown = [n for n in names if n not in found]
    if unknown:
        raise click.BadParameter(f"no notebook {unknown[0]!r} in docs/notebooks/; choose from: {', '.join(found)}",
                                 param_hint="NAME")
    chosen = list(names) or list(found)
    manifest = notebooks.read_manifest()
    reasons = {n: "forced" if force else notebooks.staleness(found[n], manifest.get(n)) for n in chosen}
    todo = [n for n in chosen if reasons[n]]
    if not todo:
        click.echo(f"All {len(chosen)} notebooks are up to date.")
        return 0
    outcomes = run_with_progress(
        f"Executing {len(todo)} of {len(chosen)} notebooks", "", [(n, reasons[n]) for n in todo],
        lambda on_done: notebooks.run(todo, jobs, on_done=on_done), jobs,
        lambda o: (f"{o.name}.ipynb", f"{o.seconds:.1f} s ({o.cpu_seconds:.1f} s CPU)" if o.ok else o.error),
        "executed notebooks")
    if outcomes is None:
        return 130
    failed = [o for o in outcomes if not o.ok]
    click.echo(f"{len(outcomes) - len(failed)} executed, {len(failed)} failed, {len(chosen) - len(outcomes)} up to "
               f"date; {sum(o.seconds for o in outcomes):.1f} s of notebook time.")
    for o in failed:
        click.echo(("\n" + o.traceback.rstrip() + "\n" if o.traceback else "")
                   + click.style("Notebook failed: ", fg="red") + o.error, err=True)
    return 1 if failed else 0


def list_notebooks():
    from vgsite import notebooks

    manifest = notebooks.read_manifest()
    rows = []
    for name, path in notebooks.sources().items():
        why = notebooks.staleness(path, manifest.get(name))
        seconds = manifest.get(name, {}).get("seconds")
        rows.append((f"{name}.ipynb", why or "up to date", f"{seconds:.1f} s" if seconds is not None else "-"))
    if rows:
        click.echo()
        table(("notebook", "status", "last run"), rows)


MKDOCS_ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def build_site(dest: Path) -> int:
    """Build into a fresh folder beside `dest`, then swap it in: a failed build leaves the old site whole."""
    tmp = Path(tempfile.mkdtemp(prefix=".site-", dir=dest.parent))
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
                           "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp)], cwd=ROOT,
                          env=MKDOCS_ENV)
    if proc.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        click.echo("Site build failed (mkdocs build --strict, see above); the previous site/ is untouched.",
                   err=True)
        return 1
    old = dest.with_name(tmp.name + "-old")
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    click.echo(f"Site built in {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}/.")
    return 0


@cli.command()
@click.option("--dev-addr", "-a", default="127.0.0.1:8000", show_default=True, help="Address to serve on.")
def serve(dev_addr):
    """Live preview: reloads when a page or a figure changes (run `vgsite figures` to refresh figures)."""
    return subprocess.call([sys.executable, "-m", "mkdocs", "serve", "--dev-addr", dev_addr,
                            "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT, env=MKDOCS_ENV)


@cli.command()
def clean():
    """Delete the built site and every generated figure (figures/README.md stays)."""
    removed = 0
    for path in [ROOT / "site", *ROOT.glob(".site-*"), *(p for p in FIGURES.iterdir() if p.name != "README.md")]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed += 1
    click.echo(f"Removed {removed} generated path{'s' if removed != 1 else ''}.")


def table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    click.echo(click.style(line(header), bold=True))
    for row in rows:
        click.echo(line(row))


def main(argv=None):
    """Entry point: usage errors get one line and exit 2; a command's return value is the exit code."""
    try:
        status = cli.main(args=argv, prog_name="vgsite", standalone_mode=False)
    except click.UsageError as err:
        click.echo(f"vgsite: error: {err.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    sys.exit(status if isinstance(status, int) else 0)
