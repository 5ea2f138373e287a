#pragma once
// C = alpha A B^T + beta C for a few rows of A against a long B stored [N, K]: the readout rows'
// logits (A = the final norm's output at the metric's positions, B = the unembedding W_U
// [vocab, d_model]); GPT-2 small in EAP's parts of 10-11 examples: 11 rows x 50,257 x 768.
//
// A GEMM library packs B before multiplying, which for so few rows costs as much as the product:
// it reads W_U's 154 MB, writes a packed copy and reads that again (dnnl_sgemm ran 11 rows at
// 40 GFLOP/s, 20 ms; this kernel 10 ms). Here each row of B is read once, straight from W_U, and dotted with every row
// of A (which stays in the L1 cache): C[i, j] = sum_k A[i, k] B[j, k], in tiles of 4 rows of A x 4
// rows of B, 16 vector accumulators of 16 lanes (AVX-512).
//
// The 16 accumulators are summed across their lanes together, by a transpose-and-add tree
// (4 steps of shuffles and adds leave one vector holding the 16 dot products, 4 per row of C), in
// place of 16 separate horizontal sums. Each element of C is therefore summed in the same order
// (16 lanes over k, the K tail masked into the same lanes, then the tree) whatever block of C or
// thread it falls in: the result does not depend on gemm()'s grid or the thread count.
#include <algorithm>
#include <cstddef>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace circuitry::detail {

/// Products it takes: at most kFewRowsMax rows of A (with more, B's packing pays off: at 16 rows
/// the two ran level, at 32 the library was faster), an inner dimension short enough that a tile's
/// 4 rows of A and of B stay in the L1 cache, and a long B (at least 2^20 multiply-adds per row of A).
inline constexpr std::size_t kFewRowsMax = 12, kFewRowsMaxInner = 2048;
inline constexpr std::size_t kFewRowsMinWorkPerRow = std::size_t{1} << 20;

inline bool takes_few_rows_kernel(std::size_t M, std::size_t N, std::size_t K) {
  return M <= kFewRowsMax && K <= kFewRowsMaxInner && N * K >= kFewRowsMinWorkPerRow;
}

#if defined(__AVX512F__)
inline constexpr bool kHasFewRowsKernel = true;

/// v[4 j + i] holds the 16 lane-partial sums of C[i, j]; returns one vector whose 128-bit lane i
/// holds C[i, 0..3] (the full sums).
inline __m512 transpose_add_16(const __m512 (&v)[16]) {
  __m512 w[8], x[4];
  for (int p = 0; p < 8; ++p)  // 256-bit halves: lanes 0-7 partials of v[2p], 8-15 of v[2p + 1]
    w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44), _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
  for (int q = 0; q < 4; ++q)  // 128-bit lane t: 4 partials of v[4q + t]
    x[q] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], 0x88), _mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], 0xDD));
  // In each 128-bit lane t: [x0, x1] -> pairs, then [y0, y1] -> the sums of v[t], v[4 + t], v[8 + t], v[12 + t].
  const __m512 y0 = _mm512_add_ps(_mm512_unpacklo_ps(x[0], x[1]), _mm512_unpackhi_ps(x[0], x[1]));
  const __m512 y1 = _mm512_add_ps(_mm512_unpacklo_ps(x[2], x[3]), _mm512_unpackhi_ps(x[2], x[3]));
  return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(y0), _mm512_castps_pd(y1))),
                       _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(y0), _mm512_castps_pd(y1))));
}

