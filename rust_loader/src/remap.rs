//! Remapping of raw user/item ids (integers or strings, given as Arrow-style column chunks that
//! are borrowed, never copied) to dense codes 0..n in ascending order of the raw id, so that the
//! codes do not depend on row order.

use rayon::prelude::*;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's hasher): much faster than SipHash for integer and short byte keys; we do not
/// need resistance to adversarial keys here.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.add(x);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Offsets of one Arrow string chunk (`string` has 32-bit, `large_string` 64-bit offsets).
pub enum Offsets<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

pub struct StrChunk<'a> {
    pub offsets: Offsets<'a>,
    pub data: &'a [u8],
}

impl<'a> StrChunk<'a> {
    pub fn len(&self) -> usize {
        match &self.offsets {
            Offsets::I32(o) => o.len().saturating_sub(1),
            Offsets::I64(o) => o.len().saturating_sub(1),
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (a, b) = match &self.offsets {
            Offsets::I32(o) => (o[i] as usize, o[i + 1] as usize),
            Offsets::I64(o) => (o[i] as usize, o[i + 1] as usize),
        };
        &self.data[a..b]
    }

    /// Checks that the offsets are monotone and inside the data buffer.
    pub fn check(&self) -> Result<(), String> {
        let ok = match &self.offsets {
            Offsets::I32(o) => o.windows(2).all(|w| w[0] <= w[1]) && o.last().map_or(true, |&e| e as usize <= self.data.len()) && o.first().map_or(true, |&s| s >= 0),
            Offsets::I64(o) => o.windows(2).all(|w| w[0] <= w[1]) && o.last().map_or(true, |&e| e as usize <= self.data.len()) && o.first().map_or(true, |&s| s >= 0),
        };
        if ok { Ok(()) } else { Err("string column offsets are not monotone or exceed the data buffer".into()) }
    }
}

/// One id column, as the chunks Arrow read it in.
pub enum IdColumn<'a> {
    Int(Vec<&'a [i64]>),
    Str(Vec<StrChunk<'a>>),
}

impl IdColumn<'_> {
    pub fn len(&self) -> usize {
        match self {
            IdColumn::Int(chunks) => chunks.iter().map(|c| c.len()).sum(),
            IdColumn::Str(chunks) => chunks.iter().map(|c| c.len()).sum(),
        }
    }
}

/// The distinct raw ids in ascending order; code `c` stands for `uniques[c]`.
pub enum Uniques {
    Int(Vec<i64>),
    Str { offsets: Vec<i64>, data: Vec<u8> },
}

pub struct Remapped {
    pub codes: Vec<u32>,
    pub uniques: Uniques,
}

impl Remapped {
    pub fn n_unique(&self) -> usize {
        match &self.uniques {
            Uniques::Int(v) => v.len(),
            Uniques::Str { offsets, .. } => offsets.len() - 1,
        }
    }
}

pub fn remap(column: &IdColumn) -> Result<Remapped, String> {
    match column {
        IdColumn::Int(chunks) => remap_int(chunks),
        IdColumn::Str(chunks) => remap_str(chunks),
    }
}

/// Writes `f(chunk, index)` for every row into a new vector, chunk by chunk, in parallel.
fn map_rows<C: Sync, F>(chunks: &[C], len: impl Fn(&C) -> usize, f: F) -> Vec<u32>
where
    F: Fn(&C, usize) -> u32 + Sync,
{
    let total: usize = chunks.iter().map(&len).sum();
    let mut codes = vec![0u32; total];
    let mut rest = codes.as_mut_slice();
    for chunk in chunks {
        let (head, tail) = rest.split_at_mut(len(chunk));
        head.par_iter_mut().enumerate().for_each(|(i, code)| *code = f(chunk, i));
        rest = tail;
    }
    codes
}

fn remap_int(chunks: &[&[i64]]) -> Result<Remapped, String> {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    if total == 0 {
        return Ok(Remapped { codes: Vec::new(), uniques: Uniques::Int(Vec::new()) });
    }
    let min = chunks.iter().filter_map(|c| c.par_iter().min().copied()).min().unwrap();
    let max = chunks.iter().filter_map(|c| c.par_iter().max().copied()).max().unwrap();
    let range = (max as i128 - min as i128 + 1) as u128;
    // Dense ids (the common case: MovieLens, RecBole): a lookup table beats any hash map.
    if range <= (4 * total as u128 + (1 << 20)) {
        let mut table = vec![u32::MAX; range as usize];
        for chunk in chunks {
            for &x in chunk.iter() {
                table[(x - min) as usize] = 0;
            }
        }
        let mut uniques = Vec::new();
        for (slot, code) in table.iter_mut().enumerate() {
            if *code == 0 {
                *code = uniques.len() as u32;
                uniques.push(min + slot as i64);
            }
        }
        let codes = map_rows(chunks, |c| c.len(), |c, i| table[(c[i] - min) as usize]);
        return Ok(Remapped { codes, uniques: Uniques::Int(uniques) });
    }
    let mut seen: FxHashMap<i64, u32> = FxHashMap::default();
    for chunk in chunks {
        for &x in chunk.iter() {
            seen.entry(x).or_insert(0);
        }
    }
    let mut uniques: Vec<i64> = seen.keys().copied().collect();
    uniques.sort_unstable();
    for (code, x) in uniques.iter().enumerate() {
        seen.insert(*x, code as u32);
    }
    let codes = map_rows(chunks, |c| c.len(), |c, i| seen[&c[i]]);
    Ok(Remapped { codes, uniques: Uniques::Int(uniques) })
}

fn remap_str(chunks: &[StrChunk]) -> Result<Remapped, String> {
    for chunk in chunks {
        chunk.check()?;
    }
    let mut seen: FxHashMap<&[u8], u32> = FxHashMap::default();
    for chunk in chunks {
        for i in 0..chunk.len() {
            seen.entry(chunk.get(i)).or_insert(0);
        }
    }
    let mut uniques: Vec<&[u8]> = seen.keys().copied().collect();
    uniques.sort_unstable();
    let mut offsets = Vec::with_capacity(uniques.len() + 1);
    let mut data = Vec::new();
    offsets.push(0i64);
    for (code, s) in uniques.iter().enumerate() {
        seen.insert(s, code as u32);
        data.extend_from_slice(s);
        offsets.push(data.len() as i64);
    }
    let codes = map_rows(chunks, |c| c.len(), |c, i| seen[c.get(i)]);
    Ok(Remapped { codes, uniques: Uniques::Str { offsets, data } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_ids_get_codes_in_ascending_order() {
        let a: &[i64] = &[30, 10, 30];
        let b: &[i64] = &[20];
        let r = remap(&IdColumn::Int(vec![a, b])).unwrap();
        assert_eq!(r.codes, vec![2, 0, 2, 1]);
        assert!(matches!(r.uniques, Uniques::Int(ref u) if u == &vec![10, 20, 30]));
    }

    #[test]
    fn sparse_int_ids_use_the_hash_path() {
        let a: &[i64] = &[i64::MAX, -5, i64::MIN, -5];
        let r = remap(&IdColumn::Int(vec![a])).unwrap();
        assert_eq!(r.codes, vec![2, 1, 0, 1]);
    }

    #[test]
    fn string_ids() {
        let offsets: &[i32] = &[0, 1, 3, 4];
        let data = b"bacb";
        let chunk = StrChunk { offsets: Offsets::I32(offsets), data };
        let r = remap(&IdColumn::Str(vec![chunk])).unwrap();
        // "b", "ac", "b" -> codes ac=0, b=1
        assert_eq!(r.codes, vec![1, 0, 1]);
        match r.uniques {
            Uniques::Str { offsets, data } => {
                assert_eq!(offsets, vec![0, 2, 3]);
                assert_eq!(data, b"acb".to_vec());
            }
            _ => panic!("expected strings"),
        }
    }
}
