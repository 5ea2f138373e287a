// Core: arena, tape and every op's backward against central finite differences (double).
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <random>
#include <thread>

#include <circuitry/ops/gradcheck.hpp>
#include <circuitry/ops.hpp>
#include <circuitry/backends/cpu/transpose.hpp>
#include <circuitry/models/components.hpp>

using namespace circuitry;

namespace {

GradInput random_input(Shape shape, unsigned seed, double scale = 1.0, double offset = 0.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0.0, scale);
  GradInput in{std::vector<double>(shape.numel()), shape};
  for (auto& v : in.values) v = offset + n(rng);
  return in;
}

/// The inputs copied into the arena as variables the tape differentiates with respect to.
std::vector<Var<double>> watched_vars(Arena& arena, Tape<double>& tape, const std::vector<GradInput>& inputs) {
  std::vector<Var<double>> v;
  for (const auto& g : inputs) {
    double* p = arena.alloc<double>(g.values.size());
    std::copy(g.values.begin(), g.values.end(), p);
    v.push_back({p, g.shape, nullptr});
    tape.watch(v.back());
  }
  return v;
}

void expect_ok(const GradCheckResult& r) {
  INFO("max_abs_error=" << r.max_abs_error << " max_abs_grad=" << r.max_abs_grad);
  CHECK(r.max_abs_grad > 1e-3);  // the check is not vacuous
  CHECK(r.ok(1e-6));
}

}  // namespace

TEST_CASE("arena reuses its memory after reset") {
  Arena arena(1024);
  float* a = arena.alloc<float>(100);
  arena.alloc<double>(500);  // spills into a second block
  const auto reserved = arena.reserved_bytes();
  arena.reset();
  CHECK(arena.alloc<float>(100) == a);
  arena.alloc<double>(500);
  CHECK(arena.reserved_bytes() == reserved);
}

TEST_CASE("a new arena takes the blocks of a destroyed one from the cache") {
  auto& cache = detail::ArenaBlockCache::instance();
  cache.clear();  // other tests' blocks
  const std::size_t block = std::size_t{3} << 20;
  std::byte* first = nullptr;
  {
    Arena arena(block);
    first = arena.alloc<std::byte>(16);
  }
  CHECK(cache.cached_bytes() == block);
  Arena again(block);
  CHECK(again.alloc<std::byte>(16) == first);  // the same memory, already faulted in
  CHECK(cache.cached_bytes() == 0);
  Arena other(block);  // nothing cached: a block of its own
  CHECK(other.alloc<std::byte>(16) != first);
  // At most kMaxCachedBytes are kept: a larger block goes back to the system.
  { Arena big(detail::ArenaBlockCache::kMaxCachedBytes + 64); big.alloc<std::byte>(64); }
  CHECK(cache.cached_bytes() == 0);
  { Arena small(1024), smaller(512); small.alloc<float>(1), smaller.alloc<float>(1); }
  CHECK(cache.cached_bytes() == 1024 + 512);
  Arena takes_smallest_fit(256);
  takes_smallest_fit.alloc<float>(1);
  CHECK(takes_smallest_fit.reserved_bytes() == 512);
  cache.clear();
  CHECK(cache.cached_bytes() == 0);
}

TEST_CASE("a non-recording context pushes nothing and gives no adjoints") {
  Arena arena;
  Context<double, false> ctx(arena);
  double data[6] = {1, 2, 3, 4, 5, 6};
  auto x = Context<double, false>::constant(data, {2, 3});
  auto y = ops::scale(ctx, x, 2.0);
  CHECK(y.value[5] == 12.0);
  CHECK_FALSE(y.needs_grad());
}

TEST_CASE("gradients: linear, matmul, batched_matmul") {
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::linear(ctx, v[0], v[1], &v[2]); },
                            {random_input({2, 3, 4}, 1), random_input({4, 5}, 2), random_input({5}, 3)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::matmul(ctx, v[0], v[1]); },
                            {random_input({3, 4}, 4), random_input({4, 2}, 5)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::matmul_transposed(ctx, v[0], v[1]); },
                            {random_input({3, 4}, 40), random_input({5, 4}, 41)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::batched_matmul(ctx, v[0], v[1]); },
                            {random_input({2, 3, 4}, 6), random_input({2, 4, 3}, 7)}));
  // An output gradient in two of 40 columns (as a logit difference gives) takes matmul_transposed's
  // sparse path for dx: only those rows of w.
  expect_ok(check_gradients(
      [](const auto& ctx, auto& v) { return ops::pick(ctx, ops::matmul_transposed(ctx, v[0], v[1]), std::vector<int>{5, 17, 5}); },
      {random_input({3, 4}, 42), random_input({40, 4}, 43)}));
  std::vector<double> dy(3 * 32, 0.0);  // [3, 32], nonzero in columns 1 and 3 only
  dy[0 * 32 + 1] = 1, dy[1 * 32 + 3] = -2, dy[2 * 32 + 1] = 3;
  CHECK(cpu::sparse_columns(dy.data(), 3, 32, 2) == std::vector<std::size_t>{1, 3});
  CHECK_FALSE(cpu::sparse_columns(dy.data(), 3, 32, 1).has_value());  // more than the limit: the dense path
  std::vector<double> w(32 * 2);  // [32, 2], row j = (2j + 1, 2j + 2)
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = double(i + 1);
  std::vector<double> dx(3 * 2, 1.0);
  cpu::add_product_sparse_lhs(3, 32, 2, dy.data(), w.data(), dx.data());  // 2 columns <= 32 / 16: the sparse path
  CHECK(dx == std::vector<double>{4, 5, -13, -15, 10, 13});  // 1 + dy w
}

