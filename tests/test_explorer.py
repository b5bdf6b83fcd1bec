"""The in-browser gradient-flow explorer (docs/js/explorer/*.js) against vgsite's PyTorch probes, and its page.

The explorer's random numbers are not torch's, so single draws differ; what must agree are the statistics: the
mean over five draws on each side. Runs Debian's /usr/bin/chromium through playwright (never `playwright install`).
"""
import math
import re
from pathlib import Path

import numpy as np
import pytest

from vgsite.bench import CHROMIUM
from vgsite.probes import log_ratio, probe_at_init
from vgsite.topics.vanishing import NETS, PER_LAYER_FACTOR

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "docs" / "js" / "explorer"
SEEDS = range(5)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"needs Chromium at {CHROMIUM} for the browser")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every experiment runs: many small ops are slower on two threads
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def js(browser):
    """A blank page with engine.js imported (as window.vgExplorer) and kernels.js (window.vgKernels): call
    vgExplorer.compute(config) in it. The modules are served over HTTP, as ES modules must be."""
    from vgsite.bench_explorer import engine_page

    with engine_page(browser) as (page, engine):
        assert page.evaluate("typeof window.vgExplorer.compute") == "function"
        assert engine == "float32"  # Chromium has WebAssembly SIMD: the fast path runs
        yield page


def js_draws(page, cfg):
    """compute() for each seed: per draw the log10 first/last ratios, last-layer activation std, saturation."""
    return page.evaluate("""([cfg, seeds]) => seeds.map(seed => {
        const r = vgExplorer.compute(Object.assign({}, cfg, {seed}));
        const L = r.layers;
        return {signal: Math.log10(r.signal[0] / r.signal[L - 1]), weight: Math.log10(r.weight[0] / r.weight[L - 1]),
                std: Math.log10(r.act_std[L - 1]), sat: r.saturated.reduce((a, b) => a + b) / L,
                theory: r.theory.available ? r.theory.decades_per_layer : null};
    })""", [cfg, list(SEEDS)])


def torch_draws(cfg):
    out = []
    for seed in SEEDS:
        flow = probe_at_init(cfg["depth"], cfg["width"], seed=seed, activation=cfg["act"], init=cfg["init"],
                             gain=cfg.get("gain", 1.0), residual=cfg.get("res", False),
                             norm=None if cfg.get("norm", "none") == "none" else cfg["norm"])
        out.append({"signal": log_ratio(flow["signal"]), "weight": math.log10(flow["weight"][0] / flow["weight"][-1]),
                    "std": math.log10(flow["act_std"][-1]), "sat": float(np.mean(flow["saturated"]))})
    return out


def mean(draws, key):
    return float(np.mean([d[key] for d in draws]))


def net(depth, act, init, width=32, **kw):
    return dict(depth=depth, width=width, batch=64, act=act, init=init, **kw)


# Depths 5, 20 and 50; every activation and initialisation; residual, batch- and layer-normalised networks.
# Sigmoid stops at 40 layers: beyond, PyTorch's float32 gradient underflows to 0 and its log ratio is -inf.
# 32 units wide, 64 at 50 layers, where the draws scatter more.
CASES = [net(5, act, "default") for act in ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "selu")] + [
    net(20, "tanh", init) for init in ("default", "xavier", "kaiming", "orthogonal", "normal")] + [
    net(20, "gelu", "xavier"), net(20, "selu", "normal"), net(40, "sigmoid", "default"),
    net(50, "relu", "kaiming", width=64), net(50, "relu", "normal", gain=2.0, width=64),
    net(50, "tanh", "orthogonal", width=64),
    net(20, "relu", "kaiming", res=True), net(20, "relu", "kaiming", norm="batch"),
    net(20, "sigmoid", "default", norm="batch", res=True), net(20, "tanh", "default", norm="layer"),
]


def case_id(cfg):
    extra = "".join(f"-{k}{cfg[k]}" for k in ("gain", "res", "norm") if k in cfg)
    return f"{cfg['act']}-{cfg['init']}-d{cfg['depth']}-w{cfg['width']}{extra}"


