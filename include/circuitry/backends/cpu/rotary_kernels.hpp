#pragma once
// The CPU backend's rotary kernel (RoPE; Su et al. 2021, eq. 34), in the "rotate-half" layout of
// Hugging Face's GPT-NeoX, Llama, Qwen2 and Mistral: of a head vector's first `rot` dimensions,
// dimension i and i + rot/2 form a pair, turned by the angle p * theta_i at position p:
//   out[i]         = x[i] cos - x[i + rot/2] sin
//   out[i + rot/2] = x[i + rot/2] cos + x[i] sin
// The backward turns the gradient back by the same angle (inverse = true).
#include <cstddef>

#include "circuitry/backends/cpu/vector_kernels.hpp"

namespace circuitry::cpu {

/// Rotates, in place, `n_vectors` head vectors per row of x [rows, ld]: vector j is columns
/// j * d_head .. j * d_head + rot - 1. Row r is position r % P; cos, sin [P, rot/2].
template <class T>
void rotate_half(std::size_t rows, std::size_t P, std::size_t ld, std::size_t n_vectors, std::size_t d_head, std::size_t rot,
                 const T* cos, const T* sin, bool inverse, T* x) {
  const std::size_t half = rot / 2;
  const T sign = inverse ? T(-1) : T(1);
  parallel_items(rows, n_vectors * rot, [&](std::size_t r) {
    const T* c = cos + (r % P) * half;
    const T* s = sin + (r % P) * half;
    for (std::size_t j = 0; j < n_vectors; ++j) {
      T* v = x + r * ld + j * d_head;
      for (std::size_t i = 0; i < half; ++i) {
        const T a = v[i], b = v[i + half], si = sign * s[i];
        v[i] = a * c[i] - b * si;
        v[i + half] = b * c[i] + a * si;
      }
    }
  });
}

}  // namespace circuitry::cpu
