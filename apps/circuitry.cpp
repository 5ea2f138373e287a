// `circuitry`: the command line of DESIGN.md section 4, a thin layer over the library.
//   circuitry                      the main job on the shipped induction model
//   circuitry forward | attribute | prune | evaluate | path-patch | discover ...
// Bad input ends with one line on stderr naming the file and the fault, and exit code 1.
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <sstream>
#include <string_view>
#include <iostream>

#include <nlohmann/json.hpp>

#include <circuitry/circuitry.hpp>

#include "cli_args.hpp"
#include "embedded_ground_truth.hpp"
#include "main_job.hpp"
#include "tokenizer_source.hpp"

namespace circuitry::cli {
namespace {

using Json = nlohmann::ordered_json;
using namespace circuitry::io;

constexpr const char* kUsage = R"(circuitry: circuit discovery for transformer language models

usage:
  circuitry [--out DIR]          the main job: find the induction circuit of the shipped model
  circuitry discover   --model DIR --task FILE [--out DIR] [--target F]   the same pipeline on any model
  circuitry forward    --model DIR --task FILE --out FILE [--format json|npy]   npy: the logits in FILE's
                       stem + .logits.npy (numpy.load), FILE without them: for large vocabularies
  circuitry attribute  --model DIR --task FILE --method eap|eap-ig|clean-corrupted|exact [--steps M] --out FILE
                       [--memory-budget MB]   working memory: exact's lanes per forward (default 2048),
                       the gradient methods' examples per pass (default 512)
  circuitry prune      --scores FILE (--top-n N | --threshold T | --greedy N) --out FILE [--dot FILE] [--no-prune]
  circuitry evaluate   --model DIR --task FILE --circuit FILE --out FILE [--ablation resample|zero|mean]
  circuitry evaluate   --model DIR --task FILE --scores FILE --out FILE [--svg FILE]   MIB curve, CPR, CMD
  circuitry roc        --scores FILE --ground-truth FILE [--key edges] --out FILE [--svg FILE]
  circuitry acdc       --model DIR --task FILE (--threshold T | --thresholds T1,T2,...) --out DIR [--ablation resample|zero|mean] [--lanes K]
  circuitry compare    --model DIR --task FILE --ground-truth FILE|NAME [--methods eap,eap-ig,clean-corrupted,exact,acdc] --out DIR
  circuitry planted    --out DIR [--layers L] [--heads H] [--shape chain|fork] [--seed S]   a model with a known circuit
  circuitry tokenize   [--model DIR | --tokenizer DIR] --in FILE --out FILE   JSON Lines {"text": ...} -> the same with "ids"
  circuitry path-patch --model DIR --task FILE (--senders A,B --receivers C,D [--recompute-mlps] | --paths FILE) --out FILE
  circuitry task       ioi|greater-than|docstring|induction --n N [--seed S] [--model DIR] --out FILE   a generated task

Commands that run a model also take --metric logit_diff|prob_diff|logit_diff_max|kl|loss|l2 (default logit_diff;
kl for --paths), --positions last|all (where metrics read the logits: each example's last position, the default,
or every position after the first, as tracr's tasks need), --dtype float32|float64|bfloat16 (default float32;
bfloat16: float32 with the GEMMs on bfloat16 matrix units, AMX or AVX512-BF16 through oneDNN) and --threads N.
A model is a Hugging Face directory (model_type gpt2, gpt_neox, llama, qwen2 or mistral) or a TransformerLens
checkpoint (config.json + model.safetensors, or its shards);
a task is JSON Lines
{"clean": [ids], "corrupted": [ids], "answer": id or [ids], "wrong": id or [ids]}, or the same as
"clean_text", "corrupted_text", "answer_text", "wrong_text" (tokenized with the model's tokenizer).
)";

const std::set<std::string> kModelOptions = {"--model", "--task", "--out", "--metric", "--positions", "--dtype", "--threads"};

std::set<std::string> with_model_options(std::set<std::string> extra) {
  extra.insert(kModelOptions.begin(), kModelOptions.end());
  return extra;
}

/// Throws when `value`, the result's number at `where`, is a NaN or an infinity (JSON has neither).
void require_finite(double value, const std::string& where) {
  if (!std::isfinite(value))  // not require(): its message would be built for every number
    throw Error("the result " + where + " is not finite (" + std::to_string(value) +
                "): the model's numbers overflow or are NaN; check the checkpoint's weights");
}

/// Throws when the result holds a NaN or an infinity (nlohmann would write null), naming the key.
void require_finite(const Json& j, const std::string& where) {
  if (j.is_number_float()) {
    require_finite(j.get<double>(), where);
  } else if (j.is_object()) {
    for (const auto& [key, value] : j.items()) require_finite(value, where.empty() ? key : where + "." + key);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) require_finite(j[i], where + "[" + std::to_string(i) + "]");
  }
}

/// The text of a JSON result, refused when it holds a non-finite number.
std::string result_text(const Json& j) {
  require_finite(j, "");
  return io::json_text(j);
}

/// Writes a command's one JSON result atomically (io/atomic_file.hpp).
void write_json(const std::string& path, const Json& j) { io::write_file_atomically(path, result_text(j)); }

/// Checks the folders of every output a command will write, before it computes anything.
void check_outputs(const Args& a, std::initializer_list<const char*> options) {
  for (const char* option : options)
    if (a.has(option)) io::check_writable(a.get(option));
}

/// Loads --model in the requested dtype and architecture and calls f(model).
template <class F>
void with_model(const Args& a, F&& f) {
  a.need({"--model", "--task", "--out"});
  set_num_threads(a.threads());
  const std::string dtype = a.get("--dtype", "float32");
  require(dtype == "float32" || dtype == "float64" || dtype == "bfloat16",
          "unknown --dtype '" + dtype + "' (choose float32, float64 or bfloat16)");
  // bfloat16: a float32 model whose GEMMs take bfloat16 inputs (core/gemm_precision.hpp).
  const GemmPrecisionScope precision(dtype == "bfloat16" ? GemmPrecision::bfloat16 : GemmPrecision::native);
  auto run = [&]<class T>() {
    auto checkpoint = io::load_model_directory<T>(a.get("--model"));
    with_architecture(checkpoint.config, [&]<class Arch>() {
      const Model<Arch, T> model(checkpoint.config, std::move(checkpoint.weights));
      f(model);
    });
  };
  if (dtype == "float64") run.template operator()<double>();
  else run.template operator()<float>();
}

template <class M>
auto load_task(const Args& a, const M& model) {
  const Task task = read_cli_task(a.get("--task"), a.get("--model"), model.config().vocab_size, model.config().n_positions);
  return make_patching_task(model, task, parse_position_mode(a.get("--positions", "last")));
}

/// `forward --format npy`: the logits file written beside --out (result.json -> result.logits.npy).
std::filesystem::path logits_npy_path(const std::string& out) {
  return std::filesystem::path(out).replace_extension(".logits.npy");
}

void forward(const Args& a) {
  const BuiltinMetric metric{parse_metric(a.get("--metric", "logit_diff"))};
  const std::string format = a.get("--format", "json");
  require(format == "json" || format == "npy", "unknown --format '" + format + "' (choose json or npy)");
  check_outputs(a, {"--out"});
  if (format == "npy") io::check_writable(logits_npy_path(a.get("--out")));
  with_model(a, [&](const auto& model) {
    const auto task = load_task(a, model);
    Arena arena;
    using T = typename std::decay_t<decltype(model)>::scalar;
    Context<T, false> ctx(arena);
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
  });
}

/// Progress on stderr for long runs: a line every few seconds.
std::function<void(std::size_t, std::size_t)> progress_printer(const std::string& what) {
  auto start = std::chrono::steady_clock::now();
  auto last = std::make_shared<double>(0.0);
  return [=](std::size_t done, std::size_t total) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (done == total || s - *last >= 2.0) {
      *last = s;
      std::fprintf(stderr, "%s: %zu/%zu edges, %.1f s\n", what.c_str(), done, total, s);
    }
  };
}

