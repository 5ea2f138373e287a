#pragma once
// Weights as tape variables. A forward pass reads parameters through ParamVars: constants
// for inference and attribution (no weight gradients are computed), watched variables for
// training (Tape::grad gives each weight's gradient after backward()).
#include <random>
#include <vector>

#include "circuitry/core/tape.hpp"
#include "circuitry/models/weights.hpp"

namespace circuitry {

template <class T>
struct LayerVars {
  Var<T> ln1_w, ln1_b, w_qkv, b_qkv, w_o, b_o, ln2_w, ln2_b, w_fc, b_fc, w_proj, b_proj;
};

template <class T>
struct ParamVars {
  Var<T> wte, wpe, lnf_w, lnf_b, unembed;
  std::vector<LayerVars<T>> layers;

  /// Constant views of the weights (no copies).
  static ParamVars view(const Weights<T>& w) {
    ParamVars p;
    p.wte = of(w.wte);
    p.wpe = of(w.wpe);
    p.lnf_w = of(w.lnf_w);
    p.lnf_b = of(w.lnf_b);
    p.unembed = of(w.unembed());
    for (const auto& l : w.layers)
      p.layers.push_back({of(l.ln1_w), of(l.ln1_b), of(l.w_qkv), of(l.b_qkv), of(l.w_o), of(l.b_o), of(l.ln2_w),
                          of(l.ln2_b), of(l.w_fc), of(l.b_fc), of(l.w_proj), of(l.b_proj)});
    return p;
  }

  /// Calls f(var, tensor) for every parameter, pairing each Var with the tensor in `w`
  /// (a tied unembedding is visited once, as wte).
  template <class W, class F>
  void for_each(W& w, F&& f) {
    f(wte, w.wte);
    f(wpe, w.wpe);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      auto& v = layers[i];
      auto& t = w.layers[i];
      f(v.ln1_w, t.ln1_w), f(v.ln1_b, t.ln1_b), f(v.w_qkv, t.w_qkv), f(v.b_qkv, t.b_qkv), f(v.w_o, t.w_o), f(v.b_o, t.b_o);
      if (t.w_fc.size())
        f(v.ln2_w, t.ln2_w), f(v.ln2_b, t.ln2_b), f(v.w_fc, t.w_fc), f(v.b_fc, t.b_fc), f(v.w_proj, t.w_proj),
            f(v.b_proj, t.b_proj);
    }
    f(lnf_w, w.lnf_w);
    f(lnf_b, w.lnf_b);
    if (w.lm_head.size()) f(unembed, w.lm_head);
  }

  /// Makes every parameter a differentiation target (training).
  void watch_all(Tape<T>& tape, const Weights<T>& w) {
    for_each(w, [&](Var<T>& v, const auto&) { tape.watch(v); });
    if (!w.lm_head.size()) unembed.slot = wte.slot;  // tied: one adjoint for both uses
  }

 private:
  template <class X>
  static Var<T> of(const X& x) {
    Shape s;
    s.rank = x.dimension();
    for (std::size_t i = 0; i < s.rank; ++i) s[i] = x.shape()[i];
    return Var<T>{const_cast<T*>(x.data()), s, nullptr};
  }
};

}  // namespace circuitry
