// CUDA passes of causal_conv1d: one thread per output element, consecutive threads on
// consecutive channels so every load and store is coalesced; sums in float (double for double).
#include "causal_conv1d_kernel.h"

#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "device_utils.cuh"

namespace seqrec_fast::gpu {
namespace {

template <typename scalar_t>
__global__ void shift_add_kernel(const scalar_t* __restrict__ z, const scalar_t* __restrict__ bias,
                                 scalar_t* __restrict__ y, int64_t L, int64_t C_out, int64_t J, int64_t dilation,
                                 int64_t total) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t width = J * C_out;
  for (int64_t idx = global_thread(); idx < total; idx += grid_threads()) {
    const int64_t row = idx / C_out, o = idx - row * C_out, t = row % L;
    acc_t acc = bias ? static_cast<acc_t>(bias[o]) : acc_t(0);
    for (int64_t jj = 0; jj < J; ++jj) {
      const int64_t shift = (J - 1 - jj) * dilation;
      if (t >= shift) acc += static_cast<acc_t>(z[(row - shift) * width + jj * C_out + o]);
    }
    y[row * C_out + o] = static_cast<scalar_t>(acc);
  }
}

template <typename scalar_t>
__global__ void shift_gather_kernel(const scalar_t* __restrict__ g, scalar_t* __restrict__ dz, int64_t L,
                                    int64_t C_out, int64_t J, int64_t dilation, int64_t total) {
  const int64_t width = J * C_out;
  for (int64_t idx = global_thread(); idx < total; idx += grid_threads()) {
    const int64_t row = idx / width, rest = idx - row * width;
    const int64_t jj = rest / C_out, o = rest - jj * C_out;
    const int64_t shift = (J - 1 - jj) * dilation;
    dz[idx] = (row % L) + shift < L ? g[(row + shift) * C_out + o] : scalar_t(0);
  }
}

}  // namespace

template <typename scalar_t>
void causal_conv1d_shift_add(const scalar_t* z, const scalar_t* bias, scalar_t* y, int64_t B, int64_t L,
                             int64_t C_out, int64_t J, int64_t dilation, cudaStream_t stream) {
  const int64_t total = B * L * C_out;
  if (total == 0) return;
  shift_add_kernel<<<grid_for(total), kThreads, 0, stream>>>(z, bias, y, L, C_out, J, dilation, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void causal_conv1d_shift_gather(const scalar_t* g, scalar_t* dz, int64_t B, int64_t L, int64_t C_out, int64_t J,
                                int64_t dilation, cudaStream_t stream) {
  const int64_t total = B * L * J * C_out;
  if (total == 0) return;
  shift_gather_kernel<<<grid_for(total), kThreads, 0, stream>>>(g, dz, L, C_out, J, dilation, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define SEQREC_FAST_INSTANTIATE_CONV(T)                                                                   \
  template void causal_conv1d_shift_add<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t,  \
                                           int64_t, cudaStream_t);                                       \
  template void causal_conv1d_shift_gather<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                              cudaStream_t);
SEQREC_FAST_INSTANTIATE_CONV(float)
SEQREC_FAST_INSTANTIATE_CONV(double)
SEQREC_FAST_INSTANTIATE_CONV(c10::Half)
SEQREC_FAST_INSTANTIATE_CONV(c10::BFloat16)
#undef SEQREC_FAST_INSTANTIATE_CONV

}  // namespace seqrec_fast::gpu
