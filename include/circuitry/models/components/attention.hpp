#pragma once
// The attention component: H heads of width d_head (free: H d_head need not be d_model).
// Each head h of layer l is an upstream node a{l}.h{h} whose output is z_h W_O[h] (without b_O,
// a constant of the residual stream) and three downstream ports <q>, <k>, <v>, each reading
// its own copy of the residual through its own norm (DESIGN.md section 2).
//   qkv = Norm(x) W_QKV + b_QKV                     [B, P, 3 H d_head]  (q | k | v blocks)
//   pattern = softmax(S + mask)                     [B, H, P, P]
//   S = q k^T / sqrt(d_head), or with config.attn_scale instead of 1 / sqrt(d_head), soft-capped
//   as c tanh(S / c) when config.attn_softcap = c (Gemma 2)
//   z = pattern v                                   [B, P, H, d_head]
//   out = z W_O + b_O = sum_h z_h W_O[h] + b_O      [B, P, D]
// The mask is the first template argument: Causal (GPT-2) or Bidirectional (tracr, BERT-style);
// a causal layer the config marks sliding sees its last config.sliding_window keys only.
// The second says how positions enter: NoRotary (they came in with the input node, or not at
// all) or Rotary (GPT-NeoX, Llama: q and k of every head are rotated by their position,
// ops/rotary.hpp, after the projection and its bias).
// Grouped-query attention (n_kv_head < n_head; Llama 3, Qwen2, Mistral): W_QKV has KV heads of
// keys and values, [D, (H + 2 KV) d_head]; query head h reads KV head h / (H / KV). The qkv
// activations are ungrouped, [B, P, 3 H d_head], every query head with its own copy of its
// group's k and v: each head's <k> and <v> port reads its own residual copy, as in EAP-IG's
// graph (ops::PortSplit), and the pattern and mix kernels stay those of plain multi-head attention.
// Biases are facts of the checkpoint: b_QKV (config.attn_qkv_bias) and b_O (attn_out_bias). So
// is a QK norm (config.qk_norm; Qwen3): an RMS norm over d_head of every head's q and k, with
// gains attn.q_norm.w and attn.k_norm.w [d_head], after the projection and before rotary
// (ops/qk_norm.hpp); it is inside the head, so the graph is the same. Gemma 3's local layers turn
// q and k at their own rotary base (config.rotary_base_local): the model keeps one table per base.
// The same functions serve the whole-layer forward (models/layer_step.hpp) and the single-head
// forwards of activation and path patching (models/node_forward.hpp).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/core/arena.hpp"
#include "circuitry/ops.hpp"
#include "circuitry/ops/head_outputs.hpp"
#include "circuitry/ops/norm_linear_each_port.hpp"
#include "circuitry/ops/rotary.hpp"
#include "circuitry/models/batch.hpp"
#include "circuitry/models/parameters.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

/// Row i attends to keys 0..i.
struct Causal {
  static constexpr std::string_view name = "causal";
  static constexpr bool causal = true;
  static ops::KeyMask mask(const Batch&, std::size_t /*lanes*/, std::size_t window) { return ops::KeyMask::causal_mask(window); }
};

/// Every row attends to all real positions of its sequence (padding is never a key).
struct Bidirectional {
  static constexpr std::string_view name = "bidirectional";
  static constexpr bool causal = false;
  /// The key lengths of `lanes` copies of the batch stacked one after another.
  static ops::KeyMask mask(const Batch& batch, std::size_t lanes, std::size_t window) {
    require(window == 0, "bidirectional attention has no sliding window");
    std::vector<std::size_t> lengths;
    for (std::size_t k = 0; k < lanes; ++k)
      for (std::size_t b = 0; b < batch.batch; ++b) lengths.push_back(batch.last[b] - b * batch.pos + 1);
    return ops::KeyMask::bidirectional(std::move(lengths));
  }
};

/// Positions do not enter inside attention.
struct NoRotary {
  static constexpr bool present = false;
};
/// Rotary positions (config.rotary_dim of each head's dimensions, base config.rotary_base,
/// frequencies scaled by config.rope_scaling).
struct Rotary {
  static constexpr bool present = true;
  static constexpr std::string_view name = "rotary";
};

