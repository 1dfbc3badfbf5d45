// CUDA gather of causal_conv1d (raw pointers, the caller's stream); see csrc/causal_conv1d.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace seqrec_fast::gpu {

template <typename scalar_t>
void causal_conv1d_shift(const scalar_t* src, scalar_t* dst, int64_t B, int64_t L, int64_t C, int64_t J,
                         int64_t dilation, int64_t direction, cudaStream_t stream);

}  // namespace seqrec_fast::gpu
