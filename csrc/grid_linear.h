// grid_linear: the linear maps of the 4 ADT grid candidates around continuous coords, run as
// GEMMs on the selected weight slices (ATen's BLAS/cuBLAS; a GEMM dominates, so the fusion is
// in what is not done: blended outputs never materialise the 4 candidate outputs, a shared input
// blends the 4 weight matrices first and runs 1 GEMM instead of 4, and zero-weight corners are
// skipped). The same code serves CPU and CUDA tensors.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

namespace seqrec_fast::grid_linear_impl {

inline constexpr int64_t kCorners = 4;

struct Corners {
  std::array<int64_t, kCorners> index;  // flat grid indices i * M + j
  std::array<double, kCorners> weight;  // bilinear weights, summing to 1
};

// The 4 candidates around coords (2 values in [0, 1], read on the host) in the order
// (i0, j0), (i0, j0+1), (i0+1, j0), (i0+1, j0+1); candidate (i, j) sits at (i/(M-1), j/(M-1)).
Corners grid_corners(const at::Tensor& coords, int64_t grid_size);

at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                   const at::Tensor& coords, bool blend, bool per_corner);

// output_mask: [grad of x, grads of weight and bias]; a gradient not asked for comes back empty.
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x,
                                                        const at::Tensor& weight, const at::Tensor& coords,
                                                        bool blend, bool per_corner,
                                                        std::array<bool, 2> output_mask);

}  // namespace seqrec_fast::grid_linear_impl
