//! The k-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (256-element super-blocks with quantized
//! sub-block scales): ports of `quantize_row_q*_K_ref` and `dequantize_row_q*_K` from llama.cpp
//! `ggml-quants.c` (commit 0c1e57098bba), layouts from `ggml-common.h`.
//!
//! These are the paths llama-quantize takes without an importance matrix
//! (`quantize_q*_K(..., quant_weights = NULL)` calls the `_ref` row functions).

use super::search::{
    make_q3_quants, make_qkx2_quants, make_qx_quants, nearest_int, Qkx2Search, GROUP_MAX_EPS,
};
use super::{impl_pod, F16Le, GgmlType, QuantBlock};

/// Elements per k-quant super-block (`QK_K`).
pub(crate) const QK_K: usize = 256;

/// `block_q2_K`: 16 groups of 16 as `d*sc*q - dmin*m`, q in 0..4, 4-bit sc and m.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ2K {
    /// Low nibble: group scale, high nibble: group min.
    scales: [u8; QK_K / 16],
    qs: [u8; QK_K / 4],
    d: F16Le,
    dmin: F16Le,
}

/// `block_q3_K`: 16 groups of 16 as `d*(sc-32)*(q-4)`, q in 0..8, 6-bit sc.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ3K {
    /// Bit 2 of each code: element j is bit j/32 of byte j%32.
    hmask: [u8; QK_K / 8],
    /// Low 2 bits of each code.
    qs: [u8; QK_K / 4],
    /// 16 six-bit scales: low nibbles in bytes 0..8, high bit pairs in bytes 8..12.
    scales: [u8; 12],
    d: F16Le,
}

/// `block_q4_K`: 8 groups of 32 as `d*sc*q - dmin*m`, q in 0..16, 6-bit sc and m.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4K {
    d: F16Le,
    dmin: F16Le,
    scales: [u8; 12],
    qs: [u8; QK_K / 2],
}

/// `block_q5_K`: as Q4_K with q in 0..32; bit 4 of each code in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5K {
    d: F16Le,
    dmin: F16Le,
    scales: [u8; 12],
    qh: [u8; QK_K / 8],
    qs: [u8; QK_K / 2],
}

/// `block_q6_K`: 16 groups of 16 as `d*sc*(q-32)`, q in 0..64, signed 8-bit sc.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6K {
    /// Low 4 bits of each code.
    ql: [u8; QK_K / 2],
    /// High 2 bits of each code.
    qh: [u8; QK_K / 4],
    scales: [i8; QK_K / 16],
    d: F16Le,
}

const _: () = assert!(size_of::<BlockQ2K>() == 84);
const _: () = assert!(size_of::<BlockQ3K>() == 110);
const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ5K>() == 176);
const _: () = assert!(size_of::<BlockQ6K>() == 210);
impl_pod!(BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K);

#[inline(always)]
fn as_block(x: &[f32]) -> &[f32; QK_K] {
    x.try_into().expect("k-quant block holds 256 values")
}

/// Groups whose scales are searched side by side (4 blocks of 8 groups, or 2 of 16): enough
/// independent in-order sums to keep the vector units busy.
const LANES: usize = 32;

/// Whole blocks of `x` in batches of [`LANES`] groups of `N` values, each with the batch's
/// values, its groups side by side as the scale searches take them (`t[i][g]` is value `i` of
/// group `g`; groups past the end of `x` are zero), and the batch's output blocks.
#[inline(always)]
fn batches<'a, B, const N: usize>(
    x: &'a [f32],
    out: &'a mut [B],
) -> impl Iterator<Item = (&'a [f32], [[f32; LANES]; N], &'a mut [B])> {
    x.chunks(LANES * N)
        .zip(out.chunks_mut(LANES * N / QK_K))
        .map(|(x, out)| {
            let mut t = [[0f32; LANES]; N];
            for (g, group) in x.chunks_exact(N).enumerate() {
                for (i, &v) in group.iter().enumerate() {
                    t[i][g] = v;
                }
            }
            (x, t, out)
        })
}

/// Block `b` of a batch: its values and the range of its groups.
#[inline(always)]
fn batch_block<const N: usize>(x: &[f32], b: usize) -> (&[f32; QK_K], std::ops::Range<usize>) {
    let groups = QK_K / N;
    (
        as_block(&x[b * QK_K..(b + 1) * QK_K]),
        b * groups..(b + 1) * groups,
    )
}

