//! Hugging Face checkpoint outputs: `merged_16bit` (bf16/f16 safetensors) and `merged_4bit`
//! (bitsandbytes NF4 with double quantization in its serialized layout), each a folder with
//! shards, index, `config.json`, tokenizer and generation config.

use super::plan::{Plan, StreamTensor};
use super::sharded::ShardedWriter;
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::formats::hf_index::assign_shards;
use crate::formats::safetensors::{Dtype, TensorSpec};
use crate::io::{InputDir, OutputDir};
use crate::model::{FloatType, HfConfig, TOKENIZER_FILES};
use crate::quant::bnb4::{self, Bnb4Kind, QuantState, NESTED_BLOCKSIZE};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// Blocksize of the NF4 export, transformers' default.
const NF4_BLOCKSIZE: usize = 64;
/// torch's mean of a long absmax vector depends on its thread count; quantizing as one thread
/// makes our output independent of the machine (it only matters above 2 M weights per tensor).
const MEAN_THREADS: usize = 1;

fn pt_metadata() -> BTreeMap<String, String> {
    [("format".to_string(), "pt".to_string())].into()
}

/// Encodes f32 values as `dtype` little-endian bytes (round to nearest even), failing on values
/// that overflow to infinity unless non-finite output was allowed.
fn encode_floats(
    dtype: FloatType,
    values: &[f32],
    allow_nonfinite: bool,
    name: &str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 4);
    match dtype {
        FloatType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        FloatType::Bf16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
        FloatType::F16 => {
            for v in values {
                let h = half::f16::from_f32(*v);
                if !allow_nonfinite && !h.is_finite() && v.is_finite() {
                    return Err(Error::usage(format!(
                        "tensor `{name}`: value {v} overflows float16; export with --dtype bf16, or pass --allow-nonfinite"
                    )));
                }
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// Splits per-tensor spec groups into shards of at most `max_bytes`, keeping groups whole.
fn shard_groups(groups: Vec<Vec<TensorSpec>>, max_bytes: u64) -> Vec<Vec<TensorSpec>> {
    let sizes: Vec<u64> = groups
        .iter()
        .map(|g| g.iter().map(TensorSpec::byte_len).sum())
        .collect();
    let (assignment, n) = assign_shards(&sizes, max_bytes);
    let mut shards = vec![Vec::new(); n];
    for (g, s) in groups.into_iter().zip(assignment) {
        shards[s].extend(g);
    }
    shards
}

/// The small files of an HF checkpoint folder: config, tokenizer (the adapter's wins, since
/// training may have added tokens) and generation config.
pub struct SupportFiles {
    /// The base model folder.
    pub base: Arc<dyn InputDir>,
    /// The adapter folder, if any.
    pub adapter: Option<Arc<dyn InputDir>>,
    /// The model card (`README.md`).
    pub card: String,
}

impl SupportFiles {
    /// Writes `config` and the card, and copies tokenizer and generation files into `folder`.
    pub fn write(&self, out: &dyn OutputDir, folder: &str, config: &HfConfig) -> Result<()> {
        write_file(
            out,
            &format!("{folder}/config.json"),
            &config.to_json_bytes(),
        )?;
        write_file(out, &format!("{folder}/README.md"), self.card.as_bytes())?;
        for name in TOKENIZER_FILES.iter().chain(&["generation_config.json"]) {
            let from_adapter = match (&self.adapter, *name) {
                (_, "generation_config.json") | (None, _) => None,
                (Some(a), _) => a.open(name)?,
            };
            if let Some(file) = from_adapter
                .map(Ok)
                .or_else(|| self.base.open(name).transpose())
                .transpose()?
            {
                write_file(out, &format!("{folder}/{name}"), &file.read_all()?)?;
            }
        }
        Ok(())
    }
}

/// Writes a whole small file.
pub fn write_file(out: &dyn OutputDir, name: &str, bytes: &[u8]) -> Result<()> {
    let mut f = out.create(name)?;
    f.write_all(bytes).map_err(|e| Error::io(name, e))?;
    f.commit()
}

/// `merged_16bit`: every tensor in one 16-bit dtype.
pub struct Merged16Writer<'o> {
    shards: ShardedWriter<'o>,
    out: &'o dyn OutputDir,
    dtype: FloatType,
    names: Vec<String>,
    allow_nonfinite: bool,
    config: HfConfig,
    support: SupportFiles,
}

impl<'o> Merged16Writer<'o> {
    /// Lays out the checkpoint for `plan`.
    pub fn new(out: &'o dyn OutputDir, plan: &Plan, support: SupportFiles) -> Self {
        let dtype = plan.merged_dtype();
        let groups = plan
            .tensors
            .iter()
            .map(|t| {
                vec![TensorSpec {
                    name: t.name.clone(),
                    dtype: dtype.safetensors(),
                    shape: t.shape.clone(),
                }]
            })
            .collect();
        let shards = shard_groups(groups, plan.options.max_shard_size);
        let mut config = plan.merged_config.clone();
        config.raw.remove("quantization_config");
        config.set_dtype(dtype);
        Merged16Writer {
            shards: ShardedWriter::new(out, "merged_16bit", shards, &pt_metadata()),
            out,
            dtype,
            names: plan.tensors.iter().map(|t| t.name.clone()).collect(),
            allow_nonfinite: plan.options.allow_nonfinite,
            config,
            support,
        }
    }
}

impl Writer for Merged16Writer<'_> {
    fn encode(&self, t: usize, _first_row: usize, rows: &[f32]) -> Result<Vec<u8>> {
        encode_floats(self.dtype, rows, self.allow_nonfinite, &self.names[t])
    }
    fn write(&mut self, _t: usize, chunk: Vec<u8>) -> Result<()> {
        self.shards.write(&chunk)
    }
    fn finish(self: Box<Self>) -> Result<()> {
        self.shards.finish()?;
        self.support.write(self.out, "merged_16bit", &self.config)
    }
}

/// Whether transformers' 4-bit loading quantizes this tensor: every `nn.Linear` weight except
/// the output head. Embeddings and norms stay in 16-bit.
pub fn is_quantized_linear(t: &StreamTensor) -> bool {
    t.shape.len() == 2
        && t.name.ends_with(".weight")
        && t.name != "lm_head.weight"
        && !t.name.contains("embed")
}

/// Per-tensor state of the NF4 writer.
struct Nf4Tensor {
    quantized: bool,
    numel: usize,
    shape: Vec<usize>,
    /// Absmax of the blocks written so far.
    absmax: Vec<f32>,
    /// Reserved length of the quant-state JSON.
    state_len: usize,
}

/// `merged_4bit`: linear weights as NF4 + double quantization, the rest in the compute dtype.
pub struct Nf4Writer<'o> {
    shards: ShardedWriter<'o>,
    out: &'o dyn OutputDir,
    dtype: FloatType,
    tensors: Vec<Nf4Tensor>,
    names: Vec<String>,
    allow_nonfinite: bool,
    config: HfConfig,
    support: SupportFiles,
    /// bitsandbytes' 8-bit dynamic map as x86-64 builds with FMA compute it.
    nested_map: [f32; 256],
}

