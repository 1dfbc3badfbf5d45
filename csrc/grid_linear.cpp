// Schema, autograd and the (device-independent) implementation of grid_linear.
#include "grid_linear.h"

#include <torch/autograd.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "op_utils.h"

namespace seqrec_fast::grid_linear_impl {

Corners grid_corners(const at::Tensor& coords, int64_t grid_size) {
  TORCH_CHECK(coords.numel() == 2, "seqrec_fast::grid_linear: coords must hold 2 values, got ",
              coords.numel());
  const at::Tensor c = coords.detach().to(at::kCPU, at::kDouble).contiguous();
  const double* values = c.const_data_ptr<double>();
  std::array<int64_t, 2> low{}, high{};
  std::array<double, 2> frac{};
  for (int axis = 0; axis < 2; ++axis) {
    const double v = values[axis];
    TORCH_CHECK(v >= 0.0 && v <= 1.0, "seqrec_fast::grid_linear: coords[", axis, "] = ", v,
                ": expected a value in [0, 1]");
    if (grid_size == 1) continue;  // the single candidate at every corner, weight 1 on the first
    const double u = v * static_cast<double>(grid_size - 1);
    low[axis] = std::min(static_cast<int64_t>(u), grid_size - 2);
    high[axis] = low[axis] + 1;
    frac[axis] = u - static_cast<double>(low[axis]);
  }
  const double s = frac[0], t = frac[1];
  const int64_t m = grid_size;
  return {{low[0] * m + low[1], low[0] * m + high[1], high[0] * m + low[1], high[0] * m + high[1]},
          {(1 - s) * (1 - t), (1 - s) * t, s * (1 - t), s * t}};
}

namespace {

void check_args(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                bool per_corner) {
  check_floating(x, "grid_linear", "x");
  TORCH_CHECK(weight.dim() == 4 && weight.size(0) == weight.size(1) && weight.size(0) >= 1,
              "seqrec_fast::grid_linear: weight must be [M, M, out, in], got ", weight.sizes());
  check_same_device_dtype(x, weight, "grid_linear", "x", "weight");
  const int64_t m = weight.size(0), out_f = weight.size(2), in_f = weight.size(3);
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 3 && bias->size(0) == m && bias->size(1) == m && bias->size(2) == out_f,
                "seqrec_fast::grid_linear: bias must be [", m, ", ", m, ", ", out_f, "], got ", bias->sizes());
    check_same_device_dtype(x, *bias, "grid_linear", "x", "bias");
  }
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == in_f, "seqrec_fast::grid_linear: x must end in in_features=",
              in_f, ", got ", x.sizes());
  TORCH_CHECK(!per_corner || (x.dim() >= 2 && x.size(0) == kCorners),
              "seqrec_fast::grid_linear: per-corner x must be [4, ..., ", in_f, "], got ", x.sizes());
}

// The operands as matrices: x rows [N, in] (per corner or shared), weights [M M, out, in].
struct Operands {
  at::Tensor w;                 // [M M, out, in]
  std::vector<int64_t> lead;    // x's leading dims without the corner dim
  int64_t rows = 0;
  at::Tensor x_shared;          // [N, in], or undefined
  at::Tensor x_corners;         // [4, N, in], or undefined

  at::Tensor x(int64_t corner) const { return x_shared.defined() ? x_shared : x_corners[corner]; }
};

Operands operands(const at::Tensor& x, const at::Tensor& weight, bool per_corner) {
  Operands o;
  const int64_t m = weight.size(0), out_f = weight.size(2), in_f = weight.size(3);
  o.w = weight.reshape({m * m, out_f, in_f});
  const auto sizes = x.sizes();
  o.lead.assign(sizes.begin() + (per_corner ? 1 : 0), sizes.end() - 1);
  o.rows = 1;
  for (int64_t d : o.lead) o.rows *= d;
  if (per_corner) {
    o.x_corners = x.reshape({kCorners, o.rows, in_f});
  } else {
    o.x_shared = x.reshape({o.rows, in_f});
  }
  return o;
}

// sum_c w_c t[index_c] over the corners with non-zero weight.
at::Tensor blend_slices(const at::Tensor& stacked, const Corners& corners) {
  at::Tensor out;
  for (int64_t c = 0; c < kCorners; ++c) {
    if (corners.weight[c] == 0.0) continue;
    const at::Tensor slice = stacked[corners.index[c]];
    if (out.defined()) {
      out.add_(slice, corners.weight[c]);
    } else {
      out = slice.mul(corners.weight[c]);
    }
  }
  return out;
}

// The 4 corners' slices of a stacked [M M, ...] tensor, as one [4, ...] tensor.
at::Tensor corner_slices(const at::Tensor& stacked, const Corners& corners) {
  return at::stack({stacked[corners.index[0]], stacked[corners.index[1]], stacked[corners.index[2]],
                    stacked[corners.index[3]]});
}

