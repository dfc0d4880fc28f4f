//! llama-quantize's quantization mixes: which ggml type each tensor of a model gets for a
//! file type such as Q4_K_M, tensor by tensor, exactly as llama.cpp commit 0c1e57098bba does
//! without an importance matrix and with default options (no `--pure`, `--tensor-type`,
//! `--output-tensor-type`, `--token-embedding-type`, `--leave-output-tensor`).
//!
//! Mirrors, in `src/llama-quant.cpp`:
//! - `tensor_allows_quantization` -> [`allows_quantization`] (which tensors are converted at all;
//!   the rest are copied in their current type),
//! - `tensor_get_category` -> `Category::of`,
//! - `init_quantize_state_counters` -> [`MixPlanner::new`] (`n_attention_wv`, tied embeddings,
//!   `n_ffn_* = n_layer`),
//! - `llama_tensor_get_type` / `llama_tensor_get_type_impl` -> [`MixPlanner::next_type`], limited
//!   to the mixes of [`QuantMix`] (the IQ*, TQ*, MXFP4 and Q2_K_S branches are left out),
//! - `tensor_type_fallback` -> `fallback`,
//! - `llama_ftype_get_default_type` -> [`QuantMix::default_type`],
//!
//! and `llama_model_loader::weight_name_comparer` (`src/llama-model-loader.h`) ->
//! [`compare_tensor_names`], the order in which llama-quantize visits, counts and writes tensors.

use super::GgmlType;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A llama-quantize file type (`LLAMA_FTYPE_*`, stored as `general.file_type`).
///
/// Variant names follow llama-quantize's spelling.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuantMix {
    /// Everything F32 (`LLAMA_FTYPE_ALL_F32`).
    F32,
    /// 2-D weights F16.
    F16,
    /// 2-D weights BF16.
    BF16,
    /// Q4_0, output Q6_K.
    Q4_0,
    /// Q4_1, output Q6_K.
    Q4_1,
    /// Q5_0, output Q6_K.
    Q5_0,
    /// Q5_1, output Q6_K.
    Q5_1,
    /// Q8_0 throughout.
    Q8_0,
    /// Q2_K with Q3_K/Q4_K for the sensitive tensors.
    Q2_K,
    /// Q3_K, output Q6_K.
    Q3_K_S,
    /// Q3_K with Q4_K/Q5_K for the sensitive tensors.
    Q3_K_M,
    /// Q3_K with Q5_K for the sensitive tensors.
    Q3_K_L,
    /// Q4_K with Q5_K for the first attn_v/ffn_down layers.
    Q4_K_S,
    /// Q4_K with Q6_K for half of attn_v/ffn_down.
    Q4_K_M,
    /// Q5_K, output Q6_K.
    Q5_K_S,
    /// Q5_K with Q6_K for half of attn_v/ffn_down.
    Q5_K_M,
    /// Q6_K throughout.
    Q6_K,
}

impl QuantMix {
    /// Every supported mix.
    pub const ALL: [QuantMix; 17] = [
        QuantMix::F32,
        QuantMix::F16,
        QuantMix::BF16,
        QuantMix::Q4_0,
        QuantMix::Q4_1,
        QuantMix::Q5_0,
        QuantMix::Q5_1,
        QuantMix::Q8_0,
        QuantMix::Q2_K,
        QuantMix::Q3_K_S,
        QuantMix::Q3_K_M,
        QuantMix::Q3_K_L,
        QuantMix::Q4_K_S,
        QuantMix::Q4_K_M,
        QuantMix::Q5_K_S,
        QuantMix::Q5_K_M,
        QuantMix::Q6_K,
    ];

