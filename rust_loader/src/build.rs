//! From raw interaction columns to `Sequences`: remap ids, sort each user's interactions by
//! (time, original row), drop exact duplicates, apply k-core / minimum-length filters, compact
//! the surviving ids and split.

use crate::buf::Buf;
use crate::remap::{IdColumn, Remapper, Uniques};
use crate::sequences::{IdMap, Sequences};
use crate::split;
use rayon::prelude::*;

pub enum TimeColumn<'a> {
    Int(Vec<&'a [i64]>),
    /// Fractions of a second are floored; ties keep file order.
    Float(Vec<&'a [f64]>),
    /// No time column: file order is time order.
    RowOrder(usize),
}

#[derive(Clone, Copy, Debug)]
pub enum SplitKind {
    LeaveOneOut,
    Temporal {
        valid_fraction: f64,
        test_fraction: f64,
    },
}

#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Users need at least this many interactions (k-core on the user side, and the minimum
    /// sequence length); applied together with `min_item` until nothing changes.
    pub min_user: usize,
    pub min_item: usize,
    /// Drop rows repeating an earlier row's (user, item, time).
    pub drop_duplicates: bool,
    pub split: SplitKind,
}

#[derive(Clone, Debug, Default)]
pub struct BuildReport {
    pub rows: usize,
    pub duplicates_dropped: usize,
    pub filtered_rows: usize,
    pub users_dropped: usize,
    pub items_dropped: usize,
    pub filter_rounds: usize,
}

/// A data error at a row (0-based, counting data rows only) of a column.
#[derive(Debug)]
pub struct RowError {
    pub column: &'static str,
    pub row: Option<usize>,
    pub message: String,
}

impl RowError {
    fn at(column: &'static str, row: usize, message: String) -> Self {
        RowError {
            column,
            row: Some(row),
            message,
        }
    }
    fn whole(column: &'static str, message: String) -> Self {
        RowError {
            column,
            row: None,
            message,
        }
    }
}

/// Appends a chunk list of times to `out`, which holds all earlier rows (so rows in errors count
/// from the start of the input).
fn append_times(column: &TimeColumn, out: &mut Vec<i64>) -> Result<(), RowError> {
    match column {
        TimeColumn::RowOrder(n) => out.extend(out.len() as i64..(out.len() + n) as i64),
        TimeColumn::Int(chunks) => {
            for chunk in chunks {
                if let Some(i) = chunk.iter().position(|&t| t < 0) {
                    let row = out.len() + i;
                    return Err(RowError::at(
                        "time",
                        row,
                        format!("timestamp {} is negative; expected a time >= 0", chunk[i]),
                    ));
                }
                out.extend_from_slice(chunk);
            }
        }
        TimeColumn::Float(chunks) => {
            for chunk in chunks {
                if let Some(i) = chunk
                    .iter()
                    .position(|t| !t.is_finite() || *t < 0.0 || *t >= 9.2e18)
                {
                    let row = out.len() + i;
                    return Err(RowError::at(
                        "time",
                        row,
                        format!("timestamp {} is not a finite number >= 0", chunk[i]),
                    ));
                }
                out.extend(chunk.iter().map(|&t| t.floor() as i64));
            }
        }
    }
    Ok(())
}

/// Row indexes grouped by user code (counting sort, stable) and, within each user, stably sorted
/// by time. Returns (permutation, per-user-code segment offsets).
fn sort_rows(user_codes: &[u32], n_users: usize, times: &[i64]) -> (Vec<u32>, Vec<usize>) {
    let mut bounds = vec![0usize; n_users + 1];
    for &u in user_codes {
        bounds[u as usize + 1] += 1;
    }
    for u in 0..n_users {
        bounds[u + 1] += bounds[u];
    }
    let mut cursor = bounds.clone();
    let mut perm = vec![0u32; user_codes.len()];
    for (row, &u) in user_codes.iter().enumerate() {
        perm[cursor[u as usize]] = row as u32;
        cursor[u as usize] += 1;
    }
    let mut segments: Vec<&mut [u32]> = Vec::with_capacity(n_users);
    let mut rest = perm.as_mut_slice();
    for u in 0..n_users {
        let (head, tail) = rest.split_at_mut(bounds[u + 1] - bounds[u]);
        segments.push(head);
        rest = tail;
    }
    // Rows of a segment are in file order already, so a stable sort by time breaks ties by it.
    segments
        .par_iter_mut()
        .for_each(|seg| seg.sort_by_key(|&row| times[row as usize]));
    (perm, bounds)
}

