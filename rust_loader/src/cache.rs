//! The binary dataset cache: one file, versioned, every section checksummed (XXH3-64), written
//! to a temporary file and renamed into place, memory-mapped on load.
//!
//! Layout (little endian):
//!   magic "SEQRECDS" | u32 format version | u32 section count | u64 XXH3 of the section table
//!   section table: per section 64 bytes = name [u8; 32] (NUL padded) | u32 dtype | u32 0 |
//!                  u64 byte offset | u64 element count | u64 XXH3 of the section bytes
//!   section payloads, each starting at a multiple of 64 bytes.

use crate::buf::Buf;
use crate::sequences::{IdMap, Sequences, Split};
use memmap2::Mmap;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: &[u8; 8] = b"SEQRECDS";
pub const FORMAT_VERSION: u32 = 1;
const PREAMBLE: usize = 24;
const ENTRY: usize = 64;
const ALIGN: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dtype {
    I64 = 1,
    I32 = 2,
    U8 = 3,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::I64 => 8,
            Dtype::I32 => 4,
            Dtype::U8 => 1,
        }
    }
    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Dtype::I64),
            2 => Some(Dtype::I32),
            3 => Some(Dtype::U8),
            _ => None,
        }
    }
}

fn bytes_of<T: Copy>(values: &[T]) -> &[u8] {
    // SAFETY: plain integers, no padding; reading them as bytes is always valid.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values))
    }
}

struct Section<'a> {
    name: &'static str,
    dtype: Dtype,
    bytes: &'a [u8],
}

fn sections<'a>(seq: &'a Sequences, dims: &'a [i64; 2]) -> Vec<Section<'a>> {
    let mut out = vec![
        Section {
            name: "dims",
            dtype: Dtype::I64,
            bytes: bytes_of(dims),
        },
        Section {
            name: "offsets",
            dtype: Dtype::I64,
            bytes: bytes_of(&seq.offsets),
        },
        Section {
            name: "items",
            dtype: Dtype::I32,
            bytes: bytes_of(&seq.items),
        },
        Section {
            name: "times",
            dtype: Dtype::I64,
            bytes: bytes_of(&seq.times),
        },
        Section {
            name: "train_end",
            dtype: Dtype::I64,
            bytes: bytes_of(&seq.split.train_end),
        },
        Section {
            name: "valid_pos",
            dtype: Dtype::I64,
            bytes: bytes_of(&seq.split.valid_pos),
        },
        Section {
            name: "test_pos",
            dtype: Dtype::I64,
            bytes: bytes_of(&seq.split.test_pos),
        },
        Section {
            name: "meta",
            dtype: Dtype::U8,
            bytes: seq.meta.as_bytes(),
        },
    ];
    for (prefix, ids) in [("user_ids", &seq.user_ids), ("item_ids", &seq.item_ids)] {
        match ids {
            IdMap::Index => {}
            IdMap::Int(v) => out.push(Section {
                name: if prefix == "user_ids" {
                    "user_ids.int"
                } else {
                    "item_ids.int"
                },
                dtype: Dtype::I64,
                bytes: bytes_of(v),
            }),
            IdMap::Str { offsets, data } => {
                let (o, d) = if prefix == "user_ids" {
                    ("user_ids.offsets", "user_ids.data")
                } else {
                    ("item_ids.offsets", "item_ids.data")
                };
                out.push(Section {
                    name: o,
                    dtype: Dtype::I64,
                    bytes: bytes_of(offsets),
                });
                out.push(Section {
                    name: d,
                    dtype: Dtype::U8,
                    bytes: bytes_of(data),
                });
            }
        }
    }
    out
}

fn aligned(x: usize) -> usize {
    x.div_ceil(ALIGN) * ALIGN
}

