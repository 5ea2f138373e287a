// acdc: ACDC's greedy pass (batched lanes against the one-at-a-time definition and a
// from-scratch transcription of DESIGN.md section 2), the threshold sweep, circuit metrics
// against evaluate, the PyTorch fixtures, and planted-circuit models whose true circuit is
// known by construction.
#include <doctest/doctest.h>

#include "error_check.hpp"
#include "fixtures.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "circuitry/circuits/acdc.hpp"
#include "circuitry/circuits/method_comparison.hpp"
#include "circuitry/circuits/planted_circuit.hpp"
#include "circuitry/task/patching_task.hpp"

using namespace circuitry;
using circuitry::testing::Fixture;

namespace {

/// DESIGN.md's ACDC, written as plainly as possible: every tentative run is a whole patched
/// forward from the embeddings (patch_edges), one candidate at a time.
template <class M, class T>
std::vector<std::uint8_t> acdc_from_scratch(const M& model, const PatchingTask<T>& task, MetricKind kind, double tau,
                                            const std::vector<T>& source) {
  const Graph graph = model.graph();
  const BuiltinMetric metric{kind};
  const double clean = metric_value(metric, task.clean_logits, task.data);
  auto distance = [&](double m) {
    if (kind == MetricKind::KL) return m;
    if (kind == MetricKind::Loss) return m - clean;
    return clean - m;
  };
  std::vector<std::uint8_t> patched(graph.n_edges(), 0);
  double d = distance(clean);
  for (std::size_t i = graph.ports().size(); i-- > 0;) {
    const auto& into = graph.edges_into(static_cast<int>(i));
    for (auto e = into.rbegin(); e != into.rend(); ++e) {
      patched[static_cast<std::size_t>(*e)] = 1;
      const double d_new = distance(patch_edges(model, task, metric, patched, source).metric);
      if (d_new - d < tau) d = d_new;
      else patched[static_cast<std::size_t>(*e)] = 0;
    }
  }
  std::vector<std::uint8_t> in_graph(patched.size());
  for (std::size_t e = 0; e < patched.size(); ++e) in_graph[e] = patched[e] ? 0 : 1;
  return in_graph;
}

std::size_t count(const std::vector<std::uint8_t>& flags) {
  std::size_t n = 0;
  for (auto f : flags) n += f ? 1 : 0;
  return n;
}

/// A two-layer planted-circuit model, its task and its truth.
struct PlantedCase {
  PlantedModel<double> planted;
  Model<AttnOnly, double> model;
  PatchingTask<double> task;
  Graph graph;
  std::vector<std::uint8_t> truth;
  PlantedCase(std::size_t heads, PlantedShape shape)
      : planted(make_planted_model<double>([&] {
          PlantedSpec spec;
          spec.n_layers = 2, spec.n_heads = heads, spec.shape = shape;
          return spec;
        }())),
        model(planted.config, planted.weights), task(make_patching_task(model, planted.task)), graph(model.graph()),
        truth(planted.truth(graph)) {}
};

}  // namespace

