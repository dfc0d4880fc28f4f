//! Numeric helpers shared by the quantizers: C's float-to-int conversions, and the k-quant scale
//! searches ported from llama.cpp `ggml-quants.c` (commit 0c1e57098bba): `nearest_int`,
//! `make_qx_quants`, `make_q3_quants` and `make_qkx2_quants`, restricted to the argument
//! combinations the reference quantizers use.
//!
//! Operation order, `f32` literals and int/float conversions follow the C code exactly;
//! reordering a sum or fusing a multiply-add would change the chosen scales.

/// Groups whose largest magnitude is below this are stored as all zeros (`GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Trial inverse scales evaluated side by side by the sweeps below. Each trial keeps its own
/// accumulators, summed in the original element order, so results are unchanged; running
/// several at once lets the compiler use SIMD lanes instead of waiting on one addition chain.
const LANES: usize = 4;

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

/// `make_qx_quants(N, nmax, x, L, rmse_type = 1, NULL)`: symmetric quantization to
/// `[-nmax, nmax)` with x² weights, refined over 18 nearby inverse scales. Writes `L + nmax`
/// into `l` and returns the scale.
pub(crate) fn make_qx_quants<const N: usize>(nmax: i32, x: &[f32; N], l: &mut [i8; N]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        *l = [0; N];
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let iscale = -nmaxf / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (&xi, li) in x.iter().zip(l.iter_mut()) {
        let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *li = (q + nmax) as i8;
        let w = xi * xi;
        sumlx += w * xi * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;

    // The 18 refinements are independent until the in-order "better than best" test.
    const STEPS: [i32; 18] = [
        -9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ];
    let mut cand = [[0i8; LANES]; N];
    for steps in STEPS.chunks(LANES) {
        // Lanes past the end of the last chunk repeat a step and are ignored.
        let iscale: [f32; LANES] = std::array::from_fn(|k| {
            let is = steps.get(k).copied().unwrap_or(steps[0]);
            -(nmaxf + 0.1f32 * is as f32) / max
        });
        let (mut sumlx, mut suml2) = ([0f32; LANES], [0f32; LANES]);
        for (&xi, c) in x.iter().zip(cand.iter_mut()) {
            let w = xi * xi;
            for k in 0..LANES {
                let q = nearest_int(iscale[k] * xi).clamp(-nmax, nmax - 1);
                c[k] = (q + nmax) as i8;
                let qf = q as f32;
                sumlx[k] += w * xi * qf;
                suml2[k] += w * qf * qf;
            }
        }
        for k in 0..steps.len() {
            if suml2[k] > 0.0 && sumlx[k] * sumlx[k] > best * suml2[k] {
                for (li, c) in l.iter_mut().zip(cand.iter()) {
                    *li = c[k];
                }
                scale = sumlx[k] / suml2[k];
                best = scale * sumlx[k];
            }
        }
    }
    scale
}

/// `make_q3_quants(N, nmax, x, L, do_rmse = true)`: symmetric quantization to `[-nmax, nmax)`
/// followed by up to 5 rounds of per-element coordinate descent on the x²-weighted error.
/// Writes `L + nmax` into `l` and returns the scale.
pub(crate) fn make_q3_quants<const N: usize>(nmax: i32, x: &[f32; N], l: &mut [i8; N]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        *l = [0; N];
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (&xi, li) in x.iter().zip(l.iter_mut()) {
        let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *li = q as i8;
        let w = xi * xi;
        sumlx += w * xi * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (&xi, li) in x.iter().zip(l.iter_mut()) {
            let w = xi * xi;
            let cur = f32::from(*li);
            let mut slx = sumlx - w * xi * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(xi * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*li) {
                    let nl = new_l as f32;
                    slx += w * xi * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for li in l.iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of the `make_qkx2_quants` inverse-scale sweep.
pub(crate) struct Qkx2Search {
    /// Largest code.
    pub nmax: i32,
    /// Offset of the first trial inverse scale (`rmin`).
    pub rmin: f32,
    /// Step between trial inverse scales (`rdelta`).
    pub rdelta: f32,
    /// Number of steps after the first (`nstep`).
    pub nstep: i32,
    /// Weighted absolute error instead of squared (`use_mad`).
    pub use_mad: bool,
}

/// `make_qkx2_quants`: asymmetric quantization `x ≈ scale·L - the_min` with codes in
/// `[0, nmax]`, picking the weighted least-squares scale/min over a sweep of inverse scales.
/// Writes the codes into `l` and returns `(scale, the_min)`.
///
/// A trial depends on the earlier ones through `min`, which changes when a trial is accepted.
/// So [`LANES`] trials are computed speculatively with the current `min` and then judged in
/// order; after an acceptance the remaining lanes are discarded and the sweep resumes from the
/// next trial with the new `min`, exactly as the sequential loop would.
pub(crate) fn make_qkx2_quants<const N: usize>(
    p: &Qkx2Search,
    x: &[f32; N],
    weights: &[f32; N],
    l: &mut [u8; N],
) -> (f32, f32) {
    if p.use_mad {
        qkx2::<N, true>(p, x, weights, l)
    } else {
        qkx2::<N, false>(p, x, weights, l)
    }
}

#[inline(always)]
fn qkx2<const N: usize, const MAD: bool>(
    p: &Qkx2Search,
    x: &[f32; N],
    weights: &[f32; N],
    l: &mut [u8; N],
) -> (f32, f32) {
    let err = |diff: f32| if MAD { diff.abs() } else { diff * diff };
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&xi, &w) in x.iter().zip(weights).skip(1) {
        if xi < min {
            min = xi;
        }
        if xi > max {
            max = xi;
        }
        sum_w += w;
        sum_x += w * xi;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        *l = [0; N];
        return (0.0, -min);
    }
    let nmaxf = p.nmax as f32;

    let iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for ((&xi, &w), li) in x.iter().zip(weights).zip(l.iter_mut()) {
        let q = nearest_int(iscale * (xi - min)).clamp(0, p.nmax);
        *li = q as u8;
        best_error += w * err(scale * q as f32 + min - xi);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }

    let mut laux = [[0u8; LANES]; N];
    let mut first = 0;
    while first <= p.nstep {
        let (x_min, range) = (min, max - min);
        let iscale: [f32; LANES] = std::array::from_fn(|k| {
            (p.rmin + p.rdelta * (first + k as i32) as f32 + nmaxf) / range
        });
        let (mut sum_l, mut sum_l2, mut sum_xl) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
        for ((&xi, &w), la) in x.iter().zip(weights).zip(laux.iter_mut()) {
            for k in 0..LANES {
                let q = nearest_int(iscale[k] * (xi - x_min)).clamp(0, p.nmax);
                la[k] = q as u8;
                let qf = q as f32;
                sum_l[k] += w * qf;
                sum_l2[k] += w * qf * qf;
                sum_xl[k] += w * qf * xi;
            }
        }
        let d: [f32; LANES] = std::array::from_fn(|k| sum_w * sum_l2[k] - sum_l[k] * sum_l[k]);
        let mut this_scale: [f32; LANES] =
            std::array::from_fn(|k| (sum_w * sum_xl[k] - sum_x * sum_l[k]) / d[k]);
        let mut this_min: [f32; LANES] =
            std::array::from_fn(|k| (sum_l2[k] * sum_x - sum_l[k] * sum_xl[k]) / d[k]);
        for k in 0..LANES {
            if this_min[k] > 0.0 {
                this_min[k] = 0.0;
                this_scale[k] = sum_xl[k] / sum_l2[k];
            }
        }
        // Only meaningful where d > 0; other lanes are computed and ignored.
        let mut cur_error = [0f32; LANES];
        for ((&xi, &w), la) in x.iter().zip(weights).zip(laux.iter()) {
            for k in 0..LANES {
                cur_error[k] += w * err(this_scale[k] * f32::from(la[k]) + this_min[k] - xi);
            }
        }
        let mut next = first + LANES as i32;
        for k in 0..LANES {
            let trial = first + k as i32;
            if trial <= p.nstep && d[k] > 0.0 && cur_error[k] < best_error {
                for (li, la) in l.iter_mut().zip(laux.iter()) {
                    *li = la[k];
                }
                best_error = cur_error[k];
                scale = this_scale[k];
                min = this_min[k];
                next = trial + 1;
                break;
            }
        }
        first = next;
    }
    (scale, -min)
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
        let mut l = [7u8; 4];
        // min is clamped to 0, so a negative constant keeps a non-zero min.
        assert_eq!(
            make_qkx2_quants(&p, &[-2.0; 4], &[1.0; 4], &mut l),
            (0.0, 2.0)
        );
        assert_eq!(l, [0; 4]);
    }
}
