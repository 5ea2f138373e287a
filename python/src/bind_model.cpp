// Models and the commands that run one: attribute, evaluate, the faithfulness curve, ACDC, path
// patching, path sets, the method comparison, and recorded activations and gradients. Each runs
// without the GIL; the result comes back as plain values and NumPy arrays (python/circuitry wraps them).
#include <string>
#include <utility>
#include <vector>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <circuitry/backends/cpu/gemm_precision.hpp>
#include <circuitry/core/parallel.hpp>
#include <circuitry/text/load_tokenizer.hpp>

#include "bindings.hpp"
#include "model_handle.hpp"
#include "json_objects.hpp"
#include "numpy_arrays.hpp"
#include "run_control.hpp"

namespace circuitry::python {

namespace {

/// A loaded model and, when its file or directory has one, its tokenizer.
struct LoadedModel {
  std::shared_ptr<const ModelHandle> handle;
  std::shared_ptr<text::Tokenizer> tokenizer;  // null: none of its own
  GemmPrecision precision = GemmPrecision::native;  // bfloat16: a float32 model whose GEMMs take bfloat16 inputs
};

LoadedModel load(const std::string& path, const std::string& dtype) {
  require(dtype == "float32" || dtype == "float64" || dtype == "bfloat16",
          "unknown dtype '" + dtype + "' (choose float32, float64 or bfloat16)");
  LoadedModel m;
  if (dtype == "bfloat16") {
    m.precision = GemmPrecision::bfloat16;
    const GemmPrecisionScope available(m.precision);  // where it cannot run: the CLI's Error, before loading
  }
  {
    nb::gil_scoped_release release;
    m.handle = dtype == "float64" ? load_model_double(path) : load_model_float(path);  // bfloat16: float32 weights
    if (text::has_tokenizer(path)) m.tokenizer = std::shared_ptr<text::Tokenizer>(text::load_tokenizer(path));
  }
  return m;
}

nb::dict config_dict(const ModelConfig& c) {
  nb::dict d;
  d["n_layers"] = c.n_layer, d["n_heads"] = c.n_head, d["d_model"] = c.n_embd, d["d_head"] = c.d_head();
  d["n_ctx"] = c.n_positions, d["d_vocab"] = c.vocab_size, d["d_vocab_out"] = c.n_outputs(), d["d_mlp"] = c.n_inner;
  d["n_key_value_heads"] = c.kv_heads(), d["attn_only"] = c.attn_only, d["normalization_type"] = c.normalization;
  d["attention_dir"] = c.attention_dir, d["act_fn"] = c.act_fn, d["positional_embedding_type"] = c.positional;
  d["gated_mlp"] = c.gated_mlp, d["parallel_attn_mlp"] = c.parallel_attn_mlp, d["eps"] = c.layer_norm_epsilon;
  d["tie_word_embeddings"] = c.tie_word_embeddings, d["qk_norm"] = c.qk_norm;
  if (c.positional == "rotary") d["rotary_dim"] = c.rotary_dims(), d["rotary_base"] = c.rotary_base;
  return d;
}

RunSpec run_spec(const Task& task, const std::string& metric, const std::string& positions) {
  return {&task, parse_metric(metric), parse_position_mode(positions)};
}

/// Runs `work` on model `m` without the GIL, with Ctrl-C checked before it starts, under the
/// model's GEMM precision (a process-wide setting, for the run's duration, as the CLI's --dtype).
template <class Work>
auto without_gil(const LoadedModel& m, Work&& work) {
  check_interrupt();
  nb::gil_scoped_release release;
  const GemmPrecisionScope precision(m.precision);
  return work();
}

/// gim's and atp-star's options (the CLI's --qk-fix, --softmax-temperature, ... by their Python names).
void apply_method_options(AttributionByName& request, const nb::dict& options) {
  for (const auto& [key, value] : options) {
    const std::string name = nb::cast<std::string>(key);
    auto scales = [&](std::size_t n) {
      const std::vector<double> v = nb::cast<std::vector<double>>(value);
      require(v.size() == n, name + " takes " + std::to_string(n) + " numbers, got " + std::to_string(v.size()));
      return v;
    };
    if (name == "qk_fix") request.atp_star.qk_fix = nb::cast<bool>(value);
    else if (name == "grad_drop") request.atp_star.grad_drop = nb::cast<bool>(value);
    else if (name == "freeze_norm") request.gim.freeze_norm = nb::cast<bool>(value);
    else if (name == "softmax_temperature") request.gim.softmax_temperature = nb::cast<double>(value);
    else if (name == "qkv_scales") {
      const std::vector<double> v = scales(3);
      request.gim.q_scale = v[0], request.gim.k_scale = v[1], request.gim.v_scale = v[2];
    } else if (name == "mlp_scales") {
      const std::vector<double> v = scales(2);
      request.gim.gate_scale = v[0], request.gim.up_scale = v[1];
    } else {
      throw Error("unknown option '" + name + "' of method " + request.method);
    }
  }
  if (request.method == Gim::name) request.gim.gradient_rules();  // checks the values
}

nb::dict attribute(const LoadedModel& m, const Task& task, const std::string& method, const std::string& metric,
                   const std::string& positions, std::size_t steps, std::size_t memory_budget_mb,
                   std::optional<InputVector<std::uint8_t>> edges, const nb::object& progress, const nb::dict& method_options) {
  const RunSpec run = run_spec(task, metric, positions);
  require(steps > 0, "steps must be positive");
  AttributionByName request;
  request.method = method, request.steps = steps, request.memory_budget = memory_budget_mb << 20;  // 0: the method's default
  check_attribution_method(method);
  apply_method_options(request, method_options);
  request.exact.progress = python_progress(progress);
  if (edges) {
    require(method == "exact", "edges selects the edges of method exact; " + method + " scores every edge in one pass");
    request.exact.edges = from_numpy(*edges, m.handle->graph().n_edges(), "edges");
  }
  Attribution r = without_gil(m, [&] { return m.handle->attribute(run, request); });
  nb::dict d;
  d["method"] = r.method, d["clean_metric"] = r.clean_metric, d["corrupted_metric"] = r.corrupted_metric;
  d["scores"] = to_numpy(std::move(r.edge_scores));
  d["node_scores"] = to_numpy(std::move(r.node_scores));
  return d;
}

nb::dict evaluate(const LoadedModel& m, const Task& task, const std::string& metric, const std::string& positions,
                  const std::string& ablation, const InputVector<std::uint8_t>& in_graph) {
  const RunSpec run = run_spec(task, metric, positions);
  const Ablation kind = parse_ablation(ablation);
  const std::vector<std::uint8_t> flags = from_numpy(in_graph, m.handle->graph().n_edges(), "in_graph");
  const api::CircuitEvaluation r = without_gil(m, [&] { return m.handle->evaluate(run, kind, flags); });
  return result_dict(r.to_json());
}

nb::dict faithfulness_curve(const LoadedModel& m, const Task& task, const std::string& metric, const std::string& positions,
                            const InputVector<double>& scores_in) {
  const RunSpec run = run_spec(task, metric, positions);
  const std::vector<double> scores = from_numpy(scores_in, m.handle->graph().n_edges(), "scores");
  const FaithfulnessCurve c = without_gil(m, [&] { return m.handle->faithfulness_curve(run, scores); });
  return result_dict(api::curve_json(c, metric));
}

/// ACDC's progress as (receivers done, receivers of every pass): a pass begins where the
/// receiver count starts again.
std::function<void(const AcdcProgress&)> acdc_progress(const nb::object& progress, std::size_t passes) {
  auto report = python_progress(progress);
  return [report, passes, pass = std::size_t{0}, last = std::size_t{0}](const AcdcProgress& p) mutable {
    if (pass == 0 || p.receiver <= last) ++pass;
    last = p.receiver;
    report((pass - 1) * p.n_receivers + p.receiver, passes * p.n_receivers);
  };
}

nb::dict acdc(const LoadedModel& m, const Task& task, const std::string& metric, const std::string& positions,
              std::vector<double> thresholds, const std::string& ablation, std::size_t lanes,
              std::optional<InputVector<std::uint8_t>> edges, const nb::object& progress) {
  const RunSpec run = run_spec(task, metric, positions);
  if (thresholds.empty()) thresholds = default_acdc_thresholds();
  check_acdc_thresholds(thresholds);
  require(lanes > 0, "lanes must be positive");
  AcdcSpec spec{thresholds, {}};
  spec.options.ablation = parse_ablation(ablation);
  spec.options.lanes = lanes;
  if (edges) spec.options.start = from_numpy(*edges, m.handle->graph().n_edges(), "edges");
  spec.options.progress = acdc_progress(progress, thresholds.size());
  AcdcOutcome r = without_gil(m, [&] { return m.handle->acdc(run, spec); });
  nb::dict d;
  d["thresholds"] = thresholds, d["clean_metric"] = r.clean_metric;
  nb::list circuits;
  for (AcdcCircuit& c : r.sweep.circuits) {
    nb::dict cd;
    cd["threshold"] = c.threshold, cd["n_edges"] = c.n_edges, cd["distance"] = c.distance, cd["metric"] = c.metric, cd["runs"] = c.runs;
    cd["in_graph"] = to_numpy(std::move(c.in_graph));
    circuits.append(cd);
  }
  d["circuits"] = circuits;
  d["scores"] = to_numpy(std::move(r.sweep.edge_scores));
  return d;
}

/// learn-mask: the log (the CLI's), the scores (alpha), the final log_alpha and the hard circuit's flags.
nb::dict learn_mask(const LoadedModel& m, const Task& task, const std::string& metric, const std::string& positions, std::size_t edges,
                    double l0, std::size_t steps, double lr, double multiplier_lr, std::uint64_t seed, std::size_t restarts,
                    const std::string& ablation, const nb::object& progress) {
  RunSpec run = run_spec(task, metric, positions);
  LearnMaskOptions o;
  o.target_edges = edges, o.l0 = l0, o.steps = steps, o.lr = lr, o.multiplier_lr = multiplier_lr, o.seed = seed, o.restarts = restarts;
  o.metric = run.metric, o.ablation = parse_ablation(ablation);
  check_learn_mask_options(o, m.handle->graph().n_edges());
  auto report = python_progress(progress);
  o.progress_every = 1;
  o.progress = [report, steps, restarts](const LearnMaskProgress& p) { report(p.restart * steps + p.step, restarts * steps); };
  LearnedMask r = without_gil(m, [&] { return m.handle->learn_mask(run, o); });
  nb::dict d = result_dict(api::learn_mask_json(r, o, m.handle->graph().n_edges()));
  d["scores"] = to_numpy(learned_mask_scores(r));
  d["log_alpha"] = to_numpy(std::move(r.log_alpha));
  d["in_graph"] = to_numpy(std::move(r.in_graph));
  return d;
}

nb::dict path_patch(const LoadedModel& m, const Task& task, const std::string& metric, const std::string& positions,
                    const std::vector<std::string>& senders, const std::vector<std::string>& receivers, bool recompute_mlps) {
  const RunSpec run = run_spec(task, metric, positions);
  const PathPatchResult r = without_gil(m, [&] { return m.handle->path_patch(run, senders, receivers, recompute_mlps); });
  return result_dict(api::path_patch_json(r, metric));
}

nb::dict path_set(const LoadedModel& m, const Task& task, const std::string& delta, const std::string& positions,
                  const std::vector<std::vector<std::string>>& paths) {
  const RunSpec run = run_spec(task, delta, positions);
  const PathSetResult r = without_gil(m, [&] { return m.handle->path_set(run, paths); });
  return result_dict(api::path_set_json(r, delta));
}

nb::list compare(const LoadedModel& m, const Task& task, const InputVector<std::uint8_t>& truth_in, std::vector<std::string> methods,
                 const std::string& metric, const std::string& acdc_metric, std::vector<double> thresholds, std::size_t steps,
                 const std::string& ablation, std::size_t lanes, std::size_t memory_budget_mb, const std::string& positions,
                 std::size_t mask_edges, std::size_t mask_steps) {
  const RunSpec run = run_spec(task, metric, positions);
  const std::vector<std::uint8_t> truth = from_numpy(truth_in, m.handle->graph().n_edges(), "truth");
  ComparisonOptions o;
  o.methods = std::move(methods);
  if (!o.methods.empty()) check_comparison_methods(o.methods);
  o.metric = run.metric, o.acdc_metric = parse_metric(acdc_metric);
  o.thresholds = thresholds.empty() ? default_acdc_thresholds() : std::move(thresholds);
  check_acdc_thresholds(o.thresholds);
  o.eap_ig_steps = steps;
  o.memory_budget = memory_budget_mb << 20;  // 0: each method's default
  o.acdc.ablation = parse_ablation(ablation);
  o.acdc.lanes = lanes;
  o.acdc.progress = acdc_progress(nb::none(), o.thresholds.size());  // no report: Ctrl-C is checked after each receiver
  o.learn_mask.target_edges = mask_edges, o.learn_mask.steps = mask_steps;
  require(mask_steps > 0, "mask_steps must be positive");
  o.learn_mask.progress_every = 1;
  o.learn_mask.progress = [check = python_progress(nb::none())](const LearnMaskProgress&) { check(0, 0); };  // Ctrl-C after each step
  std::vector<MethodRoc> results = without_gil(m, [&] { return m.handle->compare(run, truth, o); });
  nb::list l;
  for (MethodRoc& r : results) {
    nb::dict d = result_dict(api::method_roc_json(r));
    d["method"] = r.method;
    d["scores"] = to_numpy(std::move(r.edge_scores));
    l.append(d);
  }
  return l;
}

template <class T>
nb::dict arrays_dict(NamedArrays<T>& a) {
  nb::dict d;
  for (auto& [name, values] : a.values) d[name.c_str()] = to_numpy(std::move(values), a.shapes[name]);
  return d;
}

/// (logits, activations, gradients) of one recorded run, in the model's dtype.
template <class T>
nb::tuple recording_tuple(Recording<T>&& r, bool with_gradients) {
  const std::size_t rows = r.rows, width = rows ? r.logits.size() / rows : 0;
  nb::object gradients = with_gradients ? nb::object(arrays_dict(r.gradients)) : nb::none();
  return nb::make_tuple(to_numpy(std::move(r.logits), {rows, width}), arrays_dict(r.activations), gradients);
}

nb::tuple record(const LoadedModel& m, const std::vector<std::vector<int>>& sequences, const std::vector<std::string>& names,
                 const Task* task, const std::string& metric, const std::string& positions) {
  std::optional<RunSpec> run;
  if (task) run = run_spec(*task, metric, positions);
  const RunSpec* gradients = run ? &*run : nullptr;
  if (m.handle->is_float64())
    return recording_tuple(without_gil(m, [&] { return m.handle->record_double(sequences, names, gradients); }), gradients);
  return recording_tuple(without_gil(m, [&] { return m.handle->record_float(sequences, names, gradients); }), gradients);
}

}  // namespace

void bind_model(nb::module_& m) {
  nb::class_<LoadedModel>(m, "Model", "A loaded model (any architecture circuitry reads) and its tokenizer, if it has one.")
      .def_prop_ro("config", [](const LoadedModel& lm) { return config_dict(lm.handle->config()); })
      .def_prop_ro("graph", [](const LoadedModel& lm) { return lm.handle->graph(); })
      .def_prop_ro("dtype", [](const LoadedModel& lm) {
        return lm.handle->is_float64() ? "float64" : lm.precision == GemmPrecision::bfloat16 ? "bfloat16" : "float32";
      })
      .def_prop_ro("tokenizer", [](const LoadedModel& lm) { return lm.tokenizer; }, "Its own tokenizer, or None.");
  m.def("load_model", &load, nb::arg("path"), nb::arg("dtype"));
  m.def("attribute", &attribute, nb::arg("model"), nb::arg("task"), nb::arg("method"), nb::arg("metric"), nb::arg("positions"),
        nb::arg("steps"), nb::arg("memory_budget_mb"), nb::arg("edges").none(), nb::arg("progress").none(), nb::arg("method_options"));
  m.def("evaluate", &evaluate, nb::arg("model"), nb::arg("task"), nb::arg("metric"), nb::arg("positions"), nb::arg("ablation"),
        nb::arg("in_graph"));
  m.def("faithfulness_curve", &faithfulness_curve, nb::arg("model"), nb::arg("task"), nb::arg("metric"), nb::arg("positions"),
        nb::arg("scores"));
  m.def("acdc", &acdc, nb::arg("model"), nb::arg("task"), nb::arg("metric"), nb::arg("positions"), nb::arg("thresholds"),
        nb::arg("ablation"), nb::arg("lanes"), nb::arg("edges").none(), nb::arg("progress").none());
  m.def("learn_mask", &learn_mask, nb::arg("model"), nb::arg("task"), nb::arg("metric"), nb::arg("positions"), nb::arg("edges"),
        nb::arg("l0"), nb::arg("steps"), nb::arg("lr"), nb::arg("multiplier_lr"), nb::arg("seed"), nb::arg("restarts"),
        nb::arg("ablation"), nb::arg("progress").none());
  m.def("path_patch", &path_patch, nb::arg("model"), nb::arg("task"), nb::arg("metric"), nb::arg("positions"), nb::arg("senders"),
        nb::arg("receivers"), nb::arg("recompute_mlps"));
  m.def("path_set", &path_set, nb::arg("model"), nb::arg("task"), nb::arg("delta"), nb::arg("positions"), nb::arg("paths"));
  m.def("compare", &compare, nb::arg("model"), nb::arg("task"), nb::arg("truth"), nb::arg("methods"), nb::arg("metric"),
        nb::arg("acdc_metric"), nb::arg("thresholds"), nb::arg("steps"), nb::arg("ablation"), nb::arg("lanes"), nb::arg("memory_budget_mb"), nb::arg("positions"),
        nb::arg("mask_edges"), nb::arg("mask_steps"));
  m.def("record", &record, nb::arg("model"), nb::arg("sequences"), nb::arg("names"), nb::arg("task").none(), nb::arg("metric"),
        nb::arg("positions"), "(logits, activations, gradients or None) of one run, arrays in the model's dtype.");
  m.def("set_threads", [](int n) { set_num_threads(n); }, nb::arg("n"), "Threads for the kernels (the calling thread included).");
  m.def("threads", &num_threads);
}

}  // namespace circuitry::python
