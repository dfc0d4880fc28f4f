//! Numeric helpers shared by the quantizers: C's float-to-int conversions, and the k-quant scale
//! searches ported from llama.cpp `ggml-quants.c` (commit 0c1e57098bba): `nearest_int`,
//! `make_qx_quants`, `make_q3_quants` and `make_qkx2_quants`, restricted to the argument
//! combinations the reference quantizers use, each run for many groups at once.
//!
//! Operation order, `f32` literals and int/float conversions follow the C code exactly;
//! reordering a sum or fusing a multiply-add would change the chosen scales.

/// Groups whose largest magnitude is below this are stored as all zeros (`GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Round to nearest, ties to even, via the `1.5 * 2^23` bit trick of ggml's `nearest_int`.
///
/// Valid for |f| <= 4194303; beyond that (only reachable with extreme inputs) the result is
/// whatever the trick yields, which is exactly what llama.cpp computes too.
#[inline(always)]
pub(crate) fn nearest_int(f: f32) -> i32 {
    let v = f + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// C's truncating float-to-int conversion as x86-64 executes it (`cvttss2si`): NaN and values
/// outside the `i32` range give `i32::MIN`. Rust's `as` saturates instead, which would differ
/// for blocks so small that their inverse scale overflows to infinity.
#[inline(always)]
pub(crate) fn c_float_to_int(f: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        f as i32
    } else {
        i32::MIN
    }
}

/// `(int)roundf(f)` as x86-64 executes it: round half away from zero, then
/// [`c_float_to_int`]. Done without a libm call so that it vectorizes.
#[inline(always)]
pub(crate) fn c_roundf_to_int(f: f32) -> i32 {
    // From 2^23 on every float is an integer (and NaN/inf fail the test): nothing to round.
    if f.abs() < 8_388_608.0 {
        let t = f as i32;
        // Exact: the fractional part of a float is representable.
        let frac = f - t as f32;
        t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
    } else {
        c_float_to_int(f)
    }
}

/// Largest-magnitude element (the first one on ties) and its magnitude.
#[inline(always)]
pub(crate) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// Per-group values of the searches below, one lane per group (`[T; G]`).
///
/// The k-quants run one search per 16- or 32-value group of a 256-value block. The searches
/// below run `G` groups (of one or several blocks) side by side, element `i` of every group at
/// once, each lane doing exactly the C code's operations for its group in the C code's order.
/// Branches become per-lane selects whose untaken side is computed and dropped (divisions by
/// zero included, which cannot trap). So results are bit-identical to one group at a time,
/// while the compiler maps the lanes onto SIMD registers, and the many independent in-order
/// sums hide each other's latency. Everything here is `#[inline(always)]` and closure-free so
/// that it compiles into the CPU-feature dispatched kernel (`crate::kernels::run`), and selects
/// are bit masks (see [`pick`]).
type Lanes<T, const G: usize> = [T; G];

/// Per-lane conditions as all-ones/all-zeros words: they vectorize where `[bool; G]` does not.
type Mask<const G: usize> = [u32; G];

/// All ones when `c`.
#[inline(always)]
fn mask(c: bool) -> u32 {
    u32::from(c).wrapping_neg()
}