AGREEMENT = {}  # case id -> (explorer, torch): the mean log10 first/last ratio, printed at the end


@pytest.mark.parametrize("cfg", CASES, ids=case_id)
def test_explorer_matches_pytorch_probes(js, cfg, record_property):
    ours, theirs = js_draws(js, cfg), torch_draws(cfg)
    AGREEMENT[case_id(cfg)] = (mean(ours, "signal"), mean(theirs, "signal"))
    record_property("explorer_agreement", AGREEMENT[case_id(cfg)])  # for the report when xdist splits the cases
    # The gradient's first-to-last ratio, and the weight gradient's: the same within half a decade on average.
    assert mean(ours, "signal") == pytest.approx(mean(theirs, "signal"), abs=0.5)
    assert mean(ours, "weight") == pytest.approx(mean(theirs, "weight"), abs=0.5)
    # The forward pass: the last layer's activation spread, same tolerance (it is a product over layers too).
    assert mean(ours, "std") == pytest.approx(mean(theirs, "std"), abs=0.5)
    # The share of saturated or dead units. A ReLU unit's share is set by its offset, fixed for the whole batch, so
    # one draw of 32 units scatters by about 0.04 and a mean of five by 0.02: 0.1 is four standard errors of the gap.
    assert mean(ours, "sat") == pytest.approx(mean(theirs, "sat"), abs=0.1)


def test_report_agreement(capsys):
    """Prints the agreement table (in one process; under pytest-xdist, conftest prints it at the end of the run)."""
    if AGREEMENT:
        with capsys.disabled():
            worst = max(abs(a - b) for a, b in AGREEMENT.values())
            print(f"\nexplorer vs torch, mean log10(|dL/dh_1| / |dL/dh_L|) over 5 draws; worst gap {worst:.2f}")
            for key, (a, b) in AGREEMENT.items():
                print(f"  {key:40s} explorer {a:8.2f}  torch {b:8.2f}  gap {a - b:+.2f}")


def test_theory_line_has_the_sites_per_layer_factors(js):
    """The explorer's dashed line uses the factors of the 'Why gradients vanish' page (small-z limit)."""
    settings = {"sigmoid, default init": ("sigmoid", "default"), "tanh, default init": ("tanh", "default"),
                "ReLU, default init": ("relu", "default"), "ReLU, He init": ("relu", "kaiming")}
    assert set(settings) == set(NETS)
    for label, (act, init) in settings.items():
        theory = js.evaluate("c => vgExplorer.theory(c).decades_per_layer", net(30, act, init, width=64))
        assert theory == pytest.approx(math.log10(PER_LAYER_FACTOR[label]), abs=0.02), label
    # no line where the simple theory does not hold
    assert js.evaluate("c => vgExplorer.theory(c).available", net(10, "relu", "kaiming", norm="batch")) is False
    assert js.evaluate("c => vgExplorer.theory(c).available", net(10, "relu", "kaiming", res=True)) is False


ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "selu")
ENGINE_GRID = [net(30, act, init, width=64, norm=norm, res=res) for act in ACTIVATIONS for init, norm, res in (
    ("default", "none", False), ("kaiming", "none", False), ("xavier", "batch", False), ("orthogonal", "layer", False),
    ("default", "none", True), ("kaiming", "batch", True))]


def test_float32_engine_matches_the_float64_reference(js):
    """The fast path (WebAssembly, float32) is the reference pass (JavaScript, float64) to a hundredth of a decade
    in every layer, for every activation, with and without normalisation and skip connections."""
    rows = js.evaluate("""cfgs => cfgs.map(c => {
        const a = vgExplorer.compute(c), b = vgExplorer.computeFloat64(c);
        return {engine: a.engine, reference: b.engine, a, b};
    })""", ENGINE_GRID)
    for cfg, row in zip(ENGINE_GRID, rows):
        a, b, name = row["a"], row["b"], case_id(cfg)
        assert (row["engine"], row["reference"]) == ("float32", "float64"), name
        for key in ("signal", "weight", "act_std"):
            gap = np.max(np.abs(np.log10(np.array(a[key])) - np.log10(np.array(b[key]))))
            assert gap < 0.01, (name, key, gap)
        assert np.max(np.abs(np.array(a["saturated"]) - np.array(b["saturated"]))) < 0.01, name
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), name