TEST_CASE("gradients: broadcast add, mul, scale") {
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::add(ctx, v[0], v[1]); },
                            {random_input({2, 3, 4}, 8), random_input({4}, 9)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::add(ctx, v[0], v[1]); },
                            {random_input({2, 3}, 10), random_input({2, 3}, 11)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::mul(ctx, v[0], v[1]); },
                            {random_input({2, 3, 4}, 12), random_input({3, 4}, 13)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::scale(ctx, v[0], -1.5); },
                            {random_input({5}, 14)}));
}

TEST_CASE("gradients: layer norm and the MLP activations (gelu_new, gelu, relu)") {
  expect_ok(check_gradients(
      [](const auto& ctx, auto& v) { return ops::layer_norm(ctx, v[0], v[1], v[2], 1e-5); },
      {random_input({2, 3, 6}, 15, 2.0, 0.5), random_input({6}, 16, 0.3, 1.0), random_input({6}, 17)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::activation<GeluNew>(ctx, v[0]); },
                            {random_input({3, 7}, 18, 2.0)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::activation<Gelu>(ctx, v[0]); },
                            {random_input({3, 7}, 118, 2.0)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::activation<Relu>(ctx, v[0]); },
                            {random_input({3, 7}, 119, 2.0)}));
  // Known values: gelu(1) = Phi(1) = 0.841344746..., gelu_new(1) = 0.841191990..., relu(-2) = 0.
  Arena arena;
  Context<double, false> ctx(arena);
  std::vector<double> x{1.0, -2.0};
  const Var<double> in{x.data(), {2}, nullptr};
  CHECK(ops::activation<Gelu>(ctx, in).value[0] == doctest::Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(ops::activation<GeluNew>(ctx, in).value[0] == doctest::Approx(0.8411919906082768).epsilon(1e-14));
  CHECK(ops::activation<Relu>(ctx, in).value[1] == 0.0);
}

TEST_CASE("gradients: RMS norm, SiLU and the gated activation (SwiGLU)") {
  expect_ok(check_gradients(
      [](const auto& ctx, auto& v) {
        return ops::norm_linear_ports<RMSNorm>(ctx, v[0], v[1], Var<double>{}, 1e-5, nullptr, nullptr, ops::PortSplit::single());
      },
      {random_input({2, 3, 6}, 115, 2.0, 0.5), random_input({6}, 116, 0.3, 1.0)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::activation<Silu>(ctx, v[0]); },
                            {random_input({3, 7}, 117, 2.0)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::gated_activation<Silu>(ctx, v[0]); },
                            {random_input({3, 2 * 5}, 120, 2.0)}));
  // Known values: silu(1) = 1 / (1 + e^-1); gated: silu(gate) * up; RMSNorm([3, 4]) = [3, 4] / sqrt(12.5).
  Arena arena;
  Context<double, false> ctx(arena);
  std::vector<double> x{1.0, 3.0}, w{1.0, 2.0}, rms{3.0, 4.0};
  const Var<double> in{x.data(), {1, 2}, nullptr};
  CHECK(ops::activation<Silu>(ctx, in).value[0] == doctest::Approx(0.7310585786300049).epsilon(1e-14));
  CHECK(ops::gated_activation<Silu>(ctx, in).value[0] == doctest::Approx(3 * 0.7310585786300049).epsilon(1e-14));
  const Var<double> r = ops::norm_linear_ports<RMSNorm>(ctx, Var<double>{rms.data(), {1, 2}, nullptr}, Var<double>{w.data(), {2}, nullptr},
                                                        Var<double>{}, 0.0, nullptr, nullptr, ops::PortSplit::single());
  CHECK(r.value[1] == doctest::Approx(2 * 4 / std::sqrt(12.5)).epsilon(1e-14));
}

TEST_CASE("QK norm: gradients of q, k, v and both gains; each head vector RMS-normalised, values untouched") {
  const std::size_t H = 3, dh = 4, P = 2;
  expect_ok(check_gradients([&](const auto& ctx, auto& v) { return ops::qk_rms_norm(ctx, v[0], H, v[1], v[2], 1e-6); },
                            {random_input({2, P, 3 * H * dh}, 131), random_input({dh}, 132), random_input({dh}, 133)}));
  Arena arena;
  Context<double, false> ctx(arena);
  std::vector<double> qkv(P * 3 * H * dh), ones(dh, 1.0), twos(dh, 2.0);
  for (std::size_t i = 0; i < qkv.size(); ++i) qkv[i] = 0.1 + 0.37 * double(i % 11);
  const Var<double> y = ops::qk_rms_norm(ctx, Var<double>{qkv.data(), {1, P, 3 * H * dh}, nullptr}, H,
                                         Var<double>{ones.data(), {dh}, nullptr}, Var<double>{twos.data(), {dh}, nullptr}, 0.0);
  for (std::size_t p = 0; p < P; ++p)
    for (std::size_t j = 0; j < 3 * H; ++j) {
      double square = 0;
      for (std::size_t i = 0; i < dh; ++i) square += y.value[(p * 3 * H + j) * dh + i] * y.value[(p * 3 * H + j) * dh + i];
      if (j < 2 * H) CHECK(square / dh == doctest::Approx(j < H ? 1.0 : 4.0).epsilon(1e-12));  // q: gain 1, k: gain 2
      else
        for (std::size_t i = 0; i < dh; ++i) CHECK(y.value[(p * 3 * H + j) * dh + i] == qkv[(p * 3 * H + j) * dh + i]);
    }
}

TEST_CASE("rotary positions: gradients, the rotate-half layout, relative positions only") {
  const std::size_t H = 2, dh = 4, P = 5;
  for (const std::size_t rot : {dh, std::size_t{2}}) {  // all of each head (Llama) or a fraction (Pythia)
    CAPTURE(rot);
    const ops::RotaryTable<double> table(P, rot, 10.0);
    expect_ok(check_gradients([&](const auto& ctx, auto& v) { return ops::rotary_qk(ctx, v[0], H, table); },
                              {random_input({2, P, 3 * H * dh}, 121)}));
  }
  const ops::RotaryTable<double> table(P, dh, 10.0);
  Arena arena;
  Context<double, false> ctx(arena);
  // One sequence, the same q and k vector at every position: q_i . k_j depends on i - j only.
  std::vector<double> qkv(P * 3 * H * dh);
  for (std::size_t p = 0; p < P; ++p)
    for (std::size_t i = 0; i < 2 * H * dh; ++i) qkv[p * 3 * H * dh + i] = 0.3 + 0.1 * double(i % 7);
  const Var<double> y = ops::rotary_qk(ctx, Var<double>{qkv.data(), {1, P, 3 * H * dh}, nullptr}, H, table);
  auto dot = [&](std::size_t qp, std::size_t kp) {  // head 0
    double s = 0;
    for (std::size_t i = 0; i < dh; ++i) s += y.value[qp * 3 * H * dh + i] * y.value[kp * 3 * H * dh + H * dh + i];
    return s;
  };
  CHECK(dot(3, 1) == doctest::Approx(dot(4, 2)).epsilon(1e-12));
  CHECK(std::abs(dot(3, 1) - dot(3, 3)) > 1e-3);
  // Position 1, pair 0 (dims 0 and dh/2) turns by 1 radian: out[0] = x0 cos 1 - x2 sin 1.
  const double x0 = qkv[3 * H * dh + 0], x2 = qkv[3 * H * dh + 2];
  CHECK(y.value[3 * H * dh + 0] == doctest::Approx(x0 * std::cos(1.0) - x2 * std::sin(1.0)).epsilon(1e-14));
  CHECK(y.value[3 * H * dh + 2] == doctest::Approx(x2 * std::cos(1.0) + x0 * std::sin(1.0)).epsilon(1e-14));
  // Values are never rotated.
  for (std::size_t i = 2 * H * dh; i < 3 * H * dh; ++i) CHECK(y.value[4 * 3 * H * dh + i] == qkv[4 * 3 * H * dh + i]);
}

TEST_CASE("grouped-query attention: query heads of one group read their own copies of k and v") {
  const std::size_t H = 4, KV = 2, dh = 2, D = 5, N = (H + 2 * KV) * dh, A = H * dh;
  const auto split = ops::PortSplit::qkv_heads(H, dh, KV);
  auto in = {random_input({2, 3, D}, 134, 1.5, 0.3), random_input({D}, 135, 0.3, 1.0), random_input({D}, 136),
             random_input({D, N}, 137), random_input({N}, 138)};
  expect_ok(check_gradients(
      [&](const auto& ctx, auto& v) { return ops::norm_linear_ports<LayerNorm>(ctx, v[0], v[1], v[2], 1e-5, &v[3], &v[4], split); },
      in));
  Arena arena;
  Tape<double> tape(arena);
  Context<double, true> ctx(arena, tape);
  std::vector<Var<double>> v = watched_vars(arena, tape, in);
  std::vector<double> port_grads;
  auto y = ops::norm_linear_ports<LayerNorm>(ctx, v[0], v[1], v[2], 1e-5, &v[3], &v[4], split,
                                             [&](const double* g, std::size_t n, std::size_t rows, std::size_t d) {
                                               port_grads.assign(g, g + n * rows * d);
                                             });
  REQUIRE(y.shape[2] == 3 * A);  // ungrouped: k and v once per query head
  // Head 3 (group 1) reads KV head 1's k: the same values as head 2's copy, not head 1's (group 0).
  for (std::size_t i = 0; i < dh; ++i) {
    CHECK(y.value[A + 3 * dh + i] == y.value[A + 2 * dh + i]);
    CHECK(y.value[A + 3 * dh + i] != y.value[A + 1 * dh + i]);
  }
  // A gradient on head 3's k reaches head 3's <k> port only, not head 2's, though they share W_K.
  std::vector<double> seed(y.numel(), 0.0);
  for (std::size_t r = 0; r < 6; ++r)
    for (std::size_t c = 0; c < dh; ++c) seed[r * 3 * A + A + 3 * dh + c] = 1.0 + static_cast<double>(r + c);
  tape.backward(y, seed.data());
  const double* dx = tape.grad(v[0]);
  const std::size_t n = 6 * D, k3 = 3 * 3 + 1, k2 = 3 * 2 + 1;
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(port_grads[k3 * n + i] == doctest::Approx(dx[i]).epsilon(1e-12));
    CHECK(port_grads[k2 * n + i] == 0.0);
  }
}

