// Device helpers shared by the CUDA kernels: launch geometry, float/double math overloads and
// warp/block sums. Kernels index with int64_t and grid-stride, so no size is assumed to fit a
// single launch or to be a multiple of the vector width.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace seqrec_fast::gpu {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

// Enough blocks to fill the device a few times over; the loops stride over the rest.
inline unsigned int grid_for(int64_t work, int threads = kThreads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 8192)));
}

__device__ inline int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ inline int64_t grid_threads() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

__device__ inline float expm1_(float x) { return expm1f(x); }
__device__ inline double expm1_(double x) { return expm1(x); }
__device__ inline float sqrt_(float x) { return sqrtf(x); }
__device__ inline double sqrt_(double x) { return sqrt(x); }

template <typename T>
__device__ inline T warp_sum(T v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The sum over the block (blockDim.x a multiple of 32), valid in thread 0.
template <typename T>
__device__ inline T block_sum(T v) {
  __shared__ __align__(sizeof(double)) unsigned char raw[kWarp * sizeof(double)];
  T* partial = reinterpret_cast<T*>(raw);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // the buffer may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / kWarp ? partial[lane] : T(0);
  return warp == 0 ? warp_sum(v) : v;
}

}  // namespace seqrec_fast::gpu