/// C[i, j] (+)= alpha * dot(a[i], b[j]) for i < rows, j < cols (both <= 4; the missing rows of a
/// 4 x 4 tile repeat a valid row and their results are dropped). With next_b (rows of stride ldb),
/// the next 4 rows of B are prefetched alongside: B streams from memory, and the hardware
/// prefetcher alone left this kernel a third slower on W_U.
inline void few_rows_tile(std::size_t K, float alpha, const float* const (&a)[4], const float* const (&b)[4], std::size_t rows,
                          std::size_t cols, bool overwrite, float* C, std::size_t ldc, const float* next_b, std::size_t ldb) {
  __m512 acc[16];
  for (auto& v : acc) v = _mm512_setzero_ps();
  auto step = [&](std::size_t k, __mmask16 mask) {
    __m512 bv[4];
    for (int j = 0; j < 4; ++j) bv[j] = _mm512_maskz_loadu_ps(mask, b[j] + k);
    if (next_b)
      for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(next_b + j * ldb + k), _MM_HINT_T0);
    for (int i = 0; i < 4; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mask, a[i] + k);
      for (int j = 0; j < 4; ++j) acc[4 * j + i] = _mm512_fmadd_ps(av, bv[j], acc[4 * j + i]);
    }
  };
  const std::size_t K16 = K / 16 * 16;
  for (std::size_t k = 0; k < K16; k += 16) step(k, 0xFFFF);
  if (K16 < K) step(K16, static_cast<__mmask16>((1u << (K - K16)) - 1));
  const __m512 sums = _mm512_mul_ps(transpose_add_16(acc), _mm512_set1_ps(alpha));
  const __mmask8 valid = static_cast<__mmask8>((1u << cols) - 1);
  for (std::size_t i = 0; i < rows; ++i) {
    float* c = C + i * ldc;
    __m128 row;
    switch (i) {  // the lane index of an extract must be a constant
      case 0: row = _mm512_extractf32x4_ps(sums, 0); break;
      case 1: row = _mm512_extractf32x4_ps(sums, 1); break;
      case 2: row = _mm512_extractf32x4_ps(sums, 2); break;
      default: row = _mm512_extractf32x4_ps(sums, 3); break;
    }
    if (!overwrite) row = _mm_add_ps(row, _mm_maskz_loadu_ps(valid, c));
    _mm_mask_storeu_ps(c, valid, row);
  }
}

/// C[M, N] = alpha A[M, K] B[N, K]^T (+ C unless overwrite), for takes_few_rows_kernel shapes.
/// B's rows are taken 4 at a time and dotted with all rows of A before the next 4, so B is read
/// from memory once.
inline void gemm_few_rows_nt(std::size_t M, std::size_t N, std::size_t K, float alpha, const float* A, std::size_t lda,
                             const float* B, std::size_t ldb, bool overwrite, float* C, std::size_t ldc) {
  for (std::size_t j = 0; j < N; j += 4) {
    const std::size_t cols = std::min<std::size_t>(4, N - j);
    const float* const b[4] = {B + j * ldb, B + (j + std::min<std::size_t>(1, cols - 1)) * ldb,
                               B + (j + std::min<std::size_t>(2, cols - 1)) * ldb, B + (j + std::min<std::size_t>(3, cols - 1)) * ldb};
    for (std::size_t i = 0; i < M; i += 4) {
      const std::size_t rows = std::min<std::size_t>(4, M - i);
      const float* const a[4] = {A + i * lda, A + (i + std::min<std::size_t>(1, rows - 1)) * lda,
                                 A + (i + std::min<std::size_t>(2, rows - 1)) * lda, A + (i + std::min<std::size_t>(3, rows - 1)) * lda};
      const float* next_b = i == 0 && j + 8 <= N ? B + (j + 4) * ldb : nullptr;  // while B's rows come from memory
      few_rows_tile(K, alpha, a, b, rows, cols, overwrite, C + i * ldc + j, ldc, next_b, ldb);
    }
  }
}
#else
inline constexpr bool kHasFewRowsKernel = false;
/// Declared only, so that gemm()'s `if constexpr (kHasFewRowsKernel)` branch compiles; never called.
void gemm_few_rows_nt(std::size_t M, std::size_t N, std::size_t K, float alpha, const float* A, std::size_t lda, const float* B,
                      std::size_t ldb, bool overwrite, float* C, std::size_t ldc);
#endif

}  // namespace circuitry::detail
