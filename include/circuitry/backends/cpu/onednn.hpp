#pragma once
// GEMMs through oneDNN (Debian's libdnnl-dev), compiled only when CMake found it
// (CIRCUITRY_WITH_ONEDNN); backends/cpu/gemm.hpp calls these for its blocks.
//
// - bfloat16, through oneDNN's matmul primitive: the operands are rounded to
//   bfloat16 (round to nearest even, as torch.bfloat16 does) and the products accumulated in
//   float32 into a float32 C. On a CPU with AMX-BF16 oneDNN runs the tiles (its
//   "brg:avx512_core_amx_bf16" kernels, 2-3x the float32 GEMM on one core here); with only
//   AVX512-BF16 it uses vdpbf16ps. Everything else in a run stays float32.
// - float32 blocks through dnnl_sgemm, whose JIT kernels beat Eigen's on the small-K products of
//   attribution patching (K = d_head).
//
// Determinism: gemm() cuts C into a grid of blocks fixed by the shape, and each block is one
// single-threaded oneDNN call fixed by the block's shape, so the result is the same for any
// thread count.
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "circuitry/core/parallel.hpp"

namespace circuitry::backends::onednn {

/// Empty when bfloat16 GEMMs run on this CPU's own bfloat16 instructions, else why not. oneDNN
/// would emulate them on older AVX-512 at a fraction of the float32 speed, which is never what a
/// user asking for bfloat16 wants.
inline std::string bfloat16_unavailable_reason() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  if (isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx) return {};
  return "this CPU has neither AMX-BF16 nor AVX512-BF16 (oneDNN reports ISA " + std::to_string(static_cast<int>(isa)) + ")";
}

