// CPU causal_conv1d: ATen's convolution over a channels-last view of the sequence, which on x86
// runs oneDNN's direct convolution (the primitive behind eager conv1d) reading x and writing y
// in place, without eager's transposes.
//
// x [B, L, C_in] is channels-last already: viewed as [B, C_in, 1, L] it is an NHWC image one
// pixel high. The causal look-back is one copy of x with (J-1)·dilation zero steps before each
// sequence (J: the taps that reach inside it, csrc/causal_conv1d.h), after which a convolution
// without padding writes y [B, L, C_out] contiguous (as the image [B, C_out, 1, L]) and its
// backward reads the gradient the same way. The GEMM-and-shift form the CUDA kernels use
// (csrc/causal_conv1d.h) sends J shifted copies of its input through memory before its GEMM;
// the direct convolution reads x once. That driver runs here too, over the gather below, as
// seqrec_fast::_causal_conv1d_driver: the tests compare it with the reference, so every line of
// what CUDA runs has run on a CPU.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../causal_conv1d.h"

namespace seqrec_fast {
namespace {

using causal_conv1d_impl::active_taps;
using causal_conv1d_impl::check_args;

// [B, L, C] contiguous as the channels-last image [B, C, 1, L] (a view).
at::Tensor as_image(const at::Tensor& x) { return x.transpose(1, 2).unsqueeze(2); }

// [B, halo + L, C]: `halo` zero steps before each sequence, contiguous.
at::Tensor left_padded(const at::Tensor& x, int64_t halo) {
  return halo == 0 ? x.contiguous() : at::constant_pad_nd(x, {0, 0, halo, 0});
}

// The active taps [C_out, C_in, 1, J] as the convolution's kernel (a view).
at::Tensor active_kernel(const at::Tensor& weight, int64_t J) {
  return weight.narrow(2, weight.size(2) - J, J).unsqueeze(2);
}

// Back from the image [B, C, 1, T] to a contiguous sequence [B, T, C] (a view when the
// convolution kept the channels-last layout, as oneDNN does).
at::Tensor as_sequence(const at::Tensor& image) { return image.squeeze(2).transpose(1, 2).contiguous(); }

at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                   int64_t dilation) {
  check_args(x, weight, bias, dilation);
  const int64_t B = x.size(0), L = x.size(1), C_out = weight.size(0);
  if (B * L == 0) return at::empty({B, L, C_out}, x.options());
  const int64_t J = active_taps(weight.size(2), dilation, L), halo = (J - 1) * dilation;
  const at::Tensor y = at::convolution(as_image(left_padded(x, halo)), active_kernel(weight, J), bias,
                                       /*stride=*/{1, 1}, /*padding=*/{0, 0}, /*dilation=*/{1, dilation},
                                       /*transposed=*/false, /*output_padding=*/{0, 0}, /*groups=*/1);
  return as_sequence(y);
}

// output_mask: [grad of x, grads of weight and bias]; a gradient not asked for comes back empty.
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x,
                                                        const at::Tensor& weight, int64_t dilation,
                                                        std::array<bool, 2> output_mask) {
  check_args(x, weight, std::nullopt, dilation);
  const int64_t B = x.size(0), L = x.size(1), C_out = weight.size(0), K = weight.size(2);
  at::Tensor grad_x = at::empty({0}, x.options());
  at::Tensor grad_weight = at::empty({0}, weight.options());
  at::Tensor grad_bias = at::empty({0}, weight.options());
  if (B * L == 0) {
    if (output_mask[0]) grad_x = at::zeros_like(x);
    if (output_mask[1]) {
      grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
      grad_bias = at::zeros({C_out}, weight.options());
    }
    return {grad_x, grad_weight, grad_bias};
  }
  const int64_t J = active_taps(K, dilation, L), halo = (J - 1) * dilation;
  const at::Tensor g = grad.to(x.scalar_type()).contiguous();
  auto [grad_image, grad_kernel, grad_b] = at::convolution_backward(
      as_image(g), as_image(left_padded(x, halo)), active_kernel(weight, J), at::IntArrayRef{C_out},
      /*stride=*/{1, 1}, /*padding=*/{0, 0}, /*dilation=*/{1, dilation}, /*transposed=*/false,
      /*output_padding=*/{0, 0}, /*groups=*/1, {output_mask[0], output_mask[1], output_mask[1]});
  if (output_mask[0]) grad_x = as_sequence(grad_image.narrow(3, halo, L));  // the zero steps get none
  if (output_mask[1]) {
    grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    grad_weight.narrow(2, K - J, J).copy_(grad_kernel.squeeze(2));
    grad_bias = grad_b;
  }
  return {grad_x, grad_weight, grad_bias};
}

// The gather of csrc/causal_conv1d.h, a row of C channels at a time.
struct ShiftCpu {
  template <typename scalar_t>
  static void shift(const scalar_t* src, scalar_t* dst, int64_t B, int64_t L, int64_t C, int64_t J, int64_t dilation,
                    int64_t direction) {
    at::parallel_for(0, B * L, std::max<int64_t>(1, 4096 / std::max<int64_t>(J * C, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        for (int64_t jj = 0; jj < J; ++jj) {
          const int64_t step = direction * (J - 1 - jj) * dilation, t = row % L + step;
          scalar_t* out = dst + (row * J + jj) * C;
          if (t >= 0 && t < L) {
            std::copy(src + (row + step) * C, src + (row + step + 1) * C, out);
          } else {
            std::fill(out, out + C, scalar_t(0));
          }
        }
      }
    });
  }
};

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  m.impl("causal_conv1d", &seqrec_fast::forward);
  m.impl("causal_conv1d_backward", &seqrec_fast::backward);
  m.impl("_causal_conv1d_driver", &seqrec_fast::causal_conv1d_impl::forward<seqrec_fast::ShiftCpu>);
  m.impl("_causal_conv1d_driver_backward", &seqrec_fast::causal_conv1d_impl::backward<seqrec_fast::ShiftCpu>);
}
