"""Page speed and weight: Lighthouse (mobile) and the bytes a browser fetches, for every page of the built site.

`make bench` (or `python -m vgsite.bench [SITE_DIR] [--pages PATH,...] [--no-lighthouse]`) serves the built site on
127.0.0.1 under a project sub-path, gzipped, as GitHub Pages serves it (https://OWNER.github.io/REPO/), then

- runs Lighthouse (its default, mobile preset: a mid-range phone, simulated slow 4G) on every page, in Debian's
  /usr/bin/chromium, and reports each page's performance and accessibility scores, with the audits that cost
  points. Lighthouse is the npm package, pinned (LIGHTHOUSE) and installed under .venv/lighthouse by `make bench`
  (`npm install --prefix .venv/lighthouse lighthouse@VERSION`); it never downloads a browser. One run of a page
  varies by several points (Lighthouse's docs/variability.md: the median of several runs is the stable figure), so
  a page below MIN_PERFORMANCE on its first run is run RUNS times in all and scored by the median run (pages at
  or above it are not run again);
- opens every page in headless Chromium with an empty cache and adds up the bytes of every response: the HTML and
  the images, CSS, JavaScript and search index it loads, lazy images included (a reader scrolls), raw and as sent
  gzipped. It flags an image whose PNG is more than twice as wide as it is shown on a 1280 px desktop (twice covers
  a high-density screen; more is bytes nobody sees).

The exit code is 1 when a page scores below MIN_PERFORMANCE or MIN_ACCESSIBILITY, transfers more than
MAX_PAGE_GZIP bytes gzipped, or shows an oversized image. Needs playwright (a test dependency), Node.js and
/usr/bin/chromium.

`serve_site` is also what the browser tests serve the site with.
"""
import argparse
import contextlib
import gzip
import http.server
import io
import json
import os
import shutil
import subprocess
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
# For the tests: no host name resolves but the local server's, so a request to any other host fails inside the
# browser (a playwright route would do it in Python, one round trip per request).
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
MAX_PAGE_GZIP = 400_000  # bytes on the wire, gzipped, on a first visit, lazy images included
MIN_PERFORMANCE = 0.95    # Lighthouse, mobile preset
MIN_ACCESSIBILITY = 1.0
LIGHTHOUSE = "12.2.3"     # 13 needs Node 22; Debian's Node is 20
LIGHTHOUSE_DIR = ROOT / ".venv" / "lighthouse"
MAX_OVERSIZE = 2.0
RUNS = 3  # Lighthouse runs of a page that scores below MIN_PERFORMANCE on its first; the median one counts
DESKTOP = {"width": 1280, "height": 800}
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml", "application/xml")


class PagesHandler(http.server.SimpleHTTPRequestHandler):
    """Static files as GitHub Pages serves a project site: everything under PREFIX, `404.html` with
    status 404 for anything missing, a directory without its slash redirected to it, and (with `gzip`) text
    compressed for a browser that accepts it."""

    prefix = PREFIX
    gzip = False
    _compressed = {}  # (path, mtime) -> gzipped bytes, shared by the handler's threads

    def wants_gzip(self, ctype):
        return self.gzip and ctype.startswith(TEXT_TYPES) and "gzip" in self.headers.get("Accept-Encoding", "")

    def compressed(self, path):
        key = (path, os.stat(path).st_mtime_ns)
        if key not in self._compressed:
            self._compressed[key] = gzip.compress(Path(path).read_bytes(), 6)
        return self._compressed[key]

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path) and self.path.split("?", 1)[0].split("#", 1)[0].endswith("/"):
            path = os.path.join(path, "index.html")
        ctype = self.guess_type(path)
        if not os.path.isfile(path) or not self.wants_gzip(ctype):
            return super().send_head()
        body = self.compressed(path)
        self.send_response(200)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype.startswith("text/") else ""))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        return io.BytesIO(body)

    def translate_path(self, path):
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if not (clean + "/").startswith(self.prefix):
            return os.path.join(self.directory, "\0missing")  # outside the project: not found
        return super().translate_path("/" + path[len(self.prefix):])

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        zipped = self.wants_gzip("text/html")
        body = self.compressed(str(page)) if zipped else page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if zipped:
            self.send_header("Content-Encoding", "gzip")
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
def serve_site(site_dir, prefix=PREFIX, port=0, gzipped=False):
    """Serve `site_dir` on http://127.0.0.1:PORT{prefix} in a thread (text gzipped if `gzipped`); yields the base
    URL."""
    # gzipped (the benchmark): HTTP/1.1, whose connections a browser keeps open as it does GitHub Pages' HTTP/2 ones;
    # HTTP/1.0 would make Lighthouse charge a new connection for every file
    attrs = {"prefix": prefix, "gzip": gzipped, "_compressed": {}}
    if gzipped:
        attrs["protocol_version"] = "HTTP/1.1"
    handler = partial(type("Handler", (PagesHandler,), attrs), directory=str(site_dir))
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


