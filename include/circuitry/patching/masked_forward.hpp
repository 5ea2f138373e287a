#pragma once
// The forward pass under a soft edge mask, on the tape (Edge Pruning, Bhaskar et al. 2024,
// arXiv 2406.16778, eq. 2; DESIGN.md section 2, "Learned edge masks"): every downstream port p
// reads
//   in_p = sum_u [z_{u->p} out_u(run) + (1 - z_{u->p}) src_u]  (+ the b_O of earlier layers)
// with src_u the ablation's source (patching/edge_patching.hpp: the corrupted run's output,
// zero, or the mean). With z binary this is circuit evaluation of {e : z_e = 1}. Runs through
// the one layer step (models/layer_step.hpp) as a chained lane without a residual: the heads of
// a layer run head by head, each q/k/v port from its own masked input, and every node's output
// stays a variable on the tape, so d loss / d z comes from the tape's backward.
#include <string>
#include <vector>

#include "circuitry/graph/graph.hpp"
#include "circuitry/models/model.hpp"
#include "circuitry/patching/masked_inputs.hpp"

namespace circuitry {

/// What masked ports read besides the run's node outputs, for one batch shape.
template <class T>
struct MaskSources {
  std::vector<T> source;    // [n_upstream, B*P*D] src_u (ablation_source)
  std::vector<T> constant;  // [2L + 1, B*P*D] per stage (2l: layer l's heads, 2l + 1: its MLP, 2L: logits):
                            // the b_O of the layers before it plus sum_{u < U} src_u
};

/// The sources of a masked forward over ablation sources `source` ([n_upstream, B*P*D]).
template <class M, class T = typename M::scalar>
MaskSources<T> mask_sources(const M& model, std::vector<T> source, std::size_t bpd) {
  const Graph graph = model.graph();
  const std::size_t L = model.config().n_layer, D = model.config().n_embd, ppl = model.ports_per_layer();
  require(source.size() == model.n_upstream() * bpd, "mask sources: one source per upstream node expected");
  MaskSources<T> s{std::move(source), std::vector<T>(residual_stages(L) * bpd, T(0))};
  for (std::size_t stage = 0; stage < residual_stages(L); ++stage) {
    if (!M::architecture::has_mlp && stage % 2 == 1 && stage < 2 * L) continue;  // no MLP port
    const std::size_t port = stage / 2 * ppl + (stage % 2 ? 3 * model.config().n_head : 0);
    const std::size_t U = graph.edges_into(static_cast<int>(port)).size();
    T* c = s.constant.data() + stage * bpd;
    const std::vector<T> bias = residual_bias(model, stage);  // [D]
    for (std::size_t r = 0; r < bpd / D; ++r) std::copy(bias.begin(), bias.end(), c + r * D);
    for (std::size_t u = 0; u < U; ++u) M::backend::axpy(bpd, T(1), s.source.data() + u * bpd, c);
  }
  return s;
}

namespace detail {

/// The layer step's LayerIo of a masked forward: a chained lane with no residual; each stage's
/// ports read masked_inputs over the node outputs so far.
template <class M, class Ctx, class T = typename M::scalar>
class MaskedIo : public LayerIoBase<T> {
  using Lanes = LaneRun<T, typename M::backend>;

 public:
  MaskedIo(const M& model, const Ctx& ctx, const Var<T>& mask, const MaskSources<T>& sources, std::size_t rows)
      : graph_(model.graph()), ctx_(&ctx), mask_(mask), sources_(&sources), rows_(rows), D_(model.config().n_embd),
        ppl_(model.ports_per_layer()), H_(model.config().n_head) {}

  HeadsPlan attention(std::size_t, const Lanes&) const { return HeadsPlan::head_by_head; }
  std::pair<std::size_t, std::size_t> node_lanes(std::size_t) const { return {0, 1}; }
  const T* port_input(std::size_t, std::size_t, std::size_t, const Lanes&) const { throw Error("masked forward: ports read port_var"); }
  const T* node_value(std::size_t, std::size_t, const T*, bool) const { throw Error("masked forward: nodes arrive as node_var"); }
  void residual(std::size_t, const Lanes&) const {}

  /// Ports [first, first + n) of one stage. [n * rows, D]
  Var<T> port_var(std::size_t first, std::size_t n) const {
    const std::vector<int>& edges = graph_.edges_into(static_cast<int>(first));
    const std::size_t U = edges.size(), stage = 2 * (first / ppl_) + (first % ppl_ >= 3 * H_ ? 1 : 0), bpd = rows_ * D_;
    return masked_inputs(*ctx_, mask_, static_cast<std::size_t>(edges.front()), n, U, nodes_, sources_->source.data(),
                         sources_->constant.data() + stage * bpd, rows_, D_);
  }
  /// Nodes [u, u + n) in upstream order. [n, rows, D]
  void node_var(std::size_t u, std::size_t n, const Var<T>& v) {
    require(u == count_ && v.numel() == n * rows_ * D_, "masked forward: node outputs out of order");
    nodes_.push_back(v);
    count_ += n;
  }

 private:
  Graph graph_;
  const Ctx* ctx_;
  Var<T> mask_;
  const MaskSources<T>* sources_;
  std::size_t rows_, D_, ppl_, H_, count_ = 0;
  std::vector<Var<T>> nodes_;  // blocks of node outputs in upstream order
};

}  // namespace detail

/// The logits at `batch`'s readout rows under the edge mask z [n_edges] (values in [0, 1], in
/// Graph::edges() order), on ctx (with the tape when ctx records). [readout rows, vocab_out]
template <class Ctx, class M, class T = typename M::scalar>
Var<T> masked_forward(const Ctx& ctx, const M& model, const Batch& batch, const Var<T>& z, const MaskSources<T>& sources) {
  static_assert(std::is_same_v<typename Ctx::backend, typename M::backend>, "masked_forward: the context's backend is not the model's");
  const ModelConfig& c = model.config();
  const std::size_t rows = batch.rows(), D = c.n_embd, L = c.n_layer;
  require(batch.pos <= c.n_positions, "sequence of " + std::to_string(batch.pos) + " tokens is longer than the context (n_positions = " +
                                          std::to_string(c.n_positions) + ")");
  require(z.numel() == model.graph().n_edges(), "masked forward: one mask per edge expected, got " + std::to_string(z.numel()));
  require(sources.source.size() == model.n_upstream() * rows * D && sources.constant.size() == residual_stages(L) * rows * D,
          "masked forward: the sources were made for another batch");
  detail::MaskedIo<M, Ctx> io(model, ctx, z, sources, rows);
  io.node_var(0, 1, M::architecture::embed::input(ctx, model.params(), c, batch, [](const std::string&, const Var<T>&) {}));  // [B, P, D]
  LaneRun<T, typename M::backend> run;
  run.chained = true;  // and no residual: run.x stays empty
  for (std::size_t l = 0; l < L; ++l) layer_step(ctx, model, batch, l, false, run, io);
  const Var<T> x = io.port_var(L * model.ports_per_layer(), 1);  // [B*P, D] the final norm's input
  const Var<T> picked = ops::gather_rows(ctx, x, batch.readout);  // [readout rows, D]
  return M::unembed::project(ctx, M::unembed::normalize(ctx, picked, model.params(), c), model.params(), c);
}

}  // namespace circuitry
