//! The merge arithmetic on row chunks: `W + scale * (B @ A)` in f32, with DoRA's per-row
//! magnitude rescaling. Rounding to the output type happens once, later, in each writer.

use super::adapter::{Adapter, LoraPair};
use crate::dtype::FloatType;
use crate::error::{Error, Result};
use crate::kernels::fma_axpy;

/// A low-rank delta ready to apply to any rows of its weight.
pub struct Delta {
    /// `[rows, rank]`: B for linear layers, Aᵀ for transposed deltas.
    left: Vec<f32>,
    /// `[rank, cols]`: A for linear layers, Bᵀ for transposed deltas.
    right: Vec<f32>,
    rank: usize,
    rows: usize,
    cols: usize,
    scale: f32,
    magnitude: Option<Vec<f32>>,
    /// Round the scaled delta to this type before adding it (PEFT's embedding merge).
    delta_type: Option<FloatType>,
}

/// `m` (`rows` x `cols`, row-major) transposed.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

impl Delta {
    /// Reads the pair's tensors and arranges them so that row `i` of the delta is
    /// `sum_k left[i,k] * right[k,:]`; `weight_type` is the stored type of the weight it merges
    /// into.
    pub fn load(adapter: &Adapter, pair: &LoraPair, weight_type: FloatType) -> Result<Self> {
        let (a, b) = (adapter.read_f32(&pair.a)?, adapter.read_f32(&pair.b)?);
        let rank = pair.rank;
        let (a_cols, b_rows) = (pair.a.shape[1], pair.b.shape[0]);
        let (left, right, rows, cols) = if pair.transposed {
            (
                transpose(&a, rank, a_cols),
                transpose(&b, b_rows, rank),
                a_cols,
                b_rows,
            )
        } else {
            (b, a, b_rows, a_cols)
        };
        let magnitude = match &pair.magnitude {
            Some(m) => {
                let m = adapter.read_f32(m)?;
                if m.len() != rows {
                    return Err(Error::tensor(
                        &adapter.weights.file.path,
                        &pair.module,
                        format!("DoRA magnitude has {} entries for {rows} rows", m.len()),
                    ));
                }
                Some(m)
            }
            None => None,
        };
        // PEFT multiplies the f32 product by the Python float scale, which torch applies in f32.
        // PEFT's Embedding.merge casts the delta to the weight's dtype before adding it (its
        // Linear.merge does not); matching that keeps merged embeddings equal to PEFT's.
        let delta_type = pair.embedding.then_some(weight_type);
        Ok(Delta {
            left,
            right,
            rank,
            rows,
            cols,
            scale: pair.scale as f32,
            magnitude,
            delta_type,
        })
    }

    /// Output rows and columns of the delta.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Adds the delta to rows `first_row..` held in `w` (whole rows, row-major), in place.
    pub fn apply(&self, first_row: usize, w: &mut [f32]) {
        let mut acc = vec![0f32; self.cols];
        for (i, row) in w.chunks_exact_mut(self.cols).enumerate() {
            let g = first_row + i;
            acc.fill(0.0);
            for (k, &l) in self.left[g * self.rank..(g + 1) * self.rank]
                .iter()
                .enumerate()
            {
                let right = &self.right[k * self.cols..(k + 1) * self.cols];
                // torch's CPU matmul (MKL) accumulates B @ A with fused multiply-adds in
                // rank order; doing the same makes merges bit-identical to PEFT's.
                fma_axpy(&mut acc, l, right);
            }
            match self.delta_type {
                None => row
                    .iter_mut()
                    .zip(&acc)
                    .for_each(|(x, &a)| *x += a * self.scale),
                Some(t) => row
                    .iter_mut()
                    .zip(&acc)
                    .for_each(|(x, &a)| *x += t.round(a * self.scale)),
            }
            if let Some(m) = &self.magnitude {
                // DoRA: rescale the merged row to the trained magnitude (PEFT computes the norm of
                // W + delta in f32; accumulating in f64 keeps ours within rounding of it).
                let norm = row
                    .iter()
                    .map(|&x| (x as f64) * (x as f64))
                    .sum::<f64>()
                    .sqrt() as f32;
                let factor = m[g] / norm;
                row.iter_mut().for_each(|x| *x *= factor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_matches_a_direct_product() {
        // B = [[1, 2], [3, 4], [5, 6]] (3x2), A = [[1, 0, -1, 2], [0.5, 1, 1, 0]] (2x4)
        let d = Delta {
            left: vec![1., 2., 3., 4., 5., 6.],
            right: vec![1., 0., -1., 2., 0.5, 1., 1., 0.],
            rank: 2,
            rows: 3,
            cols: 4,
            scale: 0.5,
            magnitude: None,
            delta_type: None,
        };
        let mut w = vec![0f32; 8];
        d.apply(1, &mut w);
        // rows 1 and 2 of B@A: [5, 4, 1, 6] and [8, 6, 1, 10], halved
        assert_eq!(w, vec![2.5, 2., 0.5, 3., 4., 3., 0.5, 5.]);
    }
}
