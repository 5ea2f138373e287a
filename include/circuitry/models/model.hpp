#pragma once
// A model: an architecture type (models/architectures.hpp), a config and weights, and the
// forward pass that composes the architecture's components. Nothing here knows a particular
// architecture: the embedding, attention, MLP, norms and unembedding are the components' code.
//
// The forward is written once against the op library and a Context, so the same code
// runs with the tape (gradients) or without it (Context<T, false> compiles the tape away).
// Alongside the logits it can record what circuit discovery needs (llm.c-style explicit
// activations): every upstream node's output, the residual stream at every stage, and
// the gradient of the metric w.r.t. every downstream port's input (ops/norm_linear.hpp).
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "circuitry/ops.hpp"
#include "circuitry/graph/graph.hpp"
#include "circuitry/models/batch.hpp"
#include "circuitry/models/architectures.hpp"
#include "circuitry/models/hooks.hpp"
#include "circuitry/models/parameters.hpp"

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
};

template <ArchitectureSpec Arch, class T>
class Model {
 public:
  using architecture = Arch;
  using scalar = T;
  using norm = typename Arch::norm;
  using attention = typename Arch::attention;
  using mlp = typename Arch::mlp;
  using unembed = typename Arch::unembed;

  static constexpr bool parallel = Arch::parallel_attn_mlp;

  Model(ModelConfig config, Weights<T> weights) : config_(std::move(config)), weights_(std::move(weights)) {
    Arch::check_config(config_);
    check_weights();
    rotary_ = attention::template rotary_table<T>(config_);
  }
  // The parameter view points into this model's own tensors: copies make their own.
  Model(const Model& other) : Model(other.config_, other.weights_) {}
  Model(Model&& other) noexcept : config_(std::move(other.config_)), weights_(std::move(other.weights_)),
                                  rotary_(std::move(other.rotary_)) { params_ = make_params(); }
  Model& operator=(Model other) {
    config_ = std::move(other.config_);
    weights_ = std::move(other.weights_);
    rotary_ = std::move(other.rotary_);
    params_ = make_params();
    return *this;
  }

  /// Random weights (seeded): matrices and embeddings N(0, stddev), norm gains one, biases zero.
  static Model random(const ModelConfig& c, unsigned seed, double stddev = 0.02);

  const ModelConfig& config() const { return config_; }
  const Weights<T>& weights() const { return weights_; }
  /// The weights, to change their values in place (training, ablating a component). Their
  /// shapes are the architecture's: a model of other shapes is a new Model.
  Weights<T>& weights() { return weights_; }
  /// Every parameter as a constant tape variable over the weights, in declaration order.
  const ParamVars<T>& params() const { return params_; }
  Graph graph() const { return Graph(Arch::graph_shape(config_)); }
  std::size_t n_upstream() const { return first_node_of_layer(config_.n_layer, config_.n_head, Arch::has_mlp); }
  std::size_t ports_per_layer() const { return 3 * config_.n_head + (Arch::has_mlp ? 1 : 0); }
  /// The attention mask of `lanes` copies of a batch stacked one after another.
  ops::KeyMask key_mask(const Batch& batch, std::size_t lanes = 1) const { return attention::mask(batch, lanes); }
  /// The rotary angles of every position (rotary architectures), else empty.
  const std::optional<ops::RotaryTable<T>>& rotary() const { return rotary_; }
  /// The first residual stage that holds layer l's head outputs and that a forward can start
  /// at: 2l + 1 (the MLP's input), or, in a parallel block, 2l + 2 (the next layer's input).
  static std::size_t stage_after_heads(std::size_t l) { return parallel ? 2 * l + 2 : 2 * l + 1; }

