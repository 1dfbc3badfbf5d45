// CUDA kernels of mix: a grid-stride blend, and a backward that writes grad_h and reduces
// grad_w deterministically (per-block partials, then one block per candidate).
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

// Block (x, k): grad_h[k] over a grid-stride slice, and that slice's part of grad_w[k].
template <typename scalar_t, typename acc_t>
__global__ void mix_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ h,
                                    const acc_t* __restrict__ w, scalar_t* __restrict__ grad_h,
                                    acc_t* __restrict__ partial, int64_t N) {
  const int64_t k = blockIdx.y;
  const acc_t wk = w[k];
  acc_t dot = 0;
  for (int64_t i = global_thread(); i < N; i += grid_threads()) {
    const acc_t gi = static_cast<acc_t>(g[i]);
    if (grad_h) grad_h[k * N + i] = static_cast<scalar_t>(wk * gi);
    if (partial) dot += gi * static_cast<acc_t>(h[k * N + i]);
  }
  if (partial) {
    dot = block_sum(dot);
    if (threadIdx.x == 0) partial[k * gridDim.x + blockIdx.x] = dot;
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
  TORCH_CHECK(K <= 65535, "seqrec_fast::mix: at most 65535 candidates on CUDA, got ", K);
  const unsigned int blocks = grid_for(N);
  const dim3 grid(blocks, static_cast<unsigned int>(K));
  mix_backward_kernel<<<grid, kThreads, 0, stream>>>(g, h, w, grad_h, grad_w ? scratch : nullptr, N);
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
