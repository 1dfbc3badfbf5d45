// CPU kernels of mix: one pass over h in cache-sized blocks, accumulating in float/double.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
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
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      // BLAS's GEMV beats the blocked loop below from a few cache lines up (one core, K 8:
      // 5.3 vs 8.0 us at 32 KiB of h, 2.5 vs 3.2 ms at 25 MiB, even at 100 MiB); the loop stays
      // for tiny inputs and for half/bfloat16, which accumulate in float.
      constexpr int64_t kGemvBytes = int64_t(16) << 10;
      if (K * N * static_cast<int64_t>(sizeof(scalar_t)) > kGemvBytes) {
        const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value);
        at::Tensor out = at::from_blob(y, {1, N}, options);
        at::mm_out(out, at::from_blob(const_cast<acc_t*>(w), {1, K}, options),
                   at::from_blob(const_cast<scalar_t*>(h), {K, N}, options));
        return;
      }
    }
    at::parallel_for(0, N, 4 * kBlock, [&](int64_t begin, int64_t end) {
      acc_t acc[kBlock];
      for (int64_t start = begin; start < end; start += kBlock) {
        const int64_t n = std::min(kBlock, end - start);
        std::fill(acc, acc + n, acc_t(0));
        for (int64_t k = 0; k < K; ++k) {
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
