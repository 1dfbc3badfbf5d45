//! Small, dependency-free random numbers. Every stream is seeded from a tuple such as
//! (seed, epoch, user, window), so a batch's content never depends on which thread built it.

/// One step of SplitMix64: a strong 64-bit mixer, used both to seed and to hash seed tuples.
#[inline]
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a tuple of integers into one seed; different tuples give independent streams.
pub fn seed_from(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    for &p in parts {
        let mut s = h ^ p.rotate_left(17);
        h = splitmix(&mut s);
    }
    h
}

/// Domains keep the streams of different jobs apart even when the other parts coincide.
pub mod domain {
    pub const SHARD: u64 = 1;
    pub const ORDER: u64 = 2;
    pub const SAMPLE: u64 = 3;
    pub const EVAL_NEGATIVES: u64 = 4;
    pub const SYNTH_CATALOG: u64 = 5;
    pub const SYNTH_USER: u64 = 6;
    pub const SYNTH_LENGTHS: u64 = 7;
    pub const SYNTH_COVERAGE: u64 = 8;
    pub const BATCH_ORDER: u64 = 9;
    pub const HOLDOUT: u64 = 10;
}

/// xoshiro256++ (Blackman & Vigna): fast, 256-bit state, good statistical quality.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        let s = [
            splitmix(&mut state),
            splitmix(&mut state),
            splitmix(&mut state),
            splitmix(&mut state),
        ];
        Rng { s }
    }

    pub fn from_parts(parts: &[u64]) -> Self {
        Rng::new(seed_from(parts))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). `n` must be > 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = (self.next_u64() as u128) * (n as u128);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = (self.next_u64() as u128) * (n as u128);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Uniform float in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, values: &mut [T]) {
        for i in (1..values.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            values.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = rng.below(10) as usize;
            seen[x] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn seeds_from_different_tuples_differ() {
        assert_ne!(seed_from(&[1, 2]), seed_from(&[2, 1]));
        assert_eq!(seed_from(&[1, 2]), seed_from(&[1, 2]));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn unit_is_in_half_open_interval() {
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            let x = rng.unit();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
