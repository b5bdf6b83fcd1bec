"""Links from the topic pages into the gradient-flow explorer (docs/explorer.md): every one names a valid setting.

The explorer reads its settings from the address hash, e.g. `explorer/#depth=50&width=64&act=sigmoid&...`. An
invalid value would silently fall back to a default, so these tests read the Markdown sources (no build, no
browser) and check each link's eight keys against the allowed values, restated here rather than read from the JS.
"""
import html
import re
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))

ALLOWED = {
    "depth": lambda v: v.isdigit() and 1 <= int(v) <= 100,
    "width": lambda v: v in {"8", "16", "32", "64", "128", "256"},
    "act": lambda v: v in {"sigmoid", "tanh", "relu", "leaky_relu", "gelu", "selu"},
    "init": lambda v: v in {"default", "xavier", "kaiming", "orthogonal", "normal"},
    "gain": lambda v: re.fullmatch(r"\d+(\.\d+)?", v) is not None and 0 < float(v) <= 10,
    "res": lambda v: v in {"0", "1"},
    "norm": lambda v: v in {"none", "batch", "layer"},
    "seed": lambda v: v.isdigit(),
}
MUST_LINK = ["init", "activations", "batchnorm", "residual", "future", "vanishing"]

HREF = re.compile(r'href="([^"]*explorer/#[^"]*)"')


def explorer_links(page: Path) -> list[str]:
    return [html.unescape(href) for href in HREF.findall(page.read_text())]


ALL_LINKS = [(page, link) for page in PAGES for link in explorer_links(page)]


@pytest.mark.parametrize("page, link", ALL_LINKS, ids=[f"{p.stem}:{link}" for p, link in ALL_LINKS])
def test_every_explorer_link_sets_all_eight_keys_to_allowed_values(page, link):
    prefix, _, fragment = link.partition("#")
    # pages are served at <page>/, the home page at the root
    assert prefix == ("explorer/" if page.name == "index.md" else "../explorer/"), f"wrong prefix in {page.name}"
    pairs = parse_qsl(fragment, keep_blank_values=True, strict_parsing=True)
    keys = [key for key, _ in pairs]
    assert sorted(keys) == sorted(ALLOWED), f"keys {keys} (need each of {sorted(ALLOWED)} once)"
    for key, value in pairs:
        assert ALLOWED[key](value), f"{key}={value} is not an allowed value"


@pytest.mark.parametrize("name", MUST_LINK)
def test_topic_page_links_into_the_explorer(name):
    assert explorer_links(DOCS / f"{name}.md"), f"{name}.md has no link that opens the explorer with a setting"


def test_no_markdown_link_carries_an_explorer_hash():
    # the strict build reads the hash of a Markdown link as a heading anchor on explorer.md and fails; a link to a
    # real heading there (explorer.md#how-it-is-computed) is fine, one with settings (#depth=...) is not
    for page in PAGES:
        assert not re.search(r"\]\([^)\s]*explorer(\.md|/)#[^)\s]*=", page.read_text()), page.name