# Lazy images load when scrolled to; a reader scrolls, so load them all, then report each one's sizes. Only the
# images that are shown: a figure's variant for the other colour scheme is never fetched.
LOAD_IMAGES = """async () => {
  const images = [...document.images].filter(img => img.checkVisibility());
  for (const img of images) img.loading = "eager";
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return images.map(img => ({src: img.currentSrc || img.src, natural: img.naturalWidth,
                             shown: img.getBoundingClientRect().width}));
}"""


def measure(browser, base, path):
    """Bytes fetched by a fresh browser for one page, with its lazy images loaded: {url: (raw bytes, bytes on the
    wire, content type)}, and its images' natural vs displayed widths."""
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
        wire = sizes["responseBodySize"] + sizes["responseHeadersSize"]  # as sent: gzipped where the server did
        try:
            raw = len(response.body()) + sizes["responseHeadersSize"]
        except Exception:
            raw = wire
        fetched[request.url] = (raw, wire, response.headers.get("content-type", ""))
    context.close()
    return fetched, images


# Lighthouse's Node API, one Chromium for all pages: one JSON line per page. Run with the cwd in LIGHTHOUSE_DIR.
LIGHTHOUSE_JS = r"""
import lighthouse from "lighthouse";
import * as chromeLauncher from "chrome-launcher";
const [chromePath, flags, ...urls] = process.argv.slice(1);
const chrome = await chromeLauncher.launch({chromePath, chromeFlags: JSON.parse(flags)});
try {
  for (const url of urls) {
    const {lhr} = await lighthouse(url, {port: chrome.port, output: "json", logLevel: "error",
                                         onlyCategories: ["performance", "accessibility"]});
    const a = lhr.audits, metric = id => a[id] ? a[id].numericValue : null;
    const costs = cat => lhr.categories[cat].auditRefs
      .filter(ref => ref.weight > 0 && a[ref.id].score !== null && a[ref.id].score < 1)
      .map(ref => `${ref.id} ${a[ref.id].displayValue || a[ref.id].score}`);
    console.log(JSON.stringify({url, performance: lhr.categories.performance.score,
      accessibility: lhr.categories.accessibility.score, bytes: metric("total-byte-weight"),
      fcp: metric("first-contentful-paint"), lcp: metric("largest-contentful-paint"),
      tbt: metric("total-blocking-time"), cls: metric("cumulative-layout-shift"), si: metric("speed-index"),
      costs: {performance: costs("performance"), accessibility: costs("accessibility")},
      error: lhr.runtimeError ? lhr.runtimeError.message : null}));
  }
} finally {
  await chrome.kill();
}
"""


def lighthouse_installed():
    package = LIGHTHOUSE_DIR / "node_modules" / "lighthouse" / "package.json"
    return package.is_file() and json.loads(package.read_text()).get("version") == LIGHTHOUSE


