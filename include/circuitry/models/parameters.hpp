#pragma once
// Weights as tape variables. A forward pass reads parameters through ParamVars: constants
// for inference and attribution (no weight gradients are computed), watched variables for
// training (Tape::grad gives each weight's gradient after backward()). The variables come from
// the same declarations as the weights (Architecture::parameters), in declaration order, and
// are looked up by the same names; a component reads its layer's through a LayerParams view
// (w["attn.W_QKV"]), so lookups need no string building.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/core/tape.hpp"
#include "circuitry/models/components/parameters.hpp"
#include "circuitry/models/weights.hpp"

namespace circuitry {

template <class T>
class ParamVars;

/// One layer's parameters by their names within the layer ("attn.W_QKV", "ln1.w").
template <class T>
class LayerParams {
 public:
  LayerParams(const ParamVars<T>& params, std::size_t layer) : params_(&params), layer_(layer) {}
  /// The parameter, or a Var without storage when the model has none of that name (an optional bias).
  const Var<T>& operator[](std::string_view name) const { return params_->in_layer(layer_, name); }
  std::size_t layer() const { return layer_; }

 private:
  const ParamVars<T>* params_;
  std::size_t layer_;
};

template <class T>
class ParamVars {
 public:
  struct Entry {
    std::string name;
    Var<T> var;
    ParamKind kind;
  };

  /// Adds a parameter (in declaration order). Names "blocks.{l}.x" are also found as layer l's "x".
  void add(const std::string& name, Var<T> var, ParamKind kind) {
    require(!index_.contains(name), "parameter '" + name + "' is declared twice");
    index_.emplace(name, entries_.size());
    if (name.starts_with("blocks.")) {
      const std::size_t dot = name.find('.', 7);
      const std::size_t layer = std::stoul(name.substr(7, dot - 7));
      if (layers_.size() <= layer) layers_.resize(layer + 1);
      layers_[layer].emplace(name.substr(dot + 1), entries_.size());
    }
    entries_.push_back({name, var, kind});
  }

  /// The parameter, or a Var without storage when there is none of that name.
  const Var<T>& operator[](std::string_view name) const { return lookup(index_, name); }
  const Var<T>& in_layer(std::size_t layer, std::string_view name) const {
    return layer < layers_.size() ? lookup(layers_[layer], name) : absent_;
  }
  LayerParams<T> layer(std::size_t l) const { return LayerParams<T>(*this, l); }

  std::size_t size() const { return entries_.size(); }
  /// The parameters in declaration order (forward order: embeddings, each block, unembedding).
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<Entry>& entries() { return entries_; }

  /// Makes every parameter a differentiation target (training). A tied unembedding is W_E
  /// itself (not a parameter of its own), so both uses share one adjoint.
  void watch_all(Tape<T>& tape) {
    for (Entry& e : entries_) {
      e.var.slot = nullptr;  // a slot of an earlier tape lived in its arena
      tape.watch(e.var);
    }
  }

 private:
  using Index = std::map<std::string, std::size_t, std::less<>>;
  const Var<T>& lookup(const Index& index, std::string_view name) const {
    const auto found = index.find(name);
    return found == index.end() ? absent_ : entries_[found->second].var;
  }

  std::vector<Entry> entries_;
  Index index_;
  std::vector<Index> layers_;
  Var<T> absent_;
};

}  // namespace circuitry
