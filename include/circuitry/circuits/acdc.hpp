#pragma once
// ACDC, Automatic Circuit DisCovery (Conmy et al. 2023, "Towards Automated Circuit Discovery
// for Mechanistic Interpretability", Algorithm 1), as DESIGN.md section 2 defines it:
//
//   start with every edge in the circuit and d = D(clean run)
//   for each receiver p, in the reverse of Graph::ports() order (logits, then layer L-1's
//   ports from the last back to the first, ..., layer 0):
//     for each edge u->p, from the latest upstream node back to `input`:
//       patch u->p on top of every edge removed so far, giving d'
//       if d' - d < tau: remove the edge, d = d'       else: keep it
//
// D is the distance from the clean behaviour: KL(p_clean || p_run) for kl, the l2 value itself
// for l2 (ACDC's tracr metric); M(clean) - M(run)
// for logit_diff, prob_diff and logit_diff_max (the behaviour lost); M(run) - M(clean) for loss.
// Patched edges read the corrupted run's output (resample ablation), zero or a mean.
//
// Speed: the pass is sequential, but most candidates get removed, so the next k candidates of
// a receiver are evaluated at once as lanes of one batched run (patching/patched_lanes.hpp),
// lane i assuming that the candidates before it in the window are removed. The decisions are
// then read in order; at the first kept edge the lanes after it are void (they assumed it
// removed) and the window restarts after it. The window doubles after every batch that was
// removed whole (up to `lanes`) and falls back to 1 after a kept edge, so few lanes are
// wasted where kept edges cluster. What lanes buy on a CPU is the weights read once per
// batched run instead of once per run: above all the unembedding, which every run applies
// (bench_acdc measures the gain; the README gives the figures). The decisions are those of the one-at-a-time pass
// (lanes = 1). Every run restarts from the clean residual at the receiver's layer.
//
// A sweep over thresholds tau_1 < ... < tau_n runs one pass per tau and scores each edge by
// the largest tau at which it is still in the circuit (0 if none), so ROC can rank ACDC like
// any other method; the n circuits are ACDC's own ROC points.
//
// Over processes (AcdcOptions::distribution): a sweep of at least as many passes as ranks runs
// pass i on rank i % size; otherwise each pass runs on every rank, the next windows of a receiver
// speculatively over the ranks (decide_receiver). Either way every rank ends with one process's bytes.
#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "circuitry/core/distribution.hpp"
#include "circuitry/task/metrics.hpp"
#include "circuitry/patching/patched_lanes.hpp"

namespace circuitry {

/// D(run) >= 0 for the clean run's neighbourhood, from the metric value of a run.
struct AcdcDistance {
  MetricKind kind = MetricKind::KL;
  double clean_metric = 0;  // M(clean); 0 for kl and l2

