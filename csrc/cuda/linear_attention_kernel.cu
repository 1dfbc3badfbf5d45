// CUDA kernels of linear_attention's feature map: one warp per token, the L2 norm (and the
// backward's dot product) reduced with shuffles. The sums over tokens are cuBLAS GEMMs
// (csrc/linear_attention_chunks.h).
#include "linear_attention_kernel.h"

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "device_utils.cuh"

namespace seqrec_fast::gpu {
namespace {

constexpr double kNormEps = 1e-12;  // F.normalize's clamp, as in csrc/linear_attention.h
constexpr int kWarpsPerBlock = kThreads / kWarp;

template <typename acc_t>
__device__ inline acc_t elu(acc_t x) {
  return x > acc_t(0) ? x : expm1_(x);
}

__device__ inline bool is_padded(const bool* padded, int64_t row, int64_t H, int64_t L) {
  return padded != nullptr && padded[(row / (H * L)) * L + row % L];
}

template <typename scalar_t>
__global__ void phi_kernel(const scalar_t* __restrict__ x, const bool* __restrict__ padded,
                           at::opmath_type<scalar_t>* __restrict__ out, int64_t rows, int64_t D, int64_t H,
                           int64_t L) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t row = global_thread() / kWarp; row < rows; row += warps) {
    acc_t* o = out + row * D;
    if (is_padded(padded, row, H, L)) {
      for (int64_t d = lane; d < D; d += kWarp) o[d] = acc_t(0);
      continue;
    }
    const scalar_t* xr = x + row * D;
    acc_t sq = 0;
    for (int64_t d = lane; d < D; d += kWarp) {
      const acc_t e = elu(static_cast<acc_t>(xr[d]));
      o[d] = e;
      sq += e * e;
    }
    sq = warp_sum(sq);
    const acc_t inv = acc_t(1) / max(sqrt_(sq), acc_t(kNormEps));
    for (int64_t d = lane; d < D; d += kWarp) o[d] *= inv;  // this lane's own writes above
  }
}

template <typename scalar_t>
__global__ void phi_backward_kernel(const scalar_t* __restrict__ x, const at::opmath_type<scalar_t>* __restrict__ dphi,
                                    const bool* __restrict__ padded, scalar_t* __restrict__ dx, int64_t rows,
                                    int64_t D, int64_t H, int64_t L) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t row = global_thread() / kWarp; row < rows; row += warps) {
    scalar_t* o = dx + row * D;
    if (is_padded(padded, row, H, L)) {
      for (int64_t d = lane; d < D; d += kWarp) o[d] = scalar_t(0);
      continue;
    }
    const scalar_t* xr = x + row * D;
    const acc_t* gr = dphi + row * D;
    acc_t sq = 0, dot = 0;
    for (int64_t d = lane; d < D; d += kWarp) {
      const acc_t e = elu(static_cast<acc_t>(xr[d]));
      sq += e * e;
      dot += e * gr[d];
    }
    sq = warp_sum(sq);
    dot = warp_sum(dot);
    const acc_t norm = sqrt_(sq);
    const bool clamped = norm < acc_t(kNormEps);
    const acc_t inv = acc_t(1) / (clamped ? acc_t(kNormEps) : norm);
    const acc_t radial = clamped ? acc_t(0) : dot * inv * inv * inv;
    for (int64_t d = lane; d < D; d += kWarp) {
      const acc_t xv = static_cast<acc_t>(xr[d]);
      const acc_t e = elu(xv);
      const acc_t de = gr[d] * inv - e * radial;
      o[d] = static_cast<scalar_t>(xv > acc_t(0) ? de : de * (e + acc_t(1)));
    }
  }
}

unsigned int warp_grid(int64_t rows) { return grid_for(rows * kWarp); }

}  // namespace

template <typename scalar_t>
void linear_attention_phi(const scalar_t* x, const bool* padded, at::opmath_type<scalar_t>* out, int64_t rows,
                          int64_t D, int64_t H, int64_t L, cudaStream_t stream) {
  if (rows == 0) return;
  phi_kernel<<<warp_grid(rows), kThreads, 0, stream>>>(x, padded, out, rows, D, H, L);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void linear_attention_phi_backward(const scalar_t* x, const at::opmath_type<scalar_t>* dphi, const bool* padded,
                                   scalar_t* dx, int64_t rows, int64_t D, int64_t H, int64_t L, cudaStream_t stream) {
  if (rows == 0) return;
  phi_backward_kernel<<<warp_grid(rows), kThreads, 0, stream>>>(x, dphi, padded, dx, rows, D, H, L);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define SEQREC_FAST_INSTANTIATE_PHI(T)                                                                        \
  template void linear_attention_phi<T>(const T*, const bool*, at::opmath_type<T>*, int64_t, int64_t, int64_t, \
                                        int64_t, cudaStream_t);                                                \
  template void linear_attention_phi_backward<T>(const T*, const at::opmath_type<T>*, const bool*, T*, int64_t, \
                                                 int64_t, int64_t, int64_t, cudaStream_t);
SEQREC_FAST_INSTANTIATE_PHI(float)
SEQREC_FAST_INSTANTIATE_PHI(double)
SEQREC_FAST_INSTANTIATE_PHI(c10::Half)
SEQREC_FAST_INSTANTIATE_PHI(c10::BFloat16)
#undef SEQREC_FAST_INSTANTIATE_PHI

}  // namespace seqrec_fast::gpu
