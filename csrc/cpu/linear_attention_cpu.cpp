// CPU linear_attention: a fused feature map, and the causal sums as the chunked GEMMs every device
// shares (csrc/linear_attention_chunks.h), run on blocks of batch-heads in parallel, or for small
// heads as step-by-step scans.
//
// phi's backward reuses the feature norms of its recomputed phi, so that it needs no second
// elu: with p = phi(x), n = ||elu(x)||,
//   d elu = (dphi - p (p . dphi)) / n   (dphi / eps where n < eps: the clamp has no gradient)
//   dx = d elu                          for x > 0, i.e. p > 0
//      = d elu (elu(x) + 1) = d elu (p n + 1) otherwise.
//
// The same kernels also serve the device-independent driver of csrc/linear_attention.h (the one
// CUDA runs) through seqrec_fast::_linear_attention_driver, so that the driver runs on a CPU too.
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

#include "../linear_attention.h"

namespace seqrec_fast {
namespace {

using linear_attention_impl::check_args;
using linear_attention_impl::chunk_length;
using linear_attention_impl::FeatureGrads;
using linear_attention_impl::full_backward;
using linear_attention_impl::full_forward;
using linear_attention_impl::kNormEps;

// ---------------------------------------------------------------------------------------------
// Feature map

// expm1(x) for x <= 0 in float to about 1 ulp, in plain arithmetic that the compiler vectorises:
// libm's expm1 is a scalar call and ATen's vectorised one costs four times an exp. With
// x = k ln2 + r, |r| <= ln2 / 2:  expm1(x) = 2^k expm1(r) + (2^k - 1), expm1(r) by its Taylor
// series to r^8 (the next term is below 1e-9 relative).
inline float expm1_nonpositive(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  x = std::max(x, -20.0f);               // expm1 is -1 in float below about -17.3
  const float shifted = std::fma(x, 1.44269504088896341f, kRound);
  const float k = shifted - kRound;
  float r = std::fma(k, -0.693145751953125f, x);  // ln2 split in two (Cody-Waite)
  r = std::fma(k, -1.428606765330187045e-06f, r);
  float p = 1.0f / 40320.0f;
  p = std::fma(p, r, 1.0f / 5040.0f);
  p = std::fma(p, r, 1.0f / 720.0f);
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  const float expm1_r = std::fma(p * r, r, r);
  int32_t k_bits, shifted_bits, round_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
  std::memcpy(&round_bits, &kRound, sizeof round_bits);
  k_bits = shifted_bits - round_bits;  // k as an integer, in [-29, 0]
  const int32_t two_k_bits = (k_bits + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &two_k_bits, sizeof two_k);
  return std::fma(two_k, expm1_r, two_k - 1.0f);
}

inline double expm1_nonpositive(double x) { return std::expm1(x); }  // float64 is for gradcheck

inline bool is_padded(const bool* padded, int64_t row, int64_t H, int64_t L) {
  return padded && padded[(row / (H * L)) * L + row % L];
}

// fn(row) for every row of D features, in parallel; padded rows get pad(row) instead.
template <class RowFn, class PadFn>
void for_each_row(int64_t rows, int64_t D, const bool* padded, int64_t H, int64_t L, const RowFn& fn,
                  const PadFn& pad) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) is_padded(padded, r, H, L) ? pad(r) : fn(r);
  });
}

// phi = elu(x) / max(||elu(x)||, eps) and norm = ||elu(x)|| per row; both zero at padded rows.
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
void phi_rows(const scalar_t* x, const bool* padded, acc_t* phi, acc_t* norm, int64_t rows, int64_t D, int64_t H,
              int64_t L) {
  for_each_row(
      rows, D, padded, H, L,
      [&](int64_t r) {
        const scalar_t* xr = x + r * D;
        acc_t* p = phi + r * D;
        acc_t sq = 0;
#pragma omp simd reduction(+ : sq)
        for (int64_t d = 0; d < D; ++d) {
          const acc_t xd = static_cast<acc_t>(xr[d]);
          const acc_t e = xd > acc_t(0) ? xd : expm1_nonpositive(xd);
          p[d] = e;
          sq += e * e;
        }
        norm[r] = std::sqrt(sq);
        const acc_t inv = acc_t(1) / std::max(norm[r], acc_t(kNormEps));
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) p[d] *= inv;
      },
      [&](int64_t r) {
        std::fill(phi + r * D, phi + (r + 1) * D, acc_t(0));
        norm[r] = 0;
      });
}