TEST_CASE("acdc: batched lanes, one at a time and the from-scratch definition agree on every fixture model") {
  for (const char* name : {"gpt2-tiny", "attn-only", "gpt2-small3"}) {
    Fixture<double> fx(name);
    fx.with_model([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      for (MetricKind kind : {MetricKind::KL, MetricKind::LogitDiff}) {
        for (Ablation ablation : {Ablation::Resample, Ablation::Zero}) {
          AcdcOptions batched;
          batched.ablation = ablation;
          batched.lanes = 8;
          AcdcOptions single = batched;
          single.lanes = 1;
          const Acdc<std::decay_t<decltype(model)>, double> lanes(model, task, kind, batched), one(model, task, kind, single);
          // a threshold that removes some edges and keeps others
          const double tau = kind == MetricKind::KL ? 1e-3 : 2e-2;
          INFO(name << " metric " << metric_name(kind) << " ablation " << int(ablation) << " tau " << tau);
          const AcdcCircuit a = lanes.pass(tau), b = one.pass(tau);
          const auto reference = acdc_from_scratch(model, task, kind, tau, lanes.source());
          CHECK(a.in_graph == b.in_graph);
          CHECK(a.in_graph == reference);
          CHECK(a.n_edges == count(a.in_graph));
          CHECK(a.n_edges > 0);
          CHECK(a.n_edges < lanes.graph().n_edges());
          CHECK(a.distance == doctest::Approx(b.distance).epsilon(1e-12));
          CHECK(a.runs >= b.runs);  // voided lanes are extra runs
          // The circuit's metric is what evaluate says of the same edge set.
          const double evaluated = evaluate_circuit(model, task, BuiltinMetric{kind}, a.in_graph, lanes.source()).metric;
          CHECK(a.metric == doctest::Approx(evaluated).epsilon(1e-9));
        }
      }
    });
  }
}

TEST_CASE("acdc: float32 gives the same circuit as float64 away from the threshold; tau = 0 keeps every edge that hurts") {
  Fixture<float> fx("gpt2-tiny");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const AcdcCircuit c = acdc(model, task, MetricKind::KL, 1e-3);
    const AcdcCircuit one = acdc(model, task, MetricKind::KL, 1e-3, [] { AcdcOptions o; o.lanes = 1; return o; }());
    CHECK(c.in_graph == one.in_graph);
    const double evaluated = evaluate_circuit(model, task, BuiltinMetric{MetricKind::KL}, c.in_graph,
                                              ablation_source(model, task, Ablation::Resample)).metric;
    CHECK(c.metric == doctest::Approx(evaluated).epsilon(1e-4));
    // tau = 0: an edge goes only when patching it does not increase the KL.
    const AcdcCircuit strict = acdc(model, task, MetricKind::KL, 0.0);
    CHECK(strict.n_edges >= c.n_edges);
  });
}

TEST_CASE("acdc from a start circuit: only its edges are tried, the others stay removed, the state is the patched run's") {
  Fixture<double> fx("gpt2-tiny");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const std::size_t E = model.graph().n_edges();
    AcdcOptions every;
    every.start.assign(E, 1);  // every edge: the pass of no start circuit, one run more
    const AcdcCircuit full = acdc(model, task, MetricKind::KL, 1e-3), from_every = acdc(model, task, MetricKind::KL, 1e-3, every);
    CHECK(from_every.in_graph == full.in_graph);
    CHECK(from_every.metric == doctest::Approx(full.metric).epsilon(1e-12));
    CHECK(from_every.runs == full.runs + 1);
    // A subset: the full circuit's edges and a third of the others.
    AcdcOptions subset;
    subset.start = full.in_graph;
    for (std::size_t e = 0; e < E; e += 3) subset.start[e] = 1;
    const AcdcCircuit c = acdc(model, task, MetricKind::KL, 1e-3, subset);
    std::size_t tried = 0;
    for (std::size_t e = 0; e < E; ++e) {
      CHECK((subset.start[e] || !c.in_graph[e]));  // an edge outside the start never comes back
      tried += subset.start[e];
    }
    CHECK(c.runs < full.runs);  // fewer candidates, fewer runs
    CHECK(c.n_edges <= tried);
    const double evaluated = evaluate_circuit(model, task, BuiltinMetric{MetricKind::KL}, c.in_graph,
                                              ablation_source(model, task, Ablation::Resample)).metric;
    CHECK(c.metric == doctest::Approx(evaluated).epsilon(1e-9));
    // The pass starts from the run with every edge outside the start circuit patched.
    const Acdc<std::decay_t<decltype(model)>, double> acdc_run(model, task, MetricKind::KL, subset);
    const AcdcPassState start = acdc_run.start_of_pass(1e-3);
    const double start_metric = evaluate_circuit(model, task, BuiltinMetric{MetricKind::KL}, subset.start,
                                                 ablation_source(model, task, Ablation::Resample)).metric;
    CHECK(start.metric == doctest::Approx(start_metric).epsilon(1e-9));
    CHECK(start.metric > 0);  // the patched edges moved the logits: a real start, not the clean run
    AcdcOptions wrong;
    wrong.start.assign(E - 1, 1);
    CHECK_THROWS_WITH_AS(acdc(model, task, MetricKind::KL, 1e-3, wrong), doctest::Contains("start circuit has"), Error);
  });
}