TEST_CASE("gradients: attention pattern (causal, bidirectional with padding) and mix") {
  const std::size_t H = 2;
  for (const ops::KeyMask& mask : {ops::KeyMask::causal_mask(), ops::KeyMask::bidirectional({4, 2})}) {
    CAPTURE(mask.causal);
    expect_ok(check_gradients([&](const auto& ctx, auto& v) { return ops::attention_pattern(ctx, v[0], H, mask); },
                              {random_input({2, 4, 3 * 6}, 19)}));
    expect_ok(check_gradients(
        [&](const auto& ctx, auto& v) {
          auto pattern = ops::attention_pattern(ctx, v[0], H, mask);
          return ops::attention_mix(ctx, pattern, v[0], H);
        },
        {random_input({2, 4, 3 * 6}, 20)}));
  }
}

TEST_CASE("gradients: attention with a sliding window, another score scale and a soft cap (Gemma)") {
  const std::size_t H = 2;
  for (const AttentionScores scores : {AttentionScores{0.3, 0}, AttentionScores{0, 0.8}, AttentionScores{0.7, 1.2}})
    for (const std::size_t window : {0, 2, 3}) {  // (a window of 1 key has a constant pattern)
      CAPTURE(window);
      CAPTURE(scores.softcap);
      const ops::KeyMask mask = ops::KeyMask::causal_mask(window);
      expect_ok(check_gradients([&](const auto& ctx, auto& v) { return ops::attention_pattern(ctx, v[0], H, mask, scores); },
                                {random_input({2, 5, 3 * 6}, 191, 2.0)}));
    }
}