/// Writes the cache atomically: a crash leaves either the old file or the new one, never a mix.
pub fn write(seq: &Sequences, path: &Path) -> Result<(), String> {
    let dims = [seq.n_users() as i64, seq.n_items as i64];
    let secs = sections(seq, &dims);
    let checksums: Vec<u64> = secs.par_iter().map(|s| xxh3_64(s.bytes)).collect();
    let mut table = Vec::with_capacity(secs.len() * ENTRY);
    let mut offset = aligned(PREAMBLE + secs.len() * ENTRY);
    let mut starts = Vec::with_capacity(secs.len());
    for (s, checksum) in secs.iter().zip(&checksums) {
        let mut name = [0u8; 32];
        name[..s.name.len()].copy_from_slice(s.name.as_bytes());
        table.extend_from_slice(&name);
        table.extend_from_slice(&(s.dtype as u32).to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        table.extend_from_slice(&(offset as u64).to_le_bytes());
        table.extend_from_slice(&((s.bytes.len() / s.dtype.size()) as u64).to_le_bytes());
        table.extend_from_slice(&checksum.to_le_bytes());
        starts.push(offset);
        offset = aligned(offset + s.bytes.len());
    }
    let tmp: PathBuf = {
        let mut name = path
            .file_name()
            .ok_or_else(|| format!("{}: not a file path", path.display()))?
            .to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        path.with_file_name(name)
    };
    let result = (|| -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 22, file);
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&(secs.len() as u32).to_le_bytes())?;
        out.write_all(&xxh3_64(&table).to_le_bytes())?;
        out.write_all(&table)?;
        let mut written = PREAMBLE + table.len();
        for (s, &start) in secs.iter().zip(&starts) {
            out.write_all(&vec![0u8; start - written])?;
            out.write_all(s.bytes)?;
            written = start + s.bytes.len();
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: could not write the dataset cache: {e}", path.display())
    })
}

struct Entry {
    dtype: Dtype,
    offset: usize,
    len: usize,
    checksum: u64,
}

