//! Strided matrix views over `f32` slices and one matrix product, on the `gemm` crate (the
//! kernels candle's CPU backend uses, with runtime AVX2/AVX-512 dispatch).
//!
//! The factored decoder multiplies many small and medium matrices whose operands are column
//! blocks of larger ones (one attention head's 16 columns of a `4096 × 128` projection) or
//! transposes; views with row and column strides make those free, and every view is checked
//! against the slice it borrows when it is made, so the product itself can trust its operands.

use std::marker::PhantomData;

/// A read-only `rows × cols` view: element `(r, c)` is at `r·rs + c·cs` from the start.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _life: PhantomData<&'a [f32]>,
}

// Views are plain borrows of `f32` data.
unsafe impl Send for MatRef<'_> {}
unsafe impl Sync for MatRef<'_> {}

/// Offset of the last element of a view plus one (0 for an empty view).
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    ///
    /// # Panics
    /// When `data` is too short (a programming error inside this crate).
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A view with explicit (non-negative) strides.
    ///
    /// # Panics
    /// When the view does not fit in `data`.
    pub(crate) fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(
            extent(rows, cols, rs, cs) <= data.len(),
            "matrix view {rows}x{cols} (strides {rs},{cs}) exceeds {} values",
            data.len()
        );
        MatRef {
            ptr: data.as_ptr(),
            rows,
            cols,
            rs: rs as isize,
            cs: cs as isize,
            _life: PhantomData,
        }
    }

    /// The transpose (no copy).
    pub(crate) fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Columns `start..start + len`.
    ///
    /// # Panics
    /// When out of range.
    pub(crate) fn cols_range(self, start: usize, len: usize) -> Self {
        assert!(
            start + len <= self.cols,
            "columns {start}+{len} of {}",
            self.cols
        );
        MatRef {
            // In bounds: the column exists (or the view is empty and never read).
            ptr: if len == 0 {
                self.ptr
            } else {
                self.ptr.wrapping_offset(start as isize * self.cs)
            },
            cols: len,
            ..self
        }
    }

    /// Rows `start..start + len`.
    ///
    /// # Panics
    /// When out of range.
    pub(crate) fn rows_range(self, start: usize, len: usize) -> Self {
        self.t().cols_range(start, len).t()
    }
}

/// A mutable `rows × cols` view.
pub(crate) struct MatMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _life: PhantomData<&'a mut [f32]>,
}

unsafe impl Send for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    ///
    /// # Panics
    /// When `data` is too short.
    pub(crate) fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A view with explicit strides. Distinct `(r, c)` must map to distinct offsets (true for
    /// every view this crate makes: `rs ≥ cols·cs` or `cs ≥ rows·rs`).
    ///
    /// # Panics
    /// When the view does not fit in `data` or elements would alias.
    pub(crate) fn strided(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        assert!(
            extent(rows, cols, rs, cs) <= data.len(),
            "matrix view {rows}x{cols} (strides {rs},{cs}) exceeds {} values",
            data.len()
        );
        assert!(
            rows <= 1 || cols <= 1 || rs >= cols * cs || cs >= rows * rs,
            "aliasing matrix view {rows}x{cols} (strides {rs},{cs})"
        );
        MatMut {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            rs: rs as isize,
            cs: cs as isize,
            _life: PhantomData,
        }
    }

    /// Columns `start..start + len`.
    ///
    /// # Panics
    /// When out of range.
    pub(crate) fn cols_range(self, start: usize, len: usize) -> Self {
        assert!(
            start + len <= self.cols,
            "columns {start}+{len} of {}",
            self.cols
        );
        MatMut {
            ptr: if len == 0 {
                self.ptr
            } else {
                self.ptr.wrapping_offset(start as isize * self.cs)
            },
            cols: len,
            ..self
        }
    }
}

/// Whether a product may split its work over the rayon pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// On the calling thread (the caller already runs one task per prompt in parallel).
    One,
    /// Over the current rayon pool.
    Pool,
}

