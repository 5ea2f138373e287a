// Exact patching (one patched run per edge) of a random model on 8 sequences of 16 tokens.
//   bench_exact                    a small GPT-2 (4 layers, 8 heads, width 256), every edge, median of 3 runs
//   bench_exact --full-gpt2-small  every one of GPT-2 small's 32,491 edges, one run (minutes: run by
//                                  hand, not in CI); the same as --arch gpt2-small --batch 8 --pos 16
//   --arch NAME                    another shape of bench_common.hpp, one run
//   --dtype, --batch, --pos        as in every benchmark
//   --memory-budget MB             ExactPatching::memory_budget (default 2048)
//   --receivers-below L            only the edges into ports of layers < L (a fraction of a long run)
// Prints edges per second, the seconds for the scored edges, and peak memory.
#include "bench_common.hpp"

using namespace circuitry;

template <class M>
void run(const M& model, const bench::Options& opt, const char* shape, int runs) {
  using T = typename M::scalar;
  const ModelConfig& c = model.config();
  const std::size_t B = opt.batch, P = opt.pos;
  const auto patching_task = bench::random_task(model, B, P);
  const BuiltinMetric metric{MetricKind::LogitDiff};
  const Graph g = model.graph();
  ExactPatching policy;
  policy.memory_budget = opt.number("--memory-budget", policy.memory_budget >> 20) << 20;
  const std::size_t below = opt.number("--receivers-below", c.n_layer + 1);
  std::size_t n_edges = g.n_edges();
  if (below <= c.n_layer) {
    policy.edges.assign(g.n_edges(), 0);
    n_edges = 0;
    for (std::size_t e = 0; e < g.n_edges(); ++e) {
      const auto& port = g.ports()[static_cast<std::size_t>(g.edges()[e].port)];
      if (port.kind != PortKind::Logits && static_cast<std::size_t>(port.layer) < below) policy.edges[e] = 1, ++n_edges;
    }
  }
  if (runs == 1) {  // a long run: a line on stderr every 30 s
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    policy.progress = [=](std::size_t done, std::size_t total) mutable {
      const auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::seconds(30) && done != total) return;
      last = now;
      std::fprintf(stderr, "  %zu / %zu edges, %.0f s\n", done, total, std::chrono::duration<double>(now - start).count());
    };
  }
  auto once = [&] { attribute(model, patching_task, metric, policy); };
  double seconds = 0;
  if (runs > 1) {
    seconds = bench::median_seconds(runs, once);
  } else {
    const auto start = std::chrono::steady_clock::now();
    once();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::printf("exact patching, %s, %zu of %zu edges, %zu x %zu tokens, %s, %d threads, budget %zu MB\n", shape, n_edges, g.n_edges(), B, P,
              bench::dtype_name<T>(), num_threads(), policy.memory_budget >> 20);
  std::printf("%s %.3f s for %zu edges, peak %.0f MB\n", runs > 1 ? "median" : "one run:", seconds, n_edges, bench::peak_mb());
  std::printf("edges_per_second=%.1f seconds=%.2f peak_mb=%.0f\n", double(n_edges) / seconds, seconds, bench::peak_mb());
}

int main(int argc, char** argv) {
  auto opt = bench::Options::parse(argc, argv, {.arch = "", .batch = 8, .pos = 16}, {"--full-gpt2-small"},
                                   {"--memory-budget", "--receivers-below"});
  if (opt.flag("--full-gpt2-small")) opt.arch = "gpt2-small", opt.batch = 8, opt.pos = 16;
  bench::with_dtype(opt, [&](auto tag) {
    using T = decltype(tag);
    if (opt.arch.empty()) {
      ModelConfig c;
      c.n_layer = 4, c.n_head = 8, c.n_embd = 256, c.n_inner = 1024, c.n_positions = 64, c.vocab_size = 512;
      run(Model<GPT2, T>::random(c, 1, 0.05), opt, "4 layers x 8 heads, width 256", 3);
    } else {
      bench::with_model<T>(opt.arch, [&](const auto& model) { run(model, opt, (opt.arch + " shape").c_str(), 1); });
    }
  });
}
