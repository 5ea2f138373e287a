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
#include "cli_common.hpp"
#include "commands.hpp"
#include "embedded_model.hpp"
#include "graphviz.hpp"
#include "main_job.hpp"
#include "model_command_bodies.hpp"
#include "model_commands.hpp"
#include "processes.hpp"
#include "tokenizer_source.hpp"
#include "version.hpp"

namespace circuitry::cli {
namespace {


/// What the commands share, after the usage lines of `circuitry --help`.
constexpr const char* kSharedNotes = R"(
Long runs (attribute --method exact, acdc) stop and resume: --resume DIR keeps a checkpoint in DIR (every
--checkpoint-every seconds, default 60) and carries on from the one there, writing the bytes an unbroken run
writes; --stop-after S stops at the first checkpoint after S seconds with exit status 75 (run it again to go on).
Commands that run a model also take --metric logit_diff|prob_diff|logit_diff_max|kl|loss|l2 (default logit_diff;
kl for --paths), --positions last|all (where metrics read the logits: each example's last position, the default,
or every position after the first, as tracr's tasks need), --dtype float32|float64|bfloat16 (default float32;
bfloat16: float32 with the GEMMs on bfloat16 matrix units, AMX or AVX512-BF16 through oneDNN) and --threads N.
A model is a Hugging Face directory (model_type gpt2, gpt_neox, llama, qwen2, qwen3, mistral, gemma2 or gemma3_text), a TransformerLens
checkpoint (config.json + model.safetensors, or its shards), or a llama.cpp GGUF file (--model FILE.gguf: llama,
qwen2, qwen3, gemma2, gemma3 or gpt2; F32, F16, BF16, Q8_0, Q4_0/1, Q5_0/1, Q2_K..Q6_K; its tokenizer comes from the file);
a task is JSON Lines
{"clean": [ids], "corrupted": [ids], "answer": id or [ids], "wrong": id or [ids]}, or the same as
"clean_text", "corrupted_text", "answer_text", "wrong_text" (tokenized with the model's tokenizer).
)";

/// `circuitry --help`: the version, every command's usage lines (apps/commands.hpp), what they share.
std::string top_level_help() {
  std::string s = "circuitry " CIRCUITRY_VERSION ": circuit discovery for transformer language models\n\nusage:\n";
  for (const CommandSpec& c : command_table()) {
    std::string line;
    for (char ch : c.synopsis + "\n") {
      line += ch;
      if (ch == '\n') s += "  " + line, line.clear();
    }
  }
  return s + "\n`circuitry COMMAND --help` lists a command's options with their defaults.\n" + kSharedNotes;
}

/// Loads --model in the requested dtype, picks its architecture and runs the command on it
/// (apps/model_commands.hpp: the model commands are compiled per scalar type, elsewhere).
void run_on_model(ModelCommand command, const Args& a) {
  a.need({"--model", "--task", "--out"});
  set_num_threads(a.threads());
  const std::string dtype = a.get("--dtype", "float32");
  require(dtype == "float32" || dtype == "float64" || dtype == "bfloat16",
          "unknown --dtype '" + dtype + "' (choose float32, float64 or bfloat16)");
  // bfloat16: a float32 model whose GEMMs take bfloat16 inputs (backends/cpu/gemm_precision.hpp).
  const GemmPrecisionScope precision(dtype == "bfloat16" ? GemmPrecision::bfloat16 : GemmPrecision::native);
  const ModelRun run{command, a, a.get("--model")};
  if (dtype == "float64") run_model_command<double>(run);
  else run_model_command<float>(run);
}

/// Writes the embedded model into dir (config.json, model.safetensors) and returns dir.
inline std::filesystem::path unpack_embedded_model(const std::filesystem::path& dir) {
  io::create_output_folder(dir);
  auto write = [&](const char* name, const unsigned char* data, std::size_t size) {
    io::write_file_atomically(dir / name, std::string_view(reinterpret_cast<const char*>(data), size));
  };
  write("config.json", embedded::config_json, embedded::config_json_size);
  write("model.safetensors", embedded::model_safetensors, embedded::model_safetensors_size);
  return dir;
}

/// `circuitry` with no arguments, or `circuitry [--out DIR] [--model DIR]`: the main job
/// (apps/main_job.hpp) on the embedded model, or on a GPT-2-layout checkpoint.
void main_job(const Args& a) {
  set_num_threads(a.threads());
  const DiscoveryJob opt = main_job_options(a);
  io::create_output_folder(opt.out_dir);  // before any computing: a bad --out costs nothing
  const std::filesystem::path model_dir = a.has("--model") ? std::filesystem::path(a.get("--model")) : unpack_embedded_model(opt.out_dir / "model");
  run_model_command<float>({ModelCommand::main_job, a, model_dir});
}

/// `circuitry discover`: the main job's pipeline on any model and task, in float32.
void discover_command(const Args& a) {
  set_num_threads(a.threads());
  const DiscoveryJob opt = discover_options(a);
  io::create_output_folder(opt.out_dir);  // before any computing: a bad --out costs nothing
  run_model_command<float>({ModelCommand::discover, a, a.get("--model")});
}

void forward(const Args& a) {
  const ForwardOptions o = parse_forward(a);
  check_outputs(a, {"--out"});
  if (o.format == "npy") io::check_writable(logits_npy_path(a.get("--out")));
  run_on_model(ModelCommand::forward, a);
}



void attribute_command(const Args& a) {
  parse_attribute(a);
  check_outputs(a, {"--out"});
  run_on_model(ModelCommand::attribute, a);
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
  const std::size_t chosen = circuit.n_edges();
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
  const std::string dead_ends = a.flag("--no-prune") ? "dead ends kept (--no-prune)"
                                : std::to_string(chosen - circuit.n_edges()) + " removed as dead ends (--no-prune keeps them)";
  std::fprintf(stderr, "prune: %zu edges chosen, %s: %zu of %zu edges in %s\n", chosen, dead_ends.c_str(), circuit.n_edges(),
               graph.n_edges(), a.get("--out").c_str());
  if (!svg.empty()) std::fprintf(stderr, "wrote %s\n", svg.c_str());
}

void evaluate_command(const Args& a) {
  parse_evaluate(a);
  if (a.has("--circuit")) Processes::require_one("evaluate --circuit");
  check_outputs(a, {"--out", "--svg"});
  run_on_model(ModelCommand::evaluate, a);
}


/// ROC of a scores file against a ground-truth edge set (ACDC's evaluation).
void roc_command(const Args& a) {
  a.need({"--scores", "--ground-truth", "--out"});
  check_outputs(a, {"--out", "--svg"});
  const Scores scores = read_scores_json(a.get("--scores"));
  const Graph graph(scores.shape);
  const std::vector<std::uint8_t> truth = resolve_ground_truth(graph, a.get("--ground-truth"), a.get("--key", "edges"));
  const RocCurve curve = roc(graph, scores.values, truth);
  io::OutputSet outputs;  // the result and its plot appear together or not at all
  outputs.stage(a.get("--out"), result_text(api::roc_json(curve, scores.meta.method, graph.n_edges(), truth)));
  if (a.has("--svg")) outputs.stage(a.get("--svg"), io::render_line_plot(api::roc_plot(curve, scores.meta.method)));
  outputs.commit();
}


/// JSON Lines {"text": "..."} in, the same lines with "ids": [...] added out (other keys kept).
void tokenize_command(const Args& a) {
  a.need({"--in", "--out"});
  require(!(a.has("--model") && a.has("--tokenizer")), "tokenize: give --model or --tokenizer, not both");
  if (a.has("--tokenizer"))  // named explicitly, it must hold one (a model directory may fall back)
    require(text::has_tokenizer(a.get("--tokenizer")),
            a.get("--tokenizer") + ": no tokenizer here (expected tokenizer.json, or vocab.json + merges.txt, or a .gguf file)");
  const text::Tokenizer& tokenizer = cli_tokenizer(a.get("--tokenizer", a.get("--model", "")));
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
  const PathPatchOptions o = parse_path_patch(a);
  check_outputs(a, {"--out"});
  if (o.sets) read_paths(a.get("--paths"));  // a bad paths file fails before the model loads
  run_on_model(ModelCommand::path_patch, a);
}


/// circuitry acdc: one circuit per threshold, and the sweep scores (DESIGN.md section 4).
void acdc_command(const Args& a) {
  acdc_thresholds(a);
  parse_metric(a.get("--metric", "kl"));
  acdc_options(a);
  RunCheckpoint{a};  // checks the checkpoint options
  io::create_output_folder(a.get("--out"));
  run_on_model(ModelCommand::acdc, a);
}

/// circuitry learn-mask: a circuit from learned edge masks, and the run's log.
void learn_mask_command(const Args& a) {
  parse_learn_mask(a);
  io::check_writable(learn_mask_log_path(a));
  check_outputs(a, {"--out"});
  run_on_model(ModelCommand::learn_mask, a);
}

/// circuitry compare: every method's ROC against one ground truth (the EAP paper's figure, one task).
void compare_command(const Args& a) {
  parse_compare(a);
  io::create_output_folder(a.get("--out"));
  run_on_model(ModelCommand::compare, a);
}

/// circuitry planted: a planted-circuit model (circuits/planted_circuit.hpp) with its task and
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
  io::write_file_atomically_with(out / "task.jsonl", [&](std::ostream& out_file) { write_task(out_file, planted.task); });
  Json gt;
  gt["name"] = "planted-" + a.get("--shape", "chain");
  gt["model"] = {{"n_layers", spec.n_layers}, {"n_heads", spec.n_heads}, {"attn_only", true}};
  gt["source"] = "circuitry planted (circuits/planted_circuit.hpp), seed " + std::to_string(spec.seed);
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
  const text::Tokenizer& tokenizer = cli_tokenizer(a.get("--model", ""));
  const api::GeneratedTask task = api::generate_task(kind, n, seed, tokenizer);
  const std::vector<std::string>& skipped = task.skipped;  // list words that are not one token in this vocabulary
  if (!skipped.empty()) {
    std::string words;
    for (std::size_t i = 0; i < skipped.size() && i < 12; ++i) words += (i ? ", " : "") + nlohmann::json(skipped[i]).dump();
    std::fprintf(stderr, "task %s: skipped %zu words of the generator's lists that are not one token in this vocabulary (%s%s)\n",
                 kind.c_str(), skipped.size(), words.c_str(), skipped.size() > 12 ? ", ..." : "");
  }
  io::write_file_atomically(a.get("--out"), task.lines);
  const std::string metric = api::task_metric(kind);
  std::fprintf(stderr, "wrote %zu %s examples to %s (the task's metric: --metric %s)\n", n, kind.c_str(), a.get("--out").c_str(),
               metric.c_str());
}

int run(int argc, char** argv) {
  const std::string cmd = argc < 2 ? "" : argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(top_level_help().c_str(), stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("circuitry %s\n", CIRCUITRY_VERSION);
    return 0;
  }
  if (cmd.empty() || cmd.rfind("--", 0) == 0) {
    Processes::require_one("the main job");
    main_job(Args(*find_command(""), argc, argv, 1));
    return 0;
  }
  const CommandSpec* spec = find_command(cmd);
  require(spec != nullptr, "unknown command '" + cmd + "' (run `circuitry --help` for the list)");
  if (cmd != "acdc" && cmd != "attribute" && cmd != "evaluate" && cmd != "compare" && cmd != "learn-mask")
    Processes::require_one("circuitry " + cmd);
  if (cmd == "task") {
    const std::string kind = argc < 3 ? "" : argv[2];
    if (kind == "-h" || kind == "--help") Args(*spec, argc, argv, 2);  // prints the help
    require(!kind.empty() && kind[0] != '-', "task: name the task first: circuitry task ioi|greater-than|docstring|induction --n N --out FILE");
    task_command(Args(*spec, argc, argv, 3), kind);
    return 0;
  }
  using Command = void (*)(const Args&);
  static const std::map<std::string, Command> commands = {
      {"discover", discover_command}, {"forward", forward},   {"attribute", attribute_command}, {"prune", prune_command},
      {"evaluate", evaluate_command}, {"roc", roc_command},   {"path-patch", path_patch_command}, {"acdc", acdc_command},
      {"learn-mask", learn_mask_command},
      {"compare", compare_command},   {"planted", planted_command}, {"tokenize", tokenize_command}};
  commands.at(cmd)(Args(*spec, argc, argv, 2));
  return 0;
}

}  // namespace
}  // namespace circuitry::cli

int main(int argc, char** argv) {
  using circuitry::cli::Processes;
  Processes::start(argc, argv);
  if (const auto warning = circuitry::unused_vector_units_warning(); warning && Processes::is_writer())
    std::fprintf(stderr, "%s\n", warning->c_str());
  int status = 0;
  try {
    status = circuitry::cli::run(argc, argv);
  } catch (const circuitry::cli::HelpShown&) {
    status = 0;
  } catch (const circuitry::cli::StoppedAtCheckpoint& e) {
    std::fprintf(stderr, "circuitry: %s\n", e.what());
    status = circuitry::cli::kExitStoppedAtCheckpoint;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "circuitry: error: %s\n", e.what());
    Processes::abort_others(1);
    return 1;
  }
  Processes::finish();
  return status;
}
