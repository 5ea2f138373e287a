#pragma once
// A forward pass in the residual-stream decomposition, where an Intervention decides what
// each downstream port reads and may replace any node's output. Every kind of patching is
// an Intervention: edge patching and circuit evaluation (patching/edge_patching.hpp), both
// runs of path patching (patching/path_patching.hpp). Runs without gradient, a layer at a time
// through the layer step (models/layer_step.hpp); a layer whose ports all read the ordinary
// residual runs its attention whole.
#include <cstring>
#include <vector>

#include "circuitry/graph/graph.hpp"
#include "circuitry/models/model.hpp"

namespace circuitry {

template <class T>
class Intervention {
 public:
  virtual ~Intervention() = default;
  /// Ports [first, first + n) of one stage (a layer's q/k/v ports, an MLP input, or logits)
  /// are about to read `resid` [B*P*D]; `outputs` [n_upstream, B*P*D] holds this run's node
  /// outputs so far. Return false to let them read `resid`, or write each port's input into
  /// `inputs` [n, B*P*D] and return true.
  virtual bool port_inputs(std::size_t /*first*/, std::size_t /*n*/, const T* /*resid*/, const T* /*outputs*/, T* /*inputs*/) {
    return false;
  }
  /// May replace `value` [B*P*D], node `node`'s output in this run, before it enters the residual.
  virtual void node_output(std::size_t /*node*/, const T* /*outputs*/, T* /*value*/) {}
};

/// One run's results, and its working memory: run_with on the same object again reuses every
/// buffer, so a loop of runs (a faithfulness curve, a sweep of circuits) touches fresh memory
/// only once.
template <class T, class Backend = CpuBackend>
struct InterventionRun {
  std::vector<T> logits;          // [readout rows, vocab] (each sequence's last position in mode last)
  AlignedVector<T> node_outputs;  // [n_upstream, batch, pos, d_model]
  AlignedVector<T> residuals;     // [2L + 1, batch, pos, d_model] the ordinary residual at every stage
  // working memory
  AlignedVector<T> ports;  // [3 * n_head, batch, pos, d_model] one stage's port inputs
  LaneRun<T, Backend> lane;  // the residual stream and the layer step's buffers, one lane
};

namespace detail {

/// The layer step's LayerIo for one lane under an Intervention: the intervention gives each
/// stage's port inputs and may replace each node's output, which is recorded in run.node_outputs.
template <class M, class T>
class InterventionIo : public LayerIoBase<T> {
  using Kernels = typename M::backend;
  using Lanes = LaneRun<T, Kernels>;

 public:
  InterventionIo(const M& model, Intervention<T>& iv, InterventionRun<T, Kernels>& run, std::size_t bpd)
      : iv_(&iv), run_(&run), H_(model.config().n_head), ppl_(model.ports_per_layer()), BPD_(bpd) {}

  HeadsPlan attention(std::size_t l, Lanes& lane) {
    layer_ = l;
    heads_patched_ = iv_->port_inputs(l * ppl_, 3 * H_, lane.resid.data(), outputs(), run_->ports.data());
    return heads_patched_ ? HeadsPlan::head_by_head : HeadsPlan::whole_heads;
  }
  std::pair<std::size_t, std::size_t> node_lanes(std::size_t) const { return {0, 1}; }
  const T* port_input(std::size_t p, std::size_t, std::size_t, Lanes& lane) {
    if (p < layer_ * ppl_ + 3 * H_) return heads_patched_ ? run_->ports.data() + (p - layer_ * ppl_) * BPD_ : lane.resid.data();
    return iv_->port_inputs(p, 1, lane.resid.data(), outputs(), run_->ports.data()) ? run_->ports.data() : lane.resid.data();
  }
  const T* node_value(std::size_t u, std::size_t, const T* computed, bool) {
    T* value = outputs() + u * BPD_;
    Kernels::copy(BPD_, computed, value);
    iv_->node_output(u, outputs(), value);
    return value;
  }
  void residual(std::size_t stage, const Lanes& lane) {
    Kernels::copy(BPD_, lane.resid.data(), run_->residuals.data() + stage * BPD_);
  }

 private:
  T* outputs() { return run_->node_outputs.data(); }
  Intervention<T>* iv_;
  InterventionRun<T, Kernels>* run_;
  std::size_t H_, ppl_, BPD_, layer_ = 0;
  bool heads_patched_ = false;
};

}  // namespace detail

/// Runs `batch` under `iv` into `run`, reusing its buffers.
template <class M, class T = typename M::scalar>
void run_with(const M& model, const Batch& batch, Intervention<T>& iv, InterventionRun<T, typename M::backend>& run) {
  using Kernels = typename M::backend;
  const auto& c = model.config();
  const std::size_t H = c.n_head, L = c.n_layer, BPD = batch.rows() * c.n_embd;
  require(batch.pos <= c.n_positions, "sequence of " + std::to_string(batch.pos) +
                                          " tokens is longer than the context (n_positions = " + std::to_string(c.n_positions) + ")");
  // Every element of these is written below before it is read.
  run.node_outputs.resize(model.n_upstream() * BPD);
  run.residuals.resize(residual_stages(L) * BPD);
  run.ports.resize(3 * H * BPD);
  LaneRun<T, Kernels>& lane = run.lane;
  lane.K = 1, lane.last_rows = false;
  lane.resid.resize(BPD);
  detail::InterventionIo<M, T> io(model, iv, run, BPD);
  Context<T, false, Kernels> ctx(lane.arena);
  {  // input node
    lane.arena.reset();
    Var<T> x = M::architecture::embed::input(ctx, model.params(), c, batch, [](const std::string&, const Var<T>&) {});  // [B, P, D]
    Kernels::copy(BPD, io.node_value(0, 0, x.value, false), lane.resid.data());
  }
  for (std::size_t l = 0; l < L; ++l) layer_step(ctx, model, batch, l, false, lane, io);
  io.residual(2 * L, lane);
  const T* x = io.port_input(L * model.ports_per_layer(), 0, 1, lane);
  lane.arena.reset();
  run.logits = logits_from_residual(model, x, batch.batch, batch.pos, batch.readout, lane.arena);
}

template <class M, class T = typename M::scalar>
InterventionRun<T, typename M::backend> run_with(const M& model, const Batch& batch, Intervention<T>& iv) {
  InterventionRun<T, typename M::backend> run;
  run_with(model, batch, iv, run);
  return run;
}

}  // namespace circuitry