  /// Logits at the batch's readout rows (each sequence's last position, or positions 1.. in mode
  /// `all`) [R, vocab_out], or at every position (options.all_positions) [batch * pos, vocab_out].
  template <class Ctx>
  Var<T> forward(const Ctx& ctx, const Batch& batch, const ForwardOptions<T>& o = {},
                 const ParamVars<T>* params = nullptr) const {
    const ModelConfig& c = config_;
    const std::size_t B = batch.batch, P = batch.pos, D = c.n_embd, H = c.n_head, A = c.d_attn(), dh = c.d_head();
    const std::size_t L = c.n_layer, BPD = B * P * D;
    require(P <= c.n_positions, "sequence of " + std::to_string(P) + " tokens is longer than the context (n_positions = " +
                                    std::to_string(c.n_positions) + ")");
    const ParamVars<T>& pv = params ? *params : params_;
    const ops::KeyMask mask = key_mask(batch);
    const bool hooked = o.hooks && !o.hooks->empty();
    const bool named = hooked || o.activations;  // hook-point names are built only when someone asks
    auto hook_view = [&](const std::string& name, TensorView<T> v) {
      if (hooked) (*o.hooks)(name, v);
    };
    auto hook = [&](const std::string& name, const Var<T>& v) {
      hook_view(name, v.view());
      if (o.activations) (*o.activations)[name] = v;
    };
    auto record_residual = [&](std::size_t stage, const Var<T>& r) {
      if (o.residuals) DefaultBackend::copy(BPD, r.value, o.residuals + stage * BPD);
    };
    auto record_node = [&](std::size_t node, const T* value) {
      if (!o.node_outputs) return;
      if (o.subtract_node_outputs) DefaultBackend::axpy(BPD, T(-1), value, o.node_outputs + node * BPD);
      else DefaultBackend::copy(BPD, value, o.node_outputs + node * BPD);
    };
    auto sink_for = [&](std::size_t first_port) -> ops::PortGradientSink<T> {
      if (!o.port_gradients) return {};
      return [cb = o.port_gradients, first_port](const T* g, std::size_t n, std::size_t, std::size_t) { cb(first_port, g, n); };
    };
    auto as_input = [&](const T* data) {  // a copy that takes part in differentiation
      Var<T> v = ctx.output({B, P, D}, true);
      DefaultBackend::copy(BPD, data, v.value);
      return v;
    };

    // ---- input node --------------------------------------------------------------------
    Var<T> resid = o.input_override ? as_input(o.input_override) : Arch::embed::input(ctx, pv, batch, hook);  // [B, P, D]
    record_node(0, resid.value);
    if (o.input_var) *o.input_var = resid;

    // ---- blocks ----------------------------------------------------------------------
    // When nothing but the readout rows' logits is wanted (no tape, hooks or recording),
    // the last layer runs its queries, head outputs and MLP on those rows only: [R, D].
    const bool lean_last_layer = !Ctx::records && !o.all_positions && !named && !o.node_outputs && !o.residuals;
    for (std::size_t l = 0; l < L; ++l) {
      const LayerParams<T> w = pv.layer(l);
      const std::string pre = named ? "blocks." + std::to_string(l) + "." : "";
      const std::size_t node0 = first_node_of_layer(l, H, Arch::has_mlp);
      const bool lean = lean_last_layer && l + 1 == L;
      Var<T> attn_out;  // [B, P, D], or [R, D] in a lean last layer
      hook(pre + "hook_resid_pre", resid);
      record_residual(2 * l, resid);
      Var<T> qkv = attention::template qkv<norm>(ctx, resid, w, c, sink_for(l * ports_per_layer()));  // [B, P, 3A]
      if (hooked)
        for (std::size_t j = 0; j < 3; ++j)
          hook_view(pre + "attn.hook_" + "qkv"[j], TensorView<T>{qkv.value + j * A, {B, P, H, dh}, {P * 3 * A, 3 * A, dh, 1}});
      qkv = attention::rotate(ctx, qkv, c, rotary_);  // [B, P, 3A]
      if (lean) {
        Var<T> z = ctx.output({batch.readout.size(), A}, false);  // [R, H * dh] at the readout rows
        DefaultBackend::attention_rows(AttentionShape{B, P, H, A / H}, mask, batch.readout, qkv.value, z.value);
        resid = ops::gather_rows(ctx, resid, batch.readout);  // [R, D]
        attn_out = attention::output(ctx, z, w);  // [R, D]
      } else {
        Var<T> pattern = attention::pattern(ctx, qkv, c, mask);  // [B, H, P, P]
        hook(pre + "attn.hook_pattern", pattern);
        Var<T> z = attention::mix(ctx, pattern, qkv, c);  // [B, P, H, dh]
        hook(pre + "attn.hook_z", z);
        attn_out = attention::output(ctx, Var<T>{z.value, {B, P, A}, z.slot}, w);  // [B, P, D]
        hook(pre + "hook_attn_out", attn_out);
        if (o.node_outputs)
          attention::head_outputs(z.value, w["attn.W_O"].value, c, B * P, o.node_outputs + node0 * BPD, BPD, o.subtract_node_outputs);
      }
      if (!parallel) {
        resid = ops::add(ctx, resid, attn_out);
        hook(pre + "hook_resid_mid", resid);
      }
      if constexpr (Arch::has_mlp) {
        record_residual(2 * l + 1, resid);
        Var<T> pre_act = mlp::template pre<norm>(ctx, resid, w, c, sink_for(l * ports_per_layer() + 3 * H));  // [B, P, d_mlp]
        hook(pre + "mlp.hook_pre", pre_act);
        Var<T> post = mlp::act(ctx, pre_act);  // [B, P, d_mlp]
        hook(pre + "mlp.hook_post", post);
        Var<T> mlp_out = mlp::output(ctx, post, w);  // [B, P, D]
        hook(pre + "hook_mlp_out", mlp_out);
        record_node(node0 + H, mlp_out.value);
        if (parallel) resid = ops::add(ctx, resid, attn_out);
        resid = ops::add(ctx, resid, mlp_out);
      } else {
        record_residual(2 * l + 1, resid);
      }
      hook(pre + "hook_resid_post", resid);
    }

    // ---- final norm and unembedding --------------------------------------------------
    record_residual(2 * L, resid);
    Var<T> normed = unembed::normalize(ctx, resid, pv, c, sink_for(L * ports_per_layer()));  // [B, P, D]
    hook("ln_final.hook_normalized", normed);
    Var<T> rows = o.all_positions ? Var<T>{normed.value, {B * P, D}, normed.slot}
                  : lean_last_layer ? normed
                                  : ops::gather_rows(ctx, normed, batch.readout);
    return unembed::project(ctx, rows, pv);  // [readout rows or batch * pos, vocab_out]
  }

