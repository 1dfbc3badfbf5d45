// Reports the CUDA runtime the operators were linked against and the architectures compiled
// in. Lives in a .cu file so that a CUDA build always exercises nvcc, the device linker and
// libcudart, even before a kernel is added.
#include <cuda_runtime_api.h>

#include <string>

namespace seqrec_fast {

std::string cuda_runtime_info() {
  int runtime = 0;
  int devices = 0;
  std::string info;
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) {
    info += "runtime=" + std::to_string(runtime);
  } else {
    info += "runtime=unavailable";
  }
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    cudaGetLastError();  // a machine without a driver is fine: clear the sticky error
    devices = 0;
  }
  info += ";devices=" + std::to_string(devices);
  info += ";compiled=" + std::to_string(CUDART_VERSION);
  return info;
}

}  // namespace seqrec_fast
