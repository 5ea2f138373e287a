#pragma once
// A GPT-2-family model: an architecture type, a config and weights, and the forward pass.
//
// The forward is written once against the op library and a Context, so the same code
// runs with the tape (gradients) or without it (Context<T, false> compiles the tape away).
// Alongside the logits it can record what circuit discovery needs (llm.c-style explicit
// activations): every upstream node's output, the residual stream at every stage, and
// the gradient of the metric w.r.t. every downstream port's input (ops/norm_linear.hpp).
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "circuitry/core/ops.hpp"
#include "circuitry/models/batch.hpp"
#include "circuitry/models/components.hpp"
#include "circuitry/models/hooks.hpp"
#include "circuitry/models/parameters.hpp"

namespace circuitry {

/// The residual stream is recorded at 2 L + 1 stages: stage 2l is layer l's input
/// (resid_pre), 2l + 1 its middle (after attention, the MLP's input), 2L the final norm's input.
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
  /// Starts the pass at `start_stage` from this residual instead of the embeddings. [batch, pos, d_model]
  const T* start_residual = nullptr;
  std::size_t start_stage = 0;
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

template <class T>
void check_weights(const ModelConfig& c, const Weights<T>& w, bool has_mlp);

template <ArchitectureSpec Arch, class T>
class Model {
 public:
  using architecture = Arch;
  using scalar = T;

  Model(ModelConfig config, Weights<T> weights) : config_(config), weights_(std::move(weights)) {
    Arch::check_config(config_);
    check_weights(config_, weights_, Arch::has_mlp);
  }

  /// GPT-2's initialisation: N(0, 0.02) weights, unit norms, zero biases (seeded).
  static Model random(const ModelConfig& c, unsigned seed, double stddev = 0.02);

  const ModelConfig& config() const { return config_; }
  const Weights<T>& weights() const { return weights_; }
  Weights<T>& weights() { return weights_; }
  Graph graph() const { return Graph(Arch::graph_shape(config_)); }
  std::size_t n_upstream() const { return 1 + config_.n_layer * (config_.n_head + (Arch::has_mlp ? 1 : 0)); }
  std::size_t ports_per_layer() const { return 3 * config_.n_head + (Arch::has_mlp ? 1 : 0); }

  /// Logits at each sequence's last position [batch, vocab] (or every position, see options).
  template <class Ctx>
  Var<T> forward(const Ctx& ctx, const Batch& batch, const ForwardOptions<T>& o = {},
                 const ParamVars<T>* params = nullptr) const {
    const std::size_t B = batch.batch, P = batch.pos, D = config_.n_embd, H = config_.n_head, dh = D / H;
    const std::size_t L = config_.n_layer, BPD = B * P * D;
    require(P <= config_.n_positions, "sequence of " + std::to_string(P) + " tokens is longer than the context (n_positions = " +
                                          std::to_string(config_.n_positions) + ")");
    const ParamVars<T> local = params ? ParamVars<T>{} : ParamVars<T>::view(weights_);
    const ParamVars<T>& pv = params ? *params : local;
    const T eps = static_cast<T>(config_.layer_norm_epsilon);
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
      if (o.residuals) std::memcpy(o.residuals + stage * BPD, r.value, BPD * sizeof(T));
    };
    auto record_node = [&](std::size_t node, const T* value) {
      if (!o.node_outputs) return;
      if (o.subtract_node_outputs) ops::vec(o.node_outputs + node * BPD, BPD) -= ops::vec(value, BPD);
      else std::memcpy(o.node_outputs + node * BPD, value, BPD * sizeof(T));
    };
    auto sink_for = [&](std::size_t first_port) -> ops::PortGradientSink<T> {
      if (!o.port_gradients) return {};
      return [cb = o.port_gradients, first_port](const T* g, std::size_t n, std::size_t, std::size_t) { cb(first_port, g, n); };
    };
    auto as_input = [&](const T* data) {  // a copy that takes part in differentiation
      Var<T> v = ctx.output({B, P, D}, true);
      std::memcpy(v.value, data, BPD * sizeof(T));
      return v;
    };

    // ---- input node: token + position embedding --------------------------------------
    Var<T> resid;  // [B, P, D]
    if (o.start_residual) {
      require(o.start_stage < residual_stages(L), "start stage out of range");
      resid = as_input(o.start_residual);
    } else if (o.input_override) {
      resid = as_input(o.input_override);
    } else {
      Var<T> tok = ops::embedding(ctx, pv.wte, batch.tokens, {B, P});  // [B, P, D]
      std::vector<int> positions(B * P);
      for (std::size_t i = 0; i < B * P; ++i) positions[i] = static_cast<int>(i % P);
      Var<T> pos = ops::embedding(ctx, pv.wpe, positions, {B, P});  // [B, P, D]
      if constexpr (Ctx::records) {  // gradients reach the embeddings even when the tables are constants
        if (!tok.needs_grad()) ctx.tape().watch(tok);
        if (!pos.needs_grad()) ctx.tape().watch(pos);
      }
      hook("hook_embed", tok);
      hook("hook_pos_embed", pos);
      resid = ops::add(ctx, tok, pos);
    }
    if (!o.start_residual) record_node(0, resid.value);
    if (o.input_var) *o.input_var = resid;

