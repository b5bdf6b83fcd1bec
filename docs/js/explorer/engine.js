/* docs/js/explorer/engine.js: vgsite's DeepMLP and gradient_flow probe, recomputed in the browser.
 *
 * Owns: the forward and backward pass and the per-layer measurements, in its two engines: float32 on the
 * WebAssembly SIMD kernels of kernels.js (fast: the default where the browser has them) and float64 in plain
 * JavaScript (the reference, and the fallback where float32 could not hold the activations).
 *
 * The network is the one in vgsite/nets.py: `depth` blocks h_l = g(norm(W_l h_{l-1} + b_l)) (plus h_{l-1} when
 * residual), then a linear head to 10 classes; the probe is vgsite/probes.py's gradient_flow: cross-entropy on a
 * batch of standard-normal inputs with random labels, one forward and one backward pass, per-layer norms of
 * dL/dh_l and dL/dW_l, the activations' standard deviation and the share of units with |g'(z)| < 1% of max g'.
 * No library, no request: everything ships with the site.
 *
 * Exports compute(config) -> result (see `compute`), computeFloat64(config), ready (a Promise of the engine's
 * name), and, re-exported for the console and the tests, theory, weights, parse, format, defaults, widths,
 * activations, inits, norms and erf. The page never loads this module itself: worker.js runs it in a Web Worker
 * (page.js falls back to importing it only where no worker can start).
 */
import { ready as kernelsReady } from "./kernels.js";
import { activate, MAX_SLOPE, erf } from "./activations.js";
import { ACTS, DEFAULTS, INITS, NORMS, WIDTHS, format, normalize, parse } from "./state.js";
import { theory } from "./theory.js";
import { FAMILY, baseCache, inputs, layerBase, weightScale, weights } from "./weights.js";

export { theory, weights, parse, format, erf, DEFAULTS as defaults, WIDTHS as widths, ACTS as activations,
         INITS as inits, NORMS as norms };

var CLASSES = 10, EPS = 1e-5;

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

/**
 * One forward and backward pass, as vgsite.probes.gradient_flow. config: {depth, width, batch, act, init, gain,
 * res, norm, seed}. Returns per-layer arrays (index 0 is layer 1, next to the input): signal = ||dL/dh_l||,
 * weight = ||dL/dW_l||, act_mean, act_std (of h_l, over the whole batch, unbiased), saturated (share of z_l with
 * |g'(z)| < 1% of max g'), and loss, theory (see `theory`), ms (the time it took).
 */
export function compute(config) {
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
export function computeFloat64(config) {
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
export var ready = kernelsReady
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
