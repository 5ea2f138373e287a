#pragma once
// Finite-difference check of reverse-mode gradients, in double.
// For f: inputs -> output and a fixed random projection r, compares the tape's gradient of
// L = sum(r * f(inputs)) with central differences (L(x + h e_i) - L(x - h e_i)) / 2h.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "circuitry/ops/context.hpp"

namespace circuitry {

struct GradInput {
  std::vector<double> values;
  Shape shape;
};

struct GradCheckResult {
  double max_abs_error = 0;  // max |analytic - numeric| over all input entries
  double max_abs_grad = 0;   // max |numeric| (scale for the error)
  bool ok(double tol = 1e-6) const { return max_abs_error <= tol * std::max(1.0, max_abs_grad); }
};

/// `f` is a generic callable (const auto& ctx, std::vector<Var<double>>& inputs) -> Var<double>,
/// called with a recording and with a non-recording Context.
template <class F>
GradCheckResult check_gradients(F&& f, std::vector<GradInput> inputs, double h = 1e-6, unsigned seed = 7) {
  Arena arena;
  auto make_vars = [&](auto& ctx_arena) {
    std::vector<Var<double>> vars;
    for (auto& in : inputs) {
      require(in.values.size() == in.shape.numel(), "check_gradients: values do not match shape " + in.shape.str());
      double* p = ctx_arena.template alloc<double>(in.values.size());
      std::copy(in.values.begin(), in.values.end(), p);
      vars.push_back(Var<double>{p, in.shape, nullptr});
    }
    return vars;
  };
  std::vector<double> r;
  auto projected = [&](const Var<double>& out) {
    if (r.empty()) {
      std::mt19937 rng(seed);
      std::normal_distribution<double> n(0.0, 1.0);
      r.resize(out.numel());
      for (auto& v : r) v = n(rng);
    }
    double s = 0;
    for (std::size_t i = 0; i < out.numel(); ++i) s += r[i] * out.value[i];
    return s;
  };

  // Analytic gradients from the tape.
  Tape<double> tape(arena);
  Context<double, true> ctx(arena, tape);
  auto vars = make_vars(arena);
  for (auto& v : vars) tape.watch(v);
  Var<double> out = f(ctx, vars);
  projected(out);
  tape.backward(out, r.data());
  std::vector<std::vector<double>> analytic;
  for (auto& v : vars) {
    const double* g = tape.grad(v);
    analytic.emplace_back(g, g + v.numel());
  }

  GradCheckResult result;
  Arena fd_arena;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    for (std::size_t j = 0; j < inputs[i].values.size(); ++j) {
      const double x0 = inputs[i].values[j];
      auto eval = [&](double x) {
        inputs[i].values[j] = x;
        fd_arena.reset();
        Context<double, false> plain(fd_arena);
        auto vs = make_vars(fd_arena);
        return projected(f(plain, vs));
      };
      const double numeric = (eval(x0 + h) - eval(x0 - h)) / (2 * h);
      inputs[i].values[j] = x0;
      result.max_abs_grad = std::max(result.max_abs_grad, std::abs(numeric));
      result.max_abs_error = std::max(result.max_abs_error, std::abs(numeric - analytic[i][j]));
    }
  }
  return result;
}

}  // namespace circuitry
