#pragma once
// The small argument types every backend's kernels share: which operand of a GEMM is
// transposed, which keys an attention row may see, and which norm or activation a kernel
// applies. They describe work; they hold no device memory, so every backend reads them on the
// host and passes what it needs to its device.
#include <cstddef>
#include <vector>

namespace circuitry {

enum class Trans { No, Yes };

/// Which keys a query row may attend to.
struct KeyMask {
  bool causal = true;
  /// Bidirectional only: per sequence, the number of real (unpadded) positions; empty = all P.
  std::vector<std::size_t> lengths;
  /// Causal only: a sliding window of this many keys ending at the query (Mistral, Gemma's
  /// local layers: key j is visible to query i when i - window < j <= i); 0: no window.
  std::size_t window = 0;

  static KeyMask causal_mask(std::size_t window = 0) { return {true, {}, window}; }
  static KeyMask bidirectional(std::vector<std::size_t> lengths) { return {false, std::move(lengths), 0}; }
  /// Keys begin..end-1 are visible to query row i of sequence b.
  std::size_t begin(std::size_t i) const { return causal && window && i + 1 > window ? i + 1 - window : 0; }
  std::size_t end(std::size_t b, std::size_t i, std::size_t P) const {
    return causal ? i + 1 : (lengths.empty() ? P : lengths[b]);
  }
};

/// How an attention score is formed from q . k: s = scale q . k, then, with a soft cap c,
/// s = c tanh(s / c) (Gemma 2's attention-logit soft-capping). scale 0 means 1 / sqrt(d_head).
struct AttentionScores {
  double scale = 0;
  double softcap = 0;
};

/// The shape of one attention call: B sequences of P positions, H heads of d_head dh, read
/// from a fused qkv [B, P, 3 H dh], and how its scores are formed.
struct AttentionShape {
  std::size_t B, P, H, dh;
  AttentionScores scores{};
  std::size_t D() const { return H * dh; }
  std::size_t ld() const { return 3 * H * dh; }
};

/// The norms a sublayer applies to the residual it reads (models/components/norms.hpp).
enum class NormKind { layer_norm, rms_norm, none };

/// The MLP activations (models/components/mlp.hpp) and tanh (the soft caps, ops/soft_cap.hpp);
/// their formulas are in backends/cpu/activation_kernels.hpp.
enum class ActivationKind { gelu_new, gelu, relu, silu, tanh };

}  // namespace circuitry
