#pragma once
// Activation patching in the edge graph (DESIGN.md section 2). Patching edge u->p makes p
// read in_p - out_u(run) + src_u, where src_u is u's output on the corrupted input
// (resample ablation), zero (zero ablation) or its mean over a reference set (mean
// ablation); the change propagates downstream. Patching node u patches all of its
// outgoing edges; evaluating a circuit patches every edge outside it, in one run.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "circuitry/graph/graph.hpp"
#include "circuitry/patching/intervention.hpp"
#include "circuitry/task/patching_task.hpp"

namespace circuitry {

enum class Ablation { Resample, Zero, Mean };

inline Ablation parse_ablation(const std::string& name) {
  if (name == "resample") return Ablation::Resample;
  if (name == "zero") return Ablation::Zero;
  if (name == "mean") return Ablation::Mean;
  throw Error("unknown ablation '" + name + "' (choose resample, zero or mean)");
}

inline std::string ablation_name(Ablation a) { return a == Ablation::Zero ? "zero" : a == Ablation::Mean ? "mean" : "resample"; }

/// Every upstream node's output on `batch`. [n_upstream, batch, pos, d_model]
template <class M, class T = typename M::scalar>
std::vector<T> node_outputs(const M& model, const Batch& batch) {
  std::vector<T> out(model.n_upstream() * batch.rows() * model.config().n_embd);
  ArenaFor<M> arena;
  ContextFor<M> ctx(arena);
  ForwardOptions<T> o;
  o.node_outputs = out.data();
  model.forward(ctx, batch, o);
  return out;
}

/// An unpatched run's node outputs and its residual stream at every stage, what runs that
/// restart at a stage (exact patching, ACDC) start from.
template <class T>
struct RecordedRun {
  std::vector<T> node_outputs;  // [n_upstream, batch, pos, d_model]
  std::vector<T> residuals;     // [2L + 1, batch, pos, d_model]
};

template <class M, class T = typename M::scalar>
RecordedRun<T> record_run(const M& model, const Batch& batch) {
  const std::size_t BPD = batch.rows() * model.config().n_embd;
  RecordedRun<T> run{std::vector<T>(model.n_upstream() * BPD), std::vector<T>(residual_stages(model.config().n_layer) * BPD)};
  ArenaFor<M> arena;
  ContextFor<M> ctx(arena);
  ForwardOptions<T> o;
  o.node_outputs = run.node_outputs.data();
  o.residuals = run.residuals.data();
  model.forward(ctx, batch, o);
  return run;
}

/// What patched edges read instead of their upstream node's output. [n_upstream, batch, pos, d_model]
/// Mean ablation averages each node's output over the reference batch at each position
/// (the reference needs at least as many positions as the task).
template <class M, class T = typename M::scalar>
std::vector<T> ablation_source(const M& model, const PatchingTask<T>& task, Ablation kind, const Batch* reference = nullptr) {
  const std::size_t B = task.clean.batch, P = task.clean.pos, D = model.config().n_embd, N = model.n_upstream();
  switch (kind) {
    case Ablation::Resample: return node_outputs(model, task.corrupted);
    case Ablation::Zero: return std::vector<T>(N * B * P * D, T(0));
    case Ablation::Mean: {
      require(reference && reference->pos >= P, "mean ablation needs a reference batch at least as long as the task");
      const std::vector<T> ref = node_outputs(model, *reference);
      const std::size_t R = reference->batch, RP = reference->pos;
      std::vector<T> out(N * B * P * D, T(0));
      for (std::size_t u = 0; u < N; ++u)
        for (std::size_t p = 0; p < P; ++p) {
          std::vector<T> mean(D, T(0));
          for (std::size_t r = 0; r < R; ++r)
            for (std::size_t i = 0; i < D; ++i) mean[i] += ref[((u * R + r) * RP + p) * D + i] / T(R);
          for (std::size_t b = 0; b < B; ++b) std::copy(mean.begin(), mean.end(), out.begin() + static_cast<std::ptrdiff_t>(((u * B + b) * P + p) * D));
        }
      return out;
    }
  }
  return {};
}

/// Intervention that patches a set of edges, optionally only at chosen positions.
template <class T, class Kernels = CpuBackend>
class EdgePatch : public Intervention<T> {

 public:
  /// patched: one flag per edge; source: [n_upstream, B*P*D]; positions: empty (all) or one flag per position.
  EdgePatch(const Graph& graph, std::vector<std::uint8_t> patched, const std::vector<T>& source, std::size_t batch,
            std::size_t pos, std::size_t d_model, std::vector<std::uint8_t> positions = {})
      : graph_(&graph), source_(&source), B_(batch), P_(pos), D_(d_model), positions_(std::move(positions)) {
    require(positions_.empty() || positions_.size() == P_, "edge patch: one position flag per position expected");
    set_patched(std::move(patched));
  }

  /// Patch another set of edges from the same source (keeps the working memory).
  void set_patched(std::vector<std::uint8_t> patched) {
    require(patched.size() == graph_->n_edges(), "edge patch: one flag per edge expected");
    patched_ = std::move(patched);
  }