/// `values` reordered so that position p holds row `perm[p]` (a parallel gather: random reads,
/// sequential writes; far faster than following the permutation's cycles in place).
fn gather<T: Copy + Send + Sync>(values: Vec<T>, perm: &[u32]) -> Vec<T> {
    perm.par_iter().map(|&row| values[row as usize]).collect()
}

/// Marks rows that repeat the (item, time) of an earlier row of the same user.
fn mark_duplicates(bounds: &[usize], items: &[u32], times: &[i64], keep: &mut [bool]) -> usize {
    let mut dropped = 0;
    for w in bounds.windows(2) {
        let mut i = w[0];
        while i < w[1] {
            let mut j = i + 1;
            while j < w[1] && times[j] == times[i] {
                j += 1;
            }
            // Runs of equal time are short in practice; quadratic is fine and allocation-free.
            for a in i + 1..j {
                if (i..a).any(|b| keep[b] && items[b] == items[a]) {
                    keep[a] = false;
                    dropped += 1;
                }
            }
            i = j;
        }
    }
    dropped
}

/// Repeatedly drops users with fewer than `min_user` and items with fewer than `min_item`
/// remaining interactions until both hold. Returns (user counts, item counts, rounds).
fn filter_cores(
    bounds: &[usize],
    items: &[u32],
    n_items: usize,
    min_user: usize,
    min_item: usize,
    keep: &mut [bool],
) -> (Vec<usize>, Vec<usize>, usize) {
    let n_users = bounds.len() - 1;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut user_counts = vec![0usize; n_users];
        let mut item_counts = vec![0usize; n_items];
        for u in 0..n_users {
            for p in bounds[u]..bounds[u + 1] {
                if keep[p] {
                    user_counts[u] += 1;
                    item_counts[items[p] as usize] += 1;
                }
            }
        }
        let mut changed = false;
        for u in 0..n_users {
            let drop_user = user_counts[u] < min_user;
            for p in bounds[u]..bounds[u + 1] {
                if keep[p] && (drop_user || item_counts[items[p] as usize] < min_item) {
                    keep[p] = false;
                    changed = true;
                }
            }
        }
        if !changed {
            return (user_counts, item_counts, rounds);
        }
    }
}

/// The raw ids of the surviving codes, as an export map.
fn surviving_ids(uniques: &Uniques, survivors: &[usize]) -> IdMap {
    match uniques {
        Uniques::Int(values) => {
            IdMap::Int(Buf::owned(survivors.iter().map(|&c| values[c]).collect()))
        }
        Uniques::Str { offsets, data } => {
            let mut new_offsets = Vec::with_capacity(survivors.len() + 1);
            let mut new_data = Vec::new();
            new_offsets.push(0i64);
            for &c in survivors {
                new_data.extend_from_slice(&data[offsets[c] as usize..offsets[c + 1] as usize]);
                new_offsets.push(new_data.len() as i64);
            }
            IdMap::Str {
                offsets: Buf::owned(new_offsets),
                data: Buf::owned(new_data),
            }
        }
    }
}

/// Accumulates interaction columns chunk by chunk (so the caller can free each chunk after
/// handing it over), then builds the sequences. After an error from `add` the builder must be
/// discarded.
#[derive(Default)]
pub struct Builder {
    users: Remapper,
    items: Remapper,
    user_codes: Vec<u32>,
    item_codes: Vec<u32>,
    times: Vec<i64>,
}

