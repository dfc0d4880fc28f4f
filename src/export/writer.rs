//! The interface between the tensor stream and the outputs.

use super::plan::StreamTensor;
use crate::error::Result;

/// An output that consumes the tensor stream.
///
/// For each tensor the runner calls `begin_tensor`, then `encode` on row chunks (in parallel,
/// hence `&self`) and `write` with the results in row order, then `end_tensor`; after the last
/// tensor, `finish`. A writer that does not store a tensor returns an empty chunk for it.
pub trait Writer: Send + Sync {
    /// Rows per chunk must be a multiple of this for tensor `t` (e.g. whole quantization blocks).
    fn row_align(&self, _t: usize, _tensor: &StreamTensor) -> usize {
        1
    }
    /// Called before the first chunk of tensor `t`.
    fn begin_tensor(&mut self, _t: usize) -> Result<()> {
        Ok(())
    }
    /// Encodes rows starting at `first_row` (whole rows of merged f32 values).
    fn encode(&self, t: usize, first_row: usize, rows: &[f32]) -> Result<Vec<u8>>;
    /// Stores an encoded chunk; chunks arrive in row order.
    fn write(&mut self, t: usize, chunk: Vec<u8>) -> Result<()>;
    /// Called after the last chunk of tensor `t`.
    fn end_tensor(&mut self, _t: usize) -> Result<()> {
        Ok(())
    }
    /// Writes whatever remains (small files) and commits.
    fn finish(self: Box<Self>) -> Result<()>;
}