  bool port_inputs(std::size_t first, std::size_t n, const T* resid, const T* outputs, T* inputs) override {
    // mask [n, U] over the upstream nodes U that feed this stage's ports
    const std::size_t U = graph_->edges_into(static_cast<int>(first)).size(), BPD = B_ * P_ * D_;
    mask_.assign(n * U, T(0));
    bool any = false;
    for (std::size_t i = 0; i < n; ++i)
      for (int e : graph_->edges_into(static_cast<int>(first + i)))
        if (patched_[static_cast<std::size_t>(e)]) {
          mask_[i * U + static_cast<std::size_t>(graph_->edges()[static_cast<std::size_t>(e)].upstream)] = T(1);
          any = true;
        }
    if (!any) return false;
    // diff[u] = src_u - out_u(run), zero at positions that are not patched.  [U, B*P*D]
    diff_.resize(U * BPD);
    for (std::size_t u = 0; u < U; ++u)
      for (std::size_t row = 0; row < B_ * P_; ++row) {  // row = b * P + p
        T* at = diff_.data() + u * BPD + row * D_;
        if (position_patched(row % P_)) {
          Kernels::subtract(D_, source_->data() + u * BPD + row * D_, outputs + u * BPD + row * D_, at);
        } else {
          Kernels::fill_zero(D_, at);
        }
      }
    Kernels::copy_blocks(n, BPD, resid, 0, inputs, BPD);  // every run starts from the plain residual
    Kernels::gemm(Trans::No, Trans::No, n, BPD, U, T(1), mask_.data(), U, diff_.data(), BPD, T(1), inputs, BPD);
    return true;
  }

 private:
  bool position_patched(std::size_t p) const { return positions_.empty() || positions_[p]; }

  const Graph* graph_;
  std::vector<std::uint8_t> patched_;
  const std::vector<T>* source_;
  std::size_t B_, P_, D_;
  std::vector<std::uint8_t> positions_;
  std::vector<T> mask_, diff_;  // working memory of port_inputs
};

template <class T>
struct PatchedRun {
  double metric = 0;      // M(patched run)
  std::vector<T> logits;  // [batch, vocab]
};

/// Runs the clean input of one task again and again, each time with another set of edges
/// patched from the same source, keeping every buffer between runs: what a loop over circuits
/// (a faithfulness curve, a threshold sweep) should use instead of calling patch_edges each time.
template <class M, class T = typename M::scalar>
class EdgePatchRuns {
 public:
  /// source: [n_upstream, B*P*D] (ablation_source); positions: empty (all) or one flag per position.
  EdgePatchRuns(const M& model, const PatchingTask<T>& task, const std::vector<T>& source, std::vector<std::uint8_t> positions = {})
      : model_(&model), task_(&task), graph_(model.graph()),
        patch_(graph_, std::vector<std::uint8_t>(graph_.n_edges(), 0), source, task.clean.batch, task.clean.pos,
               model.config().n_embd, std::move(positions)) {}
  /// The source is kept by reference: a temporary would be gone before the first run.
  EdgePatchRuns(const M& model, const PatchingTask<T>& task, std::vector<T>&& source, std::vector<std::uint8_t> positions = {}) = delete;
  EdgePatchRuns(const EdgePatchRuns&) = delete;  // patch_ points at graph_
  EdgePatchRuns& operator=(const EdgePatchRuns&) = delete;

  /// M(run with the flagged edges patched) and its logits.
  template <class Metric>
  PatchedRun<T> patch(const Metric& metric, std::vector<std::uint8_t> patched) {
    patch_.set_patched(std::move(patched));
    run_with(*model_, task_->clean, patch_, run_);
    return {metric_value(metric, run_.logits, task_->data), run_.logits};
  }
  /// M(C): every edge NOT in the circuit is patched (in_graph: one flag per edge).
  template <class Metric>
  PatchedRun<T> evaluate(const Metric& metric, const std::vector<std::uint8_t>& in_graph) {
    std::vector<std::uint8_t> patched(in_graph.size());
    for (std::size_t e = 0; e < in_graph.size(); ++e) patched[e] = in_graph[e] ? 0 : 1;
    return patch(metric, std::move(patched));
  }

 private:
  const M* model_;
  const PatchingTask<T>* task_;
  Graph graph_;
  EdgePatch<T, typename M::backend> patch_;
  InterventionRun<T, typename M::backend> run_;
};

/// Runs the clean input with the flagged edges patched from `source` and returns M.
template <class M, class Metric, class T = typename M::scalar>
PatchedRun<T> patch_edges(const M& model, const PatchingTask<T>& task, const Metric& metric, const std::vector<std::uint8_t>& patched,
                          const std::vector<T>& source, const std::vector<std::uint8_t>& positions = {}) {
  return EdgePatchRuns<M, T>(model, task, source, positions).patch(metric, patched);
}

/// Patches every outgoing edge of the named upstream nodes.
template <class M, class Metric, class T = typename M::scalar>
PatchedRun<T> patch_nodes(const M& model, const PatchingTask<T>& task, const Metric& metric, const std::vector<std::string>& nodes,
                          const std::vector<T>& source, const std::vector<std::uint8_t>& positions = {}) {
  const Graph graph = model.graph();
  std::vector<std::uint8_t> patched(graph.n_edges(), 0);
  for (const auto& name : nodes)
    for (int e : graph.edges_out_of(graph.find_upstream(name))) patched[static_cast<std::size_t>(e)] = 1;
  return patch_edges(model, task, metric, patched, source, positions);
}

/// M(C): every edge NOT in the circuit is patched (in_graph: one flag per edge).
template <class M, class Metric, class T = typename M::scalar>
PatchedRun<T> evaluate_circuit(const M& model, const PatchingTask<T>& task, const Metric& metric,
                               const std::vector<std::uint8_t>& in_graph, const std::vector<T>& source) {
  return EdgePatchRuns<M, T>(model, task, source).evaluate(metric, in_graph);
}

}  // namespace circuitry
