// Declares the `seqrec_fast` operator namespace. Every op file adds its schema with
// TORCH_LIBRARY_FRAGMENT and its kernels with TORCH_LIBRARY_IMPL, so this file only carries
// what describes the build itself.
#include <torch/library.h>

#include <string>

namespace seqrec_fast {

// Which variant of the library was loaded; `seqrec-fast doctor` reports it.
std::string build_info() {
  std::string info = "cpu";
#ifdef SEQREC_FAST_WITH_CUDA
  info += "+cuda";
#endif
#ifdef _OPENMP
  info += ";openmp";
#endif
  return info;
}

}  // namespace seqrec_fast

TORCH_LIBRARY(seqrec_fast, m) {
  m.def("build_info() -> str", &seqrec_fast::build_info);
}