template <class M, class T = typename M::scalar>
Attribution run_method(const M& model, const PatchingTask<T>& task, const BuiltinMetric& metric, const std::string& method,
                       std::size_t steps, std::size_t memory_budget_mb) {
  // memory_budget_mb = 0: the method's default
  auto budget = [&](std::size_t default_bytes) { return memory_budget_mb ? memory_budget_mb << 20 : default_bytes; };
  if (method == "eap") return attribute(model, task, metric, Eap{.memory_budget = budget(kAttributionMemoryBudget)});
  if (method == "eap-ig") return attribute(model, task, metric, EapIg{.steps = steps, .memory_budget = budget(kAttributionMemoryBudget)});
  if (method == "clean-corrupted") return attribute(model, task, metric, CleanCorrupted{.memory_budget = budget(kAttributionMemoryBudget)});
  if (method == "exact") {
    ExactPatching exact;
    exact.progress = progress_printer("exact");
    exact.memory_budget = budget(exact.memory_budget);
    return attribute(model, task, metric, exact);
  }
  throw Error("unknown --method '" + method + "' (choose eap, eap-ig, clean-corrupted or exact)");
}

void attribute_command(const Args& a) {
  const std::string method = a.get("--method");
  require(method == "eap" || method == "eap-ig" || method == "clean-corrupted" || method == "exact",
          "unknown --method '" + method + "' (choose eap, eap-ig, clean-corrupted or exact)");
  const std::size_t steps = a.positive("--steps", 5);
  const std::size_t budget_mb = a.has("--memory-budget") ? a.positive("--memory-budget", 1) : 0;
  const BuiltinMetric metric{parse_metric(a.get("--metric", "logit_diff"))};
  check_outputs(a, {"--out"});
  with_model(a, [&](const auto& model) {
    const auto task = load_task(a, model);
    const Attribution r = run_method(model, task, metric, method, steps, budget_mb);
    ScoresMeta meta{r.method, metric_name(metric.kind), r.clean_metric, r.corrupted_metric};
    if (method == "eap-ig") meta.extra["steps"] = steps;
    meta.extra["d_model"] = model.config().n_embd;  // EAP-IG's circuit cfg needs it (prune)
    write_scores_json(a.get("--out"), model.graph(), r.edge_scores, meta);
  });
}

