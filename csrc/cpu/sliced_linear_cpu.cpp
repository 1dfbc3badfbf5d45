// sliced_linear on CPU tensors: the device-independent grouped-GEMM implementation.
#include <torch/library.h>

#include "../sliced_linear.h"

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  m.impl("sliced_linear", &seqrec_fast::sliced_linear_impl::forward);
  m.impl("sliced_linear_backward", &seqrec_fast::sliced_linear_impl::backward);
  m.impl("sliced_linear_routed", &seqrec_fast::sliced_linear_impl::routed_forward);
  m.impl("sliced_linear_routed_forward", &seqrec_fast::sliced_linear_impl::planned_forward);
  m.impl("sliced_linear_routed_backward", &seqrec_fast::sliced_linear_impl::routed_backward);
}