/// `if c { a } else { b }` by bit masking. Compilers turn an `if` on floats into a branch
/// when one side is expensive (a division), which stops the lanes from being vectorized.
#[inline(always)]
fn pick(c: bool, a: f32, b: f32) -> f32 {
    let m = mask(c);
    f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// `b = if m { a } else { b }` per lane.
#[inline(always)]
fn select<const G: usize>(m: &Mask<G>, a: &Lanes<f32, G>, b: &mut Lanes<f32, G>) {
    for g in 0..G {
        b[g] = f32::from_bits((a[g].to_bits() & m[g]) | (b[g].to_bits() & !m[g]));
    }
}

/// Largest magnitude of each group and its signed value (the first one on ties), from 0.
#[inline(always)]
fn signed_absmax_lanes<const N: usize, const G: usize>(
    x: &[Lanes<f32, G>; N],
) -> (Lanes<f32, G>, Lanes<f32, G>) {
    let (mut max, mut amax) = ([0f32; G], [0f32; G]);
    for xi in x {
        for g in 0..G {
            let ax = xi[g].abs();
            let bigger = ax > amax[g];
            amax[g] = pick(bigger, ax, amax[g]);
            max[g] = pick(bigger, xi[g], max[g]);
        }
    }
    (max, amax)
}

/// Symmetric codes `clamp(nearest_int(iscale·x), -nmax, nmax - 1)` as floats, and the
/// x²-weighted sums `Σ w·x·l` and `Σ w·l²` (`make_qx_quants`' inner loop).
#[inline(always)]
fn qx_codes<const N: usize, const G: usize>(
    nmax: i32,
    x: &[Lanes<f32, G>; N],
    iscale: &Lanes<f32, G>,
    codes: &mut [Lanes<f32, G>; N],
) -> (Lanes<f32, G>, Lanes<f32, G>) {
    let (mut sumlx, mut suml2) = ([0f32; G], [0f32; G]);
    for (xi, c) in x.iter().zip(codes.iter_mut()) {
        for g in 0..G {
            let q = nearest_int(iscale[g] * xi[g]).clamp(-nmax, nmax - 1) as f32;
            c[g] = q;
            let w = xi[g] * xi[g];
            sumlx[g] += w * xi[g] * q;
            suml2[g] += w * q * q;
        }
    }
    (sumlx, suml2)
}

/// The codes of groups above [`GROUP_MAX_EPS`] shifted by `nmax` into `l`; all-zero codes and
/// scale 0 for the others.
#[inline(always)]
fn store_codes<const N: usize, const G: usize>(
    nmax: i32,
    amax: &Lanes<f32, G>,
    codes: &[Lanes<f32, G>; N],
    l: &mut [Lanes<i8, G>; N],
    scale: &mut Lanes<f32, G>,
) {
    for (li, ci) in l.iter_mut().zip(codes) {
        for g in 0..G {
            li[g] = if amax[g] < GROUP_MAX_EPS {
                0
            } else {
                (ci[g] as i32 + nmax) as i8
            };
        }
    }
    for g in 0..G {
        scale[g] = pick(amax[g] < GROUP_MAX_EPS, 0.0, scale[g]);
    }
}

/// `make_qx_quants(N, nmax, x, L, rmse_type = 1, NULL)` for `G` groups of `N` values
/// (`x[i][g]` is value `i` of group `g`): symmetric quantization to `[-nmax, nmax)` with x²
/// weights, refined over 18 nearby inverse scales. Writes `L + nmax` (all zero for a zero
/// group) into `l` and returns the scales.
#[inline(always)]
pub(crate) fn make_qx_quants<const N: usize, const G: usize>(
    nmax: i32,
    x: &[Lanes<f32, G>; N],
    l: &mut [Lanes<i8, G>; N],
) -> Lanes<f32, G> {
    let (max, amax) = signed_absmax_lanes(x);
    let nmaxf = nmax as f32;
    let mut iscale = [0f32; G];
    for g in 0..G {
        iscale[g] = -nmaxf / max[g];
    }
    let mut codes = [[0f32; G]; N];
    let (sumlx, suml2) = qx_codes(nmax, x, &iscale, &mut codes);
    let (mut scale, mut best) = ([0f32; G], [0f32; G]);
    for g in 0..G {
        scale[g] = pick(suml2[g] != 0.0, sumlx[g] / suml2[g], 0.0);
        best[g] = scale[g] * sumlx[g];
    }
    // The codes of the best trial are recomputed from its inverse scale at the end.
    let mut best_iscale = iscale;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        for g in 0..G {
            iscale[g] = -(nmaxf + 0.1f32 * is as f32) / max[g];
        }
        let (sumlx, suml2) = qx_codes(nmax, x, &iscale, &mut codes);
        let (mut better, mut trial_scale, mut trial_best) = ([0u32; G], [0f32; G], [0f32; G]);
        for g in 0..G {
            better[g] = mask(suml2[g] > 0.0 && sumlx[g] * sumlx[g] > best[g] * suml2[g]);
            trial_scale[g] = sumlx[g] / suml2[g];
            trial_best[g] = trial_scale[g] * sumlx[g];
        }
        select(&better, &iscale, &mut best_iscale);
        select(&better, &trial_scale, &mut scale);
        select(&better, &trial_best, &mut best);
    }
    qx_codes(nmax, x, &best_iscale, &mut codes);
    store_codes(nmax, &amax, &codes, l, &mut scale);
    scale
}