void prune_command(const Args& a) {
  a.need({"--scores", "--out"});
  check_outputs(a, {"--out", "--dot"});
  const std::string scores_path = a.get("--scores");
  const Scores scores = read_scores_json(scores_path);
  const Graph graph(scores.shape);
  const int modes = int(a.has("--top-n")) + int(a.has("--threshold")) + int(a.has("--greedy"));
  require(modes == 1, "prune: give exactly one of --top-n N, --threshold T or --greedy N");
  auto count = [&](const std::string& key) {
    const long long n = a.integer(key, 0);
    require(n >= 0, "prune: " + key + " must not be negative");
    return static_cast<std::size_t>(n);
  };
  // EAP-IG's circuit cfg carries d_model: from the scores file (circuitry attribute writes it) or --d-model.
  std::size_t d_model = 0;
  if (a.has("--d-model")) {
    d_model = a.positive("--d-model", 0);
  } else {
    const auto& extra = scores.meta.extra;
    require(extra.contains("d_model"), scores_path + ": no \"d_model\" key (circuitry attribute writes one); pass --d-model N");
    require(extra["d_model"].is_number_unsigned() && extra["d_model"].get<std::size_t>() > 0,
            scores_path + ": \"d_model\" must be a positive integer");
    d_model = extra["d_model"].get<std::size_t>();
  }
  Circuit circuit = a.has("--top-n")       ? top_n(graph, scores.values, count("--top-n"))
                    : a.has("--threshold") ? threshold(graph, scores.values, a.number("--threshold"))
                                           : greedy(graph, scores.values, count("--greedy"));
  if (!a.flag("--no-prune")) prune_dead_ends(circuit);  // EAP-IG's apply_topn / apply_greedy prune by default
  // The circuit, its DOT and the SVG rendered from it appear together or not at all.
  io::OutputSet outputs;
  outputs.stage(a.get("--out"), circuit_json_text(circuit, scores.values, d_model));
  std::filesystem::path svg;
  if (a.has("--dot")) {
    outputs.stage(a.get("--dot"), to_dot(circuit, scores.values));
    if (const auto rendered = render_svg(outputs.staged(a.get("--dot")))) {
      svg = std::filesystem::path(a.get("--dot")).replace_extension(".svg");
      outputs.stage(svg, *rendered);
    }
  }
  outputs.commit();
  if (!svg.empty()) std::fprintf(stderr, "wrote %s\n", svg.c_str());
}

