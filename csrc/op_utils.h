// Small helpers shared by the operator sources: argument checks with readable messages and the
// dispatcher handles the autograd wrappers call below the Autograd key.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ATen.h>

#include <string>

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

}  // namespace seqrec_fast