impl Builder {
    pub fn rows(&self) -> usize {
        self.times.len()
    }

    pub fn add(
        &mut self,
        users: &IdColumn,
        items: &IdColumn,
        times: &TimeColumn,
    ) -> Result<(), RowError> {
        let n = users.len();
        if items.len() != n {
            return Err(RowError::whole(
                "item",
                format!("has {} rows but the user column has {n}", items.len()),
            ));
        }
        let n_times = match times {
            TimeColumn::RowOrder(k) => *k,
            TimeColumn::Int(chunks) => chunks.iter().map(|c| c.len()).sum(),
            TimeColumn::Float(chunks) => chunks.iter().map(|c| c.len()).sum(),
        };
        if n_times != n {
            return Err(RowError::whole(
                "time",
                format!("has {n_times} rows but the user column has {n}"),
            ));
        }
        if self.times.len() + n >= 1 << 31 {
            return Err(RowError::whole(
                "user",
                "more than 2^31 - 1 rows are not supported".into(),
            ));
        }
        // Grow by a quarter at a time, not by doubling, so that the slack stays small next to
        // the rows (these vectors are the bulk of the memory while a large file streams in).
        if self.times.len() + n > self.times.capacity() {
            let extra = n.max(self.times.len() / 4);
            self.times.reserve_exact(extra);
            self.user_codes.reserve_exact(extra);
            self.item_codes.reserve_exact(extra);
        }
        // Validate times first so that a bad chunk leaves the builder unchanged.
        let rows_before = self.times.len();
        append_times(times, &mut self.times).inspect_err(|_| self.times.truncate(rows_before))?;
        self.users
            .extend(users, &mut self.user_codes)
            .map_err(|m| RowError::whole("user", m))?;
        self.items
            .extend(items, &mut self.item_codes)
            .map_err(|m| RowError::whole("item", m))?;
        Ok(())
    }

