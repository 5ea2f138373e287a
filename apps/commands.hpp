#pragma once
// Every command of the command line (DESIGN.md section 4) and its options, declared once: the
// parser reads argv against these lists (apps/cli_args.hpp), `circuitry COMMAND --help` is
// generated from them, `circuitry --help` lists the synopses, and the cli test holds the README's
// command list to those synopses.
#include <string>
#include <vector>

#include <circuitry/api/registry.hpp>

#include "cli_args.hpp"

namespace circuitry::cli {

namespace detail {

/// What every command that runs a model takes, `--out` named as the command writes it.
inline std::vector<OptionSpec> model_options(const std::string& out, std::vector<OptionSpec> extra,
                                             const std::string& metric_default = "logit_diff") {
  std::vector<OptionSpec> o = {
      {"--model", "DIR|FILE", "a Hugging Face directory, a TransformerLens checkpoint or a GGUF file (required)"},
      {"--task", "FILE", "the task, JSON Lines of ids or text (required)"},
      {"--out", out, "where the results go (required)"},
      {"--metric", "NAME", api::names_of(api::metrics()) + " (default " + metric_default + ")"},
      {"--positions", "last|all", "where metrics read the logits: each example's last position (default) or every position after the first"},
      {"--dtype", "float32|float64|bfloat16", "the model's arithmetic (default float32; bfloat16: float32 with bfloat16 GEMMs)"},
      {"--threads", "N", "threads, 1..1024 (default: every core)"}};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

inline const std::vector<OptionSpec> kResume = {
    {"--resume", "DIR", "keep a checkpoint in DIR and carry on from the one there"},
    {"--checkpoint-every", "S", "seconds between checkpoints (default 60; 0: after every step)"},
    {"--stop-after", "S", "stop at the first checkpoint after S seconds, with exit status 75"}};

inline std::vector<OptionSpec> join(std::vector<OptionSpec> a, const std::vector<OptionSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace detail

inline const std::vector<CommandSpec>& command_table() {
  using detail::join;
  using detail::model_options;
  static const std::vector<CommandSpec> table = {
      {"", "circuitry                      the main job (see above)",
       "the main job: find the induction circuit of the shipped model",
       {{"--out", "DIR", "where the report goes (default circuitry-out)"},
        {"--model", "DIR", "a GPT-2-layout checkpoint instead of the shipped model"},
        {"--threads", "N", "threads, 1..1024 (default: every core)"}}},
      {"discover", "circuitry discover   --model DIR --task FILE [--out DIR] [--target F]",
       "the main job's pipeline on any model and task",
       model_options("DIR", {{"--target", "F", "the faithfulness the circuit must reach, in (0, 1.5] (default 0.9)"},
                             {"--steps", "M", "EAP-IG's integration steps (default 5)"}})},
      {"forward", "circuitry forward    --model DIR --task FILE --out FILE [--format json|npy]",
       "the clean and corrupted metrics and the last-position logits",
       model_options("FILE", {{"--format", "json|npy", "npy: the logits in FILE's stem + .logits.npy (default json)"}})},
      {"attribute",
       "circuitry attribute  --model DIR --task FILE --method eap|eap-ig|clean-corrupted|gim|atp-star|exact [--steps M] --out FILE [--edges FILE]\n"
       "                     [--resume DIR [--checkpoint-every S] [--stop-after S]]   (exact)\n"
       "                     [--qk-fix on|off] [--grad-drop on|off]   (atp-star)\n"
       "                     [--freeze-norm on|off] [--softmax-temperature T] [--qkv-scales Q,K,V] [--mlp-scales G,U]   (gim)",
       "score every edge",
       model_options("FILE", join({{"--method", "NAME", api::names_of(api::attribution_methods()) + " (required)"},
                                   {"--steps", "M", "EAP-IG's integration steps (default 5)"},
                                   {"--memory-budget", "MB", "working memory: exact's lanes per forward (default 2048), the gradient methods' examples per pass (default 512)"},
                                   {"--edges", "FILE", "exact only: score just these edges (a circuit file, or {\"edges\": [names]})"},
                                   {"--qk-fix", "on|off", "atp-star: recompute the attention pattern exactly for query and key edges (default on)"},
                                   {"--grad-drop", "on|off", "atp-star: average the magnitudes of L estimates, each with one layer's gradient dropped (default on)"},
                                   {"--freeze-norm", "on|off", "gim: hold every norm's scale constant in the backward (default on)"},
                                   {"--softmax-temperature", "T", "gim: the attention softmax's backward at temperature T (default 2; 1: off)"},
                                   {"--qkv-scales", "Q,K,V", "gim: gradient scales of the queries, keys and values (default 0.25,0.25,0.5)"},
                                   {"--mlp-scales", "G,U", "gim: gradient scales of a gated MLP's gate and up projections (default 0.5,0.5)"}},
                                  detail::kResume))},
      {"prune", "circuitry prune      --scores FILE (--top-n N | --threshold T | --greedy N) --out FILE [--dot FILE] [--no-prune]",
       "a circuit from edge scores",
       {{"--scores", "FILE", "edge scores (circuitry attribute's output; required)"},
        {"--top-n", "N", "keep the N edges of largest |score|"},
        {"--threshold", "T", "keep the edges with |score| >= T"},
        {"--greedy", "N", "grow the circuit from the logits, N edges (EAP-IG's greedy)"},
        {"--out", "FILE", "the circuit, in EAP-IG's format (required)"},
        {"--dot", "FILE", "the circuit as Graphviz DOT (and an SVG beside it when dot is installed)"},
        {"--d-model", "N", "d_model for the circuit's cfg, when the scores file has none"},
        {"--no-prune", "", "keep the raw selection: do not remove dead ends"}}},
      {"evaluate",
       "circuitry evaluate   --model DIR --task FILE --circuit FILE --out FILE [--ablation resample|zero|mean]\n"
       "circuitry evaluate   --model DIR --task FILE --scores FILE --out FILE [--svg FILE]   (MIB curve, CPR, CMD)",
       "a circuit's faithfulness, or the faithfulness curve of edge scores",
       model_options("FILE", {{"--circuit", "FILE", "the circuit to evaluate"},
                              {"--scores", "FILE", "edge scores: the faithfulness curve, CPR and CMD"},
                              {"--svg", "FILE", "the curve drawn"},
                              {"--ablation", "KIND", "what patched edges read: " + api::names_of(api::ablations()) + " (default resample)"}})},
      {"roc", "circuitry roc        --scores FILE --ground-truth FILE [--key edges] --out FILE [--svg FILE]",
       "ROC and AUC of edge scores against a ground-truth circuit",
       {{"--scores", "FILE", "edge scores (required)"},
        {"--ground-truth", "FILE|NAME", "a ground-truth circuit file, or a shipped one by name (required)"},
        {"--key", "KEY", "the ground truth's key holding the edges (default edges)"},
        {"--out", "FILE", "the curve and its area (required)"},
        {"--svg", "FILE", "the curve drawn"}}},
      {"path-patch",
       "circuitry path-patch --model DIR --task FILE (--senders A,B --receivers C,D [--recompute-mlps] | --paths FILE) --out FILE",
       "sender -> receiver path patching, or a path set's AUE, ATE and proportion explained",
       model_options("FILE", {{"--senders", "A,B", "upstream nodes whose paths are patched"},
                              {"--receivers", "C,D", "the ports the paths end in"},
                              {"--recompute-mlps", "", "MLPs between senders and receivers are recomputed, not frozen"},
                              {"--paths", "FILE", "a path set to evaluate: its AUE, ATE and proportion explained"}},
                     "logit_diff; kl with --paths")},
      {"acdc",
       "circuitry acdc       --model DIR --task FILE [--threshold T | --thresholds T1,T2,...] --out DIR [--ablation resample|zero|mean] [--lanes K]\n"
       "                     [--edges FILE] [--resume DIR [--checkpoint-every S] [--stop-after S]]",
       "ACDC's circuits at one threshold or a sweep",
       model_options("DIR", join({{"--threshold", "T", "one threshold tau"},
                                  {"--thresholds", "T1,T2,...", "a sweep (default {1,2,5} x 10^-5..10^-1)"},
                                  {"--ablation", "KIND", api::names_of(api::ablations()) + " (default resample)"},
                                  {"--lanes", "K", "candidate edges per batched run (default 8)"},
                                  {"--edges", "FILE", "decide only these edges (a circuit file, or {\"edges\": [names]}); the others are removed from the start"}},
                                 detail::kResume),
                     "kl")},
      {"learn-mask",
       "circuitry learn-mask --model DIR --task FILE (--edges N | --l0 LAMBDA) --out FILE [--log FILE] [--steps S] [--lr LR] [--seed S]\n"
       "                     [--restarts R] [--ablation resample|zero|mean]",
       "a circuit from learned edge masks (Edge Pruning)",
       model_options("FILE", {{"--edges", "N", "the circuit's size: a Lagrangian drives the expected edge count to N, the top N by log_alpha are kept"},
                              {"--l0", "LAMBDA", "the L0 weight instead: the edges with log_alpha > 0 are kept"},
                              {"--steps", "S", "optimisation steps (default 500)"},
                              {"--lr", "LR", "AdamW's learning rate for log_alpha (default 0.1)"},
                              {"--multiplier-lr", "LR", "AdamW's for the Lagrangian's multipliers (default 0.4)"},
                              {"--seed", "S", "the noise's seed (default 1)"},
                              {"--restarts", "R", "runs with seeds S, S+1, ...; the hard circuit with the least F (+ lambda |C| for --l0) wins (default 1; over MPI ranks under mpirun)"},
                              {"--ablation", "KIND", api::names_of(api::ablations()) + " (default resample)"},
                              {"--log", "FILE", "the run's log, JSON (default: --out with .log.json)"}},
                     "kl")},
      {"compare", "circuitry compare    --model DIR --task FILE --ground-truth FILE|NAME [--methods eap,eap-ig,clean-corrupted,exact,acdc] --out DIR",
       "every method's ROC against a ground truth, side by side",
       model_options("DIR", {{"--ground-truth", "FILE|NAME", "a ground-truth circuit file, or a shipped one by name (required)"},
                             {"--key", "KEY", "the ground truth's key holding the edges (default edges)"},
                             {"--methods", "LIST", "the methods compared, of " + api::names_of(api::comparison_methods()) + " (default: all; exact up to 5000 edges)"},
                             {"--memory-budget", "MB", "working memory of the attribution methods and exact patching (default: each one's)"},
                             {"--acdc-metric", "NAME", "ACDC's metric (default kl)"},
                             {"--threshold", "T", "ACDC at one threshold"},
                             {"--thresholds", "T1,T2,...", "ACDC's sweep"},
                             {"--ablation", "KIND", api::names_of(api::ablations()) + " (default resample)"},
                             {"--lanes", "K", "ACDC's candidate edges per batched run (default 8)"},
                             {"--steps", "M", "EAP-IG's integration steps (default 5)"},
                             {"--mask-edges", "N", "learn-mask's target edge count (default: a twentieth of the edges)"},
                             {"--mask-steps", "S", "learn-mask's optimisation steps (default 500)"}})},
      {"planted",
       "circuitry planted    --out DIR [--shape chain|fork|induction] [--layers L] [--heads H] [--vocab V] [--context C] [--examples N] [--seed S]",
       "a model with a known circuit, its task and its ground truth",
       {{"--out", "DIR", "where the model, task.jsonl and ground-truth.json go (required)"},
        {"--shape", "chain|fork|induction", "the planted circuit (default chain)"},
        {"--layers", "L", "layers (default 2)"},
        {"--heads", "H", "heads per layer (default 4)"},
        {"--vocab", "V", "vocabulary size (default 8)"},
        {"--context", "C", "context length (default 8)"},
        {"--examples", "N", "examples in the task (default 16)"},
        {"--seed", "S", "random seed (default 1)"}}},
      {"task", "circuitry task       ioi|greater-than|docstring|induction --n N [--seed S] [--model DIR] --out FILE",
       "a generated task in text, for the model's tokenizer",
       {{"--n", "N", "examples (default 1)"},
        {"--seed", "S", "random seed (default 1)"},
        {"--model", "DIR|FILE", "the model whose tokenizer picks single-token words (default: GPT-2's)"},
        {"--out", "FILE", "the task, JSON Lines (required)"}}},
      {"tokenize",
       "circuitry tokenize   [--model DIR | --tokenizer DIR] --in FILE --out FILE   JSON Lines {\"text\": ...} -> {\"text\": ..., \"ids\": [...]}",
       "token ids of text",
       {{"--model", "DIR|FILE", "the model whose tokenizer is used"},
        {"--tokenizer", "DIR", "a tokenizer directory (default: GPT-2's)"},
        {"--in", "FILE", "JSON Lines {\"text\": ...} (required)"},
        {"--out", "FILE", "the same lines with \"ids\" (required)"}}},
  };
  return table;
}

/// The command named `name`, or nullptr.
inline const CommandSpec* find_command(const std::string& name) {
  for (const CommandSpec& c : command_table())
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace circuitry::cli
