// causal_conv1d: the argument checks and active taps both devices share, and the device-
// independent GEMM form CUDA runs.
//
// With J the taps that can reach inside the sequence (tap j looks back s_j = (K-1-j) * dilation
// steps; taps with s_j >= L only ever see the zeros before the start and are skipped), the
// forward pass gathers the J shifted copies of x side by side, then runs one GEMM:
//   X[b, t, jj] = x[b, t - s_jj]  (zero before the start)      X [B L, J C_in]
//   y = X W_cat^T + bias                                         W_cat [C_out, J C_in]
// so the sum over taps happens inside the GEMM, in its accumulation type (float for half and
// bfloat16): no per-tap product is rounded to the storage type before it is summed. The backward
// gathers the shifted gradient the other way, then two GEMMs:
//   dZ[b, t, jj] = g[b, t + s_jj]  (zero past the end),  grad_x = dZ W_all,  grad_W_all = dZ^T x
// with W_all [J C_out, C_in] the active taps stacked. Each device supplies `Kernels` with the
// gather over raw pointers:
//   shift<scalar_t>(src, dst, B, L, C, J, dilation, direction)
//     dst[b, t, jj, c] = src[b, t + direction s_jj, c], zero outside [0, L)   (direction -1 or +1)
// CUDA runs this driver; the CPU runs ATen's (oneDNN's) convolution over check_args and
// active_taps (csrc/cpu/causal_conv1d_cpu.cpp), and this driver with its own gather as
// seqrec_fast::_causal_conv1d_driver, which the tests compare with the reference.
#pragma once

#include <ATen/Dispatch.h>

#include <algorithm>
#include <array>
#include <tuple>

#include "op_utils.h"

namespace seqrec_fast::causal_conv1d_impl {

// Taps j in [K - J, K) are active: their look-back (K-1-j) * dilation is < L.
inline int64_t active_taps(int64_t K, int64_t dilation, int64_t L) {
  return L == 0 ? 0 : std::min(K, (L - 1) / dilation + 1);
}

inline void check_args(const at::Tensor& x, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, int64_t dilation) {
  check_floating(x, "causal_conv1d", "x");
  TORCH_CHECK(x.dim() == 3, "seqrec_fast::causal_conv1d: x must be [B, L, C_in], got ", x.sizes());
  TORCH_CHECK(weight.dim() == 3 && weight.size(1) == x.size(2) && weight.size(2) >= 1,
              "seqrec_fast::causal_conv1d: weight must be [C_out, ", x.size(2), ", K>=1], got ",
              weight.sizes());
  check_same_device_dtype(x, weight, "causal_conv1d", "x", "weight");
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0),
                "seqrec_fast::causal_conv1d: bias must be [", weight.size(0), "], got ", bias->sizes());
    check_same_device_dtype(x, *bias, "causal_conv1d", "x", "bias");
  }
  TORCH_CHECK(dilation >= 1, "seqrec_fast::causal_conv1d: dilation must be >= 1, got ", dilation);
}

// The active taps' weights as one [J C_out, C_in] matrix, tap-major.
inline at::Tensor stacked_taps(const at::Tensor& weight, int64_t J) {
  const int64_t K = weight.size(2);
  return weight.narrow(2, K - J, J).permute({2, 0, 1}).reshape({J * weight.size(0), weight.size(1)});
}

// The active taps' weights as one [C_out, J C_in] matrix, each row tap-major (X's columns).
inline at::Tensor concatenated_taps(const at::Tensor& weight, int64_t J) {
  const int64_t K = weight.size(2);
  return weight.narrow(2, K - J, J).permute({0, 2, 1}).reshape({weight.size(0), J * weight.size(1)});
}

// [B L, J C] from [B L, C] contiguous: the J copies of t shifted by direction s_jj (see above).
template <class Kernels>
at::Tensor shifted(const at::Tensor& src, int64_t B, int64_t L, int64_t J, int64_t dilation, int64_t direction) {
  const int64_t C = src.size(1);
  at::Tensor dst = at::empty({B * L, J * C}, src.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "seqrec_fast::causal_conv1d_shift", [&] {
    Kernels::template shift<scalar_t>(src.const_data_ptr<scalar_t>(), dst.mutable_data_ptr<scalar_t>(), B, L, C, J,
                                      dilation, direction);
  });
  return dst;
}

template <class Kernels>
at::Tensor forward(const at::Tensor& x_in, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias, int64_t dilation) {
  check_args(x_in, weight, bias, dilation);
  const int64_t B = x_in.size(0), L = x_in.size(1), C_in = x_in.size(2), C_out = weight.size(0);
  const int64_t J = active_taps(weight.size(2), dilation, L);
  if (B * L == 0) return at::empty({B, L, C_out}, x_in.options());
  const at::Tensor x = x_in.reshape({B * L, C_in}).contiguous();
  const at::Tensor xs = J == 1 ? x : shifted<Kernels>(x, B, L, J, dilation, /*direction=*/-1);
  const at::Tensor w_t = concatenated_taps(weight, J).t();
  const at::Tensor y = bias.has_value() ? at::addmm(*bias, xs, w_t) : at::mm(xs, w_t);
  return y.view({B, L, C_out});
}

// output_mask: [grad of x, grads of weight and bias]; a gradient not asked for comes back empty.
template <class Kernels>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad,
                                                        const at::Tensor& x_in,
                                                        const at::Tensor& weight, int64_t dilation,
                                                        std::array<bool, 2> output_mask) {
  check_args(x_in, weight, std::nullopt, dilation);
  const int64_t B = x_in.size(0), L = x_in.size(1), C_in = x_in.size(2), C_out = weight.size(0);
  const int64_t K = weight.size(2), J = active_taps(K, dilation, L);
  const at::Tensor g = grad.to(x_in.scalar_type()).reshape({B * L, C_out}).contiguous();
  at::Tensor grad_x = at::empty({0}, x_in.options());
  at::Tensor grad_weight = at::empty({0}, weight.options());
  at::Tensor grad_bias = at::empty({0}, weight.options());
  if (output_mask[1]) {
    grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    grad_bias = g.sum(0);
  }
  if (B * L == 0) {
    if (output_mask[0]) grad_x = at::zeros_like(x_in);
    return {grad_x, grad_weight, grad_bias};
  }
  const at::Tensor dz = J == 1 ? g : shifted<Kernels>(g, B, L, J, dilation, /*direction=*/1);
  const at::Tensor w_all = stacked_taps(weight, J);
  if (output_mask[0]) grad_x = at::mm(dz, w_all).view({B, L, C_in});
  if (output_mask[1]) {
    const at::Tensor x = x_in.reshape({B * L, C_in});
    const at::Tensor grad_w_all = at::mm(dz.t(), x).view({J, C_out, C_in});
    grad_weight.narrow(2, K - J, J).copy_(grad_w_all.permute({1, 2, 0}));
  }
  return {grad_x, grad_weight, grad_bias};
}

}  // namespace seqrec_fast::causal_conv1d_impl
