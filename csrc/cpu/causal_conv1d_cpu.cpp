// CPU passes of causal_conv1d (the GEMMs are ATen's): row-parallel, contiguous inner loops.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../causal_conv1d.h"

namespace seqrec_fast {
namespace {

struct CausalConv1dCpu {
  // Z tiles of about 1 MiB stay in L2 between the GEMM and the pass; at least 4 halos, so the
  // rows computed twice cost at most a quarter more GEMM.
  static int64_t row_tile(int64_t, int64_t width, int64_t halo) {
    constexpr int64_t kTileElements = 1 << 18;
    return std::max({int64_t(64), kTileElements / std::max<int64_t>(1, width), 4 * halo});
  }

  // y[r] = bias + sum_jj Z[r - s_jj - z_first, jj] for the rows r = b L + t with t >= s_jj.
  template <typename scalar_t>
  static void shift_add(const scalar_t* z, const scalar_t* bias, scalar_t* y, int64_t row_begin, int64_t row_end,
                        int64_t z_first, int64_t L, int64_t C_out, int64_t J, int64_t dilation) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t width = J * C_out;
    at::parallel_for(row_begin, row_end, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, width)), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(C_out);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t t = r % L;
        for (int64_t o = 0; o < C_out; ++o) acc[o] = bias ? static_cast<acc_t>(bias[o]) : acc_t(0);
        for (int64_t jj = 0; jj < J; ++jj) {
          const int64_t shift = (J - 1 - jj) * dilation;
          if (t < shift) continue;
          const scalar_t* src = z + (r - shift - z_first) * width + jj * C_out;
          for (int64_t o = 0; o < C_out; ++o) acc[o] += static_cast<acc_t>(src[o]);
        }
        scalar_t* dst = y + r * C_out;
        for (int64_t o = 0; o < C_out; ++o) dst[o] = static_cast<scalar_t>(acc[o]);
      }
    });
  }

  // dZ[r, jj] = g[r + s_jj] when t + s_jj < L, else 0.
  template <typename scalar_t>
  static void shift_gather(const scalar_t* g, scalar_t* dz, int64_t B, int64_t L, int64_t C_out,
                           int64_t J, int64_t dilation) {
    const int64_t width = J * C_out;
    at::parallel_for(0, B * L, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, width)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t t = r % L;
        for (int64_t jj = 0; jj < J; ++jj) {
          const int64_t shift = (J - 1 - jj) * dilation;
          scalar_t* dst = dz + r * width + jj * C_out;
          if (t + shift < L) {
            std::memcpy(dst, g + (r + shift) * C_out, C_out * sizeof(scalar_t));
          } else {
            std::fill(dst, dst + C_out, scalar_t(0));
          }
        }
      }
    });
  }
};

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  using seqrec_fast::CausalConv1dCpu;
  m.impl("causal_conv1d", &seqrec_fast::causal_conv1d_impl::forward<CausalConv1dCpu>);
  m.impl("causal_conv1d_backward", &seqrec_fast::causal_conv1d_impl::backward<CausalConv1dCpu>);
}
