//! ggml tensor element types (F32/F16/BF16, the legacy 32-element blocks and the 256-element
//! k-quants), bit-exact with llama.cpp's reference (non-imatrix) quantizers, plus
//! llama-quantize's per-tensor type choice ([`mix`]).
//!
//! Every quantizer is a port of llama.cpp `ggml/src/ggml-quants.c` at commit 0c1e57098bba
//! (`quantize_row_*_ref`, `dequantize_row_*`). That file is built with plain `-O3` and no
//! `-march`, so no FMA contraction happens there; the ports therefore use plain `f32`
//! arithmetic in the same operation order (never `mul_add`) and produce identical bytes.
//!
//! Input must be finite. llama.cpp's reference code does not check for NaN/Inf and neither do
//! these ports beyond a debug assertion; callers reject non-finite tensors before quantizing.
//! Finite but extreme inputs (e.g. 1e30, or blocks below 1e-38 whose inverse scale overflows)
//! reproduce what the x86-64 build of llama.cpp writes, including its float-to-integer
//! conversion of out-of-range values (see `search::c_float_to_int`).

mod kquants;
mod legacy;
pub mod mix;
mod search;

pub use kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};

use crate::kernels::Kernel;
use std::fmt;

/// A ggml tensor element type that this crate can write and read.
///
/// Variant names follow ggml's `GGML_TYPE_*` spelling.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
    /// 4-bit, 32-element blocks with an f16 scale.
    Q4_0,
    /// 4-bit, 32-element blocks with f16 scale and minimum.
    Q4_1,
    /// 5-bit, 32-element blocks with an f16 scale.
    Q5_0,
    /// 5-bit, 32-element blocks with f16 scale and minimum.
    Q5_1,
    /// 8-bit, 32-element blocks with an f16 scale.
    Q8_0,
    /// 2-bit k-quant, 256-element super-blocks.
    Q2_K,
    /// 3-bit k-quant, 256-element super-blocks.
    Q3_K,
    /// 4-bit k-quant, 256-element super-blocks.
    Q4_K,
    /// 5-bit k-quant, 256-element super-blocks.
    Q5_K,
    /// 6-bit k-quant, 256-element super-blocks.
    Q6_K,
}

