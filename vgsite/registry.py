"""The topics in reading order, the decorator that registers a topic's experiments, and where their files go.

A topic is a module vgsite/topics/<topic>.py; its page is docs/<topic>.md and its notebook
docs/notebooks/<topic>.ipynb. The reading order is the order of the notebooks in the nav of mkdocs.yml (a test
checks the pages follow the same order): TOPICS is read from there, so adding a topic needs no list here.
An experiment is a function of its configuration that returns a Result.
"""
import importlib
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

PACKAGE = Path(__file__).resolve().parent
MKDOCS = PACKAGE.parent / "mkdocs.yml"


def topic_modules() -> list[str]:
    return sorted(p.stem for p in (PACKAGE / "topics").glob("[!_]*.py") if p.stem.isidentifier())


def nav_entries(mkdocs: Path = MKDOCS) -> list[str]:
    """The files mkdocs.yml's nav lists, in order."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # !ENV and friends
    try:
        nav = yaml.load(mkdocs.read_text(), Loader=Loader).get("nav") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    found = []

    def walk(item):
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(nav)
    return found


@lru_cache(maxsize=None)
def reading_order() -> tuple:
    """The topic modules ordered as their notebooks appear in the nav; topics not there yet come last."""
    entries = nav_entries()
    where = {path: i for i, path in reversed(list(enumerate(entries)))}
    far = len(entries)

    def place(topic):
        if f"notebooks/{topic}.ipynb" in where:
            return (where[f"notebooks/{topic}.ipynb"], topic)
        return (far + where.get(f"{topic}.md", far), topic)

    return tuple(sorted(topic_modules(), key=place))


def __getattr__(name):
    if name == "TOPICS":  # computed on first use: reading mkdocs.yml costs nothing to those who never ask
        return reading_order()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def topic_page(topic: str) -> Path:
    """The topic's page: docs/<topic>.md, or the page that links its notebook (overview's is the home page)."""
    docs = PACKAGE.parent / "docs"
    if (docs / f"{topic}.md").exists():
        return docs / f"{topic}.md"
    linking = [p for p in sorted(docs.glob("*.md")) if f"notebooks/{topic}.ipynb" in p.read_text()]
    return linking[0] if linking else docs / f"{topic}.md"


# ---------------------------------------------------------------- where an experiment's files go (under figures/)

def record_file(exp_id: str) -> str:
    """The experiment's record: its configuration and the numbers it plotted."""
    return f"{exp_id}.json"


def figure_file(topic: str, plot: str) -> str:
    """The figure as drawn, for the light theme (2× pixels; vgsite.outputs.png_bytes)."""
    return f"{topic}/{plot}.png"


DARK_SUFFIX = ".dark.png"


def dark_figure_file(topic: str, plot: str) -> str:
    """The same figure restyled for the dark theme (vgsite.plots.dark)."""
    return f"{topic}/{plot}{DARK_SUFFIX}"


ONE_X_SUFFIX = ".1x.png"


def at_1x(path: str) -> str:
    """The same figure at one pixel per CSS px, for a screen of that density (the page's srcset):
    `topic/plot.png` -> `topic/plot.1x.png`, `topic/plot.dark.png` -> `topic/plot.dark.1x.png`."""
    return path.removesuffix(".png") + ONE_X_SUFFIX


def figure_files(topic: str, plot: str) -> list[str]:
    """Every file one figure is saved as."""
    files = [figure_file(topic, plot), dark_figure_file(topic, plot)]
    return files + [at_1x(f) for f in files]


def code_page(module: str) -> str:
    """The site page that lists a module's source: `vgsite.topics.vanishing` or `vgsite/topics/vanishing.py`."""
    if module.endswith(".py"):
        module = module[:-3].replace("/", ".")
    return f"code/{module}.md"


@dataclass
class Plot:
    """One figure an experiment drew. alt says what it shows (for screen readers and the page)."""
    name: str
    fig: object
    alt: str
    caption: str = ""


@dataclass
class Result:
    data: dict
    plots: list = field(default_factory=list)


class Config(dict):
    """A dict whose keys read as attributes: cfg.depth."""

    __getattr__ = dict.__getitem__


@dataclass(frozen=True)
class Experiment:
    topic: str
    name: str
    func: Callable
    config: dict

    @property
    def id(self) -> str:
        return f"{self.topic}/{self.name}"

    @property
    def module(self) -> str:
        return f"vgsite.topics.{self.topic}"

    def __call__(self, **overrides) -> Result:
        unknown = set(overrides) - set(self.config)
        if unknown:
            raise TypeError(f"{self.id} has no setting {', '.join(sorted(unknown))}")
        return self.func(Config(self.config, **overrides))


EXPERIMENTS: dict[str, Experiment] = {}
BROKEN: dict[str, str] = {}  # topic -> why its module cannot be imported (one line)


def experiment(**config):
    """Register the decorated function as an experiment of its topic, with its default configuration."""

    def register(func):
        topic = func.__module__.rsplit(".", 1)[-1]
        exp = Experiment(topic, func.__name__.replace("_", "-"), func, dict(config))
        EXPERIMENTS[exp.id] = exp
        return exp

    return register


def load() -> dict[str, Experiment]:
    """Import every topic module; returns all experiments in reading order.

    A topic whose module fails to import is left out and its error kept in BROKEN: the others still work.
    """
    topics = reading_order()
    for topic in topics:
        if topic in BROKEN:
            continue
        try:
            importlib.import_module(f"vgsite.topics.{topic}")
        except Exception as err:
            BROKEN[topic] = import_error(topic, err)
    order = {t: i for i, t in enumerate(topics)}
    return dict(sorted(((k, e) for k, e in EXPERIMENTS.items() if e.topic in order and e.topic not in BROKEN),
                       key=lambda kv: order[kv[1].topic]))


def import_error(topic: str, err: Exception) -> str:
    """`ZeroDivisionError: division by zero (vgsite/topics/x.py, line 3)`: the error and where in the topic."""
    where = f"vgsite/topics/{topic}.py"
    if isinstance(err, SyntaxError) and err.lineno:
        return f"{type(err).__name__}: {err.msg} ({where}, line {err.lineno})"
    line = next((f.lineno for f in reversed(traceback.extract_tb(err.__traceback__))
                 if f.filename.endswith(f"topics/{topic}.py")), None)
    text = str(err).strip().splitlines()
    message = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
    return f"{message} ({where}" + (f", line {line})" if line else ")")
