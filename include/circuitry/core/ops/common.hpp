#pragma once
// Shared helpers for the op files (one op per file, as in ggml): vector maps and the
// threshold under which a loop is not worth waking another thread.
#include <algorithm>
#include <cstddef>
#include <type_traits>

#include <Eigen/Core>

#include "circuitry/core/parallel.hpp"
#include "circuitry/core/tape.hpp"

namespace circuitry::ops {

/// Multiply-adds (or element updates) a thread must get for the hand-off to pay. Measured by
/// bench_pool on the 2-core AVX-512 machine this was tuned on: a hand-off costs 0.8 us to a
/// spinning thread and 3 us to a sleeping one, but an elementwise loop (layer norm, GELU, a
/// residual sum) only gets faster on two threads from about 2^18 elements, where its data stops
/// fitting one core's caches; below that the second core mostly waits for cache lines. So a loop
/// is split only when each of at least two ranges gets 2^17 units.
inline constexpr std::size_t kParallelGrain = std::size_t{1} << 17;

/// body(i) for i in [0, n) on the thread pool, in ranges of at least kParallelGrain units of work
/// (work_per_item units each); small loops stay on the calling thread. Items must write disjoint
/// outputs.
template <class Body>
void parallel_items(std::size_t n, std::size_t work_per_item, const Body& body) {
  const std::size_t grain = std::max<std::size_t>(1, kParallelGrain / std::max<std::size_t>(1, work_per_item));
  parallel_for(n, grain, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) body(i);
  });
}

template <class T>
Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> vec(T* p, std::size_t n) {
  return {p, static_cast<Eigen::Index>(n)};
}
template <class T>
Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> vec(const T* p, std::size_t n) {
  return {p, static_cast<Eigen::Index>(n)};
}

/// The sum of vec(p, n), rounded the same wherever p lies. Eigen reduces a plain Map from its
/// first packet-aligned element (scalars before it, packets after), so the order of the
/// additions, and the rounding, would follow the address: heap layout, and even the length of
/// a path string, reached the results. An expression over the map has no address of its own
/// and is reduced from element 0 in an order fixed by n alone (x * 1 is exact).
template <class T>
T sum_any_alignment(const T* p, std::size_t n) {
  return (vec(p, n) * T(1)).sum();
}

/// True when any of the vars takes part in differentiation.
template <class T, class... V>
bool any_grad(const Var<T>& first, const V&... rest) {
  return first.needs_grad() || (rest.needs_grad() || ...);
}

}  // namespace circuitry::ops