def run_lighthouse(base, paths):
    """Lighthouse (mobile preset) on each page: {path: its JSON line}. Paths in batches, each batch one Chromium."""
    out = {}
    for start in range(0, len(paths), 8):
        batch = paths[start:start + 8]
        try:
            proc = subprocess.run(["node", "--input-type=module", "-e", LIGHTHOUSE_JS, CHROMIUM,
                                   json.dumps(CHROMIUM_ARGS), *[base + p for p in batch]],
                                  cwd=LIGHTHOUSE_DIR, capture_output=True, text=True, timeout=120 * len(batch) + 60)
            stdout, problem = proc.stdout, proc.returncode and f"exit {proc.returncode}: {proc.stderr[-2000:]}"
        except subprocess.TimeoutExpired as err:  # keep the pages it finished
            stdout, problem = err.stdout or "", "timed out"
            stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        for line in stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                out[row["url"][len(base):]] = row
        if problem:
            print(f"bench: lighthouse failed on {', '.join(batch)} ({problem})", file=sys.stderr)
        print(f"bench: Lighthouse {len(out)}/{len(paths)} pages", file=sys.stderr, flush=True)
    return out


def rerun_below_target(base, scores, runs=RUNS):
    """Run the pages whose performance is below MIN_PERFORMANCE runs - 1 more times; each keeps its median run (by
    performance score; the lower middle one of an even count), with every run's score in "runs". One-sided: a page
    at or above the target on its first run is not run again, so one lucky run still passes a page."""
    slow = [path for path, row in scores.items() if (row.get("performance") or 0) < MIN_PERFORMANCE]
    tries = {path: [scores[path]] for path in slow}
    for _ in range(runs - 1):
        if slow:
            print(f"bench: Lighthouse again on {len(slow)} pages below {MIN_PERFORMANCE}", file=sys.stderr)
        for path, row in run_lighthouse(base, slow).items():
            tries[path].append(row)
    for path, rows in tries.items():
        ranked = sorted(rows, key=lambda r: r.get("performance") or 0)
        scores[path] = {**ranked[(len(ranked) - 1) // 2], "runs": [r.get("performance") for r in rows]}
    return scores


def main(argv=None):
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", nargs="?", default=str(ROOT / "site"), help="the built site (default: site/)")
    ap.add_argument("--pages", help="comma-separated page paths to measure (default: every page), e.g. ,rnn/")
    ap.add_argument("--no-lighthouse", action="store_true", help="page weight only")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    site_dir = Path(args.site)
    if not (site_dir / "index.html").is_file():
        print(f"bench: no built site in {site_dir}: run `make site` first", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"bench: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    lighthouse = not args.no_lighthouse
    if lighthouse and not (shutil.which("node") and lighthouse_installed()):
        print(f"bench: Lighthouse {LIGHTHOUSE} is not in {LIGHTHOUSE_DIR} (`make bench` installs it: npm install "
              f"--prefix {LIGHTHOUSE_DIR.relative_to(ROOT)} lighthouse@{LIGHTHOUSE}; needs Node.js)", file=sys.stderr)
        return 2
    paths = page_paths(site_dir)
    if args.pages is not None:
        wanted = [p.strip() for p in args.pages.split(",")]
        paths = [p for p in paths if p in wanted]
    start = time.monotonic()
    rows, oversized = [], []
    with serve_site(site_dir, gzipped=True) as base:
        scores = rerun_below_target(base, run_lighthouse(base, paths)) if lighthouse else {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for path in paths:
                fetched, images = measure(browser, base, path)
                kinds = {}
                for _, wire, kind in fetched.values():
                    key = kind.split(";")[0].split("/")[-1] or "other"
                    kinds[key] = kinds.get(key, 0) + wire
                rows.append({"page": path or "(home)", "path": path, "raw": sum(r for r, _, _ in fetched.values()),
                             "wire": sum(w for _, w, _ in fetched.values()), "files": len(fetched), "kinds": kinds,
                             "lighthouse": scores.get(path)})
                for img in images:
                    if img["shown"] and img["natural"] > MAX_OVERSIZE * img["shown"]:
                        oversized.append((path or "(home)", img["src"].removeprefix(base), img["natural"],
                                          round(img["shown"])))
            browser.close()
    rows.sort(key=lambda r: -r["wire"])
    failures = report(rows, lighthouse)
    if oversized:
        print(f"\nImages more than {MAX_OVERSIZE:g}x wider than shown at {DESKTOP['width']} px:")
        for path, src, natural, shown in oversized:
            print(f"  {path}: {src} is {natural} px wide, shown at {shown} px")
    else:
        print(f"No image is more than {MAX_OVERSIZE:g}x wider than shown at {DESKTOP['width']} px.")
    print(f"{len(rows)} pages in {time.monotonic() - start:.0f} s.")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failures or oversized else 0


def report(rows, lighthouse):
    """Print the table, then what is short of the targets; returns the list of shortfalls."""
    print(f"{'perf':>5} {'a11y':>5} {'LH kB':>6} {'gz kB':>6} {'raw kB':>7} {'files':>5}  page   "
          "[heaviest kinds, gzipped]")
    failures, reruns = [], []
    for r in rows:
        lh = r["lighthouse"] or {}
        perf, a11y = lh.get("performance"), lh.get("accessibility")
        cell = lambda v: f"{v:5.2f}" if isinstance(v, (int, float)) else "    -"
        top = ", ".join(f"{k} {v / 1e3:.0f}" for k, v in sorted(r["kinds"].items(), key=lambda kv: -kv[1])[:3])
        lh_kb = f"{lh['bytes'] / 1e3:6.0f}" if lh.get("bytes") else "     -"
        print(f"{cell(perf)} {cell(a11y)} {lh_kb} {r['wire'] / 1e3:6.0f} {r['raw'] / 1e3:7.0f} {r['files']:>5}  "
              f"{r['page']}   [{top}]")
        if r["wire"] > MAX_PAGE_GZIP:
            failures.append(f"{r['page']}: {r['wire'] / 1e3:.0f} kB gzipped, over {MAX_PAGE_GZIP / 1e3:.0f} kB")
        if lighthouse:
            if not lh or lh.get("error"):
                failures.append(f"{r['page']}: Lighthouse gave no result ({lh.get('error') if lh else 'no output'})")
                continue
            if "runs" in lh:
                each = " ".join("-" if v is None else f"{v:.2f}" for v in lh["runs"])
                reruns.append(f"{r['page']}: {each} -> median {cell(perf).strip()}")
            if perf is None or perf < MIN_PERFORMANCE:
                failures.append(f"{r['page']}: performance {perf} (FCP {lh['fcp']:.0f} ms, LCP {lh['lcp']:.0f} "
                                f"ms, TBT {lh['tbt']:.0f} ms, CLS {lh['cls']:.3f}): "
                                f"{'; '.join(lh['costs']['performance'])}")
            if a11y is None or a11y < MIN_ACCESSIBILITY:
                failures.append(f"{r['page']}: accessibility {a11y}: {'; '.join(lh['costs']['accessibility'])}")
    print("perf, a11y: Lighthouse (mobile preset, simulated slow 4G) scores; LH kB: what its first load transferred; "
          "gz kB: every byte a first visit fetches, lazy images included, as sent gzipped; raw kB: the same unzipped.")
    if reruns:
        print(f"Below {MIN_PERFORMANCE} on a first run, so run again, {RUNS} runs in all (performance of each run; "
              "the median is shown above):\n  " + "\n  ".join(reruns))
    if failures:
        print(f"\nShort of the targets (performance >= {MIN_PERFORMANCE}, accessibility >= {MIN_ACCESSIBILITY}, "
              f"<= {MAX_PAGE_GZIP / 1e3:.0f} kB gzipped):")
        for f in failures:
            print("  " + f)
    else:
        print("Every page meets the targets.")
    return failures


if __name__ == "__main__":
    sys.exit(main())
