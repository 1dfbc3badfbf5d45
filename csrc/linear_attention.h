// linear_attention: the device-independent driver (checks, buffers, GEMMs, dtype dispatch).
//
// phi(x) = elu(x) / max(||elu(x)||_2, 1e-12) per token (F.normalize's clamp); padded keys get
// phi = 0, which removes them from every sum. With S_t = sum_{s <= t} phi(k_s)^T v_s:
//   out_t = scale phi(q_t) S_t
//   dphi(q_t) = scale S_t g_t
//   dphi(k_t) = R_t v_t,  dv_t = R_t^T phi(k_t),  R_t = scale sum_{u >= t} phi(q_u)^T g_u
// The causal sums run as chunks of dense GEMMs (csrc/linear_attention_chunks.h); the non-causal
// form replaces them by the totals S_L, R_1. Each device supplies `Kernels` with the feature
// map over raw pointers (acc_t = float, or double for double):
//   phi<scalar_t>(x, padded_or_null, out, rows, D, H, L)                   out = phi(x) (acc_t)
//   phi_backward<scalar_t>(x, dphi, padded_or_null, dx, rows, D, H, L)    dx = dphi . dphi/dx
// where rows index [B, H, L] flattened and padded is the [B, L] key padding mask (true =
// padding). CUDA runs this driver; the CPU runs its own over check_args and the same chunked
// GEMMs (csrc/cpu/linear_attention_cpu.cpp: blocks of batch-heads in parallel, step scans for
// small heads), and this one with its kernels as seqrec_fast::_linear_attention_driver, which
// the tests compare with the reference.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <tuple>

#include "linear_attention_chunks.h"
#include "op_utils.h"

namespace seqrec_fast::linear_attention_impl {

constexpr double kNormEps = 1e-12;

inline void check_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const std::optional<at::Tensor>& mask) {
  check_floating(q, "linear_attention", "q");
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4 &&
                  v.sizes().slice(0, 3) == q.sizes().slice(0, 3),
              "seqrec_fast::linear_attention: q, k must be [B, H, L, D] and v [B, H, L, Dv], got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  check_same_device_dtype(q, k, "linear_attention", "q", "k");
  check_same_device_dtype(q, v, "linear_attention", "q", "v");
  if (mask.has_value()) {
    TORCH_CHECK(mask->scalar_type() == at::kBool && mask->dim() == 2 && mask->size(0) == q.size(0) &&
                    mask->size(1) == q.size(2),
                "seqrec_fast::linear_attention: key_padding_mask must be bool [", q.size(0), ", ",
                q.size(2), "] (true = padding), got ", mask->scalar_type(), " ", mask->sizes());
    TORCH_CHECK(mask->device() == q.device(), "seqrec_fast::linear_attention: key_padding_mask is on ",
                mask->device(), ", q on ", q.device());
  }
}

struct Features {
  at::Tensor pq, pk;  // [B H, L, D] in the accumulation type; pk is zero at padded keys
  at::Tensor padded;  // contiguous [B, L] bool, or undefined
};

template <class Kernels>
Features features(const at::Tensor& q_in, const at::Tensor& k_in, const std::optional<at::Tensor>& mask) {
  const at::Tensor q = q_in.contiguous(), k = k_in.contiguous();
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3);
  Features f;
  f.padded = mask.has_value() ? mask->contiguous() : at::Tensor();
  const auto acc_options = q.options().dtype(at::toOpMathType(q.scalar_type()));
  f.pq = at::empty({B * H, L, D}, acc_options);
  f.pk = at::empty({B * H, L, D}, acc_options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "seqrec_fast::linear_attention_phi", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const bool* padded = f.padded.defined() ? f.padded.const_data_ptr<bool>() : nullptr;
    Kernels::template phi<scalar_t>(q.const_data_ptr<scalar_t>(), nullptr, f.pq.mutable_data_ptr<acc_t>(),
                                    B * H * L, D, H, L);
    Kernels::template phi<scalar_t>(k.const_data_ptr<scalar_t>(), padded, f.pk.mutable_data_ptr<acc_t>(),
                                    B * H * L, D, H, L);
  });
  return f;
}

template <class Kernels>
at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                   const std::optional<at::Tensor>& mask, bool causal, double scale) {
  check_args(q, k, v, mask);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), Dv = v.size(3);
  if (q.numel() == 0 || Dv == 0) return at::zeros({B, H, L, Dv}, v.options());
  const Features f = features<Kernels>(q, k, mask);
  const at::Tensor vv = v.reshape({B * H, L, Dv}).to(f.pq.scalar_type()).contiguous();
  at::Tensor out = at::empty({B * H, L, Dv}, vv.options());
  (causal ? chunked_causal_forward : full_forward)(out, f.pq, f.pk, vv, scale);
  return out.view({B, H, L, Dv}).to(v.scalar_type());
}

template <class Kernels>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& q,
                                                        const at::Tensor& k, const at::Tensor& v,
                                                        const std::optional<at::Tensor>& mask, bool causal,
                                                        double scale) {
  check_args(q, k, v, mask);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), Dv = v.size(3);
  if (q.numel() == 0 || Dv == 0) return {at::zeros_like(q), at::zeros_like(k), at::zeros_like(v)};
  const Features f = features<Kernels>(q, k, mask);
  const auto acc_type = f.pq.scalar_type();
  const at::Tensor vv = v.reshape({B * H, L, Dv}).to(acc_type).contiguous();
  const at::Tensor g = grad.reshape({B * H, L, Dv}).to(acc_type).contiguous();
  const FeatureGrads grads{at::empty_like(f.pq), at::empty_like(f.pk), at::empty_like(vv)};
  (causal ? chunked_causal_backward : full_backward)(grads, f.pq, f.pk, vv, g, scale);
  at::Tensor dq = at::empty(q.sizes(), q.options());
  at::Tensor dk = at::empty(k.sizes(), k.options());
  const at::Tensor qc = q.contiguous(), kc = k.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "seqrec_fast::linear_attention_phi_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const bool* padded = f.padded.defined() ? f.padded.const_data_ptr<bool>() : nullptr;
    Kernels::template phi_backward<scalar_t>(qc.const_data_ptr<scalar_t>(), grads.dpq.const_data_ptr<acc_t>(), nullptr,
                                             dq.mutable_data_ptr<scalar_t>(), B * H * L, D, H, L);
    Kernels::template phi_backward<scalar_t>(kc.const_data_ptr<scalar_t>(), grads.dpk.const_data_ptr<acc_t>(), padded,
                                             dk.mutable_data_ptr<scalar_t>(), B * H * L, D, H, L);
  });
  return {dq, dk, grads.dv.view({B, H, L, Dv}).to(v.scalar_type())};
}

}  // namespace seqrec_fast::linear_attention_impl
