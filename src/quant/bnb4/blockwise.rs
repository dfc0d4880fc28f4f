//! 8-bit blockwise quantization with bnb's dynamic map, used for double quantization of absmax.

use super::{expect_at_least, expect_len, torch_mean, Bnb4Error};

/// Block size of the second quantization level (`nested_blocksize`), fixed by bnb.
pub const NESTED_BLOCKSIZE: usize = 256;

/// Entries of the lookup table bnb's CPU `quantize_blockwise` uses instead of a nearest search.
const LUT_SIZE: usize = 65536;

/// bnb's `create_dynamic_map(signed=True)` (the 8-bit dynamic exponent map) as float32.
///
/// The map is recomputed by every bnb process on the CPU with `torch.linspace`, whose result
/// depends on the torch build: the AVX2 / AVX-512 kernels (x86-64 machines of the last decade) are
/// compiled with FMA contraction, the baseline kernel is not, and 42 of the 256 entries differ by
/// 1-2 ulp. `fused_linspace = true` gives the AVX2 / AVX-512 map, `false` the baseline one; the
/// map a checkpoint was made with is stored next to it as `nested_quant_map`.
pub fn dynamic_map(fused_linspace: bool) -> [f32; 256] {
    // Python's `10 ** (i - 6)` as f64, cast to f32 when multiplied with a float32 tensor.
    const SCALES: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
    let start = 0.1f64 as f32;
    let mut data = Vec::with_capacity(256);
    for (i, &scale) in SCALES.iter().enumerate() {
        // torch.linspace(0.1, 1, steps) in float32: the first half counts up from start, the
        // second half down from the end.
        let steps = (1usize << i) + 1;
        let step = (1.0 - start) / (steps - 1) as f32;
        let linspace: Vec<f32> = (0..steps)
            .map(|idx| {
                let (base, step, k) = if idx < steps / 2 {
                    (start, step, idx)
                } else {
                    (1.0, -step, steps - 1 - idx)
                };
                if fused_linspace {
                    step.mul_add(k as f32, base)
                } else {
                    base + step * k as f32
                }
            })
            .collect();
        let scale = scale as f32;
        for pair in linspace.windows(2) {
            let mean = (pair[0] + pair[1]) / 2.0;
            data.push(scale * mean);
            data.push(-scale * mean);
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    data.try_into().expect("the dynamic map has 256 entries")
}

/// Maps a scaled value in [-1, 1] to a code through bnb's 65536-entry table: the table holds the
/// code whose midpoint interval contains each of 65536 evenly spaced probe values, and a value
/// uses the probe nearest to it. This is not always the nearest code; it is what bnb computes.
struct Lut(Vec<u8>);

impl Lut {
    fn new(code: &[f32; 256]) -> Self {
        let mids: [f32; 255] = std::array::from_fn(|i| 0.5 * (code[i] + code[i + 1]));
        let mut table = vec![0u8; LUT_SIZE];
        let mut idx = 0;
        for (i, slot) in table.iter_mut().enumerate() {
            let probe = (2.0 * i as f32) / (LUT_SIZE - 1) as f32 - 1.0;
            while idx < mids.len() && mids[idx] < probe {
                idx += 1;
            }
            *slot = idx as u8;
        }
        Lut(table)
    }

    #[inline]
    fn code(&self, scaled: f32) -> u8 {
        let t = (scaled.clamp(-1.0, 1.0) + 1.0) * 0.5;
        // bnb's compiled kernel fuses this multiply-add (one rounding), then truncates.
        self.0[t.mul_add((LUT_SIZE - 1) as f32, 0.5) as usize]
    }
}

/// bnb's `quantize_blockwise(values, code, blocksize)` on CPU (the native kernel of bnb 0.50.2):
/// per block `absmax = max |x|`, and each value becomes the [`Lut`] code of `x * (1 / absmax)`;
/// all-zero blocks get code 0. `codes` takes one byte per value, `absmax` one value per block.
pub fn quantize_blockwise(
    code: &[f32; 256],
    blocksize: usize,
    values: &[f32],
    codes: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), Bnb4Error> {
    check_positive(blocksize)?;
    expect_len("codes", values.len(), codes.len())?;
    expect_len("absmax", values.len().div_ceil(blocksize), absmax.len())?;
    let lut = Lut::new(code);
    let blocks = values
        .chunks(blocksize)
        .zip(codes.chunks_mut(blocksize))
        .zip(absmax.iter_mut());
    for ((block, block_codes), block_absmax) in blocks {
        let max = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        *block_absmax = max;
        if max == 0.0 {
            block_codes.fill(0);
            continue;
        }
        let inv = 1.0 / max;
        for (c, &x) in block_codes.iter_mut().zip(block) {
            *c = lut.code(x * inv);
        }
    }
    Ok(())
}

/// bnb's `dequantize_blockwise` on CPU: `out[i] = code[codes[i]] * absmax[i / blocksize]` in f32.
pub fn dequantize_blockwise(
    code: &[f32; 256],
    blocksize: usize,
    codes: &[u8],
    absmax: &[f32],
    out: &mut [f32],
) -> Result<(), Bnb4Error> {
    check_positive(blocksize)?;
    expect_len("out", codes.len(), out.len())?;
    expect_at_least("absmax", codes.len().div_ceil(blocksize), absmax.len())?;
    for ((dst, &q), i) in out.iter_mut().zip(codes).zip(0..) {
        *dst = code[usize::from(q)] * absmax[i / blocksize];
    }
    Ok(())
}

/// A double-quantized absmax vector: what bnb stores as `absmax` (u8), `nested_absmax` and
/// `nested_offset`.
#[derive(Clone, Debug, PartialEq)]
pub struct DoubleQuant {
    /// One 8-bit code per 4-bit block (`absmax` in the checkpoint).
    pub codes: Vec<u8>,
    /// One f32 scale per [`NESTED_BLOCKSIZE`] codes (`nested_absmax`).
    pub nested_absmax: Vec<f32>,
    /// The mean subtracted before quantizing (`nested_offset`).
    pub offset: f32,
}

/// Double quantization as `quantize_4bit(..., compress_statistics=True)` does it: `offset =
/// absmax.mean()` (see [`torch_mean`] for `torch_threads`), then [`quantize_blockwise`] of
/// `absmax - offset` with `code` (bnb's [`dynamic_map`]) in blocks of [`NESTED_BLOCKSIZE`].
pub fn double_quantize(absmax: &[f32], code: &[f32; 256], torch_threads: usize) -> DoubleQuant {
    let offset = torch_mean(absmax, torch_threads);
    let centered: Vec<f32> = absmax.iter().map(|&a| a - offset).collect();
    let mut codes = vec![0; absmax.len()];
    let mut nested_absmax = vec![0.0; absmax.len().div_ceil(NESTED_BLOCKSIZE)];
    quantize_blockwise(
        code,
        NESTED_BLOCKSIZE,
        &centered,
        &mut codes,
        &mut nested_absmax,
    )
    .expect("buffers are sized for the input");
    DoubleQuant {
        codes,
        nested_absmax,
        offset,
    }
}

/// Recovers the f32 absmax of a double-quantized tensor exactly as `dequantize_4bit` does:
/// `out[i] = code[codes[i]] * nested_absmax[i / nested_blocksize] + offset`, both steps in f32.
pub fn unnest_absmax(
    code: &[f32; 256],
    nested_blocksize: usize,
    codes: &[u8],
    nested_absmax: &[f32],
    offset: f32,
    out: &mut [f32],
) -> Result<(), Bnb4Error> {
    dequantize_blockwise(code, nested_blocksize, codes, nested_absmax, out)?;
    for a in out.iter_mut() {
        *a += offset;
    }
    Ok(())
}

fn check_positive(blocksize: usize) -> Result<(), Bnb4Error> {
    if blocksize == 0 {
        Err(Bnb4Error::InvalidBlocksize(0))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_map_shape() {
        for fused in [true, false] {
            let map = dynamic_map(fused);
            assert!(map.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(map[255], 1.0);
            assert_eq!(map[127], 0.0);
            assert_eq!(map.iter().filter(|&&v| v < 0.0).count(), 127);
        }
    }

    #[test]
    fn lut_edges() {
        let map = dynamic_map(true);
        let lut = Lut::new(&map);
        assert_eq!(lut.code(-1.0), 0);
        assert_eq!(lut.code(1.0), 255);
        assert_eq!(lut.code(7.0), 255);
    }

    #[test]
    fn length_errors() {
        let map = dynamic_map(true);
        let err = quantize_blockwise(&map, 4, &[1.0; 5], &mut [0; 5], &mut [0.0; 1]).unwrap_err();
        assert!(matches!(
            err,
            Bnb4Error::LengthMismatch {
                what: "absmax",
                expected: 2,
                got: 1
            }
        ));
        let err = unnest_absmax(&map, 256, &[0; 300], &[1.0], 0.0, &mut [0.0; 300]).unwrap_err();
        assert!(matches!(err, Bnb4Error::TooShort { what: "absmax", .. }));
        assert!(dequantize_blockwise(&map, 0, &[], &[], &mut []).is_err());
    }
}
