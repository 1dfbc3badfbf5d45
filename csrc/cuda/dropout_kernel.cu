// CUDA kernel of dropout: a grid-stride loop, each element's mask bit from its index.
#include "dropout_kernel.h"

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "../dropout_bits.h"
#include "device_utils.cuh"

namespace seqrec_fast::gpu {
namespace {

template <typename scalar_t, typename acc_t>
__global__ void dropout_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, int64_t N, uint64_t seed,
                               uint32_t threshold, acc_t scale) {
  const uint32_t seed_low = static_cast<uint32_t>(seed);
  for (int64_t i = global_thread(); i < N; i += grid_threads()) {
    const uint64_t index = static_cast<uint64_t>(i);
    const uint32_t key = dropout_bits::block_key(seed, index);
    const bool keep = dropout_bits::bits(seed_low, key, static_cast<uint32_t>(index)) < threshold;
    y[i] = static_cast<scalar_t>(keep ? static_cast<acc_t>(x[i]) * scale : acc_t(0));
  }
}

}  // namespace

template <typename scalar_t>
void dropout_apply(const scalar_t* x, scalar_t* y, int64_t N, uint64_t seed, uint32_t threshold,
                   at::opmath_type<scalar_t> scale, cudaStream_t stream) {
  dropout_kernel<<<grid_for(N), kThreads, 0, stream>>>(x, y, N, seed, threshold, scale);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define SEQREC_FAST_DROPOUT(T)                                                                      \
  template void dropout_apply<T>(const T*, T*, int64_t, uint64_t, uint32_t, at::opmath_type<T>, \
                                 cudaStream_t);
SEQREC_FAST_DROPOUT(float)
SEQREC_FAST_DROPOUT(double)
SEQREC_FAST_DROPOUT(c10::Half)
SEQREC_FAST_DROPOUT(c10::BFloat16)
#undef SEQREC_FAST_DROPOUT

}  // namespace seqrec_fast::gpu
