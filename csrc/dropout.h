// dropout(x, p, seed): inverted dropout with the mask drawn from csrc/dropout_bits.h. The
// device-independent half (checks, allocation, dtype dispatch); each device supplies `Kernels`:
//   apply<scalar_t>(x, y, N, seed, threshold, scale)    y[i] = keep(i) ? x[i] * scale : 0
// with scale in the accumulation type (float, or double for double tensors).
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "dropout_bits.h"
#include "op_utils.h"

namespace seqrec_fast::dropout_impl {

inline uint64_t read_seed(const at::Tensor& seed) {
  TORCH_CHECK(seed.numel() == 1 && seed.scalar_type() == at::kLong && seed.device().is_cpu(),
              "seqrec_fast::dropout: seed must be a one-element int64 CPU tensor, got ", seed.scalar_type(),
              " of shape ", seed.sizes(), " on ", seed.device());
  return static_cast<uint64_t>(seed.item<int64_t>());
}

template <class Kernels>
at::Tensor forward(const at::Tensor& x_in, double p, const at::Tensor& seed_tensor) {
  check_floating(x_in, "dropout", "x");
  TORCH_CHECK(p >= 0.0 && p < 1.0, "seqrec_fast::dropout: p must be in [0, 1), got ", p);
  const uint64_t seed = read_seed(seed_tensor);
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = empty_output_like(x);
  const int64_t N = x.numel();
  if (N == 0) return y;
  const uint32_t threshold = dropout_bits::threshold(1.0 - p);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "seqrec_fast::dropout", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Kernels::template apply<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), N, seed,
                                      threshold, static_cast<acc_t>(1.0 / (1.0 - p)));
  });
  return y;
}

}  // namespace seqrec_fast::dropout_impl