    pub fn finish(self, options: &BuildOptions) -> Result<(Sequences, BuildReport), RowError> {
        let Builder {
            users,
            items,
            mut user_codes,
            mut item_codes,
            times,
        } = self;
        let n_rows = times.len();
        let (user_rank, user_ids) = users.finish();
        let (item_rank, item_ids) = items.finish();
        user_codes
            .par_iter_mut()
            .for_each(|c| *c = user_rank[*c as usize]);
        item_codes
            .par_iter_mut()
            .for_each(|c| *c = item_rank[*c as usize]);
        // Sort; from here on position p is the p-th interaction in (user, time, file order) and
        // the segment bounds carry the user.
        let (perm, bounds) = sort_rows(&user_codes, user_ids.len(), &times);
        drop(user_codes);
        // One array at a time, each freed once gathered, to keep the peak low.
        let mut item_codes = gather(item_codes, &perm);
        let mut times = gather(times, &perm);
        drop(perm);

        let mut report = BuildReport {
            rows: n_rows,
            ..Default::default()
        };
        let mut keep = vec![true; n_rows];
        if options.drop_duplicates {
            report.duplicates_dropped = mark_duplicates(&bounds, &item_codes, &times, &mut keep);
        }
        let (user_counts, item_counts, rounds) = filter_cores(
            &bounds,
            &item_codes,
            item_ids.len(),
            options.min_user.max(1),
            options.min_item.max(1),
            &mut keep,
        );
        report.filter_rounds = rounds;

        let surviving_users: Vec<usize> = (0..user_counts.len())
            .filter(|&u| user_counts[u] > 0)
            .collect();
        let surviving_items: Vec<usize> = (0..item_counts.len())
            .filter(|&i| item_counts[i] > 0)
            .collect();
        if surviving_items.len() >= i32::MAX as usize {
            return Err(RowError::whole(
                "item",
                "more than 2^31 - 2 distinct items".into(),
            ));
        }
        let mut new_item = vec![0u32; item_counts.len()];
        for (k, &code) in surviving_items.iter().enumerate() {
            new_item[code] = k as u32 + 1;
        }
        report.users_dropped = user_ids.len() - surviving_users.len();
        report.items_dropped = item_ids.len() - surviving_items.len();

        // Compact the kept rows in place; the item buffer becomes the item-id array.
        let mut offsets = Vec::with_capacity(surviving_users.len() + 1);
        offsets.push(0i64);
        let mut kept = 0;
        for &u in &surviving_users {
            for p in bounds[u]..bounds[u + 1] {
                if keep[p] {
                    item_codes[kept] = new_item[item_codes[p] as usize];
                    times[kept] = times[p];
                    kept += 1;
                }
            }
            offsets.push(kept as i64);
        }
        drop(keep);
        item_codes.truncate(kept);
        times.truncate(kept);
        times.shrink_to_fit();
        // Same size and alignment: the collect reuses the allocation.
        let mut out_items: Vec<i32> = item_codes.into_iter().map(|x| x as i32).collect();
        out_items.shrink_to_fit();
        report.filtered_rows = n_rows - report.duplicates_dropped - kept;

        let split = match options.split {
            SplitKind::Temporal {
                valid_fraction,
                test_fraction,
            } if !times.is_empty() => {
                let (t_valid, t_test) =
                    split::temporal_cutoffs(&times, valid_fraction, test_fraction);
                split::temporal(&offsets, &times, t_valid, t_test)
            }
            _ => split::leave_one_out(&offsets),
        };
        let sequences = Sequences {
            n_items: surviving_items.len(),
            offsets: Buf::owned(offsets),
            items: Buf::owned(out_items),
            times: Buf::owned(times),
            split,
            user_ids: surviving_ids(&user_ids, &surviving_users),
            item_ids: surviving_ids(&item_ids, &surviving_items),
            meta: String::new(),
        };
        Ok((sequences, report))
    }
}