/// `dst = scale · a · b` (or `dst += scale · a · b` with `accumulate`).
///
/// # Panics
/// On mismatched shapes.
pub(crate) fn matmul(
    dst: MatMut<'_>,
    a: MatRef<'_>,
    b: MatRef<'_>,
    scale: f32,
    accumulate: bool,
    threads: Threads,
) {
    assert_eq!(
        a.cols, b.rows,
        "inner dimensions {}x{} · {}x{}",
        a.rows, a.cols, b.rows, b.cols
    );
    assert_eq!(
        (dst.rows, dst.cols),
        (a.rows, b.cols),
        "product {}x{} · {}x{} into {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst.rows,
        dst.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for r in 0..dst.rows {
                for c in 0..dst.cols {
                    // In bounds: checked when `dst` was made.
                    unsafe { *dst.ptr.offset(r as isize * dst.rs + c as isize * dst.cs) = 0.0 };
                }
            }
        }
        return;
    }
    let par = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::Pool => match rayon::current_num_threads() {
            0 | 1 => gemm::Parallelism::None,
            n => gemm::Parallelism::Rayon(n),
        },
    };
    // Safety: every view was checked against the slice it borrows (extent and, for `dst`, no
    // aliasing), the shapes agree (asserted above), and `dst` is borrowed mutably so it cannot
    // overlap `a` or `b`. gemm computes dst := alpha·dst + beta·a·b, reading dst only when asked.
    unsafe {
        gemm::gemm(
            dst.rows, dst.cols, a.cols, dst.ptr, dst.cs, dst.rs, accumulate, a.ptr, a.cs, a.rs,
            b.ptr, b.cs, b.rs, 1.0f32, scale, false, false, false, par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn products_of_views_match_a_naive_product() {
        let (m, k, n) = (7, 13, 5);
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![0f32; m * n];
        matmul(
            MatMut::new(&mut c, m, n),
            MatRef::new(&a, m, k),
            MatRef::new(&b, k, n),
            1.0,
            false,
            Threads::One,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        // Transposed operands and destination, scale and accumulation.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect(); // k × m
        let mut ct = vec![1f32; n * m]; // n × m holding cᵀ
        matmul(
            MatMut::strided(&mut ct, m, n, 1, m),
            MatRef::new(&at, k, m).t(),
            MatRef::new(&b, k, n),
            2.0,
            true,
            Threads::Pool,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((ct[j * m + i] - (1.0 + 2.0 * want[i * n + j])).abs() < 1e-4);
            }
        }
        // A column block of a wider matrix.
        let wide = data(m * 20, 3);
        let block = MatRef::new(&wide, m, 20).cols_range(4, k);
        let a2: Vec<f32> = (0..m * k).map(|i| wide[(i / k) * 20 + 4 + i % k]).collect();
        let mut c1 = vec![0f32; m * n];
        let mut c2 = vec![0f32; m * n];
        matmul(
            MatMut::new(&mut c1, m, n),
            block,
            MatRef::new(&b, k, n),
            1.0,
            false,
            Threads::One,
        );
        matmul(
            MatMut::new(&mut c2, m, n),
            MatRef::new(&a2, m, k),
            MatRef::new(&b, k, n),
            1.0,
            false,
            Threads::One,
        );
        assert_eq!(c1, c2);
        let rows = block.rows_range(2, 3);
        assert_eq!((rows.rows, rows.cols), (3, k));
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn views_larger_than_their_data_are_refused() {
        let v = vec![0f32; 10];
        let _ = MatRef::new(&v, 3, 4);
    }

    #[test]
    #[should_panic(expected = "aliasing")]
    fn aliasing_destinations_are_refused() {
        let mut v = vec![0f32; 10];
        let _ = MatMut::strided(&mut v, 3, 3, 1, 1);
    }
}