/// `make_q3_quants(N, nmax, x, L, do_rmse = true)` for `G` groups of `N` values: symmetric
/// quantization to `[-nmax, nmax)` followed by up to 5 rounds of per-element coordinate
/// descent on the x²-weighted error. Writes `L + nmax` (all zero for a zero group) into `l`
/// and returns the scales.
///
/// The C code stops a group's descent after a round without changes; here the rounds stop
/// when no group changed, but a round from an unchanged state changes nothing again, so the
/// result is the same.
#[inline(always)]
pub(crate) fn make_q3_quants<const N: usize, const G: usize>(
    nmax: i32,
    x: &[Lanes<f32, G>; N],
    l: &mut [Lanes<i8, G>; N],
) -> Lanes<f32, G> {
    let (max, amax) = signed_absmax_lanes(x);
    let mut iscale = [0f32; G];
    for g in 0..G {
        iscale[g] = -(nmax as f32) / max[g];
    }
    let mut codes = [[0f32; G]; N];
    let (mut sumlx, mut suml2) = qx_codes(nmax, x, &iscale, &mut codes);
    for _ in 0..5 {
        let mut changed = [0u32; G];
        for (xi, ci) in x.iter().zip(codes.iter_mut()) {
            for g in 0..G {
                let (xv, w, cur) = (xi[g], xi[g] * xi[g], ci[g]);
                let slx = sumlx[g] - w * xv * cur;
                let sl2 = suml2[g] - w * cur * cur;
                let nl = nearest_int(xv * sl2 / slx).clamp(-nmax, nmax - 1) as f32;
                let (slx_new, sl2_new) = (slx + w * xv * nl, sl2 + w * nl * nl);
                let take = slx > 0.0
                    && nl != cur
                    && sl2_new > 0.0
                    && slx_new * slx_new * suml2[g] > sumlx[g] * sumlx[g] * sl2_new;
                ci[g] = pick(take, nl, cur);
                sumlx[g] = pick(take, slx_new, sumlx[g]);
                suml2[g] = pick(take, sl2_new, suml2[g]);
                changed[g] |= mask(take);
            }
        }
        if changed.iter().all(|&c| c == 0) {
            break;
        }
    }
    let mut scale = [0f32; G];
    for g in 0..G {
        scale[g] = pick(suml2[g] > 0.0, sumlx[g] / suml2[g], 0.0);
    }
    store_codes(nmax, &amax, &codes, l, &mut scale);
    scale
}

/// Parameters of the `make_qkx2_quants` inverse-scale sweep.
pub(crate) struct Qkx2Search {
    /// Largest code.
    pub nmax: i32,
    /// Offset of the first trial inverse scale (`rmin`).
    pub rmin: f32,
    /// Step between trial inverse scales (`rdelta`).
    pub rdelta: f32,
    /// Number of steps after the first (`nstep`, at least 1).
    pub nstep: i32,
    /// Weighted absolute error instead of squared (`use_mad`).
    pub use_mad: bool,
}

/// `make_qkx2_quants` for `G` groups of `N` values with their weights (`x[i][g]` is value `i`
/// of group `g`): asymmetric quantization `x ≈ scale·L - the_min` with codes in `[0, nmax]`,
/// picking the weighted least-squares scale/min over a sweep of inverse scales. Writes the
/// codes into `l` and returns `(scale, the_min)` per group.
#[inline(always)]
pub(crate) fn make_qkx2_quants<const N: usize, const G: usize>(
    p: &Qkx2Search,
    x: &[Lanes<f32, G>; N],
    weights: &[Lanes<f32, G>; N],
    l: &mut [Lanes<u8, G>; N],
) -> (Lanes<f32, G>, Lanes<f32, G>) {
    if p.use_mad {
        qkx2::<N, G, true>(p, x, weights, l)
    } else {
        qkx2::<N, G, false>(p, x, weights, l)
    }
}