/// One-shot build from whole columns.
#[cfg(test)]
pub fn build(
    users: &IdColumn,
    items: &IdColumn,
    times: &TimeColumn,
    options: &BuildOptions,
) -> Result<(Sequences, BuildReport), RowError> {
    let mut builder = Builder::default();
    builder.add(users, items, times)?;
    builder.finish(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(min_user: usize, min_item: usize) -> BuildOptions {
        BuildOptions {
            min_user,
            min_item,
            drop_duplicates: true,
            split: SplitKind::LeaveOneOut,
        }
    }

    /// Builds from integer columns with timestamps (a k-core of 1 unless `options` says more).
    fn build_ints(
        users: &[i64],
        items: &[i64],
        times: &[i64],
        options: &BuildOptions,
    ) -> (Sequences, BuildReport) {
        build(
            &IdColumn::Int(vec![users]),
            &IdColumn::Int(vec![items]),
            &TimeColumn::Int(vec![times]),
            options,
        )
        .unwrap()
    }

    #[test]
    fn sorts_by_user_then_time_then_row() {
        let users: &[i64] = &[7, 5, 7, 7, 5];
        let items: &[i64] = &[100, 200, 300, 400, 100];
        let times: &[i64] = &[3, 9, 1, 3, 2];
        let (s, report) = build_ints(users, items, times, &options(1, 1));
        assert_eq!(report.rows, 5);
        assert_eq!(&s.offsets[..], &[0, 2, 5]);
        // items remapped: 100->1, 200->2, 300->3, 400->4
        assert_eq!(&s.items[..], &[1, 2, 3, 1, 4]);
        assert_eq!(&s.times[..], &[2, 9, 1, 3, 3]);
        assert!(matches!(s.user_ids, IdMap::Int(ref v) if &v[..] == &[5, 7]));
    }

    #[test]
    fn drops_exact_duplicates_only() {
        let users: &[i64] = &[1, 1, 1, 1];
        let items: &[i64] = &[10, 20, 10, 10];
        let times: &[i64] = &[5, 5, 5, 6];
        let (s, report) = build_ints(users, items, times, &options(1, 1));
        assert_eq!(report.duplicates_dropped, 1);
        assert_eq!(&s.items[..], &[1, 2, 1]);
    }

    #[test]
    fn k_core_iterates_to_a_fixpoint() {
        // item 30 has one interaction; dropping it leaves user 2 with one interaction, which
        // then must go too, which leaves item 20 with one interaction...
        let users: &[i64] = &[1, 1, 1, 2, 2, 3, 3];
        let items: &[i64] = &[10, 20, 11, 20, 30, 10, 11];
        let (s, report) = build(
            &IdColumn::Int(vec![users]),
            &IdColumn::Int(vec![items]),
            &TimeColumn::RowOrder(7),
            &options(2, 2),
        )
        .unwrap();
        assert_eq!(s.n_users(), 2);
        assert_eq!(s.n_items, 2);
        assert_eq!(&s.items[..], &[1, 2, 1, 2]);
        assert_eq!(report.users_dropped, 1);
        assert_eq!(report.items_dropped, 2);
        assert!(report.filter_rounds >= 2);
    }

    #[test]
    fn chunks_added_one_by_one_equal_one_build() {
        let users: &[i64] = &[3, 1, 3, 2, 1];
        let items: &[i64] = &[9, 8, 7, 9, 7];
        let times: &[i64] = &[5, 4, 3, 2, 1];
        let (whole, _) = build_ints(users, items, times, &options(1, 1));
        let mut builder = Builder::default();
        for (a, b) in [(0, 2), (2, 5)] {
            builder
                .add(
                    &IdColumn::Int(vec![&users[a..b]]),
                    &IdColumn::Int(vec![&items[a..b]]),
                    &TimeColumn::Int(vec![&times[a..b]]),
                )
                .unwrap();
        }
        let (parts, _) = builder.finish(&options(1, 1)).unwrap();
        assert_eq!(&whole.items[..], &parts.items[..]);
        assert_eq!(&whole.offsets[..], &parts.offsets[..]);
        assert_eq!(&whole.times[..], &parts.times[..]);
    }

    #[test]
    fn errors_count_rows_across_chunks() {
        let mut builder = Builder::default();
        let ok: &[i64] = &[1, 2];
        let bad: &[i64] = &[3, -1];
        builder
            .add(
                &IdColumn::Int(vec![ok]),
                &IdColumn::Int(vec![ok]),
                &TimeColumn::Int(vec![ok]),
            )
            .unwrap();
        let err = builder
            .add(
                &IdColumn::Int(vec![ok]),
                &IdColumn::Int(vec![ok]),
                &TimeColumn::Int(vec![bad]),
            )
            .err()
            .unwrap();
        assert_eq!(err.row, Some(3));
        assert_eq!(builder.rows(), 2);
    }

    #[test]
    fn negative_and_nan_times_are_reported_with_their_row() {
        let users: &[i64] = &[1, 1];
        let items: &[i64] = &[1, 2];
        let times: &[f64] = &[1.0, f64::NAN];
        let err = build(
            &IdColumn::Int(vec![users]),
            &IdColumn::Int(vec![items]),
            &TimeColumn::Float(vec![times]),
            &options(1, 1),
        )
        .err()
        .unwrap();
        assert_eq!(err.row, Some(1));
        let neg: &[i64] = &[1, -3];
        let err = build(
            &IdColumn::Int(vec![users]),
            &IdColumn::Int(vec![items]),
            &TimeColumn::Int(vec![neg]),
            &options(1, 1),
        )
        .err()
        .unwrap();
        assert_eq!(err.row, Some(1));
    }
}
