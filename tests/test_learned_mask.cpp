// Learned edge masks (Edge Pruning; circuits/learned_mask.hpp): the masked forward against
// circuit evaluation at binary masks and against a slow transcription at fractional ones, its
// gradient against central differences, the planted circuits found exactly, determinism and
// bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

#include <circuitry/circuits/learned_mask.hpp>
#include <circuitry/circuits/planted_circuit.hpp>
#include <circuitry/patching.hpp>

#include "error_check.hpp"
#include "fixtures.hpp"

using namespace circuitry;
using circuitry::testing::Fixture;

namespace {

using MaskArchitectures = ArchitectureList<GPT2, AttnOnly, Pythia, Llama>;

/// The slow, obvious masked input: the run's own residual with every edge's unmasked share of
/// its node's output swapped for the source, in_p = resid - sum_u (1 - z_up) (out_u - src_u).
template <class T>
class SoftMask : public Intervention<T> {
 public:
  SoftMask(const Graph& g, const std::vector<double>& z, const std::vector<T>& source, std::size_t bpd)
      : g_(&g), z_(&z), source_(&source), bpd_(bpd) {}
  bool port_inputs(std::size_t first, std::size_t n, const T* resid, const T* outputs, T* inputs) override {
    for (std::size_t i = 0; i < n; ++i) {
      T* in = inputs + i * bpd_;
      for (std::size_t x = 0; x < bpd_; ++x) in[x] = resid[x];
      for (int e : g_->edges_into(static_cast<int>(first + i))) {
        const std::size_t u = static_cast<std::size_t>(g_->edges()[static_cast<std::size_t>(e)].upstream);
        const T keep = static_cast<T>(1 - (*z_)[static_cast<std::size_t>(e)]);
        for (std::size_t x = 0; x < bpd_; ++x) in[x] -= keep * (outputs[u * bpd_ + x] - (*source_)[u * bpd_ + x]);
      }
    }
    return true;
  }