/// The codes of block `b` of a batch, in element order, from its groups side by side.
#[inline(always)]
fn block_codes<T: Copy + Default, const N: usize>(t: &[[T; LANES]; N], b: usize) -> [T; QK_K] {
    let first = b * (QK_K / N);
    let mut codes = [T::default(); QK_K];
    for (j, c) in codes.iter_mut().enumerate() {
        *c = t[j % N][first + j / N];
    }
    codes
}

/// One block quantized through the batched path.
#[inline(always)]
fn one_block<B: QuantBlock>(x: &[f32]) -> B {
    let mut block = [B::zeroed()];
    B::quantize_blocks(x, &mut block);
    block[0]
}

/// The 2-bit layout of Q2_K/Q3_K: per 128 elements, byte l of the 32-byte chunk holds elements
/// l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7.
#[inline(always)]
fn pack_2bit(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for (i, q) in qs.iter_mut().enumerate() {
        let (j, k) = (i / 32 * 128, i % 32);
        *q = l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
    }
    qs
}

/// All 256 codes of the [`pack_2bit`] layout.
fn unpack_2bit(qs: &[u8; QK_K / 4]) -> [u8; QK_K] {
    std::array::from_fn(|e| {
        let (chunk, k, shift) = (e / 128, e % 32, (e % 128) / 32 * 2);
        (qs[chunk * 32 + k] >> shift) & 3
    })
}

/// Q2_K's scale search (`make_qkx2_quants(16, 3, ..., -0.5, 0.1, 15, true)`).
const Q2K_SEARCH: Qkx2Search = Qkx2Search {
    nmax: 3,
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: true,
};

impl BlockQ2K {
    /// The block from its groups' fitted scales, mins and codes.
    #[inline(always)]
    fn finish(x: &[f32; QK_K], scales: &[f32], mins: &[f32], mut l: [u8; QK_K]) -> Self {
        const Q4SCALE: f32 = 15.0;
        let (mut max_scale, mut max_min) = (0f32, 0f32);
        for (&scale, &min) in scales.iter().zip(mins) {
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }

        let mut b = BlockQ2K {
            scales: [0; QK_K / 16],
            qs: [0; QK_K / 4],
            d: F16Le::ZERO,
            dmin: F16Le::ZERO,
        };
        // The C stores the int results into uint8_t, truncating.
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (sc, &s) in b.scales.iter_mut().zip(scales) {
                *sc = nearest_int(iscale * s) as u8;
            }
            b.d = F16Le::from_f32(max_scale / Q4SCALE);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (sc, &m) in b.scales.iter_mut().zip(mins) {
                *sc |= (nearest_int(iscale * m) << 4) as u8;
            }
            b.dmin = F16Le::from_f32(max_min / Q4SCALE);
        }

        // Re-quantize against the scales as stored (f16 d, 4-bit sc/m).
        let (d_all, dmin_all) = (b.d.to_f32(), b.dmin.to_f32());
        for j in 0..QK_K / 16 {
            let d = d_all * f32::from(b.scales[j] & 0xf);
            if d == 0.0 {
                continue;
            }
            let dm = dmin_all * f32::from(b.scales[j] >> 4);
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3) as u8;
            }
        }
        b.qs = pack_2bit(&l);
        b
    }
}

impl QuantBlock for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const ELEMS: usize = QK_K;

    fn quantize(x: &[f32]) -> Self {
        one_block(x)
    }

    #[inline(always)]
    fn quantize_blocks(x: &[f32], out: &mut [Self]) {
        for (x, xs, out) in batches::<_, 16>(x, out) {
            let mut weights = xs;
            for w in weights.iter_mut().flatten() {
                *w = w.abs();
            }
            let mut codes = [[0u8; LANES]; 16];
            let (scales, mins) = make_qkx2_quants(&Q2K_SEARCH, &xs, &weights, &mut codes);
            for (b, block) in out.iter_mut().enumerate() {
                let (x, g) = batch_block::<16>(x, b);
                *block = Self::finish(x, &scales[g.clone()], &mins[g], block_codes(&codes, b));
            }
        }
    }
    fn dequantize(&self, y: &mut [f32]) {
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        let codes = unpack_2bit(&self.qs);
        for ((y, c), &sc) in y
            .chunks_exact_mut(16)
            .zip(codes.chunks_exact(16))
            .zip(&self.scales)
        {
            let dl = d * f32::from(sc & 0xf);
            let ml = min * f32::from(sc >> 4);
            for (y, &c) in y.iter_mut().zip(c) {
                *y = dl * f32::from(c) - ml;
            }
        }
    }
}

