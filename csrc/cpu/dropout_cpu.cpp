// CPU kernel of dropout: blocks of the flat tensor in parallel, the hash and the select in one
// vectorised loop per block.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../dropout.h"

namespace seqrec_fast {
namespace {

// Elements per task; a power of two, so no block straddles a 2^32 boundary of the index (where
// the block key changes).
constexpr int64_t kBlock = 1 << 14;

// One block, everything by value and restrict-qualified: nothing the stores could alias, so
// the loop vectorises (hash, compare and select in 32-bit lanes).
template <typename scalar_t, typename acc_t>
void apply_block(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, int64_t n, uint32_t seed_low,
                 uint32_t key, uint32_t low, uint32_t threshold, acc_t scale) {
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_bits::bits(seed_low, key, low + static_cast<uint32_t>(i)) < threshold;
    y[i] = static_cast<scalar_t>(keep ? static_cast<acc_t>(x[i]) * scale : acc_t(0));
  }
}

struct DropoutCpu {
  template <typename scalar_t>
  static void apply(const scalar_t* x, scalar_t* y, int64_t N, uint64_t seed, uint32_t threshold,
                    at::opmath_type<scalar_t> scale) {
    const int64_t blocks = (N + kBlock - 1) / kBlock;
    at::parallel_for(0, blocks, 1, [=](int64_t first, int64_t last) {
      for (int64_t block = first; block < last; ++block) {
        const int64_t start = block * kBlock;
        apply_block(x + start, y + start, std::min(kBlock, N - start), static_cast<uint32_t>(seed),
                    dropout_bits::block_key(seed, static_cast<uint64_t>(start)), static_cast<uint32_t>(start),
                    threshold, scale);
      }
    });
  }
};

at::Tensor dropout_cpu(const at::Tensor& x, double p, const at::Tensor& seed) {
  return dropout_impl::forward<DropoutCpu>(x, p, seed);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  m.impl("dropout", &seqrec_fast::dropout_cpu);
}