// dx from dphi, through the phi and norm that phi_rows computed (see the top of the file).
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
void phi_rows_backward(const acc_t* phi, const acc_t* norm, const acc_t* dphi, const bool* padded, scalar_t* dx,
                       int64_t rows, int64_t D, int64_t H, int64_t L) {
  for_each_row(
      rows, D, padded, H, L,
      [&](int64_t r) {
        const acc_t* p = phi + r * D;
        const acc_t* g = dphi + r * D;
        scalar_t* o = dx + r * D;
        const acc_t n = norm[r];
        const bool clamped = n < acc_t(kNormEps);
        const acc_t inv = acc_t(1) / (clamped ? acc_t(kNormEps) : n);
        acc_t dot = 0;
        if (!clamped) {
#pragma omp simd reduction(+ : dot)
          for (int64_t d = 0; d < D; ++d) dot += p[d] * g[d];
        }
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) {
          const acc_t de = (g[d] - p[d] * dot) * inv;
          o[d] = static_cast<scalar_t>(p[d] > acc_t(0) ? de : de * std::fma(p[d], n, acc_t(1)));
        }
      },
      [&](int64_t r) { std::fill(dx + r * D, dx + (r + 1) * D, scalar_t(0)); });
}

struct Features {
  at::Tensor pq, pk;  // [B H, L, D] in the accumulation type; pk is zero at padded keys
  at::Tensor nq, nk;  // [B H L] norms of elu(q), elu(k)
  at::Tensor padded;  // contiguous [B, L] bool, or undefined
};

Features features(const at::Tensor& q_in, const at::Tensor& k_in, const std::optional<at::Tensor>& mask) {
  const at::Tensor q = q_in.contiguous(), k = k_in.contiguous();
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3);
  const auto acc_options = q.options().dtype(at::toOpMathType(q.scalar_type()));
  Features f{empty_output({B * H, L, D}, acc_options), empty_output({B * H, L, D}, acc_options),
             at::empty({B * H * L}, acc_options), at::empty({B * H * L}, acc_options),
             mask.has_value() ? mask->contiguous() : at::Tensor()};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "seqrec_fast::linear_attention_phi", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const bool* padded = f.padded.defined() ? f.padded.const_data_ptr<bool>() : nullptr;
    phi_rows<scalar_t>(q.const_data_ptr<scalar_t>(), nullptr, f.pq.mutable_data_ptr<acc_t>(),
                       f.nq.mutable_data_ptr<acc_t>(), B * H * L, D, H, L);
    phi_rows<scalar_t>(k.const_data_ptr<scalar_t>(), padded, f.pk.mutable_data_ptr<acc_t>(),
                       f.nk.mutable_data_ptr<acc_t>(), B * H * L, D, H, L);
  });
  return f;
}

// ---------------------------------------------------------------------------------------------
// Step-by-step scans, for small heads

// P Q of the largest state a step scan keeps.
constexpr int64_t kMaxScanState = 1024;

// out_t = scale X_t c_t with X_t = sum of a_s b_s^T over the steps s <= t (s >= t with
// `reverse`), X [P, Q], for n batch-heads of contiguous [L, P] a and out, [L, Q] b and c. The
// state is kept transposed, [Q, P], so that both updates of a step run along P with b_t[q] and
// c_t[q] broadcast: no reductions. 4 P Q flops a step, against the chunked GEMMs' 4 (T D + D Dv)
// in BLAS calls that small heads make too small to run fast.
template <typename acc_t>
void step_scan(const acc_t* __restrict a, const acc_t* __restrict b, const acc_t* __restrict c,
               acc_t* __restrict out, int64_t n, int64_t L, int64_t P, int64_t Q, bool reverse, acc_t scale) {
  acc_t state[kMaxScanState];
  for (int64_t h = 0; h < n; ++h) {
    std::fill(state, state + P * Q, acc_t(0));
    for (int64_t i = 0; i < L; ++i) {
      const int64_t row = h * L + (reverse ? L - 1 - i : i);
      const acc_t *a_t = a + row * P, *b_t = b + row * Q, *c_t = c + row * Q;
      acc_t* __restrict o = out + row * P;
      std::fill(o, o + P, acc_t(0));
      for (int64_t q = 0; q < Q; ++q) {
        acc_t* __restrict x = state + q * P;
        const acc_t b_q = b_t[q], c_q = scale * c_t[q];
#pragma omp simd
        for (int64_t p = 0; p < P; ++p) {
          x[p] += b_q * a_t[p];
          o[p] += c_q * x[p];
        }
      }
    }
  }
}

