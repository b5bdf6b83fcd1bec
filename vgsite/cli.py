"""The vgsite command line: run the experiments and notebooks that are out of date, build and serve the site.

Exit codes: 0 all good, 1 an experiment, a notebook or the site build failed (or something under figures/ could
not be read or written: one line says what), 2 bad usage, 130 interrupted (SIGINT or SIGTERM, at any phase;
what was finished is kept).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from vgsite import FIGURES, ROOT, runner
from vgsite.cache import CacheError, Outcome, one_line
from vgsite.outputs import dir_mode, pid_alive, sweep_tmp
from vgsite.registry import BROKEN, TOPICS, load


class Interrupted(Exception):
    """Raised after the one line saying what an interruption kept has been printed."""


class Failed(Exception):
    """A command cannot go on: its message is the one line to print (exit 1)."""


def select(names) -> list:
    """Experiments named by topic (`vanishing`) or by id (`vanishing/gradient-norms`); all when none."""
    experiments = load()
    if not names:
        return list(experiments.values())
    chosen = []
    for name in names:
        topic = name.split("/")[0]
        if topic in BROKEN:
            raise Failed(f"topic {topic!r} cannot be imported: {BROKEN[topic]}")
        found = [e for e in experiments.values() if name in (e.topic, e.id)]
        if not found and "/" in name and topic in TOPICS:
            names_in = ", ".join(e.name for e in experiments.values() if e.topic == topic)
            raise click.BadParameter(f"unknown experiment {name!r}; {topic} has: {names_in}", param_hint="TOPIC")
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


# ---------------------------------------------------------------- what is out of date, for both kinds

def seconds_of(entry) -> str:
    seconds = (entry or {}).get("seconds")
    return f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "-"


@cli.command("list")
@device_option
def list_(device):
    """Topics, their experiments and notebooks, and whether each is up to date."""
    from vgsite import notebooks

    experiments = load()
    manifest, nb_manifest = runner.read_manifest(), notebooks.read_manifest()
    nb_sources = notebooks.sources()
    rows = []
    for topic in TOPICS:
        if topic in BROKEN:
            rows.append((topic, "(module)", f"import failed: {BROKEN[topic]}", "-"))
        for exp in (e for e in experiments.values() if e.topic == topic):
            why = runner.staleness(exp, manifest.get(exp.id), device)
            rows.append((exp.topic, exp.name, why or "up to date", seconds_of(manifest.get(exp.id))))
        if topic in nb_sources:
            rows.append(notebook_row(topic, nb_sources[topic], nb_manifest))
    rows += [notebook_row(name, path, nb_manifest) for name, path in nb_sources.items() if name not in TOPICS]
    table(("topic", "experiment", "status", "last run"), rows)


def notebook_row(name, path, manifest):
    from vgsite import notebooks

    why = notebooks.staleness(path, manifest.get(name))
    return (name, f"{name}.ipynb", why or "up to date", seconds_of(manifest.get(name)))


@dataclass
class Stale:
    """One kind of cached work for run_stale: what was asked for, why each must run, and how to run them."""
    noun: str                      # "experiment"
    verb: str                      # "Running"
    past: str                      # "ran"
    chosen: list                   # names, in order
    reasons: dict                  # name -> why it must run, or None
    run: Callable                  # run(names, on_done) -> [Outcome]
    label: Callable = str          # name as shown
    where: str = ""                # " (cpu)"


def run_stale(work: Stale, jobs: int, problems: list[str] = ()) -> int:
    """The one path that runs what is out of date: say what runs and why, a line as each finishes, a summary.

    On SIGINT or SIGTERM it stops at once and keeps what finished (Interrupted, exit 130).
    """
    sweep_tmp(FIGURES) if FIGURES.is_dir() else None  # temporary files of runs that were killed
    todo = [n for n in work.chosen if work.reasons[n]]
    for line in problems:
        click.echo(click.style("FAIL ", fg="red") + line, err=True)
    if not todo:
        click.echo(f"All {len(work.chosen)} {work.noun}s are up to date.")
        return 1 if problems else 0
    writable(FIGURES)
    workers = min(jobs, len(todo))
    click.echo(f"{work.verb} {len(todo)} of {len(work.chosen)} {work.noun}s on {workers} "
               f"process{'es' if workers > 1 else ''}{work.where}.")
    for name in todo:
        click.echo(f"  {name}: {work.reasons[name]}")
    done: list[Outcome] = []

    def progress(outcome):
        done.append(outcome)
        mark = click.style("ok  ", fg="green") if outcome.ok else click.style("FAIL", fg="red")
        detail = f"{outcome.seconds:.1f} s" + (f" ({outcome.cpu_seconds:.1f} s CPU)" if outcome.cpu_seconds else "") \
            if outcome.ok else outcome.error
        click.echo(f"[{len(done)}/{len(todo)}] {mark} {work.label(outcome.name)}  {detail}")

    try:
        outcomes = work.run(todo, progress)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted: {sum(o.ok for o in done)} finished {work.noun}s were kept; run again to carry on.",
                   err=True)
        raise Interrupted from None
    failed = [o for o in outcomes if not o.ok]
    click.echo(f"\n{len(outcomes) - len(failed)} {work.past}, {len(failed)} failed, "
               f"{len(work.chosen) - len(outcomes)} up to date; "
               f"{sum(o.seconds for o in outcomes):.1f} s of {work.noun} time.")
    for o in failed:
        click.echo(("\n" + o.traceback.rstrip() + "\n" if o.traceback else "")
                   + click.style(f"{work.noun.capitalize()} failed: ", fg="red") + f"{work.label(o.name)}: {o.error}",
                   err=True)
    return 1 if failed or problems else 0


def writable(folder: Path):
    """Refuse to compute what could not be kept."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".probe.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise Failed(f"{folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}/ is not writable "
                     f"({err.strerror or one_line(err)}): nothing was run") from None