TEST_CASE("attention: a window of w keys, the scale and the soft cap as their definitions say") {
  Arena arena;
  Context<double, false> ctx(arena);
  const std::size_t P = 5, dh = 3, window = 2;
  auto in = random_input({1, P, 3 * dh}, 192, 2.0);
  auto qkv = Context<double, false>::constant(in.values.data(), in.shape);
  const double scale = 0.6, cap = 0.9;
  auto pattern = ops::attention_pattern(ctx, qkv, 1, ops::KeyMask::causal_mask(window), AttentionScores{scale, cap});
  for (std::size_t i = 0; i < P; ++i) {
    std::vector<double> e(P, 0.0);  // the definition: softmax over keys i - window < j <= i of cap tanh(scale q.k / cap)
    double z = 0;
    for (std::size_t j = 0; j < P; ++j) {
      if (j > i || j + window <= i) continue;
      double s = 0;
      for (std::size_t d = 0; d < dh; ++d) s += in.values[i * 3 * dh + d] * in.values[j * 3 * dh + dh + d];
      z += (e[j] = std::exp(cap * std::tanh(scale * s / cap)));
    }
    for (std::size_t j = 0; j < P; ++j) CHECK(pattern.view()(0, 0, i, j) == doctest::Approx(e[j] / z).epsilon(1e-14));
  }
}

