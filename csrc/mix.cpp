// Schema and autograd of mix(h, w) = sum_k w[k] h[k] (DARTS-style mixed operations).
#include <torch/autograd.h>
#include <torch/library.h>

#include "op_utils.h"

namespace seqrec_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor mix_call(const at::Tensor& h, const at::Tensor& w) {
  static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&)>("seqrec_fast::mix");
  return op.call(h, w);
}

std::tuple<at::Tensor, at::Tensor> mix_backward_call(const at::Tensor& g, const at::Tensor& h,
                                                     const at::Tensor& w, std::array<bool, 2> mask) {
  static auto op = op_handle<std::tuple<at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, std::array<bool, 2>)>(
      "seqrec_fast::mix_backward");
  return op.call(g, h, w, mask);
}

class MixFunction : public torch::autograd::Function<MixFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const at::Tensor& w) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({h, w});
    return mix_call(h, w);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_h, grad_w] = mix_backward_call(
        grads[0], saved[0], saved[1], {ctx->needs_input_grad(0), ctx->needs_input_grad(1)});
    return {ctx->needs_input_grad(0) ? grad_h : at::Tensor(),
            ctx->needs_input_grad(1) ? grad_w : at::Tensor()};
  }
};

at::Tensor mix_autograd(const at::Tensor& h, const at::Tensor& w) {
  return MixFunction::apply(h, w);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_FRAGMENT(seqrec_fast, m) {
  m.def("mix(Tensor h, Tensor w) -> Tensor");
  m.def("mix_backward(Tensor grad, Tensor h, Tensor w, bool[2] output_mask) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(seqrec_fast, Autograd, m) {
  m.impl("mix", &seqrec_fast::mix_autograd);
}
