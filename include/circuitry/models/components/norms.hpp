#pragma once
// Norm components: what a sublayer (or the unembedding) applies to the residual stream it
// reads. Each supplies the kernels of ops::NormKernels, so ops::norm_linear_ports can keep
// the downstream ports apart in the backward pass whatever the norm is.
//   LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b   (torch.nn.LayerNorm; also TL's LNPre,
//              whose w = 1 and b = 0 are written by the loader)
//   RMSNorm:   y = x / sqrt(mean(x^2) + eps) * w           (Llama, Qwen2, Mistral; weight only)
//   NoNorm:    y = x                                      (tracr's compiled models)
#include <algorithm>
#include <string_view>

#include "circuitry/core/ops/layer_norm.hpp"
#include "circuitry/core/ops/rms_norm.hpp"
#include "circuitry/models/components/parameters.hpp"

namespace circuitry {

struct LayerNorm {
  static constexpr std::string_view name = "LN";
  /// Declares the gain and bias [d_model] under prefix (blocks.0.ln1, ln_final).
  template <class Declare>
  static void parameters(const std::string& prefix, std::size_t d_model, Declare&& declare) {
    declare(ParamDecl{prefix + ".w", {d_model}, ParamKind::norm_gain, {}});
    declare(ParamDecl{prefix + ".b", {d_model}, ParamKind::norm_bias, {}});
  }
  template <class T>
  static void forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::size_t rows, std::size_t D, T eps) {
    ops::layer_norm_forward(x, w, b, y, mean, rstd, rows, D, eps);
  }
  template <class T>
  static void backward_input(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx, std::size_t rows,
                             std::size_t D) {
    ops::layer_norm_backward_input(dy, x, w, mean, rstd, dx, rows, D);
  }
  template <class T>
  static void backward_in_place(T* g, const T* x, const T* w, const T* mean, const T* rstd, std::size_t rows, std::size_t D) {
    ops::layer_norm_backward_in_place(g, x, w, mean, rstd, rows, D);
  }
  template <class T>
  static void backward_params(const T* dy, const T* x, const T* mean, const T* rstd, T* dw, T* db, std::size_t rows,
                              std::size_t D) {
    ops::layer_norm_backward_params(dy, x, mean, rstd, dw, db, rows, D);
  }
};

struct RMSNorm {
  static constexpr std::string_view name = "RMS";
  /// Declares the gain [d_model] under prefix; an RMS norm has no bias.
  template <class Declare>
  static void parameters(const std::string& prefix, std::size_t d_model, Declare&& declare) {
    declare(ParamDecl{prefix + ".w", {d_model}, ParamKind::norm_gain, {}});
  }
  template <class T>
  static void forward(const T* x, const T* w, const T*, T* y, T* mean, T* rstd, std::size_t rows, std::size_t D, T eps) {
    ops::rms_norm_forward(x, w, y, mean, rstd, rows, D, eps);
  }
  template <class T>
  static void backward_input(const T* dy, const T* x, const T* w, const T*, const T* rstd, T* dx, std::size_t rows,
                             std::size_t D) {
    ops::rms_norm_backward_input(dy, x, w, rstd, dx, rows, D);
  }
  template <class T>
  static void backward_in_place(T* g, const T* x, const T* w, const T*, const T* rstd, std::size_t rows, std::size_t D) {
    ops::rms_norm_backward_in_place(g, x, w, rstd, rows, D);
  }
  template <class T>
  static void backward_params(const T* dy, const T* x, const T*, const T* rstd, T* dw, T*, std::size_t rows, std::size_t D) {
    ops::rms_norm_backward_params(dy, x, rstd, dw, rows, D);
  }
};

struct NoNorm {
  static constexpr std::string_view name = "none";
  template <class Declare>
  static void parameters(const std::string&, std::size_t, Declare&&) {}
  template <class T>
  static void forward(const T* x, const T*, const T*, T* y, T*, T*, std::size_t rows, std::size_t D, T) {
    std::copy(x, x + rows * D, y);
  }
  template <class T>
  static void backward_input(const T* dy, const T*, const T*, const T*, const T*, T* dx, std::size_t rows, std::size_t D) {
    ops::vec(dx, rows * D) += ops::vec(dy, rows * D);
  }
  template <class T>
  static void backward_in_place(T*, const T*, const T*, const T*, const T*, std::size_t, std::size_t) {}
  template <class T>
  static void backward_params(const T*, const T*, const T*, const T*, T*, T*, std::size_t, std::size_t) {}
};

}  // namespace circuitry