def test_float32_hands_over_to_float64_where_the_activations_leave_its_range(js):
    engines = js.evaluate("""cfgs => cfgs.map(c => {
        const r = vgExplorer.compute(c);
        return [r.engine, r.signal.every(Number.isFinite) && r.signal[0] > 0];
    })""", [net(40, "relu", "kaiming", width=64, gain=8.0),    # activations grow past 1e30
            net(100, "relu", "kaiming", width=64, gain=0.3),   # and shrink past 1e-30
            net(100, "relu", "kaiming", width=64, gain=1.0)])
    assert engines == [["float64", True], ["float64", True], ["float32", True]]


def test_kernels_without_relaxed_simd_compute_the_same_products(js):
    """Browsers without relaxed SIMD get the module with separate multiplies and adds: the same products."""
    gaps = js.evaluate("""async () => {
        const module = async relaxed => (await WebAssembly.instantiate(vgKernels.assemble(relaxed))).instance.exports;
        const plain = await module(false), relaxed = await module(true), gaps = [];  // not the explorer's memory
        for (const E of [plain, relaxed]) {
            const m = 16, k = 24, p = 32, A = 4096, BT = A + 4 * m * k, Ap = BT + 4 * p * k, Bp = Ap + 4 * m * k,
                  C = Bp + 4 * p * k, bias = C + 4 * m * p;
            if (E.memory.buffer.byteLength < bias + 4 * p) E.memory.grow(1);
            const F = new Float32Array(E.memory.buffer);
            for (let i = 0; i < m * k; i++) F[A / 4 + i] = Math.sin(1 + i);
            for (let i = 0; i < p * k; i++) F[BT / 4 + i] = Math.cos(2 + i);
            for (let j = 0; j < p; j++) F[bias / 4 + j] = j / 10;
            for (let i = 0; i < m * p; i++) F[C / 4 + i] = 1;
            E.packA(A, Ap, m, k); E.packBT(BT, Bp, k, p, 2); E.gemm(Ap, Bp, C, m, p, k, 0.5, bias, -1, 0);
            let gap = 0;   // C = 0.5 A (2 BT)^T + bias + the old C (1)
            for (let i = 0; i < m; i++) for (let j = 0; j < p; j++) {
                let dot = 0;
                for (let t = 0; t < k; t++) dot += F[A / 4 + i * k + t] * F[BT / 4 + j * k + t];
                gap = Math.max(gap, Math.abs(F[C / 4 + i * p + j] - (dot + j / 10 + 1)));
            }
            gaps.push(gap);
        }
        return gaps;
    }""")
    assert max(gaps) < 1e-5, gaps


def test_weights_are_drawn_as_their_initialisation_says(js):
    """Orthogonal: W W^T = gain^2 I (width 64 on the kernels, width 6 in JavaScript); He: n Var(W) = 2; Xavier
    uniform: n Var(W) = 1; PyTorch's default: 1/3."""
    for n, init, gain, scale in ((64, "orthogonal", 1.5, None), (6, "orthogonal", 0.5, None), (64, "kaiming", 1, 2),
                                 (64, "xavier", 1, 1), (64, "default", 1, 1 / 3)):
        W = np.array(js.evaluate("([c, l]) => vgExplorer.weights(c, l)", [net(3, "tanh", init, width=n, gain=gain), 2]))
        W = W.reshape(n, n)
        if scale is None:
            assert np.abs(W @ W.T - gain ** 2 * np.eye(n)).max() < 1e-12
        else:
            assert n * W.var() == pytest.approx(scale, rel=0.05), init


