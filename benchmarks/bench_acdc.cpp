// One ACDC pass (kl, resample ablation) on random models, 8 sequences of 16 tokens:
//   1. the 4-layer model of bench_exact (4 layers x 8 heads, width 256): the whole pass with
//      8 lanes and one at a time, and the lanes' speed-up (--skip-small leaves it out);
//   2. a larger model, GPT-2 small's shape (12 x 12, width 768) or --arch NAME (a shape of
//      bench_common.hpp; smollm2-135m: 30 layers x 9 heads sharing 3 key/value heads): the pass
//      from the logits back through the receivers for at most --budget seconds (default 120),
//      through --receivers N receivers (the same work for two binaries compared side by side),
//      or the whole pass with --full. --tau T sets the threshold (default 1e-3).
// Prints edges decided per second and, last, median_seconds= of the 4-layer pass with lanes
// (of part 2 with --full or --receivers, or with --skip-small).
#include <chrono>
#include <cstring>
#include <string>

#include "bench_common.hpp"

namespace {

using namespace circuitry;

struct Stop {};  // thrown from the progress callback to end a pass at the time budget

}  // namespace

struct PassLimits {
  bool full = false;
  double budget = 120;         // seconds, unless full or receivers
  std::size_t receivers = 0;   // 0: no receiver limit
  double tau = 1e-3;
};

/// Part 2: the pass on `model` within the limits; returns its seconds.
template <class M>
double large_pass(const M& model, const std::string& shape, const PassLimits& limits, std::size_t B, std::size_t P) {
  const auto task = bench::random_task(model, B, P);
  const Graph graph = model.graph();
  std::size_t decided = 0, receivers = 0;
  std::string reached;
  double budget = limits.full || limits.receivers ? 1e300 : limits.budget;
  AcdcOptions o;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  o.progress = [&](const AcdcProgress& p) {
    decided += graph.edges_into(static_cast<int>(p.n_receivers - p.receiver)).size();
    reached = p.receiver_name;
    ++receivers;
    if (elapsed() > budget || (limits.receivers && receivers >= limits.receivers)) throw Stop{};
  };
  bool finished = true;
  AcdcCircuit circuit;
  try {
    circuit = acdc(model, task, MetricKind::KL, limits.tau, o);
  } catch (const Stop&) {
    finished = false;
  }
  const double seconds = elapsed();
  const std::size_t decided_lanes = decided;
  const double lanes_rate = double(decided_lanes) / seconds;
  // The same receivers one candidate at a time, for a fifth of the budget (time-limited runs only).
  double single_rate = 0;
  const bool compare_single = !limits.full && !limits.receivers;
  if (compare_single) {
    AcdcOptions s = o;
    s.lanes = 1;
    decided = 0, receivers = 0, budget = limits.budget / 5;
    start = std::chrono::steady_clock::now();
    try {
      acdc(model, task, MetricKind::KL, limits.tau, s);
    } catch (const Stop&) {
    }
    single_rate = double(decided) / elapsed();
  }
  std::printf("ACDC, %s, %zu edges, %zu x %zu tokens, kl, tau %g, %d threads\n", shape.c_str(), graph.n_edges(), B, P, limits.tau,
              num_threads());
  std::printf("  %s: %zu edges decided in %.1f s (down to receiver %s), %.1f edges/s; peak %.0f MB\n",
              finished ? "whole pass" : "partial pass (--full for all)", decided_lanes, seconds, reached.c_str(), lanes_rate,
              bench::peak_mb());
  if (compare_single)
    std::printf("  one at a time on the same receivers: %.1f edges/s (lanes' speed-up %.2fx)\n", single_rate, lanes_rate / single_rate);
  if (finished) std::printf("  %zu edges kept\n", circuit.n_edges);
  return seconds;
}

int main(int argc, char** argv) {
  PassLimits limits;
  std::string arch = "gpt2-small";
  bool skip_small = false;
  for (int i = 1; i < argc; ++i) {
    const bool value = i + 1 < argc;
    if (std::strcmp(argv[i], "--full") == 0) limits.full = true;
    else if (std::strcmp(argv[i], "--skip-small") == 0) skip_small = true;
    else if (std::strcmp(argv[i], "--budget") == 0 && value) limits.budget = std::stod(argv[++i]);
    else if (std::strcmp(argv[i], "--receivers") == 0 && value) limits.receivers = std::stoul(argv[++i]);
    else if (std::strcmp(argv[i], "--tau") == 0 && value) limits.tau = std::stod(argv[++i]);
    else if (std::strcmp(argv[i], "--arch") == 0 && value) arch = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--arch NAME] [--full | --budget S | --receivers N] [--tau T] [--skip-small]\n", argv[0]);
      return 2;
    }
  }
  const std::size_t B = 8, P = 16;

  double small_seconds = 0;
  if (!skip_small) {
    ModelConfig c;
    c.n_layer = 4, c.n_head = 8, c.n_embd = 256, c.n_inner = 1024, c.n_positions = 64, c.vocab_size = 512;
    const auto small = Model<GPT2, float>::random(c, 1, 0.05);
    const auto small_task = bench::random_task(small, B, P);
    const std::size_t small_edges = small.graph().n_edges();
    AcdcOptions automatic, single;  // the default window (growing up to 8 lanes); one at a time
    single.lanes = 1;
    AcdcCircuit circuit, one;
    small_seconds = bench::median_seconds(3, [&] { circuit = acdc(small, small_task, MetricKind::KL, limits.tau, automatic); });
    const double one_at_a_time = bench::median_seconds(1, [&] { one = acdc(small, small_task, MetricKind::KL, limits.tau, single); });
    std::printf("ACDC, 4 layers x 8 heads, width 256, %zu edges, %zu x %zu tokens, kl, tau %g, float32, %d threads\n", small_edges, B,
                P, limits.tau, num_threads());
    std::printf("  %zu edges kept; runs: %zu with lanes, %zu one at a time; same circuit: %s\n", circuit.n_edges, circuit.runs,
                one.runs, circuit.in_graph == one.in_graph ? "yes" : "NO");
    std::printf("  lanes: %.3f s (%.0f edges/s); one at a time: %.3f s (%.0f edges/s); speed-up %.2fx; peak %.0f MB\n", small_seconds,
                double(small_edges) / small_seconds, one_at_a_time, double(small_edges) / one_at_a_time, one_at_a_time / small_seconds,
                bench::peak_mb());
  }
  double large_seconds = 0;
  bench::with_model<float>(arch, [&](const auto& model) { large_seconds = large_pass(model, arch + " shape", limits, B, P); });
  std::printf("median_seconds=%.4f\n", skip_small || limits.full || limits.receivers ? large_seconds : small_seconds);
}