/// Six-bit signed scale `j` (0..16) of a Q3_K block, offset removed.
#[inline(always)]
fn q3k_scale(scales: &[u8; 12], j: usize) -> i8 {
    let low = if j < 8 {
        scales[j] & 0xf
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i8 - 32
}

impl BlockQ3K {
    /// The block from its groups' fitted scales and codes.
    #[inline(always)]
    fn finish(x: &[f32; QK_K], scales: &[f32], mut l: [i8; QK_K]) -> Self {
        let (mut max_scale, mut amax) = (0f32, 0f32);
        for s in scales {
            if s.abs() > amax {
                amax = s.abs();
                max_scale = *s;
            }
        }

        let mut b = BlockQ3K {
            hmask: [0; QK_K / 8],
            qs: [0; QK_K / 4],
            scales: [0; 12],
            d: F16Le::ZERO,
        };
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                // `int8_t l = nearest_int(...)` truncates before clamping.
                let q = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    b.scales[j] = q & 0xf;
                } else {
                    b.scales[j - 8] |= (q & 0xf) << 4;
                }
                b.scales[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
            }
            b.d = F16Le::from_f32(1.0 / iscale);
        }

        let d_all = b.d.to_f32();
        for j in 0..QK_K / 16 {
            let d = d_all * f32::from(q3k_scale(&b.scales, j));
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int(x[16 * j + ii] / d).clamp(-4, 3) as i8 + 4;
            }
        }

        // Codes are 0..8 here: bit 2 goes to hmask, bits 0-1 to qs.
        let mut low = [0u8; QK_K];
        for (j, (&q, lo)) in l.iter().zip(low.iter_mut()).enumerate() {
            let q = q as u8;
            if q > 3 {
                b.hmask[j % 32] |= 1 << (j / 32);
            }
            *lo = q & 3;
        }
        b.qs = pack_2bit(&low);
        b
    }
}

impl QuantBlock for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const ELEMS: usize = QK_K;

    fn quantize(x: &[f32]) -> Self {
        one_block(x)
    }

    #[inline(always)]
    fn quantize_blocks(x: &[f32], out: &mut [Self]) {
        for (x, xs, out) in batches::<_, 16>(x, out) {
            let mut codes = [[0i8; LANES]; 16];
            let scales = make_q3_quants(4, &xs, &mut codes);
            for (b, block) in out.iter_mut().enumerate() {
                let (x, g) = batch_block::<16>(x, b);
                *block = Self::finish(x, &scales[g], block_codes(&codes, b));
            }
        }
    }
    fn dequantize(&self, y: &mut [f32]) {
        let d_all = self.d.to_f32();
        let codes = unpack_2bit(&self.qs);
        for (g, (y, c)) in y
            .chunks_exact_mut(16)
            .zip(codes.chunks_exact(16))
            .enumerate()
        {
            let dl = d_all * f32::from(q3k_scale(&self.scales, g));
            // Element 16g + i has its high bit at bit (16g + i) / 32 of hmask[(16g + i) % 32].
            let (bit, h0) = (g / 2, 16 * (g % 2));
            for ((y, &c), &h) in y.iter_mut().zip(c).zip(&self.hmask[h0..h0 + 16]) {
                let q = i32::from(c) - if (h >> bit) & 1 != 0 { 0 } else { 4 };
                *y = dl * q as f32;
            }
        }
    }
}

/// Six-bit scale and min `j` (0..8) of the Q4_K/Q5_K `scales` array (`get_scale_min_k4`).
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K and Q5_K, which share their scale search and scale packing.
trait K4Block: QuantBlock {
    /// The scale search.
    const SEARCH: Qkx2Search;
    /// The block from `d`, `dmin`, packed scales and mins, and codes in `0..=SEARCH.nmax`.
    fn pack(d: F16Le, dmin: F16Le, scales: [u8; 12], l: [u8; QK_K]) -> Self;
}

/// Q4_K or Q5_K blocks: the groups' weighted scale/min search, batched, then per block
/// [`k4_finish`].
#[inline(always)]
fn quantize_k4_blocks<B: K4Block>(x: &[f32], out: &mut [B]) {
    for (x, xs, out) in batches::<_, 32>(x, out) {
        let mut sum_x2 = [0f32; LANES];
        for xi in &xs {
            for g in 0..LANES {
                sum_x2[g] += xi[g] * xi[g];
            }
        }
        let mut weights = xs;
        for wi in &mut weights {
            for g in 0..LANES {
                wi[g] = (sum_x2[g] / 32.0).sqrt() + wi[g].abs();
            }
        }
        let mut codes = [[0u8; LANES]; 32];
        let (scales, mins) = make_qkx2_quants(&B::SEARCH, &xs, &weights, &mut codes);
        for (b, block) in out.iter_mut().enumerate() {
            let (x, g) = batch_block::<32>(x, b);
            let (d, dmin, packed, l) = k4_finish(
                x,
                &scales[g.clone()],
                &mins[g],
                block_codes(&codes, b),
                B::SEARCH.nmax,
            );
            *block = B::pack(d, dmin, packed, l);
        }
    }
}