  double operator()(double run_metric) const {
    switch (kind) {
      case MetricKind::KL:
      case MetricKind::L2: return run_metric;
      case MetricKind::Loss: return run_metric - clean_metric;
      default: return clean_metric - run_metric;  // the behaviour lost
    }
  }
};

struct AcdcProgress {
  std::size_t receiver = 0, n_receivers = 0;  // receivers done so far, of all
  std::string receiver_name;
  std::size_t removed = 0;  // edges removed so far
  double distance = 0;      // d after this receiver
};

/// Where a pass stands after its first receivers: enough to carry it on later and reach the
/// circuit an unbroken pass reaches (each receiver's decisions depend only on this state).
struct AcdcPassState {
  double threshold = 0;
  std::size_t receivers_done = 0;      // in the pass's order (the reverse of Graph::ports())
  std::vector<std::uint8_t> removed;   // per edge, in Graph::edges() order
  double distance = 0, metric = 0;     // d and M with every removed edge patched
  std::size_t runs = 0;                // patched runs evaluated so far
};

struct AcdcCircuit {
  double threshold = 0;
  std::vector<std::uint8_t> in_graph;  // per edge, in Graph::edges() order
  std::size_t n_edges = 0;             // edges left in the circuit
  double distance = 0;                 // D of the circuit (every removed edge patched)
  double metric = 0;                   // M of the circuit
  std::size_t runs = 0;                // patched runs evaluated (lanes included)
};

/// A sweep's checkpoint: the passes finished (ascending thresholds) and the one under way.
struct AcdcCheckpoint {
  std::vector<AcdcCircuit> finished;
  AcdcPassState current;
};

struct AcdcOptions {
  Ablation ablation = Ablation::Resample;
  const Batch* mean_reference = nullptr;  // the reference batch of mean ablation
  std::size_t lanes = 8;                  // candidates evaluated per batched run at most (1 = one at a time)
  std::size_t max_lane_bytes = std::size_t{1} << 30;  // memory for one batched run's buffers
  /// The circuit every pass starts from, one flag per edge (empty: every edge). The edges outside
  /// it are removed from the start and never tried, so a pass decides only the edges inside it
  /// (ACDC on a subset, such as another method's top edges, on a model too large for a full pass).
  std::vector<std::uint8_t> start;
  std::function<void(const AcdcProgress&)> progress;
  /// Called after every receiver of a sweep with the passes finished and the state of the one
  /// under way (to write a checkpoint).
  std::function<void(const std::vector<AcdcCircuit>& finished, const AcdcPassState& current)> checkpoint;
  /// Carries a sweep on from a checkpoint of an earlier run of the same model, task and options.
  const AcdcCheckpoint* resume = nullptr;
  /// Splits the work over processes (core/distribution.hpp): a sweep's passes (pass i on rank
  /// i % size) when it has at least as many as there are ranks, else each pass's windows; every
  /// rank returns every circuit. Null: all in this process.
  const Distribution* distribution = nullptr;
};

struct AcdcSweep {
  std::vector<AcdcCircuit> circuits;  // one per threshold, ascending
  std::vector<double> edge_scores;    // the largest threshold at which each edge survives, 0 if none
};

/// Thresholds must be a non-empty, ascending list of finite, non-negative numbers.
inline void check_acdc_thresholds(const std::vector<double>& thresholds) {
  require(!thresholds.empty(), "ACDC needs at least one threshold");
  for (std::size_t i = 0; i < thresholds.size(); ++i) {
    require(std::isfinite(thresholds[i]) && thresholds[i] >= 0,
            "ACDC threshold " + std::to_string(thresholds[i]) + " is not a finite number >= 0");
    require(i == 0 || thresholds[i] > thresholds[i - 1], "ACDC thresholds must be strictly ascending");
  }
}

/// The default sweep: log-spaced thresholds as auto-circuit's ACDC experiments use
/// (tao_bases x 10^tao_exps): {1, 2, 5} x 10^{-5..-1}.
inline std::vector<double> default_acdc_thresholds() {
  std::vector<double> t;
  for (int e = -5; e <= -1; ++e)
    for (double base : {1.0, 2.0, 5.0}) t.push_back(base * std::pow(10.0, e));
  return t;
}

/// A circuit's bytes for another process (core/distribution.hpp), and back.
inline void append_circuit(std::string& bytes, const AcdcCircuit& c) {
  const std::size_t counts[] = {c.in_graph.size(), c.n_edges, c.runs};
  const double values[] = {c.threshold, c.distance, c.metric};
  append_bytes(bytes, counts, 3), append_bytes(bytes, values, 3), append_bytes(bytes, c.in_graph.data(), c.in_graph.size());
}
inline AcdcCircuit read_circuit(const std::string& bytes, std::size_t& at) {
  AcdcCircuit c;
  std::size_t counts[3];
  double values[3];
  read_bytes(bytes, at, counts, 3), read_bytes(bytes, at, values, 3);
  c.in_graph.resize(counts[0]);
  read_bytes(bytes, at, c.in_graph.data(), counts[0]);
  c.n_edges = counts[1], c.runs = counts[2], c.threshold = values[0], c.distance = values[1], c.metric = values[2];
  return c;
}

/// Every pass's circuit from the rank that ran it (the passes of a split sweep).
inline void share_circuits(const Distribution& split, std::vector<AcdcCircuit>& circuits) {
  std::vector<std::string> items(circuits.size());
  for (std::size_t i = 0; i < circuits.size(); ++i)
    if (split.owns(i)) append_circuit(items[i], circuits[i]);
  split.share(items);
  for (std::size_t i = 0; i < circuits.size(); ++i) {
    std::size_t at = 0;
    circuits[i] = read_circuit(items[i], at);
  }
}

/// ACDC on one model and task: the clean and corrupted runs are cached once, each pass reuses them.
template <class M, class T = typename M::scalar>
class Acdc {
 public:
  Acdc(const M& model, const PatchingTask<T>& task, MetricKind metric, AcdcOptions options = {})
      : model_(&model), task_(&task), metric_{metric}, options_(std::move(options)),
        source_(ablation_source(model, task, options_.ablation, options_.mean_reference)),
        runs_(model, task, source_), graph_(model.graph()) {
    require(options_.lanes >= 1, "ACDC needs at least one lane");
    require(options_.start.empty() || options_.start.size() == graph_.n_edges(),
            "ACDC: the start circuit has " + std::to_string(options_.start.size()) + " edge flags, the graph " +
                std::to_string(graph_.n_edges()) + " edges");
    distance_ = {metric, metric_value(metric_, task.clean_logits, task.data)};
  }

