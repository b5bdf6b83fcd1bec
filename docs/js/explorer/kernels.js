/* docs/js/explorer/kernels.js: the explorer's hot loops as a small WebAssembly SIMD module, assembled at load time.
 *
 * Owns: the WebAssembly assembler and the kernels (gemm and its packing, the activations, the statistics, the
 * Gram-Schmidt pass); nothing else. Used by engine.js (the float32 pass) and weights.js (orthogonal weights).
 *
 * Why: a recompute at depth 100, width 256, batch 64 is about a billion multiply-adds and 1.6 million activations.
 * Plain JavaScript does about 1.5 billion a second; 4-wide float32 SIMD with fused multiply-adds does several
 * times that. There is no build step and no toolchain: the functions below are written in WebAssembly's folded
 * form (each helper returns its operands' bytes followed by its own opcode) and assembled into a module of a few
 * kilobytes. Float32, as PyTorch computes; engine.js keeps its float64 JavaScript path for what float32 cannot
 * hold, and the tests check the two against each other and against vgsite's PyTorch probes.
 *
 * Exports: ready -> Promise of {exports, memory, scratch, relaxed, bytes} or null where WebAssembly SIMD is
 * missing (scratch is a second instance of the module with a memory of its own, for work outside the pass), and
 * assemble(relaxed) -> the module's bytes.
 * Layout rules of every kernel: pointers are byte offsets into the module's memory, float32 row-major arrays;
 * gemm needs m % 4 == 0, p % 8 == 0 and k % 4 == 0, the element-wise kernels len % 4 == 0, stats len % 8 == 0.
 * The caller keeps bytes 0..4095 zero, so that pointer 0 reads as a zero bias.
 */

/* ---------- the assembler ---------------------------------------------------------------------------------- */
function flat(parts) {
  var out = [];
  (function walk(x) { if (Array.isArray(x)) x.forEach(walk); else out.push(x); })(parts);
  return out;
}
function uleb(n) { var b = []; do { var c = n & 127; n >>>= 7; b.push(n ? c | 128 : c); } while (n); return b; }
function sleb(n) {
  var b = [];
  for (;;) {
    var c = n & 127; n >>= 7;
    if ((n === 0 && !(c & 64)) || (n === -1 && (c & 64))) { b.push(c); return b; }
    b.push(c | 128);
  }
}
function f32bytes(x) { return Array.from(new Uint8Array(new Float32Array([x]).buffer)); }
function str(s) { return [uleb(s.length), s.split("").map(function (ch) { return ch.charCodeAt(0); })]; }
function vec(items) { return [uleb(items.length), items]; }
function section(id, body) { body = flat(body); return [id, uleb(body.length), body]; }

var I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
function op(code) { return function () { return [Array.prototype.slice.call(arguments), code]; }; }
function simd(code) { return function () { return [Array.prototype.slice.call(arguments), 0xfd, uleb(code)]; }; }

// scalars and control
function get(i) { return [0x20, uleb(i)]; }
function set(i, v) { return [v, 0x21, uleb(i)]; }
function i32(n) { return [0x41, sleb(n)]; }
var add = op(0x6a), sub = op(0x6b), mul = op(0x6c), and32 = op(0x71), ltu = op(0x49), ne = op(0x47),
    eqz = op(0x45), fmul = op(0x94), fmax = op(0x97), dadd1 = op(0xa0), dsqrt = op(0x9f), ddiv = op(0xa3),
    promote1 = op(0xbb); // i32, f32 and f64 scalars
function loadf(addr) { return [addr, 0x2a, 2, 0]; }
function storef(addr, v) { return [addr, v, 0x38, 2, 0]; }
function stored(addr, v, offset) { return [addr, v, 0x39, 3, uleb(offset || 0)]; } // f64.store
function block() { return [0x02, 0x40, Array.prototype.slice.call(arguments), 0x0b]; }
function loop() { return [0x03, 0x40, Array.prototype.slice.call(arguments), 0x0b]; }
function br(depth) { return [0x0c, uleb(depth)]; }
function brIf(depth, cond) { return [cond, 0x0d, uleb(depth)]; }
function select(a, b, cond) { return [a, b, cond, 0x1b]; } // a where cond != 0, else b
function inc(i, by) { return set(i, add(get(i), by)); }
/** for (; counter != 0; counter -= step) body, as a do-while: every caller guarantees one pass at least */
function repeat(counter, step, body) {
  return loop(body, set(counter, sub(get(counter), i32(step))), brIf(0, ne(get(counter), i32(0))));
}

