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


def run_figures(topics, force, jobs, device) -> int:
    chosen = select(topics)
    check_device(device)
    manifest = runner.read_manifest()
    reasons = {e.id: "forced" if force else runner.staleness(e, manifest.get(e.id), device) for e in chosen}
    todo = [e for e in chosen if reasons[e.id]]
    if not todo:
        click.echo(f"All {len(chosen)} experiments are up to date.")
        return 0
    click.echo(f"Running {len(todo)} of {len(chosen)} experiments on {min(jobs, len(todo))} "
               f"process{'es' if min(jobs, len(todo)) > 1 else ''} ({device}).")
    for e in todo:
        click.echo(f"  {e.id}: {reasons[e.id]}")
    done = []

    def progress(outcome):
        done.append(outcome)
        mark = click.style("ok  ", fg="green") if outcome.ok else click.style("FAIL", fg="red")
        click.echo(f"[{len(done)}/{len(todo)}] {mark} {outcome.exp_id}  {outcome.seconds:.1f} s"
                   + ("" if outcome.ok else f"  {outcome.error}"))

    previous = signal.signal(signal.SIGTERM, interrupt)  # a kill stops as cleanly as Ctrl-C
    try:
        outcomes = runner.run(todo, jobs, device, on_done=progress)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted: {sum(o.ok for o in done)} finished experiments were kept; "
                   "run again to carry on.", err=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
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
    """Run the out-of-date experiments, then build the site into site/ (mkdocs build --strict)."""
    status = run_figures((), force, jobs, device)
    if status:
        return status
    return build_site(ROOT / "site")


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
