#pragma once
// What a whole forward pass can be asked for besides the logits (ForwardOptions), and the
// layer step's LayerIo that delivers it (detail::ForwardIo): hooks by TransformerLens name, every
// upstream node's output, the residual stream at every stage, and on the tape d metric / d input
// of every downstream port (llm.c-style explicit activations; ops/norm_linear.hpp).
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "circuitry/models/hooks.hpp"
#include "circuitry/models/layer_step.hpp"

namespace circuitry {

/// The residual stream is recorded at 2 L + 1 stages: stage 2l is layer l's input
/// (resid_pre), 2l + 1 the MLP's input (after attention; in a parallel block the layer's input
/// again, as the MLP reads it), 2L the final norm's input.
inline std::size_t residual_stages(std::size_t n_layers) { return 2 * n_layers + 1; }

template <class T>
struct ForwardOptions {
  const Hooks<T>* hooks = nullptr;
  /// Replaces the `input` node's output (EAP-IG's interpolated embeddings). [batch, pos, d_model]
  const T* input_override = nullptr;
  /// If set, receives every upstream node's output in Graph::upstream() order. [n_upstream, batch, pos, d_model]
  T* node_outputs = nullptr;
  /// Subtract each node's output from node_outputs instead of writing it (Delta = out(x') - out(x)
  /// without a second buffer).
  bool subtract_node_outputs = false;
  /// If set, receives the residual stream at every stage. [2L + 1, batch, pos, d_model]
  T* residuals = nullptr;
  /// Logits at every position ([batch * pos, vocab], for training) instead of the last ones ([batch, vocab]).
  bool all_positions = false;
  /// On a recording run: receives d metric / d (port input) for each port during backward(),
  /// ports [first_port, first_port + n_ports) in Graph::ports() order. grads: [n_ports, batch * pos, d_model]
  std::function<void(std::size_t first_port, const T* grads, std::size_t n_ports)> port_gradients;
  /// If set, receives every activation at a hook point, by its TransformerLens name
  /// (blocks.0.hook_attn_out, ...); on a recording run tape.grad(var) is then d metric / d activation.
  std::map<std::string, Var<T>>* activations = nullptr;
  /// If set, receives the Var holding the input node's output (or the start residual);
  /// after backward() its adjoint is d metric / d input.
  Var<T>* input_var = nullptr;

  /// Whether anyone reads an activation by its hook-point name.
  bool named() const { return (hooks && !hooks->empty()) || activations; }
};

namespace detail {

/// Model::forward's LayerIo: one chained lane, every head summed whole, each activation
/// handed to the hooks and recordings `o` asks for.
template <class M, class T = typename M::scalar>
class ForwardIo : public LayerIoBase<T> {
  using Kernels = typename M::backend;

 public:
  ForwardIo(const M& model, const ParamVars<T>& params, const ForwardOptions<T>& o, std::size_t bpd)
      : model_(&model), params_(&params), o_(&o), BPD_(bpd) {}