# ---------------------------------------------------------------- the commands

@cli.command()
@click.argument("topics", nargs=-1, metavar="[TOPIC]...")
@force_option
@jobs_option
@device_option
def figures(topics, force, jobs, device):
    """Run the experiments that are out of date (of the TOPICs given, else of all)."""
    return run_figures(topics, force, jobs, device)


def run_figures(topics, force, jobs, device) -> int:
    chosen = select(topics)
    check_device(device)
    problems = [f"topic {t!r} cannot be imported: {why}" for t, why in BROKEN.items()] if not topics else []
    manifest = runner.read_manifest()
    by_id = {e.id: e for e in chosen}
    return run_stale(Stale(
        "experiment", "Running", "ran", list(by_id),
        {e.id: "forced" if force else runner.staleness(e, manifest.get(e.id), device) for e in chosen},
        lambda ids, on_done: runner.run([by_id[i] for i in ids], jobs, device, on_done=on_done),
        where=f" ({device})"), jobs, problems)


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
    chosen = list(dict.fromkeys(names)) or list(found)
    manifest = notebooks.read_manifest()
    return run_stale(Stale(
        "notebook", "Executing", "executed", chosen,
        {n: "forced" if force else notebooks.staleness(found[n], manifest.get(n)) for n in chosen},
        lambda todo, on_done: notebooks.run(todo, jobs, on_done=on_done), label=lambda n: f"{n}.ipynb"), jobs)


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


MKDOCS_ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
SITE_TMP = re.compile(r"^\.site-(\d+)-")


