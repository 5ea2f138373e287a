// The backend parity test, in the style of ggml's test-backend-ops: every kernel of the Backend
// concept, on every compiled backend, in float and in double, against the CPU backend's kernel
// in double on the same inputs. Shapes are drawn at random per seed and include tails (sizes
// that are not multiples of a vector width or a GEMM block). The error measure is ggml's
// normalised mean squared error, sum (y - ref)^2 / sum ref^2.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "circuitry/ops/context.hpp"

using namespace circuitry;

namespace {

/// The backends this build compiled; a new backend adds itself here.
#define CIRCUITRY_COMPILED_BACKENDS CpuBackend

/// One kernel call on backend K in scalar T: its inputs come from the host in double, its
/// outputs go back to the host in double.
template <class K, class T>
struct On {
  using backend = K;
  using scalar = T;
  typename K::Arena arena;
  T* put(const std::vector<double>& values) {
    std::vector<T> host(values.begin(), values.end());
    T* device = arena.template alloc<T>(std::max<std::size_t>(1, values.size()));
    K::to_device(values.size(), host.data(), device);
    return device;
  }
  std::vector<double> get(const T* device, std::size_t n) {
    std::vector<T> host(n);
    K::to_host(n, device, host.data());
    return {host.begin(), host.end()};
  }
};

std::vector<double> random_values(std::mt19937& rng, std::size_t n, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

double nmse(const std::vector<double>& y, const std::vector<double>& ref) {
  double err = 0, norm = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) err += (y[i] - ref[i]) * (y[i] - ref[i]), norm += ref[i] * ref[i];
  return norm == 0 ? err : err / norm;
}

/// Runs `op` (a generic callable taking an On<K, T>&, returning its outputs) on backend B in
/// float and double and on the CPU in double, and checks the errors.
template <class B, class Op>
void check_kernel(const std::string& name, const Op& op) {
  CAPTURE(name);
  On<CpuBackend, double> reference_run;
  const std::vector<double> reference = op(reference_run);
  REQUIRE_FALSE(reference.empty());
  for (double v : reference) REQUIRE(std::isfinite(v));
  On<B, double> double_run;
  const std::vector<double> in_double = op(double_run);
  REQUIRE(in_double.size() == reference.size());
  CHECK(nmse(in_double, reference) <= 1e-20);
  On<B, float> float_run;
  const std::vector<double> in_float = op(float_run);
  REQUIRE(in_float.size() == reference.size());
  CHECK(nmse(in_float, reference) <= 1e-10);
}

/// A size in [lo, hi], drawn so tails (odd sizes, sizes just past a power of two) are common.
std::size_t size_in(std::mt19937& rng, std::size_t lo, std::size_t hi) {
  return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
}

}  // namespace