TEST_CASE("gradients: the heads' shares of a norm after their sum, and the soft cap") {
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::post_norm_shares(ctx, v[0], v[1], 1e-6); },
                            {random_input({3, 4, 5}, 193), random_input({5}, 194)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::soft_cap(ctx, v[0], 1.5); }, {random_input({3, 7}, 195, 3.0)}));
  // The shares sum to the norm of the sum.
  Arena arena;
  Context<double, false> ctx(arena);
  auto x = random_input({3, 4, 5}, 196), w = random_input({5}, 197);
  auto shares = ops::post_norm_shares(ctx, Context<double, false>::constant(x.values.data(), x.shape),
                                      Context<double, false>::constant(w.values.data(), w.shape), 1e-6);
  for (std::size_t r = 0; r < 4; ++r) {
    double ms = 0;
    for (std::size_t d = 0; d < 5; ++d) {
      double s = 0;
      for (std::size_t h = 0; h < 3; ++h) s += x.values[(h * 4 + r) * 5 + d];
      ms += s * s / 5;
    }
    for (std::size_t d = 0; d < 5; ++d) {
      double s = 0, shared = 0;
      for (std::size_t h = 0; h < 3; ++h) s += x.values[(h * 4 + r) * 5 + d], shared += shares.value[(h * 4 + r) * 5 + d];
      CHECK(shared == doctest::Approx(w.values[d] * s / std::sqrt(ms + 1e-6)).epsilon(1e-13));
    }
  }
}

TEST_CASE("bidirectional attention: every row sees exactly its sequence's real positions") {
  Arena arena;
  Context<double, false> ctx(arena);
  auto in = random_input({2, 4, 3 * 4}, 121);
  auto qkv = Context<double, false>::constant(in.values.data(), in.shape);
  auto pattern = ops::attention_pattern(ctx, qkv, 2, ops::KeyMask::bidirectional({4, 3}));
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t h = 0; h < 2; ++h)
      for (std::size_t i = 0; i < 4; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < 4; ++j) {
          const double a = pattern.view()(b, h, i, j);
          if (j >= (b == 0 ? 4u : 3u)) CHECK(a == 0.0);
          else CHECK(a > 0.0);
          s += a;
        }
        CHECK(s == doctest::Approx(1.0));
      }
}

TEST_CASE("causal attention: rows sum to one and never look ahead") {
  Arena arena;
  Context<double, false> ctx(arena);
  auto in = random_input({1, 4, 3 * 4}, 21);
  auto qkv = Context<double, false>::constant(in.values.data(), in.shape);
  auto pattern = ops::attention_pattern(ctx, qkv, 2, ops::KeyMask::causal_mask());
  for (std::size_t h = 0; h < 2; ++h)
    for (std::size_t i = 0; i < 4; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < 4; ++j) {
        const double a = pattern.view()(0, h, i, j);
        if (j > i) CHECK(a == 0.0);
        s += a;
      }
      CHECK(s == doctest::Approx(1.0));
    }
}

TEST_CASE("gradients: embedding, log_softmax, exp, cross_entropy") {
  const std::vector<int> ids{3, 0, 3, 1, 2, 4};
  expect_ok(check_gradients(
      [&](const auto& ctx, auto& v) { return ops::embedding(ctx, v[0], ids, Shape{2, 3}); },
      {random_input({5, 4}, 22)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::log_softmax(ctx, v[0]); },
                            {random_input({3, 6}, 23, 2.0)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::exp(ctx, v[0]); },
                            {random_input({7}, 24)}));
  const std::vector<int> targets{1, 5, 0};
  expect_ok(check_gradients([&](const auto& ctx, auto& v) { return ops::cross_entropy(ctx, v[0], targets); },
                            {random_input({3, 6}, 25, 2.0)}));
}

TEST_CASE("gradients: sum, mean, sum_last, slice, concat, gather_rows, pick") {
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::sum(ctx, v[0]); }, {random_input({2, 3}, 26)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::mean(ctx, v[0]); }, {random_input({2, 3}, 27)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::sum_last(ctx, v[0]); }, {random_input({2, 3, 4}, 28)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::slice(ctx, v[0], 1, 1, 3); },
                            {random_input({2, 4, 3}, 29)}));
  expect_ok(check_gradients(
      [](const auto& ctx, auto& v) { return ops::concat(ctx, std::vector{v[0], v[1]}, 1); },
      {random_input({2, 2, 3}, 30), random_input({2, 1, 3}, 31)}));
  expect_ok(check_gradients(
      [](const auto& ctx, auto& v) { return ops::gather_rows(ctx, v[0], std::vector<std::size_t>{2, 0, 2}); },
      {random_input({3, 4}, 32)}));
  expect_ok(check_gradients([](const auto& ctx, auto& v) { return ops::pick(ctx, v[0], std::vector<int>{1, 3}); },
                            {random_input({2, 4}, 33)}));
}

