// circuits: circuits and pruning, circuit-quality arithmetic (faithfulness, CPR/CMD, ROC,
// Spearman), the scores and circuit JSON files, ground truths, DOT export and SVG plots.
// Small cases are checked against numbers worked out by hand in the comments.
#include <doctest/doctest.h>

#include "error_check.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/circuits/pruning.hpp"
#include "circuitry/graph/circuit.hpp"
#include "circuitry/io/circuit_json.hpp"
#include "circuitry/io/dot.hpp"
#include "circuitry/io/scores_json.hpp"
#include "circuitry/io/svg_plot.hpp"
#include "../apps/graphviz.hpp"  // the command line's Graphviz rendering

namespace fs = std::filesystem;
using namespace circuitry;
using namespace circuitry::io;

namespace {

/// A fresh directory under the system temp directory, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device random;
    path =
        fs::temp_directory_path() / ("circuitry_test_circuits_" + std::to_string(random()) + std::to_string(random()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

void write_file(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}


fs::path ground_truth(const std::string& name) { return fs::path(CIRCUITRY_FIXTURES_DIR) / "ground-truth" / name; }

GraphShape shape_of(std::size_t layers, std::size_t heads, bool mlp = true, bool parallel = false) {
  GraphShape s;
  s.n_layers = layers;
  s.n_heads = heads;
  s.has_mlp = mlp;
  s.parallel_attn_mlp = parallel;
  return s;
}

/// One layer, one head, an MLP: 8 edges.
///   input->a0.h0<q|k|v>, input->m0, a0.h0->m0, input->logits, a0.h0->logits, m0->logits
const Graph& tiny() {
  static const Graph graph(shape_of(1, 1));
  return graph;
}

std::vector<double> scores_by_name(const Graph& g, const std::map<std::string, double>& named) {
  std::vector<double> scores(g.n_edges(), 0.0);
  for (const auto& [name, score] : named) scores[static_cast<std::size_t>(g.find_edge(name))] = score;
  return scores;
}

Circuit circuit_of(const Graph& g, std::initializer_list<const char*> names) {
  Circuit c(g);
  for (const char* name : names) c.in_graph[static_cast<std::size_t>(g.find_edge(name))] = 1;
  return c;
}

std::vector<std::string> in_graph_names(const Circuit& c) {
  std::vector<std::string> names;
  for (std::size_t e = 0; e < c.in_graph.size(); ++e)
    if (c.in_graph[e]) names.push_back(c.graph->edges()[e].name);
  return names;
}

std::vector<std::string> edge_names(const Graph& g) {
  std::vector<std::string> names;
  for (const Edge& e : g.edges()) names.push_back(e.name);
  return names;
}

// The running example: |score| order k .9, a0.h0->m0 .7, m0->logits .6, v .3, then the tie
// input->logits / a0.h0->logits at .2 (input->logits has the lower edge id), q .1, input->m0 .05.
std::vector<double> example_scores() {
  return scores_by_name(tiny(), {{"input->a0.h0<q>", 0.1},
                                 {"input->a0.h0<k>", -0.9},
                                 {"input->a0.h0<v>", 0.3},
                                 {"input->m0", 0.05},
                                 {"a0.h0->m0", 0.7},
                                 {"input->logits", -0.2},
                                 {"a0.h0->logits", 0.2},
                                 {"m0->logits", 0.6}});
}

}  // namespace


using SV = std::vector<std::string>;

TEST_CASE("graph sizes: GPT-2 small has 32,491 edges; the docstring model matches its ground truth") {
  CHECK(Graph(shape_of(12, 12)).n_edges() == 32491);
  for (const char* file : {"docstring-attn-only-4l.json", "tracr-proportion.json", "greaterthan-gpt2-small.json"}) {
    INFO(file);
    const auto model = nlohmann::json::parse(read_file(ground_truth(file)))["model"];
    const Graph g(shape_of(model["n_layers"], model["n_heads"], !model["attn_only"].get<bool>()));
    CHECK(g.n_edges() == model["n_graph_edges"].get<std::size_t>());
  }
  // The edge count that readers check before building a graph agrees with the graph.
  for (const GraphShape& s : {shape_of(12, 12), shape_of(4, 8, false), shape_of(3, 2, true, true), shape_of(1, 1)})
    CHECK(io::detail::expected_edge_count(s) == Graph(s).n_edges());
}

TEST_CASE("circuit: node membership follows the edges, with EAP-IG node names") {
  const Circuit c = circuit_of(tiny(), {"input->a0.h0<k>", "a0.h0->m0", "m0->logits"});
  CHECK(c.n_edges() == 3);
  CHECK(c.node_names() == SV{"input", "a0.h0", "m0", "logits"});
  CHECK(c.contains_node("a0.h0"));
  CHECK_FALSE(Circuit(tiny()).contains_node("logits"));
  CHECK(circuit_of(tiny(), {"input->logits"}).node_names() == SV{"input", "logits"});
  CHECK_ERROR(c.contains_node("a0.h0<q>"), "unknown upstream node 'a0.h0<q>'", "1 layers x 1 heads");
  CHECK_ERROR(c.contains_node("a3.h0"), "'a3.h0'");
}

TEST_CASE("prune_dead_ends removes edges that cannot reach both input and logits") {
  Circuit whole = circuit_of(tiny(), {"input->a0.h0<k>", "a0.h0->m0", "m0->logits"});
  CHECK(prune_dead_ends(whole) == 0);
  CHECK(whole.n_edges() == 3);

  Circuit no_exit = circuit_of(tiny(), {"input->a0.h0<k>", "a0.h0->m0"});  // m0 leads nowhere
  CHECK(prune_dead_ends(no_exit) == 2);
  CHECK(no_exit.n_edges() == 0);

  Circuit no_entry = circuit_of(tiny(), {"a0.h0->logits", "input->logits"});  // a0.h0 reads nothing
  CHECK(prune_dead_ends(no_entry) == 1);
  CHECK(in_graph_names(no_entry) == SV{"input->logits"});

  // A chain that dies at its far end unravels over several rounds.
  const Graph g(shape_of(3, 1, false));
  Circuit chain = circuit_of(g, {"input->a0.h0<q>", "a0.h0->a1.h0<v>", "a1.h0->a2.h0<k>", "input->a2.h0<q>",
                                 "a2.h0->logits", "a0.h0->a2.h0<v>"});
  chain.in_graph[static_cast<std::size_t>(g.find_edge("a2.h0->logits"))] = 0;
  CHECK(prune_dead_ends(chain) == 5);
  CHECK(chain.n_edges() == 0);
}

TEST_CASE("pruning: top_n, threshold and greedy on hand-checked scores") {
  const Graph& g = tiny();
  const std::vector<double> s = example_scores();
  CHECK(in_graph_names(top_n(g, s, 3)) == SV{"input->a0.h0<k>", "a0.h0->m0", "m0->logits"});
  CHECK(in_graph_names(top_n(g, s, 3, false)) == SV{"input->a0.h0<v>", "a0.h0->m0", "m0->logits"});
  // The .2 tie goes to the lower edge id, input->logits.
  CHECK(in_graph_names(top_n(g, s, 5)) ==
        SV{"input->a0.h0<k>", "input->a0.h0<v>", "a0.h0->m0", "input->logits", "m0->logits"});
  CHECK(top_n(g, s, 0).n_edges() == 0);
  CHECK(top_n(g, s, 8).n_edges() == 8);
  CHECK_ERROR(top_n(g, s, 9), "9", "8");

  CHECK(in_graph_names(threshold(g, s, 0.3)) == SV{"input->a0.h0<k>", "input->a0.h0<v>", "a0.h0->m0", "m0->logits"});
  CHECK(in_graph_names(threshold(g, s, 0.3, false)) == SV{"input->a0.h0<v>", "a0.h0->m0", "m0->logits"});
  CHECK(threshold(g, s, 1.0).n_edges() == 0);

  // Greedy: from logits the candidates are the edges into logits; m0->logits (.6) reaches m0,
  // whose inputs bring a0.h0->m0 (.7), which reaches a0.h0 and its k input (.9).
  CHECK(in_graph_names(greedy(g, s, 2)) == SV{"a0.h0->m0", "m0->logits"});
  CHECK(in_graph_names(greedy(g, s, 3)) == SV{"input->a0.h0<k>", "a0.h0->m0", "m0->logits"});
  CHECK(greedy(g, s, 8).n_edges() == 8);
  // top_n's two best edges are disconnected from logits and pruning removes both; greedy's
  // two hang from logits but not yet from input; its three reach input and survive.
  Circuit top2 = top_n(g, s, 2);
  CHECK(prune_dead_ends(top2) == 2);
  Circuit greedy2 = greedy(g, s, 2);
  CHECK(prune_dead_ends(greedy2) == 2);
  Circuit greedy3 = greedy(g, s, 3);
  CHECK(prune_dead_ends(greedy3) == 0);

  std::vector<double> bad = s;
  bad[static_cast<std::size_t>(g.find_edge("a0.h0->m0"))] = std::nan("");
  CHECK_ERROR(top_n(g, bad, 1), "'a0.h0->m0'", "NaN");
  CHECK_ERROR(threshold(g, bad, 0.1), "'a0.h0->m0'");
  CHECK_ERROR(greedy(g, bad, 1), "'a0.h0->m0'");
  CHECK_ERROR(top_n(g, std::vector<double>(3, 0.0), 1), "3 scores", "8 edges");
}

TEST_CASE("prune_dead_ends and greedy agree with direct transcriptions of EAP-IG on random cases") {
  const Graph g(shape_of(3, 2, true));
  const int logits = static_cast<int>(g.upstream().size());
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    // EAP-IG Graph.prune: keep nodes with an in-graph edge out and one in (input needs none in,
    // logits none out), drop edges with a dropped end, until nothing changes.
    Circuit c(g);
    for (auto& flag : c.in_graph) flag = uniform(rng) > 0.6;
    std::vector<std::uint8_t> expected = c.in_graph;
    for (bool changed = true; changed;) {
      std::vector<int> in(n_nodes(g), 0), out(n_nodes(g), 0);
      for (std::size_t e = 0; e < expected.size(); ++e) {
        if (!expected[e]) continue;
        ++out[static_cast<std::size_t>(g.edges()[e].upstream)];
        ++in[static_cast<std::size_t>(port_node(g, g.edges()[e].port))];
      }
      auto alive = [&](int n) {
        return (n == 0 || in[static_cast<std::size_t>(n)] > 0) && (n == logits || out[static_cast<std::size_t>(n)] > 0);
      };
      changed = false;
      for (std::size_t e = 0; e < expected.size(); ++e) {
        if (expected[e] && !(alive(g.edges()[e].upstream) && alive(port_node(g, g.edges()[e].port)))) {
          expected[e] = 0;
          changed = true;
        }
      }
    }
    prune_dead_ends(c);
    CHECK(c.in_graph == expected);

    // Greedy, the slow way: rescan every edge into a reached node on each step.
    std::vector<double> scores(g.n_edges());
    for (double& v : scores) v = std::round(uniform(rng) * 8) / 8;  // plenty of ties
    const std::size_t n = static_cast<std::size_t>(trial) % g.n_edges();
    std::vector<std::uint8_t> taken(g.n_edges(), 0), reached(n_nodes(g), 0);
    reached[static_cast<std::size_t>(logits)] = 1;
    for (std::size_t step = 0; step < n; ++step) {
      int best = -1;
      for (std::size_t e = 0; e < g.n_edges(); ++e)
        if (!taken[e] && reached[static_cast<std::size_t>(port_node(g, g.edges()[e].port))] &&
            (best < 0 || std::fabs(scores[e]) > std::fabs(scores[static_cast<std::size_t>(best)])))
          best = static_cast<int>(e);
      REQUIRE(best >= 0);
      const std::size_t chosen = static_cast<std::size_t>(best);
      taken[chosen] = 1;
      reached[static_cast<std::size_t>(g.edges()[chosen].upstream)] = 1;
    }
    CHECK(greedy(g, scores, n).in_graph == taken);
  }
}

TEST_CASE("faithfulness, CPR and CMD by hand") {
  CHECK(faithfulness(3, 1, 5) == doctest::Approx(0.5));
  CHECK(faithfulness(1, 1, 5) == 0);
  CHECK(faithfulness(5, 1, 5) == 1);
  CHECK_ERROR(faithfulness(2, 3, 3), "undefined");

  CHECK(mib_percentages.front() == 0.1);
  CHECK(mib_percentages.back() == 100);
  for (std::size_t i = 0; i < mib_fractions.size(); ++i)
    CHECK(mib_fractions[i] == doctest::Approx(mib_percentages[i] / 100));
  CHECK(mib_edge_count(0.001, 32491) == 32);  // MIB: int(0.001 * 32491)
  CHECK(mib_edge_count(0.5, 32491) == 16245);
  CHECK(mib_edge_count(1.0, 32491) == 32491);

  // f = .5, 1, 1.5 at x = .1, .5, 1: CPR = .4 * .75 + .5 * 1.25 = .925;
  // |1 - f| = .5, 0, .5: CMD = .4 * .25 + .5 * .25 = .225.
  const std::vector<CurvePoint> curve = {{0.1, 0.5}, {0.5, 1.0}, {1.0, 1.5}};
  CHECK(cpr(curve) == doctest::Approx(0.925));
  CHECK(cmd(curve) == doctest::Approx(0.225));
  CHECK(cpr(curve, true) == doctest::Approx(std::log(5.0) * 0.75 + std::log(2.0) * 1.25));
  // Over MIB's fractions a perfect circuit scores CPR .999 and CMD 0 (no extrapolation to 0).
  std::vector<CurvePoint> perfect;
  for (double f : mib_fractions) perfect.push_back({f, 1.0});
  CHECK(cpr(perfect) == doctest::Approx(0.999));
  CHECK(cmd(perfect) == 0);
  CHECK(area_under({{0.5, 2.0}}) == 0);

  CHECK_ERROR(area_under({{0.5, 1.0}, {0.1, 1.0}}), "sorted");
  CHECK_ERROR(area_under({{0.5, 1.0}, {1.5, 1.0}}), "outside [0, 1]");
  CHECK_ERROR(area_under({{0.0, 1.0}, {1.0, 1.0}}, true), "log scale");
  CHECK_ERROR(area_under({{0.0, std::nan("")}}), "non-finite");
}

TEST_CASE("roc: hand-computed trapezoid and pessimistic areas; perfect and reversed scores") {
  const Graph& g = tiny();
  // Truth: k, a0.h0->m0, m0->logits (3 positives, 5 negatives). Ranking k .9 T, v .8 F,
  // a0.h0->m0 .7 T, {input->logits .5 F, m0->logits .5 T} tied, a0.h0->logits .4 F, q .1 F,
  // input->m0 .05 F. Points (0,0) (0,1/3) (.2,1/3) (.2,2/3) (.4,1) (.6,1) (.8,1) (1,1).
  // Trapezoid: .2/3 + .2 * 5/6 + .6 = 5/6. Pessimistic: .2/3 + .2 * 2/3 + .6 = 4/5.
  const std::vector<double> s = scores_by_name(g, {{"input->a0.h0<k>", 0.9},
                                                   {"input->a0.h0<v>", -0.8},
                                                   {"a0.h0->m0", 0.7},
                                                   {"input->logits", 0.5},
                                                   {"m0->logits", -0.5},
                                                   {"a0.h0->logits", 0.4},
                                                   {"input->a0.h0<q>", 0.1},
                                                   {"input->m0", 0.05}});
  const Circuit truth_circuit = circuit_of(g, {"input->a0.h0<k>", "a0.h0->m0", "m0->logits"});
  const RocCurve r = roc(g, s, truth_circuit.in_graph);
  const std::vector<double> fpr = {0, 0, 0.2, 0.2, 0.4, 0.6, 0.8, 1}, tpr = {0, 1. / 3, 1. / 3, 2. / 3, 1, 1, 1, 1};
  REQUIRE(r.fpr.size() == fpr.size());
  for (std::size_t i = 0; i < fpr.size(); ++i) {
    CHECK(r.fpr[i] == doctest::Approx(fpr[i]));
    CHECK(r.tpr[i] == doctest::Approx(tpr[i]));
  }
  CHECK(r.auc_trapezoid == doctest::Approx(5.0 / 6));
  CHECK(r.auc_pessimistic == doctest::Approx(4.0 / 5));
  // ACDC's own assertions on pessimistic_auc.
  CHECK(pessimistic_area({0, 0.5, 1}, {0, 0.5, 1}) == 0.25);
  CHECK(pessimistic_area({0, 0.25, 0.75, 1}, {0, 0.25, 0.5, 1}) == 4.0 / 16);

  // The docstring ground truth: its own flags score 1, reversed flags 0.
  const Graph docstring(shape_of(4, 8, false));
  const std::vector<std::uint8_t> truth = read_ground_truth(docstring, ground_truth("docstring-attn-only-4l.json"));
  std::vector<double> perfect(truth.begin(), truth.end()), reversed;
  for (double v : perfect) reversed.push_back(1 - v);
  const RocCurve best = roc(docstring, perfect, truth), worst = roc(docstring, reversed, truth);
  CHECK(best.auc_trapezoid == 1);
  CHECK(best.auc_pessimistic == 1);
  CHECK(worst.auc_trapezoid == 0);
  CHECK(worst.auc_pessimistic == 0);
  CHECK(best.fpr.front() == 0);
  CHECK(best.tpr.back() == 1);

  CHECK_ERROR(roc(g, s, std::vector<std::uint8_t>(8, 0)), "no edges");
  CHECK_ERROR(roc(g, s, std::vector<std::uint8_t>(8, 1)), "every edge");
  CHECK_ERROR(roc(g, s, std::vector<std::uint8_t>(3, 1)), "3 flags");
}

TEST_CASE("ground truth: files load by key, and names or models that do not fit are refused") {
  const Graph gpt2(shape_of(12, 12));
  const auto gt = read_ground_truth(gpt2, ground_truth("greaterthan-gpt2-small.json"));
  CHECK(std::count(gt.begin(), gt.end(), 1) == 235);
  const Graph tracr(shape_of(2, 1));
  const auto official = read_ground_truth(tracr, ground_truth("tracr-proportion.json"), "auto_circuit_official");
  Circuit c(tracr);
  c.in_graph = official;
  CHECK(in_graph_names(c) == SV{"input->m0", "m0->a1.h0<v>", "a1.h0->logits"});

  CHECK_ERROR(read_ground_truth(gpt2, ground_truth("docstring-attn-only-4l.json")), "docstring-attn-only-4l.json",
              "4 layers x 8 heads, attention-only", "12 layers x 12 heads");
  CHECK_ERROR(read_ground_truth(tracr, ground_truth("tracr-proportion.json"), "nope"), "no edge list 'nope'");
  TempDir dir;
  write_file(dir / "gt.json", R"({"edges": ["a0.h0->logits", "a7.h0->logits", "a9.h9->logits"]})");
  CHECK_ERROR(read_ground_truth(tracr, dir / "gt.json"), "gt.json", "'a7.h0->logits'", "2 layers x 1 heads");
  write_file(dir / "bad.json", R"({"edges": [3]})");
  CHECK_ERROR(read_ground_truth(tracr, dir / "bad.json"), "bad.json", "must be strings");
}

TEST_CASE("spearman: known values, ties take average ranks") {
  // ranks of b = 1, 2, 3.5, 5, 3.5: rho = 8 / sqrt(10 * 9.5) (scipy: 0.8207826816681233)
  CHECK(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}) == doctest::Approx(0.8207826816681233));
  CHECK(spearman({1, 2, 3}, {10, 20, 30}) == doctest::Approx(1));
  CHECK(spearman({1, 2, 3}, {3, 2, 1}) == doctest::Approx(-1));
  CHECK(spearman({0.1, 5, -2, 7}, {1, 100, -50, 1000}) == doctest::Approx(1));
  CHECK_ERROR(spearman({1, 2}, {1, 2, 3}), "differ in length");
  CHECK_ERROR(spearman({1, 1, 1}, {1, 2, 3}), "constant");
  CHECK_ERROR(spearman({1, std::nan(""), 1}, {1, 2, 3}), "NaN");
}

