// CUDA bindings of causal_conv1d: cuBLAS GEMMs through ATen (csrc/causal_conv1d.h) and the
// gather of causal_conv1d_kernel.cu, on the current stream of the tensors' device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../causal_conv1d.h"
#include "causal_conv1d_kernel.h"

namespace seqrec_fast {
namespace {

struct CausalConv1dCuda {
  template <typename scalar_t>
  static void shift(const scalar_t* src, scalar_t* dst, int64_t B, int64_t L, int64_t C, int64_t J, int64_t dilation,
                    int64_t direction) {
    gpu::causal_conv1d_shift(src, dst, B, L, C, J, dilation, direction, at::cuda::getCurrentCUDAStream());
  }
};

at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        int64_t dilation) {
  const c10::cuda::CUDAGuard guard(x.device());
  return causal_conv1d_impl::forward<CausalConv1dCuda>(x, weight, bias, dilation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad, const at::Tensor& x,
                                                             const at::Tensor& weight, int64_t dilation,
                                                             std::array<bool, 2> output_mask) {
  const c10::cuda::CUDAGuard guard(x.device());
  return causal_conv1d_impl::backward<CausalConv1dCuda>(grad, x, weight, dilation, output_mask);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CUDA, m) {
  m.impl("causal_conv1d", &seqrec_fast::forward_cuda);
  m.impl("causal_conv1d_backward", &seqrec_fast::backward_cuda);
}
