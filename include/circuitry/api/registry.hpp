#pragma once
// The names a user chooses among, in one place for the command line, the Python package and
// their help: attribution methods and ACDC, metrics, ablations, position modes, task generators
// and the architectures a checkpoint can have. Each entry says what it is, its options with
// their defaults and what it needs. The name -> value mappings themselves stay beside the values
// (parse_metric in task/metrics.hpp, parse_ablation in patching/edge_patching.hpp, ...);
// tests/test_api.cpp holds these lists to them.
#include <algorithm>
#include <string>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/models/architectures.hpp"

namespace circuitry::api {

struct OptionInfo {
  std::string name;           // as Python spells it (the command line: --name, '_' as '-')
  std::string default_value;  // as text; "" when there is none
  std::string help;
};

struct Choice {
  std::string name;
  std::string summary;
  std::vector<OptionInfo> options;
  std::string needs;  // what it asks of the model or the task ("" when nothing special)
};

using Choices = std::vector<Choice>;

/// "a, b or c": the names of a list, for help texts and errors.
inline std::string names_of(const Choices& choices) {
  std::string s;
  for (std::size_t i = 0; i < choices.size(); ++i) s += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i].name;
  return s;
}

/// The entry named `name`; otherwise one error naming `what` (the option as the caller's user
/// wrote it: "--method", "method") and the choices.
inline const Choice& find_choice(const Choices& choices, const std::string& name, const std::string& what) {
  for (const Choice& c : choices)
    if (c.name == name) return c;
  throw Error("unknown " + what + " '" + name + "' (choose " + names_of(choices) + ")");
}

/// The attribution methods (patching/attribution_by_name.hpp), ACDC (circuits/acdc.hpp), then
/// learned edge masks (circuits/learned_mask.hpp).
inline const Choices& methods() {
  static const OptionInfo budget{"memory_budget", "512", "working memory in MiB: examples per pass"};
  static const Choices list = {
      {"eap", "edge attribution patching: (out_u(x') - out_u(x)) . dM/d in_p from one clean backward (Syed et al. 2023)",
       {budget}, "a metric whose clean-run gradient is not zero (kl and l2 score every edge 0)"},
      {"eap-ig", "EAP with the gradient averaged along the straight line from the corrupted to the clean input embedding (Hanna et al. 2024)",
       {{"steps", "5", "integration steps"}, budget}, ""},
      {"clean-corrupted", "EAP with the mean of the clean-run and corrupted-run gradients", {budget}, ""},
      {"gim", "EAP with GIM's modified backward: frozen norm scales, a tempered attention softmax, scaled q/k/v and gate/up gradients (Edin et al. 2025)",
       {{"freeze_norm", "on", "hold every norm's scale constant in the backward"},
        {"softmax_temperature", "2", "the attention softmax's backward at this temperature (1: off)"},
        {"qkv_scales", "0.25,0.25,0.5", "gradient scales of the queries, keys and values"},
        {"mlp_scales", "0.5,0.5", "gradient scales of a gated MLP's gate and up projections"}, budget},
       ""},
      {"atp-star", "AtP* (Kramar et al. 2024): EAP with the attention pattern recomputed exactly for query and key edges (QK fix) and GradDrop",
       {{"qk_fix", "on", "recompute the pattern for edges into q and k ports"},
        {"grad_drop", "on", "mean magnitude of L estimates, each with one layer's gradient dropped (scores >= 0)"}, budget},
       "GradDrop: L clean backward passes (L layers)"},
      {"exact", "the exact effect of patching each edge alone: one patched run per edge",
       {{"memory_budget", "2048", "working memory in MiB: lanes per forward"},
        {"edges", "all", "score only these edges (the others score 0)"}},
       "one patched forward per edge: minutes to hours on large models (resumable from a checkpoint)"},
      {"acdc", "ACDC (Conmy et al. 2023): remove edges whose removal moves the metric less than a threshold, from the logits back",
       {{"thresholds", "1e-5 .. 0.5", "tau, one circuit each"}, {"metric", "kl", "the distance to the clean run"},
        {"ablation", "resample", "what removed edges read"}, {"lanes", "8", "candidate edges per batched run"},
        {"edges", "all", "decide only these edges; the others are removed from the start"}},
       "one patched forward per candidate edge and threshold"},
      {"learn-mask", "Edge Pruning (Bhaskar et al. 2024): a hard-concrete mask per edge, learned with AdamW against KL + an L0 penalty",
       {{"edges", "", "the circuit's size N (a Lagrangian drives E[L0] to N; the top N by log_alpha); or"},
        {"l0", "", "the L0 weight (the edges with log_alpha > 0)"}, {"steps", "500", "optimisation steps"},
        {"lr", "0.1", "AdamW's learning rate for log_alpha"}, {"multiplier_lr", "0.4", "AdamW's for the Lagrangian's multipliers"},
        {"seed", "1", "the noise's seed"}, {"metric", "kl", "the faithfulness loss"}, {"ablation", "resample", "what masked edges read"}},
       "a forward and backward on the tape per step"},
  };
  return list;
}

