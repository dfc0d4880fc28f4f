//! 4-bit blockwise quantization (`quantize_4bit`) and dequantization (`dequantize_4bit`).

use super::{check_blocksize, expect_at_least, expect_len, Bnb4Error, Bnb4Kind};
use crate::dtype::FloatType;

/// bnb clamps absmax to this before scaling so all-zero blocks do not divide by zero.
const MIN_ABSMAX: f32 = 1e-38;

/// Quantizes a chunk of a tensor as `bnb.functional.quantize_4bit` does on CPU.
///
/// `input` holds the tensor's values (exactly representable in its dtype; bnb widens them to f32
/// first, so the dtype does not matter) from a block boundary on. Every block of the chunk must
/// be complete except a partial last block, which must be the tensor's last (tail) block: stream
/// a tensor in chunks whose lengths are multiples of `blocksize`, then the remainder.
/// `packed` receives `ceil(input.len() / 2)` bytes and `absmax` one value per block.
///
/// Codes are nearest in f32 with ties to the lower code. Like bnb, full blocks are scaled by
/// `x * (1 / max(absmax, 1e-38))` and store their absmax as is, while the tail block is scaled by
/// `x / max(absmax, 1e-38)` and stores that clamped absmax. Inputs must be finite.
pub fn quantize(
    kind: Bnb4Kind,
    blocksize: usize,
    input: &[f32],
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), Bnb4Error> {
    check_blocksize(blocksize)?;
    expect_len("packed", input.len().div_ceil(2), packed.len())?;
    expect_len("absmax", input.len().div_ceil(blocksize), absmax.len())?;
    let book = kind.book();
    let blocks = input
        .chunks(blocksize)
        .zip(packed.chunks_mut(blocksize / 2))
        .zip(absmax.iter_mut());
    for ((block, bytes), block_absmax) in blocks {
        let max = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let clamped = max.max(MIN_ABSMAX);
        let full = block.len() == blocksize;
        *block_absmax = if full { max } else { clamped };
        let inv = 1.0 / clamped;
        let mut scaled = block.iter().map(|&x| {
            let s = if full { x * inv } else { x / clamped };
            s.clamp(-1.0, 1.0)
        });
        for byte in bytes {
            let hi = book.quantize(scaled.next().unwrap_or(0.0));
            // An odd element count is padded with a scaled zero.
            let lo = book.quantize(scaled.next().unwrap_or(0.0));
            *byte = (hi << 4) | lo;
        }
    }
    Ok(())
}

/// Dequantizes elements `start .. start + out.len()` of a 4-bit tensor, as
/// `bnb.functional.dequantize_4bit` does on CPU: `out[i] = dtype.round(code[q] * absmax[block])`,
/// i.e. the bf16 / f16 / f32 values bnb returns, held in f32.
///
/// `packed` starts at the byte holding element `start` (byte `start / 2`; an odd `start` begins
/// with that byte's low nibble) and `absmax` at the block holding it (block `start / blocksize`);
/// with whole-tensor slices pass `&packed[start / 2..]` and `&absmax[start / blocksize..]`. Both may
/// extend past the range. Blocks may straddle rows; any split of a tensor into ranges gives the
/// same values as one call.
///
/// Not reproduced (bnb 0.50.2 CPU bugs, hit only by shapes real checkpoints do not have):
/// - its AVX-512 kernel (last dim a multiple of 16) indexes absmax as `row * (cols / blocksize) +
///   col / blocksize`, wrong when `cols % blocksize != 0`; we use the element's true block, as the
///   scalar, pure-torch and CUDA paths do;
/// - on CPUs with AVX512-BF16 that kernel converts with `vcvtneps2bf16`, which flushes f32
///   subnormal products (|w| < 2^-126) to zero; we round them like every other path.
pub fn dequantize(
    kind: Bnb4Kind,
    dtype: FloatType,
    blocksize: usize,
    start: usize,
    packed: &[u8],
    absmax: &[f32],
    out: &mut [f32],
) -> Result<(), Bnb4Error> {
    check_blocksize(blocksize)?;
    if out.is_empty() {
        return Ok(());
    }
    let end = start + out.len();
    let (first_byte, first_block) = (start / 2, start / blocksize);
    expect_at_least("packed", (end - 1) / 2 - first_byte + 1, packed.len())?;
    expect_at_least(
        "absmax",
        (end - 1) / blocksize - first_block + 1,
        absmax.len(),
    )?;
    let code = kind.code();
    let mut pos = start;
    while pos < end {
        let block = pos / blocksize;
        let block_end = ((block + 1) * blocksize).min(end);
        // 16 products per block instead of one per element.
        let scale = absmax[block - first_block];
        let table: [f32; 16] = std::array::from_fn(|q| dtype.round(code[q] * scale));
        for i in pos..block_end {
            let byte = packed[i / 2 - first_byte];
            let q = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            out[i - start] = table[usize::from(q)];
        }
        pos = block_end;
    }
    Ok(())
}