void evaluate_command(const Args& a) {
  require(a.has("--circuit") != a.has("--scores"), "evaluate: give either --circuit FILE or --scores FILE (for the MIB curve)");
  const BuiltinMetric metric{parse_metric(a.get("--metric", "logit_diff"))};
  const std::string ablation_name = a.get("--ablation", "resample");
  require(ablation_name == "resample" || ablation_name == "zero" || ablation_name == "mean",
          "unknown --ablation '" + ablation_name + "' (choose resample, zero or mean)");
  const Ablation ablation = ablation_name == "zero" ? Ablation::Zero : ablation_name == "mean" ? Ablation::Mean : Ablation::Resample;
  check_outputs(a, {"--out", "--svg"});
  with_model(a, [&](const auto& model) {
    const auto task = load_task(a, model);
    const Graph graph = model.graph();
    io::OutputSet outputs;  // the result and its plot appear together or not at all
    Json j;
    j["metric"] = metric_name(metric.kind);
    if (a.has("--scores")) {  // the MIB faithfulness curve of the scores' top edges, with CPR and CMD
      const std::vector<double> scores = read_scores_json(a.get("--scores"), graph).values;
      const FaithfulnessCurve curve = faithfulness_curve(model, task, metric, scores);
      j["clean_metric"] = curve.m_full;
      j["corrupted_metric"] = curve.m_empty;
      j["cpr"] = curve.cpr;
      j["cmd"] = curve.cmd;
      Json points = Json::array();
      io::PlotSeries series{"faithfulness", {}, {}, "#1f77b4"};
      for (std::size_t i = 0; i < curve.points.size(); ++i) {
        points.push_back({{"fraction", curve.points[i].fraction}, {"n_edges_in_graph", curve.edges_kept[i]}, {"faithfulness", curve.points[i].value}});
        series.x.push_back(curve.points[i].fraction);
        series.y.push_back(curve.points[i].value);
      }
      j["curve"] = std::move(points);
      if (a.has("--svg")) {
        io::LinePlot plot;
        char title[96];
        std::snprintf(title, sizeof title, "Faithfulness of the top edges (CPR %.3f, CMD %.3f)", curve.cpr, curve.cmd);
        plot.title = title;
        plot.x_label = "fraction of edges";
        plot.y_label = "faithfulness";
        plot.log_x = true;
        plot.series.push_back(series);
        outputs.stage(a.get("--svg"), io::render_line_plot(plot));
      }
    } else {
      const Circuit circuit = read_circuit_json(a.get("--circuit")).on(graph);
      // Edges outside the circuit read the corrupted run (resample), zero, or their mean over the
      // task's corrupted sequences at each position (mean).
      const auto source = ablation_source(model, task, ablation, &task.corrupted);
      const double full = metric_value(metric, task.clean_logits, task.data);
      const double empty = evaluate_circuit(model, task, metric, std::vector<std::uint8_t>(graph.n_edges(), 0), source).metric;
      // The empty and the full circuit are the reference runs themselves (faithfulness exactly 0 and 1).
      const std::size_t n = circuit.n_edges();
      const double m = n == 0 ? empty : n == graph.n_edges() ? full : evaluate_circuit(model, task, metric, circuit.in_graph, source).metric;
      j["ablation"] = ablation_name;
      j["clean_metric"] = full;
      j["corrupted_metric"] = empty;
      j["circuit_metric"] = m;
      j["faithfulness"] = full == empty ? Json(nullptr) : Json(faithfulness(m, empty, full));
      j["n_edges_in_graph"] = circuit.n_edges();
    }
    outputs.stage(a.get("--out"), result_text(j));
    outputs.commit();
  });
}

/// A ground truth by file, or by the name of one that ships inside the executable
/// (data/ground-truth: ioi, greaterthan, docstring, tracr-reverse, tracr-proportion).
std::vector<std::uint8_t> resolve_ground_truth(const Graph& graph, const std::string& value, const std::string& key) {
  namespace gt = embedded_ground_truth;
  struct Shipped {
    const char* name;
    const unsigned char* data;
    std::size_t size;
  };
  const Shipped shipped[] = {{"ioi", gt::ioi, gt::ioi_size},
                             {"greaterthan", gt::greaterthan, gt::greaterthan_size},
                             {"greater-than", gt::greaterthan, gt::greaterthan_size},
                             {"docstring", gt::docstring, gt::docstring_size},
                             {"tracr-reverse", gt::tracr_reverse, gt::tracr_reverse_size},
                             {"tracr-proportion", gt::tracr_proportion, gt::tracr_proportion_size}};
  std::error_code ec;
  if (!std::filesystem::exists(value, ec))
    for (const Shipped& s : shipped)
      if (value == s.name)
        return ground_truth_from_json(graph, io::parse_json(std::string_view(reinterpret_cast<const char*>(s.data), s.size), value),
                                      "ground truth '" + value + "'", key);
  require(std::filesystem::exists(value, ec), "--ground-truth '" + value +
                                                  "' is neither a file nor a shipped ground truth (ioi, greaterthan, "
                                                  "docstring, tracr-reverse, tracr-proportion)");
  return read_ground_truth(graph, value, key);
}

