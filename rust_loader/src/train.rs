//! Training batches: left-to-right (causal) and cloze (masked) objectives, last-window or
//! strided-window samples packed into batches of about `batch_size` targets, negatives outside
//! the user's history, optional contrastive views, sharded by (rank, world_size), optionally
//! from a seed-fixed subset of the users only.

use crate::augment::{augment, Augmentation};
use crate::packing::{batch_count, partition};
use crate::pool;
use crate::prefetch::{Array, Batch, BatchMaker};
use crate::rng::{domain, Rng};
use crate::sampler::{ItemSampler, ItemSet};
use crate::sequences::Sequences;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// Predict the next item at every position (SASRec, NextItNet, GRU4Rec).
    Causal,
    /// Predict masked items (BERT4Rec); the mask token is n_items + 1. A share
    /// `mask_last_ratio` of the windows masks only its last item instead, which is the task
    /// evaluation poses (RecBole's `ft_ratio`, the share of its training sequences).
    Cloze {
        mask_prob: f64,
        mask_last_ratio: f64,
        span: MaskSpan,
    },
}

/// Where the random masks of a cloze window fall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskSpan {
    /// On the window's target positions only, so that each training item is masked in one
    /// window per epoch at most.
    Targets,
    /// On any of its positions, context included, as RecBole masks any item of a prefix: with
    /// strided windows an item sits in max_len / stride windows, each of which (unless it masks
    /// only its last item) masks it with mask_prob.
    Window,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// One sample per user: the last max_len positions of the training sequence.
    Last,
    /// Windows of max_len positions ending every `stride` items of the training sequence (from
    /// its end), each with targets on its last `stride` positions only; the positions before
    /// them are context. Every training target appears in exactly one sample per epoch, and
    /// (except near a sequence's start) sees at least max_len - stride items before it.
    /// stride = max_len cuts the sequence into disjoint windows; stride = 1 is one sample per
    /// prefix (RecBole's sequential training).
    Stride(usize),
}

impl Window {
    /// How many trailing positions of a window carry targets.
    fn targets_per_window(self, max_len: usize) -> usize {
        match self {
            Window::Last => max_len,
            Window::Stride(stride) => stride,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Views {
    pub augmentations: Vec<Augmentation>,
    pub fraction: f64,
    /// Views per window. Each is drawn from the window's random stream after the ones before
    /// it, so the first views of a window do not depend on how many follow.
    pub count: usize,
}

/// Which users the stream reads. A seed-fixed draw per user sets a share `held_out` of them
/// aside, the same whatever the rank and world size, so that a search can step one set of
/// parameters on users whose windows the weights never train on. Each user's draw does not
/// depend on the share, so a larger share holds out a superset of the users of a smaller one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UserSubset {
    All,
    /// The users outside the held-out share.
    Kept {
        held_out: f64,
    },
    /// The held-out share of the users only.
    HeldOut {
        held_out: f64,
    },
}

impl UserSubset {
    /// Whether the stream with this seed reads `user`.
    pub fn reads(self, seed: u64, user: u32) -> bool {
        match self {
            UserSubset::All => true,
            UserSubset::Kept { held_out } => !is_held_out(seed, held_out, user),
            UserSubset::HeldOut { held_out } => is_held_out(seed, held_out, user),
        }
    }
}

/// Whether the seed-fixed draw sets `user` aside in a held-out share `held_out` of the users.
pub fn is_held_out(seed: u64, held_out: f64, user: u32) -> bool {
    Rng::from_parts(&[seed, domain::HOLDOUT, user as u64]).unit() < held_out
}

#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Targets per batch (next items, or masked positions): batches hold as many windows as
    /// make about this many, so an epoch takes the same steps whatever the windows.
    pub batch_size: usize,
    pub max_len: usize,
    pub objective: Objective,
    pub window: Window,
    pub n_negatives: usize,
    pub seed: u64,
    pub rank: usize,
    pub world_size: usize,
    pub shuffle: bool,
    pub views: Option<Views>,
    pub users: UserSubset,
}

impl TrainConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.max_len == 0 {
            return Err("batch_size and max_len must be positive".into());
        }
        if self.world_size == 0 || self.rank >= self.world_size {
            return Err(format!(
                "rank must be in 0..world_size, got rank {} of {}",
                self.rank, self.world_size
            ));
        }
        if let Window::Stride(stride) = self.window {
            if stride == 0 || stride > self.max_len {
                return Err(format!(
                    "stride must be in 1..=max_len ({}), got {stride}",
                    self.max_len
                ));
            }
        }
        if let Objective::Cloze {
            mask_prob,
            mask_last_ratio,
            ..
        } = self.objective
        {
            if !(mask_prob > 0.0 && mask_prob <= 1.0) {
                return Err(format!("mask_prob must be in (0, 1], got {mask_prob}"));
            }
            if !(0.0..=1.0).contains(&mask_last_ratio) {
                return Err(format!(
                    "mask_last_ratio must be in [0, 1], got {mask_last_ratio}"
                ));
            }
        }
        if let UserSubset::Kept { held_out } | UserSubset::HeldOut { held_out } = self.users {
            if !(held_out > 0.0 && held_out < 1.0) {
                return Err(format!(
                    "the held-out share of users must be in (0, 1), got {held_out}"
                ));
            }
        }
        if let Some(views) = &self.views {
            if views.augmentations.is_empty() || !(0.0..=1.0).contains(&views.fraction) {
                return Err(
                    "contrastive views need at least one augmentation and a fraction in [0, 1]"
                        .into(),
                );
            }
            if views.count == 0 {
                return Err("contrastive views need n_views >= 1, got 0".into());
            }
        }
        Ok(())
    }
}

