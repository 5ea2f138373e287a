#pragma once
// Attention-pattern head detectors (as TransformerLens' detect_head and Olsson et al. 2022):
//   previous-token score of head (l, h): mean attention from position i to i - 1;
//   induction score on sequences whose second half repeats the first (half length n): mean
//   attention from position i >= n to i - n + 1, the token after the earlier copy of x_i.
// Scores are in [0, 1]; a clear previous-token or induction head scores near 1.
#include <vector>

#include "circuitry/models/model.hpp"

namespace circuitry {

/// scores[l * n_heads + h]: one per head.
struct HeadScores {
  std::size_t n_layers = 0, n_heads = 0;
  std::vector<double> scores;
  double at(std::size_t l, std::size_t h) const { return scores[l * n_heads + h]; }
  /// The best head of a layer (or of the whole model when layer < 0).
  std::pair<std::size_t, std::size_t> best(int layer = -1) const {
    std::pair<std::size_t, std::size_t> arg{layer < 0 ? 0 : std::size_t(layer), 0};
    double top = -1;
    for (std::size_t l = 0; l < n_layers; ++l)
      for (std::size_t h = 0; h < n_heads; ++h)
        if ((layer < 0 || std::size_t(layer) == l) && at(l, h) > top) top = at(l, h), arg = {l, h};
    return arg;
  }
};

/// Mean over sequences and query positions q (with a key k = key_of(q) >= 0) of pattern[q, k].
template <class M, class KeyOf>
HeadScores attention_scores(const M& model, const Batch& batch, KeyOf key_of) {
  using T = typename M::scalar;
  const std::size_t L = model.config().n_layer, H = model.config().n_head, P = batch.pos;
  HeadScores s{L, H, std::vector<double>(L * H, 0.0)};
  Hooks<T> hooks;
  for (std::size_t l = 0; l < L; ++l)
    hooks.add("blocks." + std::to_string(l) + ".attn.hook_pattern", [&, l](TensorView<T> pattern) {  // [B, H, P, P]
      for (std::size_t h = 0; h < H; ++h) {
        double sum = 0;
        std::size_t count = 0;
        for (std::size_t b = 0; b < batch.batch; ++b) {
          const std::size_t length = batch.last[b] - b * P + 1;
          for (std::size_t q = 0; q < length; ++q) {
            const long k = key_of(q);
            if (k < 0) continue;
            sum += double(pattern(b, h, q, std::size_t(k)));
            ++count;
          }
        }
        s.scores[l * H + h] = count ? sum / double(count) : 0.0;
      }
    });
  ArenaFor<M> arena;
  ContextFor<M> ctx(arena);
  ForwardOptions<T> o;
  o.hooks = &hooks;
  model.forward(ctx, batch, o);
  return s;
}

template <class M>
HeadScores previous_token_scores(const M& model, const Batch& batch) {
  return attention_scores(model, batch, [](std::size_t q) { return long(q) - 1; });
}

/// `batch` holds repeated sequences x_0 .. x_{n-1} x_0 .. x_{n-1} with n = half_length.
template <class M>
HeadScores induction_scores(const M& model, const Batch& batch, std::size_t half_length) {
  return attention_scores(model, batch, [half_length](std::size_t q) {
    return q >= half_length ? long(q - half_length + 1) : -1L;
  });
}

}  // namespace circuitry
