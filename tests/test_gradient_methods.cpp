// The gradient methods beyond EAP: GIM (a modified backward) and AtP* (the QK fix and
// GradDrop), each against a direct transcription of its definition written out in the test, and
// AtP*'s QK fix on the planted induction models where EAP misses the query and key edges.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include <circuitry/circuits/evaluation.hpp>
#include <circuitry/circuits/planted_circuit.hpp>
#include <circuitry/patching.hpp>

#include "fixtures.hpp"

using namespace circuitry;
using circuitry::testing::Fixture;

namespace {

/// The first `n` examples of a fixture task (the transcriptions below are slow).
template <class T>
PatchingTask<T> first_examples(const PatchingTask<T>& task, std::size_t n) {
  return task_examples(task, 0, std::min(n, task.clean.batch));
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

/// Every node's output in one plain forward of `batch`.  [n_upstream, B*P*D]
template <class M, class T = typename M::scalar>
std::vector<T> recorded_node_outputs(const M& model, const Batch& batch, std::vector<T>* residuals = nullptr) {
  const std::size_t BPD = batch.rows() * model.config().n_embd;
  std::vector<T> out(model.n_upstream() * BPD);
  typename M::backend::Arena arena;
  ContextFor<M> ctx(arena);
  ForwardOptions<T> o;
  o.node_outputs = out.data();
  if (residuals) residuals->resize(residual_stages(model.config().n_layer) * BPD), o.residuals = residuals->data();
  model.forward(ctx, batch, o);
  return out;
}

}  // namespace

TEST_CASE_TEMPLATE("gim with every modification off and atp-star with neither fix are eap, bit for bit", T, float, double) {
  for (const char* name : {"gpt2-tiny", "attn-only", "hf-llama-gqa"}) {
    Fixture<T> fx(name);
    fx.template with_model<ArchitectureList<GPT2, AttnOnly, Llama>>([&](const auto& model) {
      const auto task = make_patching_task(model, fx.task);
      for (auto kind : {MetricKind::LogitDiff, MetricKind::ProbDiff, MetricKind::Loss}) {
        CAPTURE(name);
        const BuiltinMetric metric{kind};
        const std::vector<double> eap = attribute(model, task, metric, Eap{}).edge_scores;
        Gim off;
        off.freeze_norm = false, off.softmax_temperature = 1, off.q_scale = off.k_scale = off.v_scale = 1, off.gate_scale = off.up_scale = 1;
        CHECK(attribute(model, task, metric, off).edge_scores == eap);
        CHECK(attribute(model, task, metric, AtpStar{.qk_fix = false, .grad_drop = false}).edge_scores == eap);
        // Every modification changes the scores, and GIM's defaults are finite.
        const std::vector<double> gim = attribute(model, task, metric, Gim{}).edge_scores;
        CHECK(gim != eap);
        for (double s : gim) CHECK(std::isfinite(s));
      }
    });
  }
}

TEST_CASE("atp-star's QK fix ranks the planted induction circuits (where eap misses the query and key edges)") {
  struct Size {
    std::size_t layers, heads;
    unsigned seed;
  };
  // The README's sizes (seed 1), then other sizes and seeds.
  for (const Size size : {Size{2, 4, 1}, Size{3, 8, 1}, Size{4, 8, 1}, Size{2, 3, 5}, Size{2, 4, 3}, Size{4, 4, 3}, Size{5, 4, 1}}) {
    PlantedSpec spec;
    spec.n_layers = size.layers, spec.n_heads = size.heads, spec.shape = PlantedShape::Induction, spec.seed = size.seed;
    const PlantedModel<double> planted = make_planted_model<double>(spec);
    const Model<AttnOnly, double> model(planted.config, planted.weights);
    const auto task = make_patching_task(model, planted.task);
    const Graph graph = model.graph();
    const std::vector<std::uint8_t> truth = planted.truth(graph);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const double eap = roc(graph, attribute(model, task, metric, Eap{}).edge_scores, truth).auc_trapezoid;
    const double qk_fix = roc(graph, attribute(model, task, metric, AtpStar{.qk_fix = true, .grad_drop = false}).edge_scores, truth).auc_trapezoid;
    const double atp_star = roc(graph, attribute(model, task, metric, AtpStar{}).edge_scores, truth).auc_trapezoid;
    const double gim = roc(graph, attribute(model, task, metric, Gim{}).edge_scores, truth).auc_trapezoid;
    INFO(size.layers << "L x " << size.heads << "H seed " << size.seed << ": eap " << eap << ", qk fix " << qk_fix << ", atp* " << atp_star << ", gim " << gim);
    CHECK(eap < 0.9);
    CHECK(qk_fix > eap + 0.1);  // the query and key edges of the induction head, which eap scores 0
    CHECK(atp_star >= 0.95);
    CHECK(gim >= 0.95);
  }
}

TEST_CASE("atp-star's QK fix equals its definition written out: the exact pattern change times d M / d pattern (double)") {
  Fixture<double> fx("gpt2-tiny");
  const Model<GPT2, double> model(fx.checkpoint.config, fx.checkpoint.weights);
  const auto task = first_examples(make_patching_task(model, fx.task), 3);
  const ModelConfig& c = model.config();
  const Graph graph = model.graph();
  const std::size_t B = task.clean.batch, P = task.clean.pos, D = c.n_embd, H = c.n_head, dh = c.d_head(), N = c.qkv_width();
  const std::size_t BPD = B * P * D;
  const BuiltinMetric metric{MetricKind::LogitDiff};
  std::vector<double> resid;
  const std::vector<double> clean = recorded_node_outputs(model, task.clean, &resid), corrupted = recorded_node_outputs(model, task.corrupted);
  // G = d M / d pattern of every layer, from the tape.  [L][B, H, P, P]
  std::vector<std::vector<double>> grads(c.n_layer);
  {
    Arena arena;
    Tape<double> tape(arena);
    Context<double, true> ctx(arena, tape);
    std::map<std::string, Var<double>> activations;
    ForwardOptions<double> o;
    o.activations = &activations;
    tape.backward(metric(ctx, model.forward(ctx, task.clean, o), task.data));
    for (std::size_t l = 0; l < c.n_layer; ++l) {
      const double* g = tape.grad(activations.at("blocks." + std::to_string(l) + ".attn.hook_pattern"));
      grads[l].assign(g, g + B * H * P * P);
    }
  }
  // Head h's pattern row t of example b, with its queries from rows `xq` and its keys from `xk` ([B*P, D] each).
  auto pattern_row = [&](std::size_t l, std::size_t h, std::size_t b, std::size_t t, const double* xq, const double* xk) {
    const LayerParams<double> w = model.params().layer(l);
    auto project = [&](const double* x, std::size_t row, std::size_t col) {  // LN(x_row) W[:, col..col + dh) + b
      const double* v = x + row * D;
      double mean = 0, var = 0;
      for (std::size_t i = 0; i < D; ++i) mean += v[i] / double(D);
      for (std::size_t i = 0; i < D; ++i) var += (v[i] - mean) * (v[i] - mean) / double(D);
      std::vector<double> out(dh);
      for (std::size_t j = 0; j < dh; ++j) {
        out[j] = w["attn.b_QKV"].value[col + j];
        for (std::size_t i = 0; i < D; ++i)
          out[j] += ((v[i] - mean) / std::sqrt(var + c.layer_norm_epsilon) * w["ln1.w"].value[i] + w["ln1.b"].value[i]) * w["attn.W_QKV"].value[i * N + col + j];
      }
      return out;
    };
    const std::vector<double> q = project(xq, b * P + t, h * dh);
    std::vector<double> row(P, 0.0), logits(t + 1);
    double top = -1e300, total = 0;
    for (std::size_t s = 0; s <= t; ++s) {
      const std::vector<double> k = project(xk, b * P + s, (H + h) * dh);
      logits[s] = 0;
      for (std::size_t j = 0; j < dh; ++j) logits[s] += q[j] * k[j] / std::sqrt(double(dh));
      top = std::max(top, logits[s]);
    }
    for (std::size_t s = 0; s <= t; ++s) total += row[s] = std::exp(logits[s] - top);
    for (std::size_t s = 0; s <= t; ++s) row[s] /= total;
    return row;
  };
  const Attribution fixed = attribute(model, task, metric, AtpStar{.qk_fix = true, .grad_drop = false});
  const Attribution eap = attribute(model, task, metric, Eap{});
  std::vector<double> expected = eap.edge_scores;
  for (std::size_t l = 0; l < c.n_layer; ++l) {
    const double* x = resid.data() + 2 * l * BPD;  // resid_pre of layer l
    for (std::size_t u = 0; u < first_node_of_layer(l, H, true); ++u) {
      std::vector<double> patched(x, x + BPD);
      for (std::size_t i = 0; i < BPD; ++i) patched[i] += corrupted[u * BPD + i] - clean[u * BPD + i];
      for (std::size_t h = 0; h < H; ++h)
        for (const PortKind kind : {PortKind::Q, PortKind::K}) {
          double score = 0;
          for (std::size_t b = 0; b < B; ++b)
            for (std::size_t t = 0; t < P; ++t) {
              const std::vector<double> before = pattern_row(l, h, b, t, x, x);
              const std::vector<double> after = kind == PortKind::Q ? pattern_row(l, h, b, t, patched.data(), x) : pattern_row(l, h, b, t, x, patched.data());
              for (std::size_t s = 0; s < P; ++s) score += (after[s] - before[s]) * grads[l][((b * H + h) * P + t) * P + s];
            }
          expected[static_cast<std::size_t>(graph.edge_index(static_cast<int>(u), graph.head_port(l, h, kind)))] = score;
        }
    }
  }
  CHECK(max_abs_difference(fixed.edge_scores, expected) <= 1e-9 * std::max(1.0, max_abs(expected)));
  CHECK(fixed.edge_scores != eap.edge_scores);
}

namespace {

/// The run of the GradDrop transcription: port `port`'s input moved by eps * direction on example
/// b's rows, and every node of layer `frozen_layer` giving its clean output (so no change passes
/// through that layer).
struct FrozenLayerNudge : Intervention<double> {
  const Graph* graph;
  const std::vector<double>* clean_outputs;  // [n_upstream, B*P*D]
  const double* direction;                   // [B*P*D]
  std::size_t port, rows_begin, rows_end, BPD;
  int frozen_layer;
  double eps = 0;
  bool port_inputs(std::size_t first, std::size_t n, const double* resid, const double*, double* inputs) override {
    if (port < first || port >= first + n) return false;
    for (std::size_t i = 0; i < n; ++i) std::copy(resid, resid + BPD, inputs + i * BPD);
    for (std::size_t r = rows_begin; r < rows_end; ++r) inputs[(port - first) * BPD + r] += eps * direction[r];
    return true;
  }
  void node_output(std::size_t node, const double*, double* value) override {
    if (graph->upstream()[node].layer == frozen_layer) std::copy_n(clean_outputs->data() + node * BPD, BPD, value);
  }
};

}  // namespace

TEST_CASE("atp-star's GradDrop equals its definition: finite differences with one layer frozen, per example (double)") {
  Fixture<double> fx("attn-only");
  const Model<AttnOnly, double> model(fx.checkpoint.config, fx.checkpoint.weights);
  const auto task = first_examples(make_patching_task(model, fx.task), 2);
  const ModelConfig& c = model.config();
  const Graph graph = model.graph();
  const std::size_t B = task.clean.batch, PD = task.clean.pos * c.n_embd, BPD = B * PD, L = c.n_layer;
  REQUIRE(L >= 2);
  const BuiltinMetric metric{MetricKind::LogitDiff};
  const std::vector<double> clean = recorded_node_outputs(model, task.clean), corrupted = recorded_node_outputs(model, task.corrupted);
  const Attribution dropped = attribute(model, task, metric, AtpStar{.qk_fix = false, .grad_drop = true});
  std::vector<double> expected(graph.n_edges(), 0.0), direction(BPD);
  for (std::size_t e = 0; e < graph.n_edges(); ++e) {
    const Edge& edge = graph.edges()[e];
    for (std::size_t i = 0; i < BPD; ++i) direction[i] = corrupted[edge.upstream * BPD + i] - clean[edge.upstream * BPD + i];
    for (std::size_t l = 0; l < L; ++l)
      for (std::size_t b = 0; b < B; ++b) {
        FrozenLayerNudge nudge;
        nudge.graph = &graph, nudge.clean_outputs = &clean, nudge.direction = direction.data();
        nudge.port = static_cast<std::size_t>(edge.port), nudge.rows_begin = b * PD, nudge.rows_end = (b + 1) * PD, nudge.BPD = BPD;
        nudge.frozen_layer = static_cast<int>(l);
        const double h = 1e-4;
        double at[2];
        for (int side = 0; side < 2; ++side) {
          nudge.eps = side ? -h : h;
          at[side] = metric_value(metric, run_with(model, task.clean, nudge).logits, task.data);
        }
        expected[e] += std::abs((at[0] - at[1]) / (2 * h)) / double(L - 1);
      }
  }
  CHECK(max_abs(expected) > 1e-3);
  CHECK(max_abs_difference(dropped.edge_scores, expected) <= 1e-7 * std::max(1.0, max_abs(expected)));
  for (double s : dropped.edge_scores) CHECK(s >= 0);
}

namespace {

/// A watched variable holding `values` on `ctx`'s tape.
Var<double> watched(const Context<double, true>& ctx, Shape shape, const std::vector<double>& values) {
  Var<double> v = ctx.output(shape, true);
  std::copy(values.begin(), values.end(), v.value);
  return v;
}

std::vector<double> random_values(std::mt19937& rng, std::size_t n, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

}  // namespace

TEST_CASE("gim's backward rules, op by op, against their formulas written out (double)") {
  std::mt19937 rng(11);
  const std::size_t rows = 5, D = 7;
  const std::vector<double> x = random_values(rng, rows * D, 2.0), w = random_values(rng, D), b = random_values(rng, D), seed = random_values(rng, rows * D);
  SUBCASE("frozen norm statistics: dx = rstd (g - mean(g)) for a layer norm, rstd g for an RMS norm, g = dy * w") {
    for (const bool layer_norm : {true, false}) {
      Arena arena;
      Tape<double> tape(arena);
      Context<double, true> ctx(arena, tape);
      GradientRules rules;
      rules.freeze_norm_statistics = true;
      ctx.set_rules(&rules);
      const Var<double> X = watched(ctx, {rows, D}, x), W = Context<double, true>::constant(const_cast<double*>(w.data()), {D});
      const Var<double> Bv = Context<double, true>::constant(const_cast<double*>(b.data()), {D});
      const Var<double> R = Context<double, true>::constant(const_cast<double*>(seed.data()), {rows, D});
      const Var<double> y = layer_norm ? ops::norm_linear_ports<LayerNorm>(ctx, X, W, Bv, 1e-5, nullptr, nullptr, ops::PortSplit::single())
                                       : ops::norm_linear_ports<RMSNorm>(ctx, X, W, Bv, 1e-5, nullptr, nullptr, ops::PortSplit::single());
      tape.backward(ops::sum(ctx, ops::mul(ctx, y, R)));
      for (std::size_t r = 0; r < rows; ++r) {
        double mean = 0, square = 0, g_mean = 0;
        for (std::size_t i = 0; i < D; ++i) mean += x[r * D + i] / double(D);
        for (std::size_t i = 0; i < D; ++i) {
          const double centred = layer_norm ? x[r * D + i] - mean : x[r * D + i];
          square += centred * centred / double(D);
          g_mean += seed[r * D + i] * w[i] / double(D);
        }
        const double rstd = 1 / std::sqrt(square + 1e-5);
        for (std::size_t i = 0; i < D; ++i)
          CHECK(tape.grad(X)[r * D + i] == doctest::Approx(rstd * (seed[r * D + i] * w[i] - (layer_norm ? g_mean : 0))).epsilon(1e-12));
      }
    }
  }
  SUBCASE("softmax temperature: dS = s_T (dA - sum(dA s_T)), s_T = softmax(S / T), through the queries") {
    const std::size_t B = 2, P = 4, H = 2, dh = 3, A = H * dh;
    const std::vector<double> qkv = random_values(rng, B * P * 3 * A, 1.5), dA = random_values(rng, B * H * P * P);
    const double T = 2.5;
    Arena arena;
    Tape<double> tape(arena);
    Context<double, true> ctx(arena, tape);
    GradientRules rules;
    rules.softmax_temperature = T;
    ctx.set_rules(&rules);
    const Var<double> Q = watched(ctx, {B, P, 3 * A}, qkv);
    const Var<double> seedA = Context<double, true>::constant(const_cast<double*>(dA.data()), {B, H, P, P});
    const Var<double> pattern = ops::attention_pattern(ctx, Q, H, ops::KeyMask::causal_mask());
    tape.backward(ops::sum(ctx, ops::mul(ctx, pattern, seedA)));
    for (std::size_t bb = 0; bb < B; ++bb)
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t t = 0; t < P; ++t) {
          auto q = [&](std::size_t pos, std::size_t j) { return qkv[(bb * P + pos) * 3 * A + h * dh + j]; };
          auto k = [&](std::size_t pos, std::size_t j) { return qkv[(bb * P + pos) * 3 * A + A + h * dh + j]; };
          std::vector<double> s_T(t + 1);
          double total = 0, dot = 0;
          for (std::size_t s = 0; s <= t; ++s) {
            double score = 0;
            for (std::size_t j = 0; j < dh; ++j) score += q(t, j) * k(s, j) / std::sqrt(double(dh));
            total += s_T[s] = std::exp(score / T);
          }
          for (std::size_t s = 0; s <= t; ++s) dot += dA[((bb * H + h) * P + t) * P + s] * (s_T[s] /= total);
          for (std::size_t j = 0; j < dh; ++j) {
            double dq = 0;  // d / d q_t of the scores S_ts = q_t . k_s / sqrt(dh)
            for (std::size_t s = 0; s <= t; ++s) dq += s_T[s] * (dA[((bb * H + h) * P + t) * P + s] - dot) * k(s, j) / std::sqrt(double(dh));
            CHECK(tape.grad(Q)[(bb * P + t) * 3 * A + h * dh + j] == doctest::Approx(dq).epsilon(1e-10));
          }
        }
  }
  SUBCASE("gradient scales: each block's gradient times its scale, the values unchanged") {
    Arena arena;
    Tape<double> tape(arena);
    Context<double, true> ctx(arena, tape);
    const Var<double> X = watched(ctx, {rows, 3 * D}, random_values(rng, rows * 3 * D));
    const std::vector<double> r = random_values(rng, rows * 3 * D);
    const Var<double> y = ops::scale_gradient_blocks(ctx, X, {0.25, 0.5, 2.0});
    tape.backward(ops::sum(ctx, ops::mul(ctx, y, Context<double, true>::constant(const_cast<double*>(r.data()), {rows, 3 * D}))));
    for (std::size_t i = 0; i < rows * 3 * D; ++i) {
      CHECK(y.value[i] == X.value[i]);
      CHECK(tape.grad(X)[i] == doctest::Approx(r[i] * std::vector<double>{0.25, 0.5, 2.0}[(i % (3 * D)) / D]).epsilon(1e-14));
    }
  }
}

TEST_CASE("gim's q/k/v scales: the last layer's query, key and value edges are eap's times their scale (double)") {
  Fixture<double> fx("attn-only");
  const Model<AttnOnly, double> model(fx.checkpoint.config, fx.checkpoint.weights);
  const auto task = make_patching_task(model, fx.task);
  const Graph graph = model.graph();
  const BuiltinMetric metric{MetricKind::LogitDiff};
  Gim scales_only;
  scales_only.freeze_norm = false, scales_only.softmax_temperature = 1;
  const Attribution gim = attribute(model, task, metric, scales_only), eap = attribute(model, task, metric, Eap{});
  const std::size_t last = model.config().n_layer - 1;
  for (std::size_t e = 0; e < graph.n_edges(); ++e) {
    const DownstreamPort& port = graph.ports()[static_cast<std::size_t>(graph.edges()[e].port)];
    const double scale = port.kind == PortKind::Logits ? 1.0
                         : std::size_t(port.layer) != last ? -1.0
                         : port.kind == PortKind::Q        ? 0.25
                         : port.kind == PortKind::K        ? 0.25
                                                           : 0.5;
    if (scale > 0) CHECK(gim.edge_scores[e] == doctest::Approx(scale * eap.edge_scores[e]).epsilon(1e-12));
  }
}

TEST_CASE("atp-star and gim in parts: the parts' scores, weighted by their share of the examples, are the whole task's (double)") {
  Fixture<double> fx("gpt2-small3");
  const Model<GPT2, double> model(fx.checkpoint.config, fx.checkpoint.weights);
  const auto task = make_patching_task(model, fx.task);
  REQUIRE(task.clean.batch > 2);
  const BuiltinMetric metric{MetricKind::LogitDiff};
  const std::vector<double> whole = attribute(model, task, metric, AtpStar{}).edge_scores;
  const std::vector<double> parts = attribute(model, task, metric, AtpStar{.memory_budget = 1}).edge_scores;  // a part per example
  CHECK(max_abs_difference(whole, parts) <= 1e-12 * max_abs(whole));
  const std::vector<double> gim_whole = attribute(model, task, metric, Gim{}).edge_scores;
  const std::vector<double> gim_parts = attribute(model, task, metric, Gim{.memory_budget = 1}).edge_scores;
  CHECK(max_abs_difference(gim_whole, gim_parts) <= 1e-12 * max_abs(gim_whole));
}
