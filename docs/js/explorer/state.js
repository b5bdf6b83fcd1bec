/* docs/js/explorer/state.js: the explorer's settings and the address that carries them.
 *
 * Owns: the vocabulary of the settings (defaults, widths, activations, initialisations, normalisations, with the
 * labels the controls show), normalize() (any config to a valid one, for the engine), and the URL hash format
 * `#depth=50&width=64&act=sigmoid&init=default&gain=1&res=0&norm=none&seed=0` (parse, format), which the pages
 * link to: keep it stable. No DOM, no computation: imported by the engine, the worker and the page alike.
 */
export var DEFAULTS = { depth: 30, width: 64, batch: 64, act: "tanh", init: "default", gain: 1, res: false,
                        norm: "none", seed: 0 };
export var WIDTHS = [8, 16, 32, 64, 128, 256];
export var ACTS = {
  sigmoid: "sigmoid", tanh: "tanh", relu: "ReLU", leaky_relu: "Leaky ReLU (0.01)", gelu: "GELU", selu: "SELU"
};
export var INITS = {
  "default": "PyTorch's default, U(±1/√n)", xavier: "Xavier/Glorot uniform", kaiming: "He/Kaiming normal, N(0, 2/n)",
  orthogonal: "orthogonal (Saxe et al.)", normal: "normal, N(0, gain²/n)"
};
export var NORMS = { none: "none", batch: "batch-norm-like", layer: "layer-norm-like" };

/** Any config (missing keys, strings from a form) as the engine takes it; throws on an unknown name. */
export function normalize(config) {
  var c = {}, k;
  for (k in DEFAULTS) c[k] = config && config[k] !== undefined ? config[k] : DEFAULTS[k];
  c.depth = Math.max(1, Math.min(1000, Math.round(+c.depth)));
  c.width = Math.max(1, Math.min(1024, Math.round(+c.width)));
  c.batch = Math.max(2, Math.min(1024, Math.round(+c.batch)));
  c.gain = +c.gain; if (!(c.gain >= 0)) c.gain = 1;
  c.res = c.res === true || c.res === 1 || c.res === "1" || c.res === "true";
  if (!c.norm || c.norm === "null") c.norm = "none";
  c.seed = Math.max(0, Math.round(+c.seed) || 0);
  if (!ACTS[c.act]) throw new Error("unknown activation " + c.act);
  if (!INITS[c.init]) throw new Error("unknown init " + c.init);
  if (!NORMS[c.norm]) throw new Error("unknown norm " + c.norm);
  return c;
}

/* ---------- the address: #depth=50&width=64&act=sigmoid&init=default&gain=1&res=0&norm=none&seed=0 ---------- */
var ALIASES = { he: "kaiming", glorot: "xavier", pytorch: "default", leaky: "leaky_relu", lrelu: "leaky_relu",
                ReLU: "relu", bn: "batch", ln: "layer", batchnorm: "batch", layernorm: "layer" };
export function parse(hash) { // tolerant: unknown keys and values fall back to the defaults
  var c = {}, k, text = String(hash || "").replace(/^[#?]/, "");
  for (k in DEFAULTS) c[k] = DEFAULTS[k];
  text.split("&").forEach(function (pair) {
    var kv = pair.split("="), key = decodeURIComponent(kv[0] || ""), val = decodeURIComponent(kv[1] || "");
    val = ALIASES[val] || val;
    if (key === "depth") { var d = parseInt(val, 10); if (d >= 1) c.depth = Math.min(d, 100); }
    else if (key === "width") { var w = parseInt(val, 10); if (WIDTHS.indexOf(w) >= 0) c.width = w; }
    else if (key === "act" && ACTS[val]) c.act = val;
    else if (key === "init" && INITS[val]) c.init = val;
    else if (key === "gain") { var g = parseFloat(val); if (g > 0 && g <= 10) c.gain = g; }
    else if (key === "res") c.res = val === "1" || val === "true" || val === "on";
    else if (key === "norm" && NORMS[val]) c.norm = val;
    else if (key === "seed") { var s = parseInt(val, 10); if (s >= 0) c.seed = s; }
  });
  return c;
}
export function format(c) {
  return "depth=" + c.depth + "&width=" + c.width + "&act=" + c.act + "&init=" + c.init + "&gain=" +
    (+(+c.gain).toFixed(4)) + "&res=" + (c.res ? 1 : 0) + "&norm=" + c.norm + "&seed=" + c.seed;
}