impl GgmlType {
    /// Every supported type, in ggml type-id order.
    pub const ALL: [GgmlType; 13] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::BF16,
    ];

    /// The `ggml_type` id stored in GGUF tensor infos (`ggml.h`).
    pub const fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// The type with ggml type id `id`, if supported.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The name llama.cpp prints for this type (`ggml_type_name`, e.g. `"q4_K"`).
    pub const fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "f32",
            GgmlType::F16 => "f16",
            GgmlType::BF16 => "bf16",
            GgmlType::Q4_0 => "q4_0",
            GgmlType::Q4_1 => "q4_1",
            GgmlType::Q5_0 => "q5_0",
            GgmlType::Q5_1 => "q5_1",
            GgmlType::Q8_0 => "q8_0",
            GgmlType::Q2_K => "q2_K",
            GgmlType::Q3_K => "q3_K",
            GgmlType::Q4_K => "q4_K",
            GgmlType::Q5_K => "q5_K",
            GgmlType::Q6_K => "q6_K",
        }
    }

    /// Number of elements per block (1 for the float types).
    pub const fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                legacy::QK
            }
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                kquants::QK_K
            }
        }
    }

    /// Bytes per block.
    pub const fn type_size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => size_of::<BlockQ4_0>(),
            GgmlType::Q4_1 => size_of::<BlockQ4_1>(),
            GgmlType::Q5_0 => size_of::<BlockQ5_0>(),
            GgmlType::Q5_1 => size_of::<BlockQ5_1>(),
            GgmlType::Q8_0 => size_of::<BlockQ8_0>(),
            GgmlType::Q2_K => size_of::<BlockQ2K>(),
            GgmlType::Q3_K => size_of::<BlockQ3K>(),
            GgmlType::Q4_K => size_of::<BlockQ4K>(),
            GgmlType::Q5_K => size_of::<BlockQ5K>(),
            GgmlType::Q6_K => size_of::<BlockQ6K>(),
        }
    }

    /// Whether this is a block-quantized type (`ggml_is_quantized`).
    pub const fn is_quantized(self) -> bool {
        !matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// Storage bits per weight, e.g. 4.5 for Q4_K.
    pub fn bits_per_weight(self) -> f64 {
        (self.type_size() * 8) as f64 / self.block_size() as f64
    }

    /// Bytes taken by `n` consecutive elements, or `None` when `n` is not a multiple of the
    /// block size (`ggml_row_size`).
    pub const fn row_bytes(self, n: usize) -> Option<usize> {
        if n.is_multiple_of(self.block_size()) {
            Some(n / self.block_size() * self.type_size())
        } else {
            None
        }
    }

    /// Converts `src` to this type's bytes, exactly as `ggml_quantize_chunk` does without an
    /// importance matrix.
    ///
    /// `src` may hold any number of whole blocks (one row, several rows, a whole tensor): blocks
    /// are independent. `src` must be finite (checked only in debug builds).
    ///
    /// # Panics
    /// If `src.len()` is not a multiple of [`Self::block_size`] or `dst.len()` differs from
    /// `row_bytes(src.len())`.
    pub fn quantize_row(self, src: &[f32], dst: &mut [u8]) {
        self.check_lengths(src.len(), dst.len());
        debug_assert!(
            src.iter().all(|v| v.is_finite()),
            "ggml quantization input must be finite"
        );
        match self {
            GgmlType::F32 => {
                for (x, o) in src.iter().zip(dst.chunks_exact_mut(4)) {
                    o.copy_from_slice(&x.to_le_bytes());
                }
            }
            GgmlType::F16 => {
                for (&x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
                    o.copy_from_slice(&f32_to_f16_bits(x).to_le_bytes());
                }
            }
            GgmlType::BF16 => {
                for (&x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
                    o.copy_from_slice(&f32_to_bf16_bits(x).to_le_bytes());
                }
            }
            GgmlType::Q4_0 => quantize_blocks::<BlockQ4_0>(src, dst),
            GgmlType::Q4_1 => quantize_blocks::<BlockQ4_1>(src, dst),
            GgmlType::Q5_0 => quantize_blocks::<BlockQ5_0>(src, dst),
            GgmlType::Q5_1 => quantize_blocks::<BlockQ5_1>(src, dst),
            GgmlType::Q8_0 => quantize_blocks::<BlockQ8_0>(src, dst),
            GgmlType::Q2_K => quantize_blocks::<BlockQ2K>(src, dst),
            GgmlType::Q3_K => quantize_blocks::<BlockQ3K>(src, dst),
            GgmlType::Q4_K => quantize_blocks::<BlockQ4K>(src, dst),
            GgmlType::Q5_K => quantize_blocks::<BlockQ5K>(src, dst),
            GgmlType::Q6_K => quantize_blocks::<BlockQ6K>(src, dst),
        }
    }

    /// Converts this type's bytes back to f32, exactly as ggml's `to_float` does.
    ///
    /// # Panics
    /// If `dst.len()` is not a multiple of [`Self::block_size`] or `src.len()` differs from
    /// `row_bytes(dst.len())`.
    pub fn dequantize_row(self, src: &[u8], dst: &mut [f32]) {
        self.check_lengths(dst.len(), src.len());
        match self {
            GgmlType::F32 => {
                for (b, y) in src.chunks_exact(4).zip(dst) {
                    *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            GgmlType::F16 => {
                for (b, y) in src.chunks_exact(2).zip(dst) {
                    *y = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            GgmlType::BF16 => {
                for (b, y) in src.chunks_exact(2).zip(dst) {
                    *y = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
                }
            }
            GgmlType::Q4_0 => dequantize_blocks::<BlockQ4_0>(src, dst),
            GgmlType::Q4_1 => dequantize_blocks::<BlockQ4_1>(src, dst),
            GgmlType::Q5_0 => dequantize_blocks::<BlockQ5_0>(src, dst),
            GgmlType::Q5_1 => dequantize_blocks::<BlockQ5_1>(src, dst),
            GgmlType::Q8_0 => dequantize_blocks::<BlockQ8_0>(src, dst),
            GgmlType::Q2_K => dequantize_blocks::<BlockQ2K>(src, dst),
            GgmlType::Q3_K => dequantize_blocks::<BlockQ3K>(src, dst),
            GgmlType::Q4_K => dequantize_blocks::<BlockQ4K>(src, dst),
            GgmlType::Q5_K => dequantize_blocks::<BlockQ5K>(src, dst),
            GgmlType::Q6_K => dequantize_blocks::<BlockQ6K>(src, dst),
        }
    }

    fn check_lengths(self, n_elems: usize, n_bytes: usize) {
        match self.row_bytes(n_elems) {
            Some(b) if b == n_bytes => {}
            Some(b) => panic!(
                "{}: {n_elems} elements take {b} bytes, buffer has {n_bytes}",
                self.name()
            ),
            None => panic!(
                "{}: {n_elems} elements is not a multiple of the block size {}",
                self.name(),
                self.block_size()
            ),
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One quantization block of a ggml type, laid out exactly as in `ggml-common.h`.
///
/// Blocks are plain little-endian byte structures with alignment 1, so a byte buffer of whole
/// blocks can be viewed as `[Self]` with [`bytemuck::cast_slice`].
pub trait QuantBlock: bytemuck::Pod {
    /// The ggml type these blocks make up.
    const TYPE: GgmlType;
    /// Number of values one block holds.
    const ELEMS: usize;
    /// Quantizes exactly [`Self::ELEMS`] finite values.
    fn quantize(x: &[f32]) -> Self;
    /// Quantizes `out.len()` consecutive blocks of finite values, `x.len() == out.len() *
    /// ELEMS` (types whose scale search runs several blocks at once override it).
    #[inline(always)]
    fn quantize_blocks(x: &[f32], out: &mut [Self]) {
        for (x, b) in x.chunks_exact(Self::ELEMS).zip(out) {
            *b = Self::quantize(x);
        }
    }
    /// Writes the block's [`Self::ELEMS`] values into `y`.
    fn dequantize(&self, y: &mut [f32]);
}

/// Quantizes whole blocks, compiled for the CPU's extensions (one kernel per block type keeps
/// each small enough for the compiler to vectorize well).
fn quantize_blocks<B: QuantBlock>(src: &[f32], dst: &mut [u8]) {
    crate::kernels::run(QuantizeBlocks::<B> {
        src,
        dst: bytemuck::cast_slice_mut(dst),
    });
}

/// The work of [`quantize_blocks`].
struct QuantizeBlocks<'a, B> {
    src: &'a [f32],
    dst: &'a mut [B],
}

impl<B: QuantBlock> Kernel for QuantizeBlocks<'_, B> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        B::quantize_blocks(self.src, self.dst)
    }
}

fn dequantize_blocks<B: QuantBlock>(src: &[u8], dst: &mut [f32]) {
    let blocks: &[B] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(B::ELEMS)) {
        b.dequantize(y);
    }
}

/// f32 -> f16 bits as `GGML_FP32_TO_FP16`: round to nearest even; NaN becomes `0x7E00` with
/// the sign kept (half would keep payload bits instead).
#[inline(always)]
fn f32_to_f16_bits(x: f32) -> u16 {
    if x.is_nan() {
        ((x.to_bits() >> 16) as u16 & 0x8000) | 0x7e00
    } else {
        half::f16::from_f32(x).to_bits()
    }
}

/// f32 -> bf16 bits as `ggml_compute_fp32_to_bf16` (and gguf-py): round to nearest even,
/// NaN forced quiet.
fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// An f16 stored as two little-endian bytes, so blocks keep alignment 1 and ggml's byte
/// layout on any host.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct F16Le([u8; 2]);

impl F16Le {
    const ZERO: F16Le = F16Le([0; 2]);

    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        F16Le(f32_to_f16_bits(x).to_le_bytes())
    }

    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::from_bits(u16::from_le_bytes(self.0)).to_f32()
    }
}

/// Implements `bytemuck::{Zeroable, Pod}` for block structs.
///
/// Each block is `#[repr(C)]` and built only from `u8`/`i8` arrays and [`F16Le`] (alignment 1),
/// so it has no padding and every bit pattern is valid; the compile-time size assertions next to
/// each struct check the no-padding part.
macro_rules! impl_pod {
    ($($t:ty),*) => {$(
        // SAFETY: see the macro's doc comment.
        unsafe impl bytemuck::Zeroable for $t {}
        // SAFETY: see the macro's doc comment.
        unsafe impl bytemuck::Pod for $t {}
    )*};
}
use impl_pod;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ids_match_ggml() {
        let expect = [
            (GgmlType::F32, 0, 1, 4),
            (GgmlType::F16, 1, 1, 2),
            (GgmlType::Q4_0, 2, 32, 18),
            (GgmlType::Q4_1, 3, 32, 20),
            (GgmlType::Q5_0, 6, 32, 22),
            (GgmlType::Q5_1, 7, 32, 24),
            (GgmlType::Q8_0, 8, 32, 34),
            (GgmlType::Q2_K, 10, 256, 84),
            (GgmlType::Q3_K, 11, 256, 110),
            (GgmlType::Q4_K, 12, 256, 144),
            (GgmlType::Q5_K, 13, 256, 176),
            (GgmlType::Q6_K, 14, 256, 210),
            (GgmlType::BF16, 30, 1, 2),
        ];
        for (t, id, bs, ts) in expect {
            assert_eq!((t.id(), t.block_size(), t.type_size()), (id, bs, ts), "{t}");
            assert_eq!(GgmlType::from_id(id), Some(t));
        }
        assert_eq!(GgmlType::Q4_K.bits_per_weight(), 4.5);
        assert_eq!(GgmlType::Q6_K.bits_per_weight(), 6.5625);
        assert_eq!(GgmlType::Q4_K.row_bytes(4096), Some(16 * 144));
        assert_eq!(GgmlType::Q4_K.row_bytes(4000), None);
        assert_eq!(GgmlType::from_id(4), None);
    }

    #[test]
    fn block_traits_agree_with_types() {
        fn check<B: QuantBlock>() {
            assert_eq!(B::TYPE.block_size(), B::ELEMS, "{}", B::TYPE);
            assert_eq!(B::TYPE.type_size(), size_of::<B>(), "{}", B::TYPE);
            assert_eq!(align_of::<B>(), 1, "{}", B::TYPE);
        }
        check::<BlockQ4_0>();
        check::<BlockQ4_1>();
        check::<BlockQ5_0>();
        check::<BlockQ5_1>();
        check::<BlockQ8_0>();
        check::<BlockQ2K>();
        check::<BlockQ3K>();
        check::<BlockQ4K>();
        check::<BlockQ5K>();
        check::<BlockQ6K>();
    }

    #[test]
    fn float_conversions_follow_ggml() {
        // bf16: ties to even, NaN quieted.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f80_0001)), 0x7fc0);
        // f16: ties to even, overflow to inf, NaN canonical.
        assert_eq!(f32_to_f16_bits(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00);
        assert_eq!(f32_to_f16_bits(-f32::NAN), 0xfe00);
    }

    #[test]
    fn cpu_features_change_no_bits() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let src: Vec<f32> = (0..64 * 256)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let v = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                // Blocks of very different magnitudes, and some all-zero ones.
                v * [0.0, 1e-30, 0.02, 3.0, 1e20][i / 256 % 5]
            })
            .collect();
        fn check<B: QuantBlock>(src: &[f32]) {
            let n = B::TYPE.row_bytes(src.len()).unwrap();
            let (mut dispatched, mut baseline) = (vec![0u8; n], vec![0u8; n]);
            B::TYPE.quantize_row(src, &mut dispatched);
            QuantizeBlocks::<B> {
                src,
                dst: bytemuck::cast_slice_mut(&mut baseline),
            }
            .run();
            assert!(dispatched == baseline, "{}", B::TYPE);
        }
        check::<BlockQ4_0>(&src);
        check::<BlockQ4_1>(&src);
        check::<BlockQ5_0>(&src);
        check::<BlockQ5_1>(&src);
        check::<BlockQ8_0>(&src);
        check::<BlockQ2K>(&src);
        check::<BlockQ3K>(&src);
        check::<BlockQ4K>(&src);
        check::<BlockQ5K>(&src);
        check::<BlockQ6K>(&src);
    }

    #[test]
    #[should_panic(expected = "not a multiple")]
    fn partial_block_panics() {
        GgmlType::Q8_0.quantize_row(&[0.0; 31], &mut [0; 34]);
    }
}
