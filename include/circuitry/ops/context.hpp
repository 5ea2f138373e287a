#pragma once
// The context an op runs in (Stan Math's "var" world, made explicit): the backend, the arena its
// outputs live in and, when gradients are wanted, the tape it records its backward on.
// Context<T, false> compiles the tape away; the backend defaults to the CPU's. A recording context
// may carry GradientRules (ops/gradient_rules.hpp) that change how its ops record their backward.
#include <concepts>
#include <utility>

#include "circuitry/backends/backend.hpp"
#include "circuitry/backends/cpu/cpu_backend.hpp"
#include "circuitry/core/tape.hpp"
#include "circuitry/ops/gradient_rules.hpp"

namespace circuitry {

/// Everything an op needs: the backend whose kernels it calls, the arena for outputs and, when
/// recording, the tape.
template <class T, bool Grad, Backend B = CpuBackend>
class Context {
 public:
  using scalar = T;
  using backend = B;
  using Arena = typename B::Arena;
  static constexpr bool records = Grad;

  explicit Context(Arena& arena) requires(!Grad) : arena_(&arena) {}
  Context(Arena& arena, Tape<T>& tape) requires(Grad) : arena_(&arena), tape_(&tape) {}

  Arena& arena() const { return *arena_; }
  Tape<T>& tape() const requires(Grad) { return *tape_; }

  /// A new output tensor; it gets an adjoint slot when recording and any input needs one.
  Var<T> output(Shape shape, bool differentiable) const {
    Var<T> v{arena_->template alloc<T>(shape.numel()), shape, nullptr};
    if constexpr (Grad)
      if (differentiable) tape_->watch(v);
    return v;
  }
  /// A constant (no adjoint) over existing memory.
  static Var<T> constant(T* data, Shape shape) { return Var<T>{data, shape, nullptr}; }

  /// The backward rules the ops record with (the exact gradient unless set); `rules` must outlive
  /// the recording.
  const GradientRules& rules() const {
    static const GradientRules exact;
    return rules_ ? *rules_ : exact;
  }
  void set_rules(const GradientRules* rules) { rules_ = rules; }

  /// The tape's reusable temporary buffer (see Tape::scratch).
  T* scratch(std::size_t n) const requires(Grad) { return tape_->scratch(n); }

  /// The adjoint buffer of v during the reverse pass (nullptr for constants).
  T* grad(const Var<T>& v) const requires(Grad) { return tape_->grad(v); }

  /// Registers an op's backward (no-op when not recording).
  template <class F>
  void on_backward(F&& f) const {
    if constexpr (Grad) tape_->push(std::forward<F>(f));
  }

 private:
  Arena* arena_;
  Tape<T>* tape_ = nullptr;
  const GradientRules* rules_ = nullptr;
};

template <class C>
concept OpContext = requires(const C& ctx, Shape s) {
  typename C::scalar;
  typename C::backend;
  { C::records } -> std::convertible_to<bool>;
  { ctx.arena() };
  { ctx.output(s, true) };
};

}  // namespace circuitry