  const Graph& graph() const { return graph_; }
  const std::vector<T>& source() const { return source_; }  // what patched edges read  [n_upstream, B*P*D]
  const AcdcDistance& distance() const { return distance_; }

  /// One greedy pass at threshold tau.
  AcdcCircuit pass(double tau) const { return pass_from(start_of_pass(tau)); }

  /// A pass from the state after its first receivers (start_of_pass, or a checkpoint's); `done`,
  /// if given, receives the state after every receiver. Under a distribution of several ranks the
  /// pass's windows go over the ranks (decide_receiver).
  AcdcCircuit pass_from(AcdcPassState state, const std::function<void(const AcdcPassState&)>& done = nullptr) const {
    return run_pass(std::move(state), done, split_of(options_.distribution));
  }

  /// The state before a pass's first receiver: every edge in and d = D(clean run), or, from
  /// options.start, the edges outside it removed and d = D(the run with them patched).
  AcdcPassState start_of_pass(double tau) const {
    if (options_.start.empty())
      return {tau, 0, std::vector<std::uint8_t>(graph_.n_edges(), 0), distance_(distance_.clean_metric), distance_.clean_metric, 0};
    std::vector<std::uint8_t> removed(graph_.n_edges());
    for (std::size_t e = 0; e < removed.size(); ++e) removed[e] = options_.start[e] ? 0 : 1;
    const std::vector<T> logits = runs_.run(0, {removed.data()});  // [B, vocab]: restarts at the first layer
    const double m = metric_value(metric_, logits, task_->data);
    return {tau, 0, std::move(removed), distance_(m), m, 1};
  }

  /// One pass per threshold (ascending), and each edge's sweep score; from options.resume when
  /// set, reporting to options.checkpoint after every receiver.
  AcdcSweep sweep(const std::vector<double>& thresholds) const {
    check_acdc_thresholds(thresholds);
    AcdcSweep s;
    std::optional<AcdcPassState> resumed;
    if (const AcdcCheckpoint* r = options_.resume) {
      const std::size_t n = r->finished.size();
      bool same = n < thresholds.size() && r->current.threshold == thresholds[n];
      for (std::size_t i = 0; i < n && same; ++i) same = r->finished[i].threshold == thresholds[i];
      require(same, "ACDC: the checkpoint's thresholds are not this sweep's (resume with the thresholds it had)");
      s.circuits = r->finished;
      resumed = r->current;
    }
    const Distribution* ranks = split_of(options_.distribution);
    require(!ranks || (!options_.resume && !options_.checkpoint), "ACDC: checkpoints are for one process; run on one rank to resume");
    // At least as many passes as ranks: pass i on rank i % size. Fewer: every pass on every rank,
    // its windows over the ranks.
    const Distribution* passes = ranks && thresholds.size() >= ranks->size() ? ranks : nullptr;
    const Distribution* windows = passes ? nullptr : ranks;
    for (std::size_t i = s.circuits.size(); i < thresholds.size(); ++i) {
      if (passes && !passes->owns(i)) {  // another rank's pass: its circuit arrives below
        s.circuits.push_back({});
        continue;
      }
      std::function<void(const AcdcPassState&)> done;
      if (options_.checkpoint) done = [&](const AcdcPassState& state) { options_.checkpoint(s.circuits, state); };
      s.circuits.push_back(run_pass(resumed ? std::move(*resumed) : start_of_pass(thresholds[i]), done, windows));
      resumed.reset();
    }
    if (passes) share_circuits(*passes, s.circuits);
    s.edge_scores.assign(graph_.n_edges(), 0.0);
    for (const AcdcCircuit& c : s.circuits)
      for (std::size_t e = 0; e < c.in_graph.size(); ++e)
        if (c.in_graph[e]) s.edge_scores[e] = c.threshold;  // ascending: the last survival is the largest
    return s;
  }