std::vector<int64_t> with_last(std::vector<int64_t> dims, int64_t last, bool corner_dim) {
  if (corner_dim) dims.insert(dims.begin(), kCorners);
  dims.push_back(last);
  return dims;
}

}  // namespace

at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                   const at::Tensor& coords, bool blend, bool per_corner) {
  check_args(x, weight, bias, per_corner);
  const int64_t m = weight.size(0), out_f = weight.size(2);
  const Corners corners = grid_corners(coords, m);
  const Operands ops = operands(x, weight, per_corner);
  const at::Tensor b = bias.has_value() ? bias->reshape({m * m, out_f}) : at::Tensor();

  if (!blend && per_corner) {  // one batched GEMM over the corners
    const at::Tensor w4_t = corner_slices(ops.w, corners).transpose(1, 2);
    const at::Tensor y = b.defined() ? at::baddbmm(corner_slices(b, corners).unsqueeze(1), ops.x_corners, w4_t)
                                     : at::bmm(ops.x_corners, w4_t);
    return y.view(with_last(ops.lead, out_f, true));
  }
  if (!blend) {  // a shared x: 4 GEMMs reading it in place (a batched GEMM would copy it 4 times)
    at::Tensor y = empty_output({kCorners, ops.rows, out_f}, x.options());
    for (int64_t c = 0; c < kCorners; ++c) {
      const at::Tensor w_t = ops.w[corners.index[c]].t();
      at::Tensor y_c = y[c];
      if (b.defined()) {
        at::addmm_out(y_c, b[corners.index[c]], ops.x(c), w_t);
      } else {
        at::mm_out(y_c, ops.x(c), w_t);
      }
    }
    return y.view(with_last(ops.lead, out_f, true));
  }

  const at::Tensor b_blend = b.defined() ? blend_slices(b, corners) : at::Tensor();
  at::Tensor y;
  if (!per_corner) {  // linear in the weights: blend them, then one GEMM
    const at::Tensor w_blend = blend_slices(ops.w, corners);
    y = b_blend.defined() ? at::addmm(b_blend, ops.x_shared, w_blend.t()) : at::mm(ops.x_shared, w_blend.t());
  } else {  // accumulate the weighted GEMMs into one output
    y = empty_output({ops.rows, out_f}, x.options());
    bool first = true;
    for (int64_t c = 0; c < kCorners; ++c) {
      const double wc = corners.weight[c];
      if (wc == 0.0) continue;
      const at::Tensor w_t = ops.w[corners.index[c]].t();
      if (first) {  // beta = 0 ignores y's uninitialised contents
        at::addmm_out(y, b_blend.defined() ? b_blend : y, ops.x(c), w_t, b_blend.defined() ? 1.0 : 0.0, wc);
        first = false;
      } else {
        y.addmm_(ops.x(c), w_t, 1.0, wc);
      }
    }
  }
  return y.view(with_last(ops.lead, out_f, false));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x,
                                                        const at::Tensor& weight, const at::Tensor& coords,
                                                        bool blend, bool per_corner,
                                                        std::array<bool, 2> output_mask) {
  check_args(x, weight, std::nullopt, per_corner);
  const int64_t m = weight.size(0), out_f = weight.size(2), in_f = weight.size(3);
  const Corners corners = grid_corners(coords, m);
  const Operands ops = operands(x, weight, per_corner);
  const at::Tensor g = grad.to(x.scalar_type());
  // g as [N, out] (blended) or per corner [4, N, out].
  const at::Tensor g_rows = blend ? g.reshape({ops.rows, out_f}) : g.reshape({kCorners, ops.rows, out_f});
  auto g_of = [&](int64_t c) { return blend ? g_rows : g_rows[c]; };
  auto weight_of = [&](int64_t c) { return blend ? corners.weight[c] : 1.0; };

  const at::Tensor w4 = !blend && per_corner ? corner_slices(ops.w, corners) : at::Tensor();
  at::Tensor grad_x = at::empty({0}, x.options());
  if (output_mask[0]) {
    if (w4.defined()) {
      grad_x = at::bmm(g_rows, w4).view(x.sizes());
    } else if (per_corner) {
      at::Tensor gx = empty_output({kCorners, ops.rows, in_f}, x.options());
      for (int64_t c = 0; c < kCorners; ++c) {
        if (weight_of(c) == 0.0) {
          gx[c].zero_();
        } else {
          at::Tensor gx_c = gx[c];
          at::addmm_out(gx_c, gx_c, g_of(c), ops.w[corners.index[c]], 0.0, weight_of(c));
        }
      }
      grad_x = gx.view(x.sizes());
    } else if (blend) {
      grad_x = at::mm(g_rows, blend_slices(ops.w, corners)).view(x.sizes());
    } else {
      at::Tensor gx = at::mm(g_rows[0], ops.w[corners.index[0]]);
      for (int64_t c = 1; c < kCorners; ++c) gx.addmm_(g_rows[c], ops.w[corners.index[c]]);
      grad_x = gx.view(x.sizes());
    }
  }

  at::Tensor grad_weight = at::empty({0}, weight.options());
  at::Tensor grad_bias = at::empty({0}, weight.options());
  if (output_mask[1]) {
    // Repeated corners (a 1 x 1 grid) accumulate, so every update adds into zeros.
    grad_weight = at::zeros({m * m, out_f, in_f}, weight.options());
    grad_bias = at::zeros({m * m, out_f}, weight.options());
    if (blend && !per_corner) {  // one GEMM for all corners: d/dW_c = w_c g^T x
      const at::Tensor gw = at::mm(g_rows.t(), ops.x_shared);
      const at::Tensor gb = g_rows.sum(0);
      for (int64_t c = 0; c < kCorners; ++c) {
        if (corners.weight[c] == 0.0) continue;
        grad_weight[corners.index[c]].add_(gw, corners.weight[c]);
        grad_bias[corners.index[c]].add_(gb, corners.weight[c]);
      }
    } else if (w4.defined()) {  // per-corner x and outputs: one batched GEMM
      const at::Tensor gw4 = at::bmm(g_rows.transpose(1, 2), ops.x_corners);
      const at::Tensor gb4 = g_rows.sum(1);
      for (int64_t c = 0; c < kCorners; ++c) {
        grad_weight[corners.index[c]].add_(gw4[c]);
        grad_bias[corners.index[c]].add_(gb4[c]);
      }
    } else {
      const at::Tensor gb_blended = blend ? g_rows.sum(0) : at::Tensor();
      for (int64_t c = 0; c < kCorners; ++c) {
        const double wc = weight_of(c);
        if (wc == 0.0) continue;
        grad_weight[corners.index[c]].addmm_(g_of(c).t(), ops.x(c), 1.0, wc);
        grad_bias[corners.index[c]].add_(blend ? gb_blended : g_rows[c].sum(0), wc);
      }
    }
    grad_weight = grad_weight.view(weight.sizes());
    grad_bias = grad_bias.view({m, m, out_f});
  }
  return {grad_x, grad_weight, grad_bias};
}

}  // namespace seqrec_fast::grid_linear_impl