// out = step_scan(a, b, c) over the [n, L, .] slices.
void run_step_scan(at::Tensor out, const at::Tensor& a, const at::Tensor& b, const at::Tensor& c, bool reverse,
                   double scale) {
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "seqrec_fast::linear_attention_step_scan", [&] {
    step_scan<scalar_t>(a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), c.const_data_ptr<scalar_t>(),
                        out.mutable_data_ptr<scalar_t>(), a.size(0), a.size(1), a.size(2), b.size(2), reverse,
                        static_cast<scalar_t>(scale));
  });
}

// Whether the causal sums run as step scans rather than chunked GEMMs: a scan carries the D x Dv
// state on the stack, one pass over the sequence, and wins while that state is small (D * Dv <=
// 256), or moderate once the GEMMs would need several chunks; larger heads give the GEMMs enough
// work to be faster (benchmarks/bench_kernels.py --ops linear_attention measures the crossover).
bool small_heads(int64_t L, int64_t D, int64_t Dv) {
  return D * Dv <= 256 || (D * Dv <= kMaxScanState && L > chunk_length(L, D, Dv));
}

// The products below run on a slice of the batch-heads ([n, L, .] contiguous views) and write
// their outputs in place.
void causal_forward(at::Tensor out, const at::Tensor& pq, const at::Tensor& pk, const at::Tensor& v, double scale) {
  if (small_heads(pq.size(1), pq.size(2), v.size(2))) return run_step_scan(out, v, pk, pq, /*reverse=*/false, scale);
  linear_attention_impl::chunked_causal_forward(out, pq, pk, v, scale);
}

void causal_backward(FeatureGrads grads, const at::Tensor& pq, const at::Tensor& pk, const at::Tensor& v,
                     const at::Tensor& g, double scale) {
  if (small_heads(pq.size(1), pq.size(2), v.size(2))) {  // the sums of csrc/linear_attention.h, step by step
    run_step_scan(grads.dpq, pk, v, g, /*reverse=*/false, scale);
    run_step_scan(grads.dpk, pq, g, v, /*reverse=*/true, scale);
    run_step_scan(grads.dv, g, pq, pk, /*reverse=*/true, scale);
    return;
  }
  linear_attention_impl::chunked_causal_backward(grads, pq, pk, v, g, scale);
}

// Batch-heads per block: one block's inputs, outputs, score chunks and states (elements of
// element_size bytes) fit in about 2 MiB, a core's L2 on current server CPUs, so a block's
// passes over its data hit the cache rather than memory.
int64_t batch_block(int64_t L, int64_t D, int64_t Dv, int64_t element_size) {
  constexpr int64_t kBlockBytes = int64_t(2) << 20;
  const int64_t T = chunk_length(L, D, Dv);
  const int64_t per_entry = (4 * L * (D + Dv) + 2 * T * T + 2 * D * Dv) * element_size;
  return std::max<int64_t>(1, kBlockBytes / per_entry);
}

