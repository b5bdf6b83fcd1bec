/* docs/js/explorer/weights.js: the network's random draw, as PyTorch's nn.init draws it.
 *
 * Owns: the seeded random streams (one per seed and purpose, so a layer's weights do not depend on the depth), the
 * base matrices cached per (seed, width, family) and scaled per initialisation and gain (weightScale), the
 * orthogonal weights (Gram-Schmidt, on the kernels' scratch instance where it can), and the batch: inputs, labels
 * and the linear head. Used by engine.js and theory.js (weightScale).
 */
import { ready as kernelsReady } from "./kernels.js";
import { normalize } from "./state.js";

var wasm = null; // the kernels, once assembled: orthonormaliseRows uses their float64 Gram-Schmidt
kernelsReady.then(function (k) { wasm = k; }, function () {});
var CLASSES = 10;

/* ---------- random numbers: seeded streams, one per (seed, purpose), so layers do not depend on depth ------- */
function hashSeed(str) { // cyrb128: four 32-bit words from a string
  var h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (var i = 0, k; i < str.length; i++) {
    k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067); h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213); h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067); h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213); h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  return [(h1 ^ h2 ^ h3 ^ h4) >>> 0, (h2 ^ h1) >>> 0, (h3 ^ h1) >>> 0, (h4 ^ h1) >>> 0];
}
function stream(seed, tag) { // sfc32, uniform in [0, 1) with 53 random bits
  var s = hashSeed(seed + "|" + tag), a = s[0], b = s[1], c = s[2], d = s[3];
  function next32() {
    var t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0; a = b ^ (b >>> 9); b = (c + (c << 3)) | 0; c = (c << 21) | (c >>> 11); c = (c + t) | 0;
    return t >>> 0;
  }
  for (var i = 0; i < 12; i++) next32();
  return {
    uniform: function () { return ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992; },
    /** out[0 .. len) = uniform on [-1, 1) (32 random bits each), or standard normal (polar method): the bulk
     * draw for the weights, with the generator's state in locals (a hundred times fewer calls). */
    fill: function (out, len, normal) {
      var A = a, B = b, C = c, D = d, i = 0, t, r, u = 0, haveU = false, x, f;
      while (i < len) {
        t = (((A + B) | 0) + D) | 0; D = (D + 1) | 0; A = B ^ (B >>> 9); B = (C + (C << 3)) | 0;
        C = (C << 21) | (C >>> 11); C = (C + t) | 0; r = (t >>> 0) / 2147483648 - 1;
        if (!normal) { out[i++] = r; continue; }
        if (!haveU) { u = r; haveU = true; continue; } // the polar method takes its uniforms in pairs (u, r)
        haveU = false;
        x = u * u + r * r;
        if (x >= 1 || x === 0) continue;
        f = Math.sqrt(-2 * Math.log(x) / x);
        out[i++] = u * f;
        if (i < len) out[i++] = r * f;
      }
      a = A; b = B; c = C; d = D;
      return out;
    }
  };
}


/* ---------- the weights: base matrices cached per (seed, width, family), scaled per init and gain -------------
 * default, xavier: a uniform U(-1, 1) base; kaiming, normal: a standard normal base; orthogonal: the normal
 * base orthonormalised (Gram-Schmidt: QR with R's diagonal positive, as torch.nn.init.orthogonal_). */
export var FAMILY = { "default": "uniform", xavier: "uniform", kaiming: "normal", normal: "normal", orthogonal: "orth" };
var caches = []; // [{key, W: [Float64Array], b: [Float64Array]}], most recent first

export function baseCache(seed, n, family) {
  var key = seed + "|" + n + "|" + family;
  for (var i = 0; i < caches.length; i++) if (caches[i].key === key) {
    var hit = caches.splice(i, 1)[0]; caches.unshift(hit); return hit;
  }
  var entry = { key: key, W: [], b: [] };
  caches.unshift(entry);
  var budget = 12e6, used = 0; // doubles kept, about 96 MB
  for (i = 0; i < caches.length; i++) {
    used += caches[i].W.length * n * n;
    if (i > 0 && used > budget) { caches.length = i; break; }
  }
  return entry;
}

