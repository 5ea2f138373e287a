#pragma once
// Thread control: OpenMP for the elementwise and per-(batch, head) loops, Eigen's own
// OpenMP for GEMMs. Inside an OpenMP region Eigen runs single-threaded by itself.
#include <cstddef>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <Eigen/Core>

namespace circuitry {

/// Sets the number of threads for kernels and GEMMs (0 leaves the default: all cores).
inline void set_num_threads(int n) {
  if (n <= 0) return;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace circuitry