fn state_for(shape: &[usize], dtype: FloatType, offset: f32) -> QuantState {
    QuantState::new(
        Bnb4Kind::Nf4,
        NF4_BLOCKSIZE,
        dtype,
        shape.to_vec(),
        Some(offset),
    )
}

/// The quant-state JSON length reserved in the header, before the double-quantization offset is
/// known: room for the longest float text, rounded up to keep following tensors 4-byte aligned.
/// The JSON is padded with trailing spaces, which JSON parsers ignore.
fn reserved_state_len(shape: &[usize], dtype: FloatType) -> usize {
    let longest_float = -1.234_567_9e-38f32;
    (state_for(shape, dtype, longest_float).to_json_bytes().len() + 8).next_multiple_of(4)
}

impl<'o> Nf4Writer<'o> {
    /// Lays out the checkpoint for `plan`.
    pub fn new(out: &'o dyn OutputDir, plan: &Plan, support: SupportFiles) -> Self {
        let dtype = plan.base_dtype;
        let mut groups = Vec::with_capacity(plan.tensors.len());
        let mut tensors = Vec::with_capacity(plan.tensors.len());
        for t in &plan.tensors {
            let numel: usize = t.shape.iter().product();
            let quantized = is_quantized_linear(t);
            let state_len = reserved_state_len(&t.shape, dtype);
            let spec = |suffix: &str, dtype: Dtype, shape: Vec<usize>| TensorSpec {
                name: format!("{}{suffix}", t.name),
                dtype,
                shape,
            };
            groups.push(if quantized {
                let blocks = numel.div_ceil(NF4_BLOCKSIZE);
                vec![
                    spec("", Dtype::U8, vec![numel.div_ceil(2), 1]),
                    spec(".absmax", Dtype::U8, vec![blocks]),
                    spec(".quant_map", Dtype::F32, vec![16]),
                    spec(
                        ".nested_absmax",
                        Dtype::F32,
                        vec![blocks.div_ceil(NESTED_BLOCKSIZE)],
                    ),
                    spec(".nested_quant_map", Dtype::F32, vec![256]),
                    spec(".quant_state.bitsandbytes__nf4", Dtype::U8, vec![state_len]),
                ]
            } else {
                vec![spec("", dtype.safetensors(), t.shape.clone())]
            });
            tensors.push(Nf4Tensor {
                quantized,
                numel,
                shape: t.shape.clone(),
                absmax: Vec::new(),
                state_len,
            });
        }
        let shards = shard_groups(groups, plan.options.max_shard_size);
        let mut config = plan.merged_config.clone();
        config.set_dtype(dtype);
        config
            .raw
            .insert("quantization_config".into(), quantization_config(dtype));
        Nf4Writer {
            shards: ShardedWriter::new(out, "merged_4bit", shards, &pt_metadata()),
            out,
            dtype,
            tensors,
            names: plan.tensors.iter().map(|t| t.name.clone()).collect(),
            allow_nonfinite: plan.options.allow_nonfinite,
            config,
            support,
            nested_map: bnb4::dynamic_map(true),
        }
    }
}

