// Patching: every method against PyTorch fixtures (tests/make_fixtures.py), and the
// identities that tie the methods together.
#include <doctest/doctest.h>

#include <cstring>
#include <cmath>
#include <fstream>
#include <cstdint>
#include <random>

#include <circuitry/circuits/acdc.hpp>
#include <circuitry/circuits/faithfulness_curve.hpp>
#include <circuitry/patching.hpp>

#include "fixtures.hpp"

using namespace circuitry;
using circuitry::testing::Fixture;

namespace {

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 1e-4 : 1e-9;
}

/// max |ours - expected| relative to max |expected| (floored so all-zero scores compare absolutely).
double score_error(const Graph& g, const std::vector<double>& ours, const nlohmann::json& expected) {
  double scale = 1e-2, worst = 0;
  for (std::size_t e = 0; e < g.n_edges(); ++e) scale = std::max(scale, std::abs(expected[g.edges()[e].name].get<double>()));
  for (std::size_t e = 0; e < g.n_edges(); ++e)
    worst = std::max(worst, std::abs(ours[e] - expected[g.edges()[e].name].get<double>()));
  return worst / scale;
}

const char* kModels[] = {"gpt2-tiny", "gpt2-small3", "attn-only"};

}  // namespace

TEST_CASE_TEMPLATE("eap, eap-ig, clean-corrupted and exact match PyTorch", T, float, double) {
  for (const char* name : kModels) {
    Fixture<T> fx(name);
    fx.with_model([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      const Graph g = model.graph();
      REQUIRE(g.n_edges() == fx.expected["n_edges"].template get<std::size_t>());
      for (auto kind : {MetricKind::LogitDiff, MetricKind::ProbDiff, MetricKind::KL, MetricKind::Loss}) {
        const BuiltinMetric metric{kind};
        const auto& scores = fx.expected["scores"];
        const std::string m = metric_name(kind);
        CAPTURE(name);
        CAPTURE(m);
        const auto eap = attribute(model, task, metric, Eap{});
        CHECK(score_error(g, eap.edge_scores, scores["eap"][m]) < tolerance<T>());
        CHECK(score_error(g, attribute(model, task, metric, EapIg{5}).edge_scores, scores["eap-ig"][m]) < tolerance<T>());
        CHECK(score_error(g, attribute(model, task, metric, CleanCorrupted{}).edge_scores, scores["clean-corrupted"][m]) < tolerance<T>());
        ExactPatching exact;
        exact.max_rows = 64;  // several lanes per forward and several forwards per stage
        const auto ex = attribute(model, task, metric, exact);
        CHECK(score_error(g, ex.edge_scores, scores["exact"][m]) < tolerance<T>());
        CHECK(ex.clean_metric == doctest::Approx(fx.expected["metrics"][m]["clean_metric"].template get<double>()).epsilon(tolerance<T>()));
        CHECK(eap.corrupted_metric ==
              doctest::Approx(fx.expected["metrics"][m]["corrupted_metric"].template get<double>()).epsilon(tolerance<T>()));
      }
    });
  }
}

TEST_CASE("TransformerLens and Hugging Face checkpoints: every method and path patching match PyTorch on every architecture (double)") {
  using T = double;
  for (const char* name : {"tl-gelu-new", "tl-gelu", "tl-relu-bidir", "tl-nonorm-relu", "tl-attn-only", "tl-lnpre", "hf-pythia",
                           "hf-pythia-sequential", "hf-llama", "hf-llama-gqa", "hf-qwen2", "hf-qwen3", "hf-mistral"}) {
    CAPTURE(name);
    Fixture<T> fx(name);
    fx.template with_model<RegisteredArchitectures>([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      const Graph g = model.graph();
      REQUIRE(g.n_edges() == fx.expected["n_edges"].template get<std::size_t>());
      const auto& scores = fx.expected["scores"];
      for (auto kind : {MetricKind::LogitDiff, MetricKind::KL}) {
        const BuiltinMetric metric{kind};
        const std::string m = metric_name(kind);
        CAPTURE(m);
        CHECK(score_error(g, attribute(model, task, metric, Eap{}).edge_scores, scores["eap"][m]) < 1e-9);
        CHECK(score_error(g, attribute(model, task, metric, EapIg{5}).edge_scores, scores["eap-ig"][m]) < 1e-9);
        CHECK(score_error(g, attribute(model, task, metric, CleanCorrupted{}).edge_scores, scores["clean-corrupted"][m]) < 1e-9);
        CHECK(score_error(g, attribute(model, task, metric, ExactPatching{}).edge_scores, scores["exact"][m]) < 1e-9);
      }
      for (const auto& c : fx.expected["path_patching"]) {
        const auto r = path_patch(model, task, BuiltinMetric{parse_metric(c["metric"])}, c["senders"].template get<std::vector<std::string>>(),
                                  c["receivers"].template get<std::vector<std::string>>(), c["recompute_mlps"].template get<bool>());
        CHECK(r.effect == doctest::Approx(c["effect"].template get<double>()).epsilon(1e-9).scale(1.0));
      }
      for (const auto& c : fx.expected["path_sets"]) {
        const auto r = evaluate_path_set(model, task, c["paths"].template get<std::vector<std::vector<std::string>>>());
        CHECK(r.aue == doctest::Approx(c["aue"].template get<double>()).epsilon(1e-9).scale(1.0));
      }
    });
  }
}