def test_activation_kernels_match_float64(js):
    """Each SIMD activation and its derivative against float64 JavaScript, on -30..30 and on tiny inputs, where
    the forward pass of a vanishing network lives (relative error there, absolute error elsewhere)."""
    worst = js.evaluate("""async () => {
        const k = await vgKernels.ready, F = () => new Float32Array(k.memory.buffer);
        const zs = [];
        for (let z = -30; z <= 30; z += 0.01) zs.push(z);
        for (let e = -30; e <= -2; e += 0.25) zs.push(Math.pow(10, e), -Math.pow(10, e));
        while (zs.length % 4) zs.push(0);
        const n = zs.length, Z = k.memory.buffer.byteLength, A = Z + 4 * n, D = A + 4 * n;  // past the explorer's
        k.memory.grow(Math.ceil(12 * n / 65536));
        const SA = 1.0507009873554805 * 1.6732632423543772, erf = vgExplorer.erf;
        const ref = {
            relu: z => [Math.max(z, 0), z > 0 ? 1 : 0], leaky_relu: z => [z > 0 ? z : 0.01 * z, z > 0 ? 1 : 0.01],
            sigmoid: z => { const s = 1 / (1 + Math.exp(-z)); return [s, s * (1 - s)]; },
            tanh: z => { const t = Math.tanh(z); return [t, 1 - t * t]; },
            gelu: z => { const c = 0.5 * (1 + erf(z * Math.SQRT1_2));
                         return [z * c, c + z * Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI)]; },
            selu: z => z > 0 ? [1.0507009873554805 * z, 1.0507009873554805] : [SA * Math.expm1(z), SA * Math.exp(z)],
        };
        const out = {};
        for (const name in ref) {
            F().set(zs, Z / 4);
            k.exports[name](Z, A, D, n, 0);
            const f = F(); let abs = 0, rel = 0, dabs = 0;
            for (let i = 0; i < n; i++) {
                const z = f[Z / 4 + i], [a, d] = ref[name](z), ea = Math.abs(f[A / 4 + i] - a);
                if (Math.abs(z) < 1e-2) rel = Math.max(rel, a === 0 ? ea : ea / Math.abs(a));
                else abs = Math.max(abs, ea / Math.max(1, Math.abs(a)));
                dabs = Math.max(dabs, Math.abs(f[D / 4 + i] - d));
            }
            out[name] = [abs, rel, dabs];
        }
        return out;
    }""")
    for name, (abs_err, rel_err, slope_err) in worst.items():
        assert abs_err < 1e-6 and rel_err < 1e-6 and slope_err < 1e-6, (name, abs_err, rel_err, slope_err)


def test_cached_weights_give_the_same_network_and_no_gradient_underflows(js):
    gap = js.evaluate("""() => {
        const a = vgExplorer.compute({depth: 30, width: 32, act: "tanh", init: "orthogonal", gain: 1});
        const b = vgExplorer.compute({depth: 30, width: 32, act: "tanh", init: "orthogonal", gain: 1});
        return Math.abs(a.signal[0] - b.signal[0]);   // cached weights: the same network twice
    }""")
    assert gap == 0
    # a sigmoid network at 100 layers: far below float32's 1.4e-45, but not 0: the float32 engine carries the
    # gradient at unit scale with its logarithm aside
    first = js.evaluate("() => vgExplorer.compute({depth: 100, width: 64, act: 'sigmoid', init: 'default'}).signal[0]")
    assert 0 < first < 1e-60


def test_address_round_trips(js):
    cfg = {"depth": 57, "width": 128, "act": "gelu", "init": "xavier", "gain": 1.4142, "res": True, "norm": "layer",
           "seed": 3, "batch": 64}
    back = js.evaluate("c => vgExplorer.parse('#' + vgExplorer.format(c))", cfg)
    assert back == cfg
    # unknown or out-of-range values fall back to the defaults instead of breaking the page
    default = js.evaluate("() => vgExplorer.defaults")
    assert js.evaluate("() => vgExplorer.parse('#act=swish&depth=-3&width=7&init=he')") == {**default, "init": "kaiming"}