/// float -> bfloat16 bits, round to nearest even; a NaN stays a (quiet) NaN.
inline std::uint16_t to_bfloat16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float from_bfloat16(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t{b} << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

namespace detail {

/// oneDNN threads with OpenMP, sized by the calling thread's omp_get_max_threads(); one block is
/// one thread's work (the pool runs the blocks), so each call is told to use a single thread.
class OneOpenMpThread {
 public:
  OneOpenMpThread() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneOpenMpThread() { omp_set_num_threads(previous_); }
  OneOpenMpThread(const OneOpenMpThread&) = delete;
  OneOpenMpThread& operator=(const OneOpenMpThread&) = delete;

 private:
  int previous_;
};

/// The rows x cols matrix at p (leading dimension ld) as contiguous bfloat16 [rows, cols], in a
/// buffer that stays with the calling thread between calls.
inline const std::uint16_t* to_bfloat16_matrix(const float* p, std::size_t rows, std::size_t cols, std::size_t ld,
                                               std::vector<std::uint16_t>& out) {
  out.resize(rows * cols);
  std::uint16_t* o = out.data();
  parallel_for(rows, std::max<std::size_t>(1, (std::size_t{1} << 16) / std::max<std::size_t>(1, cols)),
               [&](std::size_t r0, std::size_t r1) {
                 for (std::size_t r = r0; r < r1; ++r)
                   for (std::size_t c = 0; c < cols; ++c) o[r * cols + c] = to_bfloat16(p[r * ld + c]);
               });
  return o;
}

/// One engine for the process; a stream and a scratchpad per thread (scratchpad_mode::user, so
/// concurrent blocks never share oneDNN's global scratchpad).
inline const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

/// The matmul primitives made so far, one per block shape, strides and alpha (a primitive costs
/// about a millisecond to make; a run uses a few dozen shapes).
struct PrimitiveCache {
  using Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                         std::int64_t, std::int64_t, std::uint32_t>;
  std::mutex mutex;
  std::map<Key, std::pair<dnnl::matmul, dnnl::memory::desc>> primitives;  // primitive and its scratchpad
};
inline PrimitiveCache& cache() {
  static PrimitiveCache c;
  return c;
}

}  // namespace detail

/// C[M, N] += alpha * bf16(op(A)) * bf16(op(B)) with float32 accumulation. Operands as in
/// circuitry::gemm (row-major with leading dimensions; op = transpose when ta / tb). The blocks
/// are those of the float32 path: block_rows x block_cols tiles of C, run on the thread pool.
inline void gemm_bf16(bool at, bool bt, std::size_t M, std::size_t N, std::size_t K, float alpha, const float* A,
                      std::size_t lda, const float* B, std::size_t ldb, float* C, std::size_t ldc, std::size_t block_rows,
                      std::size_t block_cols) {
  using dims = dnnl::memory::dims;
  using dt = dnnl::memory::data_type;
  thread_local std::vector<std::uint16_t> a_buffer, b_buffer;
  // Contiguous bfloat16 copies in the stored layout: A [M, K] (or [K, M]), B [K, N] (or [N, K]).
  const std::uint16_t* a16 = detail::to_bfloat16_matrix(A, at ? K : M, at ? M : K, lda, a_buffer);
  const std::uint16_t* b16 = detail::to_bfloat16_matrix(B, bt ? N : K, bt ? K : N, ldb, b_buffer);
  const auto m_ = static_cast<std::int64_t>(M), n_ = static_cast<std::int64_t>(N), k_ = static_cast<std::int64_t>(K);
  const std::size_t row_blocks = (M + block_rows - 1) / block_rows, col_blocks = (N + block_cols - 1) / block_cols;
  std::uint32_t alpha_bits;
  std::memcpy(&alpha_bits, &alpha, 4);

  parallel_tasks(row_blocks * col_blocks, [&](std::size_t t) {
    const std::size_t i0 = t / col_blocks * block_rows, j0 = t % col_blocks * block_cols;
    const auto m = static_cast<std::int64_t>(std::min(block_rows, M - i0)), n = static_cast<std::int64_t>(std::min(block_cols, N - j0));
    // Strides of the block's operands inside the contiguous copies.
    const dims a_strides = at ? dims{1, m_} : dims{k_, 1}, b_strides = bt ? dims{1, k_} : dims{n_, 1};
    const dnnl::memory::desc a_md({m, k_}, dt::bf16, a_strides), b_md({k_, n}, dt::bf16, b_strides),
        c_md({m, n}, dt::f32, dims{static_cast<std::int64_t>(ldc), 1});
    const detail::PrimitiveCache::Key key{m, n, k_, a_strides[0], a_strides[1], b_strides[0], b_strides[1],
                                          static_cast<std::int64_t>(ldc), at * 2 + bt, alpha_bits};
    dnnl::matmul primitive;
    dnnl::memory::desc scratch_md;
    {
      auto& c = detail::cache();
      std::lock_guard lock(c.mutex);
      auto it = c.primitives.find(key);
      if (it == c.primitives.end()) {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
        dnnl::post_ops accumulate;
        accumulate.append_sum(1.0f);  // C += ..., as the float32 blocks do
        attr.set_post_ops(accumulate);
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, detail::engine());
        it = c.primitives.emplace(key, std::pair{dnnl::matmul(pd), pd.scratchpad_desc()}).first;
      }
      primitive = it->second.first;
      scratch_md = it->second.second;
    }
    thread_local dnnl::stream stream(detail::engine());
    thread_local std::vector<std::uint8_t> scratch;
    scratch.resize(std::max<std::size_t>(1, scratch_md.get_size()));
    const std::uint16_t* a_block = a16 + (at ? i0 : i0 * K);
    const std::uint16_t* b_block = b16 + (bt ? j0 * K : j0);
    dnnl::memory a_mem(a_md, detail::engine(), const_cast<std::uint16_t*>(a_block));
    dnnl::memory b_mem(b_md, detail::engine(), const_cast<std::uint16_t*>(b_block));
    dnnl::memory c_mem(c_md, detail::engine(), C + i0 * ldc + j0);
    dnnl::memory s_mem(scratch_md, detail::engine(), scratch.data());
    const detail::OneOpenMpThread one_thread;
    primitive.execute(stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}, {DNNL_ARG_SCRATCHPAD, s_mem}});
    stream.wait();
  });
}

/// C[m, n] = alpha * op(A) op(B) + beta * C in float32, beta 0 (C not read) or 1 (one block of
/// circuitry::gemm, on the calling thread).
inline void sgemm_block(bool at, bool bt, std::size_t m, std::size_t n, std::size_t K, float alpha, const float* A,
                        std::size_t lda, const float* B, std::size_t ldb, float beta, float* C, std::size_t ldc) {
  const detail::OneOpenMpThread one_thread;
  const dnnl_status_t status =
      dnnl_sgemm(at ? 'T' : 'N', bt ? 'T' : 'N', static_cast<dnnl_dim_t>(m), static_cast<dnnl_dim_t>(n), static_cast<dnnl_dim_t>(K),
                 alpha, A, static_cast<dnnl_dim_t>(lda), B, static_cast<dnnl_dim_t>(ldb), beta, C, static_cast<dnnl_dim_t>(ldc));
  if (status != dnnl_success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(static_cast<int>(status)));
}

}  // namespace circuitry::backends::onednn
