// Forward pass of a random model (GPT-2-small shape by default; --arch pythia-160m |
// llama-1b-shape) on 32 sequences of 16 tokens (float32 or --dtype float64; --batch, --pos),
// logits at the last position only. Prints median seconds, GFLOP/s and peak memory.
#include "bench_common.hpp"

using namespace circuitry;

template <class T>
void run(const bench::Options& opt) {
  bench::with_model<T>(opt.arch, [&](const auto& model) {
    const ModelConfig& c = model.config();
    const std::size_t B = opt.batch, P = opt.pos;
    const Batch batch = Batch::from(bench::random_sequences(B, P, c.vocab_size, 2));
    Arena arena;
    const double seconds = bench::median_seconds(5, [&] {
      arena.reset();
      Context<T, false> ctx(arena);
      model.forward(ctx, batch);
    });
    const double gflop = bench::forward_flops(c, B, P, true) / 1e9;
    std::printf("%s shape, %zu x %zu tokens, %s, %d threads\n", opt.arch.c_str(), B, P, bench::dtype_name<T>(), num_threads());
    std::printf("nominal work %.1f GFLOP (every layer at every position; the last layer only needs the last rows), median %.3f s\n",
                gflop, seconds);
    std::printf("median_seconds=%.4f gflops=%.1f peak_mb=%.0f%s\n", seconds, gflop / seconds, bench::peak_mb(),
                bench::peak_fraction(gflop / seconds).c_str());
  });
}

int main(int argc, char** argv) {
  const auto opt = bench::Options::parse(argc, argv);
  bench::with_dtype(opt, [&](auto tag) { run<decltype(tag)>(opt); });
}