TEST_CASE_TEMPLATE("answer sets: metrics, eap, eap-ig, exact and evaluate match PyTorch", T, float, double) {
  Fixture<T> fx("gpt2-tiny");
  const Task sets = read_task(fx.dir + "/answer-sets.jsonl", fx.checkpoint.config.vocab_size, fx.checkpoint.config.n_positions);
  std::ifstream in(fx.dir + "/answer-sets.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  bool some_set = false;
  for (const auto& e : sets.examples) some_set = some_set || e.answer.size() > 1 || e.wrong.size() > 1;
  REQUIRE(some_set);
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, sets);
    const Graph g = model.graph();
    std::vector<std::uint8_t> circuit(g.n_edges(), 0);
    for (const auto& name : expected["circuit"]) circuit[static_cast<std::size_t>(g.find_edge(name.get<std::string>()))] = 1;
    const auto source = ablation_source(model, task, Ablation::Resample);
    for (auto kind : {MetricKind::LogitDiff, MetricKind::ProbDiff, MetricKind::LogitDiffMax, MetricKind::KL, MetricKind::Loss}) {
      const BuiltinMetric metric{kind};
      const std::string m = metric_name(kind);
      CAPTURE(m);
      const auto& scores = expected["scores"];
      const auto eap = attribute(model, task, metric, Eap{});
      CHECK(score_error(g, eap.edge_scores, scores["eap"][m]) < tolerance<T>());
      CHECK(score_error(g, attribute(model, task, metric, EapIg{5}).edge_scores, scores["eap-ig"][m]) < tolerance<T>());
      const auto ex = attribute(model, task, metric, ExactPatching{});
      CHECK(score_error(g, ex.edge_scores, scores["exact"][m]) < tolerance<T>());
      CHECK(ex.clean_metric == doctest::Approx(expected["metrics"][m]["clean_metric"].template get<double>()).epsilon(tolerance<T>()));
      CHECK(eap.corrupted_metric ==
            doctest::Approx(expected["metrics"][m]["corrupted_metric"].template get<double>()).epsilon(tolerance<T>()));
      CHECK(evaluate_circuit(model, task, metric, circuit, source).metric ==
            doctest::Approx(expected["circuit_metric"][m].template get<double>()).epsilon(tolerance<T>()));
      // Path patching one sender into one receiver (MLPs frozen) is patching that edge.
      for (const char* edge : {"a0.h1->a1.h0<k>", "input->m1", "m0->logits"}) {
        const auto& e = g.edges()[static_cast<std::size_t>(g.find_edge(edge))];
        const auto r = path_patch(model, task, metric, {g.upstream()[static_cast<std::size_t>(e.upstream)].name},
                                  {g.ports()[static_cast<std::size_t>(e.port)].name});
        CHECK(r.effect == doctest::Approx(scores["exact"][m][edge].template get<double>()).epsilon(tolerance<T>()).scale(1.0));
      }
    }
  });
}

