//! The in-memory dataset: per-user item sequences in CSR form, each in time order, plus the
//! split (where each user's training part ends and where its validation/test targets are).

use crate::buf::Buf;
use rayon::prelude::*;

/// Original ids, so that remapped ids can be exported back. Entry `i` belongs to index `i`
/// (users) or to item id `i + 1` (items).
#[derive(Clone)]
pub enum IdMap {
    /// No external ids (synthetic data): the index is the id.
    Index,
    Int(Buf<i64>),
    /// UTF-8 strings in Arrow layout: `data[offsets[i]..offsets[i + 1]]`.
    Str {
        offsets: Buf<i64>,
        data: Buf<u8>,
    },
}

impl IdMap {
    pub fn len(&self) -> Option<usize> {
        match self {
            IdMap::Index => None,
            IdMap::Int(v) => Some(v.len()),
            IdMap::Str { offsets, .. } => Some(offsets.len().saturating_sub(1)),
        }
    }
}

/// Per-user split positions, as absolute indexes into the item array.
#[derive(Clone)]
pub struct Split {
    /// Exclusive end of the user's training sequence (which starts at `offsets[u]`).
    pub train_end: Buf<i64>,
    /// Index of the validation target, or -1 when the user has none.
    pub valid_pos: Buf<i64>,
    /// Index of the test target, or -1 when the user has none.
    pub test_pos: Buf<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalSplit {
    Valid,
    Test,
}

impl EvalSplit {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "valid" => Ok(EvalSplit::Valid),
            "test" => Ok(EvalSplit::Test),
            other => Err(format!("split must be 'valid' or 'test', got {other:?}")),
        }
    }

    pub fn code(self) -> u64 {
        match self {
            EvalSplit::Valid => 1,
            EvalSplit::Test => 2,
        }
    }
}

#[derive(Clone)]
pub struct Sequences {
    pub n_items: usize,
    pub offsets: Buf<i64>,
    pub items: Buf<i32>,
    pub times: Buf<i64>,
    pub split: Split,
    pub user_ids: IdMap,
    pub item_ids: IdMap,
    /// JSON written by the Python layer (source, filters, split); opaque here.
    pub meta: String,
}

impl Sequences {
    pub fn n_users(&self) -> usize {
        self.offsets.len() - 1
    }

    #[inline]
    pub fn start(&self, user: usize) -> usize {
        self.offsets[user] as usize
    }

    #[inline]
    pub fn train_end(&self, user: usize) -> usize {
        self.split.train_end[user] as usize
    }

    /// The user's training sequence.
    #[inline]
    pub fn train(&self, user: usize) -> &[i32] {
        &self.items[self.start(user)..self.train_end(user)]
    }

    /// Index of the user's target in `split`, if the user has one.
    #[inline]
    pub fn target_pos(&self, split: EvalSplit, user: usize) -> Option<usize> {
        let pos = match split {
            EvalSplit::Valid => self.split.valid_pos[user],
            EvalSplit::Test => self.split.test_pos[user],
        };
        (pos >= 0).then_some(pos as usize)
    }

    pub fn train_interactions(&self) -> usize {
        (0..self.n_users())
            .map(|u| self.train_end(u) - self.start(u))
            .sum()
    }

    pub fn count_targets(&self, split: EvalSplit) -> usize {
        (0..self.n_users())
            .filter(|&u| self.target_pos(split, u).is_some())
            .count()
    }

    /// How often each item occurs in the training split; index 0 (padding) stays 0.
    pub fn train_item_counts(&self) -> Vec<i64> {
        let n_items = self.n_items;
        (0..self.n_users())
            .into_par_iter()
            .fold(
                || vec![0i64; n_items + 1],
                |mut counts, u| {
                    for &item in self.train(u) {
                        counts[item as usize] += 1;
                    }
                    counts
                },
            )
            .reduce(
                || vec![0i64; n_items + 1],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            )
    }

    /// Structural checks for data that came from outside (a cache file): offsets monotone and
    /// in range, items within 1..=n_items, split positions inside each user's range.
    pub fn validate(&self) -> Result<(), String> {
        let offsets = &self.offsets[..];
        let n_users = self.n_users();
        if offsets.first() != Some(&0) {
            return Err("offsets must start at 0".into());
        }
        if *offsets.last().unwrap() as usize != self.items.len()
            || self.items.len() != self.times.len()
        {
            return Err(format!(
                "offsets end at {} but there are {} items and {} times",
                offsets.last().unwrap(),
                self.items.len(),
                self.times.len()
            ));
        }
        if let Some(u) = offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(format!("offsets decrease at user {u}"));
        }
        let n_items = self.n_items as i32;
        if let Some(i) = self
            .items
            .par_iter()
            .position_any(|&x| x < 1 || x > n_items)
        {
            return Err(format!(
                "item {} at index {i} is outside 1..={n_items}",
                self.items[i]
            ));
        }
        let split = &self.split;
        if split.train_end.len() != n_users
            || split.valid_pos.len() != n_users
            || split.test_pos.len() != n_users
        {
            return Err("split arrays do not have one entry per user".into());
        }
        for u in 0..n_users {
            let (start, end) = (offsets[u], offsets[u + 1]);
            let train_end = split.train_end[u];
            if train_end < start || train_end > end {
                return Err(format!(
                    "user {u}: training end {train_end} outside [{start}, {end}]"
                ));
            }
            for (name, pos) in [
                ("validation", split.valid_pos[u]),
                ("test", split.test_pos[u]),
            ] {
                if pos != -1 && (pos <= start || pos >= end) {
                    return Err(format!(
                        "user {u}: {name} target {pos} outside ({start}, {end})"
                    ));
                }
            }
        }
        for (name, ids) in [("user", &self.user_ids), ("item", &self.item_ids)] {
            let expected = if name == "user" {
                n_users
            } else {
                self.n_items
            };
            if let Some(len) = ids.len() {
                if len != expected {
                    return Err(format!(
                        "{name} id map has {len} entries, expected {expected}"
                    ));
                }
            }
        }
        Ok(())
    }
}