// 128-bit vectors of four float32 (or four int32)
function vload(addr, offset) { return [addr, 0xfd, 0, 4, uleb(offset || 0)]; }
function vstore(addr, v, offset) { return [addr, v, 0xfd, 11, 4, uleb(offset || 0)]; }
function splat32(addr, offset) { return [addr, 0xfd, 9, 2, uleb(offset || 0)]; } // v128.load32_splat
function vconst(x) { return [0xfd, 12, f32bytes(x), f32bytes(x), f32bytes(x), f32bytes(x)]; }
var splat = simd(0x13), isplat = simd(0x11), lane = function (v, k) { return [v, 0xfd, 0x1b, k]; };
var vadd = simd(0xe4), vsub = simd(0xe5), vmul = simd(0xe6), vdiv = simd(0xe7), vmin = simd(0xe8),
    vmax = simd(0xe9), vabs = simd(0xe0), vneg = simd(0xe1), vfloor = simd(0x68), vlt = simd(0x43),
    vgt = simd(0x44), vand = simd(0x4e), vor = simd(0x50), vselect = simd(0x52),
    iadd = simd(0xae), isub = simd(0xb1), ishl = simd(0xab), itrunc = simd(0xf8);
var ZERO = vconst(0), ONE = vconst(1);
// pairs of float64: the statistics kernel's sums, and Gram-Schmidt
var promote = simd(0x5f), dadd = simd(0xf0), dsub = simd(0xf1), dmul = simd(0xf2), dsplat = simd(0x14);
function f64c(x) { return [0x44, Array.from(new Uint8Array(new Float64Array([x]).buffer))]; }
function dlane(v, k) { return [v, 0xfd, 0x21, k]; }
function highHalf(v) { return [v, v, 0xfd, 13, [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]]; } // shuffle
function flane(v, k) { return [v, 0xfd, 0x1f, k]; }

/* ---------- the kernels --------------------------------------------------------------------------------------
 * Each is {name, params, locals, body(L), results}; L maps every param and local name to its index. */