    /// The name llama-quantize uses, e.g. `"Q4_K_M"`.
    pub const fn name(self) -> &'static str {
        match self {
            QuantMix::F32 => "F32",
            QuantMix::F16 => "F16",
            QuantMix::BF16 => "BF16",
            QuantMix::Q4_0 => "Q4_0",
            QuantMix::Q4_1 => "Q4_1",
            QuantMix::Q5_0 => "Q5_0",
            QuantMix::Q5_1 => "Q5_1",
            QuantMix::Q8_0 => "Q8_0",
            QuantMix::Q2_K => "Q2_K",
            QuantMix::Q3_K_S => "Q3_K_S",
            QuantMix::Q3_K_M => "Q3_K_M",
            QuantMix::Q3_K_L => "Q3_K_L",
            QuantMix::Q4_K_S => "Q4_K_S",
            QuantMix::Q4_K_M => "Q4_K_M",
            QuantMix::Q5_K_S => "Q5_K_S",
            QuantMix::Q5_K_M => "Q5_K_M",
            QuantMix::Q6_K => "Q6_K",
        }
    }

    /// The `LLAMA_FTYPE_*` id written to `general.file_type` (`include/llama.h`).
    pub const fn file_type(self) -> u32 {
        match self {
            QuantMix::F32 => 0,
            QuantMix::F16 => 1,
            QuantMix::Q4_0 => 2,
            QuantMix::Q4_1 => 3,
            QuantMix::Q8_0 => 7,
            QuantMix::Q5_0 => 8,
            QuantMix::Q5_1 => 9,
            QuantMix::Q2_K => 10,
            QuantMix::Q3_K_S => 11,
            QuantMix::Q3_K_M => 12,
            QuantMix::Q3_K_L => 13,
            QuantMix::Q4_K_S => 14,
            QuantMix::Q4_K_M => 15,
            QuantMix::Q5_K_S => 16,
            QuantMix::Q5_K_M => 17,
            QuantMix::Q6_K => 18,
            QuantMix::BF16 => 32,
        }
    }

    /// The type most tensors get (`llama_ftype_get_default_type`).
    pub const fn default_type(self) -> GgmlType {
        match self {
            QuantMix::F32 => GgmlType::F32,
            QuantMix::F16 => GgmlType::F16,
            QuantMix::BF16 => GgmlType::BF16,
            QuantMix::Q4_0 => GgmlType::Q4_0,
            QuantMix::Q4_1 => GgmlType::Q4_1,
            QuantMix::Q5_0 => GgmlType::Q5_0,
            QuantMix::Q5_1 => GgmlType::Q5_1,
            QuantMix::Q8_0 => GgmlType::Q8_0,
            QuantMix::Q2_K => GgmlType::Q2_K,
            QuantMix::Q3_K_S | QuantMix::Q3_K_M | QuantMix::Q3_K_L => GgmlType::Q3_K,
            QuantMix::Q4_K_S | QuantMix::Q4_K_M => GgmlType::Q4_K,
            QuantMix::Q5_K_S | QuantMix::Q5_K_M => GgmlType::Q5_K,
            QuantMix::Q6_K => GgmlType::Q6_K,
        }
    }

    /// Parses a mix as llama-quantize's `try_parse_ftype` does: a name in any case
    /// (`"q4_k_m"`), the aliases `Q3_K`/`Q4_K`/`Q5_K` for the `_M` variants, or a numeric
    /// file-type id (`"15"`).
    pub fn parse(s: &str) -> Option<Self> {
        let by_name = |name: &str| Self::ALL.into_iter().find(|m| m.name() == name);
        let upper = s.to_ascii_uppercase();
        let alias = match upper.as_str() {
            "Q3_K" => Some(QuantMix::Q3_K_M),
            "Q4_K" => Some(QuantMix::Q4_K_M),
            "Q5_K" => Some(QuantMix::Q5_K_M),
            _ => by_name(&upper),
        };
        alias.or_else(|| {
            let id: u32 = s.trim().parse().ok()?;
            Self::ALL.into_iter().find(|m| m.file_type() == id)
        })
    }
}

impl fmt::Display for QuantMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no supported mix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantization type {0:?} (expected e.g. Q4_K_M, Q8_0, F16)")]
pub struct UnknownMix(pub String);

impl FromStr for QuantMix {
    type Err = UnknownMix;
    fn from_str(s: &str) -> Result<Self, UnknownMix> {
        Self::parse(s).ok_or_else(|| UnknownMix(s.to_owned()))
    }
}

/// Why a tensor type could not be chosen; llama-quantize aborts in the same cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// In a mixture-of-experts model the layer of an FFN tensor comes from its name.
    #[error("failed to determine layer for tensor {0}")]
    NoLayer(String),
    /// The layer parsed from an FFN tensor name is outside `0..n_layer`.
    #[error("bad layer {layer} for tensor {name}, must be in [0, {n_layer})")]
    BadLayer {
        /// Tensor name.
        name: String,
        /// Layer parsed from it.
        layer: i32,
        /// `n_layer` of the model.
        n_layer: u32,
    },
}

/// The model facts the mix rules depend on (GGUF `general.architecture` and hparams).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixModel {
    /// `general.architecture`, e.g. `"llama"`, `"qwen2"`, `"gemma3"`, `"phi3"`.
    pub arch: String,
    /// `{arch}.block_count`.
    pub n_layer: u32,
    /// `{arch}.attention.head_count` (of layer 0).
    pub n_head: u32,
    /// `{arch}.attention.head_count_kv` (of layer 0).
    pub n_head_kv: u32,
    /// `{arch}.expert_count`, 0 for dense models.
    pub n_expert: u32,
}

impl MixModel {
    /// `hparams.n_gqa()`: query heads per KV head, 0 without KV heads.
    fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    /// Whether llama.cpp classifies the model as `LLM_TYPE_70B`, the only model size the mix
    /// rules look at (set by `load_arch_hparams` in `src/models/{llama,qwen2,deci,olmo,jais2}.cpp`).
    fn is_70b(&self) -> bool {
        match self.arch.as_str() {
            "llama" => self.n_expert != 8 && self.n_layer == 80 && self.n_head != self.n_head_kv,
            "qwen2" | "deci" | "olmo" => self.n_layer == 80,
            "jais2" => self.n_layer == 68,
            _ => false,
        }
    }