TEST_CASE_TEMPLATE("path patching and path sets match PyTorch", T, float, double) {
  for (const char* name : kModels) {
    Fixture<T> fx(name);
    fx.with_model([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      for (const auto& c : fx.expected["path_patching"]) {
        CAPTURE(c.dump());
        const auto r = path_patch(model, task, BuiltinMetric{parse_metric(c["metric"])}, c["senders"].template get<std::vector<std::string>>(),
                                  c["receivers"].template get<std::vector<std::string>>(), c["recompute_mlps"].template get<bool>());
        CHECK(r.effect == doctest::Approx(c["effect"].template get<double>()).epsilon(tolerance<T>()).scale(1.0));
        CHECK(r.patched_metric == doctest::Approx(c["patched_metric"].template get<double>()).epsilon(tolerance<T>()));
      }
      for (const auto& c : fx.expected["path_sets"]) {
        CAPTURE(c["paths"].size());
        const auto r = evaluate_path_set(model, task, c["paths"].template get<std::vector<std::vector<std::string>>>());
        CHECK(r.aue == doctest::Approx(c["aue"].template get<double>()).epsilon(tolerance<T>()).scale(1.0));
        CHECK(r.ate == doctest::Approx(c["ate"].template get<double>()).epsilon(tolerance<T>()));
        CHECK(r.proportion_explained == doctest::Approx(c["proportion_explained"].template get<double>()).epsilon(10 * tolerance<T>()).scale(1.0));
      }
    });
  }
}

TEST_CASE("EAP is the derivative of the exact edge-patching effect (double, every edge)") {
  Fixture<double> fx("gpt2-tiny");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const Graph g = model.graph();
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const auto eap = attribute(model, task, metric, Eap{});
    const auto clean = node_outputs(model, task.clean), corrupted = node_outputs(model, task.corrupted);
    const double h = 1e-5;
    auto source_at = [&](double alpha) {  // out_u(x) + alpha (out_u(x') - out_u(x))
      std::vector<double> s(clean.size());
      for (std::size_t i = 0; i < s.size(); ++i) s[i] = clean[i] + alpha * (corrupted[i] - clean[i]);
      return s;
    };
    const auto up = source_at(h), down = source_at(-h);
    double worst = 0, largest = 0;
    for (std::size_t e = 0; e < g.n_edges(); ++e) {
      std::vector<std::uint8_t> one(g.n_edges(), 0);
      one[e] = 1;
      const double fd = (patch_edges(model, task, metric, one, up).metric - patch_edges(model, task, metric, one, down).metric) / (2 * h);
      worst = std::max(worst, std::abs(fd - eap.edge_scores[e]));
      largest = std::max(largest, std::abs(fd));
    }
    CHECK(largest > 1e-2);
    CHECK(worst < 1e-7 * std::max(1.0, largest));
  });
}

TEST_CASE("patching all edges, all edges out of input or all into logits gives the corrupted run") {
  for (const char* name : kModels) {
    Fixture<double> fx(name);
    fx.with_model([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      const Graph g = model.graph();
      const auto source = ablation_source(model, task, Ablation::Resample);
      const BuiltinMetric metric{MetricKind::LogitDiff};
      const auto& expected = fx.expected["corrupted_logits"];
      auto check_corrupted = [&](const std::vector<std::uint8_t>& patched) {
        const auto run = patch_edges(model, task, metric, patched, source);
        const std::size_t V = model.config().vocab_size;
        for (std::size_t b = 0; b < expected.size(); ++b)
          for (std::size_t v = 0; v < V; ++v) REQUIRE(run.logits[b * V + v] == doctest::Approx(expected[b][v].get<double>()).epsilon(1e-9));
      };
      check_corrupted(std::vector<std::uint8_t>(g.n_edges(), 1));
      std::vector<std::uint8_t> from_input(g.n_edges(), 0), into_logits(g.n_edges(), 0);
      for (int e : g.edges_out_of(g.input_node())) from_input[static_cast<std::size_t>(e)] = 1;
      for (int e : g.edges_into(g.logits_port())) into_logits[static_cast<std::size_t>(e)] = 1;
      check_corrupted(from_input);
      check_corrupted(into_logits);
      // A circuit of every edge is the clean run.
      const auto full = evaluate_circuit(model, task, metric, std::vector<std::uint8_t>(g.n_edges(), 1), source);
      for (std::size_t i = 0; i < full.logits.size(); ++i) REQUIRE(full.logits[i] == doctest::Approx(task.clean_logits[i]).epsilon(1e-12));
      // Patching node u equals patching all of its outgoing edges; patching input equals the corrupted run.
      CHECK(patch_nodes(model, task, metric, {"input"}, source).metric ==
            doctest::Approx(fx.expected["metrics"]["logit_diff"]["corrupted_metric"].get<double>()).epsilon(1e-9));
    });
  }
}

