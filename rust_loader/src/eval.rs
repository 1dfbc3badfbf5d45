//! Evaluation batches: for each user with a target in the split, the history before the target
//! (model input, and the items to filter from a full ranking) and, optionally, sampled negatives
//! that depend only on (seed, split, user), so every evaluation ranks the same candidates.

use crate::pool;
use crate::prefetch::{Array, Batch, BatchMaker};
use crate::rng::{domain, Rng};
use crate::sampler::{ItemSampler, ItemSet};
use crate::sequences::{EvalSplit, Sequences};
use std::sync::Arc;

pub struct EvalStream {
    seqs: Arc<Sequences>,
    split: EvalSplit,
    batch_size: usize,
    max_len: usize,
    n_negatives: usize,
    sampler: Arc<ItemSampler>,
    seed: u64,
    users: Vec<u32>,
}

impl EvalStream {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seqs: Arc<Sequences>,
        split: EvalSplit,
        batch_size: usize,
        max_len: usize,
        n_negatives: usize,
        sampler: Arc<ItemSampler>,
        seed: u64,
        rank: usize,
        world_size: usize,
    ) -> Result<Self, String> {
        if batch_size == 0 || max_len == 0 {
            return Err("batch_size and max_len must be positive".into());
        }
        if world_size == 0 || rank >= world_size {
            return Err(format!(
                "rank must be in 0..world_size, got rank {rank} of {world_size}"
            ));
        }
        if n_negatives >= seqs.n_items {
            return Err(format!(
                "n_sampled_negatives={n_negatives} must be below the {} items",
                seqs.n_items
            ));
        }
        let users = (0..seqs.n_users() as u32)
            .filter(|&u| seqs.target_pos(split, u as usize).is_some())
            .skip(rank)
            .step_by(world_size)
            .collect();
        Ok(EvalStream {
            seqs,
            split,
            batch_size,
            max_len,
            n_negatives,
            sampler,
            seed,
            users,
        })
    }

    pub fn n_users(&self) -> usize {
        self.users.len()
    }
}

impl BatchMaker for EvalStream {
    fn n_batches(&self) -> usize {
        self.users.len().div_ceil(self.batch_size)
    }

    fn make(&self, index: usize) -> Result<Batch, String> {
        let (l, n) = (self.max_len, self.n_negatives);
        let users = &self.users
            [index * self.batch_size..((index + 1) * self.batch_size).min(self.users.len())];
        let r = users.len();
        let seqs = &*self.seqs;
        let mut inputs = pool::zeroed(r * l);
        let mut targets = Vec::with_capacity(r);
        let mut history_offsets = Vec::with_capacity(r + 1);
        let mut history_items: Vec<i64> = Vec::new();
        let mut negatives = vec![0i64; r * n];
        let mut seen = ItemSet::new(seqs.n_items + 1);
        history_offsets.push(0i64);
        for (row, &u) in users.iter().enumerate() {
            let user = u as usize;
            let pos = seqs
                .target_pos(self.split, user)
                .expect("users were filtered to those with a target");
            let start = seqs.start(user);
            let target = seqs.items[pos];
            let before = &seqs.items[start..pos];
            let shown = &before[before.len().saturating_sub(l)..];
            let row_inputs = &mut inputs[row * l..(row + 1) * l];
            for (slot, &x) in row_inputs[l - shown.len()..].iter_mut().zip(shown) {
                *slot = x as i64;
            }
            targets.push(target as i64);
            // History to filter: distinct items before the target, but never the target itself
            // (a repeat consumption must stay rankable).
            seen.extend(before);
            let first_history = history_items.len();
            history_items.extend(
                seen.members()
                    .iter()
                    .filter(|&&x| x != target)
                    .map(|&x| x as i64),
            );
            history_items[first_history..].sort_unstable();
            history_offsets.push(history_items.len() as i64);
            if n > 0 {
                seen.insert(target);
                if seqs.n_items - seen.len() < n {
                    return Err(format!(
                        "user {user} has only {} items outside its history, fewer than n_sampled_negatives={n}",
                        seqs.n_items - seen.len()
                    ));
                }
                let mut rng = Rng::from_parts(&[
                    self.seed,
                    domain::EVAL_NEGATIVES,
                    self.split.code(),
                    u as u64,
                ]);
                for k in 0..n {
                    let x = self.sampler.draw_excluding(&mut rng, &seen);
                    seen.insert(x); // distinct negatives
                    negatives[row * n + k] = x as i64;
                }
            }
            seen.clear();
        }
        let mut batch = vec![
            Array {
                name: "inputs",
                shape: vec![r, l],
                data: inputs,
            },
            Array {
                name: "targets",
                shape: vec![r],
                data: targets,
            },
            Array {
                name: "users",
                shape: vec![r],
                data: users.iter().map(|&u| u as i64).collect(),
            },
            Array {
                name: "history_offsets",
                shape: vec![r + 1],
                data: history_offsets,
            },
            Array {
                name: "history_items",
                shape: vec![history_items.len()],
                data: history_items,
            },
        ];
        if n > 0 {
            batch.push(Array {
                name: "negatives",
                shape: vec![r, n],
                data: negatives,
            });
        }
        Ok(batch)
    }
}
