// sliced_linear on CUDA tensors: the device-independent grouped cuBLAS GEMMs (sliced_linear.cpp).
#include <torch/library.h>

#include "../sliced_linear.h"

TORCH_LIBRARY_IMPL(seqrec_fast, CUDA, m) {
  m.impl("sliced_linear", &seqrec_fast::sliced_linear_impl::forward);
  m.impl("sliced_linear_backward", &seqrec_fast::sliced_linear_impl::backward);
  m.impl("sliced_linear_routed", &seqrec_fast::sliced_linear_impl::routed_forward);
  m.impl("sliced_linear_routed_forward", &seqrec_fast::sliced_linear_impl::planned_forward);
  m.impl("sliced_linear_routed_backward", &seqrec_fast::sliced_linear_impl::routed_backward);
}