TEST_CASE("a length-1 path patch equals the edge patch; full and empty path sets") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const Graph g = model.graph();
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const auto exact = attribute(model, task, metric, ExactPatching{});
    for (const char* edge : {"a0.h1->a2.h3<k>", "m0->a1.h2<v>", "input->m1", "a1.h0->logits", "m2->logits"}) {
      const auto& e = g.edges()[static_cast<std::size_t>(g.find_edge(edge))];
      const auto r = path_patch(model, task, metric, {g.upstream()[static_cast<std::size_t>(e.upstream)].name},
                                {g.ports()[static_cast<std::size_t>(e.port)].name});
      CHECK(r.effect == doctest::Approx(exact.edge_scores[static_cast<std::size_t>(g.find_edge(edge))]).epsilon(1e-10).scale(1.0));
    }
    std::vector<std::vector<std::string>> direct;
    for (int e : g.edges_into(g.logits_port())) direct.push_back({g.edges()[static_cast<std::size_t>(e)].name});
    const auto all_direct = evaluate_path_set(model, task, direct);
    CHECK(all_direct.aue == doctest::Approx(0.0).scale(1e-9));
    CHECK(all_direct.proportion_explained == doctest::Approx(1.0));
    const auto none = evaluate_path_set(model, task, {});
    CHECK(none.aue == doctest::Approx(none.ate));
    CHECK_THROWS_WITH_AS(evaluate_path_set(model, task, {{"a0.h1->a2.h3<k>", "a1.h0->logits"}}), doctest::Contains("not a chain"), Error);
    CHECK_THROWS_WITH_AS(evaluate_path_set(model, task, {{"a0.h1->a2.h3<k>"}}), doctest::Contains("must end at logits"), Error);
    CHECK_THROWS_WITH_AS(evaluate_path_set(model, task, {{"a9.h1->logits"}}), doctest::Contains("unknown edge"), Error);
  });
}

TEST_CASE("zero and mean ablation, node patching and position restriction") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const Graph g = model.graph();
    const BuiltinMetric metric{MetricKind::LogitDiff};
    auto same_logits = [](const std::vector<double>& a, const std::vector<double>& b) {
      REQUIRE(a.size() == b.size());
      for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == doctest::Approx(b[i]).epsilon(1e-10));
    };
    // Zero-ablating the input node is the forward whose embeddings are hooked to zero.
    const auto zero = ablation_source(model, task, Ablation::Zero);
    const auto zeroed = patch_nodes(model, task, metric, {"input"}, zero);
    Hooks<double> hooks;
    for (const char* name : {"hook_embed", "hook_pos_embed"})
      hooks.add(name, [](TensorView<double> v) {
        for (std::size_t i = 0; i < v.numel(); ++i) v.data[i] = 0;
      });
    Arena arena;
    Context<double, false> ctx(arena);
    ForwardOptions<double> o;
    o.hooks = &hooks;
    Var<double> hooked = model.forward(ctx, task.clean, o);
    same_logits(zeroed.logits, std::vector<double>(hooked.value, hooked.value + hooked.numel()));

    // Mean ablation over a reference of two copies of the corrupted batch is resample ablation.
    // (The reference averages over its sequences, so the task has one example.)
    Task one;
    one.examples.push_back(fx.task.examples[0]);
    const auto task1 = make_patching_task(model, one);
    const Batch reference = Batch::from({one.examples[0].corrupted, one.examples[0].corrupted});
    const auto mean = ablation_source(model, task1, Ablation::Mean, &reference);
    const auto resample = ablation_source(model, task1, Ablation::Resample);
    for (const char* node : {"a0.h2", "m1", "input"})
      CHECK(patch_nodes(model, task1, metric, {node}, mean).metric ==
            doctest::Approx(patch_nodes(model, task1, metric, {node}, resample).metric).epsilon(1e-12));
    const Batch too_short = Batch::from({{1}});
    CHECK_THROWS_AS(ablation_source(model, task1, Ablation::Mean, &too_short), Error);

    // Positions: patching at no position is the clean run; at every position, the plain patch.
    const auto source = ablation_source(model, task, Ablation::Resample);
    std::vector<std::uint8_t> edges(g.n_edges(), 0);
    for (int e : g.edges_out_of(g.find_upstream("a1.h2"))) edges[std::size_t(e)] = 1;
    same_logits(patch_edges(model, task, metric, edges, source, std::vector<std::uint8_t>(task.clean.pos, 0)).logits, task.clean_logits);
    same_logits(patch_edges(model, task, metric, edges, source, std::vector<std::uint8_t>(task.clean.pos, 1)).logits,
                patch_edges(model, task, metric, edges, source).logits);
    // Patching only the first position is a different intervention from patching all of them.
    std::vector<std::uint8_t> first(task.clean.pos, 0);
    first[0] = 1;
    const double clean = metric_value(metric, task.clean_logits, task.data);
    const double all = patch_edges(model, task, metric, edges, source).metric;
    const double at_first = patch_edges(model, task, metric, edges, source, first).metric;
    CHECK(at_first != doctest::Approx(all));
    CHECK(at_first != doctest::Approx(clean));

    // Node scores are the sums of their outgoing edges' scores.
    const auto eap = attribute(model, task, metric, Eap{});
    const int node = g.find_upstream("m0");
    double sum = 0;
    for (int e : g.edges_out_of(node)) sum += eap.edge_scores[std::size_t(e)];
    CHECK(eap.node_scores[std::size_t(node)] == doctest::Approx(sum));
  });
}

