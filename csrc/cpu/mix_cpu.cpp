// CPU kernels of mix: one pass over h in cache-sized blocks, accumulating in float/double.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../mix.h"

namespace seqrec_fast {
namespace {

constexpr int64_t kBlock = 1024;  // elements per block: the accumulators stay in L1

// out[i] = (out[i] +) sum over the G candidates of w[k] h[k N + i], for i < n: G streams of h
// read side by side in one pass, summed in registers.
template <int G, bool kAccumulate, typename scalar_t, typename acc_t, typename out_t>
inline void add_streams(const scalar_t* h, int64_t N, const acc_t* w, out_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    acc_t sum = kAccumulate ? static_cast<acc_t>(out[i]) : acc_t(0);
#pragma GCC unroll 8
    for (int k = 0; k < G; ++k) sum += w[k] * static_cast<acc_t>(h[k * N + i]);
    out[i] = static_cast<out_t>(sum);
  }
}

constexpr int kStreams = 8;  // candidates per pass; AdaRec's and EASRec's K is 8 at most

template <bool kAccumulate, typename scalar_t, typename acc_t, typename out_t>
void add_group(int64_t G, const scalar_t* h, int64_t N, const acc_t* w, out_t* out, int64_t n) {
  switch (G) {
    case 1: return add_streams<1, kAccumulate>(h, N, w, out, n);
    case 2: return add_streams<2, kAccumulate>(h, N, w, out, n);
    case 3: return add_streams<3, kAccumulate>(h, N, w, out, n);
    case 4: return add_streams<4, kAccumulate>(h, N, w, out, n);
    case 5: return add_streams<5, kAccumulate>(h, N, w, out, n);
    case 6: return add_streams<6, kAccumulate>(h, N, w, out, n);
    case 7: return add_streams<7, kAccumulate>(h, N, w, out, n);
    default: return add_streams<kStreams, kAccumulate>(h, N, w, out, n);
  }
}

struct MixCpu {
  template <typename scalar_t>
  static void forward(const scalar_t* h, const at::opmath_type<scalar_t>* w, scalar_t* y, int64_t K,
                      int64_t N) {
    using acc_t = at::opmath_type<scalar_t>;
    // Up to 8 candidates are read in one pass and summed in registers, so y is written once
    // and nothing else is stored (the kernel is memory-bound: every extra pass over y costs as
    // much as a candidate); more candidates add 8 at a time into an L1 block.
    at::parallel_for(0, N, 4 * kBlock, [&](int64_t begin, int64_t end) {
      acc_t acc[kBlock];
      for (int64_t start = begin; start < end; start += kBlock) {
        const int64_t n = std::min(kBlock, end - start);
        if (K <= kStreams) {
          add_group<false>(K, h + start, N, w, y + start, n);
          continue;
        }
        add_group<false>(kStreams, h + start, N, w, acc, n);
        for (int64_t k = kStreams; k < K; k += kStreams) {
          add_group<true>(std::min<int64_t>(kStreams, K - k), h + k * N + start, N, w + k, acc, n);
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
