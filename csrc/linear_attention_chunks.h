// The sums of linear_attention as dense batched GEMMs, shared by every device: the CPU runs them
// on blocks of batch-heads (csrc/cpu/linear_attention_cpu.cpp), CUDA on the whole batch
// (csrc/linear_attention.h), both through ATen's bmm (BLAS, cuBLAS).
//
// Notation of csrc/linear_attention.h. Per chunk c of T steps (causal; tril keeps s <= t):
//   A_c = tril(phi(q)_c phi(k)_c^T),   G_c = tril(g_c v_c^T)
//   out_c     = scale (A_c v_c + phi(q)_c S_c)          S_c = sum_{s before c} phi(k)_s^T v_s
//   dphi(q)_c = scale (G_c phi(k)_c + g_c S_c^T)
//   dphi(k)_c = scale (G_c^T phi(q)_c + v_c R_c^T)      R_c = sum_{u after c} phi(q)_u^T g_u
//   dv_c      = scale (A_c^T g_c + phi(k)_c R_c)
// The backward builds A_c and G_c once for all three gradients. Every product is a GEMM of
// at least T x min(D, Dv) x T, so the work runs at the GEMM rate instead of a step-by-step
// scan's latency-bound rate, in L / T steps of a few GEMMs each.
//
// The functions take [n, L, .] tensors (n batch-heads, contiguous in L and the last dim), in
// the accumulation type, and write their outputs in place.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

namespace seqrec_fast::linear_attention_impl {

// out = scale a b (beta 0: out's old contents, even NaN, are ignored).
inline void set_product(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, double scale) {
  at::baddbmm_out(out, out, a, b, /*beta=*/0, /*alpha=*/scale);
}

// out += scale a b.
inline void add_product(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, double scale) {
  out.baddbmm_(a, b, /*beta=*/1, /*alpha=*/scale);
}

// state = (state or 0) + a b.
inline void accumulate(at::Tensor& state, const at::Tensor& a, const at::Tensor& b) {
  state = state.defined() ? state.baddbmm_(a, b) : at::bmm(a, b);
}

// Chunk length T. Inside chunks the masked products cost about 4 L T D, across them the states
// 4 L D Dv, and every chunk is a few GEMM calls (on the CPU one BLAS call per batch-head, on
// CUDA one launch each), so few chunks win while they are short: on 1 CPU core at B 64, L 50
// runs fastest as one chunk for D from 8 to 128, L 200 in chunks of about 50 for D <= 64 and 100
// for D = 128. Hence at most max(64, D, Dv) steps, spread evenly over the fewest chunks; on a GPU
// that also keeps every GEMM dimension at 64 or more, the tensor cores' tile size.
inline int64_t chunk_length(int64_t L, int64_t D, int64_t Dv) {
  const int64_t longest = std::max<int64_t>({64, D, Dv});
  const int64_t chunks = (L + longest - 1) / longest;
  return (L + chunks - 1) / chunks;
}

struct Chunk {
  int64_t first, steps;
  at::Tensor of(const at::Tensor& t) const { return t.narrow(1, first, steps); }
};

inline std::vector<Chunk> chunks_of(int64_t L, int64_t T) {
  std::vector<Chunk> chunks;
  for (int64_t first = 0; first < L; first += T) chunks.push_back({first, std::min(T, L - first)});
  return chunks;
}

inline void chunked_causal_forward(at::Tensor out, const at::Tensor& pq, const at::Tensor& pk, const at::Tensor& v,
                                   double scale) {
  const auto chunks = chunks_of(pq.size(1), chunk_length(pq.size(1), pq.size(2), v.size(2)));
  at::Tensor state;  // S_c [n, D, Dv]
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    const at::Tensor pq_c = c.of(pq), pk_c = c.of(pk), v_c = c.of(v);
    at::Tensor out_c = c.of(out);
    set_product(out_c, at::bmm(pq_c, pk_c.transpose(1, 2)).tril_(), v_c, scale);
    if (state.defined()) add_product(out_c, pq_c, state, scale);
    if (i + 1 < chunks.size()) accumulate(state, pk_c.transpose(1, 2), v_c);
  }
}

inline void full_forward(at::Tensor out, const at::Tensor& pq, const at::Tensor& pk, const at::Tensor& v,
                         double scale) {
  set_product(out, pq, at::bmm(pk.transpose(1, 2), v), scale);
}

struct FeatureGrads {
  at::Tensor dpq, dpk, dv;
};

inline void chunked_causal_backward(FeatureGrads grads, const at::Tensor& pq, const at::Tensor& pk,
                                    const at::Tensor& v, const at::Tensor& g, double scale) {
  const auto chunks = chunks_of(pq.size(1), chunk_length(pq.size(1), pq.size(2), v.size(2)));
  // Backwards through the chunks: everything inside a chunk, and R_c for dphi(k) and dv.
  at::Tensor later;  // R_c [n, D, Dv]
  for (size_t i = chunks.size(); i-- > 0;) {
    const Chunk& c = chunks[i];
    const at::Tensor pq_c = c.of(pq), pk_c = c.of(pk), v_c = c.of(v), g_c = c.of(g);
    at::Tensor dpq_c = c.of(grads.dpq), dpk_c = c.of(grads.dpk), dv_c = c.of(grads.dv);
    const at::Tensor a = at::bmm(pq_c, pk_c.transpose(1, 2)).tril_();
    const at::Tensor gv = at::bmm(g_c, v_c.transpose(1, 2)).tril_();
    set_product(dpq_c, gv, pk_c, scale);
    set_product(dpk_c, gv.transpose(1, 2), pq_c, scale);
    set_product(dv_c, a.transpose(1, 2), g_c, scale);
    if (later.defined()) {
      add_product(dpk_c, v_c, later.transpose(1, 2), scale);
      add_product(dv_c, pk_c, later, scale);
    }
    if (i > 0) accumulate(later, pq_c.transpose(1, 2), g_c);
  }
  // Forwards through the chunks: S_c for dphi(q).
  at::Tensor earlier;  // S_c [n, D, Dv]
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    accumulate(earlier, chunks[i].of(pk).transpose(1, 2), chunks[i].of(v));
    at::Tensor dpq_next = chunks[i + 1].of(grads.dpq);
    add_product(dpq_next, chunks[i + 1].of(g), earlier.transpose(1, 2), scale);
  }
}

inline void full_backward(FeatureGrads grads, const at::Tensor& pq, const at::Tensor& pk, const at::Tensor& v,
                          const at::Tensor& g, double scale) {
  const at::Tensor s = at::bmm(pk.transpose(1, 2), v);  // [n, D, Dv]
  const at::Tensor r = at::bmm(pq.transpose(1, 2), g);  // [n, D, Dv]
  set_product(grads.dpq, g, s.transpose(1, 2), scale);
  set_product(grads.dpk, v, r.transpose(1, 2), scale);
  set_product(grads.dv, pk, r, scale);
}

}  // namespace seqrec_fast::linear_attention_impl
