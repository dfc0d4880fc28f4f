//! A sequence of safetensors shard files written as one byte stream: each shard's header is
//! written when the stream reaches it, and the shard is committed once its last byte arrives.

use crate::error::{Error, Result};
use crate::formats::hf_index::{index_json, shard_name};
use crate::formats::safetensors::{SafetensorsLayout, TensorSpec};
use crate::io::{OutputDir, OutputFile};
use std::collections::BTreeMap;
use std::io::Write;

/// Writes shards under `folder/` of an output directory.
pub struct ShardedWriter<'o> {
    out: &'o dyn OutputDir,
    folder: String,
    shards: Vec<(Vec<TensorSpec>, SafetensorsLayout)>,
    /// Index of the shard being written and bytes of its data still expected.
    current: Option<(usize, Box<dyn OutputFile>, u64)>,
    next: usize,
}

impl<'o> ShardedWriter<'o> {
    /// Lays out `shards` (each an ordered tensor list) with safetensors `metadata`.
    pub fn new(
        out: &'o dyn OutputDir,
        folder: &str,
        shards: Vec<Vec<TensorSpec>>,
        metadata: &BTreeMap<String, String>,
    ) -> Self {
        let shards = shards
            .into_iter()
            .map(|specs| {
                let layout = SafetensorsLayout::new(&specs, metadata);
                (specs, layout)
            })
            .collect();
        ShardedWriter {
            out,
            folder: folder.to_string(),
            shards,
            current: None,
            next: 0,
        }
    }

    fn file_name(&self, i: usize) -> String {
        format!("{}/{}", self.folder, shard_name(i, self.shards.len()))
    }

    /// Appends tensor data; the caller supplies bytes in layout order.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            if self.current.is_none() {
                let i = self.next;
                let name = self.file_name(i);
                let (specs, layout) = self.shards.get(i).ok_or_else(|| {
                    Error::usage(format!("internal: more data than {} holds", self.folder))
                })?;
                let mut file = self.out.create(&name)?;
                layout
                    .write_header(&mut file)
                    .map_err(|e| Error::io(&name, e))?;
                let data: u64 = specs.iter().map(TensorSpec::byte_len).sum();
                self.current = Some((i, file, data));
                self.next += 1;
            }
            let (i, file, left) = self.current.as_mut().expect("opened above");
            let take = (*left).min(bytes.len() as u64) as usize;
            file.write_all(&bytes[..take]).map_err(|e| {
                Error::io(
                    format!("{}/{}", self.folder, shard_name(*i, self.shards.len())),
                    e,
                )
            })?;
            *left -= take as u64;
            bytes = &bytes[take..];
            if *left == 0 {
                let (_, file, _) = self.current.take().expect("current shard");
                file.commit()?;
            }
        }
        Ok(())
    }

    /// Commits empty trailing shards, checks that every byte arrived, and writes the index when
    /// there is more than one shard.
    pub fn finish(mut self) -> Result<()> {
        // Shards whose tensors are all empty receive no bytes; write their headers now.
        while self.current.is_none() && self.next < self.shards.len() {
            let i = self.next;
            if self.shards[i].0.iter().any(|s| s.byte_len() > 0) {
                break;
            }
            let name = self.file_name(i);
            let mut file = self.out.create(&name)?;
            self.shards[i]
                .1
                .write_header(&mut file)
                .map_err(|e| Error::io(&name, e))?;
            file.commit()?;
            self.next += 1;
        }
        if self.current.is_some() || self.next != self.shards.len() {
            return Err(Error::usage(format!(
                "internal: {} ended before all tensor data was written",
                self.folder
            )));
        }
        if self.shards.len() > 1 {
            let mut map = BTreeMap::new();
            let mut total = 0;
            for (i, (specs, _)) in self.shards.iter().enumerate() {
                for s in specs {
                    map.insert(s.name.clone(), shard_name(i, self.shards.len()));
                    total += s.byte_len();
                }
            }
            let name = format!("{}/model.safetensors.index.json", self.folder);
            let mut file = self.out.create(&name)?;
            file.write_all(&index_json(total, &map))
                .map_err(|e| Error::io(&name, e))?;
            file.commit()?;
        }
        Ok(())
    }
}
