//! Optimal assignment (the Hungarian method in its shortest-augmenting-path form, as in
//! Jonker & Volgenant): minimum-cost matching of every row of a dense rectangular cost matrix with
//! `rows <= cols` to a distinct column, O(rows² · cols).

/// Minimum-cost assignment of each row to a distinct column.
///
/// `cost` is row-major `rows × cols` with `rows <= cols` (transpose first otherwise). Returns, for
/// each row, its column. Returns `None` when `rows > cols` or `cost.len() != rows * cols` or a
/// cost is not finite.
///
/// ```
/// use mica_metrics::assignment::min_cost_assignment;
/// // Greedy would take (0,0)=1 then (1,1)=10; optimal is (0,1)+(1,0) = 2 + 2.
/// let a = min_cost_assignment(&[1.0, 2.0, 2.0, 10.0], 2, 2).unwrap();
/// assert_eq!(a, vec![1, 0]);
/// ```
pub fn min_cost_assignment(cost: &[f64], rows: usize, cols: usize) -> Option<Vec<usize>> {
    if rows > cols || cost.len() != rows * cols || cost.iter().any(|c| !c.is_finite()) {
        return None;
    }
    if rows == 0 {
        return Some(Vec::new());
    }
    // Potentials u (rows, 1-based), v (columns, 1-based); p[j] = row matched to column j (0 = none).
    let (n, m) = (rows, cols);
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0.0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|x| *x = f64::INFINITY);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let cur = cost[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            if j1 == 0 {
                // Only possible with non-finite costs, excluded above.
                return None;
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut result = vec![0usize; n];
    for j in 1..=m {
        if p[j] != 0 {
            result[p[j] - 1] = j - 1;
        }
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(cost: &[f64], rows: usize, cols: usize) -> f64 {
        fn go(cost: &[f64], rows: usize, cols: usize, r: usize, used: &mut Vec<bool>) -> f64 {
            if r == rows {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..cols {
                if !used[c] {
                    used[c] = true;
                    best = best.min(cost[r * cols + c] + go(cost, rows, cols, r + 1, used));
                    used[c] = false;
                }
            }
            best
        }
        go(cost, rows, cols, 0, &mut vec![false; cols])
    }

    #[test]
    fn matches_brute_force_on_random_matrices() {
        let mut rng = mica_core::rng::SplitMix64::new(11);
        for _ in 0..200 {
            let rows = 1 + rng.below(5) as usize;
            let cols = rows + rng.below(3) as usize;
            let cost: Vec<f64> = (0..rows * cols)
                .map(|_| (rng.below(20) as f64) - 10.0)
                .collect();
            let a = min_cost_assignment(&cost, rows, cols).unwrap();
            let mut seen = vec![false; cols];
            for &c in &a {
                assert!(!seen[c]);
                seen[c] = true;
            }
            let total: f64 = a.iter().enumerate().map(|(r, &c)| cost[r * cols + c]).sum();
            assert!((total - brute(&cost, rows, cols)).abs() < 1e-9);
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(min_cost_assignment(&[1.0, 2.0], 2, 1).is_none());
        assert!(min_cost_assignment(&[1.0], 1, 2).is_none());
        assert!(min_cost_assignment(&[f64::NAN], 1, 1).is_none());
        assert_eq!(min_cost_assignment(&[], 0, 3), Some(vec![]));
    }
}
