#pragma once
// The commands that run a model, as templates over the model type. apps/model_commands.cpp
// compiles them once per architecture (see apps/model_commands.hpp); apps/circuitry.cpp parses
// and checks each command's options with the same parse_* functions before it loads the model,
// so bad options fail before any loading or computing.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <circuitry/circuitry.hpp>

#include "cli_common.hpp"
#include "processes.hpp"
#include "run_checkpoint.hpp"
#include "task_source.hpp"

namespace circuitry::cli {

template <class M>
auto load_task(const Args& a, const M& model) {
  const Task task = read_cli_task(a.get("--task"), a.get("--model"), model.config().vocab_size, model.config().n_positions);
  return make_patching_task(model, task, parse_position_mode(a.get("--positions", "last")));
}

/// `forward --format npy`: the logits file written beside --out (result.json -> result.logits.npy).
inline std::filesystem::path logits_npy_path(const std::string& out) {
  return std::filesystem::path(out).replace_extension(".logits.npy");
}

struct ForwardOptions {
  BuiltinMetric metric;
  std::string format;  // json | npy
};
inline ForwardOptions parse_forward(const Args& a) {
  ForwardOptions o{BuiltinMetric{parse_metric(a.get("--metric", "logit_diff"))}, a.get("--format", "json")};
  require(o.format == "json" || o.format == "npy", "unknown --format '" + o.format + "' (choose json or npy)");
  return o;
}

template <class M>
void forward_on(const Args& a, const M& model) {
  const auto [metric, format] = parse_forward(a);
  const auto task = load_task(a, model);
  using T = typename M::scalar;
  ArenaFor<M> arena;
  ContextFor<M> ctx(arena);
  Json j;
  j["metric"] = metric_name(metric.kind);
  j["clean_metric"] = metric_value(metric, task.clean_logits, task.data);
  j["corrupted_metric"] = double(metric(ctx, model.forward(ctx, task.corrupted), task.data).value[0]);
  // Each example's last-position logits (DESIGN.md section 4), also with --positions all,
  // where the run returns every position after the first.
  const std::size_t V = model.config().n_outputs(), rows = task.clean.batch;
  std::vector<T> last_logits;  // [rows, V]
  last_logits.reserve(rows * V);
  for (std::size_t i : task.clean.last_readout_indices())
    last_logits.insert(last_logits.end(), task.clean_logits.begin() + static_cast<std::ptrdiff_t>(i * V),
                       task.clean_logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * V));
  const T* logits = last_logits.data();
  require_finite(j, "");
  for (std::size_t i = 0; i < rows * V; ++i)
    if (!std::isfinite(logits[i]))
      require_finite(double(logits[i]), "logits[" + std::to_string(i / V) + "][" + std::to_string(i % V) + "]");
  io::OutputSet outputs;
  if (format == "npy") {  // the logits as a [rows, vocab] array in their own dtype (numpy.load reads it)
    const auto npy = logits_npy_path(a.get("--out"));
    outputs.stage_with(npy, [&](std::ostream& out) { io::write_npy(out, logits, {rows, V}); });
    j["logits_npy"] = npy.filename().string();
    j["logits_shape"] = {rows, V};
    outputs.stage(a.get("--out"), result_text(j));
  } else {
    // The logits (batch x vocabulary, 1.6M numbers for 32 GPT-2 rows) are written straight
    // from the numbers, one row per line, each in its own type's shortest exact form.
    outputs.stage(a.get("--out"), io::json_text_with_member(j, "logits", rows * V * 16, [&](std::string& out) {
                    io::append_json_matrix(out, logits, rows, V);
                  }));
  }
  outputs.commit();
}

/// checkpoint: --resume's, for exact patching (the other methods are one pass). request: the
/// method and its options (exact's are filled in here).
template <class M, class T = typename M::scalar>
Attribution run_method(const M& model, const PatchingTask<T>& task, const BuiltinMetric& metric, AttributionByName request,
                       const std::vector<std::uint8_t>& exact_edges, RunCheckpoint& checkpoint) {
  ExactCheckpoint saved;
  if (request.method == "exact") {
    ExactPatching& exact = request.exact;
    if (request.memory_budget) exact.memory_budget = request.memory_budget;
    exact.edges = exact_edges;  // empty: every edge
    const std::size_t n_edges = model.graph().n_edges();
    if (const auto state = checkpoint.load({{"n_edges", n_edges}, {"clean_logits", logits_fingerprint(task.clean_logits)},
                                            {"lanes_per_forward", exact_lanes(model, task.clean, exact)}})) {
      saved = exact_state_from_json(*state, n_edges, checkpoint.path().string());
      exact.resume = &saved;
    }
    if (checkpoint.active()) exact.checkpoint = [&](const ExactCheckpoint& c) { checkpoint.offer([&] { return exact_state_json(c); }); };
    if (Processes::is_writer()) exact.progress = progress_printer("exact", saved.edges_done);
  }
  request.distribution = Processes::distribution();  // under mpirun: exact's groups of lanes, the gradient methods' parts
  return attribute_by_name(model, task, metric, request);
}