/// Memory-maps a cache file. `verify` checks every section's checksum (fast: XXH3 runs at memory
/// bandwidth) and the structure of the arrays.
pub fn read(path: &Path, verify: bool) -> Result<Sequences, String> {
    let fail = |what: String| format!("{}: {what}", path.display());
    let file = File::open(path).map_err(|e| fail(format!("cannot open the dataset cache: {e}")))?;
    // SAFETY: the cache is only ever replaced by rename, never modified in place.
    let map =
        Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| fail(format!("cannot memory-map: {e}")))?);
    if map.len() < PREAMBLE || &map[..8] != MAGIC {
        return Err(fail("not a seqrec_fast dataset cache (bad magic bytes); re-create it with `seqrec-fast data prepare`".into()));
    }
    let version = u32::from_le_bytes(map[8..12].try_into().unwrap());
    if version != FORMAT_VERSION {
        return Err(fail(format!(
            "stale dataset cache: format version {version}, this build reads version {FORMAT_VERSION}; re-create it with `seqrec-fast data prepare`"
        )));
    }
    let n_sections = u32::from_le_bytes(map[12..16].try_into().unwrap()) as usize;
    let table_end = PREAMBLE + n_sections * ENTRY;
    if table_end > map.len() {
        return Err(fail(
            "corrupted dataset cache: truncated section table".into(),
        ));
    }
    let table = &map[PREAMBLE..table_end];
    if xxh3_64(table) != u64::from_le_bytes(map[16..24].try_into().unwrap()) {
        return Err(fail(
            "corrupted dataset cache: section table checksum mismatch".into(),
        ));
    }
    let mut entries: HashMap<String, Entry> = HashMap::new();
    for raw in table.chunks_exact(ENTRY) {
        let name_len = raw[..32].iter().position(|&b| b == 0).unwrap_or(32);
        let name = String::from_utf8_lossy(&raw[..name_len]).into_owned();
        let word = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().unwrap());
        let dtype = Dtype::from_code(u32::from_le_bytes(raw[32..36].try_into().unwrap()))
            .ok_or_else(|| {
                fail(format!(
                    "corrupted dataset cache: unknown dtype in section {name}"
                ))
            })?;
        let (offset, len, checksum) = (word(40) as usize, word(48) as usize, word(56));
        let end = len
            .checked_mul(dtype.size())
            .and_then(|b| b.checked_add(offset));
        if offset % ALIGN != 0 || end.is_none_or(|e| e > map.len()) {
            return Err(fail(format!(
                "corrupted dataset cache: section {name} lies outside the file (truncated?)"
            )));
        }
        entries.insert(
            name,
            Entry {
                dtype,
                offset,
                len,
                checksum,
            },
        );
    }
    if verify {
        let bad: Vec<&String> = entries
            .par_iter()
            .filter(|(_, e)| {
                xxh3_64(&map[e.offset..e.offset + e.len * e.dtype.size()]) != e.checksum
            })
            .map(|(name, _)| name)
            .collect();
        if let Some(name) = bad.first() {
            return Err(fail(format!(
                "corrupted dataset cache: checksum mismatch in section {name}; re-create it"
            )));
        }
    }
    let get = |name: &str, dtype: Dtype| -> Result<&Entry, String> {
        let e = entries.get(name).ok_or_else(|| {
            fail(format!(
                "corrupted dataset cache: section {name} is missing"
            ))
        })?;
        if e.dtype != dtype {
            return Err(fail(format!(
                "corrupted dataset cache: section {name} has the wrong dtype"
            )));
        }
        Ok(e)
    };
    let i64s =
        |name: &str| get(name, Dtype::I64).map(|e| Buf::<i64>::mapped(&map, e.offset, e.len));
    let u8s = |name: &str| get(name, Dtype::U8).map(|e| Buf::<u8>::mapped(&map, e.offset, e.len));
    let items = get("items", Dtype::I32).map(|e| Buf::<i32>::mapped(&map, e.offset, e.len))?;
    let meta_bytes = u8s("meta")?;
    let meta = String::from_utf8(meta_bytes.to_vec())
        .map_err(|_| fail("corrupted dataset cache: metadata is not UTF-8".into()))?;
    let id_map = |prefix: &str| -> Result<IdMap, String> {
        if entries.contains_key(&format!("{prefix}.int")) {
            Ok(IdMap::Int(i64s(&format!("{prefix}.int"))?))
        } else if entries.contains_key(&format!("{prefix}.offsets")) {
            Ok(IdMap::Str {
                offsets: i64s(&format!("{prefix}.offsets"))?,
                data: u8s(&format!("{prefix}.data"))?,
            })
        } else {
            Ok(IdMap::Index)
        }
    };
    let dims = i64s("dims")?;
    if dims.len() != 2 || dims[1] < 0 {
        return Err(fail("corrupted dataset cache: bad dims section".into()));
    }
    let n_items = dims[1] as usize;
    let seq = Sequences {
        n_items,
        offsets: i64s("offsets")?,
        items,
        times: i64s("times")?,
        split: Split {
            train_end: i64s("train_end")?,
            valid_pos: i64s("valid_pos")?,
            test_pos: i64s("test_pos")?,
        },
        user_ids: id_map("user_ids")?,
        item_ids: id_map("item_ids")?,
        meta,
    };
    if seq.offsets.is_empty() || seq.n_users() as i64 != dims[0] {
        return Err(fail("corrupted dataset cache: empty offsets".into()));
    }
    if verify {
        seq.validate()
            .map_err(|m| fail(format!("corrupted dataset cache: {m}")))?;
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::leave_one_out;

    fn sample() -> Sequences {
        let offsets = vec![0i64, 3, 5];
        Sequences {
            n_items: 4,
            split: leave_one_out(&offsets),
            offsets: Buf::owned(offsets),
            items: Buf::owned(vec![1, 2, 3, 4, 1]),
            times: Buf::owned(vec![1, 2, 3, 1, 2]),
            user_ids: IdMap::Str {
                offsets: Buf::owned(vec![0, 1, 3]),
                data: Buf::owned(b"abc".to_vec()),
            },
            item_ids: IdMap::Int(Buf::owned(vec![10, 20, 30, 40])),
            meta: "{}".into(),
        }
    }

    fn tmp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("seqrec-cache-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("dataset.bin")
    }

    #[test]
    fn round_trip_is_memory_mapped_and_equal() {
        let path = tmp_path("roundtrip");
        write(&sample(), &path).unwrap();
        let back = read(&path, true).unwrap();
        assert!(back.items.is_mapped());
        assert_eq!(&back.items[..], &[1, 2, 3, 4, 1]);
        assert_eq!(&back.split.test_pos[..], &[2, 4]);
        assert_eq!(back.n_items, 4);
        assert!(matches!(back.user_ids, IdMap::Str { ref data, .. } if &data[..] == b"abc"));
    }

    #[test]
    fn flipped_byte_is_detected() {
        let path = tmp_path("corrupt");
        write(&sample(), &path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let err = read(&path, true).err().unwrap();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn other_versions_are_reported_stale() {
        let path = tmp_path("stale");
        write(&sample(), &path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] = 0;
        std::fs::write(&path, &bytes).unwrap();
        let err = read(&path, true).err().unwrap();
        assert!(err.contains("stale"), "{err}");
    }

    #[test]
    fn truncated_file_is_reported() {
        let path = tmp_path("truncated");
        write(&sample(), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
        assert!(read(&path, true).is_err());
    }
}
