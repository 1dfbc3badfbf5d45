// CUDA bindings of mix: the device-independent driver (csrc/mix.h) over the kernels of
// mix_kernel.cu, on the current stream of the tensors' device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../mix.h"
#include "mix_kernel.h"

namespace seqrec_fast {
namespace {

struct MixCuda {
  template <typename scalar_t>
  static void forward(const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* y, int64_t K, int64_t N) {
    gpu::mix_forward(h, w, y, K, N, at::cuda::getCurrentCUDAStream());
  }

  template <typename scalar_t>
  static void backward(const scalar_t* g, const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* grad_h,
                       at::opmath_type<scalar_t>* grad_w, int64_t K, int64_t N) {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor scratch;
    if (grad_w) {
      const auto options = at::TensorOptions().device(at::kCUDA, c10::cuda::current_device())
                               .dtype(c10::CppTypeToScalarType<acc_t>::value);
      scratch = at::empty({K * gpu::mix_partials(N)}, options);
    }
    gpu::mix_backward(g, h, w, grad_h, grad_w, scratch.defined() ? scratch.mutable_data_ptr<acc_t>() : nullptr, K, N,
                      at::cuda::getCurrentCUDAStream());
  }
};

at::Tensor mix_forward_cuda(const at::Tensor& h, const at::Tensor& w) {
  const c10::cuda::CUDAGuard guard(h.device());
  return mix_impl::forward<MixCuda>(h, w);
}

std::tuple<at::Tensor, at::Tensor> mix_backward_cuda(const at::Tensor& grad, const at::Tensor& h, const at::Tensor& w,
                                                     std::array<bool, 2> output_mask) {
  const c10::cuda::CUDAGuard guard(h.device());
  return mix_impl::backward<MixCuda>(grad, h, w, output_mask);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CUDA, m) {
  m.impl("mix", &seqrec_fast::mix_forward_cuda);
  m.impl("mix_backward", &seqrec_fast::mix_backward_cuda);
}