/// `quantization_config` as transformers writes it for this export.
fn quantization_config(dtype: FloatType) -> Value {
    json!({
        "_load_in_4bit": true,
        "_load_in_8bit": false,
        "bnb_4bit_compute_dtype": dtype.torch_name(),
        "bnb_4bit_quant_storage": "uint8",
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": true,
        "llm_int8_enable_fp32_cpu_offload": false,
        "llm_int8_has_fp16_weight": false,
        "llm_int8_skip_modules": null,
        "llm_int8_threshold": 6.0,
        "load_in_4bit": true,
        "load_in_8bit": false,
        "quant_method": "bitsandbytes"
    })
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Writer for Nf4Writer<'_> {
    fn row_align(&self, t: usize, tensor: &StreamTensor) -> usize {
        // Chunks must start on a quantization block.
        if self.tensors[t].quantized {
            NF4_BLOCKSIZE / gcd(tensor.cols(), NF4_BLOCKSIZE)
        } else {
            1
        }
    }

    fn encode(&self, t: usize, _first_row: usize, rows: &[f32]) -> Result<Vec<u8>> {
        if !self.tensors[t].quantized {
            return encode_floats(self.dtype, rows, self.allow_nonfinite, &self.names[t]);
        }
        // bitsandbytes quantizes the merged weights as stored in 16-bit, so round first.
        let rounded: Vec<f32> = rows.iter().map(|&v| self.dtype.round(v)).collect();
        let mut codes = vec![0u8; rows.len().div_ceil(2)];
        let mut absmax = vec![0f32; rows.len().div_ceil(NF4_BLOCKSIZE)];
        bnb4::quantize(
            Bnb4Kind::Nf4,
            NF4_BLOCKSIZE,
            &rounded,
            &mut codes,
            &mut absmax,
        )
        .expect("chunks start on a block and buffers are sized for them");
        // Chunk layout: codes length (u64), codes, then the chunk's absmax for end_tensor.
        let mut chunk = (codes.len() as u64).to_le_bytes().to_vec();
        chunk.extend(codes);
        chunk.extend(f32_bytes(&absmax));
        Ok(chunk)
    }

    fn write(&mut self, t: usize, chunk: Vec<u8>) -> Result<()> {
        let state = &mut self.tensors[t];
        if !state.quantized {
            return self.shards.write(&chunk);
        }
        let (len, rest) = chunk.split_at(8);
        let (codes, absmax) =
            rest.split_at(u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize);
        state.absmax.extend(
            absmax
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
        );
        self.shards.write(codes)
    }

    fn end_tensor(&mut self, t: usize) -> Result<()> {
        let state = &mut self.tensors[t];
        if !state.quantized {
            return Ok(());
        }
        debug_assert_eq!(state.absmax.len(), state.numel.div_ceil(NF4_BLOCKSIZE));
        let absmax = std::mem::take(&mut state.absmax);
        let dq = bnb4::double_quantize(&absmax, &self.nested_map, MEAN_THREADS);
        let mut json = state_for(&state.shape, self.dtype, dq.offset).to_json_bytes();
        json.resize(state.state_len, b' ');
        self.shards.write(&dq.codes)?;
        self.shards.write(&f32_bytes(Bnb4Kind::Nf4.code()))?;
        self.shards.write(&f32_bytes(&dq.nested_absmax))?;
        self.shards.write(&f32_bytes(&self.nested_map))?;
        self.shards.write(&json)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.shards.finish()?;
        self.support.write(self.out, "merged_4bit", &self.config)
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
