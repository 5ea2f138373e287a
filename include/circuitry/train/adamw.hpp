#pragma once
// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
// Algorithm 2), in PyTorch's form (torch.optim.AdamW), with global-norm gradient clipping
// (torch.nn.utils.clip_grad_norm_) and a linear-warmup, cosine-decay learning rate
// (GPT-2 / nanoGPT's get_lr).
//
// One step, at step count t = 1, 2, ... with gradient g (after clipping):
//   theta <- theta (1 - lr lambda)                  decoupled decay (only where `decay`)
//   m <- beta1 m + (1 - beta1) g                     first moment
//   v <- beta2 v + (1 - beta2) g^2                   second moment
//   theta <- theta - lr m_hat / (sqrt(v_hat) + eps)  m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)
// As in PyTorch, the decay is scaled by the whole scheduled learning rate (the paper scales
// lambda by the schedule multiplier eta_t alone, not by the base rate alpha).
//
// Which parameters decay: minGPT's convention (karpathy/minGPT configure_optimizers). The
// weight matrices of the attention and MLP projections and an untied unembedding decay
// (ParamKind::matrix); biases, norm gains and biases, and the token and position embeddings
// (a tied unembedding is W_E) do not. nanoGPT's rule, every tensor of rank >= 2, differs only in
// also decaying the embeddings.
#include <cmath>
#include <cstddef>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/backends/cpu/vector_kernels.hpp"
#include "circuitry/core/tape.hpp"
#include "circuitry/models/parameters.hpp"
#include "circuitry/models/weights.hpp"

namespace circuitry {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;          // GPT-2 / nanoGPT (PyTorch's default is 0.999)
  double eps = 1e-8;
  double weight_decay = 0.1;    // lambda
  double max_grad_norm = 1.0;   // global-norm clipping threshold; 0 turns clipping off
};

/// One parameter tensor as the optimiser sees it: its values, its gradient (scaled in place by
/// clipping) and whether weight decay applies.
template <class T>
struct Parameter {
  T* value = nullptr;
  T* grad = nullptr;
  std::size_t size = 0;
  bool decay = false;
};

/// Global-norm clipping: with N = sqrt(sum of g^2 over every gradient), scales every gradient
/// by max_norm / (N + 1e-6) when that is below 1 (clip_grad_norm_). Returns N before clipping.
/// The sum runs in double, in a fixed order, so it is reproducible.
template <class T>
double clip_grad_norm(std::span<const Parameter<T>> params, double max_norm) {
  double squares = 0;
  for (const Parameter<T>& p : params) squares += cpu::vec(p.grad, p.size).template cast<double>().square().sum();
  const double norm = std::sqrt(squares);
  if (max_norm > 0 && norm > max_norm) {
    const T coef = static_cast<T>(max_norm / (norm + 1e-6));
    for (const Parameter<T>& p : params) cpu::vec(p.grad, p.size) *= coef;
  }
  return norm;
}

/// Learning rate at step s (0-based) of `total`: linear warmup to `peak` over the first
/// `warmup` steps (peak (s + 1) / warmup, so the first step does move), then a half cosine
/// from `peak` at s = warmup down to `floor` at s = total, and `floor` after that:
///   lr(s) = floor + (peak - floor) (1 + cos(pi r)) / 2,  r = (s - warmup) / (total - warmup).
struct LrSchedule {
  double peak = 1e-3;
  double floor = 1e-4;
  std::size_t warmup = 0;
  std::size_t total = 1;

  double operator()(std::size_t s) const {
    if (s < warmup) return peak * static_cast<double>(s + 1) / static_cast<double>(warmup);
    if (s >= total) return floor;
    const double r = static_cast<double>(s - warmup) / static_cast<double>(total - warmup);
    return floor + (peak - floor) * 0.5 * (1 + std::cos(std::numbers::pi * r));
  }
};

template <class T>
class AdamW {
 public:
  explicit AdamW(AdamWConfig config = {}) : config_(config) {}

  const AdamWConfig& config() const { return config_; }
  /// Steps taken so far (t of the bias corrections).
  std::size_t steps() const { return t_; }

  /// Clips the gradients, then updates every parameter in place. The list must name the same
  /// parameters, in the same order and sizes, at every step: the moment buffers (one pair per
  /// parameter, allocated on the first step) follow it. Returns the gradient norm before clipping.
  double step(std::span<const Parameter<T>> params, double lr) {
    if (m_.empty()) {
      for (const Parameter<T>& p : params) {
        m_.emplace_back(p.size, T(0));
        v_.emplace_back(p.size, T(0));
      }
    }
    require(params.size() == m_.size(), "AdamW::step: the optimiser was set up for " + std::to_string(m_.size()) +
                                            " parameters, got " + std::to_string(params.size()));
    for (std::size_t i = 0; i < params.size(); ++i)
      require(params[i].size == m_[i].size(), "AdamW::step: parameter " + std::to_string(i) + " changed size");
    const double norm = clip_grad_norm(params, config_.max_grad_norm);
    ++t_;
    const double b1 = config_.beta1, b2 = config_.beta2;
    const T bias1 = static_cast<T>(1 - std::pow(b1, static_cast<double>(t_)));
    const T bias2 = static_cast<T>(1 - std::pow(b2, static_cast<double>(t_)));
    const T shrink = static_cast<T>(1 - lr * config_.weight_decay);
    // Element by element with the fused multiply-adds written out: an Eigen expression over the
    // maps would compute the elements before the first packet-aligned one as scalars and the rest
    // as packets, which the compiler contracts into FMAs differently, so a value's rounding would
    // follow its address (the heap layout). Written out, every element rounds the same way.
    const T one_minus_b1 = T(1 - b1), one_minus_b2 = T(1 - b2), eps = T(config_.eps), step_size = T(lr);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Parameter<T>& p = params[i];
      T* m = m_[i].data();
      T* v = v_[i].data();
      for (std::size_t j = 0; j < p.size; ++j) {
        const T g = p.grad[j], g_squared = g * g;
        m[j] = std::fma(T(b1), m[j], one_minus_b1 * g);
        v[j] = std::fma(T(b2), v[j], one_minus_b2 * g_squared);
        const T update = (m[j] / bias1) / (std::sqrt(v[j] / bias2) + eps);
        const T theta = p.decay ? p.value[j] * shrink : p.value[j];
        p.value[j] = std::fma(-step_size, update, theta);
      }
    }
    return norm;
  }

  /// One step on a model's weights (the variables of `params` view them), with the gradients of
  /// a tape on which `params` (watched with ParamVars::watch_all) took part in backward().
  double step(const ParamVars<T>& params, Tape<T>& tape, double lr) {
    list_.clear();
    for (const auto& p : params.entries()) {
      require(p.var.needs_grad(), "AdamW::step: parameter " + p.name + " is not watched (call ParamVars::watch_all before the forward)");
      list_.push_back({p.var.value, tape.grad(p.var), p.var.numel(), p.kind == ParamKind::matrix});
    }
    return step(std::span<const Parameter<T>>(list_), lr);
  }

 private:
  AdamWConfig config_;
  std::size_t t_ = 0;
  std::vector<std::vector<T>> m_, v_;  // first and second moments, one buffer per parameter
  std::vector<Parameter<T>> list_;     // reused by the model overload
};

}  // namespace circuitry