TEST_CASE_TEMPLATE("backend ops: GEMM and the sparse product", B, CIRCUITRY_COMPILED_BACKENDS) {
  for (unsigned seed = 1; seed <= 6; ++seed) {
    std::mt19937 rng(seed);
    const std::size_t M = size_in(rng, 1, 300), N = size_in(rng, 1, 140), Kd = size_in(rng, 1, 90);
    const std::size_t pad = size_in(rng, 0, 5);  // leading dimensions past the columns
    CAPTURE(M); CAPTURE(N); CAPTURE(Kd); CAPTURE(pad);
    for (Trans ta : {Trans::No, Trans::Yes})
      for (Trans tb : {Trans::No, Trans::Yes}) {
        const std::size_t lda = (ta == Trans::No ? Kd : M) + pad, ldb = (tb == Trans::No ? N : Kd) + pad, ldc = N + pad;
        const auto a = random_values(rng, (ta == Trans::No ? M : Kd) * lda), b = random_values(rng, (tb == Trans::No ? Kd : N) * ldb);
        const auto c = random_values(rng, M * ldc);
        for (const double beta : {0.0, 1.0, -0.5})
          check_kernel<B>("gemm", [&](auto& run) {
            using T = typename std::remove_reference_t<decltype(run)>::scalar;
            using K = typename std::remove_reference_t<decltype(run)>::backend;
            T* C = run.put(c);
            K::gemm(ta, tb, M, N, Kd, T(0.75), run.put(a), lda, run.put(b), ldb, T(beta), C, ldc);
            return run.get(C, M * ldc);
          });
      }
    // A few rows against a long transposed B: the readout rows' logits (the few-rows kernel).
    const std::size_t R = size_in(rng, 1, 8), V = size_in(rng, 1000, 3000), Dm = 16 * size_in(rng, 2, 8) + size_in(rng, 0, 15);
    const auto x = random_values(rng, R * Dm), w = random_values(rng, V * Dm);
    check_kernel<B>("gemm few rows", [&](auto& run) {
      using T = typename std::remove_reference_t<decltype(run)>::scalar;
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      T* y = run.put(std::vector<double>(R * V, 0.0));
      K::gemm(Trans::No, Trans::Yes, R, V, Dm, T(1), run.put(x), Dm, run.put(w), Dm, T(0), y, V);
      return run.get(y, R * V);
    });
    const std::size_t long_k = size_in(rng, 40000, 90000), m = size_in(rng, 1, 5), n = size_in(rng, 1, 7);
    const auto la = random_values(rng, m * long_k), lb = random_values(rng, n * long_k);
    check_kernel<B>("gemm_nt_long_inner", [&](auto& run) {
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      auto* C = run.put(std::vector<double>(m * n, 0.0));
      K::gemm_nt_long_inner(m, n, long_k, run.put(la), run.put(lb), C);
      return run.get(C, m * n);
    });
    for (const std::size_t nonzero_columns : {std::size_t{2}, N}) {  // sparse, then dense
      std::vector<double> sparse(M * N * 16, 0.0);  // [M, 16 N]
      for (std::size_t i = 0; i < M; ++i)
        for (std::size_t j = 0; j < nonzero_columns; ++j) sparse[i * 16 * N + (j * 7 + seed) % (16 * N)] = random_values(rng, 1)[0];
      const auto sw = random_values(rng, 16 * N * Kd), out = random_values(rng, M * Kd);
      check_kernel<B>("add_product_sparse_lhs", [&](auto& run) {
        using K = typename std::remove_reference_t<decltype(run)>::backend;
        auto* y = run.put(out);
        K::add_product_sparse_lhs(M, 16 * N, Kd, run.put(sparse), run.put(sw), y);
        return run.get(y, M * Kd);
      });
    }
  }
}

TEST_CASE_TEMPLATE("backend ops: vectors, rows and blocks", B, CIRCUITRY_COMPILED_BACKENDS) {
  for (unsigned seed = 1; seed <= 5; ++seed) {
    std::mt19937 rng(100 + seed);
    const std::size_t period = size_in(rng, 1, 70), repeats = size_in(rng, 1, 9), n = period * repeats;
    CAPTURE(period); CAPTURE(repeats);
    const auto x = random_values(rng, n), y = random_values(rng, n), b = random_values(rng, period);
    const double alpha = random_values(rng, 1)[0];
    auto unary = [&](const char* name, auto call) {
      check_kernel<B>(name, [&](auto& run) {
        using T = typename std::remove_reference_t<decltype(run)>::scalar;
        using K = typename std::remove_reference_t<decltype(run)>::backend;
        T* out = run.put(y);
        call(K{}, T{}, run.put(x), out);
        return run.get(out, n);
      });
    };
    unary("copy", [&](auto k, auto, auto* in, auto* out) { decltype(k)::copy(n, in, out); });
    unary("fill_zero then axpy", [&](auto k, auto t, auto* in, auto* out) {
      decltype(k)::fill_zero(n, out);
      decltype(k)::axpy(n, decltype(t)(2), in, out);
    });
    for (const double a : {alpha, 1.0, -1.0})
      unary("axpy", [&](auto k, auto t, auto* in, auto* out) { decltype(k)::axpy(n, decltype(t)(a), in, out); });
    unary("add", [&](auto k, auto, auto* in, auto* out) { decltype(k)::add(n, in, out, out); });
    unary("subtract", [&](auto k, auto, auto* in, auto* out) { decltype(k)::subtract(n, out, in, out); });
    unary("scale", [&](auto k, auto t, auto* in, auto* out) { decltype(k)::scale(n, decltype(t)(alpha), in, out); });
    unary("exp", [&](auto k, auto, auto* in, auto* out) { decltype(k)::exp(n, in, out); });
    unary("mul_add", [&](auto k, auto, auto* in, auto* out) { decltype(k)::mul_add(n, in, in, out); });
    unary("sum", [&](auto k, auto t, auto* in, auto* out) {
      const std::vector<decltype(t)> total(1, decltype(k)::sum(n, in));
      decltype(k)::to_device(total.size(), total.data(), out);
    });
    check_kernel<B>("broadcasts", [&](auto& run) {
      using T = typename std::remove_reference_t<decltype(run)>::scalar;
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      T *X = run.put(x), *Y = run.put(y), *Bv = run.put(b), *sum = run.put(std::vector<double>(n)), *prod = run.put(std::vector<double>(n));
      T *da = run.put(x), *db = run.put(b), *reps = run.put(b);
      K::add_broadcast(n, period, X, Bv, sum);
      K::mul_broadcast(n, period, X, Bv, prod);
      K::mul_broadcast_backward(n, period, Y, X, Bv, da, db);
      K::sum_repeats(n, period, Y, reps);
      std::vector<double> all = run.get(sum, n);
      for (auto [p, count] : {std::pair{(const T*)prod, n}, {da, n}, {db, period}, {reps, period}}) {
        const auto part = run.get(p, count);
        all.insert(all.end(), part.begin(), part.end());
      }
      return all;
    });
    check_kernel<B>("row sums", [&](auto& run) {
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      auto* sums = run.put(std::vector<double>(repeats));
      auto* X = run.put(x);
      K::row_sums(repeats, period, X, sums);
      K::add_to_rows(repeats, period, sums, X);
      auto all = run.get(X, n);
      const auto s = run.get(sums, repeats);
      all.insert(all.end(), s.begin(), s.end());
      return all;
    });
    std::vector<int> index(size_in(rng, 1, 12));
    for (int& i : index) i = static_cast<int>(size_in(rng, 0, repeats - 1));  // repeats included
    check_kernel<B>("gather and scatter rows", [&](auto& run) {
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      auto* gathered = run.put(std::vector<double>(index.size() * period));
      auto* X = run.put(x);
      K::gather_rows(index.size(), period, index.data(), X, gathered);
      K::scatter_add_rows(index.size(), period, index.data(), gathered, X);
      auto all = run.get(X, n);
      const auto g = run.get(gathered, index.size() * period);
      all.insert(all.end(), g.begin(), g.end());
      return all;
    });
    const std::size_t block = size_in(rng, 1, period);
    check_kernel<B>("blocks and parts", [&](auto& run) {
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      auto* X = run.put(x);
      auto* Y = run.put(y);
      K::copy_blocks(repeats, block, X + (period - block), period, Y, period);
      K::add_blocks(repeats, block, X, period, Y + (period - block), period);
      K::add_parts(repeats, period, X, Y);  // Y's first row += every row of X
      return run.get(Y, n);
    });
  }
}