/** Modified Gram-Schmidt on the rows, once: in float64 a Gaussian matrix comes out orthogonal to about 1e-13,
 * far below the float32 rounding (6e-8) that the fast engine applies to every weight anyway. */
function orthonormaliseRows(M, n) {
  if (wasm && n % 4 === 0) { // the same loops on the kernels' float64 pairs, about six times faster
    var S = wasm.scratch, have = S.memory.buffer.byteLength;
    if (have < 8 * n * n) S.memory.grow(Math.ceil((8 * n * n - have) / 65536));
    var view = new Float64Array(S.memory.buffer, 0, n * n);
    view.set(M); S.orthonormalise(0, n); M.set(view);
    return M;
  }
  for (var i = 0; i < n; i++) {
    var ri = i * n, j, t, d;
    for (j = 0; j < i; j++) {
      var rj = j * n; d = 0;
      for (t = 0; t < n; t++) d += M[ri + t] * M[rj + t];
      for (t = 0; t < n; t++) M[ri + t] -= d * M[rj + t];
    }
    d = 0;
    for (t = 0; t < n; t++) d += M[ri + t] * M[ri + t];
    d = 1 / Math.sqrt(d);
    for (t = 0; t < n; t++) M[ri + t] *= d;
  }
  return M;
}

export function layerBase(cache, seed, n, family, l) { // l = 0 .. depth-1
  while (cache.W.length <= l) {
    var k = cache.W.length, W = new Float64Array(n * n);
    var rng = stream(seed, "W" + (k + 1) + "|" + n + "|" + (family === "uniform" ? "u" : "g"));
    if (family === "uniform") {
      rng.fill(W, n * n, false);
      cache.b.push(stream(seed, "b" + (k + 1) + "|" + n).fill(new Float64Array(n), n, false));
    } else {
      rng.fill(W, n * n, true);
      if (family === "orth") orthonormaliseRows(W, n);
    }
    cache.W.push(W);
  }
  return cache.W[l];
}

/** Layer l's weight matrix (l = 1 .. depth; out x in, row-major, float64) as the explorer draws it. */
export function weights(config, l) {
  var c = normalize(config), n = c.width, family = FAMILY[c.init];
  var base = layerBase(baseCache(c.seed, n, family), c.seed, n, family, l - 1);
  var alpha = weightScale(c.init, c.gain, n)[0];
  return Array.prototype.map.call(base, function (w) { return alpha * w; });
}

/** n·Var(W) of each initialisation (times gain²), and Var(b): the two numbers the theory needs. */
export function weightScale(init, gain, n) {
  switch (init) { // returns [multiplier of the base matrix, n Var(W), Var(b)]
    case "default": return [gain / Math.sqrt(n), gain * gain / 3, 1 / (3 * n)];
    case "xavier": return [gain * Math.sqrt(3 / n), gain * gain, 0];
    case "kaiming": return [gain * Math.sqrt(2 / n), 2 * gain * gain, 0];
    case "normal": return [gain / Math.sqrt(n), gain * gain, 0];
    case "orthogonal": return [gain, gain * gain, 0];
  }
  throw new Error("unknown init " + init);
}

var batchCache = { key: null };
export function inputs(seed, n, batch) { // x ~ N(0, 1) of shape (batch, n), labels uniform in 0..9, the head Linear(n, 10)
  var key = seed + "|" + n + "|" + batch;
  if (batchCache.key === key) return batchCache;
  var rx = stream(seed, "x|" + n + "|" + batch), ry = stream(seed, "y|" + batch), rh = stream(seed, "head|" + n);
  var x = new Float64Array(batch * n), y = new Int32Array(batch), Wh = new Float64Array(CLASSES * n),
      bh = new Float64Array(CLASSES), bound = 1 / Math.sqrt(n), i;
  rx.fill(x, x.length, true);
  for (i = 0; i < batch; i++) y[i] = Math.floor(ry.uniform() * CLASSES);
  for (i = 0; i < Wh.length; i++) Wh[i] = bound * (2 * rh.uniform() - 1);
  for (i = 0; i < CLASSES; i++) bh[i] = bound * (2 * rh.uniform() - 1);
  batchCache = { key: key, x: x, y: y, Wh: Wh, bh: bh };
  return batchCache;
}