template <class Mask, class Positions = NoRotary>
struct Attention {
  using mask_type = Mask;
  using positions = Positions;
  static constexpr bool rotary = Positions::present;
  static constexpr std::string_view name = Mask::name;

  template <class Declare>
  static void parameters(const ModelConfig& c, const std::string& prefix, Declare&& declare) {
    const std::size_t D = c.n_embd, A = c.d_attn(), N = c.qkv_width(), dh = c.d_head();
    const std::vector<std::size_t> qkv_parts{c.n_head * dh, c.kv_heads() * dh, c.kv_heads() * dh};  // q | k | v
    declare(ParamDecl{prefix + "attn.W_QKV", {D, N}, ParamKind::matrix, qkv_parts});
    if (c.attn_qkv_bias) declare(ParamDecl{prefix + "attn.b_QKV", {N}, ParamKind::bias, qkv_parts});
    if (c.qk_norm) {
      declare(ParamDecl{prefix + "attn.q_norm.w", {dh}, ParamKind::norm_gain, {}});
      declare(ParamDecl{prefix + "attn.k_norm.w", {dh}, ParamKind::norm_gain, {}});
    }
    declare(ParamDecl{prefix + "attn.W_O", {A, D}, ParamKind::matrix, {}});
    if (c.attn_out_bias) declare(ParamDecl{prefix + "attn.b_O", {D}, ParamKind::bias, {}});
  }

  /// The mask of layer l for `lanes` copies of a batch stacked one after another.
  static ops::KeyMask mask(const Batch& batch, std::size_t lanes, const ModelConfig& c, std::size_t l) {
    return Mask::mask(batch, lanes, c.window(l));
  }
  /// How the scores are formed from q . k (scale, soft cap).
  static AttentionScores scores(const ModelConfig& c) { return {c.attn_scale, c.attn_softcap}; }
  /// The rotary angles a model of this config needs (for every position of its context), or none;
  /// local: those of the sliding layers' own base (config.rotary_base_local, unscaled).
  template <class T>
  static std::optional<ops::RotaryTable<T>> rotary_table(const ModelConfig& c, bool local = false) {
    if constexpr (rotary) {
      if (local) return ops::RotaryTable<T>(c.n_positions, c.rotary_dims(), c.rotary_base_local);
      return ops::RotaryTable<T>(c.n_positions, c.rotary_dims(), c.rotary_base, c.rope_scaling);
    } else {
      return std::nullopt;
    }
  }
  /// How W_QKV's columns split into the q, k, v ports of every head.
  static ops::PortSplit port_split(const ModelConfig& c) { return ops::PortSplit::qkv_heads(c.n_head, c.d_head(), c.kv_heads()); }

  // ---- the whole layer, on the tape ---------------------------------------------------

