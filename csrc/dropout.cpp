// Schema and autograd of dropout(x, p, seed). The gradient is the same op on the incoming
// gradient (the same seed gives the same mask), so nothing but the seed is saved.
#include <torch/autograd.h>
#include <torch/library.h>

#include "op_utils.h"

namespace seqrec_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor dropout_call(const at::Tensor& x, double p, const at::Tensor& seed) {
  static auto op = op_handle<at::Tensor(const at::Tensor&, double, const at::Tensor&)>("seqrec_fast::dropout");
  return op.call(x, p, seed);
}

class DropoutFunction : public torch::autograd::Function<DropoutFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double p, const at::Tensor& seed) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    at::AutoDispatchBelowADInplaceOrView guard;
    return dropout_call(x, p, seed);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // Through the dispatcher with autograd on: a double backward differentiates this again.
    const at::Tensor grad = DropoutFunction::apply(grads[0], ctx->saved_data["p"].toDouble(),
                                                   ctx->saved_data["seed"].toTensor());
    return {grad, at::Tensor(), at::Tensor()};
  }
};

at::Tensor dropout_autograd(const at::Tensor& x, double p, const at::Tensor& seed) {
  return DropoutFunction::apply(x, p, seed);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_FRAGMENT(seqrec_fast, m) {
  m.def("dropout(Tensor x, float p, Tensor seed) -> Tensor");
}

TORCH_LIBRARY_IMPL(seqrec_fast, Autograd, m) {
  m.impl("dropout", &seqrec_fast::dropout_autograd);
}
