// CUDA passes of causal_conv1d (raw pointers, the caller's stream); see csrc/causal_conv1d.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace seqrec_fast::gpu {

template <typename scalar_t>
void causal_conv1d_shift_add(const scalar_t* z, const scalar_t* bias, scalar_t* y, int64_t B, int64_t L,
                             int64_t C_out, int64_t J, int64_t dilation, cudaStream_t stream);

template <typename scalar_t>
void causal_conv1d_shift_gather(const scalar_t* g, scalar_t* dz, int64_t B, int64_t L, int64_t C_out, int64_t J,
                                int64_t dilation, cudaStream_t stream);

}  // namespace seqrec_fast::gpu