TEST_CASE_TEMPLATE("backend ops: norms and the QK norm", B, CIRCUITRY_COMPILED_BACKENDS) {
  for (unsigned seed = 1; seed <= 5; ++seed) {
    std::mt19937 rng(200 + seed);
    const std::size_t rows = size_in(rng, 1, 40), D = size_in(rng, 2, 130);
    CAPTURE(rows); CAPTURE(D);
    const auto x = random_values(rng, rows * D, 2.0), w = random_values(rng, D), b = random_values(rng, D), dy = random_values(rng, rows * D);
    for (const NormKind kind : {NormKind::layer_norm, NormKind::rms_norm, NormKind::none}) {
      CAPTURE(static_cast<int>(kind));
      check_kernel<B>("norm forward and backward", [&](auto& run) {
        using T = typename std::remove_reference_t<decltype(run)>::scalar;
        using K = typename std::remove_reference_t<decltype(run)>::backend;
        T *X = run.put(x), *W = run.put(w), *Bv = run.put(b), *DY = run.put(dy);
        T *y = run.put(std::vector<double>(rows * D)), *mean = run.put(std::vector<double>(rows)), *rstd = run.put(std::vector<double>(rows));
        T *dx = run.put(dy), *g = run.put(dy), *frozen = run.put(dy), *dw = run.put(w), *db = run.put(b);
        K::norm_forward(kind, X, W, Bv, y, mean, rstd, rows, D, T(1e-5));
        K::norm_backward_input(kind, DY, X, W, mean, rstd, dx, rows, D);
        K::norm_backward_in_place(kind, g, X, W, mean, rstd, rows, D);
        K::norm_backward_frozen_in_place(kind, frozen, W, rstd, rows, D);
        K::norm_backward_params(kind, DY, X, mean, rstd, dw, db, rows, D);
        std::vector<double> all;
        for (auto [p, count] : {std::pair{(const T*)y, rows * D}, {dx, rows * D}, {g, rows * D}, {frozen, rows * D}, {dw, D}, {db, D}}) {
          const auto part = run.get(p, count);
          all.insert(all.end(), part.begin(), part.end());
        }
        return all;
      });
    }
    const std::size_t H = size_in(rng, 1, 4), dh = size_in(rng, 2, 40), ld = 3 * H * dh;
    const auto qkv = random_values(rng, rows * ld, 3.0), dq = random_values(rng, rows * ld), wq = random_values(rng, dh), wk = random_values(rng, dh);
    check_kernel<B>("qk_rms_norm", [&](auto& run) {
      using T = typename std::remove_reference_t<decltype(run)>::scalar;
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      T *X = run.put(qkv), *y = run.put(qkv), *rstd = run.put(std::vector<double>(rows * 2 * H)), *dx = run.put(dq);
      T *dwq = run.put(wq), *dwk = run.put(wk), *Wq = run.put(wq), *Wk = run.put(wk);
      K::qk_rms_norm_forward(rows, ld, H, dh, Wq, Wk, T(1e-6), y, rstd);
      K::qk_rms_norm_backward(rows, ld, H, dh, X, run.put(dq), Wq, Wk, rstd, dx, dwq, dwk);
      std::vector<double> all;
      for (auto [p, count] : {std::pair{(const T*)y, rows * ld}, {dx, rows * ld}, {dwq, dh}, {dwk, dh}}) {
        const auto part = run.get(p, count);
        all.insert(all.end(), part.begin(), part.end());
      }
      return all;
    });
    // A norm after the heads' sum, split into the heads' shares: H blocks [rows, D] at a stride with a gap.
    const std::size_t stride = rows * D + size_in(rng, 0, 7);
    const auto heads = random_values(rng, H * stride, 2.0), dheads = random_values(rng, H * stride);
    check_kernel<B>("post_norm_shares", [&](auto& run) {
      using T = typename std::remove_reference_t<decltype(run)>::scalar;
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      T *X = run.put(heads), *y = run.put(std::vector<double>(H * stride)), *W = run.put(w), *rstd = run.put(std::vector<double>(rows));
      T *dx = run.put(dheads), *dw = run.put(w);
      K::post_norm_shares_forward(H, rows, D, stride, X, W, T(1e-6), y, rstd);
      K::post_norm_shares_backward(H, rows, D, stride, X, W, rstd, run.put(dheads), dx, dw);
      std::vector<double> all;
      for (auto [p, count] : {std::pair{(const T*)rstd, rows}, {dx, H * stride}, {dw, D}}) {
        const auto part = run.get(p, count);
        all.insert(all.end(), part.begin(), part.end());
      }
      for (std::size_t h = 0; h < H; ++h) {  // the gaps between blocks are never written
        const auto part = run.get(y + h * stride, rows * D);
        all.insert(all.end(), part.begin(), part.end());
      }
      return all;
    });
  }
}

