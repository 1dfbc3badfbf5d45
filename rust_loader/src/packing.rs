//! Packing samples of unequal size into batches of about the same number of targets.

/// Boundaries `b` (length `n + 1`, `b[0] = 0`, `b[n] = weights.len()`) that cut `weights`, in
/// order, into `n` contiguous, non-empty groups of about equal total weight: group k ends at the
/// first sample whose running total reaches (k + 1) / n of the whole. Needs 1 <= n <= len.
pub fn partition(weights: &[f64], n: usize) -> Vec<usize> {
    let len = weights.len();
    assert!(
        n >= 1 && n <= len,
        "cannot cut {len} samples into {n} groups"
    );
    let total: f64 = weights.iter().sum();
    let mut bounds = Vec::with_capacity(n + 1);
    bounds.push(0);
    let mut running = 0.0;
    let mut index = 0;
    for k in 1..n {
        let goal = total * k as f64 / n as f64;
        // Leave at least one sample for each group still to come.
        let last_allowed = len - (n - k);
        let first_allowed = bounds[k - 1] + 1;
        while index < first_allowed
            || (index < last_allowed && running + weights[index] / 2.0 < goal)
        {
            running += weights[index];
            index += 1;
        }
        bounds.push(index);
    }
    bounds.push(len);
    bounds
}

/// How many batches of about `budget` targets hold `total` targets: at least one when there is
/// anything to hold, at most one per sample.
pub fn batch_count(total: f64, budget: usize, samples: usize) -> usize {
    if samples == 0 {
        return 0;
    }
    ((total / budget as f64).ceil() as usize).clamp(1, samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(weights: &[f64], bounds: &[usize]) -> Vec<f64> {
        bounds
            .windows(2)
            .map(|b| weights[b[0]..b[1]].iter().sum())
            .collect()
    }

    #[test]
    fn groups_are_contiguous_non_empty_and_cover_everything() {
        let weights: Vec<f64> = (0..97).map(|i| ((i * 37) % 50 + 1) as f64).collect();
        for n in [1, 2, 7, 50, 97] {
            let bounds = partition(&weights, n);
            assert_eq!(bounds.len(), n + 1);
            assert_eq!((bounds[0], bounds[n]), (0, weights.len()));
            assert!(bounds.windows(2).all(|b| b[0] < b[1]), "{bounds:?}");
        }
    }

    #[test]
    fn groups_stay_within_one_sample_of_the_mean() {
        let weights: Vec<f64> = (0..500).map(|i| ((i * 13) % 50 + 1) as f64).collect();
        let n = batch_count(weights.iter().sum(), 256, weights.len());
        let bounds = partition(&weights, n);
        let mean = weights.iter().sum::<f64>() / n as f64;
        for total in sums(&weights, &bounds) {
            assert!(
                (total - mean).abs() <= 50.0,
                "group of {total} against a mean of {mean}"
            );
        }
    }

    #[test]
    fn one_heavy_sample_still_leaves_every_group_a_sample() {
        let weights = [1000.0, 1.0, 1.0, 1.0];
        assert_eq!(partition(&weights, 4), vec![0, 1, 2, 3, 4]);
        assert_eq!(batch_count(1003.0, 256, 4), 4);
        assert_eq!(batch_count(0.0, 256, 0), 0);
    }
}
