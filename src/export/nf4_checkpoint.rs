//! The `merged_4bit` output: linear weights as bitsandbytes NF4 with double quantization in the
//! serialized layout transformers writes, everything else in the compute dtype.
//!
//! Weights are quantized from the merged values rounded to 16-bit, exactly as bitsandbytes
//! quantizes the merged 16-bit model. 4-bit weights of the base that the adapter leaves alone are
//! copied byte for byte when they are already NF4/64/double-quantized, instead of going through
//! a lossy dequantize-requantize round trip.

use super::hf_checkpoint::{encode_floats, pt_metadata, shard_groups, SupportFiles};
use super::plan::{Plan, StreamTensor};
use super::sharded::ShardedWriter;
use super::writer::Writer;
use crate::error::Result;
use crate::formats::safetensors::{Dtype, TensorSpec};
use crate::io::OutputDir;
use crate::model::bnb::Bnb4Weight;
use crate::model::tensor::DenseTensor;
use crate::model::{FloatType, HfConfig, Storage};
use crate::quant::bnb4::{self, Bnb4Kind, QuantState, NESTED_BLOCKSIZE};
use serde_json::{json, Value};

/// Blocksize of the export, transformers' default.
const BLOCKSIZE: usize = 64;
/// torch's mean of a long absmax vector depends on its thread count; quantizing as one thread
/// makes our output independent of the machine (it only matters above 2 M weights per tensor).
const MEAN_THREADS: usize = 1;
/// Bytes copied per read when passing a base weight through.
const COPY_CHUNK: u64 = 8 << 20;

/// Whether transformers' 4-bit loading quantizes this tensor: every `nn.Linear` weight except
/// the output head. Embeddings and norms stay in 16-bit.
pub fn is_quantized_linear(t: &StreamTensor) -> bool {
    t.shape.len() == 2
        && t.name.ends_with(".weight")
        && t.name != "lm_head.weight"
        && !t.name.contains("embed")
}

/// What the writer does with one tensor.
enum Mode {
    /// Stored in the compute dtype.
    Plain,
    /// Quantized here; absmax of the blocks so far waits for the end of the tensor.
    Quantize {
        shape: Vec<usize>,
        absmax: Vec<f32>,
        state_len: usize,
    },
    /// Copied from the base's identical 4-bit encoding.
    Copy(Box<Bnb4Weight>),
}

/// The `merged_4bit` writer.
pub struct Nf4Writer<'o> {
    shards: ShardedWriter<'o>,
    out: &'o dyn OutputDir,
    dtype: FloatType,
    modes: Vec<Mode>,
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
        BLOCKSIZE,
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

/// The base weight to copy, if `t` is an untouched 4-bit weight already in the export's encoding.
fn copyable(t: &StreamTensor, dtype: FloatType) -> Option<Box<Bnb4Weight>> {
    match &t.source.storage {
        Storage::Bnb4(q) if !t.modified => {
            let s = &q.state;
            let same = s.quant_type == Bnb4Kind::Nf4
                && s.blocksize == BLOCKSIZE
                && s.dtype == dtype
                && s.nested.is_some_and(|n| n.blocksize == NESTED_BLOCKSIZE);
            same.then(|| q.clone())
        }
        _ => None,
    }
}

/// The tensors of one 4-bit weight in file order; `state_len` is the quant-state JSON length.
fn group_specs(name: &str, numel: usize, state_len: usize) -> Vec<TensorSpec> {
    let blocks = numel.div_ceil(BLOCKSIZE);
    let spec = |suffix: &str, dtype: Dtype, shape: Vec<usize>| TensorSpec {
        name: format!("{name}{suffix}"),
        dtype,
        shape,
    };
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
}

impl<'o> Nf4Writer<'o> {
    /// Lays out the checkpoint for `plan`.
    pub fn new(out: &'o dyn OutputDir, plan: &Plan, support: SupportFiles) -> Self {
        let dtype = plan.base_dtype;
        let mut groups = Vec::with_capacity(plan.tensors.len());
        let mut modes = Vec::with_capacity(plan.tensors.len());
        for t in &plan.tensors {
            let numel: usize = t.shape.iter().product();
            let (group, mode) = if let Some(q) = copyable(t, dtype) {
                (
                    group_specs(&t.name, numel, q.state.to_json_bytes().len()),
                    Mode::Copy(q),
                )
            } else if is_quantized_linear(t) {
                let state_len = reserved_state_len(&t.shape, dtype);
                let mode = Mode::Quantize {
                    shape: t.shape.clone(),
                    absmax: Vec::new(),
                    state_len,
                };
                (group_specs(&t.name, numel, state_len), mode)
            } else {
                (
                    vec![TensorSpec {
                        name: t.name.clone(),
                        dtype: dtype.safetensors(),
                        shape: t.shape.clone(),
                    }],
                    Mode::Plain,
                )
            };
            groups.push(group);
            modes.push(mode);
        }
        let mut config = plan.merged_config.clone();
        config.set_dtype(dtype);
        config
            .raw
            .insert("quantization_config".into(), quantization_config(dtype));
        Nf4Writer {
            shards: ShardedWriter::new(
                out,
                "merged_4bit",
                shard_groups(groups, plan.options.max_shard_size),
                &pt_metadata(),
            ),
            out,
            dtype,
            modes,
            names: plan.tensors.iter().map(|t| t.name.clone()).collect(),
            allow_nonfinite: plan.options.allow_nonfinite,
            config,
            support,
            nested_map: bnb4::dynamic_map(true),
        }
    }