 private:
  const Graph* g_;
  const std::vector<double>* z_;
  const std::vector<T>* source_;
  std::size_t bpd_;
};

/// The masked forward's logits at z (no tape).
template <class M, class T = typename M::scalar>
std::vector<T> masked_logits(const M& model, const Batch& batch, std::vector<T> z, const MaskSources<T>& sources) {
  ArenaFor<M> arena;
  Tape<T> tape(arena);
  const ContextFor<M, true> ctx(arena, tape);
  const Var<T> logits = masked_forward(ctx, model, batch, Var<T>{z.data(), {z.size()}, nullptr}, sources);
  return std::vector<T>(logits.value, logits.value + logits.numel());
}

double max_gap(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

struct Planted {
  PlantedModel<double> planted;
  Model<AttnOnly, double> model;
  PatchingTask<double> task;
  std::vector<std::uint8_t> truth;
  Planted(std::size_t layers, std::size_t heads, PlantedShape shape, unsigned seed = 1)
      : planted(make_planted_model<double>([&] {
          PlantedSpec spec;
          spec.n_layers = layers, spec.n_heads = heads, spec.shape = shape, spec.seed = seed, spec.n_examples = 8;
          return spec;
        }())),
        model(planted.config, planted.weights), task(make_patching_task(model, planted.task)), truth(planted.truth(model.graph())) {}
};

}  // namespace

TEST_CASE("masked forward: at a binary mask it is circuit evaluation, at a fractional one the slow transcription") {
  for (const char* name : {"gpt2-tiny", "attn-only", "hf-pythia", "hf-llama-gqa"}) {
    CAPTURE(name);
    Fixture<double> fx(name);
    fx.template with_model<MaskArchitectures>([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      const Graph graph = model.graph();
      const std::size_t n = graph.n_edges(), bpd = task.clean.rows() * model.config().n_embd;
      std::mt19937_64 rng(7);
      for (Ablation ablation : {Ablation::Resample, Ablation::Zero, Ablation::Mean}) {
        CAPTURE(ablation_name(ablation));
        const std::vector<double> source = ablation_source(model, task, ablation, &task.corrupted);
        const MaskSources<double> sources = mask_sources(model, source, bpd);
        // binary: the circuit of the edges with z = 1
        std::vector<double> z(n);
        std::vector<std::uint8_t> in_graph(n);
        for (std::size_t e = 0; e < n; ++e) z[e] = in_graph[e] = rng() % 3 != 0;
        const auto evaluated = evaluate_circuit(model, task, BuiltinMetric{MetricKind::KL}, in_graph, source);
        CHECK(max_gap(masked_logits(model, task.clean, z, sources), evaluated.logits) < 1e-9);
        // every edge kept: the clean run; none: every node reads the source
        CHECK(max_gap(masked_logits(model, task.clean, std::vector<double>(n, 1.0), sources), task.clean_logits) < 1e-9);
        // fractional
        for (double& v : z) v = double(rng() >> 11) * 0x1p-53;
        SoftMask<double> soft(graph, z, source, bpd);
        CHECK(max_gap(masked_logits(model, task.clean, z, sources), run_with(model, task.clean, soft).logits) < 1e-9);
      }
    });
  }
}

TEST_CASE("masked forward: d loss / d log_alpha at fixed noise equals central differences") {
  for (const char* name : {"gpt2-tiny", "hf-llama-gqa"}) {
    CAPTURE(name);
    Fixture<double> fx(name);
    fx.template with_model<MaskArchitectures>([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      const std::size_t n = model.graph().n_edges(), bpd = task.clean.rows() * model.config().n_embd;
      const MaskSources<double> sources = mask_sources(model, ablation_source(model, task, Ablation::Resample), bpd);
      std::mt19937_64 rng(3);
      std::vector<double> log_alpha(n), u(n);
      for (std::size_t e = 0; e < n; ++e) log_alpha[e] = double(rng() >> 11) * 0x1p-53 - 0.5, u[e] = 0.3 + 0.4 * double(rng() >> 11) * 0x1p-53;
      // loss = KL(p_clean || p_masked) + 0.01 E[L0], on the tape
      auto loss = [&](std::vector<double>& la, std::vector<double>* grad) {
        ArenaFor<std::remove_cvref_t<decltype(model)>> arena;
        Tape<double> tape(arena);
        const Context<double, true> ctx(arena, tape);
        Var<double> v{la.data(), {n}, nullptr};
        tape.watch(v);
        const Var<double> z = hard_concrete_sample(ctx, v, u);
        const Var<double> kl = BuiltinMetric{MetricKind::KL}(ctx, masked_forward(ctx, model, task.clean, z, sources), task.data);
        const Var<double> l = ops::add(ctx, kl, ops::scale(ctx, expected_l0(ctx, v), 0.01));
        if (grad) {
          tape.backward(l);
          grad->assign(ctx.grad(v), ctx.grad(v) + n);
        }
        return l.value[0];
      };
      std::vector<double> grad;
      loss(log_alpha, &grad);
      for (std::size_t e = 0; e < n; e += std::max<std::size_t>(1, n / 23)) {
        CAPTURE(e);
        const double h = 1e-5, keep = log_alpha[e];
        log_alpha[e] = keep + h;
        const double up = loss(log_alpha, nullptr);
        log_alpha[e] = keep - h;
        const double down = loss(log_alpha, nullptr);
        log_alpha[e] = keep;
        CHECK(std::abs((up - down) / (2 * h) - grad[e]) < 1e-7 * std::max(1.0, std::abs(grad[e])));
      }
    });
  }
}

TEST_CASE("learn-mask finds the planted circuit exactly: chain, fork and induction, given its size") {
  for (PlantedShape shape : {PlantedShape::Chain, PlantedShape::Fork, PlantedShape::Induction})
    for (std::size_t layers : {2, 3}) {
      CAPTURE(int(shape));
      CAPTURE(layers);
      const Planted p(layers, 3, shape);
      LearnMaskOptions o;
      o.target_edges = p.planted.true_edges.size();
      const LearnedMask r = learn_mask(p.model, p.task, o);
      CHECK(r.in_graph == p.truth);
      CHECK(std::abs(r.expected_edges - double(o.target_edges)) < 1.5);
    }
}

TEST_CASE("learn-mask with an L0 weight keeps the edges of log_alpha > 0: the planted circuit") {
  for (PlantedShape shape : {PlantedShape::Chain, PlantedShape::Fork}) {
    CAPTURE(int(shape));
    const Planted p(2, 3, shape);
    LearnMaskOptions o;
    o.l0 = 0.1;
    const LearnedMask r = learn_mask(p.model, p.task, o);
    CHECK(r.in_graph == p.truth);
    for (std::size_t e = 0; e < r.in_graph.size(); ++e) CHECK(bool(r.in_graph[e]) == (r.log_alpha[e] > 0));
  }
}

TEST_CASE("learn-mask: the same seed gives the same bytes, for any thread count; another seed other numbers") {
  Fixture<double> fx("gpt2-small3");
  fx.template with_model<MaskArchitectures>([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    LearnMaskOptions o;
    o.target_edges = 20, o.steps = 4;
    const int before = num_threads();
    set_num_threads(1);
    const LearnedMask a = learn_mask(model, task, o);
    set_num_threads(3);
    const LearnedMask b = learn_mask(model, task, o);
    set_num_threads(before);
    CHECK(std::memcmp(a.log_alpha.data(), b.log_alpha.data(), a.log_alpha.size() * sizeof(double)) == 0);
    CHECK(std::memcmp(&a.loss, &b.loss, sizeof(double)) == 0);
    CHECK(a.in_graph == b.in_graph);
    o.seed = 2;
    CHECK(learn_mask(model, task, o).log_alpha != a.log_alpha);
  });
}

TEST_CASE("learn-mask restarts: each is the run of its seed, scored by its hard circuit's own F; the least objective wins") {
  Fixture<double> fx("gpt2-small3");
  fx.template with_model<MaskArchitectures>([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const std::vector<double> source = ablation_source(model, task, Ablation::Resample);
    for (bool by_l0 : {false, true}) {
      CAPTURE(by_l0);
      LearnMaskOptions o;
      if (by_l0) o.l0 = 0.002;
      else o.target_edges = 20;
      o.steps = 4, o.seed = 5, o.restarts = 3, o.lr = 0.5;  // a large step: the seeds' circuits differ
      const LearnedMask best = learn_mask(model, task, o);
      REQUIRE(best.restarts.size() == 3);
      std::size_t argmin = 0;
      for (std::size_t i = 0; i < 3; ++i) {
        LearnMaskOptions one = o;
        one.restarts = 1, one.seed = o.seed + i;
        const LearnedMask r = learn_mask(model, task, one);
        const LearnMaskRestart& x = best.restarts[i];
        CHECK(x.seed == o.seed + i);
        CHECK(r.seed == x.seed);
        CHECK(x.n_edges == static_cast<std::size_t>(std::count(r.in_graph.begin(), r.in_graph.end(), std::uint8_t{1})));
        // F of the hard circuit: KL of the run with every edge outside it patched.
        const double kl = evaluate_circuit(model, task, BuiltinMetric{MetricKind::KL}, r.in_graph, source).metric;
        CHECK(x.circuit_faithfulness == kl);
        CHECK(x.objective == doctest::Approx(kl + (by_l0 ? o.l0 * double(x.n_edges) : 0.0)).epsilon(1e-15));
        if (x.objective < best.restarts[argmin].objective) argmin = i;
        if (best.seed == r.seed) {
          CHECK(best.log_alpha == r.log_alpha);
          CHECK(best.in_graph == r.in_graph);
          CHECK(best.circuit_faithfulness == r.circuit_faithfulness);
        }
      }
      CHECK(best.seed == o.seed + argmin);
    }
  });
}

TEST_CASE("learn-mask: bad options are one clear error") {
  const Planted p(2, 2, PlantedShape::Chain);
  const std::size_t n = p.model.graph().n_edges();
  auto with = [&](auto change) {
    LearnMaskOptions o;
    o.target_edges = 3;
    change(o);
    return o;
  };
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.steps = 0; })), "--steps must be positive");
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.restarts = 0; })), "--restarts must be positive");
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.lr = 0; })), "--lr must be a positive");
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.lr = std::nan(""); })), "--lr must be a positive");
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.multiplier_lr = -1; })), "--multiplier-lr must be a positive");
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.target_edges = 0; })), "give either", "--edges N", "--l0");
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.l0 = 0.1; })), "give either");
  CHECK_ERROR(learn_mask(p.model, p.task, with([&](LearnMaskOptions& o) { o.target_edges = n + 1; })), "--edges " + std::to_string(n + 1),
              "more than the graph's " + std::to_string(n));
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.target_edges = 0, o.l0 = std::nan(""); })), "--l0 must be a positive finite");
  CHECK_ERROR(learn_mask(p.model, p.task, with([](LearnMaskOptions& o) { o.ablation = Ablation::Mean; })), "mean ablation needs a reference batch");
  CHECK_ERROR(parse_ablation("noise"), "unknown ablation 'noise'");
}
