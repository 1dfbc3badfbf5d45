// Small helpers shared by the operator sources: argument checks with readable messages and the
// dispatcher handles the autograd wrappers call below the Autograd key.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace seqrec_fast {

// Floating tensors only: the kernels accumulate in float (or double for double inputs).
inline void check_floating(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "seqrec_fast::", op, ": ", name,
              " must be a floating tensor, got ", t.scalar_type());
}

inline void check_same_device_dtype(const at::Tensor& a, const at::Tensor& b, const char* op,
                                    const char* name_a, const char* name_b) {
  TORCH_CHECK(a.device() == b.device(), "seqrec_fast::", op, ": ", name_a, " and ", name_b,
              " must be on the same device, got ", a.device(), " and ", b.device());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "seqrec_fast::", op, ": ", name_a, " and ",
              name_b, " must have the same dtype, got ", a.scalar_type(), " and ",
              b.scalar_type());
}

// The typed handle of a registered op, looked up once per call site.
template <typename Signature>
c10::TypedOperatorHandle<Signature> op_handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// at::empty for an output the kernel is about to write. glibc maps every block over 32 MB afresh,
// so a large CPU output is faulted in page by page on its first write, and in 4 KB pages that
// dominates a memory-bound kernel; 2 MB transparent huge pages (THP "madvise" mode, the common
// default) take a 512th of the faults. The
// advice covers the 2 MB-aligned interior of a CPU buffer of at least 4 MB; it is a hint, and
// where THP is off or madvise fails nothing changes. (torch does this for every allocation when
// THP_MEM_ALLOC_ENABLE=1 is set before it starts.)
inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#ifdef __linux__
  constexpr uintptr_t kHugePage = uintptr_t(1) << 21;
  const uintptr_t bytes = t.nbytes();
  if (t.is_cpu() && bytes >= 2 * kHugePage) {
    const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
    const uintptr_t last = (begin + bytes) & ~(kHugePage - 1);
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return t;
}

inline at::Tensor empty_output_like(const at::Tensor& t) { return empty_output(t.sizes(), t.options()); }

}  // namespace seqrec_fast