/// ROC of a scores file against a ground-truth edge set (ACDC's evaluation).
void roc_command(const Args& a) {
  a.need({"--scores", "--ground-truth", "--out"});
  check_outputs(a, {"--out", "--svg"});
  const Scores scores = read_scores_json(a.get("--scores"));
  const Graph graph(scores.shape);
  const std::vector<std::uint8_t> truth = resolve_ground_truth(graph, a.get("--ground-truth"), a.get("--key", "edges"));
  const RocCurve curve = roc(graph, scores.values, truth);
  Json j;
  j["method"] = scores.meta.method;
  j["n_edges"] = graph.n_edges();
  j["n_true"] = std::count(truth.begin(), truth.end(), 1);
  j["auc_trapezoid"] = curve.auc_trapezoid;
  j["auc_pessimistic"] = curve.auc_pessimistic;
  j["fpr"] = curve.fpr;
  j["tpr"] = curve.tpr;
  io::OutputSet outputs;  // the result and its plot appear together or not at all
  outputs.stage(a.get("--out"), result_text(j));
  if (a.has("--svg")) {
    io::LinePlot plot;
    char title[96];
    std::snprintf(title, sizeof title, "ROC of %s scores (AUC %.3f)", scores.meta.method.c_str(), curve.auc_trapezoid);
    plot.title = title;
    plot.x_label = "false positive rate";
    plot.y_label = "true positive rate";
    plot.diagonal = true;
    plot.series.push_back({scores.meta.method, curve.fpr, curve.tpr, "#d62728", false, false});
    outputs.stage(a.get("--svg"), io::render_line_plot(plot));
  }
  outputs.commit();
}

std::vector<std::vector<std::string>> read_paths(const std::string& path) {
  const nlohmann::json j = io::read_json_file(path);
  require(j.is_object() && j.contains("paths") && j["paths"].is_array(),
          path + ": expected {\"paths\": [[edge, ...], ...]}");
  std::vector<std::vector<std::string>> paths;
  for (std::size_t i = 0; i < j["paths"].size(); ++i) {
    const auto& p = j["paths"][i];
    require(p.is_array() && !p.empty(), path + ": paths[" + std::to_string(i) + "] must be a non-empty list of edge names");
    std::vector<std::string> edges;
    for (const auto& e : p) {
      require(e.is_string(), path + ": paths[" + std::to_string(i) + "] holds something that is not an edge name");
      edges.push_back(e.get<std::string>());
    }
    paths.push_back(std::move(edges));
  }
  return paths;
}

/// JSON Lines {"text": "..."} in, the same lines with "ids": [...] added out (other keys kept).
void tokenize_command(const Args& a) {
  a.need({"--in", "--out"});
  require(!(a.has("--model") && a.has("--tokenizer")), "tokenize: give --model or --tokenizer, not both");
  if (a.has("--tokenizer"))  // named explicitly, it must hold one (a model directory may fall back)
    require(text::ByteLevelBpeTokenizer::directory_has_tokenizer(a.get("--tokenizer")),
            a.get("--tokenizer") + ": no tokenizer here (expected tokenizer.json, or vocab.json + merges.txt)");
  const text::ByteLevelBpeTokenizer& tokenizer = cli_tokenizer(a.get("--tokenizer", a.get("--model", "")));
  const std::string in_path = a.get("--in"), out_path = a.get("--out");
  check_outputs(a, {"--out"});
  std::istringstream in(io::read_regular_file(in_path));
  std::string lines;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = in_path + " line " + std::to_string(number);
    Json j;
    try {
      j = Json::parse(line);
    } catch (const Json::exception& e) {
      io::throw_json_error(e, where);
    }
    require(j.is_object() && j.contains("text") && j["text"].is_string(), where + ": expected an object with a string \"text\"");
    try {
      j["ids"] = tokenizer.encode(j["text"].get<std::string>());
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    lines += j.dump() + "\n";
  }
  io::write_file_atomically(out_path, lines);
}

void path_patch_command(const Args& a) {
  const bool sets = a.has("--paths");
  require(sets != (a.has("--senders") || a.has("--receivers")), "path-patch: give either --senders and --receivers, or --paths FILE");
  if (!sets) a.need({"--senders", "--receivers"});
  const MetricKind kind = parse_metric(a.get("--metric", sets ? "kl" : "logit_diff"));
  check_outputs(a, {"--out"});
  const auto paths = sets ? read_paths(a.get("--paths")) : std::vector<std::vector<std::string>>{};
  with_model(a, [&](const auto& model) {
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
      j["delta"] = metric_name(delta);
      j["aue"] = r.aue;
      j["ate"] = r.ate;
      j["proportion_explained"] = r.proportion_explained;
    } else {
      const BuiltinMetric metric{kind};
      const auto r = path_patch(model, task, metric, a.list("--senders"), a.list("--receivers"), a.flag("--recompute-mlps"));
      j["metric"] = metric_name(metric.kind);
      j["effect"] = r.effect;
      j["clean_metric"] = r.clean_metric;
      j["patched_metric"] = r.patched_metric;
    }
    write_json(a.get("--out"), j);
  });
}