TEST_CASE("scores json: round trip at full precision; the shape is inferred from the names") {
  TempDir dir;
  const Graph gpt2(shape_of(12, 12));
  std::vector<double> scores(gpt2.n_edges());
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1e-3);
  for (double& s : scores) s = normal(rng);
  ScoresMeta meta;
  meta.method = "eap-ig";
  meta.metric = "logit_diff";
  meta.clean_metric = 3.25;
  meta.corrupted_metric = -0.1;
  meta.extra["steps"] = 5;
  write_scores_json(dir / "s.json", gpt2, scores, meta);
  const Scores back = read_scores_json(dir / "s.json", gpt2);
  CHECK(same_shape(back.shape, gpt2.shape()));
  CHECK(back.values == scores);  // bit for bit
  CHECK(back.meta.method == "eap-ig");
  CHECK(back.meta.metric == "logit_diff");
  CHECK(back.meta.clean_metric == 3.25);
  CHECK(back.meta.corrupted_metric == -0.1);
  CHECK(back.meta.extra["steps"] == 5);

  for (const GraphShape& s : {shape_of(4, 8, false), shape_of(3, 2, true, true), shape_of(2, 3), shape_of(1, 1)}) {
    const GraphShape inferred = infer_graph_shape(edge_names(Graph(s)));
    CHECK(same_shape(inferred, s));
    CHECK(inferred.parallel_attn_mlp == s.parallel_attn_mlp);
  }
  SV names = edge_names(tiny());
  names.pop_back();
  CHECK_ERROR(infer_graph_shape(names), "7 were given", "8 edges");
  CHECK_ERROR(infer_graph_shape({"a0.h0->a1.h0"}), "'a0.h0->a1.h0' is not an edge name");
  CHECK_ERROR(read_scores_json(dir / "s.json", tiny()), "s.json", "12 layers x 12 heads", "1 layers x 1 heads");
}

