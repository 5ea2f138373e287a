#pragma once
// The main job (`circuitry` with no arguments) and `circuitry discover`: find a circuit in a
// model and explain it. With no --model, the shipped 2-layer attention-only induction model
// (embedded in this executable; apps/circuitry.cpp unpacks and loads it) and a generated
// induction task are used.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string_view>
#include <numeric>
#include <random>

#include <circuitry/circuitry.hpp>

#include "cli_args.hpp"
#include "discovery_files.hpp"
#include "task_source.hpp"

namespace circuitry::cli {

inline std::string fixed(double x, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

/// Prints the scores table, the method comparison and the chosen circuit.
template <class M>
void print_discovery(const M& model, const DiscoveryReport& r, const DiscoveryOptions& opt) {
  const Graph g = model.graph();
  std::printf("\nMetric %s: clean %.3f, corrupted %.3f (the gap the circuit must explain)\n", metric_name(opt.metric).c_str(),
              r.exact.clean_metric, r.exact.corrupted_metric);
  std::vector<std::size_t> order(g.n_edges());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return std::abs(r.exact.edge_scores[a]) > std::abs(r.exact.edge_scores[b]); });
  std::printf("\nTop edges by |exact effect| of %zu (effect = change of the metric when the edge reads the corrupted run):\n",
              g.n_edges());
  std::printf("  %-26s %10s %10s %10s\n", "edge", "exact", "eap", "eap-ig");
  for (std::size_t i = 0; i < std::min<std::size_t>(10, order.size()); ++i) {
    const std::size_t e = order[i];
    std::printf("  %-26s %10.4f %10.4f %10.4f\n", g.edges()[e].name.c_str(), r.exact.edge_scores[e], r.eap.edge_scores[e],
                r.eap_ig.edge_scores[e]);
  }
  std::printf("\nHow well the cheap estimates agree with exact patching (%zu edges have |exact| >= %.0f%% of the largest):\n",
              r.n_large, 100 * opt.large_effect_fraction);
  for (const auto& c : r.comparisons)
    std::printf("  %-8s Spearman %.3f   ROC AUC %s (pessimistic %s)\n", c.method.c_str(), c.spearman_vs_exact,
                c.roc.fpr.empty() ? "n/a" : fixed(c.roc.auc_trapezoid).c_str(), c.roc.fpr.empty() ? "n/a" : fixed(c.roc.auc_pessimistic).c_str());
  std::printf("\nCircuit: %zu of %zu edges (the fewest top edges reaching faithfulness %.2f, dead ends removed)\n",
              r.circuit.n_edges(), g.n_edges(), opt.target_faithfulness);
  std::printf("  faithfulness %.3f  (metric %.3f; 1 = the full model, 0 = the corrupted run)\n", r.circuit_faithfulness,
              r.circuit_metric);
  std::printf("  nodes:");
  for (const auto& n : r.circuit.node_names()) std::printf(" %s", n.c_str());
  std::printf("\n  edges:");
  for (std::size_t e = 0; e < g.n_edges(); ++e)
    if (r.circuit.in_graph[e]) std::printf(" %s", g.edges()[e].name.c_str());
  std::printf("\n");
}

inline void print_files(const std::vector<std::string>& files) {
  std::printf("\nWrote:");
  for (const auto& f : files) std::printf(" %s", f.c_str());
  std::printf("\n");
}

/// The induction story: which heads attend to the previous token / the earlier copy, and
/// which paths carry the effect (path patching on the treeified model), for two corruptions:
/// the earlier B (what the induction heads copy) and the earlier A (where they look).
struct InductionFindings {
  std::string prev_heads, ind_heads;
  double value_on_answer = 0, key_on_trigger = 0;  // proportions explained
};

