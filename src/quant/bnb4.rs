//! bitsandbytes 4-bit (NF4 / FP4) quantization math, bit-exact with bitsandbytes 0.50.2 on CPU.
//!
//! A bnb 4-bit tensor of `n` elements stores, in row-major element order:
//! - `packed`: `ceil(n / 2)` bytes, two 4-bit codes per byte, high nibble first (an odd `n` pads the
//!   last low nibble with the code of 0.0);
//! - one f32 `absmax` per block of `blocksize` elements (the last block may be partial), or, with
//!   double quantization, one u8 code per block plus one f32 `nested_absmax` per 256 blocks and a
//!   scalar `offset` (see [`double_quantize`] and [`unnest_absmax`]);
//! - a JSON [`QuantState`] with the type, block size, original dtype and shape.
//!
//! Element `i` dequantizes to `round_dtype(code[q_i] * absmax[i / blocksize])` (f32 product, then
//! round-to-nearest-even into bf16 / f16). Everything here is a pure function over slices (no I/O,
//! no threads), so it runs unchanged in wasm, and supports element sub-ranges so callers can stream.
//!
//! What "bit-exact" covers and the bnb CPU quirks deliberately *not* reproduced (they are bugs or
//! machine-dependent, and real checkpoints never hit them) are listed in [`dequantize`],
//! [`Bnb4Kind::code`], [`dynamic_map`] and [`torch_mean`].

mod blockwise;
mod fourbit;
mod state;
mod torch_sum;

pub use blockwise::{
    dequantize_blockwise, double_quantize, dynamic_map, quantize_blockwise, unnest_absmax,
    DoubleQuant, NESTED_BLOCKSIZE,
};
pub use fourbit::{dequantize, quantize};
pub use state::{NestedState, QuantState};
pub use torch_sum::torch_mean;

use std::str::FromStr;

/// Errors from parsing bnb metadata or from inconsistent slice arguments.
#[derive(Debug, thiserror::Error)]
pub enum Bnb4Error {
    /// `quant_type` is neither `"nf4"` nor `"fp4"`.
    #[error("unknown bitsandbytes 4-bit quant_type {0:?} (expected \"nf4\" or \"fp4\")")]
    UnknownQuantType(String),
    /// A dtype name other than `"bfloat16"`, `"float16"` or `"float32"`.
    #[error("unsupported dtype {0:?} (expected \"bfloat16\", \"float16\" or \"float32\")")]
    UnknownDtype(String),
    /// A block size bitsandbytes does not produce for 4-bit tensors.
    #[error("invalid 4-bit block size {0} (bitsandbytes uses 32, 64, 128, ..., 4096)")]
    InvalidBlocksize(usize),
    /// An output slice has the wrong length.
    #[error("{what}: expected {expected} values, got {got}")]
    LengthMismatch {
        /// Which argument.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// An input slice is too short for the requested range.
    #[error("{what}: need at least {needed} values, got {got}")]
    TooShort {
        /// Which argument.
        what: &'static str,
        /// Minimum length.
        needed: usize,
        /// Actual length.
        got: usize,
    },
    /// The quant-state JSON is not valid JSON or has unknown / mistyped keys.
    #[error("bitsandbytes quant_state JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The quant-state JSON parsed but is inconsistent.
    #[error("bitsandbytes quant_state: {0}")]
    InvalidQuantState(String),
}

/// The 4-bit code book: NormalFloat4 or bnb's FP4 (1 sign, 2 exponent, 1 mantissa bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bnb4Kind {
    /// NF4: 16 quantiles of N(0, 1) scaled to [-1, 1] (the QLoRA default).
    Nf4,
    /// FP4 as defined by bitsandbytes.
    Fp4,
}

/// `get_4bit_type("nf4")` as float32, index = 4-bit code.
const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// `get_4bit_type("fp4")`: bnb's bit patterns divided (in f32) by the largest magnitude, 12.
const FP4_CODE: [f32; 16] = {
    const RAW: [f32; 16] = [
        0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, 0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0,
        -3.0,
    ];
    let mut code = [0.0; 16];
    let mut i = 0;
    while i < 16 {
        code[i] = RAW[i] / 12.0;
        i += 1;
    }
    code
};

/// Codes in ascending value order, as `torch.argsort` orders them; FP4's two zeros (codes 0 and
/// 8) keep index order, which makes 0.0 quantize to code 0 and tiny positives to code 8.
const NF4_ORDER: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const FP4_ORDER: [u8; 16] = [11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3];

/// A code table with the f32 midpoints between neighbouring values, for nearest-code search.
struct CodeBook {
    code: [f32; 16],
    order: [u8; 16],
    mids: [f32; 15],
}