/// `on` or `off`.
inline bool on_off(const Args& a, const std::string& key, bool fallback) {
  if (!a.has(key)) return fallback;
  const std::string v = a.get(key);
  require(v == "on" || v == "off", key + " takes on or off, got '" + v + "'");
  return v == "on";
}

/// The options of gim and atp-star (api::methods() lists them), each refused with another method.
inline void parse_method_options(const Args& a, AttributionByName& request) {
  const std::string& method = request.method;
  auto only_for = [&](const char* key, const char* owner) {
    require(!a.has(key) || method == owner, "attribute: " + std::string(key) + " applies to --method " + owner + ", not " + method);
  };
  for (const char* key : {"--qk-fix", "--grad-drop"}) only_for(key, AtpStar::name);
  for (const char* key : {"--freeze-norm", "--softmax-temperature", "--qkv-scales", "--mlp-scales"}) only_for(key, Gim::name);
  request.atp_star.qk_fix = on_off(a, "--qk-fix", true);
  request.atp_star.grad_drop = on_off(a, "--grad-drop", true);
  Gim& gim = request.gim;
  gim.freeze_norm = on_off(a, "--freeze-norm", true);
  if (a.has("--softmax-temperature")) gim.softmax_temperature = a.number("--softmax-temperature");
  if (a.has("--qkv-scales")) {
    const std::vector<double> s = a.numbers("--qkv-scales");
    require(s.size() == 3, "--qkv-scales takes three numbers Q,K,V (the gradient scales of the queries, keys and values)");
    gim.q_scale = s[0], gim.k_scale = s[1], gim.v_scale = s[2];
  }
  if (a.has("--mlp-scales")) {
    const std::vector<double> s = a.numbers("--mlp-scales");
    require(s.size() == 2, "--mlp-scales takes two numbers G,U (the gradient scales of a gated MLP's gate and up projections)");
    gim.gate_scale = s[0], gim.up_scale = s[1];
  }
  if (method == Gim::name) gim.gradient_rules();  // checks the values
}

struct AttributeOptions {
  AttributionByName request;  // the method and its options; memory_budget 0: the method's default
  BuiltinMetric metric;
};
inline AttributeOptions parse_attribute(const Args& a) {
  AttributeOptions o{{}, BuiltinMetric{parse_metric(a.get("--metric", "logit_diff"))}};
  AttributionByName& r = o.request;
  r.method = a.get("--method"), r.steps = a.positive("--steps", 5);
  r.memory_budget = a.has("--memory-budget") ? std::size_t(a.positive("--memory-budget", 1)) << 20 : 0;
  const auto& methods = attribution_method_names();
  require(std::find(methods.begin(), methods.end(), r.method) != methods.end(),
          "unknown --method '" + r.method + "' (choose " + api::names_of(api::attribution_methods()) + ")");
  parse_method_options(a, r);
  const std::string& method = r.method;
  require(!a.has("--edges") || method == "exact",
          "attribute: --edges selects the edges of --method exact; " + method + " scores every edge in one pass");
  for (const char* option : kCheckpointOptions)
    require(!a.has(option) || method == "exact",
            "attribute: " + std::string(option) + " applies to --method exact; " + method + " is one pass, nothing to resume");
  RunCheckpoint{a};  // checks the checkpoint options
  return o;
}

/// `attribute --method exact --edges FILE`: the edges to score, from a circuit (EAP-IG's format:
/// the edges in_graph) or an edge list `{"edges": [names]}` (the ground-truth format).
inline std::vector<std::uint8_t> read_edge_selection(const Graph& graph, const std::string& path) {
  const nlohmann::json j = io::read_json_file(path);
  if (j.is_object() && j.contains("edges") && j["edges"].is_object()) return read_circuit_json(path).on(graph).in_graph;
  return ground_truth_from_json(graph, j, path, "edges");
}