template <class M, class T = typename M::scalar>
InductionFindings explain_induction(const M& model, const PatchingTask<T>& answer_task, const PatchingTask<T>& trigger_task,
                                    std::size_t half) {
  const auto& c = model.config();
  std::mt19937 rng(7);
  const Batch repeated = Batch::from(induction_training_batch(c.vocab_size, half, 64, rng));
  const HeadScores prev = previous_token_scores(model, repeated), ind = induction_scores(model, repeated, half);
  std::printf("\nAttention patterns on repeated random sequences (score = mean attention weight):\n");
  std::printf("  %-8s %16s %16s\n", "head", "previous-token", "induction");
  for (std::size_t l = 0; l < c.n_layer; ++l)
    for (std::size_t h = 0; h < c.n_head; ++h)
      std::printf("  a%zu.h%zu    %16.3f %16.3f\n", l, h, prev.at(l, h), ind.at(l, h));
  // Heads whose score is at least half of their layer's best: the previous-token heads of
  // layer 0 and the induction heads of the last layer.
  auto pick = [](const HeadScores& s, std::size_t layer) {
    const auto [bl, bh] = s.best(int(layer));
    std::vector<std::string> heads;
    for (std::size_t h = 0; h < s.n_heads; ++h)
      if (s.at(layer, h) >= 0.5 * s.at(bl, bh)) heads.push_back("a" + std::to_string(layer) + ".h" + std::to_string(h));
    return heads;
  };
  const auto prev_heads = pick(prev, 0), ind_heads = pick(ind, c.n_layer - 1);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  };
  std::printf("  -> previous-token heads %s; induction heads %s\n", join(prev_heads).c_str(), join(ind_heads).c_str());

  using PathSet = std::vector<std::vector<std::string>>;
  PathSet value, key, query;
  for (const auto& i : ind_heads) {
    value.push_back({"input->" + i + "<v>", i + "->logits"});
    query.push_back({"input->" + i + "<q>", i + "->logits"});
    for (const auto& p : prev_heads) key.push_back({p + "->" + i + "<k>", i + "->logits"});
  }
  PathSet all = value;
  all.insert(all.end(), key.begin(), key.end());
  all.insert(all.end(), query.begin(), query.end());
  all.push_back({"input->logits"});  // the direct path: embeddings straight to the unembedding
  const std::vector<std::pair<std::string, PathSet>> hypotheses = {
      {"value: input -> v of induction heads -> logits", value},
      {"key: previous-token heads -> k of induction heads -> logits", key},
      {"query: input -> q of induction heads -> logits", query},
      {"all three, plus the direct path input -> logits", all},
  };
  std::printf("\nPath patching on the treeified model: the listed paths read the clean input, every other path\n"
              "the corrupted one; proportion explained = 1 - KL(clean || hypothesis) / KL(clean || corrupted).\n");
  std::printf("  %-62s %11s %11s\n", "hypothesis", "B -> C", "A -> C");
  InductionFindings found{join(prev_heads), join(ind_heads)};
  auto percent = [](double x) { return std::abs(x) < 5e-4 ? 0.0 : 100 * x; };  // no "-0.0%"
  for (std::size_t i = 0; i < hypotheses.size(); ++i) {
    const double on_answer = evaluate_path_set(model, answer_task, hypotheses[i].second).proportion_explained;
    const double on_trigger = evaluate_path_set(model, trigger_task, hypotheses[i].second).proportion_explained;
    if (i == 0) found.value_on_answer = on_answer;
    if (i == 1) found.key_on_trigger = on_trigger;
    std::printf("  %-62s %10.1f%% %10.1f%%\n", hypotheses[i].first.c_str(), percent(on_answer), percent(on_trigger));
  }
  std::printf("  (B -> C corrupts what the induction heads copy, A -> C where they look: the value path\n"
              "   should carry the first, the previous-token -> key path the second.)\n");
  return found;
}

/// ACDC beside attribution: ACDC's circuit at one threshold on the same model and task, and how
/// much it shares with the attribution circuit. Writes acdc-circuit.json.
template <class M, class T = typename M::scalar>
void compare_with_acdc(const M& model, const PatchingTask<T>& task, const DiscoveryReport& r, const DiscoveryJob& opt,
                       double tau, io::OutputSet& outputs, std::vector<std::string>& files) {
  const Graph& g = *r.graph;
  const auto start = std::chrono::steady_clock::now();
  const AcdcCircuit c = acdc(model, task, MetricKind::KL, tau);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const BuiltinMetric metric{opt.metric};
  const auto source = ablation_source(model, task, Ablation::Resample);
  const double m = evaluate_circuit(model, task, metric, c.in_graph, source).metric;
  const double f = faithfulness(m, r.exact.corrupted_metric, r.exact.clean_metric);
  std::size_t shared = 0, only_acdc = 0, only_attribution = 0;
  for (std::size_t e = 0; e < g.n_edges(); ++e) {
    shared += c.in_graph[e] && r.circuit.in_graph[e];
    only_acdc += c.in_graph[e] && !r.circuit.in_graph[e];
    only_attribution += !c.in_graph[e] && r.circuit.in_graph[e];
  }
  std::printf("\nACDC (Conmy et al. 2023) at tau = %g, distance KL(clean || circuit), resample ablation: %zu patched runs in %.1f s\n",
              tau, c.runs, seconds);
  std::printf("  %zu of %zu edges kept, KL %.4f, faithfulness %.3f on %s (the attribution circuit: %zu edges, %.3f)\n", c.n_edges,
              g.n_edges(), c.distance, f, metric_name(opt.metric).c_str(), r.circuit.n_edges(), r.circuit_faithfulness);
  std::printf("  shared with the attribution circuit: %zu edges; only ACDC: %zu; only attribution: %zu\n", shared, only_acdc,
              only_attribution);
  std::printf("  edges:");
  for (std::size_t e = 0; e < g.n_edges(); ++e)
    if (c.in_graph[e]) std::printf(" %s%s", g.edges()[e].name.c_str(), r.circuit.in_graph[e] ? "" : "*");
  std::printf("\n  (* = not in the attribution circuit)\n");
  Circuit circuit(g);
  circuit.in_graph = c.in_graph;
  const auto path = opt.out_dir / "acdc-circuit.json";
  outputs.stage(path, io::circuit_json_text(circuit, r.exact.edge_scores, model.config().n_embd));
  files.push_back(path.string());
}

