//! Remapping of raw user/item ids (integers or strings, given as Arrow-style column chunks that
//! are borrowed, never copied) to dense codes 0..n in ascending order of the raw id, so that the
//! codes do not depend on row order.

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
            Offsets::I32(o) => {
                o.windows(2).all(|w| w[0] <= w[1])
                    && o.last().is_none_or(|&e| e as usize <= self.data.len())
                    && o.first().is_none_or(|&s| s >= 0)
            }
            Offsets::I64(o) => {
                o.windows(2).all(|w| w[0] <= w[1])
                    && o.last().is_none_or(|&e| e as usize <= self.data.len())
                    && o.first().is_none_or(|&s| s >= 0)
            }
        };
        if ok {
            Ok(())
        } else {
            Err("string column offsets are not monotone or exceed the data buffer".into())
        }
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

impl Uniques {
    pub fn len(&self) -> usize {
        match self {
            Uniques::Int(v) => v.len(),
            Uniques::Str { offsets, .. } => offsets.len() - 1,
        }
    }
}

/// Assigns codes to ids as they stream in (first appearance order), so that the input chunks
/// can be freed right after they are read; `finish` turns the codes into ascending id order.
#[derive(Default)]
pub enum Remapper {
    #[default]
    Empty,
    Int {
        codes: FxHashMap<i64, u32>,
        ids: Vec<i64>,
    },
    Str {
        codes: FxHashMap<Box<[u8]>, u32>,
        ids: Vec<Box<[u8]>>,
    },
}

impl Remapper {
    /// Appends the codes of `column`'s rows to `out`.
    pub fn extend(&mut self, column: &IdColumn, out: &mut Vec<u32>) -> Result<(), String> {
        if matches!(self, Remapper::Empty) {
            *self = match column {
                IdColumn::Int(_) => Remapper::Int {
                    codes: FxHashMap::default(),
                    ids: Vec::new(),
                },
                IdColumn::Str(_) => Remapper::Str {
                    codes: FxHashMap::default(),
                    ids: Vec::new(),
                },
            };
        }
        out.reserve(column.len());
        match (self, column) {
            (Remapper::Int { codes, ids }, IdColumn::Int(chunks)) => {
                for chunk in chunks {
                    for &x in chunk.iter() {
                        let code = *codes.entry(x).or_insert_with(|| {
                            ids.push(x);
                            ids.len() as u32 - 1
                        });
                        out.push(code);
                    }
                }
            }
            (Remapper::Str { codes, ids }, IdColumn::Str(chunks)) => {
                for chunk in chunks {
                    chunk.check()?;
                    for i in 0..chunk.len() {
                        let bytes = chunk.get(i);
                        let code = match codes.get(bytes) {
                            Some(&code) => code,
                            None => {
                                let code = ids.len() as u32;
                                ids.push(bytes.into());
                                codes.insert(bytes.into(), code);
                                code
                            }
                        };
                        out.push(code);
                    }
                }
            }
            _ => {
                return Err(
                    "ids are integers in one part of the input and strings in another".into(),
                )
            }
        }
        if out.len() > u32::MAX as usize {
            return Err("more than 2^32 - 1 rows".into());
        }
        Ok(())
    }

    /// The ids in ascending order and, for each first-appearance code, its rank among them.
    pub fn finish(self) -> (Vec<u32>, Uniques) {
        fn ranks<T: Ord>(ids: &[T]) -> (Vec<usize>, Vec<u32>) {
            let mut order: Vec<usize> = (0..ids.len()).collect();
            order.sort_unstable_by(|&a, &b| ids[a].cmp(&ids[b]));
            let mut rank = vec![0u32; ids.len()];
            for (r, &code) in order.iter().enumerate() {
                rank[code] = r as u32;
            }
            (order, rank)
        }
        match self {
            Remapper::Empty => (Vec::new(), Uniques::Int(Vec::new())),
            Remapper::Int { ids, .. } => {
                let (order, rank) = ranks(&ids);
                (rank, Uniques::Int(order.iter().map(|&c| ids[c]).collect()))
            }
            Remapper::Str { ids, .. } => {
                let (order, rank) = ranks(&ids);
                let mut offsets = Vec::with_capacity(ids.len() + 1);
                let mut data = Vec::new();
                offsets.push(0i64);
                for &c in &order {
                    data.extend_from_slice(&ids[c]);
                    offsets.push(data.len() as i64);
                }
                (rank, Uniques::Str { offsets, data })
            }
        }
    }
}

/// Codes in ascending id order for one whole column.
#[cfg(test)]
pub fn remap(column: &IdColumn) -> Result<(Vec<u32>, Uniques), String> {
    let mut remapper = Remapper::default();
    let mut codes = Vec::new();
    remapper.extend(column, &mut codes)?;
    let (rank, uniques) = remapper.finish();
    codes.iter_mut().for_each(|c| *c = rank[*c as usize]);
    Ok((codes, uniques))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_ids_get_codes_in_ascending_order() {
        let a: &[i64] = &[30, 10, 30];
        let b: &[i64] = &[20];
        let (codes, uniques) = remap(&IdColumn::Int(vec![a, b])).unwrap();
        assert_eq!(codes, vec![2, 0, 2, 1]);
        assert!(matches!(uniques, Uniques::Int(ref u) if u == &vec![10, 20, 30]));
    }

    #[test]
    fn extreme_int_ids() {
        let a: &[i64] = &[i64::MAX, -5, i64::MIN, -5];
        let (codes, _) = remap(&IdColumn::Int(vec![a])).unwrap();
        assert_eq!(codes, vec![2, 1, 0, 1]);
    }

    #[test]
    fn string_ids() {
        let offsets: &[i32] = &[0, 1, 3, 4];
        let data = b"bacb";
        let chunk = StrChunk {
            offsets: Offsets::I32(offsets),
            data,
        };
        let (codes, uniques) = remap(&IdColumn::Str(vec![chunk])).unwrap();
        // "b", "ac", "b" -> codes ac=0, b=1
        assert_eq!(codes, vec![1, 0, 1]);
        match uniques {
            Uniques::Str { offsets, data } => {
                assert_eq!(offsets, vec![0, 2, 3]);
                assert_eq!(data, b"acb".to_vec());
            }
            _ => panic!("expected strings"),
        }
    }

    #[test]
    fn mixing_integer_and_string_chunks_is_an_error() {
        let mut remapper = Remapper::default();
        let mut codes = Vec::new();
        let ints: &[i64] = &[1];
        remapper
            .extend(&IdColumn::Int(vec![ints]), &mut codes)
            .unwrap();
        let chunk = StrChunk {
            offsets: Offsets::I32(&[0, 1]),
            data: b"a",
        };
        assert!(remapper
            .extend(&IdColumn::Str(vec![chunk]), &mut codes)
            .is_err());
    }
}
