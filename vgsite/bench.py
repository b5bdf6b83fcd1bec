"""Page weight: what a reader's browser fetches for each page of the built site, heaviest first.

`make bench` (or `python -m vgsite.bench [SITE_DIR]`) serves the built site on 127.0.0.1 under a project
sub-path, as GitHub Pages does (https://OWNER.github.io/REPO/), opens every page in headless Chromium
with an empty cache and adds up the bytes of every response it gets: the HTML and the images, CSS,
JavaScript and search index it loads (lazy images are made to load too: a reader scrolls). It flags a
page over 1.5 MB, and an image whose PNG is more than twice as wide as it is shown on a 1280 px
desktop (twice covers a high-density screen; more is bytes nobody sees). The exit code is 1 when
something is flagged. Needs playwright (a test dependency) and /usr/bin/chromium.

`serve_site` is also what the browser tests serve the site with.
"""
import contextlib
import gzip
import http.server
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path

from vgsite import ROOT

PREFIX = "/vgsite/"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # CI on GitHub: its runner's Chrome
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MAX_PAGE_BYTES = 1_500_000
MAX_OVERSIZE = 2.0
DESKTOP = {"width": 1280, "height": 800}
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml", "application/xml")


class PagesHandler(http.server.SimpleHTTPRequestHandler):
    """Static files as GitHub Pages serves a project site: everything under PREFIX, `404.html` with
    status 404 for anything missing, a directory without its slash redirected to it."""

    prefix = PREFIX

    def translate_path(self, path):
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if not (clean + "/").startswith(self.prefix):
            return os.path.join(self.directory, "\0missing")  # outside the project: not found
        return super().translate_path("/" + path[len(self.prefix):])

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a browser that hangs up mid-response is no failure of the site


@contextlib.contextmanager
def serve_site(site_dir, prefix=PREFIX, port=0):
    """Serve `site_dir` on http://127.0.0.1:PORT{prefix} in a thread; yields the base URL."""
    handler = partial(type("Handler", (PagesHandler,), {"prefix": prefix}), directory=str(site_dir))
    server = QuietServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    finally:
        server.shutdown()
        server.server_close()


def page_paths(site_dir):
    """Every page of the site as a URL path relative to its root (`""`, `vanishing/`), 404.html left out."""
    site_dir = Path(site_dir)
    paths = []
    for html in sorted(site_dir.rglob("*.html")):
        rel = html.relative_to(site_dir).as_posix()
        if rel == "404.html":
            continue
        paths.append(rel[: -len("index.html")] if rel.endswith("index.html") else rel)
    return paths


# Lazy images load when scrolled to; a reader scrolls, so load them all, then report each one's sizes.
LOAD_IMAGES = """async () => {
  const images = [...document.images];
  for (const img of images) img.loading = "eager";
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return images.map(img => ({src: img.currentSrc || img.src, natural: img.naturalWidth,
                             shown: img.getBoundingClientRect().width}));
}"""


def measure(browser, base, path):
    """Bytes fetched by a fresh browser for one page, and its images' natural vs displayed widths."""
    context = browser.new_context(viewport=DESKTOP, service_workers="block")
    page = context.new_page()
    responses = []
    page.on("requestfinished", lambda request: responses.append(request))
    page.goto(base + path, wait_until="load")
    images = page.evaluate(LOAD_IMAGES)
    page.wait_for_load_state("networkidle")
    fetched = {}
    for request in responses:
        response = request.response()
        if response is None or request.url in fetched:
            continue
        sizes = request.sizes()
        body = sizes["responseBodySize"]
        kind = response.headers.get("content-type", "")
        try:
            wire = len(gzip.compress(response.body(), 6)) if kind.startswith(TEXT_TYPES) else body
        except Exception:
            wire = body
        fetched[request.url] = (body + sizes["responseHeadersSize"], wire, kind)
    context.close()
    return fetched, images


def main(argv=None):
    from playwright.sync_api import sync_playwright

    argv = sys.argv[1:] if argv is None else argv
    site_dir = Path(argv[0]) if argv else ROOT / "site"
    if not (site_dir / "index.html").is_file():
        print(f"bench: no built site in {site_dir}: run `make site` first", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"bench: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    start = time.monotonic()
    rows, oversized = [], []
    with serve_site(site_dir) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for path in page_paths(site_dir):
            fetched, images = measure(browser, base, path)
            raw = sum(size for size, _, _ in fetched.values())
            wire = sum(w for _, w, _ in fetched.values())
            kinds = {}
            for size, _, kind in fetched.values():
                key = kind.split(";")[0].split("/")[-1] or "other"
                kinds[key] = kinds.get(key, 0) + size
            rows.append((raw, wire, len(fetched), path or "(home)", kinds))
            for img in images:
                if img["shown"] and img["natural"] > MAX_OVERSIZE * img["shown"]:
                    oversized.append((path or "(home)", img["src"].removeprefix(base), img["natural"],
                                      round(img["shown"])))
        browser.close()
    rows.sort(reverse=True)
    print(f"{'bytes':>10} {'gzipped':>10} {'files':>5}  page   (bytes fetched with an empty cache; "
          f"gzipped: text as GitHub Pages sends it)")
    heavy = []
    for raw, wire, count, path, kinds in rows:
        flag = "  OVER 1.5 MB" if raw > MAX_PAGE_BYTES else ""
        if flag:
            heavy.append(path)
        top = ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:3])
        print(f"{raw:>10,} {wire:>10,} {count:>5}  {path}{flag}   [{top}]")
    total = sum(r[0] for r in rows)
    print(f"\n{len(rows)} pages, heaviest {rows[0][3]} at {rows[0][0] / 1e6:.2f} MB, "
          f"median {sorted(r[0] for r in rows)[len(rows) // 2] / 1e3:.0f} kB, {total / 1e6:.1f} MB in all "
          f"(shared CSS/JS counted on every page); {time.monotonic() - start:.0f} s.")
    if oversized:
        print(f"\nImages more than {MAX_OVERSIZE:g}x wider than shown at {DESKTOP['width']} px:")
        for path, src, natural, shown in oversized:
            print(f"  {path}: {src} is {natural} px wide, shown at {shown} px")
    else:
        print(f"No image is more than {MAX_OVERSIZE:g}x wider than shown at {DESKTOP['width']} px.")
    if heavy:
        print(f"Over {MAX_PAGE_BYTES / 1e6:g} MB: {', '.join(heavy)}")
    return 1 if heavy or oversized else 0


if __name__ == "__main__":
    sys.exit(main())