/// Asymmetric codes `clamp(nearest_int(iscale·(x - min)), 0, nmax)` as floats, and the
/// weighted sums `Σ w·l`, `Σ w·l²` and `Σ w·l·x` (`make_qkx2_quants`' inner loop).
#[inline(always)]
fn qkx2_codes<const N: usize, const G: usize>(
    nmax: i32,
    x: &[Lanes<f32, G>; N],
    weights: &[Lanes<f32, G>; N],
    iscale: &Lanes<f32, G>,
    min: &Lanes<f32, G>,
    codes: &mut [Lanes<f32, G>; N],
) -> [Lanes<f32, G>; 3] {
    let (mut sum_l, mut sum_l2, mut sum_xl) = ([0f32; G], [0f32; G], [0f32; G]);
    for ((xi, wi), c) in x.iter().zip(weights).zip(codes.iter_mut()) {
        for g in 0..G {
            let q = nearest_int(iscale[g] * (xi[g] - min[g])).clamp(0, nmax) as f32;
            c[g] = q;
            let wl = wi[g] * q;
            sum_l[g] += wl;
            sum_l2[g] += wl * q;
            sum_xl[g] += wl * xi[g];
        }
    }
    [sum_l, sum_l2, sum_xl]
}

/// The weighted error `Σ w·err(scale·l + min - x)` of codes, `err` absolute or squared.
#[inline(always)]
fn qkx2_error<const N: usize, const G: usize, const MAD: bool>(
    x: &[Lanes<f32, G>; N],
    weights: &[Lanes<f32, G>; N],
    codes: &[Lanes<f32, G>; N],
    scale: &Lanes<f32, G>,
    min: &Lanes<f32, G>,
) -> Lanes<f32, G> {
    let mut e = [0f32; G];
    for ((xi, wi), c) in x.iter().zip(weights).zip(codes) {
        for g in 0..G {
            let diff = scale[g] * c[g] + min[g] - xi[g];
            e[g] += wi[g] * if MAD { diff.abs() } else { diff * diff };
        }
    }
    e
}