/// What Q4_K and Q5_K share after the search: 6-bit packing of the groups' scales and mins,
/// and re-quantization of the codes against the stored values. Returns `(d, dmin, scales,
/// codes)` with codes in `0..=nmax`.
#[inline(always)]
fn k4_finish(
    x: &[f32; QK_K],
    scales: &[f32],
    mins: &[f32],
    mut l: [u8; QK_K],
    nmax: i32,
) -> (F16Le, F16Le, [u8; 12], [u8; QK_K]) {
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for (&scale, &min) in scales.iter().zip(mins) {
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..QK_K / 32 {
        // `uint8_t ls = nearest_int(...)` truncates before the clamp.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = F16Le::from_f32(max_scale / 63.0);
    let dmin = F16Le::from_f32(max_min / 63.0);

    for j in 0..QK_K / 32 {
        let (sc, m) = scale_min_k4(j, &packed);
        let dj = d.to_f32() * f32::from(sc);
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m);
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

/// Scale and min of the two 32-groups dequantized together from 64-element chunk `chunk`.
fn k4_chunk_scales(d: F16Le, dmin: F16Le, scales: &[u8; 12], chunk: usize) -> [(f32, f32); 2] {
    let (d, min) = (d.to_f32(), dmin.to_f32());
    [0, 1].map(|h| {
        let (sc, m) = scale_min_k4(2 * chunk + h, scales);
        (d * f32::from(sc), min * f32::from(m))
    })
}

impl K4Block for BlockQ4K {
    const SEARCH: Qkx2Search = Qkx2Search {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };

    #[inline(always)]
    fn pack(d: F16Le, dmin: F16Le, scales: [u8; 12], l: [u8; QK_K]) -> Self {
        // Per 64 elements: 32 bytes, low nibble element l, high nibble element l + 32.
        let mut qs = [0u8; QK_K / 2];
        for (i, q) in qs.iter_mut().enumerate() {
            let (j, k) = (i / 32 * 64, i % 32);
            *q = l[j + k] | (l[j + k + 32] << 4);
        }
        BlockQ4K {
            d,
            dmin,
            scales,
            qs,
        }
    }
}

impl QuantBlock for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const ELEMS: usize = QK_K;

    fn quantize(x: &[f32]) -> Self {
        one_block(x)
    }

    #[inline(always)]
    fn quantize_blocks(x: &[f32], out: &mut [Self]) {
        quantize_k4_blocks(x, out)
    }

    fn dequantize(&self, y: &mut [f32]) {
        for (chunk, y) in y.chunks_exact_mut(64).enumerate() {
            let [(d1, m1), (d2, m2)] = k4_chunk_scales(self.d, self.dmin, &self.scales, chunk);
            let q = &self.qs[32 * chunk..32 * chunk + 32];
            let (lo, hi) = y.split_at_mut(32);
            for ((&q, lo), hi) in q.iter().zip(lo).zip(hi) {
                *lo = d1 * f32::from(q & 0xf) - m1;
                *hi = d2 * f32::from(q >> 4) - m2;
            }
        }
    }
}

impl K4Block for BlockQ5K {
    const SEARCH: Qkx2Search = Qkx2Search {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };

    #[inline(always)]
    fn pack(d: F16Le, dmin: F16Le, scales: [u8; 12], l: [u8; QK_K]) -> Self {
        // As Q4_K for the low nibbles; bit 4 of element 64c + l goes to bit 2c of qh[l] and of
        // element 64c + 32 + l to bit 2c + 1.
        let mut qh = [0u8; QK_K / 8];
        let mut qs = [0u8; QK_K / 2];
        for chunk in 0..QK_K / 64 {
            for k in 0..32 {
                let (l1, l2) = (l[64 * chunk + k], l[64 * chunk + k + 32]);
                qh[k] |= ((l1 >> 4) << (2 * chunk)) | ((l2 >> 4) << (2 * chunk + 1));
                qs[32 * chunk + k] = (l1 & 0xf) | ((l2 & 0xf) << 4);
            }
        }
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
    }
}

impl QuantBlock for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const ELEMS: usize = QK_K;

    fn quantize(x: &[f32]) -> Self {
        one_block(x)
    }

    #[inline(always)]
    fn quantize_blocks(x: &[f32], out: &mut [Self]) {
        quantize_k4_blocks(x, out)
    }

    fn dequantize(&self, y: &mut [f32]) {
        for (chunk, y) in y.chunks_exact_mut(64).enumerate() {
            let [(d1, m1), (d2, m2)] = k4_chunk_scales(self.d, self.dmin, &self.scales, chunk);
            let q = &self.qs[32 * chunk..32 * chunk + 32];
            let (lo, hi) = y.split_at_mut(32);
            for (k, ((&q, lo), hi)) in q.iter().zip(lo).zip(hi).enumerate() {
                let h1 = if self.qh[k] & (1 << (2 * chunk)) != 0 {
                    16
                } else {
                    0
                };
                let h2 = if self.qh[k] & (2 << (2 * chunk)) != 0 {
                    16
                } else {
                    0
                };
                *lo = d1 * f32::from((q & 0xf) + h1) - m1;
                *hi = d2 * f32::from((q >> 4) + h2) - m2;
            }
        }
    }
}

impl BlockQ6K {
    /// The block from its groups' fitted scales and codes.
    #[inline(always)]
    fn finish(x: &[f32; QK_K], scales: &[f32], mut l: [i8; QK_K]) -> Self {
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for &scale in scales {
            if scale.abs() > max_abs_scale {
                max_abs_scale = scale.abs();
                max_scale = scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            return BlockQ6K {
                ql: [0; QK_K / 2],
                qh: [0; QK_K / 4],
                scales: [0; QK_K / 16],
                d: F16Le::ZERO,
            };
        }

        let iscale = -128.0 / max_scale;
        let d = F16Le::from_f32(1.0 / iscale);
        // `MIN(127, nearest_int(...))` stored into int8_t, truncating.
        let mut sc = [0i8; QK_K / 16];
        for (c, &s) in sc.iter_mut().zip(scales) {
            *c = nearest_int(iscale * s).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            let dj = d.to_f32() * f32::from(sc[j]);
            if dj == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dj).clamp(-32, 31) + 32) as i8;
            }
        }

        // Per 128 elements: ql byte k holds elements k (low) and k+64 (high), byte k+32 holds
        // k+32 and k+96; qh byte k holds bits 4-5 of k, k+32, k+64, k+96.
        let mut ql = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 4];
        for half in 0..QK_K / 128 {
            let q = &l[128 * half..128 * (half + 1)];
            let q = |i: usize| q[i] as u8;
            for k in 0..32 {
                ql[64 * half + k] = (q(k) & 0xf) | ((q(k + 64) & 0xf) << 4);
                ql[64 * half + k + 32] = (q(k + 32) & 0xf) | ((q(k + 96) & 0xf) << 4);
                qh[32 * half + k] = (q(k) >> 4)
                    | ((q(k + 32) >> 4) << 2)
                    | ((q(k + 64) >> 4) << 4)
                    | ((q(k + 96) >> 4) << 6);
            }
        }
        BlockQ6K {
            ql,
            qh,
            scales: sc,
            d,
        }
    }
}

