//! Synthetic interaction logs with MovieLens-like shape and planted sequential structure.
//!
//! Items have Zipf-like popularity and belong to latent clusters; each item has a few preferred
//! successors inside its cluster. A user mostly follows successor links from the previous item,
//! sometimes picks a popular item of its current cluster, and rarely one from the whole
//! catalogue; no user sees an item twice. A model of item-to-item transitions therefore beats a
//! popularity ranking by a wide margin. Sequence lengths are log-normal above a minimum (like
//! MovieLens' 20-ratings floor) and sum exactly to the requested number of interactions. The
//! output depends only on the configuration and seed, not on the number of threads.

use crate::buf::Buf;
use crate::rng::{domain, Rng};
use crate::sampler::{AliasTable, ItemSet};
use crate::sequences::{IdMap, Sequences};
use crate::split::leave_one_out;
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub n_users: usize,
    pub n_items: usize,
    pub n_interactions: usize,
    pub min_len: usize,
    pub max_len: usize,
    /// Popularity of the item with rank r is proportional to 1 / r^zipf_exponent.
    pub zipf_exponent: f64,
    /// Spread of the log-normal length distribution.
    pub length_sigma: f64,
    pub n_clusters: usize,
    pub successors: usize,
    /// Probability that the next item follows a successor link of the previous one.
    pub p_transition: f64,
    /// Probability that it is drawn from the current cluster by popularity (else: catalogue).
    pub p_cluster: f64,
    pub seed: u64,
}

impl SynthConfig {
    pub fn preset(name: &str, seed: u64) -> Result<Self, String> {
        let base = SynthConfig {
            n_users: 0,
            n_items: 0,
            n_interactions: 0,
            min_len: 20,
            max_len: 0,
            zipf_exponent: 1.0,
            length_sigma: 1.1,
            n_clusters: 0,
            successors: 4,
            p_transition: 0.6,
            p_cluster: 0.3,
            seed,
        };
        Ok(match name {
            "tiny" => SynthConfig {
                n_users: 300,
                n_items: 150,
                n_interactions: 9_000,
                min_len: 8,
                max_len: 120,
                n_clusters: 6,
                ..base
            },
            "ml-100k" => SynthConfig {
                n_users: 943,
                n_items: 1_682,
                n_interactions: 100_000,
                max_len: 737,
                n_clusters: 40,
                ..base
            },
            "ml-20m" => SynthConfig {
                n_users: 138_493,
                n_items: 26_744,
                n_interactions: 20_000_263,
                max_len: 9_254,
                n_clusters: 400,
                ..base
            },
            other => {
                return Err(format!(
                    "unknown preset {other:?}; presets are 'tiny', 'ml-100k' and 'ml-20m'"
                ))
            }
        })
    }

    fn check(&self) -> Result<(), String> {
        if self.n_users == 0 || self.n_items < 2 || self.n_clusters == 0 {
            return Err("a synthetic dataset needs users, at least 2 items and a cluster".into());
        }
        if self.max_len > self.n_items || self.min_len > self.max_len || self.min_len == 0 {
            return Err(format!(
                "need 1 <= min_len <= max_len <= n_items, got {} / {} / {}",
                self.min_len, self.max_len, self.n_items
            ));
        }
        let (lo, hi) = (self.n_users * self.min_len, self.n_users * self.max_len);
        if self.n_interactions < lo || self.n_interactions > hi {
            return Err(format!(
                "n_interactions must be in [{lo}, {hi}] for these users and lengths"
            ));
        }
        if !(0.0..=1.0).contains(&(self.p_transition + self.p_cluster))
            || self.n_interactions >= i64::MAX as usize
        {
            return Err("p_transition + p_cluster must be in [0, 1]".into());
        }
        Ok(())
    }
}

