// Schema, autograd and the (device-independent) implementation of sliced_linear.
#include "sliced_linear.h"

#include <torch/autograd.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "op_utils.h"

namespace seqrec_fast::sliced_linear_impl {
namespace {

// Rows [start, start + count) of the (route-sorted) batch use widths (in, out).
struct Group {
  int64_t start, count, in, out;
};

// How the batch splits into groups; `order` sorts rows by route (undefined: one group, as is).
struct Plan {
  at::Tensor order;
  std::vector<Group> groups;

  at::Tensor gather(const at::Tensor& t) const { return order.defined() ? t.index_select(0, order) : t; }
  at::Tensor scatter(const at::Tensor& sorted) const {
    return order.defined() ? at::empty_like(sorted).index_copy_(0, order, sorted) : sorted;
  }
};

void check_args(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  check_floating(x, "sliced_linear", "x");
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "seqrec_fast::sliced_linear: expected x [N, in_max] and weight [out_max, in_max], got ", x.sizes(),
              " and ", weight.sizes());
  check_same_device_dtype(x, weight, "sliced_linear", "x", "weight");
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), "seqrec_fast::sliced_linear: bias must be [",
                weight.size(0), "], got ", bias->sizes());
    check_same_device_dtype(x, *bias, "sliced_linear", "x", "bias");
  }
}

void check_width(const char* name, int64_t lo, int64_t hi, int64_t limit) {
  TORCH_CHECK(lo >= 0 && hi <= limit, "seqrec_fast::sliced_linear: ", name, " must lie in [0, ", limit,
              "], got values in [", lo, ", ", hi, "]");
}

Plan uniform_plan(const at::Tensor& x, const at::Tensor& weight, int64_t in_f, int64_t out_f) {
  check_width("in_features", in_f, in_f, weight.size(1));
  check_width("out_features", out_f, out_f, weight.size(0));
  return {at::Tensor(), {{0, x.size(0), in_f, out_f}}};
}

