/* docs/js/explorer/theory.js: the dashed lines, the mean-field prediction for a plain network.
 *
 * Owns: the recursion of the pre-activations' variance q_l and the per-layer factor chi_l, and from them the
 * predicted gradient norms, activation spread and saturated share (theory). Pure numbers: imported by the engine,
 * which attaches the prediction to every result.
 */
import { activate, MAX_SLOPE } from "./activations.js";
import { normalize } from "./state.js";
import { weightScale } from "./weights.js";

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
export function theory(config, signal) {
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
