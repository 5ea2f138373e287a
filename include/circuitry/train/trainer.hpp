#pragma once
// Language-model training through the tape: next-token cross-entropy at every position,
// AdamW with global-norm clipping and a warmup + cosine learning rate (train/adamw.hpp).
//
// Each step: the batch source draws sequences, the model runs forward on the recording
// context with logits at every position, the loss is
//   L = (1 / N) sum_{b, p < len_b - 1} -log softmax(logits[b, p])[tokens[b, p + 1]]
// (N such targets; padding never enters it), backward() fills every weight's adjoint and AdamW
// updates the weights in place. One Arena and one Tape serve every step: both are reset, so
// after the first step activations and adjoints reuse the same memory.
//
// Reproducibility: the batch source receives the trainer's std::mt19937 seeded with
// TrainConfig::seed and should draw only from it; with the same model initialisation, the same
// binary and the same thread count the trained weights are then bit-identical from run to run
// (the kernels' parallel loops write disjoint outputs; the optimiser's sums are sequential). Another thread count
// or instruction set (-march) changes the rounding, so the bits, though not the outcome.
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "circuitry/ops.hpp"
#include "circuitry/models/model.hpp"
#include "circuitry/train/adamw.hpp"

namespace circuitry {

struct TrainConfig {
  std::size_t steps = 1000;
  double lr = 1e-3;                // peak learning rate
  double min_lr = 1e-4;            // floor of the cosine decay (LrSchedule, total = steps)
  std::size_t warmup_steps = 100;  // linear warmup
  AdamWConfig optimizer;
  unsigned seed = 0;               // seeds the rng handed to the batch source
  std::size_t log_every = 100;     // progress every N steps and at the last (0: never)
};

/// What the progress callback sees.
struct TrainProgress {
  std::size_t step = 0, steps = 0;  // steps done, of the total
  double loss = 0;                  // this step's loss (before its update)
  double lr = 0;                    // this step's learning rate
  double grad_norm = 0;             // global gradient norm before clipping
  double tokens_per_second = 0;     // input tokens per second since the previous report
};

struct TrainResult {
  std::vector<double> losses;  // one per step
  std::size_t tokens = 0;      // input tokens seen
  double seconds = 0;          // wall-clock time of the loop
};

/// Draws the next batch of token sequences (each at least 2 tokens, at most n_positions).
using BatchSource = std::function<std::vector<std::vector<int>>(std::mt19937& rng)>;
using ProgressCallback = std::function<void(const TrainProgress&)>;

/// Prints one line a report on `out` (stderr by default):
///   step   200/3000  loss 3.8712  lr 1.00e-03  |g| 0.613  95120 tok/s
inline ProgressCallback progress_to(std::FILE* out = stderr) {
  return [out](const TrainProgress& p) {
    std::fprintf(out, "step %6zu/%zu  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s\n", p.step, p.steps, p.loss, p.lr,
                 p.grad_norm, p.tokens_per_second);
    std::fflush(out);
  };
}

/// Trains `model` in place for config.steps steps; see the top of this file.
template <ArchitectureSpec Arch, class T>
TrainResult train_language_model(Model<Arch, T>& model, const BatchSource& next_batch, const TrainConfig& config,
                                 const ProgressCallback& progress = progress_to()) {
  using clock = std::chrono::steady_clock;
  const LrSchedule schedule{config.lr, config.min_lr, config.warmup_steps, config.steps};
  AdamW<T> optimizer(config.optimizer);
  std::mt19937 rng(config.seed);
  Arena arena;
  Tape<T> tape(arena);
  ParamVars<T> params = model.params();  // watched copies of the constant views, per step
  std::vector<std::size_t> rows;  // flat [batch * pos] rows that have a next token
  std::vector<int> targets;       // the next token of each of those rows

  TrainResult result;
  result.losses.reserve(config.steps);
  const auto start = clock::now();
  auto last_report = start;
  std::size_t tokens_since_report = 0;
  for (std::size_t step = 0; step < config.steps; ++step) {
    const std::vector<std::vector<int>> seqs = next_batch(rng);
    const Batch batch = Batch::from(seqs);
    rows.clear();
    targets.clear();
    for (std::size_t b = 0; b < seqs.size(); ++b) {
      for (std::size_t p = 0; p + 1 < seqs[b].size(); ++p) {
        rows.push_back(b * batch.pos + p);
        targets.push_back(seqs[b][p + 1]);
      }
      tokens_since_report += seqs[b].size();
    }
    require(!rows.empty(), "train_language_model: the batch has no sequence of two or more tokens, so nothing to predict");

    arena.reset();
    tape.clear();
    params.watch_all(tape);
    const Context<T, true> ctx(arena, tape);
    ForwardOptions<T> options;
    options.all_positions = true;
    const Var<T> logits = model.forward(ctx, batch, options, &params);  // [batch * pos, vocab]
    const Var<T> predicted = ops::gather_rows(ctx, logits, rows);        // [N, vocab]
    const Var<T> loss = ops::cross_entropy(ctx, predicted, targets);     // scalar
    tape.backward(loss);

    const double lr = schedule(step);
    const double grad_norm = optimizer.step(params, tape, lr);
    result.losses.push_back(static_cast<double>(loss.value[0]));

    const bool last = step + 1 == config.steps;
    if (progress && config.log_every > 0 && ((step + 1) % config.log_every == 0 || last)) {
      const auto now = clock::now();
      const double seconds = std::chrono::duration<double>(now - last_report).count();
      progress({step + 1, config.steps, result.losses.back(), lr, grad_norm,
                seconds > 0 ? static_cast<double>(tokens_since_report) / seconds : 0.0});
      result.tokens += tokens_since_report;
      tokens_since_report = 0;
      last_report = now;
    }
  }
  result.tokens += tokens_since_report;
  result.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return result;
}

}  // namespace circuitry
