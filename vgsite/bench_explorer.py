"""Time the gradient-flow explorer's recompute (docs/js/explorer/engine.js) in headless Chromium: `make bench-explorer`.

Serves docs/js/ on 127.0.0.1 (ES modules load over HTTP only), imports the engine into a blank page and times both
engines, float32 on WebAssembly (what the page
uses) and the float64 JavaScript reference, with performance.now(): once cold (a new seed, so the weights are drawn
too), then `runs` times warm (the weights' draws cached, a new gain each run, as while the gain slider is dragged).
Reports the median and the main thread's CPU time per run. Uses Debian's /usr/bin/chromium (never `playwright
install`).

    python -m vgsite.bench_explorer [--depth 100] [--widths 64,256] [--batch 64] [--runs 10] [--act tanh]
"""
import argparse
import contextlib
import itertools
import json
import statistics
import sys
from pathlib import Path

from vgsite import ROOT

JS = ROOT / "docs" / "js"  # docs/js/explorer/*.js: the explorer's modules
ENGINES = {"float32": "compute", "float64": "computeFloat64"}
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

COLD = """([cfg, fn]) => {
    const t0 = performance.now();
    const r = vgExplorer[fn](Object.assign({}, cfg, {seed: 1000 + Math.floor(Math.random() * 1e6)}));
    const cold = performance.now() - t0;
    vgExplorer[fn](cfg); vgExplorer[fn](cfg);          // warm-up: the weights are cached, the JIT has run
    return [cold, r.engine];
}"""
WARM = """([cfg, fn, runs]) => {
    const warm = [];
    for (let i = 0; i < runs; i++) {   // a new gain each run, as while the gain slider is dragged: nothing but the
        const c = Object.assign({}, cfg, {gain: 1 + 0.001 * i});   // weights' draws is reused from the run before
        const t = performance.now(); vgExplorer[fn](c); warm.push(performance.now() - t);
    }
    return warm;
}"""


# A blank page of the served folder imports the engine and the kernels as window.vgExplorer and window.vgKernels.
IMPORT = """async () => {
    window.vgExplorer = await import("./explorer/engine.js");
    window.vgKernels = await import("./explorer/kernels.js");
    return await vgExplorer.ready;
}"""


@contextlib.contextmanager
def engine_page(browser):
    """A page with the explorer's engine loaded from docs/js (served on 127.0.0.1): vgExplorer.compute(config) and the
    rest of engine.js's exports, and vgKernels (kernels.js). Yields (page, engine name: "float32" or "float64")."""
    from vgsite.bench import serve_site

    with serve_site(JS, "/js/") as base:
        page = browser.new_page()
        page.goto(base)  # the folder's listing: a page of that origin, beside explorer/
        engine = page.evaluate(IMPORT)
        try:
            yield page, engine
        finally:
            page.close()


def thread_time(cdp):
    """CPU seconds of the page's main thread (Chrome's ThreadTime metric): unlike the wall clock, it does not
    count the time the thread waited for a core on a busy machine."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics.get("ThreadTime", float("nan"))


def bench(depth=100, widths=(64, 256), batch=64, runs=10, act="tanh", init="default"):
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        with engine_page(browser) as (page, _):
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            version = browser.version
            for width, fn in itertools.product(widths, ENGINES.values()):
                cfg = {"depth": depth, "width": width, "batch": batch, "act": act, "init": init, "seed": 0}
                cold, ran = page.evaluate(COLD, [cfg, fn])
                before = thread_time(cdp)
                warm = page.evaluate(WARM, [cfg, fn, runs])
                cpu_ms = (thread_time(cdp) - before) * 1000 / runs
                rows.append({"engine": ran, "depth": depth, "width": width, "batch": batch, "act": act, "init": init,
                             "cold_ms": cold, "median_ms": statistics.median(warm), "min_ms": min(warm),
                             "cpu_ms": cpu_ms, "runs": runs,
                             "multiply_adds": depth * (2 * batch * width * width + 2 * batch * batch * width)})
        browser.close()
    return version, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--widths", default="64,256", help="comma-separated widths (default 64,256)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--act", default="tanh")
    ap.add_argument("--init", default="default")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: the benchmark needs Debian's chromium", file=sys.stderr)
        return 1
    version, rows = bench(args.depth, tuple(int(w) for w in args.widths.split(",")), args.batch, args.runs,
                          args.act, args.init)
    if args.json:
        print(json.dumps({"chromium": version, "rows": rows}, indent=1))
        return 0
    print(f"explorer recompute in headless Chromium {version}, {args.act}, {args.init} init, batch {args.batch}")
    print(f"{'engine':>8} {'depth':>5} {'width':>5} {'cold ms':>9} {'median ms':>10} {'min ms':>8} {'CPU ms':>8} "
          f"{'GMAC/s':>7}")
    for r in rows:
        rate = r["multiply_adds"] / r["cpu_ms"] / 1e6
        print(f"{r['engine']:>8} {r['depth']:>5} {r['width']:>5} {r['cold_ms']:>9.1f} {r['median_ms']:>10.1f} "
              f"{r['min_ms']:>8.1f} {r['cpu_ms']:>8.1f} {rate:>7.2f}")
    print(f"median and min: wall clock over {args.runs} warm runs (weights cached, a new gain each run); CPU: the "
          "main thread's CPU time per run, which a busy machine does not inflate; cold: the first run, drawing the "
          "weights too")
    return 0


if __name__ == "__main__":
    sys.exit(main())
