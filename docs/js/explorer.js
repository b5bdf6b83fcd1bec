/* vgsite gradient-flow explorer: vgsite's DeepMLP and gradient_flow probe, recomputed in the browser.
 *
 * The network is the one in vgsite/nets.py: `depth` blocks h_l = g(norm(W_l h_{l-1} + b_l)) (plus h_{l-1} when
 * residual), then a linear head to 10 classes; the probe is vgsite/probes.py's gradient_flow: cross-entropy on a
 * batch of standard-normal inputs with random labels, one forward and one backward pass, per-layer norms of
 * dL/dh_l and dL/dW_l, the activations' standard deviation and the share of units with |g'(z)| < 1% of max g'.
 * Two engines compute the same pass: float32 on the WebAssembly SIMD kernels of explorer-kernels.js (fast: the
 * default where the browser has them), and float64 in plain JavaScript (the reference, and the fallback where
 * float32 could not hold the activations). No library, no request: everything ships with the site.
 *
 * API: window.vgExplorer.compute(config) -> result (see `compute`), .computeFloat64(config), .ready (a Promise of
 * the engine), .theory(config), .weights(config, layer), .parse(hash), .format(config). The same file runs as a
 * Web Worker (the page starts one from its own URL, so dragging a slider never blocks); the worker loads the
 * kernels beside it.
 */