 private:
  static const Distribution* split_of(const Distribution* d) { return d && d->size() > 1 ? d : nullptr; }

  /// The pass itself (pass_from's), with its windows over the ranks of `windows` (null: one process).
  AcdcCircuit run_pass(AcdcPassState state, const std::function<void(const AcdcPassState&)>& done, const Distribution* windows) const {
    check_acdc_thresholds({state.threshold});
    const std::size_t E = graph_.n_edges(), n_ports = graph_.ports().size();
    require(state.removed.size() == E && state.receivers_done <= n_ports,
            "ACDC: the pass state does not fit this model's graph (" + std::to_string(state.removed.size()) + " edges, " +
                std::to_string(state.receivers_done) + " receivers done; the graph has " + std::to_string(E) + " and " +
                std::to_string(n_ports) + ")");
    PassProgress pass{state.threshold, state.distance, state.metric, state.runs, std::move(state.removed)};
    pass.n_removed = static_cast<std::size_t>(std::count(pass.removed.begin(), pass.removed.end(), std::uint8_t{1}));
    // A run restarts at the layer of its earliest patched edge: the receiver's, or, from a start
    // circuit, the earliest port an edge outside it points into.
    pass.earliest = static_cast<int>(n_ports);
    for (std::size_t e = 0; e < E; ++e)
      if (pass.removed[e]) pass.earliest = std::min(pass.earliest, graph_.edges()[e].port);
    for (std::size_t visited = state.receivers_done; visited < n_ports; ++visited) {
      const int p = static_cast<int>(n_ports - 1 - visited);
      decide_receiver(p, pass, windows);
      if (options_.progress)
        options_.progress({visited + 1, n_ports, graph_.ports()[static_cast<std::size_t>(p)].name, pass.n_removed, pass.d});
      if (done) done({pass.tau, visited + 1, pass.removed, pass.d, pass.metric, pass.runs});
    }
    AcdcCircuit result;
    result.threshold = pass.tau, result.metric = pass.metric, result.runs = pass.runs, result.distance = pass.d;
    result.in_graph.resize(E);
    for (std::size_t e = 0; e < E; ++e) result.in_graph[e] = pass.removed[e] ? 0 : 1;
    result.n_edges = E - pass.n_removed;
    return result;
  }

  /// A pass under way: its threshold, d and M so far, the runs counted and the edges removed.
  struct PassProgress {
    double tau = 0, d = 0, metric = 0;
    std::size_t runs = 0;
    std::vector<std::uint8_t> removed;  // per edge
    std::size_t n_removed = 0;
    int earliest = 0;                   // the earliest port a removed edge points into
  };