struct Catalogue {
    global: AliasTable,
    cluster_of: Vec<u32>,
    /// Per cluster: its items (1-based ids) and a popularity table over them.
    clusters: Vec<(Vec<i32>, AliasTable)>,
    /// `successors[i * k..(i + 1) * k]` for item id i + 1; 0 where fewer exist.
    successors: Vec<i32>,
}

impl Catalogue {
    fn new(cfg: &SynthConfig) -> Self {
        let mut rng = Rng::from_parts(&[cfg.seed, domain::SYNTH_CATALOG]);
        let n = cfg.n_items;
        let mut ranks: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut ranks);
        let weights: Vec<f64> = ranks
            .iter()
            .map(|&r| 1.0 / ((r + 1) as f64).powf(cfg.zipf_exponent))
            .collect();
        let cluster_of: Vec<u32> = (0..n)
            .map(|_| rng.below(cfg.n_clusters as u64) as u32)
            .collect();
        let mut members: Vec<Vec<i32>> = vec![Vec::new(); cfg.n_clusters];
        for i in 0..n {
            members[cluster_of[i] as usize].push(i as i32 + 1);
        }
        let clusters: Vec<(Vec<i32>, AliasTable)> = members
            .into_iter()
            .map(|items| {
                // An empty cluster borrows the whole catalogue so that draws always succeed.
                let items = if items.is_empty() {
                    (1..=n as i32).collect()
                } else {
                    items
                };
                let table = AliasTable::new(
                    &items
                        .iter()
                        .map(|&x| weights[x as usize - 1])
                        .collect::<Vec<_>>(),
                )
                .unwrap();
                (items, table)
            })
            .collect();
        let k = cfg.successors;
        let mut successors = vec![0i32; n * k];
        for i in 0..n {
            let (items, table) = &clusters[cluster_of[i] as usize];
            let mut found = 0;
            for _ in 0..8 * k {
                if found == k {
                    break;
                }
                let s = items[table.draw(&mut rng)];
                if s != i as i32 + 1 && !successors[i * k..i * k + found].contains(&s) {
                    successors[i * k + found] = s;
                    found += 1;
                }
            }
        }
        Catalogue {
            global: AliasTable::new(&weights).unwrap(),
            cluster_of,
            clusters,
            successors,
        }
    }

    fn popular(&self, rng: &mut Rng) -> i32 {
        self.global.draw(rng) as i32 + 1
    }

    fn draw_in_cluster(&self, cluster: usize, rng: &mut Rng) -> i32 {
        let (items, table) = &self.clusters[cluster];
        items[table.draw(rng)]
    }
}

/// Log-normal lengths in [min_len, max_len] summing exactly to n_interactions.
fn lengths(cfg: &SynthConfig) -> Vec<usize> {
    let mut rng = Rng::from_parts(&[cfg.seed, domain::SYNTH_LENGTHS]);
    let weights: Vec<f64> = (0..cfg.n_users)
        .map(|_| {
            // Box-Muller normal draw.
            let (u1, u2) = (1.0 - rng.unit(), rng.unit());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (cfg.length_sigma * z).exp()
        })
        .collect();
    let room = cfg.max_len - cfg.min_len;
    let mut extra = vec![0usize; cfg.n_users];
    let mut remaining = cfg.n_interactions - cfg.n_users * cfg.min_len;
    // Share what is left among users below the cap, proportionally to their weights, until the
    // floors stop making progress; then hand out the last units one by one.
    loop {
        let open: Vec<usize> = (0..cfg.n_users).filter(|&u| extra[u] < room).collect();
        let total: f64 = open.iter().map(|&u| weights[u]).sum();
        let mut given = 0;
        for &u in &open {
            let share = ((weights[u] / total) * remaining as f64).floor() as usize;
            let add = share.min(room - extra[u]);
            extra[u] += add;
            given += add;
        }
        remaining -= given;
        if remaining == 0 || given == 0 {
            break;
        }
    }
    let mut order: Vec<usize> = (0..cfg.n_users).collect();
    rng.shuffle(&mut order);
    for &u in order.iter().cycle() {
        if remaining == 0 {
            break;
        }
        if extra[u] < room {
            extra[u] += 1;
            remaining -= 1;
        }
    }
    extra.into_iter().map(|e| cfg.min_len + e).collect()
}