// fn(slice) for blocks of batch_block batch-heads, spread over the threads, where slice(t) narrows a
// [BH, ...] tensor to the block: ATen's CPU bmm walks its batch serially, so the blocks are what
// runs in parallel. Each runs under the caller's dispatch state (below autograd).
template <class Fn>
void parallel_over_batch(const at::Tensor& pq, const at::Tensor& v, const Fn& fn) {
  const int64_t BH = pq.size(0);
  const int64_t block = batch_block(pq.size(1), pq.size(2), v.size(2), v.element_size());
  const at::ThreadLocalState caller;
  const int64_t threads = at::get_num_threads();
  at::parallel_for(0, BH, (BH + threads - 1) / threads, [&](int64_t begin, int64_t end) {
    const at::ThreadLocalStateGuard guard(caller);
    for (int64_t first = begin; first < end; first += block) {
      const int64_t count = std::min(block, end - first);
      fn([=](const at::Tensor& t) { return t.narrow(0, first, count); });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The op

// t [B, H, L, Dv] as contiguous [B H, L, Dv] in the accumulation type.
at::Tensor flat(const at::Tensor& t, at::ScalarType acc_type) {
  return t.reshape({-1, t.size(2), t.size(3)}).to(acc_type).contiguous();
}

at::Tensor forward_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const std::optional<at::Tensor>& mask, bool causal, double scale) {
  check_args(q, k, v, mask);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), Dv = v.size(3);
  if (q.numel() == 0 || Dv == 0) return at::zeros({B, H, L, Dv}, v.options());
  const Features f = features(q, k, mask);
  const at::Tensor vv = flat(v, f.pq.scalar_type());
  const at::Tensor out = empty_output({B * H, L, Dv}, vv.options());
  parallel_over_batch(f.pq, vv, [&](const auto& slice) {
    (causal ? causal_forward : full_forward)(slice(out), slice(f.pq), slice(f.pk), slice(vv), scale);
  });
  return out.view({B, H, L, Dv}).to(v.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad, const at::Tensor& q,
                                                            const at::Tensor& k, const at::Tensor& v,
                                                            const std::optional<at::Tensor>& mask, bool causal,
                                                            double scale) {
  check_args(q, k, v, mask);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), Dv = v.size(3);
  if (q.numel() == 0 || Dv == 0) return {at::zeros_like(q), at::zeros_like(k), at::zeros_like(v)};
  const Features f = features(q, k, mask);
  const auto acc_type = f.pq.scalar_type();
  const at::Tensor vv = flat(v, acc_type), g = flat(grad, acc_type);
  const FeatureGrads grads{empty_output_like(f.pq), empty_output_like(f.pk), empty_output_like(vv)};
  parallel_over_batch(f.pq, vv, [&](const auto& slice) {
    (causal ? causal_backward : full_backward)({slice(grads.dpq), slice(grads.dpk), slice(grads.dv)}, slice(f.pq),
                                               slice(f.pk), slice(vv), slice(g), scale);
  });
  at::Tensor dq = empty_output(q.sizes(), q.options());
  at::Tensor dk = empty_output(k.sizes(), k.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "seqrec_fast::linear_attention_phi_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const bool* padded = f.padded.defined() ? f.padded.const_data_ptr<bool>() : nullptr;
    phi_rows_backward<scalar_t>(f.pq.const_data_ptr<acc_t>(), f.nq.const_data_ptr<acc_t>(),
                                grads.dpq.const_data_ptr<acc_t>(), nullptr, dq.mutable_data_ptr<scalar_t>(),
                                B * H * L, D, H, L);
    phi_rows_backward<scalar_t>(f.pk.const_data_ptr<acc_t>(), f.nk.const_data_ptr<acc_t>(),
                                grads.dpk.const_data_ptr<acc_t>(), padded, dk.mutable_data_ptr<scalar_t>(),
                                B * H * L, D, H, L);
  });
  return {dq, dk, grads.dv.view({B, H, L, Dv}).to(v.scalar_type())};
}

// ---------------------------------------------------------------------------------------------
// The device-independent driver of csrc/linear_attention.h (the one CUDA runs) over these
// kernels: seqrec_fast::_linear_attention_driver, so that every line of it runs on a CPU too.

struct DriverKernels {
  template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
  static void phi(const scalar_t* x, const bool* padded, acc_t* out, int64_t rows, int64_t D, int64_t H, int64_t L) {
    std::vector<acc_t> norm(rows);
    phi_rows<scalar_t>(x, padded, out, norm.data(), rows, D, H, L);
  }

  template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
  static void phi_backward(const scalar_t* x, const acc_t* dphi, const bool* padded, scalar_t* dx, int64_t rows,
                           int64_t D, int64_t H, int64_t L) {
    std::vector<acc_t> phi(rows * D), norm(rows);
    phi_rows<scalar_t>(x, padded, phi.data(), norm.data(), rows, D, H, L);
    phi_rows_backward<scalar_t>(phi.data(), norm.data(), dphi, padded, dx, rows, D, H, L);
  }
};

}  // namespace
}  // namespace seqrec_fast

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  m.impl("linear_attention", &seqrec_fast::forward_cpu);
  m.impl("linear_attention_backward", &seqrec_fast::backward_cpu);
  m.impl("_linear_attention_driver", &seqrec_fast::linear_attention_impl::forward<seqrec_fast::DriverKernels>);
  m.impl("_linear_attention_driver_backward",
         &seqrec_fast::linear_attention_impl::backward<seqrec_fast::DriverKernels>);
}
