#pragma once
// An attribution method chosen by its name at run time, as the command line's `--method` and
// Python's `method=` choose it: the one place that maps the names eap, eap-ig, clean-corrupted,
// gim, atp-star and exact to their policies (patching.hpp) with their options.
#include <algorithm>
#include <string>
#include <vector>

#include "circuitry/patching.hpp"

namespace circuitry {

/// The names attribute_by_name accepts, in the order the help lists them.
inline const std::vector<std::string>& attribution_method_names() {
  static const std::vector<std::string> names = {Eap::name, EapIg::name, CleanCorrupted::name, Gim::name, AtpStar::name, ExactPatching::name};
  return names;
}

inline void check_attribution_method(const std::string& method) {
  const auto& names = attribution_method_names();
  require(std::find(names.begin(), names.end(), method) != names.end(),
          "unknown method '" + method + "' (choose eap, eap-ig, clean-corrupted, gim, atp-star or exact)");
}

struct AttributionByName {
  std::string method;             // eap | eap-ig | clean-corrupted | gim | atp-star | exact
  std::size_t steps = 5;          // eap-ig's integration steps
  std::size_t memory_budget = 0;  // bytes; 0: the method's default
  Gim gim;                        // gim's modifications (its memory_budget and distribution are replaced)
  AtpStar atp_star;               // atp-star's fixes (likewise)
  /// exact only: the edges to score, progress, checkpoints and resuming (its memory_budget is
  /// replaced by the one above when that is set).
  ExactPatching exact;
  /// The work over processes (core/distribution.hpp): exact's groups of lanes, the gradient
  /// methods' parts. Null: all in this process.
  const Distribution* distribution = nullptr;
};

/// attribute() with the policy the request names.
template <class M, class Metric, class T = typename M::scalar>
Attribution attribute_by_name(const M& model, const PatchingTask<T>& task, const Metric& metric, const AttributionByName& request) {
  check_attribution_method(request.method);
  auto budget = [&](std::size_t default_bytes) { return request.memory_budget ? request.memory_budget : default_bytes; };
  const Distribution* split = request.distribution;
  if (request.method == Eap::name)
    return attribute(model, task, metric, Eap{.memory_budget = budget(kAttributionMemoryBudget), .distribution = split});
  if (request.method == EapIg::name)
    return attribute(model, task, metric, EapIg{.steps = request.steps, .memory_budget = budget(kAttributionMemoryBudget), .distribution = split});
  if (request.method == CleanCorrupted::name)
    return attribute(model, task, metric, CleanCorrupted{.memory_budget = budget(kAttributionMemoryBudget), .distribution = split});
  if (request.method == Gim::name) {
    Gim gim = request.gim;
    gim.memory_budget = budget(kAttributionMemoryBudget), gim.distribution = split;
    return attribute(model, task, metric, gim);
  }
  if (request.method == AtpStar::name) {
    AtpStar atp_star = request.atp_star;
    atp_star.memory_budget = budget(kAttributionMemoryBudget), atp_star.distribution = split;
    return attribute(model, task, metric, atp_star);
  }
  ExactPatching exact = request.exact;
  exact.memory_budget = budget(exact.memory_budget);
  if (split) exact.distribution = split;
  return attribute(model, task, metric, exact);
}

}  // namespace circuitry
