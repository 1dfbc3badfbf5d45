// CUDA bindings of linear_attention: the driver (csrc/linear_attention.h: the feature map, then
// chunks of cuBLAS batched GEMMs) over the kernels of linear_attention_kernel.cu, on the current
// stream.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../linear_attention.h"
#include "linear_attention_kernel.h"

namespace seqrec_fast {
namespace {

struct LinearAttentionCuda {
  template <typename scalar_t>
  static void phi(const scalar_t* x, const bool* padded, at::opmath_type<scalar_t>* out, int64_t rows, int64_t D,
                  int64_t H, int64_t L) {
    gpu::linear_attention_phi(x, padded, out, rows, D, H, L, at::cuda::getCurrentCUDAStream());
  }

  template <typename scalar_t>
  static void phi_backward(const scalar_t* x, const at::opmath_type<scalar_t>* dphi, const bool* padded, scalar_t* dx,
                           int64_t rows, int64_t D, int64_t H, int64_t L) {
    gpu::linear_attention_phi_backward(x, dphi, padded, dx, rows, D, H, L, at::cuda::getCurrentCUDAStream());
  }
};

at::Tensor forward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const std::optional<at::Tensor>& mask, bool causal, double scale) {
  const c10::cuda::CUDAGuard guard(q.device());
  return linear_attention_impl::forward<LinearAttentionCuda>(q, k, v, mask, causal, scale);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad, const at::Tensor& q,
                                                             const at::Tensor& k, const at::Tensor& v,
                                                             const std::optional<at::Tensor>& mask, bool causal,
                                                             double scale) {
  const c10::cuda::CUDAGuard guard(q.device());
  return linear_attention_impl::backward<LinearAttentionCuda>(grad, q, k, v, mask, causal, scale);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CUDA, m) {
  m.impl("linear_attention", &seqrec_fast::forward_cuda);
  m.impl("linear_attention_backward", &seqrec_fast::backward_cuda);
}