Plan routed_plan(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& in_f, const at::Tensor& out_f) {
  const int64_t n = x.size(0), in_max = weight.size(1), out_max = weight.size(0);
  for (const auto* t : {&in_f, &out_f}) {
    TORCH_CHECK(!at::isFloatingType(t->scalar_type()) && t->dim() == 1 && t->size(0) == n,
                "seqrec_fast::sliced_linear: per-row widths must be int tensors [", n, "], got ", t->scalar_type(),
                " ", t->sizes());
    TORCH_CHECK(t->device() == x.device(), "seqrec_fast::sliced_linear: widths on ", t->device(), ", x on ",
                x.device());
  }
  const at::Tensor in_l = in_f.to(at::kLong), out_l = out_f.to(at::kLong);
  if (n == 0) return {in_l, {}};
  const at::Tensor key = in_l * (out_max + 1) + out_l;
  auto [sorted, order] = at::sort(key, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  // The one copy to the host: the widths' bounds, then the sorted routes.
  const at::Tensor bounds = at::stack({in_l.min(), in_l.max(), out_l.min(), out_l.max()});
  const at::Tensor host = at::cat({bounds, sorted}).cpu();
  const int64_t* b = host.const_data_ptr<int64_t>();
  check_width("in_features", b[0], b[1], in_max);
  check_width("out_features", b[2], b[3], out_max);
  const int64_t* routes = b + 4;
  Plan plan{order, {}};
  for (int64_t start = 0, end = 0; start < n; start = end) {
    while (end < n && routes[end] == routes[start]) ++end;
    plan.groups.push_back({start, end - start, routes[start] / (out_max + 1), routes[start] % (out_max + 1)});
  }
  return plan;
}

// The groups as the CPU tensor the backward receives, and back: [N, 4], a row (start, count, in,
// out) per group, then rows of zeros (count 0 ends the plan). Its shape depends on the batch only,
// so that torch.compile traces it as an ordinary tensor; the rows after the plan are zeros rather
// than left unwritten, so that the op's outputs are a function of its inputs.
at::Tensor groups_tensor(const Plan& plan, int64_t rows) {
  at::Tensor t = at::zeros({rows, 4}, at::TensorOptions().dtype(at::kLong));
  int64_t* out = t.mutable_data_ptr<int64_t>();
  for (const Group& g : plan.groups) {
    *out++ = g.start, *out++ = g.count, *out++ = g.in, *out++ = g.out;
  }
  return t;
}

Plan saved_plan(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& order, const at::Tensor& groups) {
  const int64_t n = x.size(0);
  TORCH_CHECK(order.dim() == 1 && order.size(0) == n && order.scalar_type() == at::kLong && groups.dim() == 2 &&
                  groups.size(0) == n && groups.size(1) == 4 && groups.scalar_type() == at::kLong && groups.is_cpu(),
              "seqrec_fast::sliced_linear_routed_backward: expected the forward's plan, an int64 order [", n,
              "] and int64 CPU groups [", n, ", 4], got ", order.scalar_type(), " ", order.sizes(), " and ",
              groups.scalar_type(), " ", groups.sizes(), " on ", groups.device());
  const at::Tensor g = groups.contiguous();
  const int64_t* v = g.const_data_ptr<int64_t>();
  Plan plan{order, {}};
  int64_t covered = 0;
  for (int64_t i = 0; covered < n; ++i, v += 4) {
    TORCH_CHECK(v[0] == covered && v[1] > 0 && v[2] >= 0 && v[2] <= weight.size(1) && v[3] >= 0 &&
                    v[3] <= weight.size(0),
                "seqrec_fast::sliced_linear_routed_backward: group ", i, " (start ", v[0], ", count ", v[1], ", in ",
                v[2], ", out ", v[3], ") is not part of a plan of the forward for ", n, " rows");
    plan.groups.push_back({v[0], v[1], v[2], v[3]});
    covered += v[1];
  }
  return plan;
}

at::Tensor block(const at::Tensor& t, const Group& g, int64_t cols) {
  return t.narrow(0, g.start, g.count).narrow(1, 0, cols);
}

at::Tensor run_forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       const Plan& plan) {
  const int64_t out_max = weight.size(0), in_max = weight.size(1);
  if (plan.groups.size() == 1 && plan.groups[0].in == in_max && plan.groups[0].out == out_max) {
    return bias.has_value() ? at::addmm(*bias, x, weight.t()) : at::mm(x, weight.t());  // full width
  }
  const at::Tensor xs = plan.gather(x);
  at::Tensor ys = at::zeros({x.size(0), out_max}, x.options());
  for (const Group& g : plan.groups) {
    if (g.out == 0) continue;
    at::Tensor y_block = block(ys, g, g.out);
    const at::Tensor b = bias.has_value() ? bias->narrow(0, 0, g.out) : at::Tensor();
    if (g.in == 0) {
      if (b.defined()) y_block.copy_(b.expand({g.count, g.out}));
      continue;
    }
    const at::Tensor w_t = weight.narrow(0, 0, g.out).narrow(1, 0, g.in).t();
    if (b.defined()) {
      at::addmm_out(y_block, b, block(xs, g, g.in), w_t);
    } else {
      at::mm_out(y_block, block(xs, g, g.in), w_t);
    }
  }
  return plan.scatter(ys);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> run_backward(const at::Tensor& grad, const at::Tensor& x,
                                                            const at::Tensor& weight, const Plan& plan,
                                                            std::array<bool, 2> output_mask) {
  const int64_t in_max = weight.size(1);
  const at::Tensor gs = plan.gather(grad.to(x.scalar_type()));
  const at::Tensor xs = output_mask[1] ? plan.gather(x) : at::Tensor();
  at::Tensor gx = output_mask[0] ? at::zeros({x.size(0), in_max}, x.options()) : at::empty({0}, x.options());
  at::Tensor grad_weight = output_mask[1] ? at::zeros_like(weight, at::MemoryFormat::Contiguous)
                                          : at::empty({0}, weight.options());
  at::Tensor grad_bias = output_mask[1] ? at::zeros({weight.size(0)}, weight.options())
                                        : at::empty({0}, weight.options());
  for (const Group& g : plan.groups) {
    if (g.out == 0) continue;
    const at::Tensor g_block = block(gs, g, g.out);
    if (output_mask[1]) grad_bias.narrow(0, 0, g.out).add_(g_block.sum(0));
    if (g.in == 0) continue;
    const at::Tensor w_slice = weight.narrow(0, 0, g.out).narrow(1, 0, g.in);
    if (output_mask[0]) {
      at::Tensor gx_block = block(gx, g, g.in);
      at::mm_out(gx_block, g_block, w_slice);
    }
    if (output_mask[1]) grad_weight.narrow(0, 0, g.out).narrow(1, 0, g.in).addmm_(g_block.t(), block(xs, g, g.in));
  }
  return {output_mask[0] ? plan.scatter(gx) : gx, grad_weight, grad_bias};
}

}  // namespace

at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                   int64_t in_features, int64_t out_features) {
  check_args(x, weight, bias);
  return run_forward(x, weight, bias, uniform_plan(x, weight, in_features, out_features));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x,
                                                        const at::Tensor& weight, int64_t in_features,
                                                        int64_t out_features, std::array<bool, 2> output_mask) {
  check_args(x, weight, std::nullopt);
  return run_backward(grad, x, weight, uniform_plan(x, weight, in_features, out_features), output_mask);
}

