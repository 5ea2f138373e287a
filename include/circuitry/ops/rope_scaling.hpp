#pragma once
// Rope scaling: how a model trained with rotary positions at one context length changes its
// rotary frequencies to run at a longer one. The frequencies theta_i = base^(-2i / rot) of
// ops/rotary.hpp become, as transformers' modeling_rope_utils.py computes its inverse frequencies:
//   linear   (_compute_linear_scaling_rope_parameters; kaiokendev's position interpolation)
//            theta_i / factor
//   llama3   (_compute_llama3_parameters; Llama 3.1 and 3.2), with the wavelength
//            w_i = 2 pi / theta_i and the context length L = original_max_position_embeddings:
//            w_i < L / high_freq_factor:  theta_i                    (high frequencies kept)
//            w_i > L / low_freq_factor:   theta_i / factor           (low frequencies scaled)
//            otherwise, with s = (L / w_i - low_freq_factor) / (high_freq_factor - low_freq_factor):
//                                         (1 - s) theta_i / factor + s theta_i
// and then every theta_i is divided by pair_divisors[i] where there are any: llama.cpp's
// rope_freqs tensor of a GGUF file (ggml_rope_ext's freq_factors), which holds llama3's scaling
// as one divisor per pair.
#include <cmath>
#include <cstddef>
#include <numbers>
#include <string>
#include <vector>

#include "circuitry/core/error.hpp"

namespace circuitry::ops {

struct RopeScaling {
  std::string type = "default";  // transformers' rope_type: "default" (none) | "linear" | "llama3"
  double factor = 1.0;           // linear and llama3
  double low_freq_factor = 1.0;  // llama3
  double high_freq_factor = 4.0;
  double original_context = 8192.0;   // llama3: original_max_position_embeddings
  std::vector<double> pair_divisors;  // empty, or one per rotated pair (GGUF's rope_freqs)
};

/// theta_i for pairs i = 0..rot/2-1, in double: base^(-2i / rot), scaled as `scaling` says.
inline std::vector<double> rotary_frequencies(std::size_t rot, double base, const RopeScaling& scaling = {}) {
  require(rot % 2 == 0 && rot > 0, "rotary: the rotated dimensions (" + std::to_string(rot) + ") must be even");
  const std::size_t half = rot / 2;
  require(scaling.pair_divisors.empty() || scaling.pair_divisors.size() == half,
          "rotary: " + std::to_string(scaling.pair_divisors.size()) + " frequency divisors for " + std::to_string(half) + " rotated pairs");
  std::vector<double> theta(half);
  for (std::size_t i = 0; i < half; ++i) {
    theta[i] = std::pow(base, -2.0 * double(i) / double(rot));
    if (scaling.type == "linear") {
      theta[i] /= scaling.factor;
    } else if (scaling.type == "llama3") {
      const double wavelength = 2 * std::numbers::pi / theta[i];
      const double low_freq_wavelength = scaling.original_context / scaling.low_freq_factor;
      const double high_freq_wavelength = scaling.original_context / scaling.high_freq_factor;
      if (wavelength > low_freq_wavelength) {
        theta[i] /= scaling.factor;
      } else if (!(wavelength < high_freq_wavelength)) {
        const double s = (scaling.original_context / wavelength - scaling.low_freq_factor) /
                         (scaling.high_freq_factor - scaling.low_freq_factor);
        theta[i] = (1 - s) * theta[i] / scaling.factor + s * theta[i];
      }
    } else {
      require(scaling.type == "default", "rotary: rope scaling type \"" + scaling.type + "\" is not linear or llama3");
    }
    if (!scaling.pair_divisors.empty()) theta[i] /= scaling.pair_divisors[i];
  }
  return theta;
}

}  // namespace circuitry::ops
