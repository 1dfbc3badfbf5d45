// CUDA bindings of dropout: the device-independent driver (csrc/dropout.h) over the kernel of
// dropout_kernel.cu, on the current stream of the tensor's device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../dropout.h"
#include "dropout_kernel.h"

namespace seqrec_fast {
namespace {

struct DropoutCuda {
  template <typename scalar_t>
  static void apply(const scalar_t* x, scalar_t* y, int64_t N, uint64_t seed, uint32_t threshold,
                    at::opmath_type<scalar_t> scale) {
    gpu::dropout_apply(x, y, N, seed, threshold, scale, at::cuda::getCurrentCUDAStream());
  }
};

at::Tensor dropout_cuda(const at::Tensor& x, double p, const at::Tensor& seed) {
  const c10::cuda::CUDAGuard guard(x.device());
  return dropout_impl::forward<DropoutCuda>(x, p, seed);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CUDA, m) {
  m.impl("dropout", &seqrec_fast::dropout_cuda);
}
