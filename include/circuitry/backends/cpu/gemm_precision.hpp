#pragma once
// The precision of float32 GEMMs: native (float32 throughout), or bfloat16 inputs with float32
// accumulation on the CPU's matrix units (backends/cpu/onednn.hpp; `--dtype bfloat16`). Only the
// GEMMs change; norms, softmax, activations, residual sums and scores stay float32, and float64
// runs ignore the setting. A process-wide switch, set between runs.
#include <atomic>
#include <cstddef>
#include <string>

#include "circuitry/core/error.hpp"
#if defined(CIRCUITRY_WITH_ONEDNN)
#include "circuitry/backends/cpu/onednn.hpp"
#endif

namespace circuitry {

enum class GemmPrecision { native, bfloat16 };

/// Products with fewer multiply-adds stay float32 under bfloat16 by default: the per-(example,
/// head) attention products and other small ones, where a oneDNN call costs more than it saves.
inline constexpr std::size_t kBfloat16DefaultMinWork = std::size_t{1} << 18;

namespace detail {
inline std::atomic<GemmPrecision>& gemm_precision_setting() {
  static std::atomic<GemmPrecision> p{GemmPrecision::native};
  return p;
}
inline std::atomic<std::size_t>& bfloat16_min_work_setting() {
  static std::atomic<std::size_t> w{kBfloat16DefaultMinWork};
  return w;
}
}  // namespace detail

/// Empty when bfloat16 GEMMs can run here; else why not, and what to do about it.
inline std::string bfloat16_unavailable_reason() {
#if defined(CIRCUITRY_WITH_ONEDNN)
  return backends::onednn::bfloat16_unavailable_reason();
#else
  return "this build has no oneDNN; install it (apt-get install libdnnl-dev) and reconfigure (cmake --preset release)";
#endif
}

inline GemmPrecision gemm_precision() { return detail::gemm_precision_setting().load(std::memory_order_relaxed); }

/// The smallest product (M N K multiply-adds) that runs in bfloat16 under GemmPrecision::bfloat16.
inline std::size_t bfloat16_min_work() { return detail::bfloat16_min_work_setting().load(std::memory_order_relaxed); }

/// Switches float32 GEMMs to `p` (bfloat16: for products of at least min_work multiply-adds; 0
/// puts every product in bfloat16); bfloat16 where it cannot run is an Error saying why.
inline void set_gemm_precision(GemmPrecision p, std::size_t min_work = kBfloat16DefaultMinWork) {
  if (p == GemmPrecision::bfloat16) {
    const std::string why = bfloat16_unavailable_reason();
    require(why.empty(), "bfloat16 GEMMs are not available: " + why);
  }
  detail::gemm_precision_setting().store(p, std::memory_order_relaxed);
  detail::bfloat16_min_work_setting().store(min_work, std::memory_order_relaxed);
}

/// Sets the precision for a scope and restores the previous one after it.
class GemmPrecisionScope {
 public:
  explicit GemmPrecisionScope(GemmPrecision p, std::size_t min_work = kBfloat16DefaultMinWork)
      : previous_(gemm_precision()), previous_min_work_(bfloat16_min_work()) {
    set_gemm_precision(p, min_work);
  }
  ~GemmPrecisionScope() {
    detail::gemm_precision_setting().store(previous_, std::memory_order_relaxed);
    detail::bfloat16_min_work_setting().store(previous_min_work_, std::memory_order_relaxed);
  }
  GemmPrecisionScope(const GemmPrecisionScope&) = delete;
  GemmPrecisionScope& operator=(const GemmPrecisionScope&) = delete;

 private:
  GemmPrecision previous_;
  std::size_t previous_min_work_;
};

}  // namespace circuitry
