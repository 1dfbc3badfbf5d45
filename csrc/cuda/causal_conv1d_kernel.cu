// CUDA gather of causal_conv1d (csrc/causal_conv1d.h): one thread per output element,
// consecutive threads on consecutive channels so every load and store is coalesced.
#include "causal_conv1d_kernel.h"

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "device_utils.cuh"

namespace seqrec_fast::gpu {
namespace {

template <typename scalar_t>
__global__ void shift_kernel(const scalar_t* __restrict__ src, scalar_t* __restrict__ dst, int64_t L, int64_t C,
                             int64_t J, int64_t dilation, int64_t direction, int64_t total) {
  const int64_t width = J * C;
  for (int64_t idx = global_thread(); idx < total; idx += grid_threads()) {
    const int64_t row = idx / width, rest = idx - row * width;
    const int64_t jj = rest / C, c = rest - jj * C;
    const int64_t step = direction * (J - 1 - jj) * dilation;
    const int64_t t = row % L + step;
    dst[idx] = t >= 0 && t < L ? src[(row + step) * C + c] : scalar_t(0);
  }
}

}  // namespace

template <typename scalar_t>
void causal_conv1d_shift(const scalar_t* src, scalar_t* dst, int64_t B, int64_t L, int64_t C, int64_t J,
                         int64_t dilation, int64_t direction, cudaStream_t stream) {
  const int64_t total = B * L * J * C;
  if (total == 0) return;
  shift_kernel<<<grid_for(total), kThreads, 0, stream>>>(src, dst, L, C, J, dilation, direction, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define SEQREC_FAST_INSTANTIATE_CONV(T)                                                                    \
  template void causal_conv1d_shift<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                       cudaStream_t);
SEQREC_FAST_INSTANTIATE_CONV(float)
SEQREC_FAST_INSTANTIATE_CONV(double)
SEQREC_FAST_INSTANTIATE_CONV(c10::Half)
SEQREC_FAST_INSTANTIATE_CONV(c10::BFloat16)
#undef SEQREC_FAST_INSTANTIATE_CONV

}  // namespace seqrec_fast::gpu
