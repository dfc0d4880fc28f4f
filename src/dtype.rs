//! The floating-point storage types tensors are read from and written to.

/// A floating-point storage type of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
}

impl FloatType {
    /// The torch dtype name used in configs (`bfloat16`, `float16`, `float32`).
    pub fn torch_name(self) -> &'static str {
        match self {
            FloatType::F32 => "float32",
            FloatType::F16 => "float16",
            FloatType::Bf16 => "bfloat16",
        }
    }

    /// Parses a torch dtype name (with or without the `torch.` prefix) or a short name.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim_start_matches("torch.") {
            "float32" | "f32" | "fp32" => Some(FloatType::F32),
            "float16" | "f16" | "fp16" | "half" => Some(FloatType::F16),
            "bfloat16" | "bf16" => Some(FloatType::Bf16),
            _ => None,
        }
    }

    /// The matching safetensors dtype.
    pub fn safetensors(self) -> crate::formats::safetensors::Dtype {
        use crate::formats::safetensors::Dtype;
        match self {
            FloatType::F32 => Dtype::F32,
            FloatType::F16 => Dtype::F16,
            FloatType::Bf16 => Dtype::BF16,
        }
    }

    /// Rounds an f32 to this type (round to nearest, ties to even) and back.
    pub fn round(self, x: f32) -> f32 {
        match self {
            FloatType::F32 => x,
            FloatType::F16 => half::f16::from_f32(x).to_f32(),
            FloatType::Bf16 => half::bf16::from_f32(x).to_f32(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FloatType;

    #[test]
    fn names_round_trip() {
        for d in [FloatType::Bf16, FloatType::F16, FloatType::F32] {
            assert_eq!(FloatType::parse(d.torch_name()), Some(d));
        }
        assert_eq!(FloatType::parse("torch.bfloat16"), Some(FloatType::Bf16));
        assert_eq!(FloatType::parse("int8"), None);
    }

    #[test]
    fn rounding_is_nearest_even() {
        // 1 + 2^-8 is halfway between two bf16 values; ties go to the even mantissa (1.0).
        let tie = 1.0 + f32::EPSILON * 2f32.powi(15);
        assert_eq!(FloatType::Bf16.round(tie), 1.0);
        assert_eq!(
            FloatType::Bf16.round(f32::from_bits(tie.to_bits() + 1)),
            1.0078125
        );
        assert_eq!(FloatType::F16.round(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(FloatType::F32.round(0.1), 0.1);
    }
}