TEST_CASE("acdc sweep: each edge scores the largest threshold it survives; larger thresholds keep fewer edges") {
  Fixture<double> fx("attn-only");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const Acdc<std::decay_t<decltype(model)>, double> acdc_run(model, task, MetricKind::KL);
    const std::vector<double> taus = {1e-4, 1e-3, 1e-2, 1e-1};
    const AcdcSweep s = acdc_run.sweep(taus);
    REQUIRE(s.circuits.size() == taus.size());
    CHECK(s.circuits.front().n_edges > s.circuits.back().n_edges);
    for (std::size_t e = 0; e < s.edge_scores.size(); ++e) {
      double expected = 0;
      for (const auto& c : s.circuits)
        if (c.in_graph[e]) expected = c.threshold;
      CHECK(s.edge_scores[e] == expected);
    }
    std::vector<int> progress_seen;
    AcdcOptions o;
    o.progress = [&](const AcdcProgress& p) { progress_seen.push_back(static_cast<int>(p.receiver)); };
    acdc(model, task, MetricKind::KL, 1e-3, o);
    CHECK(progress_seen.size() == acdc_run.graph().ports().size());
  });
}

TEST_CASE("acdc sweep resumed from any receiver's checkpoint gives the circuits of an unbroken sweep") {
  for (const std::string name : {"attn-only", "hf-llama-gqa"}) {
    CAPTURE(name);
    Fixture<double> fx(name);
    fx.template with_model<RegisteredArchitectures>([&](const auto& model) {
      using M = std::decay_t<decltype(model)>;
      const auto task = make_patching_task(model, fx.task);
      const std::vector<double> taus = {1e-3, 1e-2, 1e-1};
      std::vector<AcdcCheckpoint> checkpoints;
      AcdcOptions o;
      o.lanes = 4;
      o.checkpoint = [&](const std::vector<AcdcCircuit>& finished, const AcdcPassState& current) { checkpoints.push_back({finished, current}); };
      const AcdcSweep unbroken = Acdc<M, double>(model, task, MetricKind::KL, o).sweep(taus);
      const std::size_t n_ports = model.graph().ports().size();
      REQUIRE(checkpoints.size() == taus.size() * n_ports);
      for (std::size_t i : {std::size_t{0}, n_ports / 2, n_ports - 1, n_ports + 3, checkpoints.size() - 1}) {
        CAPTURE(i);
        AcdcOptions r = o;
        r.checkpoint = nullptr;
        r.resume = &checkpoints[i];
        const AcdcSweep resumed = Acdc<M, double>(model, task, MetricKind::KL, r).sweep(taus);
        REQUIRE(resumed.circuits.size() == taus.size());
        for (std::size_t t = 0; t < taus.size(); ++t) {
          CHECK(resumed.circuits[t].in_graph == unbroken.circuits[t].in_graph);
          CHECK(resumed.circuits[t].n_edges == unbroken.circuits[t].n_edges);
          CHECK(std::bit_cast<std::uint64_t>(resumed.circuits[t].distance) == std::bit_cast<std::uint64_t>(unbroken.circuits[t].distance));
          CHECK(std::bit_cast<std::uint64_t>(resumed.circuits[t].metric) == std::bit_cast<std::uint64_t>(unbroken.circuits[t].metric));
          CHECK(resumed.circuits[t].runs == unbroken.circuits[t].runs);
        }
        CHECK(resumed.edge_scores == unbroken.edge_scores);
      }
      // A checkpoint of other thresholds is refused.
      AcdcOptions r = o;
      r.resume = &checkpoints[n_ports + 3];
      const Acdc<M, double> other_sweep(model, task, MetricKind::KL, r);
      CHECK_THROWS_WITH_AS(other_sweep.sweep({1e-3, 5e-2}), doctest::Contains("thresholds"), Error);
    });
  }
}