impl QuantBlock for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const ELEMS: usize = QK_K;

    fn quantize(x: &[f32]) -> Self {
        one_block(x)
    }

    #[inline(always)]
    fn quantize_blocks(x: &[f32], out: &mut [Self]) {
        for (x, xs, out) in batches::<_, 16>(x, out) {
            let mut codes = [[0i8; LANES]; 16];
            let scales = make_qx_quants(32, &xs, &mut codes);
            for (b, block) in out.iter_mut().enumerate() {
                let (x, g) = batch_block::<16>(x, b);
                *block = Self::finish(x, &scales[g], block_codes(&codes, b));
            }
        }
    }
    fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        for (half, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &self.ql[64 * half..64 * half + 64];
            let qh = &self.qh[32 * half..32 * half + 32];
            let sc = &self.scales[8 * half..8 * half + 8];
            for k in 0..32 {
                let is = k / 16;
                let codes = [
                    (ql[k] & 0xf) | ((qh[k] & 3) << 4),
                    (ql[k + 32] & 0xf) | (((qh[k] >> 2) & 3) << 4),
                    (ql[k] >> 4) | (((qh[k] >> 4) & 3) << 4),
                    (ql[k + 32] >> 4) | (((qh[k] >> 6) & 3) << 4),
                ];
                for (quarter, &c) in codes.iter().enumerate() {
                    let q = c as i8 - 32;
                    y[32 * quarter + k] = d * f32::from(sc[is + 2 * quarter]) * f32::from(q);
                }
            }
        }
    }
}
