#pragma once
// Vector units the CPU has against those this build was compiled for. Eigen picks its kernels
// at compile time (SSE2 without flags, AVX2 or AVX-512 with -march=native), so a build without
// -march runs GEMMs about 3x slower on a machine with AVX-512 and nothing else says so; the CLI
// prints the line this returns once at startup.
#include <optional>
#include <string>

namespace circuitry {

/// One warning line when the CPU supports AVX2 or AVX-512F but the build does not use it, naming
/// how to rebuild; nothing otherwise (and nothing off x86 or under other compilers).
inline std::optional<std::string> unused_vector_units_warning() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  std::string missing;
#if !defined(__AVX512F__)
  if (__builtin_cpu_supports("avx512f")) missing = "AVX-512";
#endif
#if !defined(__AVX2__)
  if (missing.empty() && __builtin_cpu_supports("avx2")) missing = "AVX2";
#endif
  if (!missing.empty())
    return "circuitry: warning: this CPU has " + missing +
           " but this build does not use it, so its kernels run slower (about 3x with no -march flag at all); rebuild with the release preset "
           "(cmake --preset release) or -DCIRCUITRY_NATIVE=ON";
#endif
  return std::nullopt;
}

}  // namespace circuitry