# ---------------------------------------------------------------------------------------------------------------
# The built page: controls, plots, summary, address.


@pytest.fixture(scope="module")
def explorer_site(published):
    """The site as MkDocs builds it from the current pages and figures (no experiment runs): conftest's `published`,
    the one build the browser tests share (strict, as the Pages workflow builds it)."""
    return published.dir


@pytest.fixture(scope="module")
def served(published):
    """Its address, http://127.0.0.1:PORT/vgsite/: the pages' links are relative, so they work under a sub-path."""
    return published.base


def open_page(browser, url, explorer=True, init_script=None, **ctx):
    context = browser.new_context(**ctx)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a click that leaves the page aborts the images still loading there: that is not a fault of the site
    page.on("requestfailed", lambda r: r.failure == "net::ERR_ABORTED" or errors.append(f"failed {r.url}: {r.failure}"))
    page.on("response", lambda r: r.status < 400 or errors.append(f"HTTP {r.status} {r.url}"))
    hosts = []
    page.on("request", lambda r: hosts.append(re.match(r"\w+://([^/]+)", r.url).group(1)))
    page.goto(url)
    if explorer:
        page.wait_for_selector(".vgx-summary:not(:empty)", timeout=60_000)
    return page, errors, hosts


def grad_svg(page):
    return page.inner_html(".vgx-panel-grad svg")


def wait_change(page, selector, old):
    page.wait_for_function("([s, old]) => document.querySelector(s).textContent !== old", arg=[selector, old],
                           timeout=60_000)


def test_page_controls_redraw_and_update_the_address(browser, served):
    page, errors, hosts = open_page(
        browser, served + "explorer/#depth=20&width=32&act=sigmoid&init=default&gain=1&res=0&norm=none&seed=0")
    # the address restored the controls
    assert page.input_value("#vgx1-depth") == "20"
    assert page.input_value("#vgx1-width") == "32"
    assert page.input_value("#vgx1-act") == "sigmoid"
    summary = page.inner_text(".vgx-summary")
    assert "vanishing" in summary and "layer 1" in summary
    assert page.get_attribute(".vgx-summary", "aria-live") == "polite"
    # the page's module worker found the engine and its kernels in the built site, and says which engine ran
    assert page.get_attribute(".vg-explorer", "data-engine") == "worker"
    assert "float32 on WebAssembly" in page.inner_text(".vgx-timing")
    # every control has a label that names it
    for control in page.query_selector_all(".vg-explorer input, .vg-explorer select"):
        cid = control.get_attribute("id")
        assert page.query_selector(f'label[for="{cid}"]'), cid
        assert page.inner_text(f'label[for="{cid}"]').strip()
    before, svg = summary, grad_svg(page)
    page.select_option("#vgx1-act", "relu")
    page.select_option("#vgx1-init", "kaiming")
    page.wait_for_function("() => location.hash.includes('act=relu&init=kaiming')", timeout=60_000)
    wait_change(page, ".vgx-summary", before)
    assert "ReLU" in page.inner_text(".vgx-summary") and grad_svg(page) != svg
    # keyboard: the depth slider with the arrow keys, the residual checkbox with the space bar
    page.focus("#vgx1-depth")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.hash.includes('depth=23&')", timeout=60_000)
    page.focus("#vgx1-res")
    page.keyboard.press("Space")
    page.wait_for_function("() => location.hash.includes('res=1')", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.vgx-summary').textContent.includes('23 layers')",
                           timeout=60_000)
    assert "residual" in page.inner_text(".vgx-summary")
    # the x axis now runs to 23 and the dashed theory line is gone (no simple theory with residual connections)
    page.wait_for_function("() => !document.querySelector('.vgx-panel-grad .vgx-dash')", timeout=60_000)
    assert ">23<" in grad_svg(page)
    # a shared link (here: a new hash) restores the controls
    page.evaluate("location.hash = '#depth=12&width=16&act=tanh&init=orthogonal&gain=1.5&res=0&norm=layer&seed=2'")
    page.wait_for_function("() => document.querySelector('.vgx-summary').textContent.includes('12 layers')",
                           timeout=60_000)
    assert page.input_value("#vgx1-init") == "orthogonal" and page.input_value("#vgx1-norm") == "layer"
    assert page.input_value("#vgx1-seed") == "2"
    assert not errors
    assert set(hosts) == {served.split("/")[2]}