TEST_CASE("scores json: unknown, missing and mistyped edges and invalid JSON are named") {
  TempDir dir;
  const Graph& g = tiny();
  const nlohmann::json good =
      nlohmann::json::parse(scores_to_json(g, example_scores(), ScoresMeta{"eap", "kl", 0, 1, {}}).dump());
  auto attempt = [&](const nlohmann::json& j) {
    write_file(dir / "x.json", j.dump());
    return read_scores_json(dir / "x.json");
  };
  CHECK(attempt(good).values == example_scores());

  nlohmann::json j = good;
  j["edges"]["a0.h0->a0.h0<q>"] = 1.0;  // well formed, but not an edge
  CHECK_ERROR(attempt(j), "x.json", "unknown edge 'a0.h0->a0.h0<q>'");
  j = good;
  j["edges"]["a0.h0->input"] = 1.0;
  CHECK_ERROR(attempt(j), "x.json", "unknown edge 'a0.h0->input'");
  j = good;
  j["edges"].erase("input->logits");
  CHECK_ERROR(attempt(j), "x.json", "missing edge 'input->logits'");
  j = good;
  j["edges"]["m0->logits"] = "0.5";
  CHECK_ERROR(attempt(j), "x.json", "'m0->logits' must be a number", "string");
  j = good;
  j["edges"]["m0->logits"] = nullptr;  // what a NaN becomes
  CHECK_ERROR(attempt(j), "'m0->logits' must be a number", "null");
  j = good;
  j.erase("metric");
  CHECK_ERROR(attempt(j), "x.json", "missing key 'metric'");
  j = good;
  j["edges"]["a900.h0->logits"] = 1.0;  // a stray index must not build a 900-layer graph
  CHECK_ERROR(attempt(j), "x.json", "check the layer and head indices");
  write_file(dir / "x.json", R"({"method": "eap", "edges": {)");
  CHECK_ERROR(read_scores_json(dir / "x.json"), "x.json", "not valid JSON");
  CHECK_ERROR(read_scores_json(dir / "absent.json"), "absent.json", "does not exist");

  std::vector<double> nan_scores = example_scores();
  nan_scores[0] = std::nan("");
  CHECK_ERROR(scores_to_json(g, nan_scores, {}), "'input->a0.h0<q>'", "not finite");
  nan_scores[0] = 0.5, nan_scores.back() = std::numeric_limits<double>::infinity();
  CHECK_ERROR(scores_json_text(g, nan_scores, {}), "'m0->logits'", "not finite");
}

