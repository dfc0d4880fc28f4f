//! The quant-state JSON bnb packs into `<weight>.quant_state.bitsandbytes__<type>`.

use serde::Deserialize;

use super::{check_blocksize, Bnb4Error, Bnb4Kind, NESTED_BLOCKSIZE};
use crate::dtype::FloatType;

/// The non-tensor part of a bnb 4-bit quant state (`QuantState.as_dict(packed=True)`).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantState {
    /// NF4 or FP4.
    pub quant_type: Bnb4Kind,
    /// Elements per absmax block.
    pub blocksize: usize,
    /// The dtype the weight had and dequantizes to.
    pub dtype: FloatType,
    /// The weight's shape, e.g. `[out_features, in_features]`.
    pub shape: Vec<usize>,
    /// Present when the absmax vector is double-quantized (`compress_statistics=True`).
    pub nested: Option<NestedState>,
}

/// Second-level parameters of a double-quantized absmax vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NestedState {
    /// Absmax codes per nested block (bnb always uses [`NESTED_BLOCKSIZE`]).
    pub blocksize: usize,
    /// The mean subtracted from absmax before quantizing it.
    pub offset: f32,
}

/// The JSON as written; `QuantState` is its validated form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantState {
    quant_type: String,
    blocksize: usize,
    dtype: String,
    shape: Option<Vec<usize>>,
    nested_blocksize: Option<usize>,
    nested_dtype: Option<String>,
    nested_offset: Option<f64>,
}

impl QuantState {
    /// The state of a freshly quantized `[rows, cols]`-style tensor, with double quantization
    /// at [`NESTED_BLOCKSIZE`] when `offset` is given.
    pub fn new(
        quant_type: Bnb4Kind,
        blocksize: usize,
        dtype: FloatType,
        shape: Vec<usize>,
        offset: Option<f32>,
    ) -> Self {
        QuantState {
            quant_type,
            blocksize,
            dtype,
            shape,
            nested: offset.map(|offset| NestedState {
                blocksize: NESTED_BLOCKSIZE,
                offset,
            }),
        }
    }

    /// Parses the JSON bytes stored in the `quant_state.bitsandbytes__*` tensor.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, Bnb4Error> {
        let raw: RawQuantState = serde_json::from_slice(bytes)?;
        let quant_type = raw.quant_type.parse()?;
        check_blocksize(raw.blocksize)?;
        let dtype = FloatType::parse(&raw.dtype)
            .ok_or_else(|| Bnb4Error::UnknownDtype(raw.dtype.clone()))?;
        let shape = raw
            .shape
            .ok_or_else(|| invalid("\"shape\" is null; the tensor shape is needed"))?;
        let nested = match (raw.nested_blocksize, raw.nested_dtype, raw.nested_offset) {
            (None, None, None) => None,
            (Some(blocksize), Some(nested_dtype), Some(offset)) => {
                if blocksize == 0 {
                    return Err(invalid("\"nested_blocksize\" is 0"));
                }
                // The nested absmax is always float32 in bnb.
                if nested_dtype != "float32" {
                    return Err(invalid(&format!(
                        "\"nested_dtype\" is {nested_dtype:?}, expected \"float32\""
                    )));
                }
                if !offset.is_finite() {
                    return Err(invalid("\"nested_offset\" is not finite"));
                }
                // bnb reads it with torch.tensor(float(...)): a float32, rounded to nearest.
                let offset = offset as f32;
                Some(NestedState { blocksize, offset })
            }
            _ => {
                return Err(invalid(
                    "\"nested_blocksize\", \"nested_dtype\" and \"nested_offset\" must all be present or all absent",
                ))
            }
        };
        Ok(QuantState {
            quant_type,
            blocksize: raw.blocksize,
            dtype,
            shape,
            nested,
        })
    }

    /// The exact bytes bnb writes: Python `json.dumps` of the dict in bnb's key order.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let shape: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        let mut json = format!(
            r#"{{"quant_type": "{}", "blocksize": {}, "dtype": "{}", "shape": [{}]"#,
            self.quant_type.as_str(),
            self.blocksize,
            self.dtype.torch_name(),
            shape.join(", "),
        );
        if let Some(nested) = &self.nested {
            json += &format!(
                r#", "nested_blocksize": {}, "nested_dtype": "float32", "nested_offset": {}"#,
                nested.blocksize,
                python_float_repr(f64::from(nested.offset)),
            );
        }
        json.push('}');
        json.into_bytes()
    }

    /// The suffix of the tensor holding this JSON: `quant_state.bitsandbytes__nf4` / `__fp4`.
    pub fn key_suffix(&self) -> &'static str {
        match self.quant_type {
            Bnb4Kind::Nf4 => "quant_state.bitsandbytes__nf4",
            Bnb4Kind::Fp4 => "quant_state.bitsandbytes__fp4",
        }
    }

    /// Number of weights.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of absmax blocks (the length of `absmax`).
    pub fn blocks(&self) -> usize {
        self.numel().div_ceil(self.blocksize)
    }

    /// Bytes of packed codes (the length of the uint8 weight tensor).
    pub fn packed_len(&self) -> usize {
        self.numel().div_ceil(2)
    }

    /// Number of nested blocks (the length of `nested_absmax`), 0 without double quantization.
    pub fn nested_blocks(&self) -> usize {
        self.nested
            .map_or(0, |n| self.blocks().div_ceil(n.blocksize))
    }
}

