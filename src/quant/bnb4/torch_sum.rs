//! torch's CPU float32 `Tensor.mean()` of a contiguous vector, reproduced operation by operation:
//! double quantization subtracts `absmax.mean()`, and that offset is stored in the checkpoint.

/// Vector width of torch's float32 sum kernel: the AVX2 and baseline builds use 8 lanes, and the
/// sum kernel has no AVX-512 build.
const LANES: usize = 8;
/// `at::internal::GRAIN_SIZE`: below this many elements a reduction runs on one thread.
const GRAIN_SIZE: usize = 32768;

/// `torch.Tensor.mean()` of a float32 vector on CPU, bit for bit: torch's cascaded sum (see
/// [`cascade_sum`]) divided in f32 by the length.
///
/// Vectors longer than 32768 (tensors of more than 2 M weights at block size 64) are summed in one
/// slice per thread, so the result depends on `torch.get_num_threads()` of the process that
/// quantized (by default the number of physical cores); pass it as `torch_threads`. Shorter
/// vectors do not depend on it.
pub fn torch_mean(values: &[f32], torch_threads: usize) -> f32 {
    torch_sum(values, torch_threads) / values.len() as f32
}

/// `TensorIterator::parallel_reduce` of a full sum: serial, or (`two_pass_reduction`) one partial
/// sum per thread's slice of `at::parallel_for`, then a sum over the per-thread buffer.
fn torch_sum(values: &[f32], threads: usize) -> f32 {
    let threads = threads.max(1);
    let n = values.len();
    // Results accumulate into zero-filled outputs (which turns a -0.0 sum into +0.0).
    if n < GRAIN_SIZE || threads == 1 {
        return 0.0 + cascade_sum(values);
    }
    let mut buffer = vec![0.0f32; threads];
    // parallel_for runs on one thread when n == GRAIN_SIZE, else on min(threads, n / GRAIN_SIZE
    // rounded up) equal slices.
    let tasks = if n > GRAIN_SIZE {
        threads.min(n.div_ceil(GRAIN_SIZE))
    } else {
        1
    };
    for (slot, slice) in buffer.iter_mut().zip(values.chunks(n.div_ceil(tasks))) {
        *slot += cascade_sum(slice);
    }
    0.0 + cascade_sum(&buffer)
}

/// The sum loop of `cascade_sum` (aten/src/ATen/native/cpu/SumKernel.cpp) over one contiguous
/// slice: whole 8-lane vectors go through a lane-wise [`row_sum`]; then the leftover elements
/// and the 8 lanes are added in order. Slices shorter than a vector use the scalar [`row_sum`].
fn cascade_sum(x: &[f32]) -> f32 {
    if x.len() < LANES {
        return row_sum::<1>(x)[0];
    }
    let whole = x.len() / LANES * LANES;
    let lanes = row_sum::<LANES>(&x[..whole]);
    let mut acc = 0.0f32;
    for &v in &x[whole..] {
        acc += v;
    }
    for lane in lanes {
        acc += lane;
    }
    acc
}

/// torch's `row_sum` over `x.len() / N` items of `N` lanes: items are taken 4 at a time into 4
/// partial sums by [`multi_row_sum`], leftover items go to the first, and the partials are
/// added in order.
fn row_sum<const N: usize>(x: &[f32]) -> [f32; N] {
    let items = x.len() / N;
    let rows = items / 4;
    let mut partial = multi_row_sum::<N>(&x[..rows * 4 * N], rows);
    for item in x[rows * 4 * N..].chunks_exact(N) {
        add(&mut partial[0], item);
    }
    let [mut first, rest @ ..] = partial;
    for p in rest {
        add(&mut first, &p);
    }
    first
}

/// torch's `multi_row_sum` with 4 rows of `N` lanes (row `k` of step `i` is item `4 i + k`): a
/// 4-level cascade that adds `2^level_power` steps into level 0, then carries each level into the
/// next until the step count is not a multiple of that level's span.
fn multi_row_sum<const N: usize>(x: &[f32], size: usize) -> [[f32; N]; 4] {
    const LEVELS: usize = 4;
    let level_power = 4.max(ceil_log2(size) / LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0.0f32; N]; 4]; LEVELS];
    let step = |acc: &mut [[f32; N]; 4], i: usize| {
        for (k, row) in acc.iter_mut().enumerate() {
            let item = (4 * i + k) * N;
            add(row, &x[item..item + N]);
        }
    };
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            step(&mut acc[0], i);
            i += 1;
        }
        for j in 1..LEVELS {
            let (below, from_j) = acc.split_at_mut(j);
            for (upper, lower) in from_j[0].iter_mut().zip(&mut below[j - 1]) {
                add(upper, lower);
                *lower = [0.0; N];
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    while i < size {
        step(&mut acc[0], i);
        i += 1;
    }
    let [mut total, rest @ ..] = acc;
    for level in rest {
        for (t, l) in total.iter_mut().zip(level) {
            add(t, &l);
        }
    }
    total
}

/// `at::native::utils::CeilLog2`.
fn ceil_log2(x: usize) -> usize {
    if x <= 2 {
        1
    } else {
        (usize::BITS - (x - 1).leading_zeros()) as usize
    }
}

#[inline]
fn add<const N: usize>(acc: &mut [f32; N], item: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(item) {
        *a += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sums_are_sequential_per_partial() {
        // Below 8 values torch adds item k into partial k % 4, then partial 0 + 1 + 2 + 3.
        let x = [1.0, 1e8, -1e8, 3.0, 5.0];
        let expected = ((1.0f32 + 5.0) + 1e8) + -1e8 + 3.0;
        assert_eq!(cascade_sum(&x), expected);
        assert_eq!(torch_mean(&[2.0], 4), 2.0);
        assert!(torch_mean(&[], 1).is_nan());
    }

    #[test]
    fn ceil_log2_matches_torch() {
        let cases = [
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (16, 4),
            (17, 5),
        ];
        for (x, want) in cases {
            assert_eq!(ceil_log2(x), want, "{x}");
        }
    }
}
