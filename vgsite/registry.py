"""The one list of topics, and the decorator that registers a topic's experiments.

A topic is a module in vgsite/topics/ named in TOPICS; its page is docs/<topic>.md.
An experiment is a function of its configuration that returns a Result.
"""
import importlib
from dataclasses import dataclass, field
from typing import Callable

# Reading order of the site. To add a topic: write vgsite/topics/<name>.py and docs/<name>.md, add the name here.
TOPICS = (
    "overview",
    "backprop",
    "vanishing",
    "init",
    "training",
    "seeing",
    "activations",
    "batchnorm",
    "residual",
    "images",
    "rnn",
    "clipping",
    "future",
    "claims",
)


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


def experiment(**config):
    """Register the decorated function as an experiment of its topic, with its default configuration."""

    def register(func):
        topic = func.__module__.rsplit(".", 1)[-1]
        exp = Experiment(topic, func.__name__.replace("_", "-"), func, dict(config))
        EXPERIMENTS[exp.id] = exp
        return exp

    return register


def load() -> dict[str, Experiment]:
    """Import every topic module; returns all experiments in reading order."""
    for topic in TOPICS:
        importlib.import_module(f"vgsite.topics.{topic}")
    order = {t: i for i, t in enumerate(TOPICS)}
    return dict(sorted(EXPERIMENTS.items(), key=lambda kv: order[kv[1].topic]))
