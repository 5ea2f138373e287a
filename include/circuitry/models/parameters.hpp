#pragma once
// Weights as tape variables. A forward pass reads parameters through ParamVars: constants
// for inference and attribution (no weight gradients are computed), watched variables for
// training (Tape::grad gives each weight's gradient after backward()).
#include <random>
#include <vector>

#include "circuitry/core/tape.hpp"
#include "circuitry/models/components/parameters.hpp"
#include "circuitry/models/weights.hpp"

namespace circuitry {

template <class T>
struct LayerVars {
  Var<T> ln1_w, ln1_b, w_qkv, b_qkv, w_o, b_o, ln2_w, ln2_b, w_fc, b_fc, w_proj, b_proj;
};

template <class T>
struct ParamVars {
  Var<T> wte, wpe, lnf_w, lnf_b, unembed, b_unembed;
  std::vector<LayerVars<T>> layers;

  /// Constant views of the weights (no copies).
  static ParamVars view(const Weights<T>& w) {
    ParamVars p;
    p.wte = constant_var(w.wte);
    p.wpe = constant_var(w.wpe);
    p.lnf_w = constant_var(w.lnf_w);
    p.lnf_b = constant_var(w.lnf_b);
    p.unembed = constant_var(w.unembed());
    p.b_unembed = constant_var(w.b_unembed);
    for (const auto& l : w.layers)
      p.layers.push_back({constant_var(l.ln1_w), constant_var(l.ln1_b), constant_var(l.w_qkv), constant_var(l.b_qkv),
                          constant_var(l.w_o), constant_var(l.b_o), constant_var(l.ln2_w), constant_var(l.ln2_b),
                          constant_var(l.w_fc), constant_var(l.b_fc), constant_var(l.w_proj), constant_var(l.b_proj)});
    return p;
  }

  /// Calls f(var, tensor) for every parameter the model has (every non-empty slot; the
  /// components decide which those are), pairing each Var with the tensor in `w` (a tied
  /// unembedding is visited once, as wte).
  template <class W, class F>
  void for_each(W& w, F&& f) {
    auto g = [&](Var<T>& v, auto& t) {
      if (t.size()) f(v, t);
    };
    g(wte, w.wte);
    g(wpe, w.wpe);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      auto& v = layers[i];
      auto& t = w.layers[i];
      g(v.ln1_w, t.ln1_w), g(v.ln1_b, t.ln1_b), g(v.w_qkv, t.w_qkv), g(v.b_qkv, t.b_qkv), g(v.w_o, t.w_o), g(v.b_o, t.b_o);
      g(v.ln2_w, t.ln2_w), g(v.ln2_b, t.ln2_b), g(v.w_fc, t.w_fc), g(v.b_fc, t.b_fc), g(v.w_proj, t.w_proj), g(v.b_proj, t.b_proj);
    }
    g(lnf_w, w.lnf_w);
    g(lnf_b, w.lnf_b);
    g(unembed, w.lm_head);
    g(b_unembed, w.b_unembed);
  }

  /// Makes every parameter a differentiation target (training).
  void watch_all(Tape<T>& tape, const Weights<T>& w) {
    for_each(w, [&](Var<T>& v, const auto&) { tape.watch(v); });
    if (!w.lm_head.size()) unembed.slot = wte.slot;  // tied: one adjoint for both uses
  }
};

}  // namespace circuitry