  /// q | k | v of every head from Norm(x), each head's q, k, v its own port (before rotary; after
  /// the QK norm when the model has one). [B, P, 3 H d_head]
  template <class Norm, class Ctx, class T = typename Ctx::scalar>
  static Var<T> qkv(const Ctx& ctx, const Var<T>& x, const LayerParams<T>& w, const ModelConfig& c,
                    ops::PortGradientSink<T> sink = {}) {
    Var<T> qkv = ops::norm_linear_ports<Norm>(ctx, x, w["ln1.w"], w["ln1.b"], static_cast<T>(c.layer_norm_epsilon),
                                              &w["attn.W_QKV"], optional_param(w["attn.b_QKV"]), port_split(c), std::move(sink));
    if (c.qk_norm) qkv = ops::qk_rms_norm(ctx, qkv, c.n_head, w["attn.q_norm.w"], w["attn.k_norm.w"], static_cast<T>(c.layer_norm_epsilon));
    return qkv;
  }
  /// qkv as above, each q/k/v port reading its own input (a masked forward; head by head on the
  /// tape): x [3H, B * P, D] -> [B, P, 3 H d_head]
  template <class Norm, class Ctx, class T = typename Ctx::scalar>
  static Var<T> qkv_each_port(const Ctx& ctx, const Var<T>& x, const LayerParams<T>& w, const ModelConfig& c, std::size_t B, std::size_t P) {
    Var<T> qkv = ops::norm_linear_each_port<Norm>(ctx, x, w["ln1.w"], w["ln1.b"], static_cast<T>(c.layer_norm_epsilon), w["attn.W_QKV"],
                                                  optional_param(w["attn.b_QKV"]), port_split(c), Shape{B, P, 3 * c.d_attn()});
    if (c.qk_norm) qkv = ops::qk_rms_norm(ctx, qkv, c.n_head, w["attn.q_norm.w"], w["attn.k_norm.w"], static_cast<T>(c.layer_norm_epsilon));
    return qkv;
  }
  /// qkv with every head's q and k turned by its position (rotary), or qkv itself. [B, P, 3 H d_head]
  template <class Ctx, class T = typename Ctx::scalar>
  static Var<T> rotate(const Ctx& ctx, const Var<T>& qkv, const ModelConfig& c, const std::optional<ops::RotaryTable<T>>& table) {
    if constexpr (rotary) return ops::rotary_qk(ctx, qkv, c.n_head, *table);
    else return qkv;
  }
  /// [B, H, P, P]
  template <class Ctx, class T = typename Ctx::scalar>
  static Var<T> pattern(const Ctx& ctx, const Var<T>& qkv, const ModelConfig& c, const ops::KeyMask& mask) {
    return ops::attention_pattern(ctx, qkv, c.n_head, mask, scores(c));
  }
  /// [B, P, H, d_head]
  template <class Ctx, class T = typename Ctx::scalar>
  static Var<T> mix(const Ctx& ctx, const Var<T>& pattern, const Var<T>& qkv, const ModelConfig& c) {
    return ops::attention_mix(ctx, pattern, qkv, c.n_head);
  }
  /// z W_O + b_O: z [rows..., H d_head] -> [rows..., D]
  template <class Ctx, class T = typename Ctx::scalar>
  static Var<T> output(const Ctx& ctx, const Var<T>& z, const LayerParams<T>& w) {
    return ops::linear(ctx, z, w["attn.W_O"], optional_param(w["attn.b_O"]));
  }
  /// Every head's output z_h W_O[h] apart (no b_O), the heads' node outputs:
  /// z [B, P, H, d_head] -> [H, B * P, D]
  template <class Ctx, class T = typename Ctx::scalar>
  static Var<T> each_head_output(const Ctx& ctx, const Var<T>& z, const LayerParams<T>& w, const ModelConfig& c) {
    return ops::head_outputs(ctx, Var<T>{z.value, {z.numel() / c.d_attn(), c.d_attn()}, z.slot}, w["attn.W_O"], c.n_head);
  }
  // The raw-buffer paths below take their backend as `Kernels` (the taped ones from the context).

  /// Every head's node output z_h W_O[h] (no b_O) into dst + h * stride ([rows, D] each), or,
  /// with subtract, subtracted from what is there (one small GEMM per head).
  template <class Kernels, class T>
  static void head_outputs(const T* z, const T* w_o, const ModelConfig& c, std::size_t rows, T* dst, std::size_t stride,
                           bool subtract) {
    const std::size_t D = c.n_embd, H = c.n_head, dh = c.d_head(), A = c.d_attn();
    const T sign = subtract ? T(-1) : T(1), keep = subtract ? T(1) : T(0);
    parallel_items(H, rows * D * dh, [&](std::size_t h) {
      Kernels::gemm(Trans::No, Trans::No, rows, D, dh, sign, z + h * dh, A, w_o + h * dh * D, D, keep, dst + h * stride, D);
    });
  }

  // ---- one head, no tape (activation and path patching) -------------------------------

