// Exact patching of every edge of a small random GPT-2 model (4 layers, 8 heads, width 256)
// on 8 sequences of 16 tokens: prints edges per second.
#include "bench_common.hpp"

int main() {
  using namespace circuitry;
  ModelConfig c;
  c.n_layer = 4, c.n_head = 8, c.n_embd = 256, c.n_inner = 1024, c.n_positions = 64, c.vocab_size = 512;
  const std::size_t B = 8, P = 16;
  const auto model = Model<GPT2, float>::random(c, 1, 0.05);
  Task task;
  const auto clean = bench::random_sequences(B, P, c.vocab_size, 2), corrupted = bench::random_sequences(B, P, c.vocab_size, 3);
  for (std::size_t b = 0; b < B; ++b) task.examples.push_back({clean[b], corrupted[b], {int(b)}, {int(b + 1)}});
  const auto patching_task = make_patching_task(model, task);
  const BuiltinMetric metric{MetricKind::LogitDiff};
  const std::size_t n_edges = model.graph().n_edges();
  const double seconds = bench::median_seconds(3, [&] { attribute(model, patching_task, metric, ExactPatching{}); });
  std::printf("exact patching, 4 layers x 8 heads, width 256, %zu edges, %zu x %zu tokens, float32, %d threads\n", n_edges, B, P,
              num_threads());
  std::printf("median %.3f s, peak %.0f MB\n", seconds, bench::peak_mb());
  std::printf("edges_per_second=%.1f\n", double(n_edges) / seconds);
}
