// Registers the CUDA build's self-description. Only compiled in the CUDA variant.
#include <torch/library.h>

#include <string>

namespace seqrec_fast {
std::string cuda_runtime_info();
}

TORCH_LIBRARY_FRAGMENT(seqrec_fast, m) {
  m.def("cuda_runtime_info() -> str", &seqrec_fast::cuda_runtime_info);
}
