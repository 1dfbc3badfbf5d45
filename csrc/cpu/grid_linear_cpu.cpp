// grid_linear on CPU tensors: the device-independent GEMM implementation (grid_linear.cpp).
#include <torch/library.h>

#include "../grid_linear.h"

TORCH_LIBRARY_IMPL(seqrec_fast, CPU, m) {
  m.impl("grid_linear", &seqrec_fast::grid_linear_impl::forward);
  m.impl("grid_linear_backward", &seqrec_fast::grid_linear_impl::backward);
}