TEST_CASE("faithfulness curve: the empty circuit scores 0, the full one 1; CPR and CMD follow") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const auto exact = attribute(model, task, metric, ExactPatching{});
    const auto curve = faithfulness_curve(model, task, metric, exact.edge_scores);
    REQUIRE(curve.points.size() == mib_fractions.size());
    CHECK(curve.edges_kept.front() == 0);  // 0.1% of 262 edges rounds down to none
    CHECK(curve.points.front().value == doctest::Approx(0.0).scale(1.0));
    CHECK(curve.points.back().value == doctest::Approx(1.0));
    CHECK(curve.m_empty == doctest::Approx(fx.expected["metrics"]["logit_diff"]["corrupted_metric"].get<double>()));
    CHECK(curve.cpr == doctest::Approx(cpr(curve.points)));
    CHECK(curve.cmd == doctest::Approx(cmd(curve.points)));
    CHECK(curve.cpr > 0.0);
  });
}

TEST_CASE("attribution in parts: the parts' scores, weighted by their share of the examples, are the whole task's") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    Task uneven = fx.task;  // examples of different lengths: mode all weighs their rows unequally
    uneven.examples.pop_back();  // 5 examples: parts of 2 are 1, 2 and 2 examples
    for (std::size_t i = 0; i < uneven.examples.size(); i += 2) {
      uneven.examples[i].clean.pop_back();
      uneven.examples[i].corrupted.pop_back();
    }
    const Graph g = model.graph();
    for (PositionMode mode : {PositionMode::Last, PositionMode::All})
      for (const Task* text : {&fx.task, &uneven}) {
        const auto task = make_patching_task(model, *text, mode);
        REQUIRE(task.clean.batch >= 3);
        CHECK(attribution_parts(model, task.clean, 1) == task.clean.batch);  // one example a part
        CHECK(attribution_parts(model, task.clean, SIZE_MAX) == 1);
        CHECK(attribution_parts(model, task.clean, 2 * attribution_memory_per_example(model, task.clean)) ==
              (task.clean.batch + 1) / 2);
        for (auto kind : {MetricKind::LogitDiff, MetricKind::ProbDiff, MetricKind::KL, MetricKind::Loss, MetricKind::LogitDiffMax,
                          MetricKind::L2}) {
          CAPTURE(metric_name(kind));
          CAPTURE(int(mode));
          const BuiltinMetric metric{kind};
          auto check = [&](const Attribution& parts, const Attribution& whole) {
            double scale = 1e-300, worst = 0;
            for (std::size_t e = 0; e < g.n_edges(); ++e) {
              scale = std::max(scale, std::abs(whole.edge_scores[e]));
              worst = std::max(worst, std::abs(parts.edge_scores[e] - whole.edge_scores[e]));
            }
            CHECK(worst <= 1e-10 * scale + 1e-13);  // kl and l2: EAP's scores are 0 up to rounding
            CHECK(parts.corrupted_metric == doctest::Approx(whole.corrupted_metric).epsilon(1e-12));
            CHECK(parts.clean_metric == whole.clean_metric);
          };
          const std::size_t two_examples = 2 * attribution_memory_per_example(model, task.clean);
          const auto whole = attribute(model, task, metric, Eap{.memory_budget = SIZE_MAX});
          check(attribute(model, task, metric, Eap{.memory_budget = 1}), whole);
          check(attribute(model, task, metric, Eap{.memory_budget = two_examples}), whole);
          check(attribute(model, task, metric, EapIg{.steps = 2, .memory_budget = 1}),
                attribute(model, task, metric, EapIg{.steps = 2, .memory_budget = SIZE_MAX}));
        }
      }
  });
}

