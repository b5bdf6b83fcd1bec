"""`vgsite health MODULE:FUNCTION`: a quick look at the gradient health of a reader's own model."""
import importlib
import importlib.util
import sys
from pathlib import Path

import click


def fail(message: str):
    """One clear line on stderr and exit status 2: what was wrong with the input."""
    click.echo(f"vgsite health: error: {message}", err=True)
    sys.exit(2)


def load_function(spec: str):
    """MODULE:FUNCTION, MODULE a dotted import name or a path to a .py file."""
    if spec.count(":") != 1 or not all(spec.split(":")):
        fail(f"expected MODULE:FUNCTION (e.g. mymodels:build), got {spec!r}")
    module_name, function_name = spec.split(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                fail(f"no such file: {module_name}")
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.path.insert(0, str(path.resolve().parent))
            loader_spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        fail(f"cannot import {module_name!r}: {err}")
    except SystemExit:
        raise
    except Exception as err:  # the reader's module raised while importing
        fail(f"importing {module_name!r} raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    function = getattr(module, function_name, None)
    if function is None:
        fail(f"module {module_name!r} has no function {function_name!r}")
    if not callable(function):
        fail(f"{module_name}:{function_name} is a {type(function).__name__}, not a function")
    return function


@click.command("health")
@click.argument("spec", metavar="MODULE:FUNCTION")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Training steps to run.")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True, help="Sample every N steps.")
@click.option("--lr", type=float, default=0.01, show_default=True, help="Learning rate of the SGD it trains with.")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False), help="Also save the heatmaps (PNG).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also save the numbers (JSON).")
def health(spec, steps, every, lr, figure_path, json_path):
    """Train a few steps on what FUNCTION returns and print the gradient health report.

    FUNCTION takes no arguments and returns (model, batch), batch being (inputs, targets) or inputs alone, or
    (model, loss_fn, loader). MODULE is an importable name or a path to a .py file.
    """
    import torch

    from vgsite import health as h

    function = load_function(spec)
    try:
        got = function()
    except Exception as err:
        fail(f"{spec}() raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    torch.manual_seed(0)
    try:
        watch = h.quick_look(got, steps=steps, every=every, lr=lr)
    except h.BadInput as err:
        fail(f"{spec}: {err}")
    except (RuntimeError, ValueError, TypeError) as err:
        fail(f"{spec}: training failed with {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    click.echo(watch.text())
    if figure_path:
        watch.figure().savefig(figure_path, dpi=100)
        click.echo(f"figure: {figure_path}")
    if json_path:
        watch.save(json_path)
        click.echo(f"numbers: {json_path}")
    return 0
