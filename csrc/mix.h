// mix(h, w) = sum_k w[k] h[k]: the device-independent half of the op (checks, allocation, dtype
// dispatch). Each device supplies `Kernels` with two static templates over raw pointers:
//   forward<scalar_t>(h, w, y, K, N)                      y[n] = sum_k w[k] h[k, n]
//   backward<scalar_t>(g, h, w, grad_h, grad_w, K, N)     grad_h[k, n] = w[k] g[n] (if grad_h),
//                                                         grad_w[k] = sum_n g[n] h[k, n] (if grad_w)
// with w, grad_w in the accumulation type (float, or double for double tensors).
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <tuple>

#include "op_utils.h"

namespace seqrec_fast::mix_impl {

inline void check_args(const at::Tensor& h, const at::Tensor& w) {
  check_floating(h, "mix", "h");
  check_floating(w, "mix", "w");
  TORCH_CHECK(w.dim() == 1 && h.dim() >= 1 && h.size(0) == w.size(0),
              "seqrec_fast::mix: expected h [K, ...] and w [K], got ", h.sizes(), " and ",
              w.sizes());
  TORCH_CHECK(h.device() == w.device(), "seqrec_fast::mix: h and w must be on the same device, got ",
              h.device(), " and ", w.device());
}

inline at::Tensor weights_in_opmath(const at::Tensor& w, at::ScalarType h_type) {
  return w.to(at::toOpMathType(h_type)).contiguous();
}

template <class Kernels>
at::Tensor forward(const at::Tensor& h_in, const at::Tensor& w_in) {
  check_args(h_in, w_in);
  const at::Tensor h = h_in.contiguous();
  const at::Tensor w = weights_in_opmath(w_in, h.scalar_type());
  at::Tensor y = empty_output(h.sizes().slice(1), h.options());
  const int64_t K = h.size(0), N = y.numel();
  if (N == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "seqrec_fast::mix", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Kernels::template forward<scalar_t>(h.const_data_ptr<scalar_t>(), w.const_data_ptr<acc_t>(),
                                        y.mutable_data_ptr<scalar_t>(), K, N);
  });
  return y;
}

// output_mask: [grad of h, grad of w]; a gradient not asked for comes back empty.
template <class Kernels>
std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_in, const at::Tensor& h_in,
                                            const at::Tensor& w_in, std::array<bool, 2> output_mask) {
  check_args(h_in, w_in);
  const at::Tensor h = h_in.contiguous();
  const at::Tensor g = grad_in.to(h.scalar_type()).contiguous();
  const at::Tensor w = weights_in_opmath(w_in, h.scalar_type());
  TORCH_CHECK(g.sizes() == h.sizes().slice(1), "seqrec_fast::mix_backward: grad ", g.sizes(),
              " does not match h ", h.sizes());
  const int64_t K = h.size(0), N = g.numel();
  at::Tensor grad_h = output_mask[0] ? empty_output_like(h) : at::empty({0}, h.options());
  at::Tensor grad_w = output_mask[1] ? at::zeros({K}, w.options()) : at::empty({0}, w.options());
  if (N > 0 && (output_mask[0] || output_mask[1])) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "seqrec_fast::mix_backward", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      Kernels::template backward<scalar_t>(
          g.const_data_ptr<scalar_t>(), h.const_data_ptr<scalar_t>(), w.const_data_ptr<acc_t>(),
          output_mask[0] ? grad_h.mutable_data_ptr<scalar_t>() : nullptr,
          output_mask[1] ? grad_w.mutable_data_ptr<acc_t>() : nullptr, K, N);
    });
  }
  return {grad_h, grad_w.to(w_in.scalar_type())};
}

}  // namespace seqrec_fast::mix_impl