at::Tensor routed_forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          const at::Tensor& in_features, const at::Tensor& out_features) {
  check_args(x, weight, bias);
  return run_forward(x, weight, bias, routed_plan(x, weight, in_features, out_features));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> planned_forward(const at::Tensor& x, const at::Tensor& weight,
                                                               const std::optional<at::Tensor>& bias,
                                                               const at::Tensor& in_features,
                                                               const at::Tensor& out_features) {
  check_args(x, weight, bias);
  const Plan plan = routed_plan(x, weight, in_features, out_features);
  return {run_forward(x, weight, bias, plan), plan.order, groups_tensor(plan, x.size(0))};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> routed_backward(const at::Tensor& grad, const at::Tensor& x,
                                                               const at::Tensor& weight, const at::Tensor& order,
                                                               const at::Tensor& groups,
                                                               std::array<bool, 2> output_mask) {
  check_args(x, weight, std::nullopt);
  return run_backward(grad, x, weight, saved_plan(x, weight, order, groups), output_mask);
}

}  // namespace seqrec_fast::sliced_linear_impl

namespace seqrec_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptionalTensor = std::optional<at::Tensor>;
using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

// Widths are ints (one route for the batch) or int tensors (a route per row); one autograd
// function serves both through the Widths type.
template <typename Widths>
struct SlicedLinearOps;

template <>
struct SlicedLinearOps<int64_t> {
  static constexpr const char* kBackward = "seqrec_fast::sliced_linear_backward";
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const OptionalTensor& bias, int64_t in_f, int64_t out_f) {
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const OptionalTensor&, int64_t,
                                          int64_t)>("seqrec_fast::sliced_linear");
    ctx->save_for_backward({x, weight});
    ctx->saved_data["in"] = in_f;
    ctx->saved_data["out"] = out_f;
    return op.call(x, weight, bias, in_f, out_f);
  }
  static std::pair<int64_t, int64_t> load(AutogradContext* ctx, const variable_list&) {
    return {ctx->saved_data["in"].toInt(), ctx->saved_data["out"].toInt()};
  }
};

// Per-row routes: the forward's plan (row order, groups) is saved, so the backward copies nothing
// from the device.
template <>
struct SlicedLinearOps<at::Tensor> {
  static constexpr const char* kBackward = "seqrec_fast::sliced_linear_routed_backward";
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const OptionalTensor& bias, const at::Tensor& in_f, const at::Tensor& out_f) {
    static auto op = op_handle<Grads(const at::Tensor&, const at::Tensor&, const OptionalTensor&, const at::Tensor&,
                                     const at::Tensor&)>("seqrec_fast::sliced_linear_routed_forward");
    auto [y, order, groups] = op.call(x, weight, bias, in_f, out_f);
    ctx->save_for_backward({x, weight, order, groups});
    return y;
  }
  static std::pair<at::Tensor, at::Tensor> load(AutogradContext*, const variable_list& saved) {
    return {saved[2], saved[3]};
  }
};

template <typename Widths>
class SlicedLinearFunction : public torch::autograd::Function<SlicedLinearFunction<Widths>> {
  using Ops = SlicedLinearOps<Widths>;
  using WidthArg = std::conditional_t<std::is_same_v<Widths, int64_t>, int64_t, const at::Tensor&>;

 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const OptionalTensor& bias, WidthArg in_f, WidthArg out_f) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["has_bias"] = bias.has_value();
    return Ops::forward(ctx, x, weight, bias, in_f, out_f);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto [in_f, out_f] = Ops::load(ctx, saved);
    const bool need_x = ctx->needs_input_grad(0);
    // Edges exist for tensor inputs only: without a bias there is no edge 2 to ask about.
    const bool need_bias = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    const bool need_params = ctx->needs_input_grad(1) || need_bias;
    static auto op = op_handle<Grads(const at::Tensor&, const at::Tensor&, const at::Tensor&, WidthArg, WidthArg,
                                     std::array<bool, 2>)>(Ops::kBackward);
    auto [grad_x, grad_weight, grad_bias] = op.call(grads[0], saved[0], saved[1], in_f, out_f, {need_x, need_params});
    return {need_x ? grad_x : at::Tensor(), ctx->needs_input_grad(1) ? grad_weight : at::Tensor(),
            need_bias ? grad_bias : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor sliced_linear_autograd(const at::Tensor& x, const at::Tensor& weight, const OptionalTensor& bias,
                                  int64_t in_f, int64_t out_f) {
  return SlicedLinearFunction<int64_t>::apply(x, weight, bias, in_f, out_f);
}

at::Tensor sliced_linear_routed_autograd(const at::Tensor& x, const at::Tensor& weight, const OptionalTensor& bias,
                                         const at::Tensor& in_f, const at::Tensor& out_f) {
  return SlicedLinearFunction<at::Tensor>::apply(x, weight, bias, in_f, out_f);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_FRAGMENT(seqrec_fast, m) {
  m.def("sliced_linear(Tensor x, Tensor weight, Tensor? bias, int in_features, int out_features) -> Tensor");
  m.def("sliced_linear_backward(Tensor grad, Tensor x, Tensor weight, int in_features, int out_features,"
        " bool[2] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def("sliced_linear_routed(Tensor x, Tensor weight, Tensor? bias, Tensor in_features, Tensor out_features)"
        " -> Tensor");
  m.def("sliced_linear_routed_forward(Tensor x, Tensor weight, Tensor? bias, Tensor in_features,"
        " Tensor out_features) -> (Tensor, Tensor, Tensor)");
  m.def("sliced_linear_routed_backward(Tensor grad, Tensor x, Tensor weight, Tensor order, Tensor groups,"
        " bool[2] output_mask) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(seqrec_fast, Autograd, m) {
  m.impl("sliced_linear", &seqrec_fast::sliced_linear_autograd);
  m.impl("sliced_linear_routed", &seqrec_fast::sliced_linear_routed_autograd);
}