template <class M>
void attribute_on(const Args& a, const M& model) {
  const auto [request, metric] = parse_attribute(a);
  const std::vector<std::uint8_t> selected = a.has("--edges") ? read_edge_selection(model.graph(), a.get("--edges")) : std::vector<std::uint8_t>{};
  const auto task = load_task(a, model);
  RunCheckpoint checkpoint(a);
  const Attribution r = run_method(model, task, metric, request, selected, checkpoint);
  ScoresMeta meta{r.method, metric_name(metric.kind), r.clean_metric, r.corrupted_metric};
  const std::string& method = request.method;
  if (method == "eap-ig") meta.extra["steps"] = request.steps;
  if (method == AtpStar::name) meta.extra["qk_fix"] = request.atp_star.qk_fix, meta.extra["grad_drop"] = request.atp_star.grad_drop;
  if (method == Gim::name) {
    const Gim& g = request.gim;
    meta.extra["freeze_norm"] = g.freeze_norm, meta.extra["softmax_temperature"] = g.softmax_temperature;
    meta.extra["qkv_scales"] = {g.q_scale, g.k_scale, g.v_scale}, meta.extra["mlp_scales"] = {g.gate_scale, g.up_scale};
  }
  if (!selected.empty())  // the edges left out score 0
    meta.extra["edges_scored"] = std::count(selected.begin(), selected.end(), std::uint8_t{1});
  meta.extra["d_model"] = model.config().n_embd;  // EAP-IG's circuit cfg needs it (prune)
  if (Processes::is_writer()) write_scores_json(a.get("--out"), model.graph(), r.edge_scores, meta);
  checkpoint.finish();
}

struct EvaluateOptions {
  BuiltinMetric metric;
  Ablation ablation;
};
inline EvaluateOptions parse_evaluate(const Args& a) {
  require(a.has("--circuit") != a.has("--scores"), "evaluate: give either --circuit FILE or --scores FILE (for the MIB curve)");
  require(!(a.has("--scores") && a.has("--ablation")),
          "evaluate: --ablation applies to --circuit; the MIB curve of --scores patches the edges it leaves out with the corrupted run");
  return {BuiltinMetric{parse_metric(a.get("--metric", "logit_diff"))}, parse_ablation(a)};
}

template <class M>
void evaluate_on(const Args& a, const M& model) {
  const auto [metric, ablation] = parse_evaluate(a);
  const auto task = load_task(a, model);
  const Graph graph = model.graph();
  io::OutputSet outputs;  // the result and its plot appear together or not at all
  Json j;
  if (a.has("--scores")) {  // the MIB faithfulness curve of the scores' top edges, with CPR and CMD
    const std::vector<double> scores = read_scores_json(a.get("--scores"), graph).values;
    // under mpirun: the curve's circuits over the ranks
    const FaithfulnessCurve curve = faithfulness_curve(model, task, metric, scores, Processes::distribution());
    j = api::curve_json(curve, metric_name(metric.kind));
    if (a.has("--svg")) outputs.stage(a.get("--svg"), io::render_line_plot(api::curve_plot(curve)));
  } else {
    const Circuit circuit = read_circuit_json(a.get("--circuit")).on(graph);
    j = api::evaluate_circuit_against_references(model, task, metric.kind, ablation, circuit.in_graph).to_json();
  }
  outputs.stage(a.get("--out"), result_text(j));
  if (Processes::is_writer()) outputs.commit();
}

struct PathPatchOptions {
  bool sets;  // --paths FILE rather than --senders / --receivers
  MetricKind kind;
};
inline PathPatchOptions parse_path_patch(const Args& a) {
  const bool sets = a.has("--paths");
  require(sets != (a.has("--senders") || a.has("--receivers")), "path-patch: give either --senders and --receivers, or --paths FILE");
  if (!sets) a.need({"--senders", "--receivers"});
  return {sets, parse_metric(a.get("--metric", sets ? "kl" : "logit_diff"))};
}