TEST_CASE("gradients: pick_reduce (mean, max, log-sum-exp over ragged column sets)") {
  const std::vector<std::vector<int>> sets{{1, 3, 0}, {2}, {4, 1}};
  for (auto reduce : {ops::SetReduce::Mean, ops::SetReduce::Max, ops::SetReduce::LogSumExp}) {
    CAPTURE(static_cast<int>(reduce));
    expect_ok(check_gradients([&](const auto& ctx, auto& v) { return ops::pick_reduce(ctx, v[0], sets, reduce); },
                              {random_input({3, 5}, 34, 2.0)}));
  }
  // One column per row is pick, bit for bit (single-token metrics are unchanged).
  GradInput x = random_input({2, 4}, 35, 3.0);
  const std::vector<int> cols{1, 3};
  for (auto reduce : {ops::SetReduce::Mean, ops::SetReduce::Max, ops::SetReduce::LogSumExp}) {
    Arena arena;
    Context<double, false> ctx(arena);
    const Var<double> in{x.values.data(), x.shape, nullptr};
    const Var<double> picked = ops::pick(ctx, in, cols);
    const Var<double> reduced = ops::pick_reduce(ctx, in, {{1}, {3}}, reduce);
    for (std::size_t r = 0; r < 2; ++r) CHECK(picked.value[r] == reduced.value[r]);
  }
  auto empty_set = [] {
    Arena arena;
    Context<double, false> ctx(arena);
    std::vector<double> v(4, 0.0);
    ops::pick_reduce(ctx, Var<double>{v.data(), {2, 2}, nullptr}, {{0}, {}}, ops::SetReduce::Mean);
  };
  CHECK_THROWS_AS(empty_set(), Error);
}

TEST_CASE("norm_linear_ports: per-port gradients sum to the ordinary gradient") {
  const std::size_t H = 2, dh = 3, D = H * dh;
  auto in = {random_input({2, 3, D}, 34, 1.5, 0.3), random_input({D}, 35, 0.3, 1.0), random_input({D}, 36),
             random_input({D, 3 * D}, 37), random_input({3 * D}, 38)};
  // The fused op's gradients match finite differences...
  expect_ok(check_gradients(
      [&](const auto& ctx, auto& v) {
        return ops::norm_linear_ports<LayerNorm>(ctx, v[0], v[1], v[2], 1e-5, &v[3], &v[4], ops::PortSplit::qkv_heads(H, dh));
      },
      in));
  // With no norm (tracr) the op is a plain projection with the same port split.
  expect_ok(check_gradients(
      [&](const auto& ctx, auto& v) {
        return ops::norm_linear_ports<NoNorm>(ctx, v[0], Var<double>{}, Var<double>{}, 1e-5, &v[3], &v[4],
                                              ops::PortSplit::qkv_heads(H, dh));
      },
      in));
  // ...and each port's gradient equals the gradient through that port's columns alone.
  Arena arena;
  Tape<double> tape(arena);
  Context<double, true> ctx(arena, tape);
  std::vector<Var<double>> v = watched_vars(arena, tape, in);
  std::vector<double> port_grads;
  auto y = ops::norm_linear_ports<LayerNorm>(ctx, v[0], v[1], v[2], 1e-5, &v[3], &v[4], ops::PortSplit::qkv_heads(H, dh),
                                  [&](const double* g, std::size_t n, std::size_t rows, std::size_t d) {
                                    port_grads.assign(g, g + n * rows * d);
                                  });
  std::vector<double> seed(y.numel(), 0.0);
  const std::size_t port = 3 * 1 + 2;  // head 1's v: columns 2D + dh .. 2D + 2dh
  for (std::size_t r = 0; r < 6; ++r)
    for (std::size_t c = 0; c < dh; ++c) seed[r * 3 * D + 2 * D + dh + c] = 1.0 + static_cast<double>(r + c);
  tape.backward(y, seed.data());
  const double* dx = tape.grad(v[0]);
  const std::size_t n = 6 * D;
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(port_grads[port * n + i] == doctest::Approx(dx[i]).epsilon(1e-12));
    CHECK(port_grads[0 * n + i] == 0.0);
  }
}

TEST_CASE("nested tape scopes: an inner gradient leaves the outer tape as it was") {
  Arena arena;
  Tape<double> tape(arena);
  Context<double, true> ctx(arena, tape);
  double data[3] = {0.5, -1.0, 2.0};
  Var<double> x{data, {3}, nullptr};
  tape.watch(x);
  Var<double> outer = ops::sum(ctx, ops::mul(ctx, x, x));  // sum x^2
  const std::size_t entries = tape.size();
  {
    Tape<double>::Scope scope(tape);
    Var<double> inner = ops::sum(ctx, ops::exp(ctx, x));  // sum e^x
    tape.backward(inner);
    for (int i = 0; i < 3; ++i) CHECK(tape.grad(x)[i] == doctest::Approx(std::exp(data[i])));
  }
  CHECK(tape.size() == entries);
  tape.backward(outer);
  for (int i = 0; i < 3; ++i) CHECK(tape.grad(x)[i] == doctest::Approx(2 * data[i]));
}