/// --threshold T, --thresholds T1,T2,... (ascending), or the default log-spaced sweep.
std::vector<double> acdc_thresholds(const Args& a) {
  require(!(a.has("--threshold") && a.has("--thresholds")), "give --threshold T or --thresholds T1,T2,..., not both");
  std::vector<double> t;
  if (a.has("--threshold")) t.push_back(a.number("--threshold"));
  else if (a.has("--thresholds")) t = a.numbers("--thresholds");
  else t = default_acdc_thresholds();
  check_acdc_thresholds(t);
  return t;
}

AcdcOptions acdc_options(const Args& a) {
  AcdcOptions o;
  const std::string ablation = a.get("--ablation", "resample");
  require(ablation == "resample" || ablation == "zero" || ablation == "mean",
          "unknown --ablation '" + ablation + "' (choose resample, zero or mean)");
  o.ablation = ablation == "zero" ? Ablation::Zero : ablation == "mean" ? Ablation::Mean : Ablation::Resample;
  o.lanes = a.positive("--lanes", 8);
  // Progress on stderr: receiver, edges removed so far, distance; a line every two seconds.
  auto start = std::chrono::steady_clock::now();
  auto last = std::make_shared<double>(-10.0);
  o.progress = [=](const AcdcProgress& p) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (p.receiver == p.n_receivers || s - *last >= 2.0) {
      *last = s;
      std::fprintf(stderr, "acdc: receiver %zu/%zu (%s), %zu edges removed, distance %.6g, %.1f s\n", p.receiver, p.n_receivers,
                   p.receiver_name.c_str(), p.removed, p.distance, s);
    }
  };
  return o;
}

std::string ablation_name(Ablation a) { return a == Ablation::Zero ? "zero" : a == Ablation::Mean ? "mean" : "resample"; }

/// circuitry acdc: one circuit per threshold, and the sweep scores (DESIGN.md section 4).
void acdc_command(const Args& a) {
  const std::vector<double> thresholds = acdc_thresholds(a);
  const MetricKind kind = parse_metric(a.get("--metric", "kl"));
  AcdcOptions options = acdc_options(a);
  const std::filesystem::path out = a.get("--out");
  io::create_output_folder(out);
  with_model(a, [&](const auto& model) {
    using M = std::decay_t<decltype(model)>;
    const auto task = load_task(a, model);
    options.mean_reference = &task.corrupted;
    io::OutputSet outputs;  // every circuit and acdc.json, published together
    const Acdc<M, typename M::scalar> acdc_run(model, task, kind, options);
    const Graph& graph = acdc_run.graph();
    const auto start = std::chrono::steady_clock::now();
    const AcdcSweep sweep = acdc_run.sweep(thresholds);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    Json j;
    j["thresholds"] = thresholds;
    j["metric"] = metric_name(kind);
    j["ablation"] = ablation_name(options.ablation);
    j["clean_metric"] = acdc_run.distance().clean_metric;
    j["seconds"] = seconds;
    Json circuits = Json::array();
    for (std::size_t i = 0; i < sweep.circuits.size(); ++i) {
      const AcdcCircuit& c = sweep.circuits[i];
      char file[64];
      std::snprintf(file, sizeof file, "circuit-%02zu.json", i);
      Circuit circuit(graph);
      circuit.in_graph = c.in_graph;
      outputs.stage(out / file, circuit_json_text(circuit, sweep.edge_scores, model.config().n_embd));
      circuits.push_back({{"threshold", c.threshold}, {"n_edges", c.n_edges}, {"distance", c.distance}, {"metric", c.metric},
                          {"runs", c.runs}, {"file", file}});
      std::printf("tau %-10.4g %6zu of %zu edges   distance %.6g\n", c.threshold, c.n_edges, graph.n_edges(), c.distance);
    }
    j["circuits"] = std::move(circuits);
    Json edges = Json::object();
    for (std::size_t e = 0; e < graph.n_edges(); ++e) edges[graph.edges()[e].name] = sweep.edge_scores[e];
    j["edges"] = std::move(edges);
    outputs.stage(out / "acdc.json", result_text(j));
    outputs.commit();
  });
}

