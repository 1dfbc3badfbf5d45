// CUDA kernels of mix (raw pointers, the caller's stream); see csrc/mix.h for the contract.
#pragma once

#include <ATen/OpMathType.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace seqrec_fast::gpu {

// How many partial sums of grad_w the backward kernel writes per candidate (size the scratch
// as K * mix_partials(N)).
int64_t mix_partials(int64_t N);

template <typename scalar_t>
void mix_forward(const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* y, int64_t K, int64_t N,
                 cudaStream_t stream);

template <typename scalar_t>
void mix_backward(const scalar_t* g, const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* grad_h,
                  at::opmath_type<scalar_t>* grad_w, at::opmath_type<scalar_t>* scratch, int64_t K, int64_t N,
                  cudaStream_t stream);

}  // namespace seqrec_fast::gpu