    // ---- blocks ----------------------------------------------------------------------
    // When nothing but the last positions' logits is wanted (no tape, hooks or recording),
    // the last layer runs its queries, head outputs and MLP on those rows only: [B, D].
    const bool lean_last_layer = !Ctx::records && !o.all_positions && !named && !o.node_outputs && !o.residuals;
    bool gathered = false;  // resid holds only the last rows  [B, D]
    const std::size_t first_layer = o.start_residual ? o.start_stage / 2 : 0;
    for (std::size_t l = first_layer; l < L; ++l) {
      const LayerVars<T>& w = pv.layers[l];
      const std::string pre = named ? "blocks." + std::to_string(l) + "." : "";
      const std::size_t node0 = 1 + l * (H + (Arch::has_mlp ? 1 : 0));
      const bool lean = lean_last_layer && l + 1 == L;
      if (lean && (!o.start_residual || o.start_stage <= 2 * l)) {
        Var<T> qkv = ops::norm_linear_ports(ctx, resid, w.ln1_w, w.ln1_b, eps, &w.w_qkv, &w.b_qkv, ops::PortSplit::qkv_heads(H, dh));
        Var<T> z = ctx.output({B, D}, false);  // [B, H * dh] at the last rows
        ops::causal_attention_rows(qkv.value, B, P, D, H, batch.last, z.value);
        resid = ops::add(ctx, ops::gather_rows(ctx, resid, batch.last), ops::linear(ctx, z, w.w_o, &w.b_o));  // [B, D]
        gathered = true;
      } else if (!o.start_residual || o.start_stage <= 2 * l) {
        hook(pre + "hook_resid_pre", resid);
        record_residual(2 * l, resid);
        // q, k, v of every head from LN1(resid); each head's q/k/v is its own port.
        Var<T> qkv = ops::norm_linear_ports(ctx, resid, w.ln1_w, w.ln1_b, eps, &w.w_qkv, &w.b_qkv,
                                            ops::PortSplit::qkv_heads(H, dh), sink_for(l * ports_per_layer()));  // [B, P, 3D]
        if (hooked)
          for (std::size_t j = 0; j < 3; ++j)
            hook_view(pre + "attn.hook_" + "qkv"[j], TensorView<T>{qkv.value + j * D, {B, P, H, dh}, {P * 3 * D, 3 * D, dh, 1}});
        Var<T> pattern = ops::causal_attention_pattern(ctx, qkv, H);  // [B, H, P, P]
        hook(pre + "attn.hook_pattern", pattern);
        Var<T> z = ops::attention_mix(ctx, pattern, qkv, H);  // [B, P, H, dh]
        hook(pre + "attn.hook_z", z);
        Var<T> z_flat{z.value, {B, P, D}, z.slot};  // [B, P, H * dh]
        Var<T> attn_out = ops::linear(ctx, z_flat, w.w_o, &w.b_o);  // [B, P, D]
        hook(pre + "hook_attn_out", attn_out);
        if (o.node_outputs) {  // head h's node output: z_h W_O[h], without b_O (one small GEMM per head)
          const T sign = o.subtract_node_outputs ? T(-1) : T(1), keep = o.subtract_node_outputs ? T(1) : T(0);
#pragma omp parallel for if (BPD * dh * H > ops::kParallelGrain * 64)
          for (std::size_t h = 0; h < H; ++h)
            gemm<T>(Trans::No, Trans::No, B * P, D, dh, sign, z.value + h * dh, D, w.w_o.value + h * dh * D, D, keep,
                    o.node_outputs + (node0 + h) * BPD, D);
        }
        resid = ops::add(ctx, resid, attn_out);
        hook(pre + "hook_resid_mid", resid);
      }
      if constexpr (Arch::has_mlp) {
        if (lean && !gathered) {
          resid = ops::gather_rows(ctx, resid, batch.last);  // [B, D]
          gathered = true;
        }
        record_residual(2 * l + 1, resid);
        Var<T> pre_act = ops::norm_linear_ports(ctx, resid, w.ln2_w, w.ln2_b, eps, &w.w_fc, &w.b_fc, ops::PortSplit::single(),
                                                sink_for(l * ports_per_layer() + 3 * H));  // [B, P, d_mlp]
        hook(pre + "mlp.hook_pre", pre_act);
        Var<T> post = ops::gelu_new(ctx, pre_act);  // [B, P, d_mlp]
        hook(pre + "mlp.hook_post", post);
        Var<T> mlp_out = ops::linear(ctx, post, w.w_proj, &w.b_proj);  // [B, P, D]
        hook(pre + "hook_mlp_out", mlp_out);
        record_node(node0 + H, mlp_out.value);
        resid = ops::add(ctx, resid, mlp_out);
      } else {
        record_residual(2 * l + 1, resid);
      }
      hook(pre + "hook_resid_post", resid);
    }