    fn copy_raw(&mut self, t: &DenseTensor) -> Result<()> {
        let mut at = t.raw.bytes.start;
        let mut buf = Vec::new();
        while at < t.raw.bytes.end {
            let n = (t.raw.bytes.end - at).min(COPY_CHUNK) as usize;
            buf.resize(n, 0);
            t.file.file.read_at(at, &mut buf)?;
            self.shards.write(&buf)?;
            at += n as u64;
        }
        Ok(())
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

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Writer for Nf4Writer<'_> {
    fn row_align(&self, t: usize, tensor: &StreamTensor) -> usize {
        match self.modes[t] {
            // Chunks must start on a quantization block.
            Mode::Quantize { .. } => BLOCKSIZE / gcd(tensor.cols(), BLOCKSIZE),
            _ => 1,
        }
    }

    fn encode(&self, t: usize, _first_row: usize, rows: &[f32]) -> Result<Vec<u8>> {
        match self.modes[t] {
            Mode::Plain => encode_floats(self.dtype, rows, self.allow_nonfinite, &self.names[t]),
            Mode::Copy(_) => Ok(Vec::new()),
            Mode::Quantize { .. } => {
                // bitsandbytes quantizes the merged weights as stored in 16-bit, so round first.
                let rounded: Vec<f32> = rows.iter().map(|&v| self.dtype.round(v)).collect();
                let mut codes = vec![0u8; rows.len().div_ceil(2)];
                let mut absmax = vec![0f32; rows.len().div_ceil(BLOCKSIZE)];
                bnb4::quantize(Bnb4Kind::Nf4, BLOCKSIZE, &rounded, &mut codes, &mut absmax)
                    .expect("chunks start on a block and buffers are sized for them");
                // Chunk layout: codes length (u64), codes, then the chunk's absmax for end_tensor.
                let mut chunk = (codes.len() as u64).to_le_bytes().to_vec();
                chunk.extend(codes);
                chunk.extend(f32_bytes(&absmax));
                Ok(chunk)
            }
        }
    }

    fn write(&mut self, t: usize, chunk: Vec<u8>) -> Result<()> {
        match &mut self.modes[t] {
            Mode::Plain => self.shards.write(&chunk),
            Mode::Copy(_) => Ok(()),
            Mode::Quantize { absmax, .. } => {
                let (len, rest) = chunk.split_at(8);
                let (codes, block_absmax) =
                    rest.split_at(u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize);
                absmax.extend(
                    block_absmax
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
                );
                self.shards.write(codes)
            }
        }
    }

    fn end_tensor(&mut self, t: usize) -> Result<()> {
        match std::mem::replace(&mut self.modes[t], Mode::Plain) {
            Mode::Plain => Ok(()),
            Mode::Copy(q) => {
                let (nested_absmax, nested_map) = q
                    .nested
                    .as_ref()
                    .expect("copyable weights are double-quantized");
                self.copy_raw(&q.codes)?;
                self.copy_raw(&q.absmax)?;
                self.shards.write(&f32_bytes(Bnb4Kind::Nf4.code()))?;
                self.copy_raw(nested_absmax)?;
                self.copy_raw(nested_map)?;
                self.shards.write(&q.state.to_json_bytes())
            }
            Mode::Quantize {
                shape,
                absmax,
                state_len,
            } => {
                let dq = bnb4::double_quantize(&absmax, &self.nested_map, MEAN_THREADS);
                let mut json = state_for(&shape, self.dtype, dq.offset).to_json_bytes();
                json.resize(state_len, b' ');
                self.shards.write(&dq.codes)?;
                self.shards.write(&f32_bytes(Bnb4Kind::Nf4.code()))?;
                self.shards.write(&f32_bytes(&dq.nested_absmax))?;
                self.shards.write(&f32_bytes(&self.nested_map))?;
                self.shards.write(&json)
            }
        }
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.shards.finish()?;
        self.support.write(self.out, "merged_4bit", &self.config)
    }
}
