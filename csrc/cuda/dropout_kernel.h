// CUDA kernel of dropout (raw pointers, the caller's stream); see csrc/dropout.h for the contract.
#pragma once

#include <ATen/OpMathType.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace seqrec_fast::gpu {

template <typename scalar_t>
void dropout_apply(const scalar_t* x, scalar_t* y, int64_t N, uint64_t seed, uint32_t threshold,
                   at::opmath_type<scalar_t> scale, cudaStream_t stream);

}  // namespace seqrec_fast::gpu