fn generate_user(
    cfg: &SynthConfig,
    catalogue: &Catalogue,
    user: usize,
    items: &mut [i32],
    times: &mut [i64],
) {
    let mut rng = Rng::from_parts(&[cfg.seed, domain::SYNTH_USER, user as u64]);
    let mut seen = ItemSet::new(cfg.n_items + 1);
    let favourites = [
        catalogue.cluster_of[catalogue.popular(&mut rng) as usize - 1] as usize,
        catalogue.cluster_of[catalogue.popular(&mut rng) as usize - 1] as usize,
    ];
    let mut cluster = favourites[0];
    let k = cfg.successors;
    let mut prev: i32 = 0;
    // Users start anywhere in a three-year window and act every ~2 hours on average.
    let mut t: i64 = 946_684_800 + rng.below(3 * 365 * 86_400) as i64;
    for (slot, time) in items.iter_mut().zip(times.iter_mut()) {
        let mut next = 0;
        for attempt in 0..12 {
            let r = rng.unit();
            let candidate = if prev != 0 && attempt < 4 && r < cfg.p_transition {
                let mut j = 0;
                while j + 1 < k && rng.unit() < 0.5 {
                    j += 1;
                }
                catalogue.successors[(prev as usize - 1) * k + j]
            } else if r < cfg.p_transition + cfg.p_cluster {
                if rng.unit() < 0.1 {
                    cluster = favourites[rng.below(2) as usize];
                }
                catalogue.draw_in_cluster(cluster, &mut rng)
            } else {
                catalogue.popular(&mut rng)
            };
            if candidate != 0 && !seen.contains(candidate) {
                next = candidate;
                break;
            }
        }
        if next == 0 {
            // Everything tried was already seen: take the first unseen item after a random one.
            let n = cfg.n_items;
            let from = rng.below(n as u64) as usize;
            next = (0..n)
                .map(|d| ((from + d) % n) as i32 + 1)
                .find(|&x| !seen.contains(x))
                .expect("max_len <= n_items");
        }
        seen.insert(next);
        *slot = next;
        prev = next;
        cluster = catalogue.cluster_of[next as usize - 1] as usize;
        t += 1 + (-(1.0 - rng.unit()).ln() * 7_200.0) as i64;
        *time = t;
    }
}

/// Gives every item at least one interaction (so the catalogue size is exactly n_items) by
/// replacing occurrences of items that have more than one, in users who lack the missing item.
fn cover_all_items(cfg: &SynthConfig, offsets: &[i64], items: &mut [i32]) {
    let mut counts = vec![0usize; cfg.n_items + 1];
    for &x in items.iter() {
        counts[x as usize] += 1;
    }
    let mut rng = Rng::from_parts(&[cfg.seed, domain::SYNTH_COVERAGE]);
    for missing in 1..=cfg.n_items as i32 {
        if counts[missing as usize] > 0 {
            continue;
        }
        loop {
            let p = rng.below(items.len() as u64) as usize;
            let user = offsets.partition_point(|&o| o as usize <= p) - 1;
            let range = offsets[user] as usize..offsets[user + 1] as usize;
            let old = items[p];
            if counts[old as usize] > 1 && !items[range].contains(&missing) {
                items[p] = missing;
                counts[old as usize] -= 1;
                counts[missing as usize] += 1;
                break;
            }
        }
    }
}