    // ---- final norm and unembedding --------------------------------------------------
    record_residual(2 * L, resid);
    Var<T> normed = ops::norm_linear_ports(ctx, resid, pv.lnf_w, pv.lnf_b, eps, nullptr, nullptr, ops::PortSplit::single(),
                                           sink_for(L * ports_per_layer()));  // [B, P, D]
    hook("ln_final.hook_normalized", normed);
    Var<T> rows = o.all_positions ? Var<T>{normed.value, {B * P, D}, normed.slot}
                  : gathered      ? normed
                                  : ops::gather_rows(ctx, normed, batch.last);
    return ops::matmul_transposed(ctx, rows, pv.unembed);  // [batch or batch * pos, vocab]
  }

 private:
  ModelConfig config_;
  Weights<T> weights_;
};

template <class T>
void check_weights(const ModelConfig& c, const Weights<T>& w, bool has_mlp) {
  const std::size_t D = c.n_embd, F = c.n_inner, V = c.vocab_size;
  require(c.n_layer > 0 && c.n_head > 0 && D > 0 && D % c.n_head == 0,
          "model config: n_embd (" + std::to_string(D) + ") must be a positive multiple of n_head (" + std::to_string(c.n_head) + ")");
  auto check = [](const auto& t, std::initializer_list<std::size_t> shape, const std::string& name) {
    bool same = t.dimension() == shape.size();
    std::size_t i = 0;
    for (std::size_t s : shape) same = same && t.shape()[i++] == s;
    require(same, "weight " + name + " has the wrong shape (expected " + Shape(shape).str() + ")");
  };
  check(w.wte, {V, D}, "wte");
  check(w.wpe, {c.n_positions, D}, "wpe");
  require(w.layers.size() == c.n_layer, "weights have " + std::to_string(w.layers.size()) + " layers, config says " + std::to_string(c.n_layer));
  for (std::size_t l = 0; l < c.n_layer; ++l) {
    const auto& x = w.layers[l];
    const std::string p = "h." + std::to_string(l) + ".";
    check(x.ln1_w, {D}, p + "ln_1.weight"), check(x.ln1_b, {D}, p + "ln_1.bias");
    check(x.w_qkv, {D, 3 * D}, p + "attn.c_attn.weight"), check(x.b_qkv, {3 * D}, p + "attn.c_attn.bias");
    check(x.w_o, {D, D}, p + "attn.c_proj.weight"), check(x.b_o, {D}, p + "attn.c_proj.bias");
    if (has_mlp) {
      check(x.ln2_w, {D}, p + "ln_2.weight"), check(x.ln2_b, {D}, p + "ln_2.bias");
      check(x.w_fc, {D, F}, p + "mlp.c_fc.weight"), check(x.b_fc, {F}, p + "mlp.c_fc.bias");
      check(x.w_proj, {F, D}, p + "mlp.c_proj.weight"), check(x.b_proj, {D}, p + "mlp.c_proj.bias");
    }
  }
  check(w.lnf_w, {D}, "ln_f.weight"), check(w.lnf_b, {D}, "ln_f.bias");
  if (!c.tie_word_embeddings) check(w.lm_head, {V, D}, "lm_head.weight");
}

template <ArchitectureSpec Arch, class T>
Model<Arch, T> Model<Arch, T>::random(const ModelConfig& c, unsigned seed, double stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, stddev);
  const std::size_t D = c.n_embd, F = c.n_inner, V = c.vocab_size;
  auto randn = [&](auto shape) {
    ParamTensor<T, std::tuple_size_v<decltype(shape)>> t(shape);
    for (auto& v : t) v = static_cast<T>(normal(rng));
    return t;
  };
  auto fill = [](std::size_t n, T v) { return ParamTensor<T, 1>(std::array<std::size_t, 1>{n}, v); };
  Weights<T> w;
  w.wte = randn(std::array<std::size_t, 2>{V, D});
  w.wpe = randn(std::array<std::size_t, 2>{c.n_positions, D});
  for (std::size_t l = 0; l < c.n_layer; ++l) {
    LayerWeights<T> x;
    x.ln1_w = fill(D, 1), x.ln1_b = fill(D, 0);
    x.w_qkv = randn(std::array<std::size_t, 2>{D, 3 * D}), x.b_qkv = fill(3 * D, 0);
    x.w_o = randn(std::array<std::size_t, 2>{D, D}), x.b_o = fill(D, 0);
    if (Arch::has_mlp) {
      x.ln2_w = fill(D, 1), x.ln2_b = fill(D, 0);
      x.w_fc = randn(std::array<std::size_t, 2>{D, F}), x.b_fc = fill(F, 0);
      x.w_proj = randn(std::array<std::size_t, 2>{F, D}), x.b_proj = fill(D, 0);
    }
    w.layers.push_back(std::move(x));
  }
  w.lnf_w = fill(D, 1), w.lnf_b = fill(D, 0);
  if (!c.tie_word_embeddings) w.lm_head = randn(std::array<std::size_t, 2>{V, D});
  return Model(c, std::move(w));
}

}  // namespace circuitry
