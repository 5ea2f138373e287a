// Edge attribution patching (EAP) of every edge of a random model (GPT-2-small shape by
// default; --arch pythia-160m | llama-1b-shape) on 32 sequences of 16 tokens (float32 or
// --dtype float64 | bfloat16; --batch, --pos): two forwards, one backward, one GEMM per stage.
// With bfloat16 it also scores in float32 and prints how the two agree: the Spearman
// correlation of the scores and the overlap of the top 1% of edges by |score|.
// --memory-budget MB sets Eap::memory_budget (default 512): the examples per gradient pass.
// --new-methods also times gim and atp-star (QK fix alone, GradDrop alone, both) on the same task,
// each with the same budget, beside EAP.
#include "bench_common.hpp"

using namespace circuitry;

template <class T>
void run(const bench::Options& opt) {
  bench::with_model<T>(opt.arch, [&](const auto& model) {
    const ModelConfig& c = model.config();
    const std::size_t B = opt.batch, P = opt.pos;
    const auto patching_task = bench::random_task(model, B, P);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const Eap eap{.memory_budget = opt.number("--memory-budget", kAttributionMemoryBudget >> 20) << 20};
    Attribution r;
    const double seconds = bench::median_seconds(3, [&] { r = attribute(model, patching_task, metric, eap); });
    // The work: the corrupted forward, the clean forward on the tape, its backward (activation
    // gradients only, about one forward: no weight gradients), each head's output z_h W_O[h] in
    // both forwards, and the scoring GEMMs Delta . g_p.
    const Graph g = model.graph();
    const double fwd = bench::forward_flops(c, B, P, true);
    const double head_outputs = 2.0 * double(c.n_layer) * 2.0 * double(B * P) * double(c.d_attn()) * double(c.n_embd);
    double scoring = 0;
    for (std::size_t p = 0; p < g.ports().size(); ++p) scoring += 2.0 * double(g.edges_into(int(p)).size()) * double(B * P * c.n_embd);
    const double gflop = (3 * fwd + head_outputs + scoring) / 1e9;
    std::printf("EAP, %s shape, %zu edges, %zu x %zu tokens, %s, %d threads, %zu pass(es) (memory budget %zu MB)\n", opt.arch.c_str(),
                g.n_edges(), B, P, bench::dtype_name<T>(), num_threads(), attribution_parts(model, patching_task.clean, eap.memory_budget),
                eap.memory_budget >> 20);
    std::printf("work %.1f GFLOP (3 forward-equivalents %.1f + head outputs %.1f + scoring %.1f), median %.3f s\n", gflop, 3 * fwd / 1e9,
                head_outputs / 1e9, scoring / 1e9, seconds);
    std::string agreement;
    if (gemm_precision() == GemmPrecision::bfloat16) {
      const GemmPrecisionScope float32(GemmPrecision::native);
      const Attribution reference = attribute(model, patching_task, metric, eap);
      const std::size_t k = std::max<std::size_t>(1, g.n_edges() / 100);
      agreement = " spearman_vs_float32=" + std::to_string(spearman(r.edge_scores, reference.edge_scores)) +
                  " top1pct_overlap=" + std::to_string(top_k_overlap(r.edge_scores, reference.edge_scores, k));
    }
    std::printf("median_seconds=%.4f gflops=%.1f peak_mb=%.0f%s%s\n", seconds, gflop / seconds, bench::peak_mb(),
                bench::peak_fraction(gflop / seconds).c_str(), agreement.c_str());
    if (!opt.flag("--new-methods")) return;
    auto time_method = [&](const char* label, const auto& policy) {
      const double s = bench::median_seconds(3, [&] { attribute(model, patching_task, metric, policy); });
      std::printf("%-22s median %.3f s (%.1fx eap) peak_mb=%.0f\n", label, s, s / seconds, bench::peak_mb());
    };
    time_method("gim", Gim{.memory_budget = eap.memory_budget});
    time_method("atp-star (QK fix)", AtpStar{.qk_fix = true, .grad_drop = false, .memory_budget = eap.memory_budget});
    time_method("atp-star (GradDrop)", AtpStar{.qk_fix = false, .grad_drop = true, .memory_budget = eap.memory_budget});
    time_method("atp-star (both)", AtpStar{.memory_budget = eap.memory_budget});
  });
}

int main(int argc, char** argv) {
  const auto opt = bench::Options::parse(argc, argv, {}, {"--new-methods"}, {"--memory-budget"});
  bench::with_dtype(opt, [&](auto tag) { run<decltype(tag)>(opt); });
}
