// CUDA kernels of linear_attention (raw pointers, the caller's stream); the contract of each is
// in csrc/linear_attention.h.
#pragma once

#include <ATen/OpMathType.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace seqrec_fast::gpu {

template <typename scalar_t>
void linear_attention_phi(const scalar_t* x, const bool* padded, at::opmath_type<scalar_t>* out, int64_t rows,
                          int64_t D, int64_t H, int64_t L, cudaStream_t stream);

template <typename scalar_t>
void linear_attention_phi_backward(const scalar_t* x, const at::opmath_type<scalar_t>* dphi, const bool* padded,
                                   scalar_t* dx, int64_t rows, int64_t D, int64_t H, int64_t L, cudaStream_t stream);

}  // namespace seqrec_fast::gpu