/// One training sample: a user and the exclusive end (absolute index) of its target window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub user: u32,
    pub end: i64,
}

/// How an epoch's samples become batches; the same for every epoch, so `len()` is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    /// Samples (the first of each epoch's order) that mask their last item only.
    mask_last_samples: usize,
    mask_last_batches: usize,
    /// Batches of the remaining samples, with the objective's usual targets.
    other_batches: usize,
}

pub struct TrainStream {
    pub seqs: Arc<Sequences>,
    pub config: TrainConfig,
    pub sampler: Arc<ItemSampler>,
    /// This rank's samples in canonical order (users ascending, windows from the end).
    samples: Vec<Sample>,
    plan: Plan,
}

impl TrainStream {
    pub fn new(
        seqs: Arc<Sequences>,
        config: TrainConfig,
        sampler: Arc<ItemSampler>,
    ) -> Result<Self, String> {
        config.check()?;
        // A causal sample needs a target after its first input; a cloze sample one item.
        let min_len = if config.objective == Objective::Causal {
            2
        } else {
            1
        };
        // The user subset is taken before sharding, so it does not depend on the rank or world
        // size and the ranks split exactly its users.
        let mut users: Vec<u32> = (0..seqs.n_users() as u32)
            .filter(|&u| seqs.train(u as usize).len() >= min_len)
            .filter(|&u| config.users.reads(config.seed, u))
            .collect();
        // Users go to ranks by a seed-fixed shuffle, so every rank has the same samples each
        // epoch (a stable len()) and the ranks' user sets are disjoint.
        if config.shuffle {
            Rng::from_parts(&[config.seed, domain::SHARD]).shuffle(&mut users);
        }
        let mut shard: Vec<u32> = users
            .into_iter()
            .skip(config.rank)
            .step_by(config.world_size)
            .collect();
        shard.sort_unstable();
        let first_target = min_len as i64 - 1; // causal targets start at the second item
        let mut samples = Vec::new();
        for &u in &shard {
            let start = seqs.start(u as usize) as i64;
            let end = seqs.train_end(u as usize) as i64;
            match config.window {
                Window::Last => samples.push(Sample { user: u, end }),
                Window::Stride(stride) => {
                    let mut e = end;
                    while e > start + first_target {
                        samples.push(Sample { user: u, end: e });
                        e -= stride as i64;
                    }
                }
            }
        }
        let mut stream = TrainStream {
            seqs,
            config,
            sampler,
            samples,
            plan: Plan {
                mask_last_samples: 0,
                mask_last_batches: 0,
                other_batches: 0,
            },
        };
        stream.plan = stream.make_plan();
        Ok(stream)
    }

    /// Targets the sample trains on: exactly for next-item windows, in expectation for masked
    /// ones (each maskable position masked with mask_prob, one forced when chance masks none).
    fn expected_targets(&self, sample: Sample) -> f64 {
        let l = self.config.max_len;
        let start = self.seqs.start(sample.user as usize);
        let end = sample.end as usize;
        let targets_from = end.saturating_sub(self.config.window.targets_per_window(l));
        match self.config.objective {
            Objective::Causal => (end - targets_from.max(start + 1)) as f64,
            Objective::Cloze {
                mask_prob, span, ..
            } => {
                let first = start.max(end.saturating_sub(l));
                let maskable = (end - mask_from(span, first, targets_from)) as i32;
                maskable as f64 * mask_prob + (1.0 - mask_prob).powi(maskable)
            }
        }
    }