fn invalid(msg: &str) -> Bnb4Error {
    Bnb4Error::InvalidQuantState(msg.to_owned())
}

/// Python's `repr(float)`, which `json.dumps` uses: the shortest round-trip digits, positional
/// when the decimal exponent is in [-4, 16), else `d.ddde±XX`; integral values end in `.0`.
fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` also prints the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let sign = if x < 0.0 { "-" } else { "" };
    // Python's rule, with x = 0.DIGITS * 10^point.
    let point = exp + 1;
    let body = if point <= 0 && point > -4 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if (1..=16).contains(&point) {
        let p = point as usize;
        if p >= digits.len() {
            format!("{digits}{}.0", "0".repeat(p - digits.len()))
        } else {
            format!("{}.{}", &digits[..p], &digits[p..])
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}{rest}e{exp_sign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Expected strings printed by CPython 3.11 `json.dumps`.
        let cases: [(f64, &str); 16] = [
            (0.05190873146057129, "0.05190873146057129"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (0.001, "0.001"),
            (0.5, "0.5"),
            (1e16, "1e+16"),
            (123.0, "123.0"),
            (1.5, "1.5"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.2345e-7, "1.2345e-07"),
            (f64::from(0.1f32), "0.10000000149011612"),
            (-2.5e-300, "-2.5e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (-0.0, "-0.0"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn json_round_trip() {
        let text =
            br#"{"quant_type": "fp4", "blocksize": 128, "dtype": "float16", "shape": [3, 100]}"#;
        let state = QuantState::from_json_bytes(text).unwrap();
        assert_eq!(
            state,
            QuantState::new(Bnb4Kind::Fp4, 128, FloatType::F16, vec![3, 100], None)
        );
        assert_eq!(state.to_json_bytes(), text);
        assert_eq!(
            (state.numel(), state.blocks(), state.packed_len()),
            (300, 3, 150)
        );
        assert_eq!(state.nested_blocks(), 0);
        assert_eq!(state.key_suffix(), "quant_state.bitsandbytes__fp4");

        // Compact JSON is accepted too; output always uses Python's separators (the offset is
        // `json.dumps(float(numpy.float32(0.0519)))`).
        let compact = br#"{"quant_type":"nf4","blocksize":64,"dtype":"bfloat16","shape":[4096,4096],"nested_blocksize":256,"nested_dtype":"float32","nested_offset":0.0519}"#;
        let state = QuantState::from_json_bytes(compact).unwrap();
        assert_eq!(state.nested.unwrap().offset, 0.0519f32);
        assert_eq!(state.nested_blocks(), 1024);
        assert_eq!(
            String::from_utf8(state.to_json_bytes()).unwrap(),
            r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 4096], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.051899999380111694}"#
        );
    }

    #[test]
    fn json_errors() {
        let err = |json: &str| QuantState::from_json_bytes(json.as_bytes()).unwrap_err();
        let base = r#""blocksize": 64, "dtype": "bfloat16", "shape": [2, 64]"#;
        assert!(matches!(
            err(&format!(r#"{{"quant_type": "int4", {base}}}"#)),
            Bnb4Error::UnknownQuantType(_)
        ));
        assert!(matches!(
            err(r#"{"quant_type": "nf4", "blocksize": 48, "dtype": "bfloat16", "shape": [2]}"#),
            Bnb4Error::InvalidBlocksize(48)
        ));
        assert!(matches!(
            err(r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [2]}"#),
            Bnb4Error::UnknownDtype(_)
        ));
        assert!(matches!(
            err(r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": null}"#),
            Bnb4Error::InvalidQuantState(_)
        ));
        assert!(matches!(
            err(&format!(
                r#"{{"quant_type": "nf4", {base}, "nested_offset": 0.1}}"#
            )),
            Bnb4Error::InvalidQuantState(_)
        ));
        assert!(matches!(
            err(&format!(
                r#"{{"quant_type": "nf4", {base}, "nested_blocksize": 256, "nested_dtype": "float16", "nested_offset": 0.1}}"#
            )),
            Bnb4Error::InvalidQuantState(_)
        ));
        assert!(matches!(
            err(&format!(r#"{{"quant_type": "nf4", {base}, "absmax": 1}}"#)),
            Bnb4Error::Json(_)
        ));
        assert!(matches!(err("not json"), Bnb4Error::Json(_)));
        assert!(matches!(
            err(r#"{"quant_type": "nf4", "dtype": "bfloat16", "shape": [2]}"#),
            Bnb4Error::Json(_)
        ));
    }
}