/// Every method against models whose circuit is known by construction, of the shipped model's
/// size (circuits/planted_circuit.hpp): the EAP paper's comparison where the truth is exact.
inline void planted_auc_table(std::size_t n_layers, std::size_t n_heads) {
  std::printf("\nEvery method against planted circuits of the same size (%zu x %zu; ROC AUC, 1 = the true edges ranked first):\n",
              n_layers, n_heads);
  std::printf("  %-10s %6s %6s", "planted", "edges", "true");
  for (const auto& m : comparison_method_names()) std::printf(" %16s", m.c_str());
  std::printf("\n");
  for (PlantedShape shape : {PlantedShape::Fork, PlantedShape::Induction}) {
    PlantedSpec spec;
    spec.n_layers = n_layers, spec.n_heads = n_heads, spec.shape = shape;
    const PlantedModel<float> planted = make_planted_model<float>(spec);
    const Model<AttnOnly, float> model(planted.config, planted.weights);
    const auto task = make_patching_task(model, planted.task);
    const Graph graph = model.graph();
    const auto results = compare_methods(model, task, planted.truth(graph));
    std::printf("  %-10s %6zu %6zu", shape == PlantedShape::Fork ? "fork" : "induction", graph.n_edges(), planted.true_edges.size());
    for (const auto& r : results) std::printf(" %16.3f", r.auc);
    std::printf("\n");
  }
  std::printf("  (fork: two copying paths through values, linear once attention is fixed, so first-order\n"
              "   estimates are exact. induction: the induction head's attention is content-based and\n"
              "   saturated, so the gradients through its query and key vanish and attribution patching\n"
              "   misses those edges, while exact patching and ACDC see them: the failure mode of EAP.)\n");
}

/// What a student should take away, in words, from the numbers above.
inline void print_summary(const DiscoveryReport& r, const InductionFindings& f) {
  const auto& g = *r.circuit.graph;
  std::size_t top = 0;
  for (std::size_t e = 1; e < g.n_edges(); ++e)
    if (std::abs(r.exact.edge_scores[e]) > std::abs(r.exact.edge_scores[top])) top = e;
  const double auc = r.comparisons.empty() || r.comparisons[0].roc.fpr.empty() ? 0.0 : r.comparisons[0].roc.auc_trapezoid;
  std::printf("\nSummary\n");
  std::printf("  The model copies a repeated token with two attention layers. Previous-token heads (%s)\n"
              "  write \"the token before me\" into every position; induction heads (%s) match the current\n"
              "  token against that, attend to the position right after its earlier copy, and move the token\n"
              "  found there to the logits through their values.\n",
              f.prev_heads.c_str(), f.ind_heads.c_str());
  std::printf("  Path patching confirms both halves: the value path alone explains %.0f%% of the effect of\n"
              "  changing the copied token, the previous-token -> key path %.0f%% of the effect of hiding\n"
              "  where to look.\n",
              100 * f.value_on_answer, 100 * f.key_on_trigger);
  std::printf("  A %zu-edge circuit keeps %.0f%% of the behaviour. The one-backward estimates rank the\n"
              "  important edges well (eap ROC AUC %.2f) but underestimate large effects: on the top edge\n"
              "  %s, eap gives %.1f and eap-ig %.1f against an exact %.1f, because a first-order estimate\n"
              "  cannot follow the saturating softmax all the way from clean to corrupted.\n",
              r.circuit.n_edges(), 100 * r.circuit_faithfulness, auc, g.edges()[top].name.c_str(), r.eap.edge_scores[top],
              r.eap_ig.edge_scores[top], r.exact.edge_scores[top]);
}

template <class M>
std::size_t induction_half_length(const M& model) {
  return std::min<std::size_t>(16, model.config().n_positions / 2);
}