TEST_CASE("scores json: the written text is scores_to_json's document, laid out like json_text") {
  const Graph gpt2(shape_of(12, 12));
  std::vector<double> scores(gpt2.n_edges());
  std::mt19937_64 rng(11);
  for (double& s : scores) {  // random bit patterns: every exponent, subnormals too
    do s = std::bit_cast<double>(rng());
    while (!std::isfinite(s));
  }
  scores[0] = 0.0, scores[1] = -0.0, scores[2] = 3.0, scores[3] = std::numeric_limits<double>::denorm_min();
  ScoresMeta meta{"eap", "logit_diff", 0.5, -1.25, {}};
  meta.extra["steps"] = 5;
  const std::string text = scores_json_text(gpt2, scores, meta);
  const nlohmann::ordered_json tree = scores_to_json(gpt2, scores, meta);
  CHECK(nlohmann::ordered_json::parse(text) == tree);  // same keys, same order, same numbers
  CHECK(text.starts_with("{\n \"method\": \"eap\",\n"));
  CHECK(text.find("\n  \"input->a0.h0<q>\": 0.0,\n  \"input->a0.h0<k>\": -0.0,\n") != std::string::npos);
  CHECK(text.ends_with("\n }\n}\n"));

  // json_text_with_member on an empty head, and a key that needs escaping.
  CHECK(json_text_with_member(nlohmann::ordered_json::object(), "a\"b", 0, [](std::string& out) { out += "[]"; }) ==
        "{\n \"a\\\"b\": []\n}\n");
  CHECK_ERROR(json_text_with_member(nlohmann::ordered_json::array(), "x", 0, [](std::string&) {}), "must be a JSON object");
}

