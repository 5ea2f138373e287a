#pragma once
// Planted-circuit models: small attention-only transformers with hand-set weights whose
// behaviour on their task flows through a chosen set of edges only, so the true circuit is
// known by construction (the ground truth that circuit-discovery methods are scored against
// when no real model's circuit is at hand; cf. tracr, Lindner et al. 2023).
//
// The construction keeps every layer norm a fixed linear map. Every vector written into the
// residual stream is a "pair code" in a block of its own: symbol s in a block at offset o is
// +1 at o + 2s and -1 at o + 2s + 1. Pair codes have zero mean and norm sqrt(2), so the
// residual (token code + position code + one code per head so far) has zero mean and a norm
// that does not depend on the input, and LN(x) = x / s with the same s in every run:
// clean, corrupted, and any run with edges patched by resample ablation (a patched edge
// swaps one code for another).
//   - token t -> code t in the TOKEN block; position i -> code i in the POSITION block.
//   - every head attends by position only (q and k read the POSITION block): the query at
//     position i attends to position max(i - r, 0) with a score margin of 200, so the
//     softmax is one-hot (exactly, in float32). Clean and corrupted runs share positions,
//     so q and k edges carry nothing that differs between them: their effect is 0.
//   - a head's value reads one source block (TOKEN or an earlier head's block) and the head
//     writes the code it finds there into its own block: it copies a symbol r positions back.
//   - the unembedding reads only the blocks of the heads that end the planted paths.
// The planted circuit: the heads on the chosen paths, their v edges along the path and their
// edges to logits. Every other head also copies (from a random earlier block, so it is busy
// and correlated with the circuit), but nothing reads what it writes. Hence patching any edge
// outside the circuit changes nothing (to rounding), and each planted edge changes the
// answer's logit.
// Shapes: `chain` (one head per layer, each reading the previous one; the last feeds the
// logits), `fork` (the chain plus one head of the last layer that copies the same token
// straight from the embedding; both feed the logits), `induction` (Olsson et al. 2022: a
// previous-token head in layer 0 and an induction head in the last layer whose query reads
// the current token and whose key the previous-token head's output; it attends to the
// position after the earlier copy of the current token, or to position 0 when there is
// none, and copies that token). Induction's attention is content-based and saturated, so its
// q and k edges matter while their gradients vanish: the case where attribution patching
// fails and activation patching does not (Syed et al. 2023, section 5).
// Resample ablation only: zero and mean ablation write vectors that are not pair codes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "circuitry/models/model.hpp"
#include "circuitry/text/task.hpp"

namespace circuitry {

enum class PlantedShape { Chain, Fork, Induction };

inline PlantedShape parse_planted_shape(const std::string& name) {
  if (name == "chain") return PlantedShape::Chain;
  if (name == "fork") return PlantedShape::Fork;
  if (name == "induction") return PlantedShape::Induction;
  throw Error("unknown planted-circuit shape '" + name + "' (choose chain, fork or induction)");
}

struct PlantedSpec {
  std::size_t n_layers = 2, n_heads = 4;
  std::size_t vocab = 8;     // symbols; every token is one
  std::size_t n_ctx = 8;     // context length
  std::size_t n_examples = 16;
  PlantedShape shape = PlantedShape::Chain;
  unsigned seed = 1;
};

template <class T>
struct PlantedModel {
  ModelConfig config;
  Weights<T> weights;
  Task task;                            // clean/corrupted pairs; answer = the copied token
  std::vector<std::string> true_edges;  // the planted circuit, in graph names