def test_exact_zeros_are_marked_on_the_plot(browser, served):
    """A ReLU layer 8 units wide can switch off entirely; below it the gradient is exactly 0, drawn as triangles."""
    page, errors, _ = open_page(
        browser, served + "explorer/#depth=30&width=8&act=relu&init=default&gain=0.3&res=0&norm=none&seed=0")
    zeros = page.evaluate("""async () => {  // the engine, imported on the page (it runs in the worker there)
        const E = await vgExplorer.engine();
        await E.ready;
        return E.compute(E.parse(location.hash)).signal.filter(v => v === 0).length;
    }""")
    assert zeros > 0
    assert len(page.query_selector_all(".vgx-panel-grad .vgx-zero")) >= zeros
    assert "exactly 0" in page.inner_text(".vgx-panel-grad .vgx-legend")
    assert "exactly 0" in page.inner_text(".vgx-summary")
    assert not errors


def test_compact_explorer_on_the_home_page_links_to_the_full_one(browser, served):
    page, errors, _ = open_page(browser, served, explorer=False, viewport={"width": 375, "height": 800})
    # built when it comes within a screen of the viewport: scroll there, as a reader does
    page.locator(".vg-explorer").scroll_into_view_if_needed()
    page.wait_for_selector(".vgx-summary:not(:empty)", timeout=60_000)
    assert page.query_selector(".vgx-compact .vgx-panel-grad svg path.vgx-line")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling on a phone
    href = page.get_attribute(".vgx-compact .vgx-link", "href")
    assert href.startswith("explorer/#depth=30&") and "act=sigmoid" in href
    page.click(".vgx-compact .vgx-link")
    page.wait_for_selector(".vgx-full .vgx-summary:not(:empty)", timeout=60_000)
    assert page.input_value("#vgx1-act") == "sigmoid" and page.input_value("#vgx1-depth") == "30"
    assert not errors


def test_preset_links_on_the_vanishing_page_open_the_explorer_with_their_settings(browser, served, explorer_site):
    html = (explorer_site / "vanishing" / "index.html").read_text()
    links = re.findall(r'href="(\.\./explorer/#[^"]+)"', html)
    assert len(links) >= 4
    page, errors, _ = open_page(browser, served + "vanishing/", explorer=False)
    page.click('a[href^="../explorer/#depth=50"]')
    page.wait_for_selector(".vgx-full .vgx-summary:not(:empty)", timeout=60_000)
    assert page.input_value("#vgx1-depth") == "50" and page.input_value("#vgx1-act") == "sigmoid"
    assert "50 layers" in page.inner_text(".vgx-summary")
    assert not errors


# ---------------------------------------------------------------------------------------------------------------
# Modules, loading and speed: the explorer's code loads on the two pages that show it, as ES modules.

def test_every_module_says_what_it_owns_and_imports_only_modules_that_exist():
    modules = sorted(JS.glob("*.js"))
    assert {m.name for m in modules} >= {"engine.js", "kernels.js", "theory.js", "state.js", "page.js", "draw.js",
                                         "worker.js", "weights.js", "activations.js"}
    for module in modules:
        text = module.read_text()
        assert text.startswith(f"/* docs/js/explorer/{module.name}: "), module.name
        assert "Owns:" in text.split("*/", 1)[0], f"{module.name}: its header does not say what it owns"
        for target in re.findall(r'(?:from|import\()\s*"(\./[\w.-]+)"', text):
            assert (JS / target).is_file(), f"{module.name} imports {target}, which is missing"
    # the old single scripts are gone, and nothing loads them
    assert not (JS.parent / "explorer.js").exists() and not (JS.parent / "explorer-kernels.js").exists()


