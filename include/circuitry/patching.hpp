#pragma once
// Patching policies: activation patching (edges, nodes, circuits; resample, zero and mean
// ablation), attribution patching (eap, eap-ig, clean-corrupted, gim, atp-star), exact edge
// effects and path patching, behind one entry point:
//   attribute(model, task, metric, Eap{})   attribute(model, task, metric, ExactPatching{})
#include "circuitry/patching/atp_star.hpp"
#include "circuitry/patching/attribution.hpp"
#include "circuitry/patching/edge_patching.hpp"
#include "circuitry/patching/exact.hpp"
#include "circuitry/patching/gim.hpp"
#include "circuitry/patching/path_patching.hpp"

namespace circuitry {

template <class P>
concept AttributionMethod = GradientPolicy<P> || std::same_as<P, ExactPatching> || std::same_as<P, AtpStar>;

/// Scores every edge of the model's graph with the given method.
template <class Policy, class M, class Metric, class T = typename M::scalar>
Attribution attribute(const M& model, const PatchingTask<T>& task, const Metric& metric, const Policy& policy = {}) {
  static_assert(AttributionMethod<Policy>,
                "attribute(): the policy must be Eap, EapIg, CleanCorrupted, Gim, AtpStar, ExactPatching or a type with a static `name` "
                "and `std::vector<GradientRun> gradient_runs() const`");
  if constexpr (std::same_as<Policy, ExactPatching>) return attribute_exact(model, task, metric, policy);
  else if constexpr (std::same_as<Policy, AtpStar>) return attribute_atp_star(model, task, metric, policy);
  else return attribute_gradients(model, task, metric, policy);
}

}  // namespace circuitry