#[inline(always)]
fn qkx2<const N: usize, const G: usize, const MAD: bool>(
    p: &Qkx2Search,
    x: &[Lanes<f32, G>; N],
    weights: &[Lanes<f32, G>; N],
    l: &mut [Lanes<u8, G>; N],
) -> (Lanes<f32, G>, Lanes<f32, G>) {
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = [0f32; G];
    for g in 0..G {
        sum_x[g] = sum_w[g] * x[0][g];
    }
    for (xi, wi) in x.iter().zip(weights).skip(1) {
        for g in 0..G {
            min[g] = pick(xi[g] < min[g], xi[g], min[g]);
            max[g] = pick(xi[g] > max[g], xi[g], max[g]);
            sum_w[g] += wi[g];
            sum_x[g] += wi[g] * xi[g];
        }
    }
    for m in &mut min {
        *m = pick(*m > 0.0, 0.0, *m);
    }
    // A constant group (after clamping min to 0) is stored as codes 0 and min; its lane's
    // sweep below divides by zero and is dropped.
    let flat_min = min;
    let nmaxf = p.nmax as f32;

    let (mut iscale, mut scale) = ([0f32; G], [0f32; G]);
    for g in 0..G {
        iscale[g] = nmaxf / (max[g] - min[g]);
        scale[g] = 1.0 / iscale[g];
    }
    let mut codes = [[0f32; G]; N];
    qkx2_codes(p.nmax, x, weights, &iscale, &min, &mut codes);
    let mut best_error = qkx2_error::<N, G, MAD>(x, weights, &codes, &scale, &min);

    // The codes of the best trial are recomputed at the end from the inverse scale and min
    // they were computed with.
    let (mut code_iscale, mut code_min) = (iscale, min);
    for is in 0..=p.nstep {
        for g in 0..G {
            iscale[g] = (p.rmin + p.rdelta * is as f32 + nmaxf) / (max[g] - min[g]);
        }
        let [sum_l, sum_l2, sum_xl] = qkx2_codes(p.nmax, x, weights, &iscale, &min, &mut codes);
        let (mut d, mut this_scale, mut this_min) = ([0f32; G], [0f32; G], [0f32; G]);
        for g in 0..G {
            d[g] = sum_w[g] * sum_l2[g] - sum_l[g] * sum_l[g];
            let fit_scale = (sum_w[g] * sum_xl[g] - sum_x[g] * sum_l[g]) / d[g];
            let fit_min = (sum_l2[g] * sum_x[g] - sum_l[g] * sum_xl[g]) / d[g];
            let clamp = fit_min > 0.0;
            this_scale[g] = pick(clamp, sum_xl[g] / sum_l2[g], fit_scale);
            this_min[g] = pick(clamp, 0.0, fit_min);
        }
        let cur_error = qkx2_error::<N, G, MAD>(x, weights, &codes, &this_scale, &this_min);
        let mut better = [0u32; G];
        for g in 0..G {
            better[g] = mask(d[g] > 0.0 && cur_error[g] < best_error[g]);
        }
        select(&better, &iscale, &mut code_iscale);
        select(&better, &min, &mut code_min);
        select(&better, &cur_error, &mut best_error);
        select(&better, &this_scale, &mut scale);
        select(&better, &this_min, &mut min);
    }
    qkx2_codes(p.nmax, x, weights, &code_iscale, &code_min, &mut codes);
    let mut the_min = [0f32; G];
    for g in 0..G {
        let flat = max[g] == flat_min[g];
        scale[g] = pick(flat, 0.0, scale[g]);
        the_min[g] = pick(flat, -flat_min[g], -min[g]);
    }
    for (li, ci) in l.iter_mut().zip(&codes) {
        for g in 0..G {
            li[g] = if max[g] == flat_min[g] {
                0
            } else {
                ci[g] as u8
            };
        }
    }
    (scale, the_min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (0.49999997, 0),
            (3.7, 4),
            (-3.7, -4),
            (4194303.0, 4194303),
        ];
        for (f, want) in cases {
            assert_eq!(nearest_int(f), want, "{f}");
        }
    }

    #[test]
    fn c_conversion_matches_x86() {
        assert_eq!(c_float_to_int(16.9), 16);
        assert_eq!(c_float_to_int(-0.9), 0);
        assert_eq!(c_float_to_int(f32::INFINITY), i32::MIN);
        assert_eq!(c_float_to_int(f32::NAN), i32::MIN);
        assert_eq!(c_float_to_int(3e9), i32::MIN);
        for (f, want) in [
            (0.5, 1),
            (-0.5, -1),
            (1.5, 2),
            (2.5, 3),
            (-2.5, -3),
            (0.49999997, 0),
            (-126.49999, -126),
            (8388609.0, 8388609),
            (f32::INFINITY, i32::MIN),
        ] {
            assert_eq!(c_roundf_to_int(f), want, "{f}");
            if f.is_finite() {
                assert_eq!(c_roundf_to_int(f), f.round() as i32, "{f}");
            }
        }
    }

    #[test]
    fn qkx2_constant_group_is_all_zero_codes() {
        let p = Qkx2Search {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        let mut l = [[7u8; 2]; 4];
        // min is clamped to 0, so a negative constant keeps a non-zero min; the second group
        // is all zero.
        assert_eq!(
            make_qkx2_quants(&p, &[[-2.0, 0.0]; 4], &[[1.0; 2]; 4], &mut l),
            ([0.0; 2], [2.0, 0.0])
        );
        assert_eq!(l, [[0; 2]; 4]);
    }
}