TEST_CASE("circuit json: EAP-IG layout, round trip and errors") {
  TempDir dir;
  const Graph& g = tiny();
  const std::vector<double> s = example_scores();
  const Circuit c = circuit_of(g, {"input->a0.h0<k>", "a0.h0->m0", "m0->logits"});
  write_circuit_json(dir / "c.json", c, s, 768);

  const nlohmann::json j = nlohmann::json::parse(read_file(dir / "c.json"));
  CHECK(j["cfg"] == nlohmann::json{{"n_layers", 1}, {"n_heads", 1}, {"d_model", 768}, {"parallel_attn_mlp", false}});
  CHECK(j["nodes"].size() == 4);  // input, a0.h0, m0, logits: one node per head
  CHECK(j["nodes"]["a0.h0"]["in_graph"] == true);
  CHECK(j["edges"].size() == 8);
  CHECK(j["edges"]["input->a0.h0<k>"] == nlohmann::json{{"score", -0.9}, {"in_graph", true}});
  CHECK(j["edges"]["input->m0"]["in_graph"] == false);

  const CircuitFile back = read_circuit_json(dir / "c.json");
  CHECK(same_shape(back.shape, g.shape()));
  CHECK(back.d_model == 768);
  CHECK(back.scores == s);
  CHECK(back.on(g).in_graph == c.in_graph);
  const Graph other(shape_of(2, 1));
  CHECK_ERROR(back.on(other), "c.json", "2 layers x 1 heads");

  std::vector<double> nan_scores = s;
  nan_scores[2] = std::numeric_limits<double>::quiet_NaN();
  CHECK_ERROR(circuit_json_text(c, nan_scores, 768), "'" + g.edges()[2].name + "'", "not finite");

  // GPT-2 small's 32,491 edges: written one per line in Graph::edges() order, read back exactly.
  const Graph gpt2(shape_of(12, 12));
  std::vector<double> gpt2_scores(gpt2.n_edges());
  for (std::size_t e = 0; e < gpt2_scores.size(); ++e) gpt2_scores[e] = std::sin(double(e)) * 1e-3;
  const Circuit gpt2_circuit = top_n(gpt2, gpt2_scores, 500);
  const std::string text = circuit_json_text(gpt2_circuit, gpt2_scores, 768);
  CHECK(text.find("\"" + gpt2.edges()[0].name + "\"") < text.find("\"" + gpt2.edges()[1].name + "\""));
  write_file(dir / "gpt2.json", text);
  const CircuitFile gpt2_back = read_circuit_json(dir / "gpt2.json");
  CHECK(gpt2_back.scores == gpt2_scores);
  CHECK(gpt2_back.on(gpt2).in_graph == gpt2_circuit.in_graph);

  // An empty circuit still marks logits in the graph, as EAP-IG does.
  CHECK(circuit_to_json(Circuit(g), s, 16)["nodes"]["logits"]["in_graph"] == true);
  CHECK(circuit_to_json(Circuit(g), s, 16)["nodes"]["m0"]["in_graph"] == false);

  // Attention-only models carry "attn_only" in cfg and have no MLP nodes.
  const Graph attn(shape_of(2, 2, false));
  const Circuit ac = top_n(attn, std::vector<double>(attn.n_edges(), 1.0), 4);
  write_circuit_json(dir / "a.json", ac, std::vector<double>(attn.n_edges(), 1.0), 64);
  const CircuitFile aback = read_circuit_json(dir / "a.json");
  CHECK_FALSE(aback.shape.has_mlp);
  CHECK(aback.on(attn).in_graph == ac.in_graph);

  auto attempt = [&](const nlohmann::json& doc) {
    write_file(dir / "x.json", doc.dump());
    return read_circuit_json(dir / "x.json");
  };
  nlohmann::json bad = j;
  bad["edges"]["m0->a0.h0<q>"] = {{"score", 0.0}, {"in_graph", false}};
  CHECK_ERROR(attempt(bad), "x.json", "unknown edge 'm0->a0.h0<q>'");
  bad = j;
  bad["edges"].erase("a0.h0->logits");
  CHECK_ERROR(attempt(bad), "x.json", "missing edge 'a0.h0->logits'");
  bad = j;
  bad["edges"]["a0.h0->logits"]["in_graph"] = 1;
  CHECK_ERROR(attempt(bad), "x.json", "a0.h0->logits", "'in_graph' must be true or false");
  bad = j;
  bad["edges"]["a0.h0->logits"]["score"] = "high";
  CHECK_ERROR(attempt(bad), "x.json", "a0.h0->logits", "'score' must be a number");
  bad = j;
  bad["nodes"]["a0.h0<q>"] = {{"in_graph", true}};
  CHECK_ERROR(attempt(bad), "x.json", "nodes", "'a0.h0<q>'");
  bad = j;
  bad["cfg"].erase("n_heads");
  CHECK_ERROR(attempt(bad), "x.json", "cfg", "'n_heads'");
  bad = j;
  bad["cfg"]["n_layers"] = 5000;  // far more edges than the file lists
  CHECK_ERROR(attempt(bad), "x.json", "check the layer and head indices");
  bad = j;
  bad.erase("nodes");
  CHECK_ERROR(attempt(bad), "x.json", "missing key 'nodes'");
  write_file(dir / "x.json", "[1, 2");
  CHECK_ERROR(read_circuit_json(dir / "x.json"), "x.json", "not valid JSON");

  // A hand-written file in EAP-IG's own key order, with node scores it may carry.
  write_file(dir / "eap.json", R"({"cfg": {"n_layers": 1, "n_heads": 1, "parallel_attn_mlp": false, "d_model": 8},
    "nodes": {"input": {"in_graph": true, "score": 0.5}, "a0.h0": {"in_graph": false}, "m0": {"in_graph": true},
              "logits": {"in_graph": true}},
    "edges": {"input->a0.h0<q>": {"score": 0.1, "in_graph": false}, "input->a0.h0<k>": {"score": 0.2, "in_graph": false},
              "input->a0.h0<v>": {"score": 0.3, "in_graph": false}, "input->m0": {"score": 0.4, "in_graph": true},
              "input->logits": {"score": 0.5, "in_graph": false}, "a0.h0->m0": {"score": 0.6, "in_graph": false},
              "a0.h0->logits": {"score": 0.7, "in_graph": false}, "m0->logits": {"score": 0.8, "in_graph": true}}})");
  const Circuit eap = read_circuit_json(dir / "eap.json").on(g);
  CHECK(in_graph_names(eap) == SV{"input->m0", "m0->logits"});
}