  HeadsPlan attention(std::size_t, const LaneRun<T, Kernels>&) const { return HeadsPlan::whole_sum; }
  std::pair<std::size_t, std::size_t> node_lanes(std::size_t) const { return {0, 1}; }
  const T* port_input(std::size_t, std::size_t, std::size_t, const LaneRun<T, Kernels>& run) const { return run.x.value; }
  const T* node_value(std::size_t u, std::size_t, const T* computed, bool) const {
    record_node(u, computed);
    return computed;
  }
  void node_var(std::size_t u, std::size_t, const Var<T>& v) const { record_node(u, v.value); }
  void residual(std::size_t stage, const LaneRun<T, Kernels>& run) const {
    if (o_->residuals) Kernels::copy(BPD_, run.x.value, o_->residuals + stage * BPD_);
  }
  ops::PortGradientSink<T> port_sink(std::size_t first_port) const {
    if (!o_->port_gradients) return {};
    return [cb = o_->port_gradients, first_port](const T* g, std::size_t n, std::size_t, std::size_t) { cb(first_port, g, n); };
  }
  /// Every head's output z_h W_O[h] as its node's output, or, under a norm after the heads' sum,
  /// its share w * z_h W_O[h] * rstd(S).  z: [B, P, H d_head]
  void attention_z(std::size_t l, const Var<T>& z) const {
    if (!o_->node_outputs) return;
    const ModelConfig& c = model_->config();
    const LayerParams<T> w = params_->layer(l);
    const std::size_t rows = BPD_ / c.n_embd, H = c.n_head;
    T* dst = o_->node_outputs + first_node(l) * BPD_;
    if (!c.post_attention_norm) {
      M::attention::template head_outputs<Kernels>(z.value, w["attn.W_O"].value, c, rows, dst, BPD_, o_->subtract_node_outputs);
      return;
    }
    shares_.resize(H * BPD_ + rows);  // [H, rows, D] the shares, then [rows] their rstd
    M::attention::template head_outputs<Kernels>(z.value, w["attn.W_O"].value, c, rows, shares_.data(), BPD_, false);
    Kernels::post_norm_shares_forward(H, rows, c.n_embd, BPD_, shares_.data(), w["ln1_post.w"].value, static_cast<T>(c.layer_norm_epsilon),
                                      shares_.data(), shares_.data() + H * BPD_);
    if (o_->subtract_node_outputs) Kernels::axpy(H * BPD_, T(-1), shares_.data(), dst);
    else Kernels::copy(H * BPD_, shares_.data(), dst);
  }
  void observe(std::size_t l, LayerPoint point, const Var<T>& v) const {
    if (!o_->named()) return;
    const std::string pre = "blocks." + std::to_string(l) + ".";
    if (point == LayerPoint::qkv) {  // three views, hooks only: [B, P, H, d_head] each
      const ModelConfig& c = model_->config();
      const std::size_t A = c.d_attn(), B = v.shape[0], P = v.shape[1];
      if (o_->hooks)
        for (std::size_t j = 0; j < 3; ++j)
          (*o_->hooks)(pre + "attn.hook_" + "qkv"[j], TensorView<T>{v.value + j * A, {B, P, c.n_head, c.d_head()}, {P * 3 * A, 3 * A, c.d_head(), 1}});
      return;
    }
    hook(pre + point_name(point), v);
  }

  /// The input node's output, and the final norm's output.
  void hook(const std::string& name, const Var<T>& v) const {
    if (o_->hooks) (*o_->hooks)(name, v.view());
    if (o_->activations) (*o_->activations)[name] = v;
  }
  void record_node(std::size_t u, const T* value) const {
    if (!o_->node_outputs) return;
    if (o_->subtract_node_outputs) Kernels::axpy(BPD_, T(-1), value, o_->node_outputs + u * BPD_);
    else Kernels::copy(BPD_, value, o_->node_outputs + u * BPD_);
  }

 private:
  std::size_t first_node(std::size_t l) const { return first_node_of_layer(l, model_->config().n_head, M::architecture::has_mlp); }
  static const char* point_name(LayerPoint p) {
    switch (p) {
      case LayerPoint::resid_pre: return "hook_resid_pre";
      case LayerPoint::qkv: return "attn.hook_qkv";
      case LayerPoint::pattern: return "attn.hook_pattern";
      case LayerPoint::z: return "attn.hook_z";
      case LayerPoint::attn_out: return "hook_attn_out";
      case LayerPoint::resid_mid: return "hook_resid_mid";
      case LayerPoint::mlp_pre: return "mlp.hook_pre";
      case LayerPoint::mlp_post: return "mlp.hook_post";
      case LayerPoint::mlp_out: return "hook_mlp_out";
      case LayerPoint::resid_post: return "hook_resid_post";
    }
    return "";
  }

  const M* model_;
  const ParamVars<T>* params_;
  const ForwardOptions<T>* o_;
  std::size_t BPD_;
  mutable std::vector<T> shares_;  // the heads' shares under a norm after their sum
};

}  // namespace detail
}  // namespace circuitry