TEST_CASE("thread pool: every task once at any thread count, nested loops serial, exceptions reach the caller") {
  const int before = num_threads();
  for (int threads : {1, 2, 3, 5}) {
    set_num_threads(threads);
    CAPTURE(threads);
    CHECK(num_threads() == threads);
    for (std::size_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> runs(n);
      parallel_tasks(n, [&](std::size_t t) { runs[t].fetch_add(1); });
      bool once = true;
      for (auto& r : runs) once = once && r.load() == 1;
      CHECK(once);
    }
    // parallel_for covers [0, n) with disjoint ranges, whatever the grain.
    for (std::size_t grain : {1, 3, 100}) {
      std::vector<int> hits(1000, 0);
      parallel_for(hits.size(), grain, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) ++hits[i];
      });
      CHECK(std::count(hits.begin(), hits.end(), 1) == 1000);
    }
    // A loop inside a task runs on that task's thread.
    std::atomic<int> nested_elsewhere{0};
    parallel_tasks(8, [&](std::size_t) {
      const auto me = std::this_thread::get_id();
      parallel_tasks(16, [&](std::size_t) {
        if (std::this_thread::get_id() != me) ++nested_elsewhere;
      });
    });
    CHECK(nested_elsewhere.load() == 0);
    // The first exception of a loop reaches the caller after every task has run; the pool still works.
    std::atomic<int> ran{0};
    CHECK_THROWS_WITH_AS(parallel_tasks(64, [&](std::size_t t) {
                           ++ran;
                           if (t % 10 == 3) throw Error("task " + std::to_string(t));
                         }),
                         doctest::Contains("task"), Error);
    CHECK(ran.load() == 64);
    std::atomic<int> after{0};
    parallel_tasks(32, [&](std::size_t) { ++after; });
    CHECK(after.load() == 32);
  }
  set_num_threads(before);
}

TEST_CASE("gemm: the same bytes for any thread count, and the product it should be") {
  const int before = num_threads();
  struct Shape {
    std::size_t M, N, K;
  };
  // Several row and column blocks; a short product cut along its columns (3 blocks); a
  // shorter one in 7 column blocks (detail::gemm_grid).
  for (const Shape s : {Shape{300, 1100, 70}, Shape{176, 1100, 70}, Shape{40, 1100, 700}}) {
    CAPTURE(s.M);
    const std::size_t M = s.M, N = s.N, K = s.K;
    std::mt19937 rng(7);
    std::normal_distribution<float> n(0.0f, 1.0f);
    std::vector<float> A(M * K), B(N * K);
    for (auto& v : A) v = n(rng);
    for (auto& v : B) v = n(rng);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      std::vector<float> C(M * N, 1.0f);
      gemm<float>(Trans::No, Trans::Yes, M, N, K, 0.5f, A.data(), K, B.data(), K, 2.0f, C.data(), N);
      results.push_back(C);
    }
    CHECK(results[0] == results[1]);
    CHECK(results[0] == results[2]);
    double worst = 0;
    for (std::size_t i = 0; i < M; i += 7)
      for (std::size_t j = 0; j < N; j += 53) {
        double dot = 0;
        for (std::size_t k = 0; k < K; ++k) dot += double(A[i * K + k]) * double(B[j * K + k]);
        worst = std::max(worst, std::abs(results[0][i * N + j] - (0.5 * dot + 2.0)) / (1.0 + std::abs(0.5 * dot)));
      }
    CHECK(worst < 1e-5);
  }
  set_num_threads(before);
  const detail::GemmGrid tall = detail::gemm_grid(300, 1100, 70), short_cut = detail::gemm_grid(176, 1100, 70);
  CHECK(tall.block_rows == 128);
  CHECK(tall.block_cols == 1024);
  CHECK(short_cut.block_rows == 176);  // all rows, the columns in 3 equal blocks
  CHECK(short_cut.block_cols == 368);
}

TEST_CASE("gemm: a few rows against a long transposed B (the readout rows' kernel), exact enough and the same bytes for any thread count") {
  const int before = num_threads();
  // Tails everywhere: rows not a multiple of 4, N % 4 = 3, K % 16 = 12; strided operands and C.
  const std::size_t N = 4099, K = 300, lda = K + 5, ldb = K + 3, ldc = N + 2;
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> A(12 * lda), B(N * ldb);
  for (auto& v : A) v = n(rng);
  for (auto& v : B) v = n(rng);
  for (const std::size_t M : {1, 3, 5, 12}) {
    CHECK(detail::takes_few_rows_kernel(M, N, K));
    for (const float beta : {0.0f, 1.0f}) {
      CAPTURE(M);
      CAPTURE(beta);
      std::vector<float> C_start(M * ldc);
      for (auto& v : C_start) v = beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : n(rng);  // beta 0: C is not read
      std::vector<std::vector<float>> results;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> C = C_start;
        gemm<float>(Trans::No, Trans::Yes, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        results.push_back(C);
      }
      CHECK(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)) == 0);
      CHECK(std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(float)) == 0);
      double worst = 0;
      for (std::size_t i = 0; i < M; ++i)
        for (std::size_t j = 0; j < N; ++j) {
          double dot = 0;
          for (std::size_t k = 0; k < K; ++k) dot += double(A[i * lda + k]) * double(B[j * ldb + k]);
          const double expected = 0.5 * dot + (beta == 0.0f ? 0.0 : double(C_start[i * ldc + j]));
          worst = std::max(worst, std::abs(results[0][i * ldc + j] - expected) / (1.0 + std::abs(expected)));
        }
      CHECK(worst < 1e-5);
      for (std::size_t i = 0; i < M; ++i)  // the padding between rows of C is left alone
        CHECK(std::memcmp(&results[0][i * ldc + N], &C_start[i * ldc + N], 2 * sizeof(float)) == 0);
    }
  }
  set_num_threads(before);
  CHECK_FALSE(detail::takes_few_rows_kernel(13, N, K));      // more rows: the GEMM library
  CHECK_FALSE(detail::takes_few_rows_kernel(12, 64, 64));    // a small product: the GEMM library
}

