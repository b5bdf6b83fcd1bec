"""The search box finds the page about a term: typed into Material's search in headless Chromium, each query's
first result is the prose page on it, not a companion notebook nor a page that merely mentions the term.

What makes it so: the search plugin's `separator` in mkdocs.yml ("He/Kaiming" is two words), notebook pages
down-weighted by vgsite/docs_hooks.py (page.meta["search"]["boost"]), and front matter on a few prose pages
(`search: boost` or `tags`, which Material indexes as keywords). Uses conftest's `published` site (one build
shared by every xdist worker) and Debian's /usr/bin/chromium; skips without it.
"""
from urllib.parse import urlsplit

import pytest

from conftest import PREFIX, type_search

SEARCHES = [
    ("sigmoid", "vanishing/", "Why gradients vanish"),
    ("He initialization", "init/", "Weight scale and initialisation"),
    ("Kaiming", "init/", "Weight scale and initialisation"),
    ("Xavier", "init/", "Weight scale and initialisation"),
    ("clipping", "clipping/", "Exploding gradients and clipping"),
    ("LSTM", "rnn/", "Vanishing through time"),
    ("batch norm", "batchnorm/", "Batch normalisation"),
    ("ResNet", "residual/", "Residual connections"),
]

FIRST_RESULTS = """() => [...document.querySelectorAll(".md-search-result__item > a.md-search-result__link:first-child")]
    .map(a => ({href: a.href, title: (a.querySelector("h1, h2") || a).textContent.trim()}))"""


@pytest.fixture(scope="module")
def search_page(browser, published):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
    page = context.new_page()
    page.goto(published.base)
    yield page
    context.close()


def page_of(href: str) -> str:
    path = urlsplit(href).path
    return path[len(PREFIX):] if path.startswith(PREFIX) else path


@pytest.mark.parametrize("query, url, title", SEARCHES, ids=[q for q, _, _ in SEARCHES])
def test_search_ranks_the_prose_page_first(search_page, query, url, title):
    page = search_page
    type_search(page, query)
    # The results of a prefix of the query may still be on screen: wait (a while) for the expected page to come
    # first, then make sure it stays first once the search has settled.
    try:
        page.wait_for_function(f"""url => {{ const r = ({FIRST_RESULTS})();
            return r.length && new URL(r[0].href).pathname.endsWith("{PREFIX}" + url); }}""", arg=url,
                               timeout=5_000)
    except Exception:
        pass
    page.wait_for_timeout(500)
    results = page.evaluate(FIRST_RESULTS)
    shown = [f"{r['title']} <{page_of(r['href'])}>" for r in results[:6]]
    assert results, f"{query!r}: no results"
    assert page_of(results[0]["href"]) == url and results[0]["title"] == title, \
        f"{query!r}: expected {title} <{url}> first; the results are {shown}"