TEST_CASE("acdc: thresholds that are empty, negative, NaN or not ascending are refused") {
  CHECK_ERROR(check_acdc_thresholds({}), "at least one threshold");
  CHECK_ERROR(check_acdc_thresholds({-1e-3}), "not a finite number >= 0");
  CHECK_ERROR(check_acdc_thresholds({std::nan("")}), "not a finite number");
  CHECK_ERROR(check_acdc_thresholds({1e-2, 1e-3}), "ascending");
  const auto t = default_acdc_thresholds();
  CHECK_NOTHROW(check_acdc_thresholds(t));
  CHECK(t.front() == doctest::Approx(1e-5));
}

TEST_CASE("acdc: the removed edges of the PyTorch transcription (tests/make_acdc_fixtures.py) on every fixture model") {
  // GPT-2, attention-only, Pythia (parallel, partial rotary), GPT-NeoX sequential, Llama (GQA), Qwen2, Qwen3 (QK norm), Mistral.
  for (const char* name : {"gpt2-tiny", "gpt2-small3", "attn-only", "hf-pythia", "hf-pythia-sequential", "hf-llama", "hf-llama-gqa",
                           "hf-qwen2", "hf-qwen3", "hf-mistral"}) {
    Fixture<double> fx(name);
    std::ifstream in(fx.dir + "/acdc.json");
    REQUIRE(in.good());
    const nlohmann::json expected = nlohmann::json::parse(in);
    fx.template with_model<ArchitectureList<GPT2, AttnOnly, Pythia, NeoXSequential, Llama>>([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      for (const auto& c : expected["cases"]) {
        const MetricKind kind = parse_metric(c["metric"].get<std::string>());
        const double tau = c["threshold"].get<double>();
        INFO(name << " " << c["metric"].get<std::string>() << " tau " << tau);
        const AcdcCircuit got = acdc(model, task, kind, tau);
        const Graph graph = model.graph();
        std::vector<std::uint8_t> want(graph.n_edges(), 1);
        for (const auto& edge : c["removed"]) want[static_cast<std::size_t>(graph.find_edge(edge.get<std::string>()))] = 0;
        CHECK(got.in_graph == want);
        CHECK(got.n_edges == c["n_edges_in_graph"].get<std::size_t>());
        CHECK(got.distance == doctest::Approx(c["distance"].get<double>()).epsilon(1e-9));
      }
    });
  }
}

TEST_CASE("planted circuits: every edge outside the circuit has no effect, every planted edge a large one") {
  for (PlantedShape shape : {PlantedShape::Chain, PlantedShape::Fork, PlantedShape::Induction})
    for (std::size_t layers : {1u, 2u, 3u}) {
      if (shape == PlantedShape::Induction && layers == 1) continue;
      PlantedSpec spec;
      spec.n_layers = layers;
      spec.n_heads = 3;
      spec.shape = shape;
      spec.seed = static_cast<unsigned>(7 + layers);
      const PlantedModel<double> planted = make_planted_model<double>(spec);
      const Model<AttnOnly, double> model(planted.config, planted.weights);
      const auto task = make_patching_task(model, planted.task);
      const Graph graph = model.graph();
      const std::vector<std::uint8_t> truth = planted.truth(graph);
      INFO("layers " << layers << " shape " << int(shape));
      CHECK(planted.true_edges.size() == (shape == PlantedShape::Induction ? 5 : layers + 1 + (shape == PlantedShape::Fork ? 2 : 0)));
      for (MetricKind kind : {MetricKind::LogitDiff, MetricKind::KL}) {
        const Attribution exact = attribute(model, task, BuiltinMetric{kind}, ExactPatching{});
        double outside = 0, inside = 1e9;
        for (std::size_t e = 0; e < graph.n_edges(); ++e) {
          if (truth[e]) inside = std::min(inside, std::fabs(exact.edge_scores[e]));
          else outside = std::max(outside, std::fabs(exact.edge_scores[e]));
        }
        CHECK(outside < 1e-6);
        CHECK(inside > 0.1);
      }
      // The clean behaviour is the copy: the answer's logit beats the wrong token's by far.
      CHECK(metric_value(BuiltinMetric{MetricKind::LogitDiff}, task.clean_logits, task.data) > 4);
    }
}

