"""Navigation in reading order: the footer's Previous/Next walk the prose pages, the explorer and then the
reference pages before any companion notebook, and every menu label is its page's title. Reads the HTML of
conftest's `published` site (no browser)."""
import html
import re

import pytest


NEXT = re.compile(r'<a href="([^"]*)" class="md-footer__link md-footer__link--next" aria-label="Next: ([^"]*)"')
PREV = re.compile(r'<a href="([^"]*)" class="md-footer__link md-footer__link--prev" aria-label="Previous: ([^"]*)"')


def footer(site, page, pattern=NEXT):
    found = pattern.search((site / page / "index.html").read_text())
    return (found.group(1), html.unescape(found.group(2))) if found else None


@pytest.mark.parametrize("page, next_href, next_title", [
    ("language", "../explorer/", "Gradient-flow explorer"),  # the last topic page leads to the explorer
    ("explorer", "../claims/", "The sources' claims, tested"),  # the explorer leads to the claims ledger
])
def test_footer_next_follows_the_reading_order(published, page, next_href, next_title):
    assert footer(published.dir, page) == (next_href, next_title)


def test_no_prose_page_steps_into_the_notebooks(published):
    """Only the last reference page (the code) leads on to the notebooks; no notebook leads back into the prose."""
    site = published.dir
    pages = [p.parent.relative_to(site).as_posix() for p in site.glob("*/index.html")]
    for page in pages:
        if page in ("notebooks", "code", "404"):
            continue
        found = footer(site, page)
        assert found is None or "notebooks/" not in found[0], f"{page}/: its Next link is {found}"
    assert footer(site, "code") == ("../notebooks/", "Notebooks")
    assert footer(site, "notebooks", PREV) == ("../code/", "The code")


def test_menu_labels_match_page_titles(published):
    """The nav label of each prose page is its H1 (the case studies, filed under "Case studies", say so in their
    H1 only)."""
    index = (published.dir / "index.html").read_text()
    labels = dict(re.findall(r'<a href="([a-z-]+/)" class="md-nav__link">\s*<span class="md-ellipsis">\s*(.*?)\s*'
                             r'</span>', index, re.S))
    assert labels, "no nav links found in index.html"
    for href, label in labels.items():
        h1 = re.search(r"<h1[^>]*>(.*?)</h1>", (published.dir / href / "index.html").read_text(), re.S)
        title = re.sub(r"<[^>]+>", "", re.sub(r'<a class="headerlink".*?</a>', "", h1.group(1))).strip() if h1 \
            else None
        if title and title.startswith("Case study: "):
            title = title.removeprefix("Case study: ").capitalize()
        assert html.unescape(label) == html.unescape(title or ""), f"{href}: menu label {label!r}, title {title!r}"