  /// The planted circuit as one flag per edge of the model's graph.
  std::vector<std::uint8_t> truth(const Graph& graph) const {
    std::vector<std::uint8_t> flags(graph.n_edges(), 0);
    for (const std::string& name : true_edges) flags[static_cast<std::size_t>(graph.find_edge(name))] = 1;
    return flags;
  }
};

namespace detail {

/// A seeded integer in [0, n): the top bits of one mt19937 draw, the same on every platform
/// (std::uniform_int_distribution is implementation-defined).
inline std::size_t planted_draw(std::mt19937& rng, std::size_t n) {
  return static_cast<std::size_t>((static_cast<std::uint64_t>(rng()) * n) >> 32);
}

}  // namespace detail

template <class T>
PlantedModel<T> make_planted_model(const PlantedSpec& spec) {
  const std::size_t L = spec.n_layers, H = spec.n_heads, V = spec.vocab, P = spec.n_ctx;
  require(L >= 1 && H >= 2 && V >= 2 && P >= L + 2, "planted model: need layers >= 1, heads >= 2, vocab >= 2, context >= layers + 2");
  std::mt19937 rng(spec.seed);
  // Blocks: TOKEN [0, 2V), POSITION [2V, 2V + 2P), head (l, h) at head_block(l, h), width 2V.
  const std::size_t token_block = 0, position_block = 2 * V;
  auto head_block = [&](std::size_t l, std::size_t h) { return 2 * V + 2 * P + (l * H + h) * 2 * V; };
  std::size_t D = 2 * V + 2 * P + L * H * 2 * V;
  D = (D + H - 1) / H * H;  // d_model a multiple of n_heads (unused dimensions stay 0)
  const std::size_t dh = D / H;
  require(dh >= std::max(P, V), "planted model: d_head is too small for the one-hot queries and values");

  PlantedModel<T> m;
  m.config.n_layer = L, m.config.n_head = H, m.config.n_embd = D, m.config.n_positions = P, m.config.vocab_size = V;
  m.config.n_inner = 4 * D, m.config.layer_norm_epsilon = 1e-5, m.config.attn_only = true, m.config.tie_word_embeddings = false;
  m.weights = Model<AttnOnly, T>::random(m.config, spec.seed).weights();  // every shape; unit norms, zero biases
  Weights<T>& w = m.weights;
  auto zero = [](auto& t) { std::fill(t.data(), t.data() + t.size(), T(0)); };
  ParamArray<T>& w_e = w.at("embed.W_E");      // [V, D]
  ParamArray<T>& w_pos = w.at("pos_embed.W_pos");  // [P, D]
  ParamArray<T>& w_u = w.at("unembed.W_U");      // [V, D]
  zero(w_e), zero(w_pos), zero(w_u);
  for (std::size_t l = 0; l < L; ++l) zero(w.at(layer_param(l, "attn.W_QKV"))), zero(w.at(layer_param(l, "attn.W_O")));

  auto put_code = [&](T* row, std::size_t block, std::size_t symbol, T scale) {
    row[block + 2 * symbol] = scale;
    row[block + 2 * symbol + 1] = -scale;
  };
  for (std::size_t t = 0; t < V; ++t) put_code(w_e.data() + t * D, token_block, t, T(1));
  for (std::size_t i = 0; i < P; ++i) put_code(w_pos.data() + i * D, position_block, i, T(1));

  // The circuit heads and each head's offset r and source block.
  const bool induction = spec.shape == PlantedShape::Induction;
  require(!induction || (L >= 2 && V + 1 >= P), "planted induction model: needs at least 2 layers and vocab >= context - 1");
  std::vector<std::size_t> chain(L), offset(L * H), source(L * H);
  for (std::size_t l = 0; l < L; ++l) chain[l] = detail::planted_draw(rng, H);
  // Induction: the chain is the previous-token head chain[0] and the induction head chain[L-1].
  auto on_circuit = [&](std::size_t l, std::size_t h) { return h == chain[l] && (!induction || l == 0 || l + 1 == L); };
  std::size_t depth = 0;  // how far back the chain copies from
  for (std::size_t l = 0; l < L; ++l)
    for (std::size_t h = 0; h < H; ++h) {
      offset[l * H + h] = 1 + detail::planted_draw(rng, 2);
      if (induction && on_circuit(l, h)) {  // both copy from the embedding
        source[l * H + h] = token_block;
        offset[l * H + h] = 1;
      } else if (on_circuit(l, h)) {
        source[l * H + h] = l == 0 ? token_block : head_block(l - 1, chain[l - 1]);
        depth += offset[l * H + h];
      } else {  // busy but unread: copies from the embedding or from any head of an earlier layer
        const std::size_t pick = detail::planted_draw(rng, 1 + l * H);
        source[l * H + h] = pick == 0 ? token_block : head_block((pick - 1) / H, (pick - 1) % H);
      }
    }
  std::size_t fork_head = H;  // the fork's direct head: in the last layer, copying the chain's token
  if (spec.shape == PlantedShape::Fork) {
    do fork_head = detail::planted_draw(rng, H);
    while (fork_head == chain[L - 1]);
    source[(L - 1) * H + fork_head] = token_block;
    offset[(L - 1) * H + fork_head] = depth;
  }
  require(depth + 1 <= P, "planted model: the chain copies from further back than the context allows");

  // LN(x) = x / s, with |x|^2 = 2 (2 + number of heads written so far) and zero mean.
  auto ln_scale = [&](std::size_t heads_before) {
    return std::sqrt(2.0 * double(2 + heads_before) / double(D) + m.config.layer_norm_epsilon);
  };
  for (std::size_t l = 0; l < L; ++l) {
    T* wq = w.at(layer_param(l, "attn.W_QKV")).data();  // [D, 3D]: columns q | k | v, head h at h * dh
    T* wo = w.at(layer_param(l, "attn.W_O")).data();    // [D, D]
    const double s = ln_scale(l * H);
    const double score = std::sqrt(200.0 * std::sqrt(double(dh)));  // q . k / sqrt(dh) = 200 at the target
    for (std::size_t h = 0; h < H; ++h) {
      const std::size_t r = offset[l * H + h];
      if (induction && l + 1 == L && h == chain[l]) {
        // q_i = score (e_{token i} + e_V); k_j = score (e_{previous token at j} + [j = 0] e_V / 2):
        // 200 where the previous token matches the current one, 100 at position 0, else 0.
        const std::size_t previous = head_block(0, chain[0]);
        for (std::size_t t = 0; t < V; ++t) {
          wq[(token_block + 2 * t) * 3 * D + h * dh + t] = T(score * s / 2);
          wq[(token_block + 2 * t + 1) * 3 * D + h * dh + t] = T(-score * s / 2);
          wq[(previous + 2 * t) * 3 * D + D + h * dh + t] = T(score * s / 2);
          wq[(previous + 2 * t + 1) * 3 * D + D + h * dh + t] = T(-score * s / 2);
        }
        for (std::size_t i = 0; i < P; ++i) {
          wq[(position_block + 2 * i) * 3 * D + h * dh + V] = T(score * s / 2);
          wq[(position_block + 2 * i + 1) * 3 * D + h * dh + V] = T(-score * s / 2);
        }
        wq[position_block * 3 * D + D + h * dh + V] = T(score * s / 4);
        wq[(position_block + 1) * 3 * D + D + h * dh + V] = T(-score * s / 4);
      } else {
      for (std::size_t i = 0; i < P; ++i) {
        const std::size_t target = i >= r ? i - r : 0;
        // q_i = score * e_i;  k_j = score * sum over the queries i that target j of e_i
        wq[(position_block + 2 * i) * 3 * D + h * dh + i] = T(score * s / 2);
        wq[(position_block + 2 * i + 1) * 3 * D + h * dh + i] = T(-score * s / 2);
        wq[(position_block + 2 * target) * 3 * D + D + h * dh + i] = T(score * s / 2);
        wq[(position_block + 2 * target + 1) * 3 * D + D + h * dh + i] = T(-score * s / 2);
      }
      }
      for (std::size_t v = 0; v < V; ++v) {  // value: e_v for code v of the source block; out: code v of the own block
        wq[(source[l * H + h] + 2 * v) * 3 * D + 2 * D + h * dh + v] = T(s / 2);
        wq[(source[l * H + h] + 2 * v + 1) * 3 * D + 2 * D + h * dh + v] = T(-s / 2);
        put_code(wo + (h * dh + v) * D, head_block(l, h), v, T(1));
      }
    }
  }
  // Unembedding: logit[t] = 5 per planted head whose block holds code t.
  const double s_final = ln_scale(L * H);
  std::vector<std::size_t> readers = {chain[L - 1]};
  if (fork_head < H) readers.push_back(fork_head);
  for (std::size_t t = 0; t < V; ++t)
    for (std::size_t h : readers) put_code(w_u.data() + t * D, head_block(L - 1, h), t, T(2.5 * s_final));

  // The planted edges.
  auto head = [](std::size_t l, std::size_t h) { return "a" + std::to_string(l) + ".h" + std::to_string(h); };
  m.true_edges.push_back("input->" + head(0, chain[0]) + "<v>");
  if (induction) {
    const std::string ind = head(L - 1, chain[L - 1]);
    m.true_edges.push_back(head(0, chain[0]) + "->" + ind + "<k>");
    m.true_edges.push_back("input->" + ind + "<q>");
    m.true_edges.push_back("input->" + ind + "<v>");
  }
  for (std::size_t l = 1; l < L && !induction; ++l) m.true_edges.push_back(head(l - 1, chain[l - 1]) + "->" + head(l, chain[l]) + "<v>");
  m.true_edges.push_back(head(L - 1, chain[L - 1]) + "->logits");
  if (fork_head < H) {
    m.true_edges.push_back("input->" + head(L - 1, fork_head) + "<v>");
    m.true_edges.push_back(head(L - 1, fork_head) + "->logits");
  }

  // The task: random tokens; the corrupted run resamples every token, with a different one at
  // the copied position; answer = the clean token there, wrong = the corrupted one.
  // Induction: distinct tokens x_0..x_{n-2}, then x_a again (1 <= a <= n-3); the answer is
  // x_{a+1}. The corrupted sequence is drawn the same way, with another answer.
  auto induction_sequence = [&](std::size_t len, int& answer) {
    std::vector<int> tokens(V);
    for (std::size_t t = 0; t < V; ++t) tokens[t] = static_cast<int>(t);
    for (std::size_t t = V; t-- > 1;) std::swap(tokens[t], tokens[detail::planted_draw(rng, t + 1)]);
    tokens.resize(len - 1);
    const std::size_t a = 1 + detail::planted_draw(rng, len - 3);
    tokens.push_back(tokens[a]);
    answer = tokens[a + 1];
    return tokens;
  };
  for (std::size_t n = 0; n < spec.n_examples && induction; ++n) {
    const std::size_t len = P - detail::planted_draw(rng, std::min<std::size_t>(3, P - 3));
    TaskExample e;
    int answer = 0, wrong = 0;
    e.clean = induction_sequence(len, answer);
    do e.corrupted = induction_sequence(len, wrong);
    while (wrong == answer);
    e.answer = {answer};
    e.wrong = {wrong};
    m.task.examples.push_back(std::move(e));
  }
  for (std::size_t n = 0; n < spec.n_examples && !induction; ++n) {
    const std::size_t len = P - detail::planted_draw(rng, std::min<std::size_t>(3, P - depth));
    TaskExample e;
    for (std::size_t i = 0; i < len; ++i) {
      e.clean.push_back(static_cast<int>(detail::planted_draw(rng, V)));
      e.corrupted.push_back(static_cast<int>(detail::planted_draw(rng, V)));
    }
    const std::size_t copied = len - 1 - depth;
    while (e.corrupted[copied] == e.clean[copied]) e.corrupted[copied] = static_cast<int>(detail::planted_draw(rng, V));
    e.answer = {e.clean[copied]};
    e.wrong = {e.corrupted[copied]};
    m.task.examples.push_back(std::move(e));
  }
  return m;
}

}  // namespace circuitry