TEST_CASE("dot: in-graph edges only, coloured by port, width by |score|, dashed when negative") {
  const Graph& g = tiny();
  const Circuit c = circuit_of(g, {"input->a0.h0<k>", "a0.h0->m0", "m0->logits"});
  std::vector<double> s = example_scores();  // k -.9 (widest), a0.h0->m0 .7, m0->logits .6
  DotOptions options;
  options.title = "IOI \"top 3\"";
  const std::string dot = to_dot(c, s, options);
  CHECK(dot.find("digraph circuit {") == 0);
  CHECK(dot.find("rankdir=BT") != std::string::npos);
  CHECK(dot.find("label=\"IOI \\\"top 3\\\"\"") != std::string::npos);
  CHECK(dot.find("\"input\" -> \"a0.h0\" [color=\"#009E73\", penwidth=5.00, style=dashed") != std::string::npos);
  CHECK(dot.find("\"a0.h0\" -> \"m0\" [color=\"#CC79A7\", penwidth=3.89, tooltip=\"a0.h0->m0: 0.7\"") !=
        std::string::npos);
  CHECK(dot.find("\"m0\" -> \"logits\" [color=\"#222222\"") != std::string::npos);
  CHECK(dot.find("\"input\" -> \"logits\"") == std::string::npos);
  CHECK(dot.find("a0.h0<k>\" [") == std::string::npos);  // no q/k/v nodes
  CHECK(dot.find("legend [shape=plaintext") != std::string::npos);
  CHECK(dot.find("{ rank=same; \"logits\"; legend; }") != std::string::npos);
  options.left_to_right = true;
  options.legend = false;
  const std::string plain = to_dot(c, {}, options);
  CHECK(plain.find("rankdir=LR") != std::string::npos);
  CHECK(plain.find("penwidth=1.20") != std::string::npos);
  CHECK(plain.find("legend") == std::string::npos);
  CHECK_ERROR(to_dot(c, {1.0, 2.0}), "2 scores");

  TempDir dir;
  write_dot(dir / "c.dot", c, s);
  CHECK(read_file(dir / "c.dot") == to_dot(c, s));
  if (const auto rendered = cli::render_svg(dir / "c.dot")) {
    const std::string& svg = *rendered;
    CHECK(svg.find("<svg") != std::string::npos);
    CHECK(svg.find("a0.h0&#45;&gt;m0") != std::string::npos);  // the edge tooltip
    write_file(dir / "broken.dot", "digraph {");
    CHECK_ERROR(cli::render_svg(dir / "broken.dot"), "broken.dot", "failed");
  }
}

