// CUDA kernels of mix: a grid-stride blend that reads each h[k, i] once, and a backward that
// reads g once per 8 candidates, writes grad_h and reduces grad_w deterministically (per-block
// partials, then one block per candidate).
#include "mix_kernel.h"

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include "device_utils.cuh"

namespace seqrec_fast::gpu {
namespace {

template <typename scalar_t, typename acc_t>
__global__ void mix_forward_kernel(const scalar_t* __restrict__ h, const acc_t* __restrict__ w,
                                   scalar_t* __restrict__ y, int64_t K, int64_t N) {
  for (int64_t i = global_thread(); i < N; i += grid_threads()) {
    acc_t acc = 0;
    for (int64_t k = 0; k < K; ++k) acc += w[k] * static_cast<acc_t>(h[k * N + i]);
    y[i] = static_cast<scalar_t>(acc);
  }
}

constexpr int kGroup = 8;  // candidates per pass over g; AdaRec's and EASRec's K is 8 at most

// Block (x, y): candidates [8 y, 8 y + 8) over a grid-stride slice. Each thread reads g[i] once
// for the whole group, writes grad_h[k, i] and adds g[i] h[k, i] to the group's dot products,
// kept in registers and reduced once per block: g is read once for up to 8 candidates.
template <typename scalar_t, typename acc_t>
__global__ void mix_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ h,
                                    const acc_t* __restrict__ w, scalar_t* __restrict__ grad_h,
                                    acc_t* __restrict__ partial, int64_t K, int64_t N) {
  const int64_t first = static_cast<int64_t>(blockIdx.y) * kGroup;
  const int count = static_cast<int>(min(static_cast<int64_t>(kGroup), K - first));
  acc_t wk[kGroup], dot[kGroup];
#pragma unroll
  for (int j = 0; j < kGroup; ++j) {
    wk[j] = j < count ? w[first + j] : acc_t(0);
    dot[j] = acc_t(0);
  }
  for (int64_t i = global_thread(); i < N; i += grid_threads()) {
    const acc_t gi = static_cast<acc_t>(g[i]);
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (j < count) {
        const int64_t at = (first + j) * N + i;
        if (grad_h) grad_h[at] = static_cast<scalar_t>(wk[j] * gi);
        if (partial) dot[j] += gi * static_cast<acc_t>(h[at]);
      }
    }
  }
  if (partial) {
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (j < count) {  // the same in every thread of the block, so every thread reaches the barriers
        const acc_t total = block_sum(dot[j]);
        if (threadIdx.x == 0) partial[(first + j) * gridDim.x + blockIdx.x] = total;
      }
    }
  }
}

template <typename acc_t>
__global__ void sum_partials_kernel(const acc_t* __restrict__ partial, acc_t* __restrict__ out, int64_t count) {
  acc_t sum = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += partial[blockIdx.x * count + i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) out[blockIdx.x] = sum;
}

}  // namespace

int64_t mix_partials(int64_t N) { return grid_for(N); }

template <typename scalar_t>
void mix_forward(const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* y, int64_t K, int64_t N,
                 cudaStream_t stream) {
  mix_forward_kernel<<<grid_for(N), kThreads, 0, stream>>>(h, w, y, K, N);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void mix_backward(const scalar_t* g, const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* grad_h,
                  at::opmath_type<scalar_t>* grad_w, at::opmath_type<scalar_t>* scratch, int64_t K, int64_t N,
                  cudaStream_t stream) {
  const int64_t groups = (K + kGroup - 1) / kGroup;
  TORCH_CHECK(groups <= 65535, "seqrec_fast::mix: at most ", 65535 * kGroup, " candidates on CUDA, got ", K);
  const unsigned int blocks = grid_for(N);
  const dim3 grid(blocks, static_cast<unsigned int>(groups));
  mix_backward_kernel<<<grid, kThreads, 0, stream>>>(g, h, w, grad_h, grad_w ? scratch : nullptr, K, N);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (grad_w) {
    sum_partials_kernel<<<static_cast<unsigned int>(K), kThreads, 0, stream>>>(scratch, grad_w, blocks);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

#define SEQREC_FAST_INSTANTIATE_MIX(T)                                                                     \
  template void mix_forward<T>(const T*, const at::opmath_type<T>*, T*, int64_t, int64_t, cudaStream_t); \
  template void mix_backward<T>(const T*, const T*, const at::opmath_type<T>*, T*, at::opmath_type<T>*,   \
                                at::opmath_type<T>*, int64_t, int64_t, cudaStream_t);
SEQREC_FAST_INSTANTIATE_MIX(float)
SEQREC_FAST_INSTANTIATE_MIX(double)
SEQREC_FAST_INSTANTIATE_MIX(c10::Half)
SEQREC_FAST_INSTANTIATE_MIX(c10::BFloat16)
#undef SEQREC_FAST_INSTANTIATE_MIX

}  // namespace seqrec_fast::gpu