pub fn synthesize(cfg: &SynthConfig) -> Result<Sequences, String> {
    cfg.check()?;
    if cfg.n_interactions < cfg.n_items {
        return Err("n_interactions must be at least n_items so that every item occurs".into());
    }
    let catalogue = Catalogue::new(cfg);
    let lens = lengths(cfg);
    let mut offsets = Vec::with_capacity(cfg.n_users + 1);
    offsets.push(0i64);
    for &len in &lens {
        offsets.push(offsets.last().unwrap() + len as i64);
    }
    let mut items = vec![0i32; cfg.n_interactions];
    let mut times = vec![0i64; cfg.n_interactions];
    {
        let mut item_parts = Vec::with_capacity(cfg.n_users);
        let mut time_parts = Vec::with_capacity(cfg.n_users);
        let (mut item_rest, mut time_rest) = (items.as_mut_slice(), times.as_mut_slice());
        for &len in &lens {
            let (a, b) = item_rest.split_at_mut(len);
            let (c, d) = time_rest.split_at_mut(len);
            item_parts.push(a);
            time_parts.push(c);
            item_rest = b;
            time_rest = d;
        }
        item_parts
            .into_par_iter()
            .zip(time_parts)
            .enumerate()
            .for_each(|(u, (it, ti))| generate_user(cfg, &catalogue, u, it, ti));
    }
    cover_all_items(cfg, &offsets, &mut items);
    Ok(Sequences {
        n_items: cfg.n_items,
        split: leave_one_out(&offsets),
        offsets: Buf::owned(offsets),
        items: Buf::owned(items),
        times: Buf::owned(times),
        user_ids: IdMap::Index,
        item_ids: IdMap::Index,
        meta: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_preset_has_the_requested_shape() {
        let cfg = SynthConfig::preset("tiny", 0).unwrap();
        let s = synthesize(&cfg).unwrap();
        assert_eq!(s.n_users(), cfg.n_users);
        assert_eq!(s.items.len(), cfg.n_interactions);
        s.validate().unwrap();
        let mut counts = vec![0; cfg.n_items + 1];
        for u in 0..s.n_users() {
            let seq = &s.items[s.start(u)..s.offsets[u + 1] as usize];
            assert!(seq.len() >= cfg.min_len && seq.len() <= cfg.max_len);
            let mut sorted = seq.to_vec();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), seq.len(), "no repeated items within a user");
            assert!(s.times[s.start(u)..s.offsets[u + 1] as usize]
                .windows(2)
                .all(|w| w[0] < w[1]));
            for &x in seq {
                counts[x as usize] += 1;
            }
        }
        assert!(counts[1..].iter().all(|&c| c > 0), "every item occurs");
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = synthesize(&SynthConfig::preset("tiny", 3).unwrap()).unwrap();
        let b = synthesize(&SynthConfig::preset("tiny", 3).unwrap()).unwrap();
        let c = synthesize(&SynthConfig::preset("tiny", 4).unwrap()).unwrap();
        assert_eq!(&a.items[..], &b.items[..]);
        assert_eq!(&a.times[..], &b.times[..]);
        assert_ne!(&a.items[..], &c.items[..]);
    }

    #[test]
    fn successor_links_dominate_transitions() {
        // The planted structure: the most frequent successor of an item is far more likely than
        // the most popular item overall.
        let cfg = SynthConfig::preset("ml-100k", 0).unwrap();
        let s = synthesize(&cfg).unwrap();
        let k = cfg.successors;
        let catalogue = Catalogue::new(&cfg);
        let (mut follows, mut pairs) = (0usize, 0usize);
        for u in 0..s.n_users() {
            let seq = &s.items[s.start(u)..s.offsets[u + 1] as usize];
            for w in seq.windows(2) {
                pairs += 1;
                let succ = &catalogue.successors[(w[0] as usize - 1) * k..w[0] as usize * k];
                if succ.contains(&w[1]) {
                    follows += 1;
                }
            }
        }
        assert!(follows as f64 / pairs as f64 > 0.3, "{follows} / {pairs}");
    }
}