    fn is_falcon(&self) -> bool {
        self.arch == "falcon"
    }
}

/// One tensor as llama-quantize sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorDesc<'a> {
    /// GGUF tensor name, e.g. `"blk.3.attn_v.weight"`.
    pub name: &'a str,
    /// Shape in ggml order (`ne[0]` = row length = innermost dimension).
    pub ne: &'a [u64],
    /// Type of the tensor in the input (what it keeps when it is not quantized).
    pub ty: GgmlType,
}

/// Orders tensor names as llama.cpp's `weights_map`: by the layer number of a `blk.N.` prefix
/// (non-block tensors count as layer -1, so they come first), then bytewise by name.
pub fn compare_tensor_names(a: &str, b: &str) -> Ordering {
    let layer = |n: &str| block_layer(n).unwrap_or(-1);
    layer(a).cmp(&layer(b)).then_with(|| a.cmp(b))
}

/// The layer number `sscanf(name, "blk.%d.", &layer)` would read (it ignores whether the dot
/// after the digits is there).
fn block_layer(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("blk.")?.trim_start();
    let (neg, digits) = match rest.as_bytes().first()? {
        b'-' => (true, &rest[1..]),
        b'+' => (false, &rest[1..]),
        _ => (false, rest),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let v: i64 = digits[..end].parse().ok()?;
    let v = if neg { -v } else { v };
    Some(v as i32)
}

/// `ggml_n_dims`: dimensions up to the last one larger than 1 (at least 1).
fn n_dims(ne: &[u64]) -> usize {
    ne.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// Whether llama-quantize converts this tensor at all (`tensor_allows_quantization` with
/// default parameters); other tensors are copied unchanged. The architecture-specific
/// exclusions for glm5-next are not included.
pub fn allows_quantization(name: &str, ne: &[u64]) -> bool {
    const EXCLUDED_PARTS: [&str; 35] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    if n_dims(ne) < 2 {
        return false;
    }
    // `name.rfind("weight") == name.size() - 6`: with size_t wrap-around this also holds for
    // every 5-character name, which is reproduced here.
    let ends_with_weight = name.ends_with("weight") || name.len() == 5;
    ends_with_weight
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !EXCLUDED_PARTS.iter().any(|p| name.contains(p))
}

/// The broad tensor roles the mix rules distinguish (`tensor_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

impl Category {
    /// `tensor_get_category`: first match wins, substrings as in the C++.
    fn of(name: &str) -> Self {
        if name == "output.weight" {
            return Category::Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return Category::TokenEmbd;
        }
        const BY_PART: [(&str, Category); 9] = [
            ("attn_qkv.weight", Category::AttnQkv),
            ("attn_kv_b.weight", Category::AttnKvB),
            ("attn_v.weight", Category::AttnV),
            ("attn_k.weight", Category::AttnK),
            ("attn_q.weight", Category::AttnQ),
            ("attn_output.weight", Category::AttnOutput),
            ("ffn_up", Category::FfnUp),
            ("ffn_gate", Category::FfnGate),
            ("ffn_down", Category::FfnDown),
        ];
        BY_PART
            .iter()
            .find(|(part, _)| name.contains(part))
            .map_or(Category::Other, |&(_, c)| c)
    }

    /// `category_is_attn_v`: the fused QKV and MLA kv_b projections count as attn_v.
    fn is_attn_v(self) -> bool {
        matches!(
            self,
            Category::AttnV | Category::AttnQkv | Category::AttnKvB
        )
    }
}

/// `use_more_bits`: the first and last eighth of the layers and every third one in between.
fn use_more_bits(i_layer: i32, n_layers: i32) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// `tensor_type_fallback`: a type whose block does not divide the row length `ne[0]` is
/// replaced by a 32-block type of similar size, and by F16 if even that does not fit.
fn fallback(ty: GgmlType, ncols: u64) -> GgmlType {
    if ncols.is_multiple_of(ty.block_size() as u64) {
        return ty;
    }
    let alt = match ty {
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    };
    if ncols.is_multiple_of(alt.block_size() as u64) {
        alt
    } else {
        GgmlType::F16
    }
}

/// llama-quantize's per-tensor type choice with its running counters.
///
/// Create it from all tensor names of the model, then call [`MixPlanner::next_type`] once per
/// tensor in [`compare_tensor_names`] order: the `attn_v` and `ffn_*` counters advance as in
/// llama-quantize's loop, so the order matters. [`plan_tensor_types`] does both.
#[derive(Debug, Clone)]
pub struct MixPlanner {
    mix: QuantMix,
    model: MixModel,
    /// No `output.weight` in the model: `token_embd` doubles as the output and is treated so.
    tied_embeddings: bool,
    n_attention_wv: i32,
    i_attention_wv: i32,
    i_ffn_down: i32,
    i_ffn_gate: i32,
    i_ffn_up: i32,
}

impl MixPlanner {
    /// Counts what `init_quantize_state_counters` counts over `names`, all tensor names of the
    /// model (any order).
    pub fn new<'a>(
        mix: QuantMix,
        model: MixModel,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut n_attention_wv = 0;
        let mut tied_embeddings = true;
        for name in names {
            let cat = Category::of(name);
            if cat.is_attn_v() {
                n_attention_wv += 1;
            }
            if cat == Category::Output {
                tied_embeddings = false;
            }
        }
        MixPlanner {
            mix,
            model,
            tied_embeddings,
            n_attention_wv,
            i_attention_wv: 0,
            i_ffn_down: 0,
            i_ffn_gate: 0,
            i_ffn_up: 0,
        }
    }

    /// The type llama-quantize writes `t` in (`llama_tensor_get_type`); `t.ty` when the tensor
    /// is copied unchanged. Call in [`compare_tensor_names`] order.
    pub fn next_type(&mut self, t: &TensorDesc<'_>) -> Result<GgmlType, MixError> {
        if !allows_quantization(t.name, t.ne) {
            return Ok(t.ty);
        }
        let default = self.mix.default_type();
        if !default.is_quantized() {
            return Ok(default);
        }
        let chosen = self.mix_rules(t, default)?;
        Ok(fallback(chosen, t.ne.first().copied().unwrap_or(1)))
    }

    /// `(i_layer, n_layer)` for an FFN tensor (`layer_info`): the running counter for dense
    /// models, the `blk.N.` number for MoE models whose expert tensors are not consecutive.
    fn layer_info(&self, counter: i32, name: &str) -> Result<(i32, i32), MixError> {
        let n_layer = self.model.n_layer as i32;
        if self.model.n_expert <= 1 {
            return Ok((counter, n_layer));
        }
        let layer = block_layer(name).ok_or_else(|| MixError::NoLayer(name.to_owned()))?;
        if layer < 0 || layer >= n_layer {
            return Err(MixError::BadLayer {
                name: name.to_owned(),
                layer,
                n_layer: self.model.n_layer,
            });
        }
        Ok((layer, n_layer))
    }

    /// `llama_tensor_get_type_impl` for the mixes of [`QuantMix`].
    fn mix_rules(&mut self, t: &TensorDesc<'_>, default: GgmlType) -> Result<GgmlType, MixError> {
        use GgmlType as T;
        use QuantMix as M;
        let mix = self.mix;
        let falcon = self.model.is_falcon();
        let n_expert = self.model.n_expert;
        let category = Category::of(t.name);
        let mut new_type = default;

        if category == Category::Output || (self.tied_embeddings && category == Category::TokenEmbd)
        {
            let nx = t.ne.first().copied().unwrap_or(1);
            if falcon || !nx.is_multiple_of(default.block_size() as u64) {
                new_type = T::Q8_0;
            } else if new_type != T::Q8_0 {
                new_type = T::Q6_K;
            }
        } else if category == Category::TokenEmbd {
            // Only the IQ*/TQ* mixes change an untied token_embd.
        } else if category.is_attn_v() {
            // The C++ has a later ATTENTION_QKV branch (Q4_K_M -> Q5_K, ...), but this branch
            // catches attn_qkv first, so that one is never reached.
            let (i, n) = (self.i_attention_wv, self.n_attention_wv);
            match mix {
                M::Q2_K => {
                    new_type = if self.model.n_gqa() >= 4 {
                        T::Q4_K
                    } else {
                        T::Q3_K
                    }
                }
                M::Q3_K_M => new_type = if i < 2 { T::Q5_K } else { T::Q4_K },
                M::Q3_K_L => new_type = T::Q5_K,
                M::Q4_K_M | M::Q5_K_M if use_more_bits(i, n) => new_type = T::Q6_K,
                M::Q4_K_S if i < 4 => new_type = T::Q5_K,
                _ => {}
            }
            // 70B models share attn_v across 8 query heads, so it is small: give it more bits.
            if self.model.is_70b() && matches!(new_type, T::Q3_K | T::Q4_K) {
                new_type = T::Q5_K;
            }
            if n_expert == 8 {
                new_type = T::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if category == Category::AttnK {
            if n_expert == 8 {
                new_type = T::Q8_0;
            }
        } else if category == Category::AttnQ {
            // Only the IQ3 mixes change attn_q.
        } else if category == Category::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, t.name)?;
            match mix {
                M::Q2_K => new_type = T::Q3_K,
                M::Q3_K_M => {
                    new_type = if i < n / 16 {
                        T::Q5_K
                    } else if !falcon || use_more_bits(i, n) {
                        T::Q4_K
                    } else {
                        T::Q3_K
                    }
                }
                M::Q3_K_L => new_type = if falcon { T::Q4_K } else { T::Q5_K },
                M::Q4_K_M if falcon => {
                    new_type = if i < n / 16 {
                        T::Q6_K
                    } else if use_more_bits(i, n) {
                        T::Q5_K
                    } else {
                        T::Q4_K
                    }
                }
                M::Q4_K_M | M::Q5_K_M if use_more_bits(i, n) => new_type = T::Q6_K,
                M::Q4_K_S if !falcon && i < n / 8 => new_type = T::Q5_K,
                // (Q4_0/Q5_0 -> Q4_1/Q5_1 applies only with an imatrix.)
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if category == Category::AttnOutput {
            if falcon {
                if mix == M::Q3_K_L {
                    new_type = T::Q4_K;
                }
            } else if n_expert == 8 {
                if matches!(mix, M::Q2_K | M::Q3_K_S | M::Q3_K_M | M::Q4_K_S | M::Q4_K_M) {
                    new_type = T::Q5_K;
                }
            } else {
                match mix {
                    M::Q2_K => new_type = T::Q3_K,
                    M::Q3_K_M => new_type = T::Q4_K,
                    M::Q3_K_L => new_type = T::Q5_K,
                    _ => {}
                }
            }
        } else if category == Category::FfnGate {
            // Only IQ3_XS changes ffn_gate/ffn_up, but the layer check still applies.
            self.layer_info(self.i_ffn_gate, t.name)?;
            self.i_ffn_gate += 1;
        } else if category == Category::FfnUp {
            self.layer_info(self.i_ffn_up, t.name)?;
            self.i_ffn_up += 1;
        }
        Ok(new_type)
    }
}

/// The type llama-quantize gives every tensor of a model, in the order of `tensors` (which may
/// be any order; the counters run in [`compare_tensor_names`] order as in llama-quantize).
pub fn plan_tensor_types(
    mix: QuantMix,
    model: &MixModel,
    tensors: &[TensorDesc<'_>],
) -> Result<Vec<GgmlType>, MixError> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| compare_tensor_names(tensors[a].name, tensors[b].name));
    let mut planner = MixPlanner::new(mix, model.clone(), tensors.iter().map(|t| t.name));
    let mut types = vec![GgmlType::F32; tensors.len()];
    for i in order {
        types[i] = planner.next_type(&tensors[i])?;
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;
    use GgmlType as T;

    /// A llama-like model's tensors in GGUF naming: (name, ne, type as converted to F16).
    fn llama_like(
        n_layer: usize,
        n_embd: u64,
        n_ff: u64,
        n_kv: u64,
        tied: bool,
    ) -> Vec<(String, Vec<u64>, T)> {
        let mut v = vec![
            ("token_embd.weight".to_owned(), vec![n_embd, 1000], T::F16),
            ("output_norm.weight".to_owned(), vec![n_embd], T::F32),
        ];
        if !tied {
            v.push(("output.weight".to_owned(), vec![n_embd, 1000], T::F16));
        }
        for i in 0..n_layer {
            let b = |s: &str| format!("blk.{i}.{s}");
            v.extend([
                (b("attn_norm.weight"), vec![n_embd], T::F32),
                (b("attn_q.weight"), vec![n_embd, n_embd], T::F16),
                (b("attn_k.weight"), vec![n_embd, n_kv], T::F16),
                (b("attn_v.weight"), vec![n_embd, n_kv], T::F16),
                (b("attn_output.weight"), vec![n_embd, n_embd], T::F16),
                (b("ffn_norm.weight"), vec![n_embd], T::F32),
                (b("ffn_gate.weight"), vec![n_embd, n_ff], T::F16),
                (b("ffn_up.weight"), vec![n_embd, n_ff], T::F16),
                (b("ffn_down.weight"), vec![n_ff, n_embd], T::F16),
            ]);
        }
        v
    }

    fn model(arch: &str, n_layer: u32, n_head: u32, n_head_kv: u32) -> MixModel {
        MixModel {
            arch: arch.to_owned(),
            n_layer,
            n_head,
            n_head_kv,
            n_expert: 0,
        }
    }

    /// Plans `tensors` and returns a name -> type lookup.
    fn plan(mix: QuantMix, m: &MixModel, tensors: &[(String, Vec<u64>, T)]) -> impl Fn(&str) -> T {
        let descs: Vec<TensorDesc> = tensors
            .iter()
            .map(|(n, ne, ty)| TensorDesc {
                name: n,
                ne,
                ty: *ty,
            })
            .collect();
        let types = plan_tensor_types(mix, m, &descs).unwrap();
        let map: std::collections::HashMap<String, T> =
            tensors.iter().map(|t| t.0.clone()).zip(types).collect();
        move |name: &str| map[name]
    }

    #[test]
    fn q4_k_m_on_32_layer_llama() {
        let t = llama_like(32, 4096, 11008, 1024, false);
        let ty = plan(QuantMix::Q4_K_M, &model("llama", 32, 32, 8), &t);
        let more_bits = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
        for i in 0..32 {
            let want = if more_bits.contains(&i) {
                T::Q6_K
            } else {
                T::Q4_K
            };
            assert_eq!(ty(&format!("blk.{i}.attn_v.weight")), want, "attn_v {i}");
            assert_eq!(
                ty(&format!("blk.{i}.ffn_down.weight")),
                want,
                "ffn_down {i}"
            );
            for other in ["attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"] {
                assert_eq!(
                    ty(&format!("blk.{i}.{other}.weight")),
                    T::Q4_K,
                    "{other} {i}"
                );
            }
            assert_eq!(ty(&format!("blk.{i}.attn_norm.weight")), T::F32);
        }
        assert_eq!(ty("output.weight"), T::Q6_K);
        assert_eq!(ty("token_embd.weight"), T::Q4_K);
        assert_eq!(ty("output_norm.weight"), T::F32);
    }

    /// ORACLES.md §3: llama-quantize on a 4-layer model.
    #[test]
    fn four_layers_q4_k_m_and_q5_k_m() {
        let t = llama_like(4, 256, 512, 64, false);
        for (mix, base) in [(QuantMix::Q4_K_M, T::Q4_K), (QuantMix::Q5_K_M, T::Q5_K)] {
            let ty = plan(mix, &model("llama", 4, 4, 1), &t);
            for i in 0..4 {
                let want = if i >= 2 { T::Q6_K } else { base };
                assert_eq!(ty(&format!("blk.{i}.attn_v.weight")), want);
                assert_eq!(ty(&format!("blk.{i}.ffn_down.weight")), want);
            }
            assert_eq!(ty("output.weight"), T::Q6_K);
            assert_eq!(ty("token_embd.weight"), base);
        }
    }

    #[test]
    fn table_of_mix_rules() {
        // (mix, arch, n_layer, n_head, n_head_kv, tensor, expected)
        let cases: &[(QuantMix, &str, u32, u32, u32, &str, T)] = &[
            (
                QuantMix::Q2_K,
                "llama",
                16,
                32,
                8,
                "blk.5.attn_v.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q2_K,
                "llama",
                16,
                32,
                16,
                "blk.5.attn_v.weight",
                T::Q3_K,
            ),
            (
                QuantMix::Q2_K,
                "llama",
                16,
                32,
                8,
                "blk.5.ffn_down.weight",
                T::Q3_K,
            ),
            (
                QuantMix::Q2_K,
                "llama",
                16,
                32,
                8,
                "blk.5.attn_output.weight",
                T::Q3_K,
            ),
            (
                QuantMix::Q2_K,
                "llama",
                16,
                32,
                8,
                "blk.5.attn_q.weight",
                T::Q2_K,
            ),
            (
                QuantMix::Q3_K_S,
                "llama",
                16,
                32,
                8,
                "blk.0.attn_v.weight",
                T::Q3_K,
            ),
            (
                QuantMix::Q3_K_S,
                "llama",
                16,
                32,
                8,
                "output.weight",
                T::Q6_K,
            ),
            (
                QuantMix::Q3_K_M,
                "llama",
                32,
                32,
                8,
                "blk.1.attn_v.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q3_K_M,
                "llama",
                32,
                32,
                8,
                "blk.2.attn_v.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q3_K_M,
                "llama",
                32,
                32,
                8,
                "blk.1.ffn_down.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q3_K_M,
                "llama",
                32,
                32,
                8,
                "blk.2.ffn_down.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q3_K_M,
                "llama",
                32,
                32,
                8,
                "blk.2.attn_output.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q3_K_L,
                "llama",
                32,
                32,
                8,
                "blk.9.attn_v.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q3_K_L,
                "llama",
                32,
                32,
                8,
                "blk.9.ffn_down.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q3_K_L,
                "llama",
                32,
                32,
                8,
                "blk.9.attn_output.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q4_K_S,
                "llama",
                32,
                32,
                8,
                "blk.3.attn_v.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q4_K_S,
                "llama",
                32,
                32,
                8,
                "blk.4.attn_v.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q4_K_S,
                "llama",
                32,
                32,
                8,
                "blk.3.ffn_down.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q4_K_S,
                "llama",
                32,
                32,
                8,
                "blk.4.ffn_down.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q5_K_S,
                "llama",
                32,
                32,
                8,
                "blk.0.attn_v.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q5_K_S,
                "llama",
                32,
                32,
                8,
                "output.weight",
                T::Q6_K,
            ),
            (QuantMix::Q6_K, "llama", 32, 32, 8, "output.weight", T::Q6_K),
            (
                QuantMix::Q6_K,
                "llama",
                32,
                32,
                8,
                "token_embd.weight",
                T::Q6_K,
            ),
            (QuantMix::Q8_0, "llama", 32, 32, 8, "output.weight", T::Q8_0),
            (
                QuantMix::Q8_0,
                "llama",
                32,
                32,
                8,
                "blk.0.attn_v.weight",
                T::Q8_0,
            ),
            (QuantMix::Q4_0, "llama", 32, 32, 8, "output.weight", T::Q6_K),
            (
                QuantMix::Q4_0,
                "llama",
                32,
                32,
                8,
                "blk.0.ffn_down.weight",
                T::Q4_0,
            ),
            (
                QuantMix::Q5_1,
                "llama",
                32,
                32,
                8,
                "token_embd.weight",
                T::Q5_1,
            ),
            (QuantMix::F16, "llama", 32, 32, 8, "output.weight", T::F16),
            (
                QuantMix::F16,
                "llama",
                32,
                32,
                8,
                "blk.0.ffn_norm.weight",
                T::F32,
            ),
            (
                QuantMix::BF16,
                "llama",
                32,
                32,
                8,
                "blk.0.attn_q.weight",
                T::BF16,
            ),
            (
                QuantMix::F32,
                "llama",
                32,
                32,
                8,
                "blk.0.attn_q.weight",
                T::F32,
            ),
            // 70B class (80 layers, GQA): Q3_K/Q4_K attn_v is bumped to Q5_K.
            (
                QuantMix::Q4_K_M,
                "llama",
                80,
                64,
                8,
                "blk.40.attn_v.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q4_K_M,
                "llama",
                80,
                64,
                64,
                "blk.40.attn_v.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q3_K_S,
                "qwen2",
                80,
                64,
                8,
                "blk.40.attn_v.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q4_K_M,
                "qwen3",
                80,
                64,
                8,
                "blk.40.attn_v.weight",
                T::Q4_K,
            ),
            // falcon variants
            (
                QuantMix::Q4_K_M,
                "falcon",
                32,
                32,
                8,
                "output.weight",
                T::Q8_0,
            ),
            (
                QuantMix::Q4_K_M,
                "falcon",
                32,
                32,
                8,
                "blk.1.ffn_down.weight",
                T::Q6_K,
            ),
            (
                QuantMix::Q4_K_M,
                "falcon",
                32,
                32,
                8,
                "blk.6.ffn_down.weight",
                T::Q5_K,
            ),
            (
                QuantMix::Q4_K_M,
                "falcon",
                32,
                32,
                8,
                "blk.7.ffn_down.weight",
                T::Q4_K,
            ),
            (
                QuantMix::Q3_K_M,
                "falcon",
                32,
                32,
                8,
                "blk.7.ffn_down.weight",
                T::Q3_K,
            ),
            (
                QuantMix::Q3_K_L,
                "falcon",
                32,
                32,
                8,
                "blk.7.attn_output.weight",
                T::Q4_K,
            ),
        ];
        for &(mix, arch, n_layer, n_head, n_kv, name, want) in cases {
            let t = llama_like(n_layer as usize, 512, 1024, 128, false);
            let ty = plan(mix, &model(arch, n_layer, n_head, n_kv), &t);
            assert_eq!(ty(name), want, "{mix} {arch} {n_layer}L {name}");
        }
    }

    #[test]
    fn tied_embeddings_get_output_treatment() {
        let t = llama_like(4, 256, 512, 64, true);
        let ty = plan(QuantMix::Q4_K_M, &model("gemma3", 4, 4, 1), &t);
        assert_eq!(ty("token_embd.weight"), T::Q6_K);
        let ty = plan(QuantMix::Q8_0, &model("gemma3", 4, 4, 1), &t);
        assert_eq!(ty("token_embd.weight"), T::Q8_0);
    }

    /// phi3's fused attn_qkv counts as attn_v (and the dedicated QKV rule is unreachable).
    #[test]
    fn fused_qkv_follows_attn_v_rules() {
        let mut t = Vec::new();
        for i in 0..8 {
            t.push((format!("blk.{i}.attn_qkv.weight"), vec![256, 768], T::F16));
        }
        let ty = plan(QuantMix::Q4_K_M, &model("phi3", 8, 4, 4), &t);
        // use_more_bits(i, 8): i < 1, i >= 7, (i - 1) % 3 == 2 -> 0, 3, 6, 7
        let want = [
            T::Q6_K,
            T::Q4_K,
            T::Q4_K,
            T::Q6_K,
            T::Q4_K,
            T::Q4_K,
            T::Q6_K,
            T::Q6_K,
        ];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(ty(&format!("blk.{i}.attn_qkv.weight")), *w, "layer {i}");
        }
        let ty = plan(QuantMix::Q3_K_M, &model("phi3", 8, 4, 4), &t);
        assert_eq!(ty("blk.0.attn_qkv.weight"), T::Q5_K);
        assert_eq!(ty("blk.2.attn_qkv.weight"), T::Q4_K);
    }

    #[test]
    fn incompatible_rows_fall_back() {
        // qwen2-0.5B-like: n_embd 896 is a multiple of 32 but not of 256.
        let t = llama_like(2, 896, 4864, 128, false);
        let ty = plan(QuantMix::Q4_K_M, &model("qwen2", 2, 14, 2), &t);
        assert_eq!(ty("blk.0.attn_q.weight"), T::Q5_0);
        assert_eq!(ty("blk.0.attn_v.weight"), T::Q5_0);
        assert_eq!(ty("blk.1.attn_v.weight"), T::Q8_0); // Q6_K -> Q8_0
        assert_eq!(ty("output.weight"), T::Q8_0);
        // ne[0] = 4864 = 19 * 256 fits.
        assert_eq!(ty("blk.0.ffn_down.weight"), T::Q4_K);
        assert_eq!(ty("blk.1.ffn_down.weight"), T::Q6_K);
        let ty = plan(QuantMix::Q5_K_S, &model("qwen2", 2, 14, 2), &t);
        assert_eq!(ty("blk.0.attn_q.weight"), T::Q5_1);
        let ty = plan(QuantMix::Q3_K_S, &model("qwen2", 2, 14, 2), &t);
        assert_eq!(ty("blk.0.attn_q.weight"), T::Q4_0);
        // Not even a multiple of 32.
        let odd = vec![("blk.0.attn_q.weight".to_owned(), vec![100, 100], T::F16)];
        let ty = plan(QuantMix::Q4_K_M, &model("llama", 1, 1, 1), &odd);
        assert_eq!(ty("blk.0.attn_q.weight"), T::F16);
        let ty = plan(QuantMix::Q8_0, &model("llama", 1, 1, 1), &odd);
        assert_eq!(ty("blk.0.attn_q.weight"), T::F16);
    }

    #[test]
    fn moe_rules_and_layer_errors() {
        let mut m = model("llama", 4, 32, 8);
        m.n_expert = 8;
        let t = llama_like(4, 256, 512, 64, false);
        let ty = plan(QuantMix::Q4_K_M, &m, &t);
        assert_eq!(ty("blk.1.attn_v.weight"), T::Q8_0);
        assert_eq!(ty("blk.1.attn_k.weight"), T::Q8_0);
        assert_eq!(ty("blk.1.attn_output.weight"), T::Q5_K);
        let bad = [TensorDesc {
            name: "blk.9.ffn_down.weight",
            ne: &[256, 256],
            ty: T::F16,
        }];
        assert!(matches!(
            plan_tensor_types(QuantMix::Q4_K_M, &m, &bad),
            Err(MixError::BadLayer { layer: 9, .. })
        ));
    }

    #[test]
    fn which_tensors_are_quantized() {
        assert!(allows_quantization("blk.0.attn_q.weight", &[64, 64]));
        assert!(!allows_quantization("blk.0.attn_q.bias", &[64, 64]));
        assert!(!allows_quantization("blk.0.attn_norm.weight", &[64, 64]));
        assert!(!allows_quantization("blk.0.ffn_gate_inp.weight", &[64, 8]));
        assert!(!allows_quantization("blk.0.attn_q.weight", &[64]));
        assert!(!allows_quantization("blk.0.attn_q.weight", &[64, 1, 1]));
        assert!(allows_quantization(
            "blk.0.ffn_up_exps.weight",
            &[64, 64, 8]
        ));
        assert!(!allows_quantization("position_embd.weight", &[64, 64]));
        assert!(!allows_quantization("v.patch_embd.weight", &[64, 64]));
        assert!(allows_quantization("rope_freqs.weight", &[64, 64]));
        // The C++ end-of-name check wraps around for 5-character names.
        assert!(allows_quantization("abcde", &[64, 64]));
        assert!(!allows_quantization("abcdef", &[64, 64]));
    }

    #[test]
    fn weights_map_order() {
        let mut names = vec![
            "blk.10.attn_q.weight",
            "output.weight",
            "blk.2.ffn_down.weight",
            "blk.2.attn_k.weight",
            "token_embd.weight",
            "blk.9.attn_q.weight",
            "output_norm.weight",
        ];
        names.sort_by(|a, b| compare_tensor_names(a, b));
        assert_eq!(
            names,
            [
                "output.weight",
                "output_norm.weight",
                "token_embd.weight",
                "blk.2.attn_k.weight",
                "blk.2.ffn_down.weight",
                "blk.9.attn_q.weight",
                "blk.10.attn_q.weight",
            ]
        );
    }

    #[test]
    fn parse_mix_names() {
        assert_eq!(QuantMix::parse("q4_k_m"), Some(QuantMix::Q4_K_M));
        assert_eq!(QuantMix::parse("Q4_K"), Some(QuantMix::Q4_K_M));
        assert_eq!(QuantMix::parse("q3_k"), Some(QuantMix::Q3_K_M));
        assert_eq!(QuantMix::parse("bf16"), Some(QuantMix::BF16));
        assert_eq!(QuantMix::parse("15"), Some(QuantMix::Q4_K_M));
        assert_eq!(QuantMix::parse("7"), Some(QuantMix::Q8_0));
        assert_eq!(QuantMix::parse("iq4_xs"), None);
        assert_eq!(QuantMix::parse("4"), None);
        assert!("Q9_K".parse::<QuantMix>().is_err());
        for m in QuantMix::ALL {
            assert_eq!(m.name().parse::<QuantMix>(), Ok(m));
        }
        assert_eq!(QuantMix::Q4_K_M.file_type(), 15);
        assert_eq!(QuantMix::Q5_K_M.default_type(), T::Q5_K);
    }
}