namespace seqrec_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor grid_linear_call(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            const at::Tensor& coords, bool blend, bool per_corner) {
  static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                        const at::Tensor&, bool, bool)>("seqrec_fast::grid_linear");
  return op.call(x, weight, bias, coords, blend, per_corner);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> grid_linear_backward_call(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& coords, bool blend,
    bool per_corner, std::array<bool, 2> mask) {
  static auto op = op_handle<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, bool, bool,
      std::array<bool, 2>)>("seqrec_fast::grid_linear_backward");
  return op.call(grad, x, weight, coords, blend, per_corner, mask);
}

class GridLinearFunction : public torch::autograd::Function<GridLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, const at::Tensor& coords, bool blend,
                            bool per_corner) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["has_bias"] = bias.has_value();
    ctx->save_for_backward({x, weight, coords});
    ctx->saved_data["blend"] = blend;
    ctx->saved_data["per_corner"] = per_corner;
    return grid_linear_call(x, weight, bias, coords, blend, per_corner);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const bool need_x = ctx->needs_input_grad(0);
    // Edges exist for tensor inputs only: without a bias there is no edge 2 to ask about.
    const bool need_bias = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    const bool need_params = ctx->needs_input_grad(1) || need_bias;
    auto [grad_x, grad_weight, grad_bias] = grid_linear_backward_call(
        grads[0], saved[0], saved[1], saved[2], ctx->saved_data["blend"].toBool(),
        ctx->saved_data["per_corner"].toBool(), {need_x, need_params});
    return {need_x ? grad_x : at::Tensor(), ctx->needs_input_grad(1) ? grad_weight : at::Tensor(),
            need_bias ? grad_bias : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor grid_linear_autograd(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                const at::Tensor& coords, bool blend, bool per_corner) {
  return GridLinearFunction::apply(x, weight, bias, coords, blend, per_corner);
}

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_FRAGMENT(seqrec_fast, m) {
  m.def("grid_linear(Tensor x, Tensor weight, Tensor? bias, Tensor coords, bool blend, bool per_corner) -> Tensor");
  m.def("grid_linear_backward(Tensor grad, Tensor x, Tensor weight, Tensor coords, bool blend, bool per_corner,"
        " bool[2] output_mask) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(seqrec_fast, Autograd, m) {
  m.impl("grid_linear", &seqrec_fast::grid_linear_autograd);
}
