// The backend seam end to end: a model on a second backend runs every method through that
// backend's memory and kernels. MirrorBackend is the CPU's kernels under another type, with an
// arena of its own type, so a part of the engine that reaches for the CPU backend or its arena
// instead of its model's does not compile, and every number must be the CPU model's, bit for bit.
// A device backend (issue: CUDA) runs this same test with its own type in place of the mirror.
#include <doctest/doctest.h>

#include <random>

#include <circuitry/circuits/acdc.hpp>
#include <circuitry/patching.hpp>

#include "fixtures.hpp"

using namespace circuitry;
using circuitry::testing::Fixture;

namespace {

struct MirrorArena : Arena {};
struct MirrorBackend : CpuBackend {
  static constexpr std::string_view name = "mirror";
  using Arena = MirrorArena;
};
static_assert(Backend<MirrorBackend>);

}  // namespace

TEST_CASE("a model on a second backend: every method gives the CPU model's numbers, bit for bit") {
  for (const char* name : {"gpt2-tiny", "hf-llama-gqa"}) {
    CAPTURE(name);
    Fixture<double> fx(name);
    fx.template with_model<ArchitectureList<GPT2, Llama>>([&](const auto& cpu) {
      using Arch = typename std::decay_t<decltype(cpu)>::architecture;
      const Model<Arch, double, MirrorBackend> mirror(cpu.config(), cpu.weights());
      static_assert(std::is_same_v<typename decltype(mirror)::backend, MirrorBackend>);
      const auto task = make_patching_task(cpu, fx.task);
      const auto mirror_task = make_patching_task(mirror, fx.task);
      CHECK(mirror_task.clean_logits == task.clean_logits);
      CHECK(node_outputs(mirror, task.corrupted) == node_outputs(cpu, task.corrupted));

      const BuiltinMetric metric{MetricKind::KL};
      CHECK(attribute(mirror, mirror_task, metric, Eap{}).edge_scores == attribute(cpu, task, metric, Eap{}).edge_scores);
      CHECK(attribute(mirror, mirror_task, metric, EapIg{3}).edge_scores == attribute(cpu, task, metric, EapIg{3}).edge_scores);
      CHECK(attribute(mirror, mirror_task, metric, CleanCorrupted{}).edge_scores ==
            attribute(cpu, task, metric, CleanCorrupted{}).edge_scores);
      ExactPatching exact;
      exact.max_rows = 64;  // several lanes per forward
      const auto exact_scores = attribute(cpu, task, metric, exact).edge_scores;
      CHECK(attribute(mirror, mirror_task, metric, exact).edge_scores == exact_scores);

      const AcdcCircuit a = acdc(cpu, task, MetricKind::KL, 1e-3), b = acdc(mirror, mirror_task, MetricKind::KL, 1e-3);
      CHECK(a.in_graph == b.in_graph);
      CHECK(a.metric == b.metric);
      CHECK(std::count(a.in_graph.begin(), a.in_graph.end(), 1) > 0);  // a circuit to compare, not an empty one

      std::mt19937 rng(7);
      std::vector<std::uint8_t> circuit(cpu.graph().n_edges());
      for (auto& in : circuit) in = rng() % 2;
      CHECK(evaluate_circuit(mirror, mirror_task, metric, circuit, ablation_source(mirror, mirror_task, Ablation::Resample)).logits ==
            evaluate_circuit(cpu, task, metric, circuit, ablation_source(cpu, task, Ablation::Resample)).logits);
      const auto& pp = fx.expected["path_patching"][0];
      const auto senders = pp["senders"].template get<std::vector<std::string>>();
      const auto receivers = pp["receivers"].template get<std::vector<std::string>>();
      CHECK(path_patch(mirror, mirror_task, metric, senders, receivers).patched_metric ==
            path_patch(cpu, task, metric, senders, receivers).patched_metric);
      const auto paths = fx.expected["path_sets"].back()["paths"].template get<std::vector<std::vector<std::string>>>();
      REQUIRE(!paths.empty());
      CHECK(evaluate_path_set(mirror, mirror_task, paths).aue == evaluate_path_set(cpu, task, paths).aue);
    });
  }
}

TEST_CASE("Gemma on a second backend: the heads' shares, windows and soft caps reach no CPU-only path") {
  const std::string dir = std::string(CIRCUITRY_FIXTURES_DIR) + "/hf-gemma2";
  const auto checkpoint = io::load_model_directory<double>(dir);
  const Task task_lines = read_task(dir + "/task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
  with_architecture<ArchitectureList<Gemma>>(checkpoint.config, [&]<class Arch>() {
    const Model<Arch, double> cpu(checkpoint.config, checkpoint.weights);
    const Model<Arch, double, MirrorBackend> mirror(checkpoint.config, checkpoint.weights);
    const auto task = make_patching_task(cpu, task_lines);
    const auto mirror_task = make_patching_task(mirror, task_lines);
    CHECK(mirror_task.clean_logits == task.clean_logits);
    CHECK(node_outputs(mirror, task.corrupted) == node_outputs(cpu, task.corrupted));
    const BuiltinMetric metric{MetricKind::LogitDiff};
    CHECK(attribute(mirror, mirror_task, metric, Eap{}).edge_scores == attribute(cpu, task, metric, Eap{}).edge_scores);
    CHECK(attribute(mirror, mirror_task, metric, ExactPatching{}).edge_scores == attribute(cpu, task, metric, ExactPatching{}).edge_scores);
    const AcdcCircuit a = acdc(cpu, task, MetricKind::KL, 2e-3), b = acdc(mirror, mirror_task, MetricKind::KL, 2e-3);
    CHECK(a.in_graph == b.in_graph);
    CHECK(a.metric == b.metric);
    CHECK(path_patch(mirror, mirror_task, metric, {"a0.h1", "m0"}, {"a2.h0<q>", "logits"}).patched_metric ==
          path_patch(cpu, task, metric, {"a0.h1", "m0"}, {"a2.h0<q>", "logits"}).patched_metric);
  });
}
