/* docs/js/explorer/draw.js: a small SVG plotter for the explorer's panels.
 *
 * Owns: drawPanel (axes, log or linear y, lines, dashed theory, exact zeros as triangles on the bottom edge, the
 * float32 floor, the legend) and the escaping of text put into SVG and HTML. No state: page.js calls it with a
 * panel's elements and a spec.
 */
export function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

/* ---------- a small SVG plotter: axes, log or linear y, lines, dashed theory, exact zeros as triangles ------- */
var M = { l: 62, r: 10, t: 10, b: 36 };
export function drawPanel(p, spec) { // drawn at the panel's own width (spec.width): text stays 12 px on a phone
  var VW = Math.max(240, Math.round(spec.width || p.svg.parentNode.getBoundingClientRect().width || 520)),
      VH = Math.round(Math.min(Math.max(VW * (spec.tall ? 0.5 : 0.62), spec.tall ? 180 : 200), spec.tall ? 360 : 300));
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
