/* docs/js/explorer/activations.js: the activations and their slopes, in float64.
 *
 * Owns: g(z) and g'(z) for every activation the explorer offers (activate, as torch's autograd computes the slope),
 * erf (for GELU), and each activation's steepest slope (what "saturated" is measured against). Used by the float64
 * engine and by the theory's Gaussian expectations; the float32 kernels in kernels.js compute the same functions.
 */
// vgsite.probes.max_derivative: the steepest slope of each activation on linspace(-10, 10, 20001), by autograd.
export var MAX_SLOPE = { sigmoid: 0.25, tanh: 1, relu: 1, leaky_relu: 1, gelu: 1.128904104232788,
                  selu: 1.7580984830856323 };
var SELU_ALPHA = 1.6732632423543772, SELU_SCALE = 1.0507009873554805, LEAK = 0.01;
var SQRT1_2 = Math.SQRT1_2, INV_SQRT_2PI = 0.3989422804014327;

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
export function erf(x) {
  var ax = Math.abs(x);
  if (ax < 0.5) return erfSmall(x);
  var r = 1 - erfcLarge(ax);
  return x < 0 ? -r : r;
}

/** A = g(Z) and D = g'(Z) in one pass (g' as torch's autograd: ReLU'(0) = 0, SELU' at 0 from the left);
 * returns how many units are "saturated", |g'(z)| < threshold (vgsite.probes.saturated_fraction). */
export function activate(act, Z, A, D, len, threshold) {
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
