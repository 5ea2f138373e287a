#pragma once
// Parameter storage of every architecture, in the Conv1D layout (y = x W + b). Which slots
// a model uses, with which shapes and names, the components declare (Architecture::parameters);
// the others stay empty. The same struct holds gradients during training.
#include <vector>
#include <Eigen/Core>
#include <xtensor/xtensor.hpp>

#include "circuitry/models/config.hpp"

namespace circuitry {

/// A parameter tensor: row-major, aligned like Eigen's packets (64 bytes with AVX-512), so
/// vectorised loops over weights take the same path on every run and results are bit-reproducible.
template <class T, std::size_t N>
using ParamTensor = xt::xtensor<T, N, xt::layout_type::row_major, Eigen::aligned_allocator<T>>;

template <class T>
struct LayerWeights {
  ParamTensor<T, 1> ln1_w, ln1_b;  // [d_model]
  ParamTensor<T, 2> w_qkv;         // [d_model, (H + 2 KV) d_head]; columns q | k | v, each split into heads
                                   // (KV = H but for grouped-query attention)
  ParamTensor<T, 1> b_qkv;         // [(H + 2 KV) d_head], when the model has q/k/v biases
  ParamTensor<T, 2> w_o;           // [H d_head, d_model]; rows h*d_head..(h+1)*d_head belong to head h
  ParamTensor<T, 1> b_o;           // [d_model], when the model has an attention output bias
  // MLP (empty tensors in attention-only models)
  ParamTensor<T, 1> ln2_w, ln2_b;  // [d_model]
  ParamTensor<T, 2> w_fc;          // [d_model, d_mlp]; gated MLPs: [d_model, 2 d_mlp], columns gate | in
  ParamTensor<T, 1> b_fc;          // [d_mlp] (gated: [2 d_mlp]), when the model has MLP biases
  ParamTensor<T, 2> w_proj;        // [d_mlp, d_model]
  ParamTensor<T, 1> b_proj;        // [d_model], when the model has MLP biases
};

template <class T>
struct Weights {
  ParamTensor<T, 2> wte;           // [vocab, d_model] token embedding (also the tied unembedding)
  ParamTensor<T, 2> wpe;           // [n_positions, d_model] learned positions
  std::vector<LayerWeights<T>> layers;
  ParamTensor<T, 1> lnf_w, lnf_b;  // [d_model] final norm
  ParamTensor<T, 2> lm_head;       // [vocab_out, d_model] only when !tie_word_embeddings, else empty
  ParamTensor<T, 1> b_unembed;     // [vocab_out] only with an unembedding bias, else empty

  /// The unembedding matrix as stored: [vocab_out, d_model] (logits = x lm_head^T).
  const ParamTensor<T, 2>& unembed() const { return lm_head.size() ? lm_head : wte; }
};

}  // namespace circuitry