def sweep_sites(parent: Path):
    """Remove the `.site-PID-*` folders that builds killed mid-way left (never those of a build still running)."""
    for path in parent.glob(".site-*"):
        owner = SITE_TMP.match(path.name)
        if owner and pid_alive(int(owner.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False


def die_with_parent():
    """In the MkDocs child: end it when vgsite is killed (Linux PR_SET_PDEATHSIG), not leave it writing."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def build_site(dest: Path) -> int:
    """Build into a fresh folder beside `dest`, then swap it in with one rename: at every moment either the old
    site or the new one is at `dest`. A failed or interrupted build leaves the old site whole."""
    sweep_sites(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".site-{os.getpid()}-", dir=dest.parent))
    try:
        os.chmod(tmp, dir_mode())  # mkdtemp makes 0700: a web server or an rsync deploy could not read it
        proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
                               "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp)], cwd=ROOT,
                              env=MKDOCS_ENV, preexec_fn=die_with_parent)
        if proc.returncode:
            click.echo("Site build failed (mkdocs build --strict, see above); the previous site/ is untouched.",
                       err=True)
            return 1
        from vgsite.cache import signals_deferred

        with signals_deferred():
            if dest.is_dir() and not dest.is_symlink() and exchange(tmp, dest):
                pass  # tmp now holds the old site
            else:
                old = dest.with_name(tmp.name + "-old")
                if dest.exists() or dest.is_symlink():
                    dest.rename(old)
                tmp.rename(dest)
                tmp = old
    except KeyboardInterrupt:
        click.echo("\nInterrupted: the site was not rebuilt; site/ is as it was.", err=True)
        raise Interrupted from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    click.echo(f"Site built in {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}/.")
    return 0


def address(ctx, param, value):
    """host:port, with a port from 1 to 65535."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[\w.-]+):(\d{1,5})", value or "")
    if not match or not 0 < int(match.group(2)) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (for example 127.0.0.1:8000)")
    return value


def port_free(value: str):
    host, port = value.rsplit(":", 1)
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise click.BadParameter(f"cannot resolve {host!r} ({err.strerror})", param_hint="'--dev-addr'") from None
    family, kind, proto, _, where = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as err:
            raise Failed(f"cannot serve on {value}: {err.strerror or err} (another server? try -a {host}:8001)") \
                from None


@cli.command()
@click.option("--dev-addr", "-a", default="127.0.0.1:8000", show_default=True, callback=address,
              help="Address to serve on (HOST:PORT).")
def serve(dev_addr):
    """Live preview: reloads when a page or a figure changes (run `vgsite figures` to refresh figures)."""
    port_free(dev_addr)
    return subprocess.call([sys.executable, "-m", "mkdocs", "serve", "--dev-addr", dev_addr,
                            "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT, env=MKDOCS_ENV,
                           preexec_fn=die_with_parent)


@cli.command()
def clean():
    """Delete the built site and every generated figure (figures/README.md stays)."""
    removed = 0
    generated = [p for p in FIGURES.iterdir() if p.name != "README.md"] if FIGURES.is_dir() else []
    for path in [ROOT / "site", *ROOT.glob(".site-*"), *generated]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
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


# ---------------------------------------------------------------- entry point

def interrupt(signum, frame):
    """SIGTERM acts as Ctrl-C; after the first, both are ignored so that the clean-up runs to its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv=None):
    """Entry point: usage errors get one line and exit 2; a command's return value is the exit code."""
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = cli.main(args=argv, prog_name="vgsite", standalone_mode=False)
    except click.UsageError as err:
        click.echo(f"vgsite: error: {err.format_message()}", err=True)
        status = 2
    except Interrupted:  # its line was printed
        status = 130
    except click.exceptions.Abort:  # click's word for a KeyboardInterrupt inside a command
        click.echo("Interrupted.", err=True)
        status = 130
    except KeyboardInterrupt:
        click.echo("\nInterrupted.", err=True)
        status = 130
    except (Failed, CacheError) as err:
        click.echo(f"vgsite: error: {err}", err=True)
        status = 1
    except click.ClickException as err:
        err.show()
        status = err.exit_code
    except Exception as err:  # no traceback for a user; VGSITE_DEBUG=1 shows it
        if os.environ.get("VGSITE_DEBUG"):
            raise
        where = f" ({err.filename})" if isinstance(err, OSError) and err.filename else ""
        click.echo(f"vgsite: error: {one_line(err)}{where} (VGSITE_DEBUG=1 shows the traceback)", err=True)
        status = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.exit(status if isinstance(status, int) else 0)


from vgsite.health_cli import health  # noqa: E402
from vgsite.verify import verify_command  # noqa: E402

cli.add_command(health)
cli.add_command(verify_command)