def test_the_explorer_loads_only_on_the_pages_that_show_it(explorer_site):
    module = re.compile(r'<script type="module" src="(?:\.\./)*js/explorer/page\.js"></script>')
    showing = set()
    for html_file in explorer_site.rglob("*.html"):
        text = html_file.read_text()
        assert "js/explorer.js" not in text, html_file
        if "data-vg-explorer" in text:
            assert module.search(text), f"{html_file}: an explorer without its script"
            showing.add(html_file.relative_to(explorer_site).as_posix())
        else:
            assert not re.search(r'<script[^>]*src="[^"]*js/explorer', text), f"{html_file}: loads the explorer's code"
    assert showing == {"index.html", "explorer/index.html"}


LAYOUT_SHIFT = """() => new Promise(done => {
    let total = 0;
    new PerformanceObserver(list => { for (const e of list.getEntries()) if (!e.hadRecentInput) total += e.value; })
        .observe({type: "layout-shift", buffered: true});
    setTimeout(() => done(total), 1500);
})"""


@pytest.mark.parametrize("viewport", [{"width": 375, "height": 812}, {"width": 1280, "height": 800}],
                         ids=["phone", "desktop"])
def test_the_explorer_draws_without_moving_the_page(browser, served, viewport):
    """Lighthouse measured a cumulative layout shift of 0.45 while the explorer drew: the text below it jumped. It
    holds a screen's height until it is built; 0.1 is Lighthouse's limit for a good page."""
    page, errors, _ = open_page(browser, served + "explorer/", viewport=viewport)
    assert page.evaluate(LAYOUT_SHIFT) < 0.02
    assert not errors


@pytest.mark.parametrize("viewport", [{"width": 375, "height": 812}, {"width": 360, "height": 640}],
                         ids=["375x812", "360x640"])
def test_on_a_phone_the_gradient_plot_is_on_screen_with_each_control(browser, served, viewport):
    """On a phone, every control of the full explorer fits on one screen with the gradient plot under it: scrolled
    so that the control is just below the header, the plot is still on screen while the control moves."""
    page, errors, _ = open_page(browser, served + "explorer/", viewport=viewport)
    header, rows = page.evaluate("""() => {
        const plot = document.querySelector(".vgx-full .vgx-panel-grad svg").getBoundingClientRect();
        const header = document.querySelector(".md-header").getBoundingClientRect().height;
        return [header, [...document.querySelectorAll(".vgx-full .vgx-controls input, .vgx-full .vgx-controls select")]
            .map(c => { const box = c.closest(".vgx-field").getBoundingClientRect();
                        return [c.id, box.top, box.bottom, plot.top, plot.bottom]; })];
    }""")
    assert len(rows) == 8
    for cid, top, bottom, plot_top, plot_bottom in rows:
        assert plot_top >= bottom - 1, f"{cid}: the plot is not under it"
        assert plot_bottom - top <= viewport["height"] - header, \
            f"{cid}: control and plot span {plot_bottom - top:.0f} px, the screen {viewport['height'] - header} px"
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert not errors


def test_without_web_workers_the_explorer_computes_on_the_page(browser, served):
    """Where no worker can start, page.js imports the engine itself and computes one frame later."""
    page, errors, _ = open_page(browser, served + "explorer/#depth=20&width=32&act=relu&init=kaiming&gain=1&res=0"
                                "&norm=none&seed=0", init_script="delete window.Worker")
    assert page.get_attribute(".vg-explorer", "data-engine") == "page"
    assert "20 layers" in page.inner_text(".vgx-summary") and "float32 on WebAssembly" in page.inner_text(".vgx-timing")
    assert not errors