/// methods() without the ones named.
inline Choices methods_except(const std::vector<std::string>& names) {
  Choices list;
  for (const Choice& c : methods())
    if (std::find(names.begin(), names.end(), c.name) == names.end()) list.push_back(c);
  return list;
}
/// The attribution methods alone (what `attribute` runs).
inline const Choices& attribution_methods() {
  static const Choices list = methods_except({"acdc", "learn-mask"});
  return list;
}
/// What `compare` runs: every method.
inline const Choices& comparison_methods() { return methods(); }

/// Metrics (task/metrics.hpp; DESIGN.md section 2).
inline const Choices& metrics() {
  static const Choices list = {
      {"logit_diff", "mean logit of the answers minus mean logit of the wrong tokens (IOI)", {}, "answer and wrong tokens"},
      {"prob_diff", "probability of the answers minus that of the wrong tokens (Greater-Than)", {}, "answer and wrong tokens"},
      {"logit_diff_max", "mean logit of the answers minus the largest wrong logit (docstring)", {}, "answer and wrong tokens"},
      {"kl", "KL(p_clean || p_run) over the vocabulary", {}, ""},
      {"loss", "-log of the answers' probability", {}, "answer tokens"},
      {"l2", "mean squared difference of the logits to the clean run's (ACDC's tracr metric)", {}, ""},
  };
  return list;
}

/// What a patched edge reads instead of its clean value (patching/edge_patching.hpp).
inline const Choices& ablations() {
  static const Choices list = {
      {"resample", "the corrupted run's output", {}, ""},
      {"zero", "zero", {}, ""},
      {"mean", "the mean of the output over the task's corrupted sequences, per position", {}, ""},
  };
  return list;
}

/// Where metrics read the logits (task/patching_task.hpp).
inline const Choices& position_modes() {
  static const Choices list = {
      {"last", "each example's last position", {}, ""},
      {"all", "every position after the first (tracr's tasks)", {}, ""},
  };
  return list;
}

/// Task generators (text/ioi.hpp, greater_than.hpp, docstring.hpp, induction_text.hpp);
/// api/task_generators.hpp runs them. `needs` is the metric the task is made for.
inline const Choices& task_generators() {
  static const Choices list = {
      {"ioi", "indirect object identification: \"When Mary and John went to the store, John gave a drink to\" -> Mary",
       {{"n", "", "examples"}, {"seed", "1", "random seed"}}, "logit_diff"},
      {"greater-than", "\"The war lasted from the year 1732 to the year 17\" -> a year above 32",
       {{"n", "", "examples"}, {"seed", "1", "random seed"}}, "prob_diff"},
      {"docstring", "the next parameter name of a Python docstring", {{"n", "", "examples"}, {"seed", "1", "random seed"}},
       "logit_diff_max"},
      {"induction", "a repeated random sequence: predict the token that followed the current one last time",
       {{"n", "", "examples"}, {"seed", "1", "random seed"}}, "logit_diff"},
  };
  return list;
}

/// The metric a generated task is made for.
inline std::string task_metric(const std::string& generator) {
  return find_choice(task_generators(), generator, "task").needs;
}

namespace detail {
template <class... Archs>
Choices architecture_choices(ArchitectureList<Archs...>) {
  return {Choice{Archs::name(), "", {}, ""}...};
}
}  // namespace detail

/// The architectures circuitry runs (models/architectures.hpp), each by its components.
inline const Choices& architectures() {
  static const Choices list = detail::architecture_choices(RegisteredArchitectures{});
  return list;
}

/// The files a model can come from, and the architectures each names (io/model_directory.hpp).
inline const Choices& model_formats() {
  static const Choices list = {
      {"huggingface", "a Hugging Face directory: config.json, model.safetensors (or shards) and its tokenizer", {},
       "model_type gpt2, gpt_neox, llama, qwen2, qwen3, mistral, gemma2 or gemma3_text"},
      {"transformer-lens", "a TransformerLens checkpoint: config.json (its HookedTransformerConfig) and model.safetensors", {},
       "GPT-2-shaped, attention-only, NeoX and Llama-family configs"},
      {"gguf", "a llama.cpp GGUF file (F32, F16, BF16, Q8_0, Q4_0/1, Q5_0/1, Q2_K..Q6_K), its tokenizer inside", {},
       "general.architecture llama, qwen2, qwen3, gemma2, gemma3 or gpt2"},
  };
  return list;
}

}  // namespace circuitry::api