/// circuitry compare: every method's ROC against one ground truth (the EAP paper's figure, one task).
void compare_command(const Args& a) {
  a.need({"--ground-truth"});
  ComparisonOptions options;
  if (a.has("--methods")) options.methods = a.list("--methods");
  if (!options.methods.empty()) check_comparison_methods(options.methods);
  options.metric = parse_metric(a.get("--metric", "logit_diff"));
  options.acdc_metric = parse_metric(a.get("--acdc-metric", "kl"));
  options.thresholds = acdc_thresholds(a);
  options.eap_ig_steps = a.positive("--steps", 5);
  options.acdc = acdc_options(a);
  options.acdc.progress = nullptr;
  options.log = [](const std::string& m) { std::fprintf(stderr, "compare: running %s\n", m.c_str()); };
  const std::filesystem::path out = a.get("--out");
  io::create_output_folder(out);
  with_model(a, [&](const auto& model) {
    const auto task = load_task(a, model);
    options.acdc.mean_reference = &task.corrupted;
    const Graph graph = model.graph();
    const std::vector<std::uint8_t> truth = resolve_ground_truth(graph, a.get("--ground-truth"), a.get("--key", "edges"));
    const auto results = compare_methods(model, task, truth, options);
    Json j;
    j["ground_truth"] = a.get("--ground-truth");
    j["n_edges"] = graph.n_edges();
    j["n_true"] = std::count(truth.begin(), truth.end(), 1);
    j["metric"] = metric_name(options.metric);
    j["acdc_metric"] = metric_name(options.acdc_metric);
    Json methods = Json::object();
    io::LinePlot plot;
    plot.title = "ROC against the ground truth (" + a.get("--ground-truth") + ")";
    plot.x_label = "false positive rate";
    plot.y_label = "true positive rate";
    plot.diagonal = true;
    plot.x_min = 0, plot.x_max = 1, plot.y_min = 0, plot.y_max = 1;
    std::printf("%-16s %8s %12s %10s %8s\n", "method", "auc", "pessimistic", "seconds", "edges");
    for (const auto& r : results) {
      Json m = {{"auc", r.auc}, {"auc_pessimistic", r.auc_pessimistic}, {"seconds", r.seconds}, {"edges_scored", r.edges_scored},
                {"fpr", r.fpr}, {"tpr", r.tpr}};
      if (r.acdc) {
        Json points = Json::array();
        for (const auto& c : r.acdc->circuits) points.push_back({{"threshold", c.threshold}, {"n_edges", c.n_edges}});
        m["circuits"] = std::move(points);
      }
      methods[r.method] = std::move(m);
      char label[96];
      std::snprintf(label, sizeof label, "%s (AUC %.3f)", r.method.c_str(), r.auc);
      plot.series.push_back({label, r.fpr, r.tpr, "", false, r.method == "acdc"});
      std::printf("%-16s %8.4f %12.4f %10.3f %8zu\n", r.method.c_str(), r.auc, r.auc_pessimistic, r.seconds, r.edges_scored);
    }
    j["methods"] = std::move(methods);
    io::OutputSet outputs;  // compare.json and roc.svg appear together or not at all
    outputs.stage(out / "compare.json", result_text(j));
    outputs.stage(out / "roc.svg", io::render_line_plot(plot));
    outputs.commit();
    std::fprintf(stderr, "wrote %s and %s\n", (out / "compare.json").c_str(), (out / "roc.svg").c_str());
  });
}

/// circuitry planted: a planted-circuit model (models/planted_circuit.hpp) with its task and
/// ground truth, ready for `compare --ground-truth DIR/ground-truth.json`.
void planted_command(const Args& a) {
  a.need({"--out"});
  PlantedSpec spec;
  spec.n_layers = a.positive("--layers", 2);
  spec.n_heads = a.positive("--heads", 4);
  spec.vocab = a.positive("--vocab", 8);
  spec.n_ctx = a.positive("--context", 8);
  spec.n_examples = a.positive("--examples", 16);
  spec.shape = parse_planted_shape(a.get("--shape", "chain"));
  spec.seed = static_cast<unsigned>(a.integer("--seed", 1));
  const PlantedModel<float> planted = make_planted_model<float>(spec);
  const std::filesystem::path out = a.get("--out");
  io::create_output_folder(out);
  io::save_checkpoint(out, planted.config, planted.weights);
  write_task(out / "task.jsonl", planted.task);
  Json gt;
  gt["name"] = "planted-" + a.get("--shape", "chain");
  gt["model"] = {{"n_layers", spec.n_layers}, {"n_heads", spec.n_heads}, {"attn_only", true}};
  gt["source"] = "circuitry planted (models/planted_circuit.hpp), seed " + std::to_string(spec.seed);
  gt["edges"] = planted.true_edges;
  gt["n_edges"] = planted.true_edges.size();
  write_json((out / "ground-truth.json").string(), gt);
  std::printf("planted %s circuit, %zu layers x %zu heads: %zu true edges of %zu\n", a.get("--shape", "chain").c_str(), spec.n_layers,
              spec.n_heads, planted.true_edges.size(), Graph(AttnOnly::graph_shape(planted.config)).n_edges());
  for (const auto& e : planted.true_edges) std::printf("  %s\n", e.c_str());
}