(function (global) {
  "use strict";
  if (typeof document === "undefined" && typeof importScripts === "function" && !global.vgKernels) {
    try { importScripts(String(global.location.href).replace(/explorer\.js([?#].*)?$/, "explorer-kernels.js")); }
    catch (err) { /* no kernels: the float64 path alone */ }
  }

  var DEFAULTS = { depth: 30, width: 64, batch: 64, act: "tanh", init: "default", gain: 1, res: false,
                   norm: "none", seed: 0 };
  var WIDTHS = [8, 16, 32, 64, 128, 256];
  var ACTS = {
    sigmoid: "sigmoid", tanh: "tanh", relu: "ReLU", leaky_relu: "Leaky ReLU (0.01)", gelu: "GELU", selu: "SELU"
  };
  var INITS = {
    "default": "PyTorch's default, U(±1/√n)", xavier: "Xavier/Glorot uniform", kaiming: "He/Kaiming normal, N(0, 2/n)",
    orthogonal: "orthogonal (Saxe et al.)", normal: "normal, N(0, gain²/n)"
  };
  var NORMS = { none: "none", batch: "batch-norm-like", layer: "layer-norm-like" };
  var CLASSES = 10, EPS = 1e-5;
  // vgsite.probes.max_derivative: the steepest slope of each activation on linspace(-10, 10, 20001), by autograd.
  var MAX_SLOPE = { sigmoid: 0.25, tanh: 1, relu: 1, leaky_relu: 1, gelu: 1.128904104232788,
                    selu: 1.7580984830856323 };
  var SELU_ALPHA = 1.6732632423543772, SELU_SCALE = 1.0507009873554805, LEAK = 0.01;
  var SQRT1_2 = Math.SQRT1_2, INV_SQRT_2PI = 0.3989422804014327;

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
  var FAMILY = { "default": "uniform", xavier: "uniform", kaiming: "normal", normal: "normal", orthogonal: "orth" };
  var caches = []; // [{key, W: [Float64Array], b: [Float64Array]}], most recent first

  function baseCache(seed, n, family) {
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

  function layerBase(cache, seed, n, family, l) { // l = 0 .. depth-1
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
  function weights(config, l) {
    var c = normalize(config), n = c.width, family = FAMILY[c.init];
    var base = layerBase(baseCache(c.seed, n, family), c.seed, n, family, l - 1);
    var alpha = weightScale(c.init, c.gain, n)[0];
    return Array.prototype.map.call(base, function (w) { return alpha * w; });
  }

  /** n·Var(W) of each initialisation (times gain²), and Var(b): the two numbers the theory needs. */
  function weightScale(init, gain, n) {
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
  function inputs(seed, n, batch) { // x ~ N(0, 1) of shape (batch, n), labels uniform in 0..9, the head Linear(n, 10)
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

  /* ---------- dense kernels ------------------------------------------------------------------------------------
   * gemmNT: C (m x p) = alpha * A (m x k) · B (p x k)^T [+ bias per column] [+ C], rows contiguous, 4x4 register
   * blocks (a dot-product form: both operands are read along contiguous rows). With sym, A = B and only the
   * upper block triangle is computed, then mirrored (a Gram matrix). */
  function gemmNT(A, B, C, m, p, k, alpha, bias, acc, sym) {
    var m4 = m - (m % 4), p4 = p - (p % 4), i, j, t, c;
    for (i = 0; i < m4; i += 4) {
      var a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
      for (j = sym ? i : 0; j < p4; j += 4) {
        var b0 = j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
        var s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0,
            s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
        for (t = 0; t < k; t++) {
          var y0 = B[b0 + t], y1 = B[b1 + t], y2 = B[b2 + t], y3 = B[b3 + t], x = A[a0 + t];
          s00 += x * y0; s01 += x * y1; s02 += x * y2; s03 += x * y3; x = A[a1 + t];
          s10 += x * y0; s11 += x * y1; s12 += x * y2; s13 += x * y3; x = A[a2 + t];
          s20 += x * y0; s21 += x * y1; s22 += x * y2; s23 += x * y3; x = A[a3 + t];
          s30 += x * y0; s31 += x * y1; s32 += x * y2; s33 += x * y3;
        }
        c = i * p + j;
        put(C, c, s00, s01, s02, s03, alpha, bias, j, acc); c += p;
        put(C, c, s10, s11, s12, s13, alpha, bias, j, acc); c += p;
        put(C, c, s20, s21, s22, s23, alpha, bias, j, acc); c += p;
        put(C, c, s30, s31, s32, s33, alpha, bias, j, acc);
      }
      for (j = p4; j < p; j++) { // leftover columns
        var bj = j * k, r0 = 0, r1 = 0, r2 = 0, r3 = 0;
        for (t = 0; t < k; t++) {
          var y = B[bj + t]; r0 += A[a0 + t] * y; r1 += A[a1 + t] * y; r2 += A[a2 + t] * y; r3 += A[a3 + t] * y;
        }
        put1(C, i * p + j, r0, alpha, bias, j, acc); put1(C, (i + 1) * p + j, r1, alpha, bias, j, acc);
        put1(C, (i + 2) * p + j, r2, alpha, bias, j, acc); put1(C, (i + 3) * p + j, r3, alpha, bias, j, acc);
      }
    }
    for (i = m4; i < m; i++) { // leftover rows
      var ai = i * k;
      for (j = 0; j < p; j++) {
        var bb = j * k, s = 0;
        for (t = 0; t < k; t++) s += A[ai + t] * B[bb + t];
        put1(C, i * p + j, s, alpha, bias, j, acc);
      }
    }
    if (sym) for (i = 0; i < m; i++) for (j = 0; j < i; j++) C[i * m + j] = C[j * m + i];
  }
  function put(C, c, v0, v1, v2, v3, alpha, bias, j, acc) {
    if (bias) { v0 = alpha * v0 + bias[j]; v1 = alpha * v1 + bias[j + 1]; v2 = alpha * v2 + bias[j + 2];
                v3 = alpha * v3 + bias[j + 3]; }
    else { v0 *= alpha; v1 *= alpha; v2 *= alpha; v3 *= alpha; }
    if (acc) { C[c] += v0; C[c + 1] += v1; C[c + 2] += v2; C[c + 3] += v3; }
    else { C[c] = v0; C[c + 1] = v1; C[c + 2] = v2; C[c + 3] = v3; }
  }
  function put1(C, c, v, alpha, bias, j, acc) {
    v = bias ? alpha * v + bias[j] : alpha * v;
    if (acc) C[c] += v; else C[c] = v;
  }
  function transpose(M, T, n) {
    for (var i = 0; i < n; i++) { var r = i * n; for (var j = 0; j < n; j++) T[j * n + i] = M[r + j]; }
  }
  /** L2 norm without underflow or overflow in the squares (the entries are rescaled by the largest one). */
  function norm2(v, len) {
    var s = 0, i;
    for (i = 0; i < len; i++) s += v[i] * v[i];
    if (s > 1e-290 && s < 1e290) return Math.sqrt(s);
    var mx = 0;
    for (i = 0; i < len; i++) { var a = Math.abs(v[i]); if (a > mx) mx = a; }
    if (mx === 0 || !isFinite(mx)) return mx;
    s = 0;
    for (i = 0; i < len; i++) { var r = v[i] / mx; s += r * r; }
    return mx * Math.sqrt(s);
  }
  function maxAbs(v, len) {
    var mx = 0;
    for (var i = 0; i < len; i++) { var a = Math.abs(v[i]); if (a > mx) mx = a; }
    return mx;
  }

  /* ---------- activations: g(z) in place, and g'(z) ----------------------------------------------------------- */
  function erfSmall(x) {
    var A = [3.16112374387056560, 113.864154151050156, 377.485237685302021, 3209.37758913846947,
             0.185777706184603153],
        B = [23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062];
    var z = x * x, xn = A[4] * z, xd = z, i;
    for (i = 0; i < 3; i++) { xn = (xn + A[i]) * z; xd = (xd + B[i]) * z; }
    return x * (xn + A[3]) / (xd + B[3]);
  }
  function erfcLarge(y) { // erfc(y) for y >= 0.5
    var r, i;
    if (y <= 4) {
      var C = [0.564188496988670089, 8.88314979438837594, 66.1191906371416295, 298.635138197400131,
               881.952221241769090, 1712.04761263407058, 2051.07837782607147, 1230.33935479799725,
               2.15311535474403846e-8],
          D = [15.7449261107098347, 117.693950891312499, 537.181101862009858, 1621.38957456669019,
               3290.79923573345963, 4362.61909014324716, 3439.36767414372164, 1230.33935480374942];
      var xn = C[8] * y, xd = y;
      for (i = 0; i < 7; i++) { xn = (xn + C[i]) * y; xd = (xd + D[i]) * y; }
      r = (xn + C[7]) / (xd + D[7]);
    } else {
      if (y > 27) return 0;
      var P = [0.305326634961232344, 0.360344899949804439, 0.125781726111229246, 0.0160837851487422766,
               6.58749161529837803e-4, 0.0163153871373020978],
          Q = [2.56852019228982242, 1.87295284992346725, 0.527905102951428412, 0.0605183413124413191,
               0.00233520497626869185];
      var z = 1 / (y * y), pn = P[5] * z, pd = z;
      for (i = 0; i < 4; i++) { pn = (pn + P[i]) * z; pd = (pd + Q[i]) * z; }
      r = z * (pn + P[4]) / (pd + Q[4]);
      r = (0.564189583547756287 - r) / y;
    }
    var ysq = Math.floor(y * 16) / 16, del = (y - ysq) * (y + ysq);
    return Math.exp(-ysq * ysq) * Math.exp(-del) * r;
  }
  /** erf by W. J. Cody's rational approximations (1969), accurate to about 1e-16 relative. */
  function erf(x) {
    var ax = Math.abs(x);
    if (ax < 0.5) return erfSmall(x);
    var r = 1 - erfcLarge(ax);
    return x < 0 ? -r : r;
  }

  /** A = g(Z) and D = g'(Z) in one pass (g' as torch's autograd: ReLU'(0) = 0, SELU' at 0 from the left);
   * returns how many units are "saturated", |g'(z)| < threshold (vgsite.probes.saturated_fraction). */
  function activate(act, Z, A, D, len, threshold) {
    var i, z, g, e, sat = 0;
    switch (act) {
      case "sigmoid": for (i = 0; i < len; i++) {
        e = 1 / (1 + Math.exp(-Z[i])); A[i] = e; g = e * (1 - e); D[i] = g; if (g < threshold) sat++;
      } break;
      case "tanh": for (i = 0; i < len; i++) {
        e = Math.tanh(Z[i]); A[i] = e; g = 1 - e * e; D[i] = g; if (g < threshold) sat++;
      } break;
      case "relu": for (i = 0; i < len; i++) {
        z = Z[i]; if (z > 0) { A[i] = z; D[i] = 1; } else { A[i] = 0; D[i] = 0; sat++; }
      } break;
      case "leaky_relu": for (i = 0; i < len; i++) { // slope 0.01 is not below 1% of 1: never saturated
        z = Z[i]; if (z > 0) { A[i] = z; D[i] = 1; } else { A[i] = LEAK * z; D[i] = LEAK; }
      } break;
      case "gelu": for (i = 0; i < len; i++) {
        z = Z[i]; var cdf = 0.5 * (1 + erf(z * SQRT1_2));
        A[i] = z * cdf; g = cdf + z * INV_SQRT_2PI * Math.exp(-0.5 * z * z); D[i] = g;
        if (Math.abs(g) < threshold) sat++;
      } break;
      case "selu": for (i = 0; i < len; i++) {
        z = Z[i];
        if (z > 0) { A[i] = SELU_SCALE * z; D[i] = SELU_SCALE; }
        else { e = SELU_SCALE * SELU_ALPHA * Math.exp(z); A[i] = e - SELU_SCALE * SELU_ALPHA; D[i] = e;
               if (e < threshold) sat++; }
      } break;
      default: throw new Error("unknown activation " + act);
    }
    return sat;
  }

  /* ---------- normalisation (training mode, eps 1e-5, gamma 1, beta 0) ------------------------------------------
   * batch: each unit over the batch; layer: each example over the units. U -> Z in place; inv keeps 1/sigma. */
  function normalise(kind, U, batch, n, inv) {
    var s, o, v, mean, d;
    if (kind === "batch") {
      for (o = 0; o < n; o++) {
        mean = 0; for (s = 0; s < batch; s++) mean += U[s * n + o]; mean /= batch;
        v = 0; for (s = 0; s < batch; s++) { d = U[s * n + o] - mean; v += d * d; } v /= batch;
        var r = 1 / Math.sqrt(v + EPS); inv[o] = r;
        for (s = 0; s < batch; s++) U[s * n + o] = (U[s * n + o] - mean) * r;
      }
    } else {
      for (s = 0; s < batch; s++) {
        var row = s * n; mean = 0;
        for (o = 0; o < n; o++) mean += U[row + o]; mean /= n;
        v = 0; for (o = 0; o < n; o++) { d = U[row + o] - mean; v += d * d; } v /= n;
        var q = 1 / Math.sqrt(v + EPS); inv[s] = q;
        for (o = 0; o < n; o++) U[row + o] = (U[row + o] - mean) * q;
      }
    }
  }
  /** dZ -> dU in place: dU = inv * (dZ - mean(dZ) - Zhat * mean(dZ * Zhat)) along the normalised axis. */
  function normaliseBackward(kind, Z, D, batch, n, inv) {
    var s, o, m1, m2;
    if (kind === "batch") {
      for (o = 0; o < n; o++) {
        m1 = 0; m2 = 0;
        for (s = 0; s < batch; s++) { m1 += D[s * n + o]; m2 += D[s * n + o] * Z[s * n + o]; }
        m1 /= batch; m2 /= batch;
        for (s = 0; s < batch; s++) D[s * n + o] = inv[o] * (D[s * n + o] - m1 - Z[s * n + o] * m2);
      }
    } else {
      for (s = 0; s < batch; s++) {
        var row = s * n; m1 = 0; m2 = 0;
        for (o = 0; o < n; o++) { m1 += D[row + o]; m2 += D[row + o] * Z[row + o]; }
        m1 /= n; m2 /= n;
        for (o = 0; o < n; o++) D[row + o] = inv[s] * (D[row + o] - m1 - Z[row + o] * m2);
      }
    }
  }

  /* ---------- the probe ---------------------------------------------------------------------------------------- */
  var pool = {};
  function buffer(name, len) {
    if (!pool[name] || pool[name].length < len) pool[name] = new Float64Array(len);
    return pool[name];
  }

  function normalize(config) {
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

  /**
   * One forward and backward pass, as vgsite.probes.gradient_flow. config: {depth, width, batch, act, init, gain,
   * res, norm, seed}. Returns per-layer arrays (index 0 is layer 1, next to the input): signal = ||dL/dh_l||,
   * weight = ||dL/dW_l||, act_mean, act_std (of h_l, over the whole batch, unbiased), saturated (share of z_l with
   * |g'(z)| < 1% of max g'), and loss, theory (see `theory`), ms (the time it took).
   */
  function compute(config) {
    var t0 = now(), c = normalize(config), result = fits(c) ? computeFloat32(c) : null;
    if (!result) result = computeFloat64(c);
    result.ms = now() - t0;
    return result;
  }

  /** The linear head and the loss, the mean cross-entropy over the batch: returns the loss and writes
   * dL/dh_L = (softmax - onehot) / batch . Wh into dH. HL is the last layer's output (any array type). */
  function head(HL, data, B, n, dH) {
    var logits = buffer("logits", B * CLASSES), WhT = buffer("WhT", n * CLASSES), loss = 0, s, k, o;
    gemmNT(HL, data.Wh, logits, B, CLASSES, n, 1, data.bh, false, false);
    for (s = 0; s < B; s++) {
      var row = s * CLASSES, mx = -Infinity;
      for (k = 0; k < CLASSES; k++) if (logits[row + k] > mx) mx = logits[row + k];
      var sum = 0; for (k = 0; k < CLASSES; k++) sum += Math.exp(logits[row + k] - mx);
      loss += Math.log(sum) + mx - logits[row + data.y[s]];
      for (k = 0; k < CLASSES; k++) logits[row + k] = Math.exp(logits[row + k] - mx) / sum / B;
      logits[row + data.y[s]] -= 1 / B;
    }
    for (k = 0; k < CLASSES; k++) for (o = 0; o < n; o++) WhT[o * CLASSES + k] = data.Wh[k * n + o];
    gemmNT(logits, WhT, dH, B, n, CLASSES, 1, null, false, false);
    return loss / B;
  }

  /** The reference: the whole pass in float64 JavaScript. compute() uses it where the float32 kernels are missing
   * or where float32 could not hold the forward pass (activations beyond 1e-30 .. 1e30). */
  function computeFloat64(config) {
    var t0 = now(), c = normalize(config);
    var L = c.depth, n = c.width, B = c.batch, act = c.act, len = B * n, l, i, o;
    var data = inputs(c.seed, n, B), family = FAMILY[c.init];
    var cache = baseCache(c.seed, n, family), scale = weightScale(c.init, c.gain, n), alpha = scale[0];
    var useBias = c.init === "default", biasScaled = buffer("bias", n), bound = 1 / Math.sqrt(n);
    var H = buffer("H", (L + 1) * len), Z = buffer("Z", L * len), D = buffer("D", L * len), inv = buffer("inv", L * Math.max(B, n));
    var signal = new Array(L), weight = new Array(L), mean = new Array(L), std = new Array(L), sat = new Array(L);
    var threshold = 0.01 * MAX_SLOPE[act];
    H.set(data.x, 0);
    for (l = 0; l < L; l++) { // forward
      var Hp = H.subarray(l * len, (l + 1) * len), Hl = H.subarray((l + 1) * len, (l + 2) * len),
          Zl = Z.subarray(l * len, (l + 1) * len), W = layerBase(cache, c.seed, n, family, l);
      if (useBias) { var b = cache.b[l]; for (o = 0; o < n; o++) biasScaled[o] = bound * b[o]; }
      gemmNT(Hp, W, Zl, B, n, n, alpha, useBias ? biasScaled : null, false, false);
      if (c.norm !== "none") normalise(c.norm, Zl, B, n, inv.subarray(l * Math.max(B, n)));
      sat[l] = activate(act, Zl, Hl, D.subarray(l * len, (l + 1) * len), len, threshold) / len;
      if (c.res) for (i = 0; i < len; i++) Hl[i] += Hp[i];
      var m = 0; for (i = 0; i < len; i++) m += Hl[i]; m /= len;
      var v = 0; for (i = 0; i < len; i++) { var d = Hl[i] - m; v += d * d; }
      mean[l] = m; std[l] = Math.sqrt(v / (len - 1));
    }
    var dH = buffer("dH", len), dHp = buffer("dHp", len), dU = buffer("dU", len),
        WT = buffer("WT", n * n), G1 = buffer("G1", B * B), G2 = buffer("G2", B * B), scaled = buffer("scaled", len);
    var loss = head(H.subarray(L * len, (L + 1) * len), data, B, n, dH);
    for (l = L - 1; l >= 0; l--) { // backward
      signal[l] = norm2(dH, len);
      Zl = Z.subarray(l * len, (l + 1) * len); Hp = H.subarray(l * len, (l + 1) * len);
      var Dl = D.subarray(l * len, (l + 1) * len);
      for (i = 0; i < len; i++) dU[i] = dH[i] * Dl[i];
      if (c.norm !== "none") normaliseBackward(c.norm, Zl, dU, B, n, inv.subarray(l * Math.max(B, n)));
      // ||dL/dW_l|| = ||dU^T h_{l-1}||_F, from two batch x batch Gram matrices (cheaper than the n x n matrix)
      var su = maxAbs(dU, len), sh = maxAbs(Hp, len);
      if (su === 0 || sh === 0) weight[l] = 0;
      else if (!isFinite(su) || !isFinite(sh)) weight[l] = NaN;
      else {
        for (i = 0; i < len; i++) scaled[i] = dU[i] / su;
        gemmNT(scaled, scaled, G1, B, B, n, 1, null, false, true);
        for (i = 0; i < len; i++) scaled[i] = Hp[i] / sh;
        gemmNT(scaled, scaled, G2, B, B, n, 1, null, false, true);
        var g = 0; for (i = 0; i < B * B; i++) g += G1[i] * G2[i];
        weight[l] = su * sh * Math.sqrt(Math.max(g, 0));
      }
      if (l > 0) { // dL/dh_{l-1} = alpha * dU · W (+ dL/dh_l through the skip connection)
        transpose(cache.W[l], WT, n);
        if (c.res) dHp.set(dH.subarray(0, len));
        gemmNT(dU, WT, dHp, B, n, n, alpha, null, c.res, false);
        var swap = dH; dH = dHp; dHp = swap; pool.dH = dH; pool.dHp = dHp;
      }
    }
    var result = { config: c, layers: L, signal: signal, weight: weight, act_mean: mean, act_std: std,
                   saturated: sat, loss: loss, theory: theory(c, signal), engine: "float64" };
    result.ms = now() - t0;
    return result;
  }
  /* ---------- the fast path: the same pass in float32 on WebAssembly SIMD kernels (explorer-kernels.js) ----------
   * Memory of the kernels' module, in floats: 1024 zeros (a null bias), 8 for the statistics kernel's output,
   * then the weights of every layer drawn so far, each packed twice (as the right operand of the forward and of
   * the backward product), then the work arrays of this pass. The backward pass is linear in dL/dh, so it is
   * carried at unit norm with its log scale kept aside: no gradient underflows, however far it vanishes. */
  var wasm = null, resident = { key: null, layers: 0 }, STATS = 1024, WEIGHTS = 1032;
  var ready = (global.vgKernels ? global.vgKernels.ready : Promise.resolve(null))
    .then(function (k) { wasm = k; return k ? "float32" : "float64"; }, function () { return "float64"; });

  function fits(c) {
    return !!wasm && c.width % 8 === 0 && c.batch % 8 === 0 && c.depth * c.width * c.width <= 100 * 256 * 256;
  }
  function memoryFloats(floats) { // grows the module's memory to hold `floats` and returns a fresh view of it
    var have = wasm.memory.buffer.byteLength, need = floats * 4;
    if (need > have) wasm.memory.grow(Math.ceil((need - have) / 65536));
    return new Float32Array(wasm.memory.buffer);
  }
  function packPanels(F, at, M, n, asIs) { // B (n x n) in panels of eight columns: B = M^T, or M itself if asIs
    for (var j = 0; j < n; j++) {
      var dst = at + (j >> 3) * 8 * n + (j & 7);
      if (asIs) for (var t = 0; t < n; t++) F[dst + 8 * t] = M[t * n + j];
      else for (t = 0; t < n; t++) F[dst + 8 * t] = M[j * n + t];
    }
  }
  function residentWeights(c, cache, family) { // float offsets of layer l's packed weights: forward, backward
    var n = c.width, key = cache.key, size = 2 * n * n;
    if (resident.key !== key) resident = { key: key, layers: 0 };
    var F = memoryFloats(WEIGHTS + c.depth * size);
    for (var l = resident.layers; l < c.depth; l++) {
      var W = layerBase(cache, c.seed, n, family, l), at = WEIGHTS + l * size;
      packPanels(F, at, W, n, false);       // forward: z = h W^T, so the right operand is W^T
      packPanels(F, at + n * n, W, n, true); // backward: dL/dh_{l-1} = dU W
    }
    resident.layers = Math.max(resident.layers, c.depth);
    return function (l) { return WEIGHTS + l * size; };
  }
  function stats(at, len) { // [sum, sum of squares, max |x|] of the floats at..at+len, summed in float64
    wasm.exports.stats(4 * at, len, 4 * STATS);
    var out = new Float64Array(wasm.memory.buffer, 4 * STATS, 3);
    return [out[0], out[1], out[2]];
  }

  function computeFloat32(c) {
    var L = c.depth, n = c.width, B = c.batch, act = c.act, len = B * n, K = wasm.exports, l, i, s, o;
    var data = inputs(c.seed, n, B), family = FAMILY[c.init];
    var cache = baseCache(c.seed, n, family), alpha = weightScale(c.init, c.gain, n)[0];
    var weightsAt = residentWeights(c, cache, family), useBias = c.init === "default", bound = 1 / Math.sqrt(n);
    var work = WEIGHTS + resident.layers * 2 * n * n; // the work arrays, in floats
    var H = work, Z = H + (L + 1) * len, D = Z + L * len, dH = D + L * len, dHp = dH + len, dU = dHp + len,
        Ap = dU + len, Ah = Ap + len, Bg = Ah + len, G1 = Bg + len, G2 = G1 + B * B, bias = G2 + B * B;
    var F = memoryFloats(bias + n), inv = buffer("inv", L * Math.max(B, n)), hmax = new Array(L + 1);
    var signal = new Array(L), weight = new Array(L), mean = new Array(L), std = new Array(L), sat = new Array(L);
    var threshold = act === "leaky_relu" ? 0 : 0.01 * MAX_SLOPE[act]; // leaky's 0.01 rounds below 1% in float32
    F.set(data.x, H);
    hmax[0] = maxAbs(data.x, len);
    for (l = 0; l < L; l++) { // forward
      var Hp = H + l * len, Hl = Hp + len, Zl = Z + l * len, Dl = D + l * len;
      if (useBias) { var b = cache.b[l]; for (o = 0; o < n; o++) F[bias + o] = bound * b[o]; }
      K.packA(4 * Hp, 4 * Ap, B, n);
      K.gemm(4 * Ap, 4 * weightsAt(l), 4 * Zl, B, n, n, alpha, useBias ? 4 * bias : 0, 0, 0);
      if (c.norm !== "none") normalise(c.norm, F.subarray(Zl, Zl + len), B, n, inv.subarray(l * Math.max(B, n)));
      sat[l] = K[act](4 * Zl, 4 * Hl, 4 * Dl, len, threshold) / len;
      if (c.res) K.add_into(4 * Hl, 4 * Hp, len);
      var st = stats(Hl, len), m = st[0] / len;
      mean[l] = m; std[l] = Math.sqrt(Math.max(st[1] - len * m * m, 0) / (len - 1)); hmax[l + 1] = st[2];
      if (st[2] !== 0 && !(st[2] > 1e-30 && st[2] < 1e30)) return null; // beyond float32's reach: float64 instead
    }
    var dH64 = buffer("dH", len), loss = head(F.subarray(H + L * len, H + (L + 1) * len), data, B, n, dH64);
    F.set(dH64.subarray(0, len), dH);
    var logScale = 0; // the true dL/dh_l is F[dH ..] * exp(logScale)
    for (l = L - 1; l >= 0; l--) { // backward
      Hp = H + l * len; Zl = Z + l * len; Dl = D + l * len;
      var size = Math.sqrt(stats(dH, len)[1]);
      if (!isFinite(size)) return null;
      if (size === 0) { for (; l >= 0; l--) { signal[l] = 0; weight[l] = 0; } break; }
      signal[l] = size * Math.exp(logScale);
      logScale += Math.log(size);
      K.scale_mul(4 * dH, 4 * Dl, 4 * dU, len, 1 / size);
      if (c.norm !== "none") normaliseBackward(c.norm, F.subarray(Zl, Zl + len), F.subarray(dU, dU + len), B, n,
                                               inv.subarray(l * Math.max(B, n)));
      // ||dL/dW_l|| = ||dU^T h_{l-1}||_F from two batch x batch Gram matrices, each operand scaled to at most 1
      var su = stats(dU, len)[2], sh = hmax[l];
      K.packA(4 * dU, 4 * Ap, B, n);
      if (su === 0 || sh === 0) weight[l] = 0;
      else { // the upper triangles of the two symmetric Gram matrices are enough
        K.packBT(4 * dU, 4 * Bg, n, B, 1 / su); K.gemm(4 * Ap, 4 * Bg, 4 * G1, B, B, n, 1 / su, 0, 0, 1);
        K.packA(4 * Hp, 4 * Ah, B, n);
        K.packBT(4 * Hp, 4 * Bg, n, B, 1 / sh); K.gemm(4 * Ah, 4 * Bg, 4 * G2, B, B, n, 1 / sh, 0, 0, 1);
        var g = 0;
        for (s = 0; s < B; s++) {
          var d0 = s * B + s;
          g += F[G1 + d0] * F[G2 + d0];
          for (i = d0 + 1; i < (s + 1) * B; i++) g += 2 * F[G1 + i] * F[G2 + i];
        }
        weight[l] = su * sh * Math.sqrt(Math.max(g, 0)) * Math.exp(logScale);
      }
      if (l > 0) { // dL/dh_{l-1} = alpha dU W (+ dL/dh_l through the skip connection), in the new scale
        if (c.res) K.scale(4 * dH, 4 * dHp, len, 1 / size);
        K.gemm(4 * Ap, 4 * (weightsAt(l) + n * n), 4 * dHp, B, n, n, alpha, 0, c.res ? -1 : 0, 0);
        var swap = dH; dH = dHp; dHp = swap;
      }
    }
    return { config: c, layers: L, signal: signal, weight: weight, act_mean: mean, act_std: std, saturated: sat,
             loss: loss, theory: theory(c, signal), engine: "float32" };
  }

  function now() { return typeof performance !== "undefined" ? performance.now() : Date.now(); }

  /* ---------- theory: the mean-field recursion behind sqrt(n Var(W) E[g'(z)^2]) -------------------------------
   * Pre-activations z_l ~ N(0, q_l) with q_l = n Var(W) E[h_{l-1}^2] + Var(b); the squared gradient shrinks by
   * chi_l^2 = n Var(W) E[g'(z_l)^2] per layer (Glorot & Bengio 2010; He et al. 2015; the wide-network limit).
   * After layer norm z_l ~ N(0, 1) and the backward pass divides by the pre-norm std, sqrt(q_l), and keeps
   * (1 - 2/n) of the squared norm (the projection that removes the mean and the scale): chi_l^2 =
   * n Var(W) E[g'(z)^2] (1 - 2/n) / q_l. Batch norm couples the examples (Yang et al. 2019) and residual
   * connections correlate the skip and the branch; for those no simple line is drawn. */
  var GRID = (function () {
    var t = [], w = [], h = 0.02, tot = 0;
    for (var x = -8; x <= 8 + 1e-9; x += h) { t.push(x); w.push(Math.exp(-0.5 * x * x)); tot += w[w.length - 1]; }
    for (var i = 0; i < w.length; i++) w[i] /= tot;
    return { t: t, w: w };
  })();
  var gridZ = new Float64Array(GRID.t.length), gridG = new Float64Array(GRID.t.length),
      gridD = new Float64Array(GRID.t.length);
  function gaussMoments(act, q, threshold) { // E[g], E[g^2], E[g'^2], P(|g'| < threshold) for z ~ N(0, q)
    var sd = Math.sqrt(Math.max(q, 0)), e1 = 0, e2 = 0, d2 = 0, ps = 0, i, len = GRID.t.length;
    for (i = 0; i < len; i++) gridZ[i] = sd * GRID.t[i];
    activate(act, gridZ, gridG, gridD, len, 0); // the whole grid in one pass
    for (i = 0; i < len; i++) {
      var w = GRID.w[i], g = gridG[i], d = gridD[i];
      e1 += w * g; e2 += w * g * g; d2 += w * d * d; if (Math.abs(d) < threshold) ps += w;
    }
    return [e1, e2, d2, ps];
  }
  var theoryMemo = { key: null };
  function theory(config, signal) {
    var c = normalize(config), L = c.depth, n = c.width;
    if (c.norm === "batch") return { available: false, reason: "batch norm couples the examples of the batch" };
    if (c.res) return { available: false, reason: "the skip connection and the branch are correlated" };
    var sc = weightScale(c.init, c.gain, n), sw2 = sc[1], sb2 = sc[2], thr = 0.01 * MAX_SLOPE[c.act];
    // layer l's prediction does not depend on the depth or the seed: keep the last network's, and extend it
    var key = [c.act, c.init, c.gain, n, c.norm].join("|"), memo = theoryMemo.key === key ? theoryMemo :
      (theoryMemo = { key: key, M2: 1, chi: [], std: [], sat: [] });
    for (var l = memo.chi.length; l < L; l++) {
      var qu = sw2 * memo.M2 + sb2, q = c.norm === "layer" ? 1 : qu, mom = gaussMoments(c.act, q, thr), chi2;
      if (c.norm === "layer") chi2 = qu > 0 ? sw2 * mom[2] * (1 - 2 / n) / qu : NaN;
      else chi2 = sw2 * mom[2];
      memo.M2 = mom[1];
      memo.chi.push(Math.sqrt(chi2)); memo.std.push(Math.sqrt(Math.max(mom[1] - mom[0] * mom[0], 0)));
      memo.sat.push(mom[3]);
    }
    var chi = memo.chi.slice(0, L);
    var out = { available: true, chi: chi, act_std: memo.std.slice(0, L), saturated: memo.sat.slice(0, L) };
    if (signal) { // anchored at the last layer: ||dL/dh_{l-1}|| = chi_l ||dL/dh_l||
      var pred = new Array(L); pred[L - 1] = signal[L - 1];
      for (l = L - 1; l > 0; l--) pred[l - 1] = pred[l] * chi[l];
      out.signal = pred;
    }
    var logs = 0; for (l = 1; l < L; l++) logs += Math.log10(chi[l]);
    out.decades_per_layer = L > 1 ? logs / (L - 1) : 0;
    out.log10_ratio = logs;
    return out;
  }

  /* ---------- the address: #depth=50&width=64&act=sigmoid&init=default&gain=1&res=0&norm=none&seed=0 ---------- */
  var ALIASES = { he: "kaiming", glorot: "xavier", pytorch: "default", leaky: "leaky_relu", lrelu: "leaky_relu",
                  ReLU: "relu", bn: "batch", ln: "layer", batchnorm: "batch", layernorm: "layer" };
  function parse(hash) { // tolerant: unknown keys and values fall back to the defaults
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
  function format(c) {
    return "depth=" + c.depth + "&width=" + c.width + "&act=" + c.act + "&init=" + c.init + "&gain=" +
      (+(+c.gain).toFixed(4)) + "&res=" + (c.res ? 1 : 0) + "&norm=" + c.norm + "&seed=" + c.seed;
  }

  var api = { compute: compute, computeFloat64: computeFloat64, ready: ready, theory: theory, weights: weights,
              parse: parse, format: format, defaults: DEFAULTS, widths: WIDTHS, activations: ACTS, inits: INITS,
              norms: NORMS, erf: erf };

  /* ---------- worker mode --------------------------------------------------------------------------------------- */
  if (typeof document === "undefined" && typeof self !== "undefined" && typeof postMessage === "function") {
    self.onmessage = function (e) {
      var msg = e.data;
      ready.then(function () {
        var out;
        try { out = { id: msg.id, result: compute(msg.config) }; }
        catch (err) { out = { id: msg.id, error: String(err) }; }
        self.postMessage(out);
      });
    };
    return;
  }
  if (typeof module !== "undefined" && module.exports) { module.exports = api; }
  if (typeof window === "undefined") return;
  window.vgExplorer = api;
  var scriptURL = document.currentScript && document.currentScript.src;

  /* =========================================== the page ========================================================== */
  var SVGNS = "http://www.w3.org/2000/svg";
  var instances = 0;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "class") e.className = attrs[k]; else if (k === "for") e.htmlFor = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

  /** A runner: in a Web Worker when the browser allows it (not from file://), otherwise on the page, one frame later.
   * Either way only the latest request is computed: a dragged slider never builds a queue. */
  function Runner(onResult) {
    var worker = null, busy = false, pending = null, id = 0, self = this;
    if (scriptURL && typeof Worker !== "undefined" && location.protocol !== "file:") {
      try {
        worker = new Worker(scriptURL);
        worker.onmessage = function (e) {
          busy = false;
          if (e.data.error) { console.error(e.data.error); } else onResult(e.data.result);
          flush();
        };
        worker.onerror = function () { worker = null; busy = false; flush(); };
      } catch (err) { worker = null; }
    }
    function flush() {
      if (busy || !pending) return;
      var cfg = pending; pending = null; busy = true;
      if (worker) { worker.postMessage({ id: ++id, config: cfg }); return; }
      (window.requestAnimationFrame || setTimeout)(function () {
        var r = null;
        try { r = compute(cfg); } catch (err) { console.error(err); }
        busy = false;
        if (r) onResult(r);
        flush();
      });
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
      lastWidth = plots.clientWidth;
      var L = r.layers, th = r.theory, layers = [];
      for (var i = 1; i <= L; i++) layers.push(i);
      drawPanel(panels.grad, {
        x: layers, log: true, tall: !compact, ylabel: "gradient norm", floor: 1.4e-45,
        series: [
          { name: "‖∂L/∂h_l‖, back-propagated gradient", y: r.signal, cls: "vgx-c1", marker: true },
          { name: "‖∂L/∂W_l‖, weight gradient", y: r.weight, cls: "vgx-c2", marker: true },
          th.available && th.signal ? { name: "theory: ∏ √(n·Var(W)·E[g′(z)²]) from the last layer", y: th.signal,
                                       cls: "vgx-theory", dash: true } : null
        ]
      });
      if (!compact) {
        drawPanel(panels.std, {
          x: layers, log: true, ylabel: "std of h_l",
          series: [{ name: "measured std(h_l)", y: r.act_std, cls: "vgx-c3", marker: true },
                   th.available ? { name: "theory", y: th.act_std, cls: "vgx-theory", dash: true } : null]
        });
        var satName = { relu: "dead (z ≤ 0)", leaky_relu: "|g′| < 1% of max (never: slope ≥ 0.01)" }[r.config.act] ||
          "saturated: |g′(z)| < 1% of max g′";
        drawPanel(panels.sat, {
          x: layers, log: false, ymin: 0, ymax: 1, percent: true, ylabel: "share of units",
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
  function decades(v) { return Math.round(Math.log10(v) * 10) / 10; }
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

  /* ---------- a small SVG plotter: axes, log or linear y, lines, dashed theory, exact zeros as triangles ------- */
  var M = { l: 62, r: 10, t: 10, b: 36 };
  function drawPanel(p, spec) { // drawn at the panel's own pixel size, so text stays 12 px on a phone too
    var VW = Math.max(240, Math.round(p.svg.parentNode.getBoundingClientRect().width || 520)),
        VH = Math.round(Math.min(Math.max(VW * (spec.tall ? 0.5 : 0.62), 200), spec.tall ? 360 : 300));
    var series = spec.series.filter(Boolean), x = spec.x, n = x.length, i, s;
    var pw = VW - M.l - M.r, ph = VH - M.t - M.b;
    var ylo, yhi, zeros = false, over = false;
    if (spec.log) {
      var lo = Infinity, hi = -Infinity;
      series.forEach(function (se) {
        for (var j = 0; j < n; j++) { var v = se.y[j];
          if (v > 0 && isFinite(v)) { var e = Math.log10(v); if (e < lo) lo = e; if (e > hi) hi = e; }
          else if (v === 0 && !se.dash) zeros = true; else if (!se.dash && !(v >= 0)) over = true; } });
      if (!isFinite(lo)) { lo = -1; hi = 1; }
      if (spec.floor && lo < Math.log10(spec.floor) + 8) lo = Math.min(lo, Math.log10(spec.floor) - 1);
      ylo = Math.floor(lo); yhi = Math.ceil(hi);
      if (yhi - ylo < 2) { ylo -= 1; yhi += 1; }
    } else { ylo = spec.ymin; yhi = spec.ymax; }
    function X(v) { return M.l + (n > 1 ? (v - 1) / (x[n - 1] - 1) : 0.5) * pw; }
    function Y(v) { var t = spec.log ? Math.log10(v) : v; return M.t + (1 - (t - ylo) / (yhi - ylo)) * ph; }
    var out = [];
    // grid and y ticks
    var ticks = [];
    if (spec.log) {
      var span = yhi - ylo, step = Math.max(1, Math.ceil(span / 6));
      if (step > 2 && step < 5) step = 5; else if (step > 5 && step < 10) step = 10; else if (step > 10) step = Math.ceil(step / 10) * 10;
      for (var e = Math.ceil(ylo / step) * step; e <= yhi; e += step) ticks.push(e);
      ticks.forEach(function (k) { var y = M.t + (1 - (k - ylo) / (yhi - ylo)) * ph;
        out.push('<line class="vgx-grid" x1="' + M.l + '" x2="' + (M.l + pw) + '" y1="' + y + '" y2="' + y + '"/>');
        out.push('<text class="vgx-tick" x="' + (M.l - 6) + '" y="' + (y + 4) + '" text-anchor="end">' +
                 (k === 0 ? "1" : "10<tspan dy='-7' class='vgx-sup'>" + k + "</tspan>") + "</text>"); });
    } else {
      for (var tk = 0; tk <= 4; tk++) { var tv = ylo + (yhi - ylo) * tk / 4, ty = Y(tv);
        out.push('<line class="vgx-grid" x1="' + M.l + '" x2="' + (M.l + pw) + '" y1="' + ty + '" y2="' + ty + '"/>');
        out.push('<text class="vgx-tick" x="' + (M.l - 6) + '" y="' + (ty + 4) + '" text-anchor="end">' +
                 (spec.percent ? Math.round(tv * 100) + "%" : tv) + "</text>"); }
    }
    // x ticks
    var xs = niceStep(x[n - 1]);
    var xt = [1]; for (var v = xs; v <= x[n - 1]; v += xs) if (v > 1) xt.push(v);
    if (xt[xt.length - 1] !== x[n - 1] && x[n - 1] - xt[xt.length - 1] >= xs / 2) xt.push(x[n - 1]);
    xt.forEach(function (v) { var xx = X(v);
      out.push('<line class="vgx-axis" x1="' + xx + '" x2="' + xx + '" y1="' + (M.t + ph) + '" y2="' + (M.t + ph + 4) + '"/>');
      out.push('<text class="vgx-tick" x="' + xx + '" y="' + (M.t + ph + 17) + '" text-anchor="middle">' + v + "</text>"); });
    out.push('<line class="vgx-axis" x1="' + M.l + '" x2="' + (M.l + pw) + '" y1="' + (M.t + ph) + '" y2="' + (M.t + ph) + '"/>');
    out.push('<line class="vgx-axis" x1="' + M.l + '" x2="' + M.l + '" y1="' + M.t + '" y2="' + (M.t + ph) + '"/>');
    out.push('<text class="vgx-label" x="' + (M.l + pw / 2) + '" y="' + (VH - 4) + '" text-anchor="middle">layer l (1 = next to the input)</text>');
    out.push('<text class="vgx-label" transform="translate(13,' + (M.t + ph / 2) + ') rotate(-90)" text-anchor="middle">' +
             esc(spec.ylabel) + "</text>");
    var floorShown = false;
    if (spec.floor && spec.log && Math.log10(spec.floor) > ylo && Math.log10(spec.floor) < yhi) {
      var fy = Y(spec.floor).toFixed(1); floorShown = true;
      out.push('<line class="vgx-floor" x1="' + M.l + '" x2="' + (M.l + pw) + '" y1="' + fy + '" y2="' + fy + '"/>');
    }
    // lines
    series.forEach(function (se) {
      var d = "", pen = false, pts = [];
      for (var j = 0; j < n; j++) {
        var val = se.y[j], ok = spec.log ? val > 0 && isFinite(val) : isFinite(val);
        if (!ok) { pen = false; continue; }
        var px = X(x[j]).toFixed(1), py = Y(val).toFixed(1);
        d += (pen ? "L" : "M") + px + " " + py; pen = true; pts.push([px, py]);
      }
      out.push('<path class="vgx-line ' + se.cls + (se.dash ? " vgx-dash" : "") + '" d="' + d + '"/>');
      if (se.marker && n <= 40) pts.forEach(function (q) {
        out.push('<circle class="vgx-dot ' + se.cls + '" cx="' + q[0] + '" cy="' + q[1] + '" r="2.2"/>'); });
      if (spec.log && !se.dash) for (j = 0; j < n; j++) if (se.y[j] === 0) { // exact zeros on the bottom edge
        var zx = X(x[j]), zy = M.t + ph - 1;
        out.push('<path class="vgx-zero ' + se.cls + '" d="M' + (zx - 4.5).toFixed(1) + " " + (zy - 8) + "L" +
                 (zx + 4.5).toFixed(1) + " " + (zy - 8) + "L" + zx.toFixed(1) + " " + zy + 'Z"><title>layer ' + x[j] +
                 ": exactly 0</title></path>");
      }
    });
    p.svg.setAttribute("viewBox", "0 0 " + VW + " " + VH);
    p.svg.setAttribute("width", VW); p.svg.setAttribute("height", VH);
    p.svg.innerHTML = out.join("");
    var leg = series.map(function (se) {
      return '<span class="vgx-key"><svg width="26" height="10" aria-hidden="true"><line class="vgx-line ' + se.cls +
        (se.dash ? " vgx-dash" : "") + '" x1="1" x2="25" y1="5" y2="5"/></svg>' + esc(se.name) + "</span>";
    });
    if (zeros) leg.push('<span class="vgx-key vgx-key-zero"><span aria-hidden="true">▼</span> exactly 0: underflow ' +
                        "or dead units (a log axis cannot show it)</span>");
    if (floorShown) leg.push('<span class="vgx-key"><svg width="26" height="10" aria-hidden="true"><line class="vgx-floor" ' +
      'x1="1" x2="25" y1="5" y2="5"/></svg>1.4×10⁻⁴⁵, float32\'s smallest number: PyTorch\'s gradients underflow to 0 ' +
      'around here; the explorer keeps the gradient\'s scale aside, so its line goes on</span>');
    if (over) leg.push('<span class="vgx-key">some values overflowed (∞ or NaN), not drawn</span>');
    p.legend.innerHTML = leg.join("");
  }
  function niceStep(max) {
    var raw = max / 5, steps = [1, 2, 5, 10, 20, 25, 50, 100];
    for (var i = 0; i < steps.length; i++) if (steps[i] >= raw) return steps[i];
    return 100;
  }

  function start() {
    var roots = document.querySelectorAll("[data-vg-explorer]");
    for (var i = 0; i < roots.length; i++) if (!roots[i].__vgx) { roots[i].__vgx = true; new Explorer(roots[i]); }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})(this);