template <class M>
void path_patch_on(const Args& a, const M& model) {
  const auto [sets, kind] = parse_path_patch(a);
  const auto paths = sets ? read_paths(a.get("--paths")) : std::vector<std::vector<std::string>>{};
  const auto task = load_task(a, model);
  Json j;
  if (sets) {
    const MetricKind delta = kind;
    PathSetResult r;
    try {
      r = evaluate_path_set(model, task, paths, delta);
    } catch (const Error& e) {
      throw Error(a.get("--paths") + ": " + e.what());
    }
    j = api::path_set_json(r, metric_name(delta));
  } else {
    const BuiltinMetric metric{kind};
    const auto r = path_patch(model, task, metric, a.list("--senders"), a.list("--receivers"), a.flag("--recompute-mlps"));
    j = api::path_patch_json(r, metric_name(metric.kind));
  }
  write_json(a.get("--out"), j);
}

template <class M>
void acdc_on(const Args& a, const M& model) {
  const std::vector<double> thresholds = acdc_thresholds(a);
  const MetricKind kind = parse_metric(a.get("--metric", "kl"));
  AcdcOptions options = acdc_options(a);
  if (a.has("--edges")) options.start = read_edge_selection(model.graph(), a.get("--edges"));
  const std::filesystem::path out = a.get("--out");
  const auto task = load_task(a, model);
  options.mean_reference = &task.corrupted;
  options.distribution = Processes::distribution();  // under mpirun: the sweep's passes over the ranks
  if (!Processes::is_writer()) options.progress = nullptr;
  RunCheckpoint checkpoint(a);
  const std::size_t n_edges = model.graph().n_edges();
  AcdcCheckpoint saved;
  if (const auto state = checkpoint.load({{"n_edges", n_edges}, {"clean_logits", logits_fingerprint(task.clean_logits)}})) {
    saved = acdc_state_from_json(*state, n_edges, checkpoint.path().string());
    options.resume = &saved;
  }
  if (checkpoint.active())
    options.checkpoint = [&](const std::vector<AcdcCircuit>& finished, const AcdcPassState& current) {
      checkpoint.offer([&] { return acdc_state_json(finished, current); });
    };
  io::OutputSet outputs;  // every circuit and acdc.json, published together
  const Acdc<M, typename M::scalar> acdc_run(model, task, kind, options);
  const Graph& graph = acdc_run.graph();
  const auto start = std::chrono::steady_clock::now();
  const AcdcSweep sweep = acdc_run.sweep(thresholds);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<std::string> files;
  for (std::size_t i = 0; i < sweep.circuits.size(); ++i) {
    const AcdcCircuit& c = sweep.circuits[i];
    char file[64];
    std::snprintf(file, sizeof file, "circuit-%02zu.json", i);
    Circuit circuit(graph);
    circuit.in_graph = c.in_graph;
    outputs.stage(out / file, circuit_json_text(circuit, sweep.edge_scores, model.config().n_embd));
    files.push_back(file);
    std::printf("tau %-10.4g %6zu of %zu edges   distance %.6g\n", c.threshold, c.n_edges, graph.n_edges(), c.distance);
  }
  const Json j = api::acdc_json(graph, sweep, thresholds, metric_name(kind), ablation_name(options.ablation),
                                acdc_run.distance().clean_metric, seconds, files);
  outputs.stage(out / "acdc.json", result_text(j));
  if (Processes::is_writer()) outputs.commit();
  checkpoint.finish();
}

/// learn-mask's options; its target is checked against the graph once the model is loaded.
inline LearnMaskOptions parse_learn_mask(const Args& a) {
  LearnMaskOptions o;
  require(a.has("--edges") != a.has("--l0"), "learn-mask: give either --edges N (the circuit's size) or --l0 LAMBDA (the L0 weight)");
  if (a.has("--edges")) o.target_edges = a.positive("--edges", 1);
  if (a.has("--l0")) o.l0 = a.number("--l0");
  o.steps = a.positive("--steps", 500);
  if (a.has("--lr")) o.lr = a.number("--lr");
  if (a.has("--multiplier-lr")) o.multiplier_lr = a.number("--multiplier-lr");
  const long long seed = a.integer("--seed", 1);
  require(seed >= 0, "learn-mask: --seed must be a non-negative integer, got " + std::to_string(seed));
  o.seed = static_cast<std::uint64_t>(seed);
  o.restarts = a.positive("--restarts", 1);
  o.metric = parse_metric(a.get("--metric", "kl"));
  o.ablation = parse_ablation(a);
  check_learn_mask_options(o, std::numeric_limits<std::size_t>::max());
  return o;
}
inline std::filesystem::path learn_mask_log_path(const Args& a) {
  return a.has("--log") ? std::filesystem::path(a.get("--log")) : std::filesystem::path(a.get("--out")).replace_extension(".log.json");
}