TEST_CASE("EdgePatchRuns: runs on reused buffers give the bytes of fresh evaluate_circuit calls") {
  Fixture<float> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    using M = std::decay_t<decltype(model)>;
    const auto task = make_patching_task(model, fx.task);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const Graph graph = model.graph();
    const auto source = ablation_source(model, task, Ablation::Resample);
    EdgePatchRuns<M, float> runs(model, task, source);
    std::mt19937 rng(3);
    for (int round = 0; round < 4; ++round) {  // different circuits through the same buffers
      std::vector<std::uint8_t> in_graph(graph.n_edges());
      for (auto& f : in_graph) f = std::uint8_t(rng() % 3 == 0);
      const auto reused = runs.evaluate(metric, in_graph);
      const auto fresh = evaluate_circuit(model, task, metric, in_graph, source);
      CHECK(reused.metric == fresh.metric);
      CHECK(reused.logits == fresh.logits);
    }
  });
}

TEST_CASE("tracr, position mode all: l2 matches tracr's outputs; exact, edge patching and ACDC agree") {
  using T = double;
  for (const char* name : {"reverse", "proportion"}) {
    CAPTURE(name);
    const std::string dir = std::string(CIRCUITRY_SOURCE_DIR) + "/data/tracr/" + name;
    const auto checkpoint = io::load_model_directory<T>(dir);
    const Model<Tracr, T> model(checkpoint.config, checkpoint.weights);
    const Task text = read_task(dir + "/task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
    CHECK(text.outputs == (std::string(name) == "proportion" ? std::vector<int>{0} : std::vector<int>{}));
    const auto task = make_patching_task(model, text, PositionMode::All);
    REQUIRE(task.data.rows == task.clean.batch * (task.clean.pos - 1));
    std::ifstream in(std::string(CIRCUITRY_FIXTURES_DIR) + "/tracr/" + name + "-expected.json");
    const nlohmann::json expected = nlohmann::json::parse(in);
    const BuiltinMetric l2{MetricKind::L2};
    Arena arena;
    Context<T, false> ctx(arena);
    const double corrupted = l2(ctx, model.forward(ctx, task.corrupted), task.data).value[0];
    CHECK(corrupted == doctest::Approx(expected["l2_mean"].get<double>()).epsilon(1e-6));
    CHECK(metric_value(l2, task.clean_logits, task.data) == 0.0);
    // A metric that needs answers says so on a task without them.
    CHECK_THROWS_WITH_AS(attribute(model, task, BuiltinMetric{MetricKind::LogitDiff}, Eap{}), doctest::Contains("needs \"answer\""), Error);

    const Graph g = model.graph();
    const auto exact = attribute(model, task, l2, ExactPatching{});
    const auto source = ablation_source(model, task, Ablation::Resample);
    double moved = 0;
    for (std::size_t e = 0; e < g.n_edges(); ++e) {
      std::vector<std::uint8_t> one(g.n_edges(), 0);
      one[e] = 1;
      CHECK(exact.edge_scores[e] == doctest::Approx(patch_edges(model, task, l2, one, source).metric).scale(1.0).epsilon(1e-12));
      moved = std::max(moved, std::abs(exact.edge_scores[e]));
    }
    CHECK(moved > 1e-2);
    // l2 is minimal at the clean run: EAP's clean-run gradient scores nothing; the others do.
    const auto eap = attribute(model, task, l2, Eap{});
    for (double s : eap.edge_scores) CHECK(std::abs(s) < 1e-12);
    double cc = 0;
    for (double s : attribute(model, task, l2, CleanCorrupted{}).edge_scores) cc = std::max(cc, std::abs(s));
    CHECK(cc > 1e-3);
    // ACDC's batched lanes (staged runs restarting mid-model at the readout rows) against one candidate at a time.
    AcdcOptions one_at_a_time;
    one_at_a_time.ablation = Ablation::Zero;
    one_at_a_time.lanes = 1;
    AcdcOptions lanes = one_at_a_time;
    lanes.lanes = 8;
    const auto a = Acdc<Model<Tracr, T>, T>(model, task, MetricKind::L2, one_at_a_time).pass(1e-4);
    const auto b = Acdc<Model<Tracr, T>, T>(model, task, MetricKind::L2, lanes).pass(1e-4);
    CHECK(a.in_graph == b.in_graph);
    CHECK(a.n_edges > 0);
    CHECK(a.n_edges < g.n_edges());
    std::vector<std::uint8_t> kept(a.in_graph.begin(), a.in_graph.end());
    CHECK(evaluate_circuit(model, task, l2, kept, ablation_source(model, task, Ablation::Zero)).metric ==
          doctest::Approx(a.distance).scale(1.0).epsilon(1e-9));
  }
}

namespace {
/// max |a - b| over max(|b|, 1e-2): the same scores up to the last bits of double.
double relative_gap(const std::vector<double>& a, const std::vector<double>& b) {
  double scale = 1e-2, worst = 0;
  for (std::size_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::abs(b[i])), worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst / scale;
}
}  // namespace

TEST_CASE("exact patching streams: lanes per forward, the memory budget and edge subsets leave every score as it is") {
  using T = double;
  // Not bit for bit across lane counts: the GEMM's block grid follows the row count (lanes x
  // batch x pos), and a block of another height may round its last bits differently. For one
  // lane count the bytes do not depend on the threads (tests/determinism_test.cmake).
  for (const std::string name : {"gpt2-small3", "attn-only", "hf-pythia", "hf-llama-gqa"}) {
    CAPTURE(name);
    Fixture<T> fx(name);
    fx.template with_model<RegisteredArchitectures>([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      const Graph g = model.graph();
      const BuiltinMetric metric{MetricKind::KL};
      const Attribution full = attribute(model, task, metric, ExactPatching{});
      REQUIRE(exact_lanes(model, task.clean, ExactPatching{}) > 1);  // the default runs several lanes per forward

      // One lane per forward (max_rows of one lane), and a budget too small for even one lane
      // (it runs one lane, the least it can): the same scores.
      ExactPatching one_lane;
      one_lane.max_rows = task.clean.batch * task.clean.pos;
      REQUIRE(exact_lanes(model, task.clean, one_lane) == 1);
      CHECK(relative_gap(attribute(model, task, metric, one_lane).edge_scores, full.edge_scores) < 1e-13);
      ExactPatching tiny;
      tiny.memory_budget = 1;
      REQUIRE(exact_lanes(model, task.clean, tiny) == 1);
      CHECK(relative_gap(attribute(model, task, metric, tiny).edge_scores, full.edge_scores) < 1e-13);
      // The budget decides the lanes: room for the fixed part and three lanes gives three.
      const ExactMemory mem = exact_memory(model, task.clean);
      ExactPatching three;
      three.memory_budget = mem.fixed + 3 * mem.per_lane;
      REQUIRE(exact_lanes(model, task.clean, three) == 3);
      CHECK(relative_gap(attribute(model, task, metric, three).edge_scores, full.edge_scores) < 1e-13);

      // A subset of the edges: the flagged ones score as in the full run, the others 0.
      ExactPatching some;
      some.edges.assign(g.n_edges(), 0);
      for (std::size_t e = 0; e < g.n_edges(); e += 7) some.edges[e] = 1;
      const Attribution part = attribute(model, task, metric, some);
      for (std::size_t e = 0; e < g.n_edges(); ++e)
        if (!some.edges[e]) CHECK(part.edge_scores[e] == 0.0);
        else CHECK(part.edge_scores[e] == doctest::Approx(full.edge_scores[e]).scale(1.0).epsilon(1e-13));

      // Reusing the clean run (its residual at the receiver's layer, the layer's other heads)
      // is exact: each score is the full patched forward's, which recomputes everything.
      const auto source = ablation_source(model, task, Ablation::Resample);
      for (std::size_t e = 0; e < g.n_edges(); e += 5) {
        CAPTURE(g.edges()[e].name);
        std::vector<std::uint8_t> one(g.n_edges(), 0);
        one[e] = 1;
        CHECK(full.edge_scores[e] ==
              doctest::Approx(patch_edges(model, task, metric, one, source).metric - full.clean_metric).scale(1.0).epsilon(1e-10));
      }
    });
  }
}

TEST_CASE_TEMPLATE("exact patching resumed from any checkpoint gives the bytes of an unbroken run", T, float, double) {
  for (const std::string name : {"gpt2-small3", "hf-llama-gqa"}) {
    CAPTURE(name);
    Fixture<T> fx(name);
    fx.template with_model<RegisteredArchitectures>([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      const BuiltinMetric metric{MetricKind::LogitDiff};
      const ExactMemory mem = exact_memory(model, task.clean);
      ExactPatching policy;
      policy.memory_budget = mem.fixed + 5 * mem.per_lane;  // five lanes per forward: many groups
      std::vector<ExactCheckpoint> checkpoints;
      policy.checkpoint = [&](const ExactCheckpoint& c) { checkpoints.push_back(c); };
      const Attribution unbroken = attribute(model, task, metric, policy);
      REQUIRE(checkpoints.size() > 3);
      CHECK(checkpoints.back().edges_done == model.graph().n_edges());
      for (std::size_t i : {std::size_t{0}, checkpoints.size() / 2, checkpoints.size() - 1}) {
        CAPTURE(i);
        ExactPatching resumed = policy;
        resumed.checkpoint = nullptr;
        resumed.resume = &checkpoints[i];
        std::size_t progress_calls = 0;
        resumed.progress = [&](std::size_t, std::size_t) { ++progress_calls; };
        const Attribution r = attribute(model, task, metric, resumed);
        CHECK(progress_calls == checkpoints.size() - 1 - i);  // only the groups after the checkpoint run
        CHECK(std::memcmp(r.edge_scores.data(), unbroken.edge_scores.data(), r.edge_scores.size() * sizeof(double)) == 0);
      }
      // A checkpoint of another lane count, or of another graph, is refused.
      ExactPatching other = policy;
      other.memory_budget = mem.fixed + 4 * mem.per_lane;
      other.resume = &checkpoints[1];
      CHECK_THROWS_WITH_AS(attribute(model, task, metric, other), doctest::Contains("lanes per forward"), Error);
      ExactCheckpoint short_one = checkpoints[1];
      short_one.edge_scores.pop_back();
      other = policy;
      other.resume = &short_one;
      CHECK_THROWS_WITH_AS(attribute(model, task, metric, other), doctest::Contains("edge scores"), Error);
    });
  }
}

TEST_CASE("bfloat16 GEMMs: EAP ranks the edges as float32 does (fixture models and a random 4-layer GPT-2)") {
  if (!bfloat16_unavailable_reason().empty()) return;  // the error itself is tested in test_core
  // Each model's EAP scores in float32 and with bfloat16 GEMMs: the Spearman correlation of the
  // scores and the overlap of the top 10% of edges by |score|.
  auto agreement = [](const auto& model, const Task& t, std::size_t min_work, double min_spearman, double min_overlap) {
    const auto task = make_patching_task(model, t);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const Attribution f32 = attribute(model, task, metric, Eap{});
    Attribution b16;
    {
      const GemmPrecisionScope bf16(GemmPrecision::bfloat16, min_work);
      b16 = attribute(model, make_patching_task(model, t), metric, Eap{});
    }
    CHECK(b16.edge_scores != f32.edge_scores);  // the bfloat16 path ran
    const double rho = spearman(b16.edge_scores, f32.edge_scores);
    const double overlap = top_k_overlap(b16.edge_scores, f32.edge_scores, std::max<std::size_t>(1, f32.edge_scores.size() / 10));
    CAPTURE(rho);
    CAPTURE(overlap);
    CHECK(rho > min_spearman);
    CHECK(overlap >= min_overlap);
  };
  for (const char* name : kModels) {
    CAPTURE(name);
    Fixture<float> fx(name);
    fx.with_model([&](const auto& model) { agreement(model, fx.task, 0, 0.99, 0.8); });  // every GEMM in bfloat16
  }
  ModelConfig c;
  c.n_layer = 4, c.n_head = 8, c.n_embd = 256, c.n_inner = 1024, c.n_positions = 64, c.vocab_size = 1000;
  const auto model = Model<GPT2, float>::random(c, 5, 0.08);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> token(0, 999);
  Task t;
  for (int b = 0; b < 8; ++b) {
    TaskExample e{std::vector<int>(16), std::vector<int>(16), {token(rng)}, {token(rng)}};
    for (int p = 0; p < 16; ++p) e.clean[std::size_t(p)] = token(rng), e.corrupted[std::size_t(p)] = token(rng);
    t.examples.push_back(e);
  }
  agreement(model, t, kBfloat16DefaultMinWork, 0.99, 0.8);
}
