//! Negative sampling: uniform or popularity-proportional (Walker's alias table), with the user's
//! own items excluded through a per-thread bitset.

use crate::rng::Rng;

/// Walker/Vose alias table: O(1) draws from a discrete distribution.
pub struct AliasTable {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// `None` when the weights sum to zero (nothing can be drawn).
    pub fn new(weights: &[f64]) -> Option<Self> {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        // `total` may be NaN (bad weights): only a positive, finite total can be sampled.
        if n == 0 || !total.is_finite() || total <= 0.0 {
            return None;
        }
        let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            prob[l] -= 1.0 - prob[s];
            if prob[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are 1 up to rounding.
        for i in small.into_iter().chain(large) {
            prob[i] = 1.0;
        }
        Some(AliasTable { prob, alias })
    }

    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.prob.len() as u64) as usize;
        if rng.unit() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

pub enum ItemSampler {
    Uniform {
        n_items: usize,
    },
    /// Proportional to training-split counts; entry k of the table is item k + 1.
    Popularity {
        table: AliasTable,
        n_items: usize,
    },
}

impl ItemSampler {
    pub fn parse(
        name: &str,
        n_items: usize,
        counts: impl FnOnce() -> Vec<i64>,
    ) -> Result<Self, String> {
        match name {
            "uniform" => Ok(ItemSampler::Uniform { n_items }),
            "popularity" => {
                let counts = counts();
                let weights: Vec<f64> = counts[1..].iter().map(|&c| c as f64).collect();
                let table = AliasTable::new(&weights)
                    .ok_or("popularity sampling needs at least one training interaction")?;
                Ok(ItemSampler::Popularity { table, n_items })
            }
            other => Err(format!(
                "negative_sampler must be 'uniform' or 'popularity', got {other:?}"
            )),
        }
    }

    pub fn n_items(&self) -> usize {
        match self {
            ItemSampler::Uniform { n_items } | ItemSampler::Popularity { n_items, .. } => *n_items,
        }
    }

    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> i32 {
        match self {
            ItemSampler::Uniform { n_items } => rng.below(*n_items as u64) as i32 + 1,
            ItemSampler::Popularity { table, .. } => table.draw(rng) as i32 + 1,
        }
    }

    /// An item not in `excluded`, or 0 when every item is excluded. Popularity draws are
    /// rejected while they hit excluded items; after many misses (a user who has seen nearly
    /// all popular items) it falls back to uniform draws among the remaining items, so a batch
    /// never stalls.
    pub fn draw_excluding(&self, rng: &mut Rng, excluded: &ItemSet) -> i32 {
        let n = self.n_items();
        if excluded.len() >= n {
            return 0;
        }
        for _ in 0..64 {
            let x = self.draw(rng);
            if !excluded.contains(x) {
                return x;
            }
        }
        loop {
            let x = rng.below(n as u64) as i32 + 1;
            if !excluded.contains(x) {
                return x;
            }
        }
    }
}

/// A set of item ids 0..=capacity as a bitset, cleared item by item so that reusing it for the
/// next user costs as much as that user's history, not the catalogue size.
pub struct ItemSet {
    words: Vec<u64>,
    members: Vec<i32>,
}

impl ItemSet {
    pub fn new(max_item: usize) -> Self {
        ItemSet {
            words: vec![0; max_item / 64 + 1],
            members: Vec::new(),
        }
    }

    /// Number of distinct non-padding members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    pub fn contains(&self, item: i32) -> bool {
        let i = item as usize;
        self.words[i >> 6] & (1 << (i & 63)) != 0
    }

    /// Adds a (non-padding) item; returns whether it was new.
    #[inline]
    pub fn insert(&mut self, item: i32) -> bool {
        let i = item as usize;
        let bit = 1 << (i & 63);
        if self.words[i >> 6] & bit != 0 {
            return false;
        }
        self.words[i >> 6] |= bit;
        self.members.push(item);
        true
    }

    pub fn extend(&mut self, items: &[i32]) {
        for &x in items {
            self.insert(x);
        }
    }

    pub fn members(&self) -> &[i32] {
        &self.members
    }

    pub fn clear(&mut self) {
        for &x in &self.members {
            self.words[x as usize >> 6] = 0;
        }
        self.members.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_table_follows_the_weights() {
        let table = AliasTable::new(&[1.0, 0.0, 3.0]).unwrap();
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 3];
        for _ in 0..40_000 {
            counts[table.draw(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = counts[2] as f64 / counts[0] as f64;
        assert!((ratio - 3.0).abs() < 0.2, "{ratio}");
    }

    #[test]
    fn excluded_items_are_never_drawn() {
        let sampler = ItemSampler::Uniform { n_items: 5 };
        let mut set = ItemSet::new(5);
        set.extend(&[1, 2, 3, 5]);
        let mut rng = Rng::new(2);
        for _ in 0..100 {
            assert_eq!(sampler.draw_excluding(&mut rng, &set), 4);
        }
        set.insert(4);
        assert_eq!(sampler.draw_excluding(&mut rng, &set), 0);
        set.clear();
        assert!(!set.contains(4) && set.len() == 0);
    }
}