  /// Decides every edge into receiver p still in the circuit, latest upstream first, a window of
  /// candidates per batched run (lane k assuming the window's candidates before it removed).
  /// Over R ranks, a round runs the next R windows the one-process pass would run if each were
  /// removed whole, window r on rank r, every window assuming the ones before it removed; the
  /// ranks share the lanes' metrics and walk the windows in order, deciding as one process
  /// decides, up to the first kept edge (the windows after it assumed it removed and are void).
  /// Each window's run is the one a single process runs, so the decisions, d, M and the runs
  /// counted are the same bytes for any number of ranks.
  void decide_receiver(int p, PassProgress& pass, const Distribution* windows) const {
    std::vector<int> candidates;  // the edges into p still in the circuit, latest upstream first
    for (auto e = graph_.edges_into(p).rbegin(); e != graph_.edges_into(p).rend(); ++e)
      if (!pass.removed[static_cast<std::size_t>(*e)]) candidates.push_back(*e);
    const std::size_t max_window = lanes_for(p), n_ranks = windows ? windows->size() : 1;
    std::size_t i = 0, window = 1;  // the window grows while candidates go, back to 1 after a kept one
    std::vector<std::vector<std::uint8_t>> lane_masks;
    while (i < candidates.size()) {
      struct Window { std::size_t first, size, grown; };  // candidates [first, first + size); the window after it if removed whole
      std::vector<Window> chain;
      for (std::size_t at = i, w = window; chain.size() < n_ranks && at < candidates.size();) {
        const std::size_t K = std::min(w, candidates.size() - at);
        chain.push_back({at, K, std::min(2 * w, max_window)});
        at += K, w = chain.back().grown;
      }
      std::vector<std::string> metrics(n_ranks);  // per window: its lanes' metric values (doubles)
      for (std::size_t r = 0; r < chain.size(); ++r) {
        if (windows && !windows->owns(r)) continue;
        const Window& c = chain[r];
        lane_masks.assign(c.size, pass.removed);
        for (std::size_t k = 0; k < c.size; ++k)
          for (std::size_t j = i; j <= c.first + k; ++j) lane_masks[k][static_cast<std::size_t>(candidates[j])] = 1;
        std::vector<const std::uint8_t*> lanes;
        for (const auto& m : lane_masks) lanes.push_back(m.data());
        const std::vector<T> logits = runs_.run(std::min(p, pass.earliest), lanes);  // [K * readout rows, vocab]
        const std::size_t lane_size = logits.size() / c.size;
        for (std::size_t k = 0; k < c.size; ++k) {
          const std::vector<T> lane(logits.begin() + static_cast<std::ptrdiff_t>(k * lane_size),
                                    logits.begin() + static_cast<std::ptrdiff_t>((k + 1) * lane_size));
          const double m = metric_value(metric_, lane, task_->data);
          append_bytes(metrics[r], &m, 1);
        }
      }
      if (windows) windows->share(metrics);
      bool kept = false;
      for (std::size_t r = 0; r < chain.size() && !kept; ++r) {
        const Window& c = chain[r];
        pass.runs += c.size;
        std::size_t at = 0, k = 0;
        for (; k < c.size; ++k) {
          double m;
          read_bytes(metrics[r], at, &m, 1);
          const double d_new = distance_(m);
          require(std::isfinite(d_new), "ACDC: the distance of a patched run is not finite (" + std::to_string(d_new) +
                                            "); check the model's weights and the task");
          if (!(d_new - pass.d < pass.tau)) break;  // kept: the lanes after this one assumed it removed
          pass.removed[static_cast<std::size_t>(candidates[c.first + k])] = 1;
          pass.d = d_new, pass.metric = m, ++pass.n_removed;
        }
        kept = k < c.size;
        i = kept ? c.first + k + 1 : c.first + c.size;
        window = kept ? 1 : c.grown;
      }
    }
  }

  /// The window for a receiver: options.lanes, fewer when one batched run's buffers (the
  /// later nodes' outputs, the ports' inputs) would exceed the memory budget.
  std::size_t lanes_for(int port) const {
    const auto& c = model_->config();
    const std::size_t BPD = task_->clean.rows() * c.n_embd;
    const std::size_t layer = static_cast<std::size_t>(graph_.ports()[static_cast<std::size_t>(port)].layer);
    const std::size_t later_nodes = model_->n_upstream() - std::min(model_->n_upstream(), first_node_of_layer(layer, c.n_head, M::architecture::has_mlp));
    const std::size_t per_lane = (later_nodes + 7) * BPD * sizeof(T);
    return std::clamp<std::size_t>(options_.max_lane_bytes / std::max<std::size_t>(per_lane, 1), 1, options_.lanes);
  }

  const M* model_;
  const PatchingTask<T>* task_;
  BuiltinMetric metric_;
  AcdcOptions options_;
  std::vector<T> source_;
  PatchedLanes<M, T> runs_;
  Graph graph_;
  AcdcDistance distance_;
};

/// ACDC at one threshold.
template <class M, class T = typename M::scalar>
AcdcCircuit acdc(const M& model, const PatchingTask<T>& task, MetricKind metric, double threshold, AcdcOptions options = {}) {
  return Acdc<M, T>(model, task, metric, std::move(options)).pass(threshold);
}

}  // namespace circuitry
