// Autocast of the seqrec_fast ops: the cast rule, in one place, for AutocastCPU and AutocastCUDA.
//
// The GEMM ops (grid_linear, sliced_linear, causal_conv1d, linear_attention) follow the rule
// autocast applies to F.linear, F.conv1d and matmul: their floating inputs on the autocast device
// are cast to the autocast dtype (float64 tensors and tensors on other devices are left as they
// are, as ATen's cast does), and the op runs below the autocast key in that dtype, its kernels
// accumulating in float. The casts are ATen's cached casts: an fp32 weight that several calls use
// in one autocast region is cast once, and autograd carries its gradient back to fp32. What is
// not data stays as given: grid_linear's coords (read on the host as float64), the widths of
// sliced_linear, the padding mask of linear_attention.
//
// mix and dropout are memory-bound and run in their input's dtype, as torch's pointwise ops do
// under autocast: they register nothing here, so autocast falls through to them. mix reads w in
// the accumulation type whatever its dtype, so bf16 candidates with fp32 weights need no cast.
//
// The backward ops register nothing either: autograd calls them with the dtypes the forward
// saved, and casts each gradient back to its input's dtype.
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include "op_utils.h"

namespace seqrec_fast {
namespace {

using OptionalTensor = std::optional<at::Tensor>;

// Below the autocast key of `device` for its lifetime; casts tensors to the autocast dtype.
template <c10::DeviceType device>
class Cast {
 public:
  at::Tensor operator()(const at::Tensor& t) const { return at::autocast::cached_cast(dtype_, t, device); }
  OptionalTensor operator()(const OptionalTensor& t) const { return at::autocast::cached_cast(dtype_, t, device); }

 private:
  c10::impl::ExcludeDispatchKeyGuard below_autocast_{at::autocast::get_autocast_dispatch_key_from_device_type(device)};
  at::ScalarType dtype_ = at::autocast::get_autocast_dtype(device);
};

template <c10::DeviceType device>
struct Autocast {
  static at::Tensor grid_linear(const at::Tensor& x, const at::Tensor& weight, const OptionalTensor& bias,
                                const at::Tensor& coords, bool blend, bool per_corner) {
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const OptionalTensor&,
                                          const at::Tensor&, bool, bool)>("seqrec_fast::grid_linear");
    const Cast<device> cast;
    return op.call(cast(x), cast(weight), cast(bias), coords, blend, per_corner);
  }

  static at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const OptionalTensor& bias,
                                  int64_t dilation) {
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const OptionalTensor&, int64_t)>(
        "seqrec_fast::causal_conv1d");
    const Cast<device> cast;
    return op.call(cast(x), cast(weight), cast(bias), dilation);
  }

  static at::Tensor linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const OptionalTensor& mask, bool causal, double scale) {
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                          const OptionalTensor&, bool, double)>("seqrec_fast::linear_attention");
    const Cast<device> cast;
    return op.call(cast(q), cast(k), cast(v), mask, causal, scale);
  }

  static at::Tensor sliced_linear(const at::Tensor& x, const at::Tensor& weight, const OptionalTensor& bias,
                                  int64_t in_features, int64_t out_features) {
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const OptionalTensor&, int64_t,
                                          int64_t)>("seqrec_fast::sliced_linear");
    const Cast<device> cast;
    return op.call(cast(x), cast(weight), cast(bias), in_features, out_features);
  }

  static at::Tensor sliced_linear_routed(const at::Tensor& x, const at::Tensor& weight, const OptionalTensor& bias,
                                         const at::Tensor& in_features, const at::Tensor& out_features) {
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const OptionalTensor&,
                                          const at::Tensor&, const at::Tensor&)>("seqrec_fast::sliced_linear_routed");
    const Cast<device> cast;
    return op.call(cast(x), cast(weight), cast(bias), in_features, out_features);
  }

  static void register_all(torch::Library& m) {
    m.impl("grid_linear", &grid_linear);
    m.impl("causal_conv1d", &causal_conv1d);
    m.impl("linear_attention", &linear_attention);
    m.impl("sliced_linear", &sliced_linear);
    m.impl("sliced_linear_routed", &sliced_linear_routed);
  }
};

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, AutocastCPU, m) {
  seqrec_fast::Autocast<c10::DeviceType::CPU>::register_all(m);
}

TORCH_LIBRARY_IMPL(seqrec_fast, AutocastCUDA, m) {
  seqrec_fast::Autocast<c10::DeviceType::CUDA>::register_all(m);
}
