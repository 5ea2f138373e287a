// Gemma 2 and Gemma 3 (tests/make_gemma_fixtures.py: sliding windows, soft caps, norms after the
// attention and the MLP) through every engine, in double. transformers has no residual-stream graph,
// so each engine is held to a slower, independent route to the same definition (DESIGN.md section 2,
// "A norm after the heads' sum": a head's node output is its share w * r_h * rstd(S)):
//   - the node outputs of a clean run sum to the residual stream at every stage;
//   - exact patching's patched lanes give, edge by edge, the metric of run_with's edge patching;
//   - ACDC's decisions (lanes 1 and 8) are those of a pass written with evaluate runs alone;
//   - EAP's scores are the central differences of the metric along each edge's Delta;
//   - the masked forward with a 0/1 mask is circuit evaluation, and its gradient is the metric's.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "circuitry/circuitry.hpp"

using namespace circuitry;

namespace {

using Gemmas = ArchitectureList<Gemma>;
constexpr const char* kGemmaFixtures[] = {"hf-gemma2", "hf-gemma3"};

template <class F>
void with_gemma(const std::string& name, F&& f) {
  const std::string dir = std::string(CIRCUITRY_FIXTURES_DIR) + "/" + name;
  const auto checkpoint = io::load_model_directory<double>(dir);
  const Task task = read_task(dir + "/task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
  with_architecture<Gemmas>(checkpoint.config, [&]<class Arch>() {
    const Model<Arch, double> model(checkpoint.config, checkpoint.weights);
    f(model, make_patching_task(model, task));
  });
}

/// A run whose port p reads its ordinary input plus eps * delta.
class PortNudge : public Intervention<double> {
 public:
  PortNudge(std::size_t port, const double* delta, double eps, std::size_t bpd) : port_(port), delta_(delta), eps_(eps), bpd_(bpd) {}
  bool port_inputs(std::size_t first, std::size_t n, const double* resid, const double*, double* inputs) override {
    if (port_ < first || port_ >= first + n) return false;
    for (std::size_t i = 0; i < n; ++i) std::copy_n(resid, bpd_, inputs + i * bpd_);
    for (std::size_t j = 0; j < bpd_; ++j) inputs[(port_ - first) * bpd_ + j] += eps_ * delta_[j];
    return true;
  }

 private:
  std::size_t port_;
  const double* delta_;
  double eps_;
  std::size_t bpd_;
};

/// PortNudge on one example's rows, with every node of `frozen_layer` giving its clean output.
class FrozenLayerNudge : public Intervention<double> {
 public:
  FrozenLayerNudge(const Graph& g, const std::vector<double>& clean, std::size_t port, const double* delta, double eps,
                   std::size_t rows_begin, std::size_t rows_end, std::size_t bpd, int frozen_layer)
      : g_(&g), clean_(&clean), port_(port), delta_(delta), eps_(eps), begin_(rows_begin), end_(rows_end), bpd_(bpd), frozen_(frozen_layer) {}
  bool port_inputs(std::size_t first, std::size_t n, const double* resid, const double*, double* inputs) override {
    if (port_ < first || port_ >= first + n) return false;
    for (std::size_t i = 0; i < n; ++i) std::copy_n(resid, bpd_, inputs + i * bpd_);
    for (std::size_t r = begin_; r < end_; ++r) inputs[(port_ - first) * bpd_ + r] += eps_ * delta_[r];
    return true;
  }
  void node_output(std::size_t node, const double*, double* value) override {
    if (g_->upstream()[node].layer == frozen_) std::copy_n(clean_->data() + node * bpd_, bpd_, value);
  }

 private:
  const Graph* g_;
  const std::vector<double>* clean_;
  std::size_t port_;
  const double* delta_;
  double eps_;
  std::size_t begin_, end_, bpd_;
  int frozen_;
};

}  // namespace

TEST_CASE("Gemma: the node outputs (heads' shares of the post-attention norm) sum to the residual stream") {
  for (const char* name : kGemmaFixtures) {
    CAPTURE(name);
    with_gemma(name, [&](const auto& model, const auto& task) {
      const RecordedRun<double> run = record_run(model, task.clean);
      const std::size_t BPD = task.clean.rows() * model.config().n_embd, L = model.config().n_layer;
      const Graph g = model.graph();
      double worst = 0, scale = 0;
      for (std::size_t stage = 0; stage < residual_stages(L); ++stage) {
        // the nodes whose outputs precede the stage: input, then each layer's heads, then its MLP
        const std::size_t layers = stage / 2, nodes = first_node_of_layer(layers, model.config().n_head, true) +
                                                      (stage % 2 ? model.config().n_head : 0);
        for (std::size_t i = 0; i < BPD; ++i) {
          double sum = 0;
          for (std::size_t u = 0; u < nodes; ++u) sum += run.node_outputs[u * BPD + i];
          worst = std::max(worst, std::abs(sum - run.residuals[stage * BPD + i]));
          scale = std::max(scale, std::abs(sum));
        }
      }
      CHECK(scale > 1);
      CHECK(worst < 1e-12 * scale);
      (void)g;
    });
  }
}

TEST_CASE("Gemma: exact patching's lanes agree with run_with's edge patching on every edge") {
  for (const char* name : kGemmaFixtures) {
    CAPTURE(name);
    with_gemma(name, [&](const auto& model, const auto& task) {
      using M = std::decay_t<decltype(model)>;
      const Graph g = model.graph();
      const auto source = ablation_source(model, task, Ablation::Resample);
      for (const MetricKind kind : {MetricKind::LogitDiff, MetricKind::KL}) {
        const BuiltinMetric metric{kind};
        const auto exact = attribute(model, task, metric, ExactPatching{});
        EdgePatchRuns<M> runs(model, task, source);
        const double clean = runs.patch(metric, std::vector<std::uint8_t>(g.n_edges(), 0)).metric;
        double worst = 0, largest = 0;
        for (std::size_t e = 0; e < g.n_edges(); ++e) {
          std::vector<std::uint8_t> one(g.n_edges(), 0);
          one[e] = 1;
          const double effect = runs.patch(metric, one).metric - clean;
          worst = std::max(worst, std::abs(effect - exact.edge_scores[e]));
          largest = std::max(largest, std::abs(effect));
        }
        CHECK(largest > 1e-3);
        CHECK(worst < 1e-11 * std::max(1.0, largest));
      }
    });
  }
}

TEST_CASE("Gemma: ACDC (lanes 1 and 8) removes the edges a pass of plain evaluate runs removes") {
  for (const char* name : kGemmaFixtures) {
    CAPTURE(name);
    with_gemma(name, [&](const auto& model, const auto& task) {
      using M = std::decay_t<decltype(model)>;
      const Graph g = model.graph();
      const BuiltinMetric kl{MetricKind::KL};
      const double tau = 0.002;
      // The pass as DESIGN.md states it: receivers in reverse port order, each one's edges from
      // the latest upstream node back to input; d' - d < tau removes.
      const auto source = ablation_source(model, task, Ablation::Resample);
      EdgePatchRuns<M> runs(model, task, source);
      std::vector<std::uint8_t> removed(g.n_edges(), 0);
      double d = runs.patch(kl, removed).metric;
      for (std::size_t p = g.ports().size(); p-- > 0;) {
        const std::vector<int>& in = g.edges_into(static_cast<int>(p));
        for (auto it = in.rbegin(); it != in.rend(); ++it) {
          removed[static_cast<std::size_t>(*it)] = 1;
          const double d_new = runs.patch(kl, removed).metric;
          if (d_new - d < tau) d = d_new;
          else removed[static_cast<std::size_t>(*it)] = 0;
        }
      }
      std::size_t kept = 0;
      for (auto r : removed) kept += r ? 0 : 1;
      CHECK(kept > 0);
      CHECK(kept < g.n_edges());
      for (const std::size_t lanes : {1, 8}) {
        CAPTURE(lanes);
        AcdcOptions o;
        o.lanes = lanes;
        const AcdcCircuit c = acdc(model, task, MetricKind::KL, tau, o);
        std::size_t differ = 0;
        for (std::size_t e = 0; e < g.n_edges(); ++e) differ += (c.in_graph[e] != 0) == (removed[e] != 0) ? 1 : 0;
        CHECK(differ == 0);
        CHECK(c.distance == doctest::Approx(d).epsilon(1e-10));
      }
    });
  }
}

TEST_CASE("Gemma: EAP's scores are the metric's central differences along each edge's Delta") {
  for (const char* name : kGemmaFixtures) {
    CAPTURE(name);
    with_gemma(name, [&](const auto& model, const auto& task) {
      const Graph g = model.graph();
      const BuiltinMetric metric{MetricKind::LogitDiff};
      const auto eap = attribute(model, task, metric, Eap{});
      const std::vector<double> clean = node_outputs(model, task.clean), corrupted = node_outputs(model, task.corrupted);
      const std::size_t BPD = task.clean.rows() * model.config().n_embd;
      const double eps = 1e-5;
      double worst = 0, largest = 0;
      for (std::size_t e = 0; e < g.n_edges(); e += 5) {
        const Edge& edge = g.edges()[e];
        std::vector<double> delta(BPD);
        const std::size_t u = static_cast<std::size_t>(edge.upstream);
        for (std::size_t i = 0; i < BPD; ++i) delta[i] = corrupted[u * BPD + i] - clean[u * BPD + i];
        double m[2];
        for (int side = 0; side < 2; ++side) {
          PortNudge nudge(static_cast<std::size_t>(edge.port), delta.data(), side ? -eps : eps, BPD);
          m[side] = metric_value(metric, run_with(model, task.clean, nudge).logits, task.data);
        }
        const double numeric = (m[0] - m[1]) / (2 * eps);
        worst = std::max(worst, std::abs(numeric - eap.edge_scores[e]));
        largest = std::max(largest, std::abs(numeric));
      }
      CHECK(largest > 1e-2);
      CHECK(worst < 1e-7 * std::max(1.0, largest));
    });
  }
}

TEST_CASE("Gemma: the masked forward is circuit evaluation at a 0/1 mask, and its gradient the metric's") {
  for (const char* name : kGemmaFixtures) {
    CAPTURE(name);
    with_gemma(name, [&](const auto& model, const auto& task) {
      const Graph g = model.graph();
      const std::size_t bpd = task.clean.rows() * model.config().n_embd;
      const auto source = ablation_source(model, task, Ablation::Resample);
      const MaskSources<double> sources = mask_sources(model, source, bpd);
      std::mt19937 rng(5);
      std::vector<std::uint8_t> in_graph(g.n_edges());
      std::vector<double> z(g.n_edges());
      for (std::size_t e = 0; e < g.n_edges(); ++e) z[e] = in_graph[e] = rng() % 2;
      const BuiltinMetric metric{MetricKind::LogitDiff};
      const auto evaluated = evaluate_circuit(model, task, metric, in_graph, source);
      Arena arena;
      Context<double, false> ctx(arena);
      const Var<double> logits = masked_forward(ctx, model, task.clean, Var<double>{z.data(), {z.size()}, nullptr}, sources);
      REQUIRE(logits.numel() == evaluated.logits.size());
      double worst = 0;
      for (std::size_t i = 0; i < evaluated.logits.size(); ++i) worst = std::max(worst, std::abs(logits.value[i] - evaluated.logits[i]));
      CHECK(worst < 1e-10);
      // d metric / d z at a fractional mask, against finite differences (every edge).
      GradInput mask{std::vector<double>(g.n_edges()), Shape{g.n_edges()}};
      for (double& v : mask.values) v = std::uniform_real_distribution<double>(0.2, 0.8)(rng);
      const GradCheckResult r = check_gradients(
          [&](const auto& c, auto& v) { return metric(c, masked_forward(c, model, task.clean, v[0], sources), task.data); }, {mask});
      INFO("max_abs_error=" << r.max_abs_error << " max_abs_grad=" << r.max_abs_grad);
      CHECK(r.max_abs_grad > 1e-2);
      CHECK(r.ok(1e-6));
    });
  }
}

TEST_CASE("Gemma: path sets are refused with the reason; path patching runs") {
  with_gemma("hf-gemma2", [&](const auto& model, const auto& task) {
    CHECK_THROWS_WITH_AS(evaluate_path_set(model, task, {{"a0.h0->logits"}}), doctest::Contains("no treeified form"), Error);
    const auto r = path_patch(model, task, BuiltinMetric{MetricKind::LogitDiff}, {"a0.h1"}, {"logits"}, false);
    CHECK(std::isfinite(r.effect));
  });
}

TEST_CASE("Gemma: atp-star's GradDrop is its definition (finite differences with one layer's shares frozen, per example)") {
  with_gemma("hf-gemma2", [&](const auto& model, const auto& task) {
    const Graph g = model.graph();
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const Attribution dropped = attribute(model, task, metric, AtpStar{.qk_fix = false, .grad_drop = true});
    const std::vector<double> clean = node_outputs(model, task.clean), corrupted = node_outputs(model, task.corrupted);
    const std::size_t B = task.clean.batch, PD = task.clean.pos * model.config().n_embd, BPD = B * PD, L = model.config().n_layer;
    std::vector<double> delta(BPD);
    double worst = 0, largest = 0;
    for (std::size_t e = 0; e < g.n_edges(); e += 7) {
      const Edge& edge = g.edges()[e];
      const std::size_t u = static_cast<std::size_t>(edge.upstream);
      for (std::size_t i = 0; i < BPD; ++i) delta[i] = corrupted[u * BPD + i] - clean[u * BPD + i];
      double expected = 0;
      for (std::size_t l = 0; l < L; ++l)
        for (std::size_t b = 0; b < B; ++b) {
          double m[2];
          for (int side = 0; side < 2; ++side) {
            FrozenLayerNudge nudge(g, clean, static_cast<std::size_t>(edge.port), delta.data(), side ? -1e-5 : 1e-5, b * PD, (b + 1) * PD, BPD,
                                   static_cast<int>(l));
            m[side] = metric_value(metric, run_with(model, task.clean, nudge).logits, task.data);
          }
          expected += std::abs((m[0] - m[1]) / 2e-5) / double(L - 1);
        }
      worst = std::max(worst, std::abs(expected - dropped.edge_scores[e]));
      largest = std::max(largest, expected);
    }
    CHECK(largest > 1e-2);
    CHECK(worst < 1e-7 * std::max(1.0, largest));
  });
}