TEST_CASE_TEMPLATE("backend ops: activations, plain and gated", B, CIRCUITRY_COMPILED_BACKENDS) {
  for (unsigned seed = 1; seed <= 4; ++seed) {
    std::mt19937 rng(300 + seed);
    const std::size_t rows = size_in(rng, 1, 30), F = size_in(rng, 1, 300), n = rows * 2 * F;
    CAPTURE(rows); CAPTURE(F);
    const auto x = random_values(rng, n, 2.0), dy = random_values(rng, n);
    for (const ActivationKind kind : {ActivationKind::gelu_new, ActivationKind::gelu, ActivationKind::relu, ActivationKind::silu, ActivationKind::tanh}) {
      CAPTURE(static_cast<int>(kind));
      check_kernel<B>("activation", [&](auto& run) {
        using T = typename std::remove_reference_t<decltype(run)>::scalar;
        using K = typename std::remove_reference_t<decltype(run)>::backend;
        T *X = run.put(x), *DY = run.put(dy), *y = run.put(std::vector<double>(n)), *dx = run.put(dy);
        T *gated = run.put(std::vector<double>(rows * F)), *dgated = run.put(dy), *scratch = run.put(std::vector<double>(rows * F));
        K::activation_forward(kind, n, X, y);
        K::activation_backward(kind, n, X, DY, dx);
        K::gated_activation_forward(kind, rows, F, X, gated);
        K::gated_activation_backward(kind, rows, F, X, DY, dgated, scratch);
        std::vector<double> all;
        for (auto [p, count] : {std::pair{(const T*)y, n}, {dx, n}, {gated, rows * F}, {dgated, n}}) {
          const auto part = run.get(p, count);
          all.insert(all.end(), part.begin(), part.end());
        }
        return all;
      });
    }
  }
}