TEST_CASE("transpose: blocked, with tails and leading dimensions") {
  const std::size_t rows = 70, cols = 45, ld_src = 50, ld_dst = 75;  // tiles of 32: tails both ways
  std::vector<double> src(rows * ld_src), dst(cols * ld_dst, -1.0);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = double(i);
  transpose(src.data(), rows, cols, ld_src, dst.data(), ld_dst);
  bool all_moved = true, padding_kept = true;
  for (std::size_t c = 0; c < cols; ++c)
    for (std::size_t r = 0; r < ld_dst; ++r)
      if (r < rows) all_moved = all_moved && dst[c * ld_dst + r] == src[r * ld_src + c];
      else padding_kept = padding_kept && dst[c * ld_dst + r] == -1.0;
  CHECK(all_moved);
  CHECK(padding_kept);
}

TEST_CASE("bfloat16 GEMMs: rounding and agreement with float32, or one clear error where they cannot run") {
  const std::string why = bfloat16_unavailable_reason();
  if (!why.empty()) {
    CHECK_THROWS_WITH_AS(set_gemm_precision(GemmPrecision::bfloat16), doctest::Contains("bfloat16 GEMMs are not available"), Error);
    CHECK(gemm_precision() == GemmPrecision::native);
    return;
  }
#if defined(CIRCUITRY_WITH_ONEDNN)
  using backends::onednn::from_bfloat16;
  using backends::onednn::to_bfloat16;
  CHECK(to_bfloat16(1.0f) == 0x3f80);
  CHECK(to_bfloat16(1.0f + 0x1p-8f) == 0x3f80);        // a tie goes to the even neighbour
  CHECK(to_bfloat16(1.0f + 3 * 0x1p-8f) == 0x3f82);    // and here the even one is above
  CHECK(to_bfloat16(-2.5f) == 0xc020);
  CHECK(std::isnan(from_bfloat16(to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isinf(from_bfloat16(to_bfloat16(std::numeric_limits<float>::infinity()))));
#endif
  const std::size_t M = 200, N = 300, K = 128;
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> A(K * M), B(K * N), C32(M * N, 0.5f), C16(M * N, 0.5f), ref(M * N, 0.5f);
  for (auto& v : A) v = n(rng);
  for (auto& v : B) v = n(rng);
  gemm<float>(Trans::Yes, Trans::No, M, N, K, -1.5f, A.data(), M, B.data(), N, 1.0f, C32.data(), N);
  {
    const GemmPrecisionScope bf16(GemmPrecision::bfloat16);
    CHECK(gemm_precision() == GemmPrecision::bfloat16);
    gemm<float>(Trans::Yes, Trans::No, M, N, K, -1.5f, A.data(), M, B.data(), N, 1.0f, C16.data(), N);
  }
  CHECK(gemm_precision() == GemmPrecision::native);
  // The float32 product of the rounded operands is what bfloat16 inputs with float32 accumulation give.
#if defined(CIRCUITRY_WITH_ONEDNN)
  std::vector<float> A16(A.size()), B16(B.size());
  for (std::size_t i = 0; i < A.size(); ++i) A16[i] = from_bfloat16(to_bfloat16(A[i]));
  for (std::size_t i = 0; i < B.size(); ++i) B16[i] = from_bfloat16(to_bfloat16(B[i]));
  gemm<float>(Trans::Yes, Trans::No, M, N, K, -1.5f, A16.data(), M, B16.data(), N, 1.0f, ref.data(), N);
  double to_rounded = 0, to_float32 = 0;
  for (std::size_t i = 0; i < C16.size(); ++i) {
    to_rounded = std::max(to_rounded, double(std::abs(C16[i] - ref[i])));
    to_float32 = std::max(to_float32, double(std::abs(C16[i] - C32[i])));
  }
  CHECK(to_rounded < 1e-3);   // float32 accumulation of the same bfloat16 products
  CHECK(to_float32 > 1e-3);   // the inputs really were rounded
  CHECK(to_float32 < 0.5);    // by bfloat16's 8 bits: |C| ~ 17, 2^-8 relative per operand
#endif
}
