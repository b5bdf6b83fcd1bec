/* docs/js/explorer/page.js: the explorer on a page: controls, runner, plots and the spoken summary.
 *
 * Owns: everything in the DOM. Builds each [data-vg-explorer] element (data-vg-explorer="full" or "compact",
 * data-config, data-full), keeps the full explorer's settings in the address hash (state.js's format), sends each
 * setting to worker.js (only the latest: a dragged slider never builds a queue) and draws the answer with
 * draw.js. Loaded by the pages that show an explorer, as <script type="module" src=".../js/explorer/page.js">;
 * the engine itself runs in the worker and is imported on the page only where no worker can start.
 * window.vgExplorer gets {parse, format, engine()} (engine() -> Promise of engine.js's exports), for the console.
 */
import { ACTS, NORMS, WIDTHS, INITS, format, parse } from "./state.js";
import { drawPanel, esc } from "./draw.js";

var SVGNS = "http://www.w3.org/2000/svg";
var instances = 0;
var engine = null; // engine.js's exports, imported on the page only when needed
function loadEngine() { return engine || (engine = import("./engine.js")); }

function el(tag, attrs, text) {
  var e = document.createElement(tag);
  for (var k in attrs || {}) {
    if (k === "class") e.className = attrs[k]; else if (k === "for") e.htmlFor = attrs[k];
    else e.setAttribute(k, attrs[k]);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A runner: in a module Web Worker (worker.js) where the browser can start one, otherwise on the page, one frame
 * later. Either way only the latest request is computed: a dragged slider never builds a queue. */
function Runner(onResult) {
  var worker = null, busy = false, pending = null, sent = null, id = 0, self = this;
  if (typeof Worker !== "undefined") {
    try {
      worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
      worker.onmessage = function (e) {
        busy = false; sent = null;
        if (e.data.error) { console.error(e.data.error); } else onResult(e.data.result);
        flush();
      };
      worker.onerror = function (e) { // the worker could not start (no module workers here): compute on the page
        if (e && e.preventDefault) e.preventDefault();
        worker = null; busy = false; if (!pending) pending = sent; sent = null; flush();
      };
    } catch (err) { worker = null; }
  }
  function nextFrame() {
    return new Promise(function (resolve) { (window.requestAnimationFrame || setTimeout)(resolve); });
  }
  function flush() {
    if (busy || !pending) return;
    var cfg = pending; pending = null; busy = true;
    if (worker) { sent = cfg; worker.postMessage({ id: ++id, config: cfg }); return; }
    loadEngine().then(function (E) {
      return Promise.all([E.ready, nextFrame()]).then(function () {
        var r = null;
        try { r = E.compute(cfg); } catch (err) { console.error(err); }
        busy = false;
        if (r) onResult(r);
        flush();
      });
    }).catch(function (err) { busy = false; console.error(err); });
  }
  self.request = function (cfg) { pending = cfg; flush(); };
  self.engine = function () { return worker ? "worker" : "page"; };
}

function Explorer(root) {
  var compact = root.getAttribute("data-vg-explorer") === "compact";
  var prefix = "vgx" + (++instances) + "-";
  var useHash = !compact;
  var state = useHash && /=/.test(location.hash) ? parse(location.hash) : parse(root.getAttribute("data-config"));
  var controls = {};
  root.textContent = "";
  root.classList.add(compact ? "vgx-compact" : "vgx-full");

  var form = el("form", { class: "vgx-controls", "aria-label": "Network settings" });
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  function field(name, labelText, input, out) {
    var wrap = el("div", { class: "vgx-field vgx-field-" + name });
    input.id = prefix + name;
    var lab = el("label", { for: input.id }, labelText);
    wrap.appendChild(lab);
    if (out) { out.setAttribute("for", input.id); out.id = prefix + name + "-value"; lab.appendChild(document.createTextNode(" ")); lab.appendChild(out); }
    wrap.appendChild(input);
    form.appendChild(wrap);
    controls[name] = input;
    input.addEventListener(input.type === "range" ? "input" : "change", update);
    if (input.type === "range") input.addEventListener("change", update);
    return wrap;
  }
  function select(options) {
    var s = el("select");
    for (var k in options) s.appendChild(el("option", { value: k }, options[k]));
    return s;
  }
  var depthOut = el("output", { class: "vgx-value" }), gainOut = el("output", { class: "vgx-value" });
  field("depth", "Depth (layers):", el("input", { type: "range", min: 1, max: 100, step: 1 }), depthOut);
  var widthOpts = {}; WIDTHS.forEach(function (w) { widthOpts[w] = w + " units"; });
  if (!compact) field("width", "Width:", select(widthOpts));
  field("act", "Activation:", select(ACTS));
  field("init", "Initialisation:", select(INITS));
  if (!compact) field("gain", "Gain (multiplies the weights):",
                      el("input", { type: "range", min: 0.1, max: 4, step: 0.01 }), gainOut);
  field("norm", "Normalisation:", select(NORMS));
  var resWrap = field("res", "Residual connections (h + g(·))", el("input", { type: "checkbox" }));
  resWrap.classList.add("vgx-check");
  resWrap.insertBefore(controls.res, resWrap.firstChild);
  if (!compact) {
    field("seed", "Random draw (seed):", el("input", { type: "number", min: 0, max: 99999, step: 1 }));
    var again = el("button", { type: "button", class: "md-button vgx-redraw" }, "New random draw");
    again.addEventListener("click", function () { controls.seed.value = (+controls.seed.value || 0) + 1; update(); });
    controls.seed.parentNode.appendChild(again);
  }
  root.appendChild(form);

  var plots = el("div", { class: "vgx-plots" });
  var panels = {};
  function panel(name, title) {
    var fig = el("figure", { class: "vgx-panel vgx-panel-" + name });
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", "vgx-svg"); svg.setAttribute("role", "img");
    svg.setAttribute("aria-labelledby", prefix + name + "-title");
    var cap = el("figcaption", { id: prefix + name + "-title", class: "vgx-title" }, title);
    var legend = el("div", { class: "vgx-legend" });
    fig.appendChild(cap); fig.appendChild(svg); fig.appendChild(legend);
    plots.appendChild(fig);
    panels[name] = { svg: svg, legend: legend, cap: cap };
  }
  panel("grad", "Gradient norms by layer (log scale)");
  if (!compact) {
    panel("std", "Activation standard deviation by layer");
    panel("sat", "Saturated or dead units by layer");
  }
  root.appendChild(plots);

  var summary = el("p", { class: "vgx-summary", "aria-live": "polite", role: "status", id: prefix + "summary" });
  root.appendChild(summary);
  var foot = el("p", { class: "vgx-foot" });
  var link = el("a", { class: "vgx-link" }, compact ? "Open these settings in the full explorer" :
                "Link to these settings");
  var timing = el("span", { class: "vgx-timing" });
  foot.appendChild(link); foot.appendChild(document.createTextNode(" ")); foot.appendChild(timing);
  root.appendChild(foot);
  var fullHref = root.getAttribute("data-full") || "";

  function setControls(c) {
    controls.depth.value = c.depth; if (controls.width) controls.width.value = String(c.width);
    controls.act.value = c.act; controls.init.value = c.init; if (controls.gain) controls.gain.value = c.gain;
    controls.norm.value = c.norm;
    controls.res.checked = !!c.res; if (controls.seed) controls.seed.value = c.seed;
    depthOut.textContent = c.depth; gainOut.textContent = (+c.gain).toFixed(2);
  }
  function readControls() {
    return { depth: +controls.depth.value, width: controls.width ? +controls.width.value : state.width, batch: 64,
             act: controls.act.value, init: controls.init.value,
             gain: controls.gain ? +controls.gain.value : state.gain, res: controls.res.checked,
             norm: controls.norm.value, seed: controls.seed ? Math.max(0, +controls.seed.value || 0) : state.seed };
  }
  var runner = new Runner(render);
  var summaryTimer = null, lastSummary = "";
  function update() {
    var c = readControls();
    // keep an exact gain from the address (e.g. 1.41421) unless the slider moved
    if (Math.abs(c.gain - state.gain) < 0.005) c.gain = state.gain;
    state = c;
    depthOut.textContent = c.depth; gainOut.textContent = (+c.gain).toFixed(2);
    var hash = "#" + format(c);
    link.setAttribute("href", compact ? fullHref + hash : hash);
    if (useHash && location.hash !== hash) {
      try { history.replaceState(null, "", hash); } catch (err) { location.hash = hash; }
    }
    root.setAttribute("aria-busy", "true");
    runner.request(c);
  }
  if (useHash) window.addEventListener("hashchange", function () {
    if (!/=/.test(location.hash) || location.hash === "#" + format(state)) return;
    state = parse(location.hash); setControls(state); update();
    if (root.scrollIntoView) root.scrollIntoView({ block: "start", behavior: "smooth" }); // a preset link below
  });

  var last = null, lastWidth = 0;
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(function () {
    var w = plots.clientWidth;
    if (last && Math.abs(w - lastWidth) > 2) draw(last);
  }).observe(plots);
  function render(r) {
    root.removeAttribute("aria-busy");
    root.setAttribute("data-engine", runner.engine());
    last = r;
    draw(r);
  }
  function draw(r) {
    // every width is read before anything is written: one layout for the three panels, not one each
    lastWidth = plots.clientWidth;
    var widths = {};
    for (var name in panels) widths[name] = panels[name].svg.parentNode.getBoundingClientRect().width;
    var L = r.layers, th = r.theory, layers = [];
    for (var i = 1; i <= L; i++) layers.push(i);
    drawPanel(panels.grad, {
      width: widths.grad, x: layers, log: true, tall: !compact, ylabel: "gradient norm", floor: 1.4e-45,
      series: [
        { name: "‖∂L/∂h_l‖, back-propagated gradient", y: r.signal, cls: "vgx-c1", marker: true },
        { name: "‖∂L/∂W_l‖, weight gradient", y: r.weight, cls: "vgx-c2", marker: true },
        th.available && th.signal ? { name: "theory: ∏ √(n·Var(W)·E[g′(z)²]) from the last layer", y: th.signal,
                                     cls: "vgx-theory", dash: true } : null
      ]
    });
    if (!compact) {
      drawPanel(panels.std, {
        width: widths.std, x: layers, log: true, ylabel: "std of h_l",
        series: [{ name: "measured std(h_l)", y: r.act_std, cls: "vgx-c3", marker: true },
                 th.available ? { name: "theory", y: th.act_std, cls: "vgx-theory", dash: true } : null]
      });
      var satName = { relu: "dead (z ≤ 0)", leaky_relu: "|g′| < 1% of max (never: slope ≥ 0.01)" }[r.config.act] ||
        "saturated: |g′(z)| < 1% of max g′";
      drawPanel(panels.sat, {
        width: widths.sat, x: layers, log: false, ymin: 0, ymax: 1, percent: true, ylabel: "share of units",
        series: [{ name: satName, y: r.saturated, cls: "vgx-c4", marker: true },
                 th.available ? { name: "theory", y: th.saturated, cls: "vgx-theory", dash: true } : null]
      });
    }
    timing.textContent = "Computed in " + Math.round(r.ms) + " ms (" + L + " layers × " + r.config.width +
      " units, batch " + r.config.batch + ", " +
      (r.engine === "float32" ? "float32 on WebAssembly" : "float64 in JavaScript") + ").";
    var text = describe(r);
    panels.grad.svg.removeAttribute("aria-labelledby"); // the image's name says what it shows
    panels.grad.svg.setAttribute("aria-label", text.short);
    clearTimeout(summaryTimer); // a screen reader hears the result once the knob stops moving
    summaryTimer = setTimeout(function () { if (text.full !== lastSummary) summary.textContent = lastSummary = text.full; },
                              summary.textContent ? 350 : 0);
  }

  setControls(state);
  link.setAttribute("href", (compact ? fullHref : "") + "#" + format(state));
  update();
}


function sup(k) { return "10^" + k; }
function describe(r) {
  var c = r.config, L = r.layers, first = r.signal[0], last = r.signal[L - 1];
  var who = ACTS[c.act] + ", " + L + (L === 1 ? " layer" : " layers") + " of " + c.width + ", " + c.init +
    " init" + (c.gain !== 1 ? " × " + (+c.gain).toFixed(2) : "") + (c.res ? ", residual" : "") +
    (c.norm !== "none" ? ", " + NORMS[c.norm] : "");
  var verdict, ratio;
  if (L === 1) verdict = "one layer: nothing to compound.";
  else if (!(first > 0) && last > 0) verdict = "the gradient at layer 1 is exactly 0 (underflow or dead units): vanishing.";
  else if (!(last > 0)) verdict = "the gradient is exactly 0 already at layer " + L + ".";
  else if (!isFinite(first)) verdict = "the gradient overflowed: exploding.";
  else {
    ratio = Math.log10(first / last);
    var k = Math.round(ratio);
    verdict = "the gradient at layer 1 is " + (k === 0 ? "about the size" : "about " + sup(k)) + " of layer " + L +
      "'s" + (ratio < -1 ? ": vanishing" : ratio > 1 ? ": exploding" : ": stable, within a factor of 10") +
      " (" + (ratio >= 0 ? "+" : "") + (ratio / (L - 1)).toFixed(2) + " decades per layer).";
  }
  var th = r.theory, theoryText = "";
  if (L > 1 && th.available && isFinite(th.log10_ratio)) {
    theoryText = " Theory predicts " + (th.decades_per_layer >= 0 ? "+" : "") + th.decades_per_layer.toFixed(2) +
      " decades per layer.";
  } else if (L > 1 && !th.available) theoryText = " No simple theoretical prediction here: " + th.reason + ".";
  var satShare = 0; for (var i = 0; i < L; i++) satShare += r.saturated[i]; satShare /= L;
  var tail = " Activation std at layer " + L + ": " + fmt(r.act_std[L - 1]) + "; " + Math.round(100 * satShare) +
    "% of units " + (c.act === "relu" ? "dead" : "saturated") + " on average.";
  var full = who + ": " + verdict + theoryText + tail;
  return { full: full, short: "Gradient norms by layer for " + who + ": " + verdict };
}
function fmt(v) {
  if (v === 0) return "0";
  if (!isFinite(v)) return String(v);
  var a = Math.abs(v);
  if (a >= 0.01 && a < 1000) return v.toPrecision(2);
  var e = Math.floor(Math.log10(a)); return (v / Math.pow(10, e)).toFixed(1) + "×10^" + e;
}


/** Builds each explorer when it comes within a screen of being seen: the home page's, further down, costs nothing
 * while the page loads. */
function start() {
  var roots = document.querySelectorAll("[data-vg-explorer]"), i;
  var near = typeof IntersectionObserver === "undefined" ? null : new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) { near.unobserve(e.target); new Explorer(e.target); } });
  }, { rootMargin: "100% 0px" });
  for (i = 0; i < roots.length; i++) if (!roots[i].__vgx) {
    roots[i].__vgx = true;
    if (near) near.observe(roots[i]); else new Explorer(roots[i]);
  }
}
window.vgExplorer = { parse: parse, format: format, engine: loadEngine };
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