  /// Head h's q | k | v from three residual copies (each [rows, D], rows = B * P; they may
  /// alias): the norm, this head's columns of W_QKV (its group's for k and v), the QK norm, then
  /// rotary. [rows, 3 d_head], in the arena.
  template <class Norm, class Kernels, class T>
  static T* head_qkv(const LayerParams<T>& w, const ModelConfig& c, std::size_t h, const T* xq, const T* xk, const T* xv,
                     std::size_t rows, std::size_t P, const std::optional<ops::RotaryTable<T>>& table,
                     typename Kernels::Arena& arena) {
    const std::size_t D = c.n_embd, dh = c.d_head(), N = c.qkv_width();
    const ops::PortSplit split = port_split(c);
    const T* ln_w = w["ln1.w"].value;
    const T* ln_b = w["ln1.b"].value;
    const T* w_qkv = w["attn.W_QKV"].value;
    const T* b_qkv = w["attn.b_QKV"].value;
    T* normed = arena.template alloc<T>(rows * D);
    T* mean = arena.template alloc<T>(rows);
    T* rstd = arena.template alloc<T>(rows);
    T* out = arena.template alloc<T>(rows * 3 * dh);  // [rows, 3 dh]: this head's q | k | v
    const T* inputs[3] = {xq, xk, xv};
    for (std::size_t j = 0; j < 3; ++j) {
      if (j == 0 || inputs[j] != inputs[j - 1])
        Kernels::norm_forward(Norm::kind, inputs[j], ln_w, ln_b, normed, mean, rstd, rows, D, static_cast<T>(c.layer_norm_epsilon));
      const std::size_t col = split.weight_column(j, h);
      // The bias (or zero) in every row, then this head's columns of the projection added on.
      if (b_qkv) Kernels::copy_blocks(rows, dh, b_qkv + col, 0, out + j * dh, 3 * dh);
      Kernels::gemm(Trans::No, Trans::No, rows, dh, D, T(1), normed, D, w_qkv + col, N, b_qkv ? T(1) : T(0), out + j * dh, 3 * dh);
    }
    if (c.qk_norm) {  // this head's q and k: one head of each
      T* qk_rstd = arena.template alloc<T>(rows * 2);  // [rows, 2]
      Kernels::qk_rms_norm_forward(rows, 3 * dh, 1, dh, w["attn.q_norm.w"].value, w["attn.k_norm.w"].value,
                                   static_cast<T>(c.layer_norm_epsilon), out, qk_rstd);
    }
    if constexpr (rotary)  // q and k
      Kernels::rotate_half(rows, P, 3 * dh, 2, dh, table->rot, table->cos.data(), table->sin.data(), false, out);
    return out;
  }

  /// Head h reading its q, k, v inputs from three residual copies ([B, P, D] each).
  /// out = z_h W_O[h], without b_O. [B, P, D]
  template <class Norm, class Kernels, class T>
  static void head_output(const LayerParams<T>& w, const ModelConfig& c, std::size_t h, const T* xq, const T* xk, const T* xv,
                          std::size_t B, std::size_t P, const ops::KeyMask& mask,
                          const std::optional<ops::RotaryTable<T>>& table, typename Kernels::Arena& arena, T* out) {
    const std::size_t D = c.n_embd, dh = c.d_head(), rows = B * P;
    Context<T, false, Kernels> ctx(arena);
    Var<T> packed{head_qkv<Norm, Kernels>(w, c, h, xq, xk, xv, rows, P, table, arena), {B, P, 3 * dh}, nullptr};
    Var<T> z = ops::attention_mix(ctx, ops::attention_pattern(ctx, packed, 1, mask, scores(c)), packed, 1);  // [B, P, 1, dh]
    Kernels::gemm(Trans::No, Trans::No, rows, D, dh, T(1), z.value, dh, w["attn.W_O"].value + h * dh * D, D, T(0), out, D);
  }

  /// The same head's output at some query rows only (`rows`: flat b * P + t, the readout rows
  /// of the run).  out [rows, D]
  template <class Norm, class Kernels, class T>
  static void head_output_rows(const LayerParams<T>& w, const ModelConfig& c, std::size_t h, const T* xq, const T* xk, const T* xv,
                               std::size_t B, std::size_t P, const std::vector<std::size_t>& rows, const ops::KeyMask& mask,
                               const std::optional<ops::RotaryTable<T>>& table, typename Kernels::Arena& arena, T* out) {
    const std::size_t D = c.n_embd, dh = c.d_head(), R = rows.size();
    const T* packed = head_qkv<Norm, Kernels>(w, c, h, xq, xk, xv, B * P, P, table, arena);  // [B, P, 3 dh]
    T* z = arena.template alloc<T>(R * dh);                               // [R, dh]
    Kernels::attention_rows(AttentionShape{B, P, 1, dh, scores(c)}, mask, rows, packed, z);
    Kernels::gemm(Trans::No, Trans::No, R, D, dh, T(1), z, dh, w["attn.W_O"].value + h * dh * D, D, T(0), out, D);
  }
};

}  // namespace circuitry
