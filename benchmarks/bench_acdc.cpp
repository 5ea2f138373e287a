// One ACDC pass (kl, resample ablation) on random models, 8 sequences of 16 tokens:
//   1. the 4-layer model of bench_exact (4 layers x 8 heads, width 256): the whole pass with
//      8 lanes and one at a time, and the lanes' speed-up;
//   2. a GPT-2-small-shaped model (12 x 12, width 768): the pass from logits back through the
//      receivers for at most --budget seconds (default 120), or the whole pass with --full.
// Prints edges decided per second and, last, median_seconds= of the 4-layer pass with lanes
// (of the GPT-2-small pass with --full).
#include <chrono>
#include <cstring>
#include <string>

#include "bench_common.hpp"

namespace {

using namespace circuitry;

struct Stop {};  // thrown from the progress callback to end a pass at the time budget

}  // namespace

int main(int argc, char** argv) {
  bool full = false;
  double budget = 120;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--full") == 0) full = true;
    else if (std::strcmp(argv[i], "--budget") == 0 && i + 1 < argc) budget = std::stod(argv[++i]);
  }
  const std::size_t B = 8, P = 16;
  const double tau = 1e-3;

  ModelConfig c;
  c.n_layer = 4, c.n_head = 8, c.n_embd = 256, c.n_inner = 1024, c.n_positions = 64, c.vocab_size = 512;
  const auto small = Model<GPT2, float>::random(c, 1, 0.05);
  const auto small_task = bench::random_task(small, B, P);
  const std::size_t small_edges = small.graph().n_edges();
  AcdcOptions automatic, single;  // the default window (growing up to 8 lanes); one at a time
  single.lanes = 1;
  AcdcCircuit circuit, one;
  const double with_auto = bench::median_seconds(3, [&] { circuit = acdc(small, small_task, MetricKind::KL, tau, automatic); });
  const double one_at_a_time = bench::median_seconds(1, [&] { one = acdc(small, small_task, MetricKind::KL, tau, single); });
  std::printf("ACDC, 4 layers x 8 heads, width 256, %zu edges, %zu x %zu tokens, kl, tau %g, float32, %d threads\n", small_edges, B,
              P, tau, num_threads());
  std::printf("  %zu edges kept; runs: %zu with lanes, %zu one at a time; same circuit: %s\n", circuit.n_edges, circuit.runs,
              one.runs, circuit.in_graph == one.in_graph ? "yes" : "NO");
  std::printf("  lanes: %.3f s (%.0f edges/s); one at a time: %.3f s (%.0f edges/s); speed-up %.2fx; peak %.0f MB\n", with_auto,
              double(small_edges) / with_auto, one_at_a_time, double(small_edges) / one_at_a_time, one_at_a_time / with_auto,
              bench::peak_mb());

  const auto gpt2 = Model<GPT2, float>::random(bench::gpt2_small_config(), 1);
  const auto gpt2_task = bench::random_task(gpt2, B, P);
  const Graph graph = gpt2.graph();
  std::size_t decided = 0;
  std::string reached;
  AcdcOptions o;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  o.progress = [&](const AcdcProgress& p) {
    decided += graph.edges_into(static_cast<int>(p.n_receivers - p.receiver)).size();
    reached = p.receiver_name;
    if (!full && elapsed() > budget) throw Stop{};
  };
  bool finished = true;
  try {
    circuit = acdc(gpt2, gpt2_task, MetricKind::KL, tau, o);
  } catch (const Stop&) {
    finished = false;
  }
  const double seconds = elapsed();
  // The same receivers one candidate at a time, for a fifth of the budget.
  const std::size_t decided_lanes = decided;
  const std::string reached_lanes = reached;
  decided = 0;
  const double lanes_rate = double(decided_lanes) / seconds;
  double single_rate = 0;
  if (!full) {
    AcdcOptions s = o;
    s.lanes = 1;
    const double b = budget;
    budget /= 5;
    start = std::chrono::steady_clock::now();
    try {
      acdc(gpt2, gpt2_task, MetricKind::KL, tau, s);
    } catch (const Stop&) {
    }
    single_rate = double(decided) / elapsed();
    budget = b;
  }
  std::printf("ACDC, GPT-2 small shape (12 x 12, width 768), %zu edges, %zu x %zu tokens, kl, tau %g\n", graph.n_edges(), B, P, tau);
  std::printf("  %s: %zu edges decided in %.1f s (down to receiver %s), %.1f edges/s; peak %.0f MB\n",
              finished ? "whole pass" : "partial pass (time budget; --full for all)", decided_lanes, seconds, reached_lanes.c_str(),
              lanes_rate, bench::peak_mb());
  if (!full) std::printf("  one at a time on the same receivers: %.1f edges/s (lanes' speed-up %.2fx)\n", single_rate, lanes_rate / single_rate);
  if (finished) std::printf("  %zu edges kept\n", circuit.n_edges);
  std::printf("median_seconds=%.4f\n", finished && full ? seconds : with_auto);
}
