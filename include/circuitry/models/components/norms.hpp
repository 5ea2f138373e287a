#pragma once
// Norm components: what a sublayer (or the unembedding) applies to the residual stream it
// reads. Each declares its parameters and names its NormKind, which the backend's norm kernels
// apply (backends/cpu/norm_kernels.hpp), so ops::norm_linear_ports can keep the downstream
// ports apart in the backward pass whatever the norm is.
//   LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b   (torch.nn.LayerNorm; also TL's LNPre,
//              whose w = 1 and b = 0 are written by the loader)
//   RMSNorm:   y = x / sqrt(mean(x^2) + eps) * w           (Llama, Qwen2, Mistral; weight only)
//   NoNorm:    y = x                                      (tracr's compiled models)
#include <string>
#include <string_view>

#include "circuitry/backends/kernel_args.hpp"
#include "circuitry/models/components/parameters.hpp"

namespace circuitry {

struct LayerNorm {
  static constexpr std::string_view name = "LN";
  static constexpr NormKind kind = NormKind::layer_norm;
  /// Declares the gain and bias [d_model] under prefix (blocks.0.ln1, ln_final).
  template <class Declare>
  static void parameters(const std::string& prefix, std::size_t d_model, Declare&& declare) {
    declare(ParamDecl{prefix + ".w", {d_model}, ParamKind::norm_gain, {}});
    declare(ParamDecl{prefix + ".b", {d_model}, ParamKind::norm_bias, {}});
  }
};

struct RMSNorm {
  static constexpr std::string_view name = "RMS";
  static constexpr NormKind kind = NormKind::rms_norm;
  /// Declares the gain [d_model] under prefix; an RMS norm has no bias.
  template <class Declare>
  static void parameters(const std::string& prefix, std::size_t d_model, Declare&& declare) {
    declare(ParamDecl{prefix + ".w", {d_model}, ParamKind::norm_gain, {}});
  }
};

struct NoNorm {
  static constexpr std::string_view name = "none";
  static constexpr NormKind kind = NormKind::none;
  template <class Declare>
  static void parameters(const std::string&, std::size_t, Declare&&) {}
};

}  // namespace circuitry