TEST_CASE("compare on planted circuits: ACDC and exact patching recover the circuit exactly; bad input is refused") {
  const PlantedCase planted_case(3, PlantedShape::Fork);
  const auto& model = planted_case.model;
  const auto& task = planted_case.task;
  const Graph& graph = planted_case.graph;
  const auto& truth = planted_case.truth;
  ComparisonOptions o;
  o.thresholds = {1e-4, 1e-2};
  const auto results = compare_methods(model, task, truth, o);
  REQUIRE(results.size() == comparison_method_names().size());  // every method, exact included on this small graph
  for (const auto& r : results) {
    INFO(r.method);
    CHECK(r.edges_scored == graph.n_edges());
    CHECK(r.auc >= 0);
    CHECK(r.auc <= 1);
    CHECK(r.fpr.front() == 0);
    CHECK(r.tpr.back() == 1);
    if (r.method == "exact" || r.method == "acdc") CHECK(r.auc == doctest::Approx(1.0));
    if (r.method == "learn-mask") {  // alpha of the mask learned with compare's defaults: a twentieth of the edges, KL, resample
      LearnMaskOptions mask;
      mask.target_edges = (graph.n_edges() + 19) / 20;
      CHECK(r.edge_scores == learned_mask_scores(learn_mask(model, task, mask)));
      CHECK(*std::min_element(r.edge_scores.begin(), r.edge_scores.end()) > 0);
    }
  }
  // ACDC's circuit at a small threshold is exactly the planted one.
  const AcdcCircuit c = acdc(model, task, MetricKind::KL, 1e-4);
  CHECK(c.in_graph == truth);
  CHECK_ERROR(check_comparison_methods({"eap", "acdc-fast"}), "unknown method 'acdc-fast'");
  CHECK_ERROR(check_comparison_methods({"eap", "eap"}), "listed twice");
  CHECK_ERROR(compare_methods(model, task, std::vector<std::uint8_t>(3, 1)), "flags for a graph of");
}

TEST_CASE("planted induction: activation patching finds the q and k edges that attribution patching cannot see") {
  const PlantedCase planted_case(4, PlantedShape::Induction);
  const auto& model = planted_case.model;
  const auto& task = planted_case.task;
  const Graph& graph = planted_case.graph;
  const auto& truth = planted_case.truth;
  ComparisonOptions o;
  o.methods = {"eap", "exact", "acdc"};
  o.thresholds = {1e-3, 1e-1};
  const auto results = compare_methods(model, task, truth, o);
  CHECK(results[0].auc < 0.9);                         // eap: the saturated attention hides q and k
  CHECK(results[1].auc == doctest::Approx(1.0));       // exact patching sees every planted edge
  CHECK(results[2].auc == doctest::Approx(1.0));       // and so does ACDC
  // The key edge of the induction head: a large true effect, a vanishing gradient.
  const int key = graph.find_edge(planted_case.planted.true_edges[1]);
  CHECK(std::fabs(results[1].edge_scores[static_cast<std::size_t>(key)]) > 1);
  CHECK(std::fabs(results[0].edge_scores[static_cast<std::size_t>(key)]) < 1e-3);
}
