// grid_linear on CUDA tensors: the device-independent cuBLAS implementation (grid_linear.cpp);
// the GEMMs dominate, so there is no custom kernel. Keep coords on the host: a CUDA coords
// tensor is copied back (a synchronisation) on every call.
#include <torch/library.h>

#include "../grid_linear.h"

TORCH_LIBRARY_IMPL(seqrec_fast, CUDA, m) {
  m.impl("grid_linear", &seqrec_fast::grid_linear_impl::forward);
  m.impl("grid_linear_backward", &seqrec_fast::grid_linear_impl::backward);
}
