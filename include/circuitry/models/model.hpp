#pragma once
// A model: an architecture type (models/architectures.hpp), a config and weights, and the
// forward pass: the input node, one layer step per layer (models/layer_step.hpp), the final norm
// and the unembedding. Nothing here knows a particular architecture: the embedding, attention,
// MLP, norms and unembedding are the components' code. The backend (backends/backend.hpp) is
// the third template argument: the memory and the kernels every run of the model uses.
//
// The forward runs with the tape (gradients) or without it (Context<T, false> compiles the tape
// away). Alongside the logits it can record what circuit discovery needs (ForwardOptions,
// models/forward_io.hpp): every upstream node's output, the residual stream at every stage, and
// the gradient of the metric w.r.t. every downstream port's input (ops/norm_linear.hpp).
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "circuitry/ops.hpp"
#include "circuitry/graph/graph.hpp"
#include "circuitry/models/batch.hpp"
#include "circuitry/models/architectures.hpp"
#include "circuitry/models/forward_io.hpp"
#include "circuitry/models/layer_step.hpp"
#include "circuitry/models/parameters.hpp"

namespace circuitry {

template <ArchitectureSpec Arch, class T, Backend Kernels = CpuBackend>
class Model {
 public:
  using architecture = Arch;
  using scalar = T;
  using backend = Kernels;
  using norm = typename Arch::norm;
  using attention = typename Arch::attention;
  using mlp = typename Arch::mlp;
  using unembed = typename Arch::unembed;

  static constexpr bool parallel = Arch::parallel_attn_mlp;

  Model(ModelConfig config, Weights<T> weights) : config_(std::move(config)), weights_(std::move(weights)) {
    Arch::check_config(config_);
    check_weights();
    rotary_ = attention::template rotary_table<T>(config_);
    if (config_.rotary_base_local != 0) rotary_local_ = attention::template rotary_table<T>(config_, true);
  }
  // The parameter view points into this model's own tensors: copies make their own.
  Model(const Model& other) : Model(other.config_, other.weights_) {}
  Model(Model&& other) noexcept : config_(std::move(other.config_)), weights_(std::move(other.weights_)),
                                  rotary_(std::move(other.rotary_)), rotary_local_(std::move(other.rotary_local_)) {
    params_ = make_params();
  }
  Model& operator=(Model other) {
    config_ = std::move(other.config_);
    weights_ = std::move(other.weights_);
    rotary_ = std::move(other.rotary_);
    rotary_local_ = std::move(other.rotary_local_);
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
  /// Layer l's attention mask of `lanes` copies of a batch stacked one after another.
  ops::KeyMask key_mask(const Batch& batch, std::size_t lanes, std::size_t l) const { return attention::mask(batch, lanes, config_, l); }
  /// Layer l's rotary angles of every position (rotary architectures), else empty.
  const std::optional<ops::RotaryTable<T>>& rotary(std::size_t l) const { return config_.local_rotary(l) ? rotary_local_ : rotary_; }
  /// The first residual stage that holds layer l's head outputs and that a forward can start
  /// at: 2l + 1 (the MLP's input), or, in a parallel block, 2l + 2 (the next layer's input).
  static std::size_t stage_after_heads(std::size_t l) { return parallel ? 2 * l + 2 : 2 * l + 1; }

  /// Logits at the batch's readout rows (each sequence's last position, or positions 1.. in mode
  /// `all`) [R, vocab_out], or at every position (options.all_positions) [batch * pos, vocab_out].
  template <class Ctx>
  Var<T> forward(const Ctx& ctx, const Batch& batch, const ForwardOptions<T>& o = {},
                 const ParamVars<T>* params = nullptr) const {
    static_assert(std::is_same_v<typename Ctx::backend, Kernels>, "Model::forward: the context's backend is not the model's");
    const ModelConfig& c = config_;
    const std::size_t B = batch.batch, P = batch.pos, D = c.n_embd, L = c.n_layer, BPD = B * P * D;
    require(P <= c.n_positions, "sequence of " + std::to_string(P) + " tokens is longer than the context (n_positions = " +
                                    std::to_string(c.n_positions) + ")");
    const ParamVars<T>& pv = params ? *params : params_;
    detail::ForwardIo<Model> io(*this, pv, o, BPD);
    auto hook = [&](const std::string& name, const Var<T>& v) { io.hook(name, v); };

    // ---- input node --------------------------------------------------------------------
    Var<T> resid;  // [B, P, D]
    if (o.input_override) {  // a copy that takes part in differentiation
      resid = ctx.output({B, P, D}, true);
      Kernels::copy(BPD, o.input_override, resid.value);
    } else {
      resid = Arch::embed::input(ctx, pv, c, batch, hook);
    }
    io.record_node(0, resid.value);
    if (o.input_var) *o.input_var = resid;

    // ---- blocks ----------------------------------------------------------------------
    // When nothing but the readout rows' logits is wanted (no tape, hooks or recording),
    // the last layer runs its queries, head outputs and MLP on those rows only: [R, D].
    const bool lean_last_layer = !Ctx::records && !o.all_positions && !o.named() && !o.node_outputs && !o.residuals;
    LaneRun<T, Kernels> run;
    run.chained = true, run.x = resid, run.params = &pv;
    for (std::size_t l = 0; l < L; ++l) layer_step(ctx, *this, batch, l, lean_last_layer && l + 1 == L, run, io);
    resid = run.x;  // [B, P, D], or [R, D] after a lean last layer

    // ---- final norm and unembedding --------------------------------------------------
    io.residual(2 * L, run);
    Var<T> normed = unembed::normalize(ctx, resid, pv, c, io.port_sink(L * ports_per_layer()));  // [B, P, D]
    hook("ln_final.hook_normalized", normed);
    Var<T> rows = o.all_positions ? Var<T>{normed.value, {B * P, D}, normed.slot}
                  : lean_last_layer ? normed
                                  : ops::gather_rows(ctx, normed, batch.readout);
    return unembed::project(ctx, rows, pv, c);  // [readout rows or batch * pos, vocab_out]
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
  std::optional<ops::RotaryTable<T>> rotary_local_;  // Gemma 3's sliding layers' (rotary_base_local)
  ParamVars<T> params_;                         // views of weights_
};

/// The context of a run of model M on its backend, and that backend's arena.
template <class M, bool Grad = false>
using ContextFor = Context<typename M::scalar, Grad, typename M::backend>;
template <class M>
using ArenaFor = typename M::backend::Arena;

template <ArchitectureSpec Arch, class T, Backend Kernels>
Model<Arch, T, Kernels> Model<Arch, T, Kernels>::random(const ModelConfig& c, unsigned seed, double stddev) {
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
