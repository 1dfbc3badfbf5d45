// The random bits of seqrec_fast::dropout, shared by the CPU and CUDA kernels and mirrored in
// seqrec_fast/ops/reference.py: element i (of the contiguous tensor) of the call with `seed` is
// kept when bits(seed, i) < threshold(keep probability). A counter-based hash instead of a
// sequential generator: any element's bits come from its index alone, so the kernels vectorise
// and split the work freely, and the backward regenerates the mask instead of storing it.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SEQREC_FAST_HOST_DEVICE __host__ __device__
#else
#define SEQREC_FAST_HOST_DEVICE
#endif

namespace seqrec_fast::dropout_bits {

// "lowbias32" (C. Wellons' hash-prospector): a bijective 32-bit mixer with low bias, in 32-bit
// multiplies that AVX2 vectorises.
SEQREC_FAST_HOST_DEVICE inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// What the high half of the index and the seed contribute: constant over 2^32 elements.
SEQREC_FAST_HOST_DEVICE inline uint32_t block_key(uint64_t seed, uint64_t index) {
  return static_cast<uint32_t>(seed >> 32) ^ (static_cast<uint32_t>(index >> 32) * 0x9e3779b9U);
}

// Two rounds: the streams of two seeds are not shifted copies of each other.
SEQREC_FAST_HOST_DEVICE inline uint32_t bits(uint32_t seed_low, uint32_t key, uint32_t index_low) {
  return mix32(mix32(index_low ^ seed_low) + key);
}

// Keep iff bits < threshold: probability threshold / 2^32 (within 2^-32 of keep_prob).
inline uint32_t threshold(double keep_prob) {
  const double scaled = std::nearbyint(keep_prob * 4294967296.0);
  return scaled >= 4294967295.0 ? 0xffffffffU : static_cast<uint32_t>(scaled);
}

}  // namespace seqrec_fast::dropout_bits