/// circuitry task ioi|greater-than|docstring|induction: a generated task file whose lines carry
/// the text fields and their ids (text/ioi.hpp, greater_than.hpp, docstring.hpp, induction_text.hpp).
void task_command(const Args& a, const std::string& kind) {
  a.need({"--n", "--out"});
  const std::size_t n = a.positive("--n", 1);
  check_outputs(a, {"--out"});
  const auto seed = static_cast<unsigned>(a.integer("--seed", 1));
  const text::ByteLevelBpeTokenizer& tokenizer = cli_tokenizer(a.get("--model", ""));
  std::vector<text::TextExample> examples;
  if (kind == "ioi") examples = text::make_ioi(n, seed, tokenizer);
  else if (kind == "greater-than") examples = text::make_greater_than(n, seed, tokenizer);
  else if (kind == "docstring") examples = text::make_docstring(n, seed, tokenizer);
  else if (kind == "induction") examples = text::make_induction_text(n, seed, tokenizer);
  else throw Error("task: unknown task '" + kind + "' (choose ioi, greater-than, docstring or induction)");
  text::write_text_task(a.get("--out"), examples, tokenizer);
  const char* metric = kind == "greater-than" ? "prob_diff" : kind == "docstring" ? "logit_diff_max" : "logit_diff";
  std::fprintf(stderr, "wrote %zu %s examples to %s (the task's metric: --metric %s)\n", n, kind.c_str(), a.get("--out").c_str(), metric);
}

int run(int argc, char** argv) {
  const std::string cmd = argc < 2 ? "" : argv[1];
  if (cmd.empty() || cmd.rfind("--", 0) == 0 && cmd != "--help") {
    main_job(Args("circuitry", argc, argv, 1, {"--out", "--model", "--threads"}));
    return 0;
  }
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "forward") forward(Args(cmd, argc, argv, 2, with_model_options({"--format"})));
  else if (cmd == "attribute") attribute_command(Args(cmd, argc, argv, 2, with_model_options({"--method", "--steps", "--memory-budget"})));
  else if (cmd == "prune")
    prune_command(Args(cmd, argc, argv, 2, {"--scores", "--top-n", "--threshold", "--greedy", "--out", "--dot", "--d-model"}, {"--no-prune"}));
  else if (cmd == "evaluate") evaluate_command(Args(cmd, argc, argv, 2, with_model_options({"--circuit", "--scores", "--svg", "--ablation"})));
  else if (cmd == "tokenize") tokenize_command(Args(cmd, argc, argv, 2, {"--model", "--tokenizer", "--in", "--out"}));
  else if (cmd == "roc") roc_command(Args(cmd, argc, argv, 2, {"--scores", "--ground-truth", "--key", "--out", "--svg"}));
  else if (cmd == "discover")
    discover_command(Args(cmd, argc, argv, 2, with_model_options({"--target", "--steps"})));
  else if (cmd == "acdc")
    acdc_command(Args(cmd, argc, argv, 2, with_model_options({"--threshold", "--thresholds", "--ablation", "--lanes"})));
  else if (cmd == "compare")
    compare_command(Args(cmd, argc, argv, 2, with_model_options({"--ground-truth", "--key", "--methods", "--acdc-metric", "--threshold",
                                                                 "--thresholds", "--ablation", "--lanes", "--steps"})));
  else if (cmd == "planted")
    planted_command(Args(cmd, argc, argv, 2, {"--layers", "--heads", "--vocab", "--context", "--examples", "--shape", "--seed", "--out"}));
  else if (cmd == "task") {
    const std::string kind = argc < 3 ? "" : argv[2];
    require(!kind.empty() && kind[0] != '-', "task: name the task first: circuitry task ioi|greater-than|docstring|induction --n N --out FILE");
    task_command(Args(cmd, argc, argv, 3, {"--n", "--seed", "--model", "--out"}), kind);
  }
  else if (cmd == "path-patch")
    path_patch_command(Args(cmd, argc, argv, 2, with_model_options({"--senders", "--receivers", "--paths"}), {"--recompute-mlps"}));
  else throw Error("unknown command '" + cmd + "' (run `circuitry --help` for the list)");
  return 0;
}

}  // namespace
}  // namespace circuitry::cli

int main(int argc, char** argv) {
  if (const auto warning = circuitry::unused_vector_units_warning()) std::fprintf(stderr, "%s\n", warning->c_str());
  try {
    return circuitry::cli::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "circuitry: error: %s\n", e.what());
    return 1;
  }
}
