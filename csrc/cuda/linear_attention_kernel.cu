// CUDA kernels of linear_attention.
//
// phi / phi_backward: one warp per token, the L2 norm (and the backward's dot product) reduced
// with shuffles. scan: one block of 32 threads per (batch-head, 32 columns p of the state); each
// thread owns one column of the [Q, 32] state tile in shared memory, so the step-by-step update
// and read-out need no synchronisation; the B and C rows of 8 steps are staged in shared memory
// at a time (one pair of barriers per 8 steps). Time O(L P Q), memory O(L (P + Q)).
#include "linear_attention_kernel.h"

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include "device_utils.cuh"

namespace seqrec_fast::gpu {
namespace {

constexpr double kNormEps = 1e-12;  // F.normalize's clamp, as in csrc/linear_attention.h
constexpr int kScanLanes = 32;
constexpr int kScanChunk = 8;
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

template <typename acc_t>
__global__ void scan_kernel(const acc_t* __restrict__ A, const acc_t* __restrict__ Bm, const acc_t* __restrict__ C,
                            acc_t* __restrict__ out, int64_t L, int64_t P, int64_t Q, bool reverse, acc_t scale) {
  extern __shared__ __align__(16) unsigned char smem[];
  acc_t* state = reinterpret_cast<acc_t*>(smem);   // [Q][kScanLanes]: column `lane` is this thread's
  acc_t* b_stage = state + Q * kScanLanes;         // [kScanChunk][Q]
  acc_t* c_stage = b_stage + kScanChunk * Q;       // [kScanChunk][Q]
  const int64_t bh = blockIdx.x;
  const int lane = threadIdx.x;
  const int64_t p = static_cast<int64_t>(blockIdx.y) * kScanLanes + lane;
  const bool active = p < P;
  for (int64_t q = 0; q < Q; ++q) state[q * kScanLanes + lane] = acc_t(0);
  for (int64_t first = 0; first < L; first += kScanChunk) {
    const int64_t steps = min(static_cast<int64_t>(kScanChunk), L - first);
    __syncthreads();  // the previous chunk's stage has been read
    for (int64_t idx = lane; idx < steps * Q; idx += kScanLanes) {
      const int64_t s = idx / Q, q = idx - s * Q;
      const int64_t t = reverse ? L - 1 - (first + s) : first + s;
      b_stage[idx] = Bm[(bh * L + t) * Q + q];
      c_stage[idx] = C[(bh * L + t) * Q + q];
    }
    __syncthreads();
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? L - 1 - (first + s) : first + s;
      const acc_t a = active ? A[(bh * L + t) * P + p] : acc_t(0);
      const acc_t* bs = b_stage + s * Q;
      const acc_t* cs = c_stage + s * Q;
      acc_t acc = 0;
      for (int64_t q = 0; q < Q; ++q) {
        const acc_t x = state[q * kScanLanes + lane] + a * bs[q];
        state[q * kScanLanes + lane] = x;
        acc += x * cs[q];
      }
      if (active) out[(bh * L + t) * P + p] = scale * acc;
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

template <typename acc_t>
void linear_attention_scan(const acc_t* A, const acc_t* B, const acc_t* C, acc_t* out, int64_t BH, int64_t L,
                           int64_t P, int64_t Q, bool reverse, acc_t scale, cudaStream_t stream) {
  if (BH == 0 || L == 0 || P == 0) return;
  const size_t smem = static_cast<size_t>(Q * kScanLanes + 2 * kScanChunk * Q) * sizeof(acc_t);
  constexpr size_t kDefaultSmem = 48 * 1024;
  if (smem > kDefaultSmem) {  // large head dims: opt in to more shared memory, if the device has it
    int device = 0, limit = 0;
    C10_CUDA_CHECK(cudaGetDevice(&device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    TORCH_CHECK(smem <= static_cast<size_t>(limit), "seqrec_fast::linear_attention: a head dim of ", Q,
                " needs ", smem, " bytes of shared memory per block; this device allows ", limit);
    C10_CUDA_CHECK(cudaFuncSetAttribute(scan_kernel<acc_t>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  }
  const dim3 grid(static_cast<unsigned int>(BH), static_cast<unsigned int>((P + kScanLanes - 1) / kScanLanes));
  scan_kernel<acc_t><<<grid, kScanLanes, smem, stream>>>(A, B, C, out, L, P, Q, reverse, scale);
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

template void linear_attention_scan<float>(const float*, const float*, const float*, float*, int64_t, int64_t,
                                           int64_t, int64_t, bool, float, cudaStream_t);
template void linear_attention_scan<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                            int64_t, int64_t, bool, double, cudaStream_t);

}  // namespace seqrec_fast::gpu