impl CodeBook {
    const fn new(code: [f32; 16], order: [u8; 16]) -> Self {
        let mut mids = [0.0; 15];
        let mut i = 0;
        while i < 15 {
            mids[i] = (code[order[i] as usize] + code[order[i + 1] as usize]) / 2.0;
            i += 1;
        }
        CodeBook { code, order, mids }
    }

    /// The code of a value already scaled into [-1, 1]. Like `torch.bucketize(right=False)`, a
    /// value exactly on a midpoint goes to the lower code.
    #[inline]
    fn quantize(&self, scaled: f32) -> u8 {
        let below = self.mids.iter().filter(|&&m| m < scaled).count();
        self.order[below]
    }
}

const NF4_BOOK: CodeBook = CodeBook::new(NF4_CODE, NF4_ORDER);
const FP4_BOOK: CodeBook = CodeBook::new(FP4_CODE, FP4_ORDER);

impl Bnb4Kind {
    /// The name bnb uses (`"nf4"` / `"fp4"`), e.g. in `quant_state.bitsandbytes__nf4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bnb4Kind::Nf4 => "nf4",
            Bnb4Kind::Fp4 => "fp4",
        }
    }

    /// The 16 code values, exactly the f32 `quant_map` bnb writes next to the weight.
    ///
    /// bnb 0.50.2's scalar CPU dequantization kernel (used when the last dimension is even but
    /// not a multiple of 16) has -0.0 for FP4 code 8 where this table and every other bnb path
    /// have +0.0, so it returns -0.0 for values that quantized to code 8; we return +0.0.
    pub fn code(self) -> &'static [f32; 16] {
        &self.book().code
    }

    fn book(self) -> &'static CodeBook {
        match self {
            Bnb4Kind::Nf4 => &NF4_BOOK,
            Bnb4Kind::Fp4 => &FP4_BOOK,
        }
    }
}

impl FromStr for Bnb4Kind {
    type Err = Bnb4Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nf4" => Ok(Bnb4Kind::Nf4),
            "fp4" => Ok(Bnb4Kind::Fp4),
            _ => Err(Bnb4Error::UnknownQuantType(s.to_owned())),
        }
    }
}

/// Rejects block sizes `quantize_4bit` / `dequantize_4bit` refuse (all accepted ones are even, so
/// blocks always start on a byte boundary).
fn check_blocksize(blocksize: usize) -> Result<(), Bnb4Error> {
    if blocksize.is_power_of_two() && (32..=4096).contains(&blocksize) {
        Ok(())
    } else {
        Err(Bnb4Error::InvalidBlocksize(blocksize))
    }
}

fn expect_len(what: &'static str, expected: usize, got: usize) -> Result<(), Bnb4Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Bnb4Error::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

fn expect_at_least(what: &'static str, needed: usize, got: usize) -> Result<(), Bnb4Error> {
    if got >= needed {
        Ok(())
    } else {
        Err(Bnb4Error::TooShort { what, needed, got })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("nf4".parse::<Bnb4Kind>().unwrap(), Bnb4Kind::Nf4);
        assert_eq!("fp4".parse::<Bnb4Kind>().unwrap(), Bnb4Kind::Fp4);
        assert!(matches!(
            "NF4".parse::<Bnb4Kind>(),
            Err(Bnb4Error::UnknownQuantType(s)) if s == "NF4"
        ));
    }

    #[test]
    fn blocksizes() {
        for bs in [32, 64, 128, 256, 512, 1024, 2048, 4096] {
            check_blocksize(bs).unwrap();
        }
        for bs in [0, 2, 16, 48, 96, 8192] {
            assert!(matches!(
                check_blocksize(bs),
                Err(Bnb4Error::InvalidBlocksize(b)) if b == bs
            ));
        }
    }

    #[test]
    fn code_books_are_sorted_by_order() {
        for kind in [Bnb4Kind::Nf4, Bnb4Kind::Fp4] {
            let book = kind.book();
            let sorted: Vec<f32> = book.order.iter().map(|&c| book.code[c as usize]).collect();
            assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "{kind:?}");
            assert!(book.mids.windows(2).all(|w| w[0] <= w[1]), "{kind:?}");
        }
        // Zero quantizes to NF4 code 7 and FP4 code 0; the extremes to the +-1 codes.
        assert_eq!(NF4_BOOK.quantize(0.0), 7);
        assert_eq!(FP4_BOOK.quantize(0.0), 0);
        assert_eq!(FP4_BOOK.quantize(1e-4), 8);
        assert_eq!(NF4_BOOK.quantize(-1.0), 0);
        assert_eq!(FP4_BOOK.quantize(1.0), 3);
        // A value exactly on a midpoint takes the lower code.
        assert_eq!(NF4_BOOK.quantize(NF4_BOOK.mids[10]), 10);
    }
}
