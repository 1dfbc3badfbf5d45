// causal_conv1d: the argument checks and active taps both devices share, and the CUDA path's
// GEMMs and dtype dispatch.
//
// With J the taps that can reach inside the sequence (tap j looks back s_j = (K-1-j) * dilation
// steps; taps with s_j >= L only ever see the zeros before the start and are skipped), the
// forward pass is one GEMM and one pass:
//   Z = x W_all^T           x [B L, C_in], W_all [J C_out, C_in] (the active taps stacked)
//   y[b, t] = bias + sum_jj Z[b, t - s_jj, jj]       (terms with t - s_jj < 0 are zero)
// and the backward pass gathers the shifted gradient once, then two GEMMs:
//   dZ[b, t, jj] = g[b, t + s_jj]  (zero past the end),  grad_x = dZ W_all,  grad_W_all = dZ^T x.
// The CUDA kernels supply `Kernels` with the two passes over raw pointers:
//   shift_add<scalar_t>(z, bias_or_null, y, B, L, C_out, J, dilation)
//   shift_gather<scalar_t>(g, dz, B, L, C_out, J, dilation)
// The CPU runs ATen's (oneDNN's) convolution instead, over check_args and active_taps
// (csrc/cpu/causal_conv1d_cpu.cpp).
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

template <class Kernels>
at::Tensor forward(const at::Tensor& x_in, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias, int64_t dilation) {
  check_args(x_in, weight, bias, dilation);
  const int64_t B = x_in.size(0), L = x_in.size(1), C_in = x_in.size(2), C_out = weight.size(0);
  const int64_t J = active_taps(weight.size(2), dilation, L);
  if (B * L == 0) return at::empty({B, L, C_out}, x_in.options());
  const at::Tensor x = x_in.reshape({B * L, C_in});
  const at::Tensor w_all = stacked_taps(weight, J);
  if (J == 1) {  // only the tap at the current step: a plain linear map
    at::Tensor y = bias.has_value() ? at::addmm(*bias, x, w_all.t()) : at::mm(x, w_all.t());
    return y.view({B, L, C_out});
  }
  at::Tensor y = at::empty({B, L, C_out}, x_in.options());
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  const at::Tensor z = at::mm(x, w_all.t());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "seqrec_fast::causal_conv1d", [&] {
    Kernels::template shift_add<scalar_t>(z.const_data_ptr<scalar_t>(),
                                          b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                                          y.mutable_data_ptr<scalar_t>(), B, L, C_out, J, dilation);
  });
  return y;
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
  at::Tensor dz = g;
  if (J > 1) {
    dz = at::empty({B * L, J * C_out}, g.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "seqrec_fast::causal_conv1d_backward", [&] {
      Kernels::template shift_gather<scalar_t>(g.const_data_ptr<scalar_t>(), dz.mutable_data_ptr<scalar_t>(),
                                               B, L, C_out, J, dilation);
    });
  }
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
