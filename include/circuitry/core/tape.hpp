#pragma once
// Reverse-mode automatic differentiation on a linear tape, after Stan Math's
// `reverse_pass_callback`: every tensor op pushes ONE callback that, run in reverse
// order, reads its outputs' adjoints and accumulates its inputs' adjoints. There are no
// per-scalar nodes; an op over a [batch, pos, d_model] tensor is one tape entry.
//
// A Var is a value plus, when it takes part in differentiation, a slot for its adjoint.
// Vars without a slot are constants (token ids, frozen weights, cached activations): ops
// skip the backward work for them, so attribution patching never pays for weight
// gradients. Adjoints are allocated lazily, zero-filled, on first use.
//
// Context<T, Grad> carries the arena and, when Grad is true, the tape. Whether a run
// records is a compile-time choice: with Grad == false, ops compile to their forward
// kernels alone (DESIGN.md: runs that need no gradient never touch the tape).
#include <cstddef>
#include <concepts>
#include <functional>
#include <new>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "circuitry/core/arena.hpp"
#include "circuitry/core/tensor.hpp"

namespace circuitry {

template <class T>
struct AdjointSlot {
  T* adjoint = nullptr;  // allocated on first use
};

template <class T>
struct Var {
  T* value = nullptr;
  Shape shape;
  AdjointSlot<T>* slot = nullptr;  // nullptr: a constant

  bool needs_grad() const { return slot != nullptr; }
  std::size_t numel() const { return shape.numel(); }
  TensorView<T> view() const { return TensorView<T>::contiguous(value, shape); }
};

template <class T>
class Tape {
 public:
  explicit Tape(Arena& arena) : arena_(&arena) {}

  /// Adds one reverse-pass callback (one per tensor op).
  void push(std::function<void()> backward) { entries_.push_back(std::move(backward)); }

  /// Gives `v` an adjoint slot so gradients flow to it (weights, chosen activations).
  void watch(Var<T>& v) {
    if (!v.slot) v.slot = new (arena_->alloc<AdjointSlot<T>>(1)) AdjointSlot<T>{};
  }

  /// The adjoint of v, allocated zero-filled on first use; nullptr for constants.
  T* grad(const Var<T>& v) {
    if (!v.slot) return nullptr;
    if (!v.slot->adjoint) {
      v.slot->adjoint = arena_->zeros<T>(v.numel());
      if (!scopes_.empty()) allocated_in_scope_.push_back(v.slot);
    }
    return v.slot->adjoint;
  }

  /// Seeds d out / d out = 1 for a scalar (or `seed` for any shape) and runs the tape backwards:
  /// the whole tape, or inside a nested scope only the entries recorded since it opened.
  void backward(const Var<T>& out, const T* seed = nullptr) {
    require(out.needs_grad(), "backward(): the output does not depend on any watched variable");
    T* g = grad(out);
    for (std::size_t i = 0; i < out.numel(); ++i) g[i] += seed ? seed[i] : T(1);
    const std::size_t first = scopes_.empty() ? 0 : scopes_.back().entries;
    for (std::size_t i = entries_.size(); i-- > first;) entries_[i]();
  }

  /// A nested computation, as Stan's start_nested / recover_memory_nested: inside the scope,
  /// backward() runs only the entries recorded since it opened; when it closes, those entries,
  /// their arena memory and every adjoint allocated inside are dropped, so the outer tape is
  /// as it was. Open scopes during a forward pass, before the outer backward().
  class Scope {
   public:
    explicit Scope(Tape& tape) : tape_(&tape) { tape.scopes_.push_back({tape.entries_.size(), tape.allocated_in_scope_.size(), tape.arena_->mark()}); }
    ~Scope() {
      const Frame f = tape_->scopes_.back();
      tape_->scopes_.pop_back();
      tape_->entries_.resize(f.entries);
      for (std::size_t i = f.adjoints; i < tape_->allocated_in_scope_.size(); ++i) tape_->allocated_in_scope_[i]->adjoint = nullptr;
      tape_->allocated_in_scope_.resize(f.adjoints);
      tape_->arena_->rewind(f.arena);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Tape* tape_;
  };

  /// A reusable buffer of n values for a backward pass's temporaries; valid until the next
  /// call. (Per-port gradients of every layer share it instead of growing the arena.)
  T* scratch(std::size_t n) {
    if (scratch_.size() < n) scratch_.resize(n);
    return scratch_.data();
  }

  std::size_t size() const { return entries_.size(); }
  void clear() {
    require(scopes_.empty(), "Tape::clear() inside a nested scope");
    entries_.clear();
  }

 private:
  struct Frame {
    std::size_t entries, adjoints;
    Arena::Mark arena;
  };
  Arena* arena_;
  std::vector<std::function<void()>> entries_;
  std::vector<Frame> scopes_;                           // open nested scopes, innermost last
  std::vector<AdjointSlot<T>*> allocated_in_scope_;     // adjoints first allocated inside a scope
  AlignedVector<T> scratch_;  // aligned like the arena: reductions stay deterministic
};

}  // namespace circuitry
