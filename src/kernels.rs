//! Hot inner loops, with CPU-feature dispatch where a feature makes them faster. Every path
//! computes the same bits; only the speed differs.

/// `acc[i] = fma(l, r[i], acc[i])`: multiply-add with a single rounding, as torch's CPU matmul
/// accumulates (see `lora::merge`).
pub fn fma_axpy(acc: &mut [f32], l: f32, r: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the features the function was compiled for.
        return unsafe { fma_axpy_avx2(acc, l, r) };
    }
    // An f32 product is exact in f64, so one f64 add rounds like a fused multiply-add, except
    // when that sum lands exactly on an f32 rounding midpoint (double rounding, about 2^-29 of
    // steps, invisible after rounding to 16 bits). It vectorizes on every target, wasm included.
    let l = f64::from(l);
    for (a, &x) in acc.iter_mut().zip(r) {
        *a = (l * f64::from(x) + f64::from(*a)) as f32;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_axpy_avx2(acc: &mut [f32], l: f32, r: &[f32]) {
    for (a, &x) in acc.iter_mut().zip(r) {
        *a = l.mul_add(x, *a);
    }
}

/// A hot loop to compile for the best instruction set extensions the CPU has; see [`run`].
pub trait Kernel {
    /// What the computation returns.
    type Output;
    /// The computation. Mark it `#[inline(always)]`, along with everything it calls that should
    /// benefit: only code inlined into [`run`] is compiled for the extensions.
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX2 and FMA when the CPU has them (x86-64), else for the
/// baseline target. Rust never fuses a multiply and an add unless asked (`mul_add`), and vector
/// instructions round like scalar ones, so the extensions change speed, never bits.
pub fn run<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { run_avx2_fma(kernel) };
    }
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2_fma<K: Kernel>(kernel: K) -> K::Output {
    kernel.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_true_fused_multiply_add() {
        let mut s = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            f32::from_bits(0x3c00_0000 | (s as u32 & 0x01ff_ffff))
                * if s & (1 << 40) != 0 { -1.0 } else { 1.0 }
        };
        let r: Vec<f32> = (0..4099).map(|_| next()).collect();
        let mut acc: Vec<f32> = (0..4099).map(|_| next()).collect();
        let l = next();
        let expected: Vec<f32> = acc.iter().zip(&r).map(|(&a, &x)| l.mul_add(x, a)).collect();
        fma_axpy(&mut acc, l, &r);
        assert_eq!(acc, expected);
    }
}
