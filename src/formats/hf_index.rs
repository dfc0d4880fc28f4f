//! Hugging Face sharding: `model.safetensors.index.json` and the `max_shard_size` rule.

use crate::error::{Error, Result};
use crate::io::InputFile;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The parts of an index file we use.
#[derive(Debug, Deserialize)]
pub struct ShardIndex {
    /// Tensor name -> shard file name.
    pub weight_map: BTreeMap<String, String>,
}

impl ShardIndex {
    /// Parses an index file.
    pub fn read(file: &InputFile) -> Result<Self> {
        serde_json::from_slice(&file.read_all()?)
            .map_err(|e| Error::format(&file.path, format!("not a valid shard index: {e}")))
    }

    /// The distinct shard files, in name order (which is shard order for HF names).
    pub fn shard_files(&self) -> Vec<String> {
        let mut files: Vec<String> = self.weight_map.values().cloned().collect();
        files.sort();
        files.dedup();
        files
    }
}

/// Parses a size like `5GB`, `500MB`, `2GiB` or a plain byte count, as transformers does
/// (decimal units for `KB/MB/GB`, binary for `KiB/MiB/GiB`).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        _ => {
            return Err(Error::usage(format!(
                "cannot read size `{text}`: use e.g. 5GB, 500MB or 2GiB"
            )))
        }
    };
    let value: f64 = num.parse().map_err(|_| {
        Error::usage(format!(
            "cannot read size `{text}`: use e.g. 5GB, 500MB or 2GiB"
        ))
    })?;
    Ok((value * factor as f64) as u64)
}

/// Splits tensors (in write order, with their byte sizes) into shards the way transformers does:
/// start a new shard when adding a tensor would exceed `max_bytes` (a lone oversized tensor gets
/// its own shard). Returns the shard index of every tensor and the number of shards.
pub fn assign_shards(sizes: &[u64], max_bytes: u64) -> (Vec<usize>, usize) {
    let mut shard = 0;
    let mut used = 0u64;
    let mut out = Vec::with_capacity(sizes.len());
    for &size in sizes {
        if used > 0 && used + size > max_bytes {
            shard += 1;
            used = 0;
        }
        used += size;
        out.push(shard);
    }
    (out, if sizes.is_empty() { 0 } else { shard + 1 })
}

/// The file name of shard `i` of `n` (`model.safetensors` when there is one).
pub fn shard_name(i: usize, n: usize) -> String {
    if n <= 1 {
        "model.safetensors".to_string()
    } else {
        format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
    }
}

/// The index JSON for a sharded checkpoint.
pub fn index_json(total_size: u64, weight_map: &BTreeMap<String, String>) -> Vec<u8> {
    let index =
        serde_json::json!({ "metadata": { "total_size": total_size }, "weight_map": weight_map });
    let mut bytes = serde_json::to_vec_pretty(&index).expect("index serializes");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_transformers() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn shards_split_before_overflow() {
        assert_eq!(
            assign_shards(&[4, 4, 4, 10, 1], 8),
            (vec![0, 0, 1, 2, 3], 4)
        );
        assert_eq!(shard_name(0, 1), "model.safetensors");
        assert_eq!(shard_name(1, 3), "model-00002-of-00003.safetensors");
    }
}