function kernels(madd) {
  var list = [];
  /** c[0] x^(n-1) + ... + c[n-1], by Horner's rule on fused multiply-adds; x is the bytes of a local's get */
  function horner(c, x) {
    return c.slice(1).reduce(function (acc, ci) { return madd(acc, x, vconst(ci)); }, vconst(c[0]));
  }
  function kernel(name, params, locals, body, results) {
    list.push({ name: name, params: params, locals: locals, body: body, results: results || [] });
  }

  /* C (m x p) = alpha * A (m x k) . B (k x p) + bias (p) [+ C where acc = -1], from packed operands:
   * Ap = packA(A), four rows interleaved per panel; Bp, B in panels of eight columns (packBT below, or
   * explorer.js's packPanels for the weights, packed once). Every load in the inner loop is then at a fixed
   * offset from two pointers, and a 4 x 8 block of C stays in eight registers while k runs (four steps of k per
   * pass). Needs m % 4 == 0, p % 8 == 0, k % 4 == 0. With upper (for a Gram matrix, m = p) only the blocks
   * that hold entries on or above the diagonal are computed. */
  kernel("gemm", { Ap: I32, Bp: I32, C: I32, m: I32, p: I32, k: I32, alpha: F32, bias: I32, acc: I32, upper: I32 },
    { i: I32, j: I32, t: I32, pa: I32, pb: I32, pc: I32, p4: I32, iend: I32,
      c00: V128, c01: V128, c10: V128, c11: V128, c20: V128, c21: V128, c30: V128, c31: V128,
      b0: V128, b1: V128, av: V128 },
    function (L) {
      var acc = [["c00", "c01"], ["c10", "c11"], ["c20", "c21"], ["c30", "c31"]];
      function step(u) { // one step of k: two vectors of B's row, four broadcasts of A's column, eight multiply-adds
        return [set(L.b0, vload(get(L.pb), 32 * u)), set(L.b1, vload(get(L.pb), 32 * u + 16)),
          acc.map(function (pair, r) {
            return [set(L.av, splat32(get(L.pa), 16 * u + 4 * r)),
              set(L[pair[0]], madd(get(L.av), get(L.b0), get(L[pair[0]]))),
              set(L[pair[1]], madd(get(L.av), get(L.b1), get(L[pair[1]])))];
          })];
      }
      function store(r) { // row r of the block: alpha * c + bias, plus the old C where acc. Nothing but the
        // block and B's two vectors stays in a register across the k loop: x86 has sixteen of them
        return [0, 1].map(function (h) {
          return vstore(get(L.pc), vadd(madd(get(L[acc[r][h]]), splat(get(L.alpha)),
            vload(add(get(L.bias), mul(get(L.j), i32(4))), 16 * h)),
            vand(vload(get(L.pc), 16 * h), isplat(get(L.acc)))), 16 * h);
        }).concat([inc(L.pc, get(L.p4))]);
      }
      return [
        set(L.p4, mul(get(L.p), i32(4))), set(L.j, i32(0)),
        loop( // over panels of eight columns: the panel of B stays in the first-level cache for all of A
          set(L.i, i32(0)), set(L.iend, select(add(get(L.j), i32(8)), get(L.m), get(L.upper))),
          loop( // over panels of four rows (with upper, only those that reach the diagonal or above it)
            acc.map(function (pair) { return [set(L[pair[0]], ZERO), set(L[pair[1]], ZERO)]; }),
            set(L.pa, add(get(L.Ap), mul(get(L.i), mul(get(L.k), i32(4))))),
            set(L.pb, add(get(L.Bp), mul(get(L.j), mul(get(L.k), i32(4))))),
            set(L.t, get(L.k)),
            repeat(L.t, 4, [step(0), step(1), step(2), step(3), inc(L.pa, i32(64)), inc(L.pb, i32(128))]),
            set(L.pc, add(get(L.C), mul(add(mul(get(L.i), get(L.p)), get(L.j)), i32(4)))),
            store(0), store(1), store(2), store(3),
            inc(L.i, i32(4)), brIf(0, ltu(get(L.i), get(L.iend)))),
          inc(L.j, i32(8)), brIf(0, ltu(get(L.j), get(L.p))))
      ];
    });
  /* Ap = A (m x k) in panels of four rows, interleaved: Ap[i/4][t][i%4] = A[i][t] */
  kernel("packA", { A: I32, Ap: I32, m: I32, k: I32 }, { i: I32, t: I32, src: I32, dst: I32 }, function (L) {
    return [set(L.i, i32(0)),
      loop(set(L.src, add(get(L.A), mul(mul(get(L.i), get(L.k)), i32(4)))),
        set(L.dst, add(get(L.Ap), add(mul(mul(and32(get(L.i), i32(-4)), get(L.k)), i32(4)),
                                      mul(and32(get(L.i), i32(3)), i32(4))))),
        set(L.t, get(L.k)),
        repeat(L.t, 1, [storef(get(L.dst), loadf(get(L.src))), inc(L.src, i32(4)), inc(L.dst, i32(16))]),
        inc(L.i, i32(1)), brIf(0, ltu(get(L.i), get(L.m))))];
  });
  /* Bp = c * A^T in panels of eight columns, where A is p x k (so B = c A^T is k x p):
   * Bp[j/8][t][j%8] = c * A[j][t]. The Gram matrices of the weight gradient use it on a batch. */
  kernel("packBT", { A: I32, Bp: I32, k: I32, p: I32, c: F32 }, { j: I32, t: I32, src: I32, dst: I32 },
    function (L) {
      return [set(L.j, i32(0)),
        loop(set(L.src, add(get(L.A), mul(mul(get(L.j), get(L.k)), i32(4)))),
          set(L.dst, add(get(L.Bp), add(mul(mul(and32(get(L.j), i32(-8)), get(L.k)), i32(4)),
                                        mul(and32(get(L.j), i32(7)), i32(4))))),
          set(L.t, get(L.k)),
          repeat(L.t, 1, [storef(get(L.dst), fmul(loadf(get(L.src)), get(L.c))), inc(L.src, i32(4)),
                          inc(L.dst, i32(32))]),
          inc(L.j, i32(1)), brIf(0, ltu(get(L.j), get(L.p))))];
    });

  /* exp(x) for four float32 at once: Cephes' expf (range reduction by ln 2, a degree-5 polynomial, 2^n from the
   * exponent bits); 0 below -88.38, clamped at 2^127 above 88.38 */
  function vexp(x, L) { // x: bytes of a v128; uses locals ex, en
    var y = get(L.ex), n = get(L.en);
    return [
      set(L.ex, vmax(vmin(x, vconst(88.3762626647949)), vconst(-88.3762626647949))),
      set(L.en, vfloor(vadd(vmul(y, vconst(1.44269504088896341)), vconst(0.5)))),
      set(L.ex, vsub(vsub(y, vmul(n, vconst(0.693359375))), vmul(n, vconst(-2.12194440e-4)))),
      vmul(
        vadd(vadd(vmul(vmul(y, y),
          horner([1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
            5.0000001201e-1], y)),
          y), ONE),
        ishl(iadd(itrunc(n), isplat(i32(127))), i32(23)))
    ];
  }

  /* A = g(Z), D = g'(Z), returns how many |g'(z)| < thr: one kernel per activation, sharing the loop */
  function activation(name, compute) { // compute(z, L) -> bytes that set L.a and L.d from the local z
    kernel(name, { Z: I32, A: I32, D: I32, len: I32, thr: F32 },
      { z: V128, a: V128, d: V128, cnt: V128, th: V128, ex: V128, en: V128, u: V128, w: V128 },
      function (L) {
        return [
          set(L.th, splat(get(L.thr))), set(L.cnt, ZERO),
          repeat(L.len, 4, [
            set(L.z, vload(get(L.Z))), compute(get(L.z), L),
            vstore(get(L.A), get(L.a)), vstore(get(L.D), get(L.d)),
            set(L.cnt, isub(get(L.cnt), vlt(vabs(get(L.d)), get(L.th)))),
            inc(L.Z, i32(16)), inc(L.A, i32(16)), inc(L.D, i32(16))]),
          add(add(lane(get(L.cnt), 0), lane(get(L.cnt), 1)), add(lane(get(L.cnt), 2), lane(get(L.cnt), 3)))
        ];
      }, [I32]);
  }
  activation("relu", function (z, L) {
    return [set(L.u, vgt(z, ZERO)), set(L.a, vand(z, get(L.u))), set(L.d, vand(ONE, get(L.u)))];
  });
  activation("leaky_relu", function (z, L) { // slope 0.01 is never below 1% of 1: thr is passed as 0
    return [set(L.u, vgt(z, ZERO)), set(L.a, vselect(z, vmul(z, vconst(0.01)), get(L.u))),
            set(L.d, vselect(ONE, vconst(0.01), get(L.u)))];
  });
  activation("sigmoid", function (z, L) { // 1 / (1 + e^-z); g' = s (1 - s)
    return [set(L.a, vdiv(ONE, vadd(ONE, vexp(vneg(z), L)))),
            set(L.d, vmul(get(L.a), vsub(ONE, get(L.a))))];
  });
  activation("tanh", function (z, L) { // Eigen's rational approximation: odd degree 13 over even degree 6, on
    var x = get(L.u), x2 = get(L.w);   // |z| <= 9 (beyond, float32's tanh is 1); relative error below 3e-7
    return [
      set(L.u, vmax(vmin(z, vconst(9)), vconst(-9))), set(L.w, vmul(x, x)),
      set(L.a, vdiv(vmul(x, horner([-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
        5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03], x2)),
        horner([1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03], x2))),
      set(L.d, vsub(ONE, vmul(get(L.a), get(L.a)))) // 1 - tanh^2, as PyTorch's backward computes it
    ];
  });
  activation("gelu", function (z, L) { // z Phi(z); erf by Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7)
    var t = get(L.w);
    return [
      set(L.u, vabs(vmul(z, vconst(Math.SQRT1_2)))),
      set(L.w, vdiv(ONE, vadd(ONE, vmul(get(L.u), vconst(0.3275911))))),
      set(L.d, vexp(vneg(vmul(get(L.u), get(L.u))), L)), // e^(-z^2/2)
      set(L.a, vsub(ONE, vmul(vmul(horner([1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592], t),
        t), get(L.d)))), // erf(|z|/sqrt 2)
      set(L.a, vmul(vconst(0.5), vadd(ONE, vor(get(L.a), vand(z, vconst(-0)))))), // Phi(z)
      set(L.d, vadd(get(L.a), vmul(z, vmul(get(L.d), vconst(0.3989422804014327))))),
      set(L.a, vmul(z, get(L.a)))
    ];
  });
  activation("selu", function (z, L) { // scale z above 0; scale alpha (e^z - 1) below, with a series near 0
    var SCALE = 1.0507009873554805, SA = 1.0507009873554805 * 1.6732632423543772, x = z;
    return [
      set(L.u, vgt(z, ZERO)),
      set(L.d, vmul(vexp(vmin(z, ZERO), L), vconst(SA))),
      set(L.w, horner([1 / 40320, 1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1], x)),
      set(L.w, vselect(vmul(get(L.w), x), vsub(vmul(get(L.d), vconst(1 / SA)), ONE), vgt(z, vconst(-0.5)))),
      set(L.a, vselect(vmul(z, vconst(SCALE)), vmul(get(L.w), vconst(SA)), get(L.u))),
      set(L.d, vselect(vconst(SCALE), get(L.d), get(L.u)))
    ];
  });

  /* out = c * X * Y, element-wise */
  kernel("scale_mul", { X: I32, Y: I32, out: I32, len: I32, c: F32 }, { cv: V128 }, function (L) {
    return [set(L.cv, splat(get(L.c))),
      repeat(L.len, 4, [vstore(get(L.out), vmul(vmul(vload(get(L.X)), get(L.cv)), vload(get(L.Y)))),
        inc(L.X, i32(16)), inc(L.Y, i32(16)), inc(L.out, i32(16))])];
  });
  /* out = c * X */
  kernel("scale", { X: I32, out: I32, len: I32, c: F32 }, { cv: V128 }, function (L) {
    return [set(L.cv, splat(get(L.c))),
      repeat(L.len, 4, [vstore(get(L.out), vmul(vload(get(L.X)), get(L.cv))),
        inc(L.X, i32(16)), inc(L.out, i32(16))])];
  });
  /* out += X */
  kernel("add_into", { out: I32, X: I32, len: I32 }, {}, function (L) {
    return [repeat(L.len, 4, [vstore(get(L.out), vadd(vload(get(L.out)), vload(get(L.X)))),
      inc(L.out, i32(16)), inc(L.X, i32(16))])];
  });
  /* out[0..2] (float64) = sum of X, sum of X^2, max |X|: float64 sums, so no square overflows or underflows;
   * two sets of sums, eight floats a pass, so that no addition waits for the one before. Needs len % 8 == 0. */
  kernel("stats", { X: I32, len: I32, out: I32 },
    { v: V128, w: V128, s1: V128, s2: V128, t1: V128, t2: V128, mx: V128 },
    function (L) {
      function add(vec, sum, sq) { // sum += both halves of vec, sq += their squares
        return [[promote(vec), promote(highHalf(vec))].map(function (half) {
          return [set(L[sum], dadd(get(L[sum]), half)), set(L[sq], dadd(get(L[sq]), dmul(half, half)))];
        })];
      }
      function total(a, b) { // the four float64 partial sums of two accumulators, as one float64
        return dadd1(dlane(dadd(get(L[a]), get(L[b])), 0), dlane(dadd(get(L[a]), get(L[b])), 1));
      }
      return [set(L.s1, ZERO), set(L.s2, ZERO), set(L.t1, ZERO), set(L.t2, ZERO), set(L.mx, ZERO),
        repeat(L.len, 8, [
          set(L.v, vload(get(L.X))), set(L.w, vload(get(L.X), 16)),
          set(L.mx, vmax(get(L.mx), vmax(vabs(get(L.v)), vabs(get(L.w))))),
          add(get(L.v), "s1", "s2"), add(get(L.w), "t1", "t2"),
          inc(L.X, i32(32))]),
        stored(get(L.out), total("s1", "t1"), 0), stored(get(L.out), total("s2", "t2"), 8),
        stored(get(L.out), promote1(fmax(fmax(flane(get(L.mx), 0), flane(get(L.mx), 1)),
                                         fmax(flane(get(L.mx), 2), flane(get(L.mx), 3)))), 16)];
    });
  /* Modified Gram-Schmidt on the rows of M (n x n, float64, n % 4 == 0), once, in place: the orthogonal
   * initialisation. Each row loses its projections on the rows before it, then is scaled to length 1. */
  kernel("orthonormalise", { M: I32, n: I32 },
    { i: I32, j: I32, t: I32, ri: I32, rj: I32, pi: I32, pj: I32, s0: V128, s1: V128, dv: V128 },
    function (L) {
      function dloadi(off) { return vload(get(L.pi), off); }
      function dloadj(off) { return vload(get(L.pj), off); }
      function dot(rowA, rowB) { // s0 + s1 = row A . row B, two float64 pairs at a time, on two chains
        return [set(L.pi, get(rowA)), set(L.pj, get(rowB)), set(L.s0, ZERO), set(L.s1, ZERO), set(L.t, get(L.n)),
          repeat(L.t, 4, [set(L.s0, dadd(get(L.s0), dmul(dloadi(0), dloadj(0)))),
                          set(L.s1, dadd(get(L.s1), dmul(dloadi(16), dloadj(16)))),
                          inc(L.pi, i32(32)), inc(L.pj, i32(32))]),
          set(L.s0, dadd(get(L.s0), get(L.s1))),
          dadd1(dlane(get(L.s0), 0), dlane(get(L.s0), 1))]; // leaves the sum (an f64) on the stack
      }
      function update(scaleJ) { // row i -= dv * row j  (or, with scaleJ false, row i *= dv)
        return [set(L.pi, get(L.ri)), set(L.pj, get(L.rj)), set(L.t, get(L.n)),
          repeat(L.t, 2, [vstore(get(L.pi), scaleJ ? dsub(dloadi(0), dmul(get(L.dv), dloadj(0)))
                                                    : dmul(get(L.dv), dloadi(0))),
                          inc(L.pi, i32(16)), inc(L.pj, i32(16))])];
      }
      var rowBytes = mul(get(L.n), i32(8));
      return [set(L.i, i32(0)),
        loop(
          set(L.ri, add(get(L.M), mul(get(L.i), rowBytes))), set(L.j, i32(0)),
          block(loop(brIf(1, eqz(ltu(get(L.j), get(L.i)))), // while j < i
            set(L.rj, add(get(L.M), mul(get(L.j), rowBytes))),
            set(L.dv, dsplat(dot(L.ri, L.rj))), update(true),
            inc(L.j, i32(1)), br(0))),
          set(L.rj, get(L.ri)),
          set(L.dv, dsplat(ddiv(f64c(1), dsqrt(dot(L.ri, L.ri))))), update(false), // 1 / |row i|
          inc(L.i, i32(1)), brIf(0, ltu(get(L.i), get(L.n))))];
    });
  return list;
}