    /// Batch counts from the samples' targets. A share `mask_last_ratio` of the samples goes to
    /// mask-last batches, which hold `batch_size` windows (one target each). The share counts
    /// windows rather than batches: a share of batches would hand nearly every window to them,
    /// one target each, when the other windows hold many masked targets.
    fn make_plan(&self) -> Plan {
        let (n, budget) = (self.samples.len(), self.config.batch_size);
        let targets: f64 = self.samples.iter().map(|&s| self.expected_targets(s)).sum();
        let ratio = match self.config.objective {
            Objective::Cloze {
                mask_last_ratio, ..
            } => mask_last_ratio,
            Objective::Causal => 0.0,
        };
        let mean = if n > 0 { targets / n as f64 } else { 0.0 };
        let mask_last_samples = ((ratio * n as f64).round() as usize).min(n);
        let others = n - mask_last_samples;
        Plan {
            mask_last_samples,
            mask_last_batches: batch_count(mask_last_samples as f64, budget, mask_last_samples),
            other_batches: batch_count(others as f64 * mean, budget, others),
        }
    }

    pub fn n_samples(&self) -> usize {
        self.samples.len()
    }

    pub fn n_batches(&self) -> usize {
        self.plan.mask_last_batches + self.plan.other_batches
    }

    /// This rank's random stream for one epoch's job (`domain`).
    fn epoch_rng(&self, domain: u64, epoch: u64) -> Rng {
        Rng::from_parts(&[self.config.seed, domain, epoch, self.config.rank as u64])
    }

    /// The samples of one epoch, in batch order.
    pub fn epoch_samples(&self, epoch: u64) -> Vec<Sample> {
        let mut samples = self.samples.clone();
        if self.config.shuffle {
            self.epoch_rng(domain::ORDER, epoch).shuffle(&mut samples);
        }
        samples
    }

    /// The epoch's batches as ranges of `epoch_samples(epoch)`, in training order, each with
    /// whether it masks the last items only. Mask-last and other batches are interleaved by a
    /// seeded shuffle.
    pub fn epoch_batches(
        &self,
        epoch: u64,
        samples: &[Sample],
    ) -> Vec<(std::ops::Range<usize>, bool)> {
        let plan = self.plan;
        let k = plan.mask_last_samples;
        let mut batches = Vec::with_capacity(self.n_batches());
        if plan.mask_last_batches > 0 {
            let bounds = partition(&vec![1.0; k], plan.mask_last_batches);
            batches.extend(bounds.windows(2).map(|b| (b[0]..b[1], true)));
        }
        if plan.other_batches > 0 {
            let weights: Vec<f64> = samples[k..]
                .iter()
                .map(|&s| self.expected_targets(s))
                .collect();
            let bounds = partition(&weights, plan.other_batches);
            batches.extend(bounds.windows(2).map(|b| (k + b[0]..k + b[1], false)));
        }
        if self.config.shuffle && plan.mask_last_batches > 0 && plan.other_batches > 0 {
            self.epoch_rng(domain::BATCH_ORDER, epoch)
                .shuffle(&mut batches);
        }
        batches
    }

    pub fn epoch(self: &Arc<Self>, epoch: u64) -> EpochBatches {
        let samples = self.epoch_samples(epoch);
        EpochBatches {
            stream: Arc::clone(self),
            batches: self.epoch_batches(epoch, &samples),
            samples,
            epoch,
        }
    }
}

pub struct EpochBatches {
    stream: Arc<TrainStream>,
    samples: Vec<Sample>,
    batches: Vec<(std::ops::Range<usize>, bool)>,
    epoch: u64,
}

/// Output buffers for one batch, written row by row.
struct Rows {
    inputs: Vec<i64>,
    targets: Vec<i64>,
    negatives: Vec<i64>,
    /// The views laid out [count, rows, max_len] (view after view), the batch array's layout.
    views: Vec<i64>,
}

/// The first absolute position a cloze window whose items start at `first` may mask.
fn mask_from(span: MaskSpan, first: usize, targets_from: usize) -> usize {
    match span {
        MaskSpan::Targets => first.max(targets_from),
        MaskSpan::Window => first,
    }
}