template <class M>
void learn_mask_on(const Args& a, const M& model) {
  LearnMaskOptions o = parse_learn_mask(a);
  const auto task = load_task(a, model);
  o.mean_reference = &task.corrupted;
  o.progress_every = std::max<std::size_t>(1, o.steps / 20);
  o.distribution = Processes::distribution();  // under mpirun: the restarts over the ranks
  if (Processes::is_writer())
    o.progress = [](const LearnMaskProgress& p) {
      char restart[48] = "";
      if (p.restarts > 1) std::snprintf(restart, sizeof restart, "restart %zu/%zu  ", p.restart + 1, p.restarts);
      std::fprintf(stderr, "learn-mask: %sstep %zu/%zu  loss %.6g  expected edges %.1f  %.1f s%s\n", restart, p.step, p.steps,
                   p.loss, p.expected_edges, p.seconds, time_left(p.seconds, p.step, p.steps).c_str());
    };
  const LearnedMask r = learn_mask(model, task, o);
  const Graph graph = model.graph();
  Circuit circuit(graph);
  circuit.in_graph = r.in_graph;
  io::OutputSet outputs;  // the circuit and its log appear together or not at all
  outputs.stage(a.get("--out"), circuit_json_text(circuit, learned_mask_scores(r), model.config().n_embd));
  outputs.stage(learn_mask_log_path(a), result_text(api::learn_mask_json(r, o, graph.n_edges())));
  if (!Processes::is_writer()) return;
  outputs.commit();
  std::fprintf(stderr, "learn-mask: %zu of %zu edges in %s (seed %llu; F of the circuit %.6g)\n", circuit.n_edges(), graph.n_edges(),
               a.get("--out").c_str(), static_cast<unsigned long long>(r.seed), r.circuit_faithfulness);
}

inline ComparisonOptions parse_compare(const Args& a) {
  a.need({"--ground-truth"});
  ComparisonOptions options;
  if (a.has("--methods")) options.methods = a.list("--methods");
  if (!options.methods.empty()) check_comparison_methods(options.methods);
  options.metric = parse_metric(a.get("--metric", "logit_diff"));
  options.acdc_metric = parse_metric(a.get("--acdc-metric", "kl"));
  options.thresholds = acdc_thresholds(a);
  options.eap_ig_steps = a.positive("--steps", 5);
  options.memory_budget = a.has("--memory-budget") ? a.positive("--memory-budget", 1) << 20 : 0;
  options.acdc = acdc_options(a);
  options.acdc.progress = nullptr;
  if (a.has("--mask-edges")) options.learn_mask.target_edges = a.positive("--mask-edges", 1);
  options.learn_mask.steps = a.positive("--mask-steps", 500);
  options.log = [](const std::string& m) { std::fprintf(stderr, "compare: running %s\n", m.c_str()); };
  return options;
}

template <class M>
void compare_on(const Args& a, const M& model) {
  ComparisonOptions options = parse_compare(a);
  const std::filesystem::path out = a.get("--out");
  const auto task = load_task(a, model);
  options.acdc.mean_reference = &task.corrupted;
  options.distribution = Processes::distribution();  // under mpirun: the methods over the ranks
  if (!Processes::is_writer()) options.log = nullptr;
  const Graph graph = model.graph();
  const std::vector<std::uint8_t> truth = resolve_ground_truth(graph, a.get("--ground-truth"), a.get("--key", "edges"));
  const auto results = compare_methods(model, task, truth, options);
  std::printf("%-16s %8s %12s %10s %8s\n", "method", "auc", "pessimistic", "seconds", "edges");
  for (const auto& r : results)
    std::printf("%-16s %8.4f %12.4f %10.3f %8zu\n", r.method.c_str(), r.auc, r.auc_pessimistic, r.seconds, r.edges_scored);
  const Json j = api::comparison_json(results, a.get("--ground-truth"), graph.n_edges(), truth, options);
  const io::LinePlot plot = api::comparison_plot(results, a.get("--ground-truth"));
  io::OutputSet outputs;  // compare.json and roc.svg appear together or not at all
  outputs.stage(out / "compare.json", result_text(j));
  outputs.stage(out / "roc.svg", io::render_line_plot(plot));
  if (!Processes::is_writer()) return;
  outputs.commit();
  std::fprintf(stderr, "wrote %s and %s\n", (out / "compare.json").c_str(), (out / "roc.svg").c_str());
}

}  // namespace circuitry::cli
