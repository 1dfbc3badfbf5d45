//! Sequence augmentations for contrastive views (CL4SRec / NASR): each destroys a fraction of
//! the sequence by masking items, cropping to a contiguous part, or shuffling a contiguous part.

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augmentation {
    Mask,
    Crop,
    Reorder,
}

impl Augmentation {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "mask" => Ok(Augmentation::Mask),
            "crop" => Ok(Augmentation::Crop),
            "reorder" => Ok(Augmentation::Reorder),
            other => Err(format!(
                "augmentations are 'mask', 'crop' and 'reorder', got {other:?}"
            )),
        }
    }
}

/// Writes an augmented copy of `seq` into `out` (length max_len, zero-filled), left-padded and
/// truncated to its last `out.len()` items. `fraction` of the items is destroyed.
pub fn augment(
    kind: Augmentation,
    seq: &[i32],
    fraction: f64,
    mask_token: i64,
    rng: &mut Rng,
    out: &mut [i64],
) {
    let n = seq.len();
    let destroyed = ((n as f64) * fraction).round() as usize;
    let mut view: Vec<i64> = seq.iter().map(|&x| x as i64).collect();
    match kind {
        Augmentation::Mask => {
            // Partial Fisher-Yates picks `destroyed` distinct positions.
            let mut positions: Vec<usize> = (0..n).collect();
            for k in 0..destroyed.min(n) {
                let j = k + rng.below((n - k) as u64) as usize;
                positions.swap(k, j);
                view[positions[k]] = mask_token;
            }
        }
        Augmentation::Crop => {
            let keep = (n - destroyed.min(n)).max(1.min(n));
            let start = rng.below((n - keep + 1) as u64) as usize;
            view = view[start..start + keep].to_vec();
        }
        Augmentation::Reorder => {
            if destroyed >= 2 {
                let start = rng.below((n - destroyed + 1) as u64) as usize;
                rng.shuffle(&mut view[start..start + destroyed]);
            }
        }
    }
    let len = out.len();
    let shown = &view[view.len().saturating_sub(len)..];
    out[len - shown.len()..].copy_from_slice(shown);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_keeps_a_contiguous_part() {
        let seq: Vec<i32> = (1..=10).collect();
        let mut out = vec![0i64; 12];
        augment(
            Augmentation::Crop,
            &seq,
            0.3,
            99,
            &mut Rng::new(5),
            &mut out,
        );
        let kept: Vec<i64> = out.iter().copied().filter(|&x| x != 0).collect();
        assert_eq!(kept.len(), 7);
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(out[..5].iter().all(|&x| x == 0));
    }

    #[test]
    fn mask_and_reorder_destroy_the_fraction() {
        let seq: Vec<i32> = (1..=20).collect();
        let mut out = vec![0i64; 20];
        augment(
            Augmentation::Mask,
            &seq,
            0.25,
            99,
            &mut Rng::new(6),
            &mut out,
        );
        assert_eq!(out.iter().filter(|&&x| x == 99).count(), 5);
        let mut out = vec![0i64; 20];
        augment(
            Augmentation::Reorder,
            &seq,
            0.25,
            99,
            &mut Rng::new(7),
            &mut out,
        );
        let mut sorted = out.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=20).collect::<Vec<i64>>());
        assert!(
            out.iter()
                .enumerate()
                .filter(|(i, &x)| x != *i as i64 + 1)
                .count()
                <= 5
        );
    }
}