TEST_CASE("svg plot: a well-formed document with series, legend, ticks and escaping") {
  LinePlot plot;
  plot.title = "Faithfulness <IOI & friends>";
  plot.x_label = "edges in circuit (fraction)";
  plot.y_label = "faithfulness";
  plot.log_x = true;
  plot.series.push_back({"EAP-IG", {0.001, 0.01, 0.1, 1}, {0.1, 0.5, 0.9, 1.0}, "", false, true});
  plot.series.push_back({"a<b", {0.001, 1}, {0.0, 1.0}, "#123456", true, false});
  const std::string svg = render_line_plot(plot);
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(svg.rfind("</svg>\n") == svg.size() - 7);
  CHECK(svg.find("Faithfulness &lt;IOI &amp; friends&gt;") != std::string::npos);
  CHECK(svg.find("<polyline points=") != std::string::npos);
  CHECK(svg.find("stroke=\"#123456\" stroke-width=\"2\" stroke-dasharray=\"6 4\"") != std::string::npos);
  CHECK(svg.find(">a&lt;b</text>") != std::string::npos);
  CHECK(svg.find(">0.001</text>") != std::string::npos);  // decade ticks on the log axis
  CHECK(svg.find(">EAP-IG</text>") != std::string::npos);
  // Balanced tags, a cheap well-formedness check (the full XML check is in the report).
  std::size_t opens = 0, closes = 0;
  for (std::size_t i = 0; i + 1 < svg.size(); ++i) {
    if (svg[i] == '<' && svg[i + 1] != '/' && svg[i + 1] != '?') ++opens;
    if ((svg[i] == '<' && svg[i + 1] == '/') || (svg[i] == '/' && svg[i + 1] == '>')) ++closes;
  }
  CHECK(opens == closes);

  LinePlot roc_plot;
  roc_plot.title = "ROC";
  roc_plot.diagonal = true;
  roc_plot.x_min = 0;
  roc_plot.x_max = 1;
  roc_plot.series.push_back({"ACDC", {0, 0.2, 1}, {0, 0.8, 1}, "", false, true});
  const std::string roc_svg = render_line_plot(roc_plot);
  CHECK(roc_svg.find("class=\"diagonal\"") != std::string::npos);
  CHECK(roc_svg.find(">0.2</text>") != std::string::npos);

  plot.series[0].y.pop_back();
  CHECK_ERROR(render_line_plot(plot), "'EAP-IG'", "4 x values but 3 y values");
  plot.series[0].y.push_back(1.0);
  plot.series[0].x[0] = 0;
  CHECK_ERROR(render_line_plot(plot), "x <= 0 on a log axis");
  TempDir dir;
  write_line_plot(dir / "p.svg", roc_plot);
  CHECK(read_file(dir / "p.svg") == roc_svg);
}