impl EpochBatches {
    fn fill_row(
        &self,
        sample: Sample,
        mask_last: bool,
        row: usize,
        out: &mut Rows,
        history: &mut ItemSet,
    ) {
        let s = &*self.stream;
        let cfg = &s.config;
        let l = cfg.max_len;
        let seqs = &*s.seqs;
        let user = sample.user as usize;
        let start = seqs.start(user);
        let end = sample.end as usize;
        let items = &seqs.items[..];
        let mut rng = Rng::from_parts(&[
            cfg.seed,
            domain::SAMPLE,
            self.epoch,
            sample.user as u64,
            sample.end as u64,
        ]);
        let inputs = &mut out.inputs[row * l..(row + 1) * l];
        let targets = &mut out.targets[row * l..(row + 1) * l];
        // Positions at or after this absolute index carry targets; earlier ones are context.
        let targets_from = end.saturating_sub(cfg.window.targets_per_window(l));
        // `window` is the raw item sequence the views are made from.
        let window: &[i32] = match cfg.objective {
            Objective::Causal => {
                let first = (start + 1).max(end.saturating_sub(l));
                let pad = l - (end - first);
                for (j, p) in (first..end).enumerate() {
                    inputs[pad + j] = items[p - 1] as i64;
                    if p >= targets_from {
                        targets[pad + j] = items[p] as i64;
                    }
                }
                &items[first - 1..end - 1]
            }
            Objective::Cloze {
                mask_prob, span, ..
            } => {
                let first = start.max(end.saturating_sub(l));
                let pad = l - (end - first);
                let mask_token = seqs.n_items as i64 + 1;
                let mask_from = mask_from(span, first, targets_from);
                let mut any = false;
                for (j, p) in (first..end).enumerate() {
                    let masked = if mask_last {
                        p + 1 == end
                    } else {
                        p >= mask_from && rng.unit() < mask_prob
                    };
                    if masked {
                        inputs[pad + j] = mask_token;
                        targets[pad + j] = items[p] as i64;
                        any = true;
                    } else {
                        inputs[pad + j] = items[p] as i64;
                    }
                }
                if !any {
                    // Every sample teaches something: mask one maskable position when chance
                    // masked none.
                    let maskable = end - mask_from;
                    let j = pad + (end - first - maskable) + rng.below(maskable as u64) as usize;
                    targets[j] = inputs[j];
                    inputs[j] = mask_token;
                }
                &items[first..end]
            }
        };
        if cfg.n_negatives > 0 {
            history.extend(seqs.train(user));
            let n = cfg.n_negatives;
            let negatives = &mut out.negatives[row * l * n..(row + 1) * l * n];
            for (j, &t) in targets.iter().enumerate() {
                if t != 0 {
                    for k in 0..n {
                        negatives[j * n + k] = s.sampler.draw_excluding(&mut rng, history) as i64;
                    }
                }
            }
            history.clear();
        }
        if let Some(views) = &cfg.views {
            let mask_token = seqs.n_items as i64 + 1;
            // Each view spans as many values as the inputs: the batch's rows times max_len.
            for view in out.views.chunks_exact_mut(out.inputs.len()) {
                let kind =
                    views.augmentations[rng.below(views.augmentations.len() as u64) as usize];
                augment(
                    kind,
                    window,
                    views.fraction,
                    mask_token,
                    &mut rng,
                    &mut view[row * l..(row + 1) * l],
                );
            }
        }
    }
}

impl BatchMaker for EpochBatches {
    fn n_batches(&self) -> usize {
        self.batches.len()
    }