 private:
  /// Every parameter the components declare must be there with its shape; no other name may
  /// hold a tensor (a weight the architecture would silently ignore).
  void check_weights() {
    const ModelConfig& c = config_;
    require(c.n_layer > 0 && c.n_head > 0 && c.n_embd > 0 && c.d_head() > 0 && c.n_positions > 0 && c.vocab_size > 0,
            "model config: every size must be positive");
    require(c.tie_word_embeddings ? c.n_outputs() == c.vocab_size : true,
            "model config: a tied unembedding needs d_vocab_out (" + std::to_string(c.n_outputs()) + ") = d_vocab (" +
                std::to_string(c.vocab_size) + ")");
    std::size_t declared = 0;
    Arch::parameters(c, [&](const ParamDecl& d) {
      const ParamArray<T>* t = weights_.find(d.name);
      require(t != nullptr, "the weights have no '" + d.name + "', a parameter of the architecture (" + Arch::name() + ")");
      const ParamShape actual(t->shape().begin(), t->shape().end());
      require(actual == d.shape, "weight " + d.name + " has shape " + shape_string(actual) + ", expected " + shape_string(d.shape));
      ++declared;
    });
    if (weights_.size() != declared)
      for (const auto& [name, t] : weights_) {
        bool known = false;
        Arch::parameters(c, [&](const ParamDecl& d) { known = known || d.name == name; });
        require(known, "the weights hold '" + name + "', which is not a parameter of the architecture (" + Arch::name() +
                           ") with this config");
      }
    params_ = make_params();
  }

  ParamVars<T> make_params() const {
    ParamVars<T> p;
    Arch::parameters(config_, [&](const ParamDecl& d) { p.add(d.name, constant_var(weights_.at(d.name)), d.kind); });
    return p;
  }

  ModelConfig config_;
  Weights<T> weights_;
  std::optional<ops::RotaryTable<T>> rotary_;  // the backward of the rotary op reads it
  ParamVars<T> params_;                         // views of weights_
};

template <ArchitectureSpec Arch, class T>
Model<Arch, T> Model<Arch, T>::random(const ModelConfig& c, unsigned seed, double stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, stddev);
  Weights<T> w;
  Arch::parameters(c, [&](const ParamDecl& d) {
    ParamArray<T>& t = w[d.name];
    t.resize(d.shape);
    for (auto& v : t)
      v = d.kind == ParamKind::matrix || d.kind == ParamKind::embedding ? static_cast<T>(normal(rng))
          : d.kind == ParamKind::norm_gain                              ? T(1)
                                                                        : T(0);
  });
  return Model(c, std::move(w));
}

}  // namespace circuitry
