// sliced_linear: row n computes x[n, :in_n] W[:out_n, :in_n]^T + b[:out_n], zero beyond out_n.
// Rows are grouped by route (in_n, out_n) and each group runs one GEMM on the weight slice it
// uses, reading the rows in place through strided views, so the work is the FLOPs needed. The
// implementation is ATen GEMMs plus one gather and one scatter, and serves CPU and CUDA tensors.
// Per-row routes cost one device-to-host copy per forward on CUDA (the sorted routes and the
// widths' bounds, from which the host plans the groups) and none in the backward, which reuses
// the forward's plan: the row order (on the device) and the groups (a CPU tensor of rows
// start, count, in, out).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

namespace seqrec_fast::sliced_linear_impl {

at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                   int64_t in_features, int64_t out_features);

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x,
                                                        const at::Tensor& weight, int64_t in_features,
                                                        int64_t out_features, std::array<bool, 2> output_mask);

at::Tensor routed_forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                          const at::Tensor& in_features, const at::Tensor& out_features);

// y, and the plan the backward reuses: the row order and the groups.
std::tuple<at::Tensor, at::Tensor, at::Tensor> planned_forward(const at::Tensor& x, const at::Tensor& weight,
                                                               const std::optional<at::Tensor>& bias,
                                                               const at::Tensor& in_features,
                                                               const at::Tensor& out_features);

std::tuple<at::Tensor, at::Tensor, at::Tensor> routed_backward(const at::Tensor& grad, const at::Tensor& x,
                                                               const at::Tensor& weight, const at::Tensor& order,
                                                               const at::Tensor& groups,
                                                               std::array<bool, 2> output_mask);

}  // namespace seqrec_fast::sliced_linear_impl
