// Forward pass of a random GPT-2-small-shaped model on 32 sequences of 16 tokens (float32),
// logits at the last position only. Prints median seconds, GFLOP/s and peak memory.
#include "bench_common.hpp"

int main() {
  using namespace circuitry;
  const std::size_t B = 32, P = 16;
  const ModelConfig c = bench::gpt2_small_config();
  const auto model = Model<GPT2, float>::random(c, 1);
  const Batch batch = Batch::from(bench::random_sequences(B, P, c.vocab_size, 2));
  Arena arena;
  const double seconds = bench::median_seconds(5, [&] {
    arena.reset();
    Context<float, false> ctx(arena);
    model.forward(ctx, batch);
  });
  const double gflop = bench::forward_flops(c, B, P, true) / 1e9;
  std::printf("GPT-2 small shape, %zu x %zu tokens, float32, %d threads\n", B, P, num_threads());
  std::printf("nominal work %.1f GFLOP (every layer at every position; the last layer only needs the last rows), median %.3f s\n", gflop, seconds);
  std::printf("median_seconds=%.4f gflops=%.1f peak_mb=%.0f\n", seconds, gflop / seconds, bench::peak_mb());
}