TEST_CASE_TEMPLATE("backend ops: attention, rotary and log-softmax", B, CIRCUITRY_COMPILED_BACKENDS) {
  for (unsigned seed = 1; seed <= 5; ++seed) {
    std::mt19937 rng(400 + seed);
    AttentionShape s{size_in(rng, 1, 3), size_in(rng, 1, 19), size_in(rng, 1, 4), size_in(rng, 1, 24)};
    CAPTURE(s.B); CAPTURE(s.P); CAPTURE(s.H); CAPTURE(s.dh);
    const std::size_t BP = s.B * s.P, PP = s.B * s.H * s.P * s.P;
    const auto qkv = random_values(rng, BP * s.ld()), dpattern = random_values(rng, PP), dz = random_values(rng, BP * s.D());
    std::vector<std::size_t> lengths(s.B);
    for (auto& l : lengths) l = size_in(rng, 1, s.P);
    std::vector<std::size_t> rows;
    for (std::size_t r = 0; r < BP; ++r)
      if (r % 3 == seed % 3) rows.push_back(r);
    const std::size_t window = size_in(rng, 1, s.P);
    // Gemma's scores on odd seeds: another scale and a soft cap.
    if (seed % 2) s.scores = AttentionScores{0.1 + 0.1 * double(seed), 1.0 + 0.5 * double(seed)};
    for (const KeyMask& mask : {KeyMask::causal_mask(), KeyMask::bidirectional(lengths), KeyMask::causal_mask(window)}) {
      CAPTURE(mask.causal);
      CAPTURE(mask.window);
      check_kernel<B>("attention", [&](auto& run) {
        using T = typename std::remove_reference_t<decltype(run)>::scalar;
        using K = typename std::remove_reference_t<decltype(run)>::backend;
        T *X = run.put(qkv), *pattern = run.put(std::vector<double>(PP)), *z = run.put(std::vector<double>(BP * s.D()));
        T *dqkv = run.put(std::vector<double>(BP * s.ld())), *dA = run.put(dpattern), *scratch = run.put(std::vector<double>(PP));
        T *z_rows = run.put(std::vector<double>(rows.size() * s.D()));
        K::attention_pattern_forward(s, mask, X, pattern);
        K::attention_mix_forward(s, pattern, X, z);
        K::attention_mix_backward(s, pattern, X, run.put(dz), dA, dqkv);
        K::attention_pattern_backward(s, mask, X, pattern, dA, dqkv, scratch);
        K::attention_rows(s, mask, rows, X, z_rows);
        std::vector<double> all;
        for (auto [p, count] : {std::pair{(const T*)pattern, PP}, {z, BP * s.D()}, {dqkv, BP * s.ld()}, {dA, PP}, {z_rows, rows.size() * s.D()}}) {
          const auto part = run.get(p, count);
          all.insert(all.end(), part.begin(), part.end());
        }
        return all;
      });
    }
    const std::size_t rot = 2 * size_in(rng, 1, std::max<std::size_t>(1, s.dh / 2));  // all of d_head or a part
    if (rot <= s.dh) {
      std::vector<double> cos(s.P * rot / 2), sin(s.P * rot / 2);
      for (std::size_t i = 0; i < cos.size(); ++i) cos[i] = std::cos(0.1 * double(i)), sin[i] = std::sin(0.1 * double(i));
      for (const bool inverse : {false, true})
        check_kernel<B>("rotate_half", [&](auto& run) {
          using K = typename std::remove_reference_t<decltype(run)>::backend;
          auto* X = run.put(qkv);
          K::rotate_half(BP, s.P, s.ld(), 2 * s.H, s.dh, rot, run.put(cos), run.put(sin), inverse, X);
          return run.get(X, BP * s.ld());
        });
    }
    const std::size_t V = size_in(rng, 1, 700);
    const auto logits = random_values(rng, BP * V, 4.0), dlogp = random_values(rng, BP * V);
    check_kernel<B>("log_softmax", [&](auto& run) {
      using K = typename std::remove_reference_t<decltype(run)>::backend;
      auto* y = run.put(std::vector<double>(BP * V));
      auto* dx = run.put(dlogp);
      K::log_softmax_forward(BP, V, run.put(logits), y);
      K::log_softmax_backward(BP, V, y, run.put(dlogp), dx);
      auto all = run.get(y, BP * V);
      const auto d = run.get(dx, BP * V);
      all.insert(all.end(), d.begin(), d.end());
      return all;
    });
  }
}

TEST_CASE("backend ops: the error measure catches a wrong kernel") {
  // A kernel off by one part in 10^3 in one value of three (a wrong constant) fails
  // the float bound, and one off in the last bits of double fails the double bound.
  const std::vector<double> ref = {1.0, -2.0, 3.0};
  CHECK(nmse({1.001, -2.0, 3.0}, ref) > 1e-10);
  CHECK(nmse({1.0 + 1e-9, -2.0, 3.0}, ref) > 1e-20);
  CHECK(nmse(ref, ref) == 0.0);
}
