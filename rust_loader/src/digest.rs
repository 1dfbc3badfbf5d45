//! Content digest of a source file (XXH3-128 over a memory map populated in one pass, so the
//! bytes are hashed where the page cache holds them, without a copy): a prepared dataset records
//! it so that every later load can tell whether its source changed, whatever the file's size and
//! mtime say.

use memmap2::MmapOptions;
use std::fs::File;
use std::path::Path;
use xxhash_rust::xxh3::xxh3_128;

/// The file's XXH3-128 as 32 lowercase hex digits.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    let file = File::open(path)?;
    let digest = if file.metadata()?.len() == 0 {
        xxh3_128(&[]) // an empty file cannot be mapped
    } else {
        // SAFETY: the map is read once and dropped here; a concurrent writer can only make the
        // digest differ from the file's new content, which the next load then reports.
        let map = unsafe { MmapOptions::new().populate().map(&file)? };
        xxh3_128(&map)
    };
    Ok(format!("{digest:032x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8], name: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("seqrec-digest-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let digest = file_digest(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        digest
    }

    #[test]
    fn digest_is_the_xxh3_128_of_the_bytes() {
        let data: Vec<u8> = (0..3_000_017).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(
            digest_of(&data, "bytes"),
            format!("{:032x}", xxh3_128(&data))
        );
        assert_eq!(digest_of(b"", "empty"), format!("{:032x}", xxh3_128(b"")));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        assert!(file_digest(Path::new("/nonexistent/seqrec-digest")).is_err());
    }
}