/* ---------- the module: memory exported, one function per kernel ---------------------------------------------- */
function assemble(relaxed) {
  var madd = relaxed ? simd(0x105) : function (a, b, c) { return vadd(vmul(a, b), c); };
  var list = kernels(madd), types = [], funcs = [], bodies = [], exps = [];
  list.forEach(function (k, index) {
    var names = Object.keys(k.params).concat(Object.keys(k.locals)), L = {};
    names.forEach(function (n, i) { L[n] = i; });
    var params = Object.keys(k.params).map(function (n) { return k.params[n]; });
    types.push([0x60, vec(params), vec(k.results)]);
    funcs.push(uleb(index));
    var locals = Object.keys(k.locals).map(function (n) { return [1, k.locals[n]]; });
    var body = flat([vec(locals), k.body(L), 0x0b]);
    bodies.push([uleb(body.length), body]);
    exps.push([str(k.name), 0, uleb(index)]);
  });
  exps.push([str("memory"), 2, 0]);
  return new Uint8Array(flat([
    [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    section(1, vec(types)), section(3, vec(funcs)),
    section(5, vec([[1, uleb(1), uleb(16384)]])), // memory: 1 page to start, at most 1 GiB
    section(7, vec(exps)), section(10, vec(bodies))
  ]));
}

function instantiate() {
  if (typeof WebAssembly === "undefined") return Promise.resolve(null);
  var relaxed = WebAssembly.validate(assemble(true)), bytes = relaxed ? assemble(true) : assemble(false);
  if (!WebAssembly.validate(bytes)) return Promise.resolve(null); // no SIMD: engine.js stays in JavaScript
  return WebAssembly.compile(bytes).then(function (module) { // two instances: the engine's, and a scratch one
    return Promise.all([WebAssembly.instantiate(module), WebAssembly.instantiate(module)]);
  }).then(function (two) {
    return { exports: two[0].exports, memory: two[0].exports.memory, scratch: two[1].exports, relaxed: relaxed,
             bytes: bytes.length };
  }, function () { return null; });
}

export const ready = instantiate();
export { assemble };
