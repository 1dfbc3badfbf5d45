// CUDA bindings of causal_conv1d: cuBLAS GEMMs through ATen (csrc/causal_conv1d.h) and the two
// passes of causal_conv1d_kernel.cu, on the current stream of the tensors' device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../causal_conv1d.h"
#include "causal_conv1d_kernel.h"

namespace seqrec_fast {
namespace {

struct CausalConv1dCuda {
  template <typename scalar_t>
  static void shift_add(const scalar_t* z, const scalar_t* bias, scalar_t* y, int64_t B, int64_t L, int64_t C_out,
                        int64_t J, int64_t dilation) {
    gpu::causal_conv1d_shift_add(z, bias, y, B, L, C_out, J, dilation, at::cuda::getCurrentCUDAStream());
  }

  template <typename scalar_t>
  static void shift_gather(const scalar_t* g, scalar_t* dz, int64_t B, int64_t L, int64_t C_out, int64_t J,
                           int64_t dilation) {
    gpu::causal_conv1d_shift_gather(g, dz, B, L, C_out, J, dilation, at::cuda::getCurrentCUDAStream());
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
