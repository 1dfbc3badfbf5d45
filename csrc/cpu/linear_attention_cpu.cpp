// CPU kernels of linear_attention: the per-token feature map and its backward (the prefix scans
// are chunked GEMMs, csrc/linear_attention.h).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../linear_attention.h"

namespace seqrec_fast {
namespace {

using linear_attention_impl::kNormEps;

inline bool is_padded(const bool* padded, int64_t row, int64_t H, int64_t L) {
  return padded && padded[(row / (H * L)) * L + row % L];
}

// elu(x) in the accumulation type, through ATen's vectorised kernel (a scalar expm1 per element
// would cost more than the rest of the op).
template <typename scalar_t>
at::Tensor elu_of(const scalar_t* x, int64_t rows, int64_t D) {
  const auto type = c10::CppTypeToScalarType<scalar_t>::value;
  const at::Tensor input = at::from_blob(const_cast<scalar_t*>(x), {rows, D}, at::TensorOptions().dtype(type));
  return at::elu(input.to(at::toOpMathType(type)));
}

struct LinearAttentionCpu {
  // The prefix scans run as chunked BLAS GEMMs: a per-token scan streams the [D, Dv] state
  // through the cache once per token, GEMMs once per chunk.
  static constexpr bool kChunkedScan = true;

  // Chunks of T steps cost 2 L T (P + Q) inside them and 4 (L - T) P Q across them: one chunk
  // (plain masked attention) while L <= max(P, Q), else short chunks that still fill a GEMM.
  static int64_t scan_chunk(int64_t L, int64_t P, int64_t Q) { return L <= std::max(P, Q) ? L : 32; }

  template <typename scalar_t>
  static void phi(const scalar_t* x, const bool* padded, at::opmath_type<scalar_t>* out, int64_t rows,
                  int64_t D, int64_t H, int64_t L) {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor elu = elu_of(x, rows, D);
    const acc_t* e_all = elu.const_data_ptr<acc_t>();
    at::parallel_for(0, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        acc_t* o = out + r * D;
        if (is_padded(padded, r, H, L)) {
          std::fill(o, o + D, acc_t(0));
          continue;
        }
        const acc_t* e = e_all + r * D;
        acc_t sq = 0;
#pragma omp simd reduction(+ : sq)
        for (int64_t d = 0; d < D; ++d) sq += e[d] * e[d];
        const acc_t inv = acc_t(1) / std::max(std::sqrt(sq), acc_t(kNormEps));
        for (int64_t d = 0; d < D; ++d) o[d] = e[d] * inv;
      }
    });
  }

  template <typename scalar_t>
  static void phi_backward(const scalar_t* x, const at::opmath_type<scalar_t>* dphi, const bool* padded,
                           scalar_t* dx, int64_t rows, int64_t D, int64_t H, int64_t L) {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor elu = elu_of(x, rows, D);
    const acc_t* e_all = elu.const_data_ptr<acc_t>();
    at::parallel_for(0, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        scalar_t* o = dx + r * D;
        if (is_padded(padded, r, H, L)) {
          std::fill(o, o + D, scalar_t(0));
          continue;
        }
        const scalar_t* xr = x + r * D;
        const acc_t* e = e_all + r * D;
        const acc_t* gr = dphi + r * D;
        acc_t sq = 0, dot = 0;
#pragma omp simd reduction(+ : sq, dot)
        for (int64_t d = 0; d < D; ++d) {
          sq += e[d] * e[d];
          dot += e[d] * gr[d];
        }
        const acc_t norm = std::sqrt(sq);
        const bool clamped = norm < acc_t(kNormEps);
        const acc_t inv = acc_t(1) / (clamped ? acc_t(kNormEps) : norm);
        const acc_t radial = clamped ? acc_t(0) : dot * inv * inv * inv;
        for (int64_t d = 0; d < D; ++d) {
          const acc_t de = gr[d] * inv - e[d] * radial;  // elu'(x) = 1 for x > 0, else elu(x) + 1
          o[d] = static_cast<scalar_t>(static_cast<acc_t>(xr[d]) > acc_t(0) ? de : de * (e[d] + acc_t(1)));
        }
      }
    });
  }
};

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  using seqrec_fast::LinearAttentionCpu;
  m.impl("linear_attention", &seqrec_fast::linear_attention_impl::forward<LinearAttentionCpu>);
  m.impl("linear_attention_backward", &seqrec_fast::linear_attention_impl::backward<LinearAttentionCpu>);
}
