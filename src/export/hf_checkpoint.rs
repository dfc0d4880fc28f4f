//! Hugging Face checkpoint folders (shards, index, `config.json`, tokenizer, generation config,
//! model card) and the `merged_16bit` output.

use super::plan::Plan;
use super::sharded::ShardedWriter;
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::formats::hf_index::assign_shards;
use crate::formats::safetensors::TensorSpec;
use crate::io::{InputDir, OutputDir};
use crate::model::{FloatType, HfConfig, TOKENIZER_FILES};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

pub(super) fn pt_metadata() -> BTreeMap<String, String> {
    [("format".to_string(), "pt".to_string())].into()
}

/// Encodes f32 values as `dtype` little-endian bytes (round to nearest even), failing on values
/// that overflow to infinity unless non-finite output was allowed.
pub(super) fn encode_floats(
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
pub(super) fn shard_groups(groups: Vec<Vec<TensorSpec>>, max_bytes: u64) -> Vec<Vec<TensorSpec>> {
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
