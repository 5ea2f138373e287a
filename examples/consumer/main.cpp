// Builds the edge graph of GPT-2 small and a tiny random model's forward pass: enough to show
// that an installed circuitry is usable from another project.
#include <cstdio>

#include <circuitry/circuitry.hpp>

int main() {
  using namespace circuitry;
  const Graph gpt2_small(GraphShape{12, 12, true, false});
  ModelConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 8, c.n_inner = 32, c.n_positions = 8, c.vocab_size = 10;
  const auto model = Model<GPT2, float>::random(c, 1);
  Arena arena;
  Context<float, false> ctx(arena);
  const Var<float> logits = model.forward(ctx, Batch::from({{1, 2, 3}}));
  std::printf("gpt2-small edges: %zu, logits shape %s\n", gpt2_small.n_edges(), logits.shape.str().c_str());
  return gpt2_small.n_edges() == 32491 ? 0 : 1;
}
