//! The single pass: every tensor is read once, in row chunks, dequantized and merged in f32,
//! checked, and handed to every writer; chunks run in parallel and are written in order.

use super::gguf_output::GgufOutput;
use super::hf_checkpoint::{write_file, Merged16Writer, SupportFiles};
use super::lora_gguf::write_lora_gguf;
use super::lora_output::write_lora;
use super::model_card::model_card;
use super::nf4_checkpoint::Nf4Writer;
use super::plan::{OutputKind, Plan, StreamTensor};
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::io::OutputDir;
use crate::lora::{Adapter, Delta};
use crate::model::BaseModel;
use std::ops::Range;

/// Target elements per chunk: 1 Mi f32 (4 MiB) keeps memory flat and parallel work coarse.
const CHUNK_ELEMS: usize = 1 << 20;

/// Progress reports from an export.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The stream is about to process `total` input elements in `tensors` tensors.
    Start {
        /// Number of tensors.
        tensors: usize,
        /// Number of elements across all tensors.
        total: u64,
    },
    /// Tensor `index` begins.
    Tensor {
        /// Its position in the stream.
        index: usize,
        /// Its name.
        name: &'a str,
    },
    /// `n` more elements were processed.
    Advance(u64),
    /// Small files are being written and outputs published.
    Finishing,
}

/// What an export produced.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Final paths of the published outputs.
    pub published: Vec<String>,
    /// Notes for the user.
    pub notes: Vec<String>,
}

/// Runs `plan`, writing into `out`, and publishes the outputs only if all of them succeed.
pub fn export(
    base: &BaseModel,
    adapter: Option<&Adapter>,
    plan: &Plan,
    out: &dyn OutputDir,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<Report> {
    let support = |kind| SupportFiles {
        base: base.dir.clone(),
        adapter: adapter.map(|a| a.dir.clone()),
        card: model_card(kind, plan, adapter),
    };
    let mut writers: Vec<Box<dyn Writer + '_>> = Vec::new();
    for kind in &plan.outputs {
        match kind {
            OutputKind::Lora => write_lora(out, adapter.expect("plan checked the adapter"), plan)?,
            OutputKind::LoraGguf(ty) => write_lora_gguf(
                out,
                adapter.expect("plan checked the adapter"),
                plan.lora_gguf
                    .as_ref()
                    .expect("the plan lays out requested LoRA GGUF outputs"),
                *ty,
            )?,
            OutputKind::Merged16 => {
                writers.push(Box::new(Merged16Writer::new(out, plan, support(*kind))))
            }
            OutputKind::Merged4 => {
                writers.push(Box::new(Nf4Writer::new(out, plan, support(*kind))))
            }
            OutputKind::Gguf(mix) => writers.push(Box::new(GgufOutput::new(
                out,
                plan.gguf
                    .as_ref()
                    .expect("the plan lays out requested GGUF outputs"),
                *mix,
                plan.options.allow_nonfinite,
            )?)),
            OutputKind::Ollama => {
                let modelfile = plan
                    .modelfile
                    .as_ref()
                    .expect("the plan builds the Modelfile");
                write_file(out, "Modelfile", modelfile.render().as_bytes())?
            }
        }
    }
    if !writers.is_empty() {
        let total = plan
            .tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum();
        progress(Event::Start {
            tensors: plan.tensors.len(),
            total,
        });
        for (t, tensor) in plan.tensors.iter().enumerate() {
            progress(Event::Tensor {
                index: t,
                name: &tensor.name,
            });
            stream_tensor(
                t,
                tensor,
                adapter,
                plan.options.allow_nonfinite,
                &mut writers,
                progress,
            )?;
        }
    }
    progress(Event::Finishing);
    for w in writers {
        w.finish()?;
    }
    Ok(Report {
        published: out.publish()?,
        notes: plan.notes.clone(),
    })
}

fn lcm(a: usize, b: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    a / gcd(a, b) * b
}

/// Row ranges of about `CHUNK_ELEMS` elements, each a multiple of `align` rows (but the last).
fn chunks(rows: usize, cols: usize, align: usize) -> Vec<Range<usize>> {
    let per = (CHUNK_ELEMS / cols.max(1)).max(1);
    let per = (per / align).max(1) * align;
    (0..rows)
        .step_by(per)
        .map(|s| s..(s + per).min(rows))
        .collect()
}

fn stream_tensor(
    t: usize,
    tensor: &StreamTensor,
    adapter: Option<&Adapter>,
    allow_nonfinite: bool,
    writers: &mut [Box<dyn Writer + '_>],
    progress: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    let reader = tensor.source.open()?;
    let delta = match (&tensor.lora, adapter) {
        (Some(pair), Some(a)) => Some(Delta::load(a, pair, tensor.source.dtype)?),
        _ => None,
    };
    let (rows, cols, source_rows) = (tensor.rows(), tensor.cols(), tensor.source.rows());
    let align = writers.iter().map(|w| w.row_align(t, tensor)).fold(1, lcm);
    let chunks = chunks(rows, cols, align);
    for w in writers.iter_mut() {
        w.begin_tensor(t)?;
    }
    // A window of chunks in flight at once bounds memory to a few chunks per thread.
    let window = 2 * current_threads();
    for batch in chunks.chunks(window) {
        let encode = |range: &Range<usize>| -> Result<Vec<Vec<u8>>> {
            let mut values = vec![0f32; range.len() * cols];
            // Rows past the source's end (a vocabulary grown by training) start from zero.
            let have = range.start.min(source_rows)..range.end.min(source_rows);
            reader.read_rows(have.clone(), &mut values[..have.len() * cols])?;
            if let Some(d) = &delta {
                d.apply(range.start, &mut values);
            }
            if tensor.modified && !allow_nonfinite {
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(Error::tensor(
                        tensor.source.path(),
                        &tensor.name,
                        format!("merging produced a non-finite value ({}) at row {}; the adapter may be broken (pass --allow-nonfinite to write it anyway)", values[i], range.start + i / cols),
                    ));
                }
            }
            let shared: &[Box<dyn Writer + '_>] = writers;
            shared
                .iter()
                .map(|w| w.encode(t, range.start, &values))
                .collect()
        };
        for (range, encoded) in batch.iter().zip(map_chunks(batch, encode)) {
            for (w, bytes) in writers.iter_mut().zip(encoded?) {
                w.write(t, bytes)?;
            }
            progress(Event::Advance((range.len() * cols) as u64));
        }
    }
    for w in writers.iter_mut() {
        w.end_tensor(t)?;
    }
    Ok(())
}

#[cfg(feature = "parallel")]
fn current_threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(not(feature = "parallel"))]
fn current_threads() -> usize {
    1
}

#[cfg(feature = "parallel")]
fn map_chunks<T: Send>(batch: &[Range<usize>], f: impl Fn(&Range<usize>) -> T + Sync) -> Vec<T> {
    use rayon::prelude::*;
    batch.par_iter().map(&f).collect()
}

#[cfg(not(feature = "parallel"))]
fn map_chunks<T>(batch: &[Range<usize>], f: impl Fn(&Range<usize>) -> T) -> Vec<T> {
    batch.iter().map(f).collect()
}
