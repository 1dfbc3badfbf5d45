// CPU kernels of linear_attention: per-token feature maps and the per-(batch, head) prefix scan,
// whose [Q, P] state stays in cache and whose inner loops run along contiguous P.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../linear_attention.h"

namespace seqrec_fast {
namespace {

using linear_attention_impl::kNormEps;

template <typename acc_t>
inline acc_t elu(acc_t x) {
  return x > acc_t(0) ? x : std::expm1(x);
}

inline bool is_padded(const bool* padded, int64_t row, int64_t H, int64_t L) {
  return padded && padded[(row / (H * L)) * L + row % L];
}

struct LinearAttentionCpu {
  template <typename scalar_t>
  static void phi(const scalar_t* x, const bool* padded, at::opmath_type<scalar_t>* out, int64_t rows,
                  int64_t D, int64_t H, int64_t L) {
    using acc_t = at::opmath_type<scalar_t>;
    at::parallel_for(0, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        acc_t* o = out + r * D;
        if (is_padded(padded, r, H, L)) {
          std::fill(o, o + D, acc_t(0));
          continue;
        }
        const scalar_t* xr = x + r * D;
        acc_t sq = 0;
        for (int64_t d = 0; d < D; ++d) {
          const acc_t e = elu(static_cast<acc_t>(xr[d]));
          o[d] = e;
          sq += e * e;
        }
        const acc_t inv = acc_t(1) / std::max(std::sqrt(sq), acc_t(kNormEps));
        for (int64_t d = 0; d < D; ++d) o[d] *= inv;
      }
    });
  }

  template <typename scalar_t>
  static void phi_backward(const scalar_t* x, const at::opmath_type<scalar_t>* dphi, const bool* padded,
                           scalar_t* dx, int64_t rows, int64_t D, int64_t H, int64_t L) {
    using acc_t = at::opmath_type<scalar_t>;
    at::parallel_for(0, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        scalar_t* o = dx + r * D;
        if (is_padded(padded, r, H, L)) {
          std::fill(o, o + D, scalar_t(0));
          continue;
        }
        const scalar_t* xr = x + r * D;
        const acc_t* gr = dphi + r * D;
        acc_t sq = 0, dot = 0;
        for (int64_t d = 0; d < D; ++d) {
          const acc_t e = elu(static_cast<acc_t>(xr[d]));
          sq += e * e;
          dot += e * gr[d];
        }
        const acc_t norm = std::sqrt(sq);
        const bool clamped = norm < acc_t(kNormEps);
        const acc_t inv = acc_t(1) / (clamped ? acc_t(kNormEps) : norm);
        const acc_t radial = clamped ? acc_t(0) : dot * inv * inv * inv;
        for (int64_t d = 0; d < D; ++d) {
          const acc_t xv = static_cast<acc_t>(xr[d]);
          const acc_t e = elu(xv);
          const acc_t de = gr[d] * inv - e * radial;
          o[d] = static_cast<scalar_t>(xv > acc_t(0) ? de : de * (e + acc_t(1)));
        }
      }
    });
  }

  template <typename acc_t>
  static void scan(const acc_t* A, const acc_t* Bm, const acc_t* C, acc_t* out, int64_t BH, int64_t L, int64_t P,
                   int64_t Q, bool reverse, acc_t scale) {
    at::parallel_for(0, BH, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> state(Q * P), row(P);
      for (int64_t bh = begin; bh < end; ++bh) {
        std::fill(state.begin(), state.end(), acc_t(0));
        for (int64_t step = 0; step < L; ++step) {
          const int64_t t = reverse ? L - 1 - step : step;
          const acc_t* __restrict__ a = A + (bh * L + t) * P;
          const acc_t* b = Bm + (bh * L + t) * Q;
          const acc_t* c = C + (bh * L + t) * Q;
          acc_t* __restrict__ o = row.data();
          std::fill(o, o + P, acc_t(0));
          for (int64_t q = 0; q < Q; ++q) {
            acc_t* __restrict__ x = state.data() + q * P;
            const acc_t bq = b[q], cq = c[q];
            for (int64_t p = 0; p < P; ++p) {
              x[p] += bq * a[p];
              o[p] += cq * x[p];
            }
          }
          acc_t* dst = out + (bh * L + t) * P;
          for (int64_t p = 0; p < P; ++p) dst[p] = scale * o[p];
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
