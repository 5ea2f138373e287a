#pragma once
// Hook points with TransformerLens names, where a user reads or replaces an activation
// during a forward pass:
//   hook_embed, hook_pos_embed                       [batch, pos, d_model]
//   blocks.{l}.hook_resid_pre / hook_resid_mid / hook_resid_post   [batch, pos, d_model]
//   blocks.{l}.attn.hook_q / hook_k / hook_v / hook_z [batch, pos, head, d_head]
//   blocks.{l}.attn.hook_pattern                     [batch, head, query_pos, key_pos]
//   blocks.{l}.hook_attn_out, blocks.{l}.hook_mlp_out [batch, pos, d_model]
//   blocks.{l}.mlp.hook_pre / hook_post              [batch, pos, d_mlp]
//   ln_final.hook_normalized                         [batch, pos, d_model]
// A hook gets a (possibly strided) view and may write through it; what it writes is what
// the rest of the forward sees. Hooks are meant for forward-only runs: on a recording run
// the backward treats a written value as if the op had produced it.
#include <functional>
#include <map>
#include <string>

#include "circuitry/core/tensor.hpp"

namespace circuitry {

template <class T>
class Hooks {
 public:
  using Fn = std::function<void(TensorView<T>)>;

  Hooks& add(const std::string& name, Fn fn) {
    hooks_[name] = std::move(fn);
    return *this;
  }
  bool empty() const { return hooks_.empty(); }
  /// Runs the hook registered under `name`, if any.
  void operator()(const std::string& name, TensorView<T> view) const {
    if (auto it = hooks_.find(name); it != hooks_.end()) it->second(view);
  }

 private:
  std::map<std::string, Fn> hooks_;
};

}  // namespace circuitry
