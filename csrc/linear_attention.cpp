// Schema and autograd of linear_attention (EASRec / LinRec feature map, causal or not).
#include <torch/autograd.h>
#include <torch/library.h>

#include "op_utils.h"

namespace seqrec_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptionalTensor = std::optional<at::Tensor>;

at::Tensor linear_attention_call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const OptionalTensor& mask, bool causal, double scale) {
  static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        const OptionalTensor&, bool, double)>("seqrec_fast::linear_attention");
  return op.call(q, k, v, mask, causal, scale);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_attention_backward_call(
    const at::Tensor& grad, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const OptionalTensor& mask, bool causal, double scale) {
  static auto op = op_handle<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptionalTensor&, bool,
      double)>("seqrec_fast::linear_attention_backward");
  return op.call(grad, q, k, v, mask, causal, scale);
}

class LinearAttentionFunction : public torch::autograd::Function<LinearAttentionFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const OptionalTensor& mask, bool causal, double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({q, k, v, mask.has_value() ? *mask : at::Tensor()});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    return linear_attention_call(q, k, v, mask, causal, scale);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const OptionalTensor mask = saved[3].defined() ? OptionalTensor(saved[3]) : std::nullopt;
    auto [dq, dk, dv] = linear_attention_backward_call(grads[0], saved[0], saved[1], saved[2], mask,
                                                       ctx->saved_data["causal"].toBool(),
                                                       ctx->saved_data["scale"].toDouble());
    return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor linear_attention_autograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const OptionalTensor& mask, bool causal, double scale) {
  return LinearAttentionFunction::apply(q, k, v, mask, causal, scale);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_FRAGMENT(seqrec_fast, m) {
  m.def("linear_attention(Tensor q, Tensor k, Tensor v, Tensor? key_padding_mask, bool causal, float scale)"
        " -> Tensor");
  m.def("linear_attention_backward(Tensor grad, Tensor q, Tensor k, Tensor v, Tensor? key_padding_mask,"
        " bool causal, float scale) -> (Tensor, Tensor, Tensor)");
  // The device-independent driver (csrc/linear_attention.h) over the CPU's kernels, for the tests:
  // CUDA runs that driver, and these run every line of it on a CPU.
  m.def("_linear_attention_driver(Tensor q, Tensor k, Tensor v, Tensor? key_padding_mask, bool causal,"
        " float scale) -> Tensor");
  m.def("_linear_attention_driver_backward(Tensor grad, Tensor q, Tensor k, Tensor v, Tensor? key_padding_mask,"
        " bool causal, float scale) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(seqrec_fast, Autograd, m) {
  m.impl("linear_attention", &seqrec_fast::linear_attention_autograd);
}
