#pragma once
// The backend seam (ggml's ggml-backend in spirit): what a backend supplies so the tape ops, and
// everything built on them, run on it. Memory, as an arena type whose alloc<T>(n) hands out
// buffers reused across runs, and one static function per kernel the engine needs: GEMM, the
// norms and their backwards, attention pattern and mix forward and backward, activations,
// rotary, gathers and scatters of rows, axpy and scaling, reductions, the metric's log-softmax.
// backends/cpu/cpu_backend.hpp is the reference; a new backend is a folder here with a struct
// that satisfies this concept, and tests/test_backend_ops.cpp checks its kernels against the
// CPU's. Pointers to T are the backend's memory (to_device and to_host move values between it
// and the host); index arrays, masks and shapes are host memory.
#include <concepts>
#include <cstddef>
#include <string_view>
#include <vector>

#include "circuitry/backends/kernel_args.hpp"

namespace circuitry {

/// The kernels of B for one scalar type T.
template <class B, class T>
concept BackendKernels = requires(T* y, const T* x, T s, std::size_t n, const int* index, NormKind norm, ActivationKind act,
                                  const AttentionShape& shape, const KeyMask& mask, const std::vector<std::size_t>& rows) {
  B::template to_device<T>(n, x, y);
  B::template to_host<T>(n, x, y);
  B::template gemm<T>(Trans::No, Trans::Yes, n, n, n, s, x, n, x, n, s, y, n);
  B::template gemm_nt_long_inner<T>(n, n, n, x, x, y);
  B::template add_product_sparse_lhs<T>(n, n, n, x, x, y);
  B::template copy<T>(n, x, y);
  B::template fill_zero<T>(n, y);
  B::template axpy<T>(n, s, x, y);
  B::template add<T>(n, x, x, y);
  B::template subtract<T>(n, x, x, y);
  B::template scale<T>(n, s, x, y);
  B::template exp<T>(n, x, y);
  B::template mul_add<T>(n, x, x, y);
  { B::template sum<T>(n, x) } -> std::convertible_to<T>;
  B::template add_broadcast<T>(n, n, x, x, y);
  B::template mul_broadcast<T>(n, n, x, x, y);
  B::template mul_broadcast_backward<T>(n, n, x, x, x, y, y);
  B::template sum_repeats<T>(n, n, x, y);
  B::template row_sums<T>(n, n, x, y);
  B::template add_to_rows<T>(n, n, x, y);
  B::template gather_rows<T>(n, n, index, x, y);
  B::template scatter_add_rows<T>(n, n, index, x, y);
  B::template copy_blocks<T>(n, n, x, n, y, n);
  B::template add_blocks<T>(n, n, x, n, y, n);
  B::template add_parts<T>(n, n, x, y);
  B::template norm_forward<T>(norm, x, x, x, y, y, y, n, n, s);
  B::template norm_backward_input<T>(norm, x, x, x, x, x, y, n, n);
  B::template norm_backward_in_place<T>(norm, y, x, x, x, x, n, n);
  B::template norm_backward_params<T>(norm, x, x, x, x, y, y, n, n);
  B::template norm_backward_frozen_in_place<T>(norm, y, x, x, n, n);
  B::template post_norm_shares_forward<T>(n, n, n, n, x, x, s, y, y);
  B::template post_norm_shares_backward<T>(n, n, n, n, x, x, x, x, y, y);
  B::template qk_rms_norm_forward<T>(n, n, n, n, x, x, s, y, y);
  B::template qk_rms_norm_backward<T>(n, n, n, n, x, x, x, x, x, y, y, y);
  B::template activation_forward<T>(act, n, x, y);
  B::template activation_backward<T>(act, n, x, x, y);
  B::template gated_activation_forward<T>(act, n, n, x, y);
  B::template gated_activation_backward<T>(act, n, n, x, x, y, y);
  B::template attention_pattern_forward<T>(shape, mask, x, y);
  B::template attention_pattern_backward<T>(shape, mask, x, x, x, y, y);
  B::template attention_mix_forward<T>(shape, x, x, y);
  B::template attention_mix_backward<T>(shape, x, x, x, y, y);
  B::template attention_rows<T>(shape, mask, rows, x, y);
  B::template rotate_half<T>(n, n, n, n, n, n, x, x, true, y);
  B::template log_softmax_forward<T>(n, n, x, y);
  B::template log_softmax_backward<T>(n, n, x, x, y);
};

/// A backend: a name, an arena type for its memory, and the kernels for float and double.
template <class B>
concept Backend = requires(typename B::Arena& arena, std::size_t n) {
  { B::name } -> std::convertible_to<std::string_view>;
  { arena.template alloc<float>(n) } -> std::same_as<float*>;
  { arena.template alloc<double>(n) } -> std::same_as<double*>;
} && BackendKernels<B, float> && BackendKernels<B, double>;

}  // namespace circuitry
