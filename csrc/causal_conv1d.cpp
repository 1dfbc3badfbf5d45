// Schema and autograd of causal_conv1d (dilated causal convolution, channels-last).
#include <torch/autograd.h>
#include <torch/library.h>

#include "op_utils.h"

namespace seqrec_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor causal_conv1d_call(const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, int64_t dilation) {
  static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&,
                                        const std::optional<at::Tensor>&, int64_t)>(
      "seqrec_fast::causal_conv1d");
  return op.call(x, weight, bias, dilation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> causal_conv1d_backward_call(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& weight, int64_t dilation,
    std::array<bool, 2> mask) {
  static auto op = op_handle<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, std::array<bool, 2>)>(
      "seqrec_fast::causal_conv1d_backward");
  return op.call(grad, x, weight, dilation, mask);
}

class CausalConv1dFunction : public torch::autograd::Function<CausalConv1dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, int64_t dilation) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["has_bias"] = bias.has_value();
    ctx->save_for_backward({x, weight});
    ctx->saved_data["dilation"] = dilation;
    return causal_conv1d_call(x, weight, bias, dilation);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const bool need_x = ctx->needs_input_grad(0);
    // Edges exist for tensor inputs only: without a bias there is no edge 2 to ask about.
    const bool need_bias = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    const bool need_params = ctx->needs_input_grad(1) || need_bias;
    auto [grad_x, grad_weight, grad_bias] = causal_conv1d_backward_call(
        grads[0], saved[0], saved[1], ctx->saved_data["dilation"].toInt(), {need_x, need_params});
    return {need_x ? grad_x : at::Tensor(), ctx->needs_input_grad(1) ? grad_weight : at::Tensor(),
            need_bias ? grad_bias : at::Tensor(), at::Tensor()};
  }
};

at::Tensor causal_conv1d_autograd(const at::Tensor& x, const at::Tensor& weight,
                                  const std::optional<at::Tensor>& bias, int64_t dilation) {
  return CausalConv1dFunction::apply(x, weight, bias, dilation);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_FRAGMENT(seqrec_fast, m) {
  m.def("causal_conv1d(Tensor x, Tensor weight, Tensor? bias, int dilation) -> Tensor");
  m.def("causal_conv1d_backward(Tensor grad, Tensor x, Tensor weight, int dilation, bool[2] output_mask)"
        " -> (Tensor, Tensor, Tensor)");
  // The device-independent driver (csrc/causal_conv1d.h) over the CPU's gather, for the tests: CUDA
  // runs that driver, and these run every line of it on a CPU.
  m.def("_causal_conv1d_driver(Tensor x, Tensor weight, Tensor? bias, int dilation) -> Tensor");
  m.def("_causal_conv1d_driver_backward(Tensor grad, Tensor x, Tensor weight, int dilation, bool[2] output_mask)"
        " -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(seqrec_fast, Autograd, m) {
  m.impl("causal_conv1d", &seqrec_fast::causal_conv1d_autograd);
}
