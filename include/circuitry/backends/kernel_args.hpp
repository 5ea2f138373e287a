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

  static KeyMask causal_mask() { return {}; }
  static KeyMask bidirectional(std::vector<std::size_t> lengths) { return {false, std::move(lengths)}; }
  /// Keys 0..end-1 are visible to query row i of sequence b.
  std::size_t end(std::size_t b, std::size_t i, std::size_t P) const {
    return causal ? i + 1 : (lengths.empty() ? P : lengths[b]);
  }
};

/// The shape of one attention call: B sequences of P positions, H heads of d_head dh, read
/// from a fused qkv [B, P, 3 H dh].
struct AttentionShape {
  std::size_t B, P, H, dh;
  std::size_t D() const { return H * dh; }
  std::size_t ld() const { return 3 * H * dh; }
};

/// The norms a sublayer applies to the residual it reads (models/components/norms.hpp).
enum class NormKind { layer_norm, rms_norm, none };

/// The MLP activations (models/components/mlp.hpp); their formulas are in
/// backends/cpu/activation_kernels.hpp.
enum class ActivationKind { gelu_new, gelu, relu, silu };

}  // namespace circuitry
