// CPU kernels of mix: one pass over h in cache-sized blocks, accumulating in float/double.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../mix.h"

namespace seqrec_fast {
namespace {

constexpr int64_t kBlock = 1024;  // elements per block: the accumulators stay in L1

struct MixCpu {
  template <typename scalar_t>
  static void forward(const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* y, int64_t K,
                      int64_t N) {
    using acc_t = at::opmath_type<scalar_t>;
    // One pass over h in L1-sized blocks. Candidates are added four at a time, so the block's
    // accumulators are loaded and stored once per four streams of h instead of once per stream.
    // On one AMD EPYC core (K 8, float32) this beat the BLAS GEMV it replaces from 26 MB of h
    // up (0.62-0.69 vs 0.95 ms at B64 L50 d256, 3.3-3.6 vs 4.3 ms at B64 L200 d256) and trailed
    // it by up to 15% at 6.5-13 MB (0.091-0.097 vs 0.084 ms at B64 L50 d64);
    // benchmarks/results/kernels_cpu_amd_epyc.json, the GEMV run not kept.
    at::parallel_for(0, N, 4 * kBlock, [&](int64_t begin, int64_t end) {
      acc_t acc[kBlock];
      for (int64_t start = begin; start < end; start += kBlock) {
        const int64_t n = std::min(kBlock, end - start);
        std::fill(acc, acc + n, acc_t(0));
        int64_t k = 0;
        for (; k + 4 <= K; k += 4) {
          const scalar_t *h0 = h + k * N + start, *h1 = h0 + N, *h2 = h1 + N, *h3 = h2 + N;
          const acc_t w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3];
          for (int64_t i = 0; i < n; ++i) {
            acc[i] += w0 * static_cast<acc_t>(h0[i]) + w1 * static_cast<acc_t>(h1[i]) +
                      w2 * static_cast<acc_t>(h2[i]) + w3 * static_cast<acc_t>(h3[i]);
          }
        }
        for (; k < K; ++k) {
          const scalar_t* hk = h + k * N + start;
          const acc_t wk = w[k];
          for (int64_t i = 0; i < n; ++i) acc[i] += wk * static_cast<acc_t>(hk[i]);
        }
        for (int64_t i = 0; i < n; ++i) y[start + i] = static_cast<scalar_t>(acc[i]);
      }
    });
  }

  template <typename scalar_t>
  static void backward(const scalar_t* g, const scalar_t* h, const at::opmath_type<scalar_t>* w,
                       scalar_t* grad_h, at::opmath_type<scalar_t>* grad_w, int64_t K, int64_t N) {
    using acc_t = at::opmath_type<scalar_t>;
    // Tasks are (candidate k, block of N): each streams one stretch of h[k] and grad_h[k]. The
    // fixed blocks (not per-thread chunks) keep grad_w's summation order, and so its value,
    // independent of the thread count.
    const int64_t blocks = (N + kBlock - 1) / kBlock;
    std::vector<acc_t> partial(grad_w ? K * blocks : 0);
    at::parallel_for(0, K * blocks, 4, [&](int64_t first, int64_t last) {
      for (int64_t task = first; task < last; ++task) {
        const int64_t k = task / blocks, start = (task % blocks) * kBlock, n = std::min(kBlock, N - start);
        const scalar_t* gb = g + start;
        const scalar_t* hk = h + k * N + start;
        if (grad_h) {
          scalar_t* out = grad_h + k * N + start;
          const acc_t wk = w[k];
          for (int64_t i = 0; i < n; ++i) out[i] = static_cast<scalar_t>(wk * static_cast<acc_t>(gb[i]));
        }
        if (grad_w) {
          acc_t dot = 0;
#pragma omp simd reduction(+ : dot)  // a vector of partial sums, not one serial chain
          for (int64_t i = 0; i < n; ++i) dot += static_cast<acc_t>(gb[i]) * static_cast<acc_t>(hk[i]);
          partial[task] = dot;
        }
      }
    });
    if (grad_w) {
      for (int64_t k = 0; k < K; ++k) {
        acc_t sum = 0;
        for (int64_t b = 0; b < blocks; ++b) sum += partial[k * blocks + b];
        grad_w[k] = sum;
      }
    }
  }
};

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  m.impl("mix", &seqrec_fast::mix_impl::forward<seqrec_fast::MixCpu>);
  m.impl("mix_backward", &seqrec_fast::mix_impl::backward<seqrec_fast::MixCpu>);
}
