#pragma once
// Thread control: OpenMP for the elementwise and per-(batch, head) loops and for GEMM blocks
// (core/gemm.hpp). Eigen itself stays single-threaded: its threading would make results
// depend on the thread count.
#include <cstddef>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace circuitry {

/// Sets the number of threads for kernels and GEMMs (0 leaves the default: all cores).
inline void set_num_threads(int n) {
  if (n <= 0) return;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace circuitry
