//! The legacy 32-element ggml blocks Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0: ports of
//! `quantize_row_q*_ref` and `dequantize_row_q*` from llama.cpp `ggml-quants.c`
//! (commit 0c1e57098bba), layouts from `ggml-common.h`.

use super::search::{c_float_to_int, c_roundf_to_int, signed_absmax};
use super::{impl_pod, F16Le, GgmlType, QuantBlock};

/// Elements per legacy block (`QK4_0` = `QK4_1` = `QK5_0` = `QK5_1` = `QK8_0`).
pub(crate) const QK: usize = 32;

/// `block_q4_0`: 32 values as `d * (q - 8)`, q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_0 {
    d: F16Le,
    /// Low nibble: element j, high nibble: element j + 16.
    qs: [u8; QK / 2],
}

/// `block_q4_1`: 32 values as `d * q + m`, q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_1 {
    d: F16Le,
    m: F16Le,
    qs: [u8; QK / 2],
}

/// `block_q5_0`: 32 values as `d * (q - 16)`, q in 0..32; bit 4 of each q lives in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_0 {
    d: F16Le,
    /// Little-endian u32, bit j = bit 4 of element j.
    qh: [u8; 4],
    qs: [u8; QK / 2],
}

/// `block_q5_1`: 32 values as `d * q + m`, q in 0..32; bit 4 of each q lives in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_1 {
    d: F16Le,
    m: F16Le,
    qh: [u8; 4],
    qs: [u8; QK / 2],
}

/// `block_q8_0`: 32 values as `d * q`, q in -127..=127.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    d: F16Le,
    qs: [i8; QK],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);
const _: () = assert!(size_of::<BlockQ8_0>() == 34);
impl_pod!(BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0);

#[inline(always)]
fn as_block(x: &[f32]) -> &[f32; QK] {
    x.try_into().expect("legacy block holds 32 values")
}

/// Smallest and largest element, starting from ±FLT_MAX as the C code does.
#[inline(always)]
fn min_max(x: &[f32; QK]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `d ? 1.0f/d : 0.0f`.
#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Byte j holds element j in the low nibble and element j + 16 in the high nibble. The Q4
/// reference ORs the codes unmasked, so this does not mask either.
#[inline(always)]
fn pack_nibbles(q: &[u8; QK]) -> [u8; QK / 2] {
    let mut qs = [0u8; QK / 2];
    for (j, b) in qs.iter_mut().enumerate() {
        *b = q[j] | (q[j + QK / 2] << 4);
    }
    qs
}

/// The 5-bit layout: low nibbles as [`pack_nibbles`] (masked, as the Q5 reference does) and
/// bit 4 of element j in bit j of `qh`.
#[inline(always)]
fn pack_q5(q: &[u8; QK]) -> ([u8; QK / 2], [u8; 4]) {
    let (mut qh, mut low) = (0u32, [0u8; QK]);
    for (j, (&c, l)) in q.iter().zip(low.iter_mut()).enumerate() {
        qh |= u32::from((c & 0x10) >> 4) << j;
        *l = c & 0x0f;
    }
    (pack_nibbles(&low), qh.to_le_bytes())
}

/// Code of element `j` (0..32) of a 4/5-bit block.
fn unpack_q45(qs: &[u8; QK / 2], qh: u32, j: usize) -> i32 {
    let half = j % (QK / 2);
    let nib = if j < QK / 2 {
        qs[half] & 0x0f
    } else {
        qs[half] >> 4
    };
    i32::from(nib) | (((qh >> j) & 1) << 4) as i32
}

impl QuantBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const ELEMS: usize = QK;

    #[inline(always)]
    fn quantize(x: &[f32]) -> Self {
        let x = as_block(x);
        let d = signed_absmax(x).0 / -8.0;
        let id = inverse(d);
        // `MIN(15, (int8_t)(x*id + 8.5f))`, stored into a uint8_t.
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (c_float_to_int(v * id + 8.5) as i8).min(15) as u8;
        }
        BlockQ4_0 {
            d: F16Le::from_f32(d),
            qs: pack_nibbles(&q),
        }
    }

    fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        for (j, y) in y.iter_mut().enumerate() {
            *y = (unpack_q45(&self.qs, 0, j) - 8) as f32 * d;
        }
    }
}

impl QuantBlock for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const ELEMS: usize = QK;

    #[inline(always)]
    fn quantize(x: &[f32]) -> Self {
        let x = as_block(x);
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (c_float_to_int((v - min) * id + 0.5) as i8).min(15) as u8;
        }
        BlockQ4_1 {
            d: F16Le::from_f32(d),
            m: F16Le::from_f32(min),
            qs: pack_nibbles(&q),
        }
    }

    fn dequantize(&self, y: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (j, y) in y.iter_mut().enumerate() {
            *y = unpack_q45(&self.qs, 0, j) as f32 * d + m;
        }
    }
}

impl QuantBlock for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const ELEMS: usize = QK;

    #[inline(always)]
    fn quantize(x: &[f32]) -> Self {
        let x = as_block(x);
        let d = signed_absmax(x).0 / -16.0;
        let id = inverse(d);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (c_float_to_int(v * id + 16.5) as i8).min(31) as u8;
        }
        let (qs, qh) = pack_q5(&q);
        BlockQ5_0 {
            d: F16Le::from_f32(d),
            qh,
            qs,
        }
    }

    fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for (j, y) in y.iter_mut().enumerate() {
            *y = (unpack_q45(&self.qs, qh, j) - 16) as f32 * d;
        }
    }
}

impl QuantBlock for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const ELEMS: usize = QK;

    #[inline(always)]
    fn quantize(x: &[f32]) -> Self {
        let x = as_block(x);
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        // No clamp here in the reference: `(uint8_t)(x + 0.5f)`.
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = c_float_to_int((v - min) * id + 0.5) as u8;
        }
        let (qs, qh) = pack_q5(&q);
        BlockQ5_1 {
            d: F16Le::from_f32(d),
            m: F16Le::from_f32(min),
            qh,
            qs,
        }
    }

    fn dequantize(&self, y: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        let qh = u32::from_le_bytes(self.qh);
        for (j, y) in y.iter_mut().enumerate() {
            *y = unpack_q45(&self.qs, qh, j) as f32 * d + m;
        }
    }
}

impl QuantBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const ELEMS: usize = QK;

    #[inline(always)]
    fn quantize(x: &[f32]) -> Self {
        let x = as_block(x);
        let mut amax = 0.0f32;
        for &v in x {
            amax = if amax > v.abs() { amax } else { v.abs() };
        }
        let d = amax / 127.0;
        let id = inverse(d);
        let mut qs = [0i8; QK];
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = c_roundf_to_int(v * id) as i8;
        }
        BlockQ8_0 {
            d: F16Le::from_f32(d),
            qs,
        }
    }

    fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        for (&q, y) in self.qs.iter().zip(y) {
            *y = f32::from(q) * d;
        }
    }
}