/// The main job's options: `circuitry [--out DIR] [--model DIR] [--threads N]`.
inline DiscoveryJob main_job_options(const Args& a) {
  DiscoveryJob opt;
  opt.out_dir = a.get("--out", "circuitry-out");
  opt.log = [](const std::string& s) { std::fprintf(stderr, "  ... %s\n", s.c_str()); };
  return opt;
}

/// The main job on a loaded model (`circuitry` with no arguments, or `circuitry [--out DIR] [--model DIR]`).
template <class M>
void main_job_on(const Args& a, const M& model, const std::filesystem::path& model_dir) {
  const auto start = std::chrono::steady_clock::now();
  const DiscoveryJob opt = main_job_options(a);
  using Arch = typename M::architecture;
  const auto& c = model.config();
  std::printf("circuitry main job: finding the induction circuit of a small trained transformer\n");
  std::printf("\nModel %s: %zu layers x %zu heads, d_model %zu, vocabulary %zu, context %zu (%s)\n", Arch::name().c_str(), c.n_layer,
              c.n_head, c.n_embd, c.vocab_size, c.n_positions, model_dir.c_str());
  const std::size_t half = induction_half_length(model);
  const Task task = make_induction_task(c.vocab_size, half, 64, 2024);
  io::OutputSet outputs;  // every file of the job, published together at the end
  outputs.stage_with(opt.out_dir / "induction-task.jsonl", [&](std::ostream& out) { write_task(out, task); });
  std::printf("\nTask: 64 induction examples. Random tokens x_0..x_%zu repeat; the clean sequence stops inside the\n"
              "repeat at a token A, whose successor B in the first half is the answer. The corrupted sequence\n"
              "replaces that earlier B by an unused token C (the wrong answer). A model that has learned\n"
              "induction predicts B on clean input and C on corrupted input.\n",
              half - 1);
  const auto ptask = make_patching_task(model, task);
  const DiscoveryReport r = discover(model, ptask, opt);
  std::vector<std::string> files = stage_discovery_files(r, opt, c.n_embd, outputs);
  print_discovery(model, r, opt);
  const Task trigger = make_induction_task(c.vocab_size, half, 64, 2024, 2, InductionCorruption::Trigger);
  const InductionFindings found = explain_induction(model, ptask, make_patching_task(model, trigger), half);
  compare_with_acdc(model, ptask, r, opt, 0.01, outputs, files);
  planted_auc_table(c.n_layer, c.n_head);
  outputs.commit();
  print_files(files);
  print_summary(r, found);
  // Without Graphviz there is no circuit.svg: say so, and how to get it.
  const bool have_svg = std::find(files.begin(), files.end(), (opt.out_dir / "circuit.svg").string()) != files.end();
  std::printf("\nDone in %.1f s. Read the circuit in %s/%s and the curves in faithfulness.svg and roc.svg.\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), opt.out_dir.c_str(),
              have_svg ? "circuit.svg (or circuit.dot)"
                       : "circuit.dot (for a picture, circuit.svg, install Graphviz: apt-get install graphviz)");
}

/// `circuitry discover --model DIR --task FILE [--out DIR] [--metric M] [--target F] [--steps M]`
inline DiscoveryJob discover_options(const Args& a) {
  a.need({"--model", "--task"});
  require(a.get("--dtype", "float32") == "float32" && a.get("--positions", "last") == "last",
          "discover: runs in float32 on each example's last position; leave out --dtype and --positions");
  DiscoveryJob opt;
  opt.out_dir = a.get("--out", "circuitry-out");
  opt.metric = parse_metric(a.get("--metric", "logit_diff"));
  opt.eap_ig_steps = a.positive("--steps", 5);
  if (a.has("--target")) opt.target_faithfulness = a.number("--target");
  require(opt.target_faithfulness > 0 && opt.target_faithfulness <= 1.5, "discover: --target must be in (0, 1.5], got " +
                                                                           std::to_string(opt.target_faithfulness));
  opt.log = [](const std::string& s) { std::fprintf(stderr, "  ... %s\n", s.c_str()); };
  return opt;
}

template <class M>
void discover_on(const Args& a, const M& model) {
  const DiscoveryJob opt = discover_options(a);
  const Task task = read_cli_task(a.get("--task"), a.get("--model"), model.config().vocab_size, model.config().n_positions);
  const auto ptask = make_patching_task(model, task);
  const DiscoveryReport r = discover(model, ptask, opt);
  io::OutputSet outputs;
  const std::vector<std::string> files = stage_discovery_files(r, opt, model.config().n_embd, outputs);
  outputs.commit();
  print_discovery(model, r, opt);
  print_files(files);
}

}  // namespace circuitry::cli