    fn make(&self, index: usize) -> Result<Batch, String> {
        let cfg = &self.stream.config;
        let (l, n) = (cfg.max_len, cfg.n_negatives);
        let (range, mask_last) = self.batches[index].clone();
        let rows = &self.samples[range];
        let r = rows.len();
        let n_views = cfg.views.as_ref().map_or(0, |v| v.count);
        let mut out = Rows {
            inputs: pool::zeroed(r * l),
            targets: pool::zeroed(r * l),
            negatives: pool::zeroed(r * l * n),
            views: pool::zeroed(n_views * r * l),
        };
        let mut history = ItemSet::new(self.stream.seqs.n_items + 1);
        for (row, &sample) in rows.iter().enumerate() {
            self.fill_row(sample, mask_last, row, &mut out, &mut history);
        }
        let mut batch = vec![
            Array {
                name: "inputs",
                shape: vec![r, l],
                data: out.inputs,
            },
            Array {
                name: "targets",
                shape: vec![r, l],
                data: out.targets,
            },
            Array {
                name: "users",
                shape: vec![r],
                data: rows.iter().map(|s| s.user as i64).collect(),
            },
        ];
        if n > 0 {
            batch.push(Array {
                name: "negatives",
                shape: vec![r, l, n],
                data: out.negatives,
            });
        }
        if n_views > 0 {
            batch.push(Array {
                name: "views",
                shape: vec![n_views, r, l],
                data: out.views,
            });
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefetch::Prefetcher;
    use crate::synth::{synthesize, SynthConfig};

    fn config(window: Window, rank: usize, world_size: usize) -> TrainConfig {
        TrainConfig {
            batch_size: 16,
            max_len: 10,
            objective: Objective::Causal,
            window,
            n_negatives: 2,
            seed: 1,
            rank,
            world_size,
            shuffle: true,
            views: None,
            users: UserSubset::All,
        }
    }

    fn stream(window: Window, rank: usize, world_size: usize) -> Arc<TrainStream> {
        let seqs = Arc::new(synthesize(&SynthConfig::preset("tiny", 0).unwrap()).unwrap());
        let sampler = Arc::new(ItemSampler::Uniform {
            n_items: seqs.n_items,
        });
        Arc::new(TrainStream::new(seqs, config(window, rank, world_size), sampler).unwrap())
    }

    fn all_batches(stream: &Arc<TrainStream>, epoch: u64, threads: usize) -> Vec<Batch> {
        let mut prefetcher = Prefetcher::new(Arc::new(stream.epoch(epoch)), 0, threads);
        std::iter::from_fn(|| prefetcher.next_batch())
            .map(|b| b.unwrap())
            .collect()
    }

    #[test]
    fn batches_do_not_depend_on_the_thread_count() {
        let s = stream(Window::Stride(10), 0, 1);
        let reference = all_batches(&s, 3, 0);
        for threads in [1, 2, 3] {
            let other = all_batches(&s, 3, threads);
            assert_eq!(reference.len(), other.len());
            for (a, b) in reference.iter().zip(&other) {
                for (x, y) in a.iter().zip(b) {
                    assert_eq!(x.data, y.data, "{} differs with {threads} threads", x.name);
                }
            }
        }
    }

    #[test]
    fn strided_windows_cover_each_training_target_once_across_shards() {
        let l = 10;
        for stride in [l, 3, 1] {
            let world = 3;
            let seqs = stream(Window::Stride(stride), 0, world).seqs.clone();
            let mut seen = vec![0usize; seqs.items.len()];
            for rank in 0..world {
                let s = stream(Window::Stride(stride), rank, world);
                // Batches hold the epoch's samples in order, one row each.
                let samples = s.epoch_samples(0);
                let batches = all_batches(&s, 0, 1);
                let rows = batches.iter().flat_map(|batch| {
                    let get = |name: &str| batch.iter().find(|a| a.name == name).unwrap();
                    let (inputs, targets) = (get("inputs"), get("targets"));
                    (0..targets.shape[0]).map(move |r| {
                        (
                            &inputs.data[r * l..(r + 1) * l],
                            &targets.data[r * l..(r + 1) * l],
                        )
                    })
                });
                for (sample, (inputs, targets)) in samples.iter().zip(rows) {
                    let (start, end) = (seqs.start(sample.user as usize), sample.end as usize);
                    let first_target = (start + 1).max(end.saturating_sub(stride));
                    let first_input = (start + 1).max(end.saturating_sub(l)) - 1;
                    for j in 0..l {
                        // Row position j holds absolute position p = end - l + j.
                        let p = (end + j) as i64 - l as i64;
                        let want_input = if p > first_input as i64 {
                            seqs.items[p as usize - 1] as i64
                        } else {
                            0
                        };
                        let want_target = if p >= first_target as i64 {
                            seqs.items[p as usize] as i64
                        } else {
                            0
                        };
                        assert_eq!(inputs[j], want_input, "stride {stride} input {j}");
                        assert_eq!(targets[j], want_target, "stride {stride} target {j}");
                    }
                    for p in first_target..end {
                        seen[p] += 1;
                    }
                }
            }
            check_each_training_target_seen_once(&seqs, &seen);
        }
    }

    fn cloze_stream(
        stride: usize,
        mask_prob: f64,
        mask_last_ratio: f64,
        span: MaskSpan,
    ) -> Arc<TrainStream> {
        let seqs = Arc::new(synthesize(&SynthConfig::preset("tiny", 0).unwrap()).unwrap());
        let sampler = Arc::new(ItemSampler::Uniform {
            n_items: seqs.n_items,
        });
        let mut cfg = config(Window::Stride(stride), 0, 1);
        cfg.objective = Objective::Cloze {
            mask_prob,
            mask_last_ratio,
            span,
        };
        Arc::new(TrainStream::new(seqs, cfg, sampler).unwrap())
    }

    #[test]
    fn cloze_masks_only_the_strided_targets() {
        let s = cloze_stream(2, 0.5, 0.0, MaskSpan::Targets);
        for batch in all_batches(&s, 0, 1) {
            let targets = batch.iter().find(|a| a.name == "targets").unwrap();
            for row in targets.data.chunks(10) {
                assert!(row[..8].iter().all(|&t| t == 0));
                assert!(row[8..].iter().any(|&t| t != 0));
            }
        }
    }

    #[test]
    fn window_span_masks_the_context_too() {
        let s = cloze_stream(2, 0.5, 0.0, MaskSpan::Window);
        let (mut context, mut targets) = (0, 0);
        for batch in all_batches(&s, 0, 1) {
            let inputs = batch.iter().find(|a| a.name == "inputs").unwrap();
            let rows = batch.iter().find(|a| a.name == "targets").unwrap();
            for (row_inputs, row) in inputs.data.chunks(10).zip(rows.data.chunks(10)) {
                for j in 0..10 {
                    if row[j] != 0 {
                        assert_eq!(row_inputs[j], s.seqs.n_items as i64 + 1);
                        if j < 8 {
                            context += 1;
                        } else {
                            targets += 1;
                        }
                    }
                }
            }
        }
        // Four of a full window's five masks fall on its eight context positions.
        let share = context as f64 / (context + targets) as f64;
        assert!(
            (0.7..0.9).contains(&share),
            "{context} masks on context, {targets} on targets"
        );
    }

    fn count_targets(batch: &Batch) -> usize {
        let targets = batch.iter().find(|a| a.name == "targets").unwrap();
        targets.data.iter().filter(|&&t| t != 0).count()
    }

    #[test]
    fn batches_hold_about_batch_size_targets_for_every_window_kind() {
        let l = 10;
        for window in [
            Window::Last,
            Window::Stride(l),
            Window::Stride(3),
            Window::Stride(1),
        ] {
            let s = stream(window, 0, 1);
            let batches = all_batches(&s, 0, 1);
            assert_eq!(batches.len(), s.n_batches());
            let counts: Vec<usize> = batches.iter().map(count_targets).collect();
            let total: usize = counts.iter().sum();
            // Every batch is within one window's targets of the mean, which is at most 16.
            let mean = total as f64 / counts.len() as f64;
            assert!(
                mean <= 16.0 && mean > 16.0 - window.targets_per_window(l) as f64,
                "{window:?}: {mean}"
            );
            for &c in &counts {
                assert!(
                    (c as f64 - mean).abs() <= window.targets_per_window(l) as f64,
                    "{window:?}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn the_batch_count_is_the_same_every_epoch() {
        let s = cloze_stream(10, 0.2, 0.5, MaskSpan::Targets);
        for epoch in 0..4 {
            let samples = s.epoch_samples(epoch);
            let batches = s.epoch_batches(epoch, &samples);
            assert_eq!(batches.len(), s.n_batches());
            // The batches cover the epoch's samples once each.
            let mut covered: Vec<usize> = batches.iter().flat_map(|(r, _)| r.clone()).collect();
            covered.sort_unstable();
            assert_eq!(covered, (0..samples.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn mask_last_batches_mask_only_the_last_position() {
        let s = cloze_stream(10, 0.2, 0.5, MaskSpan::Targets);
        let mask_token = s.seqs.n_items as i64 + 1;
        let samples = s.epoch_samples(0);
        let plan = s.epoch_batches(0, &samples);
        let batches = all_batches(&s, 0, 1);
        let mask_last = plan.iter().filter(|(_, last)| *last).count();
        assert!(mask_last > 0 && mask_last < plan.len());
        // Half of the windows.
        let mask_last_windows: usize = plan
            .iter()
            .filter(|(_, last)| *last)
            .map(|(r, _)| r.len())
            .sum();
        assert_eq!(
            mask_last_windows,
            (samples.len() as f64 * 0.5).round() as usize
        );
        for ((range, last), batch) in plan.iter().zip(&batches) {
            let get = |name: &str| batch.iter().find(|a| a.name == name).unwrap();
            let (inputs, targets) = (get("inputs"), get("targets"));
            assert_eq!(targets.shape[0], range.len());
            if *last {
                // About batch_size windows: the mask-last samples split evenly.
                assert!((15..=16).contains(&range.len()), "{} windows", range.len());
            }
            for (row_inputs, row_targets) in inputs.data.chunks(10).zip(targets.data.chunks(10)) {
                let masked: Vec<usize> = (0..10).filter(|&j| row_inputs[j] == mask_token).collect();
                assert!(masked.iter().all(|&j| row_targets[j] != 0));
                assert_eq!(
                    masked.len(),
                    row_targets.iter().filter(|&&t| t != 0).count()
                );
                if *last {
                    assert_eq!(masked, vec![9]);
                }
            }
        }
    }

    #[test]
    fn stride_must_fit_the_window() {
        for stride in [0, 11] {
            let mut cfg = config(Window::Stride(stride), 0, 1);
            cfg.max_len = 10;
            assert!(cfg.check().unwrap_err().contains("stride"));
        }
    }

    /// A causal strided stream whose windows get `count` views made by `augmentations`.
    fn views_stream(augmentations: &[Augmentation], count: usize) -> Arc<TrainStream> {
        let seqs = Arc::new(synthesize(&SynthConfig::preset("tiny", 0).unwrap()).unwrap());
        let sampler = Arc::new(ItemSampler::Uniform {
            n_items: seqs.n_items,
        });
        let mut cfg = config(Window::Stride(3), 0, 1);
        cfg.views = Some(Views {
            augmentations: augmentations.to_vec(),
            fraction: 0.5,
            count,
        });
        Arc::new(TrainStream::new(seqs, cfg, sampler).unwrap())
    }

    fn array<'a>(batch: &'a Batch, name: &str) -> &'a Array {
        batch.iter().find(|a| a.name == name).unwrap()
    }

    #[test]
    fn more_views_per_window_extend_the_first_ones() {
        let kinds = [
            Augmentation::Mask,
            Augmentation::Crop,
            Augmentation::Reorder,
        ];
        let two = all_batches(&views_stream(&kinds, 2), 1, 1);
        let eight = all_batches(&views_stream(&kinds, 8), 1, 2);
        assert_eq!(two.len(), eight.len());
        for (a, b) in two.iter().zip(&eight) {
            let r = array(a, "users").data.len();
            let (views2, views8) = (array(a, "views"), array(b, "views"));
            assert_eq!(views2.shape, vec![2, r, 10]);
            assert_eq!(views8.shape, vec![8, r, 10]);
            // The first two of eight views are the two views, and the rest of the batch is the
            // same: the views come last from each window's random stream.
            assert_eq!(views8.data[..2 * r * 10], views2.data[..]);
            for name in ["inputs", "targets", "users", "negatives"] {
                assert_eq!(array(a, name).data, array(b, name).data, "{name}");
            }
            let view = |v: usize| &views8.data[v * r * 10..(v + 1) * r * 10];
            for v in 1..8 {
                assert_ne!(view(v), view(0), "view {v} repeats view 0");
            }
        }
    }

    #[test]
    fn every_reordered_view_keeps_the_windows_items() {
        let s = views_stream(&[Augmentation::Reorder], 5);
        for batch in all_batches(&s, 0, 1) {
            let (inputs, views) = (array(&batch, "inputs"), array(&batch, "views"));
            let r = inputs.shape[0];
            for v in 0..5 {
                for row in 0..r {
                    let mut window = inputs.data[row * 10..(row + 1) * 10].to_vec();
                    let start = (v * r + row) * 10;
                    let mut view = views.data[start..start + 10].to_vec();
                    window.sort_unstable();
                    view.sort_unstable();
                    assert_eq!(view, window, "view {v} of row {row}");
                }
            }
        }
    }

    #[test]
    fn views_need_at_least_one_per_window() {
        let mut cfg = config(Window::Last, 0, 1);
        cfg.views = Some(Views {
            augmentations: vec![Augmentation::Mask],
            fraction: 0.25,
            count: 0,
        });
        assert!(cfg.check().unwrap_err().contains("n_views >= 1"));
    }

    /// The users of the samples of a causal last-window stream over `seqs`.
    fn stream_users(
        seqs: &Arc<Sequences>,
        users: UserSubset,
        seed: u64,
        rank: usize,
        world_size: usize,
    ) -> Vec<u32> {
        let sampler = Arc::new(ItemSampler::Uniform {
            n_items: seqs.n_items,
        });
        let mut cfg = config(Window::Last, rank, world_size);
        cfg.seed = seed;
        cfg.users = users;
        let s = TrainStream::new(Arc::clone(seqs), cfg, sampler).unwrap();
        // One last-window sample per user, in canonical (ascending) order.
        s.samples.iter().map(|s| s.user).collect()
    }

    fn thousand_users() -> Arc<Sequences> {
        let cfg = SynthConfig {
            n_users: 1000,
            n_interactions: 30_000,
            ..SynthConfig::preset("tiny", 0).unwrap()
        };
        Arc::new(synthesize(&cfg).unwrap())
    }

    #[test]
    fn kept_and_held_out_users_split_the_training_users() {
        let seqs = thousand_users();
        let share = 0.1;
        let all = stream_users(&seqs, UserSubset::All, 1, 0, 1);
        assert_eq!(all.len(), seqs.n_users());
        let kept = stream_users(&seqs, UserSubset::Kept { held_out: share }, 1, 0, 1);
        let held_out = stream_users(&seqs, UserSubset::HeldOut { held_out: share }, 1, 0, 1);
        let mut union: Vec<u32> = kept.iter().chain(&held_out).copied().collect();
        union.sort_unstable();
        // Disjoint (no user twice in the union) and together every user.
        assert_eq!(union, all);
        let fraction = held_out.len() as f64 / all.len() as f64;
        assert!(
            (0.05..0.15).contains(&fraction),
            "held-out share {fraction}"
        );
        // The same seed draws the same users; another seed other users.
        assert_eq!(
            held_out,
            stream_users(&seqs, UserSubset::HeldOut { held_out: share }, 1, 0, 1)
        );
        assert_ne!(
            held_out,
            stream_users(&seqs, UserSubset::HeldOut { held_out: share }, 2, 0, 1)
        );
    }

    #[test]
    fn the_held_out_users_do_not_depend_on_the_sharding() {
        let seqs = thousand_users();
        for users in [
            UserSubset::Kept { held_out: 0.3 },
            UserSubset::HeldOut { held_out: 0.3 },
        ] {
            let whole = stream_users(&seqs, users, 4, 0, 1);
            for world in [2, 3] {
                let mut union = Vec::new();
                for rank in 0..world {
                    let shard = stream_users(&seqs, users, 4, rank, world);
                    assert!(!shard.is_empty());
                    union.extend(shard);
                }
                union.sort_unstable();
                // Disjoint shards that cover exactly the subset of one rank.
                assert_eq!(union, whole, "{users:?} over {world} ranks");
            }
        }
    }

    #[test]
    fn the_held_out_share_must_be_a_proper_fraction() {
        for held_out in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            for users in [
                UserSubset::Kept { held_out },
                UserSubset::HeldOut { held_out },
            ] {
                let mut cfg = config(Window::Last, 0, 1);
                cfg.users = users;
                assert!(cfg.check().unwrap_err().contains("held-out share"));
            }
        }
    }

    fn check_each_training_target_seen_once(seqs: &Sequences, seen: &[usize]) {
        for u in 0..seqs.n_users() {
            for p in seqs.start(u) + 1..seqs.train_end(u) {
                assert_eq!(seen[p], 1, "user {u} position {p}");
            }
            for p in seqs.train_end(u)..seqs.offsets[u + 1] as usize {
                assert_eq!(
                    seen[p], 0,
                    "held-out position {p} of user {u} used in training"
                );
            }
        }
    }

    #[test]
    fn negatives_avoid_the_history_and_padding_has_none() {
        let s = stream(Window::Last, 0, 1);
        for batch in all_batches(&s, 0, 2) {
            let get = |name: &str| batch.iter().find(|a| a.name == name).unwrap();
            let (users, targets, negatives) = (get("users"), get("targets"), get("negatives"));
            for (row, &u) in users.data.iter().enumerate() {
                let history = s.seqs.train(u as usize);
                for j in 0..10 {
                    for k in 0..2 {
                        let neg = negatives.data[(row * 10 + j) * 2 + k];
                        if targets.data[row * 10 + j] == 0 {
                            assert_eq!(neg, 0);
                        } else {
                            assert!(neg >= 1 && !history.contains(&(neg as i32)));
                        }
                    }
                }
            }
        }
    }
}
