// The front door (include/circuitry/api/): the registries agree with the parsers beside the
// values they name, methods by name run the policies they name, results carry the command line's
// keys and refuse NaN, the ground-truth lookup and the task generators.
#include <doctest/doctest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <string>
#include <string_view>
#include <vector>

#include <circuitry/api.hpp>
#include <circuitry/text/bpe_tokenizer.hpp>

#include "error_check.hpp"
#include "fixtures.hpp"

using namespace circuitry;
using namespace circuitry::testing;

TEST_CASE("registries: every name parses, and every value has its name") {
  for (const api::Choice& c : api::metrics()) CHECK(metric_name(parse_metric(c.name)) == c.name);
  CHECK(api::metrics().size() == 6);  // every MetricKind
  for (const api::Choice& c : api::ablations()) CHECK(ablation_name(parse_ablation(c.name)) == c.name);
  for (Ablation a : {Ablation::Resample, Ablation::Zero, Ablation::Mean}) CHECK(api::find_choice(api::ablations(), ablation_name(a), "ablation").name == ablation_name(a));
  for (const api::Choice& c : api::position_modes()) CHECK_NOTHROW(parse_position_mode(c.name));
  std::vector<std::string> attribution;
  for (const api::Choice& c : api::attribution_methods()) attribution.push_back(c.name);
  CHECK(attribution == attribution_method_names());
  std::vector<std::string> all;
  for (const api::Choice& c : api::comparison_methods()) all.push_back(c.name);
  CHECK(all == comparison_method_names());
  CHECK(api::methods().back().name == "learn-mask");
  CHECK(api::architectures().size() == 9);
  CHECK(api::architectures().front().name == GPT2::name());
  CHECK(api::names_of(api::ablations()) == "resample, zero or mean");
  CHECK_ERROR(api::find_choice(api::metrics(), "accuracy", "--metric"), "unknown --metric 'accuracy'", "logit_diff, prob_diff");
  CHECK_ERROR(parse_ablation("noise"), "unknown ablation 'noise'");
  CHECK(api::task_metric("greater-than") == "prob_diff");
  CHECK_ERROR(api::task_metric("ioi2"), "unknown task 'ioi2'", "ioi, greater-than, docstring or induction");
}

namespace {
AttributionByName by_name(const std::string& method, std::size_t steps = 5, std::size_t memory_budget = 0) {
  AttributionByName request;
  request.method = method, request.steps = steps, request.memory_budget = memory_budget;
  return request;
}
}  // namespace

TEST_CASE("attribute_by_name runs the policy it names, with its options") {
  Fixture<double> fx("gpt2-tiny");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    CHECK(attribute_by_name(model, task, metric, by_name("eap")).edge_scores == attribute(model, task, metric, Eap{}).edge_scores);
    CHECK(attribute_by_name(model, task, metric, by_name("eap-ig", 3)).edge_scores ==
          attribute(model, task, metric, EapIg{3}).edge_scores);
    CHECK(attribute_by_name(model, task, metric, by_name("clean-corrupted", 5, 1)).edge_scores ==
          attribute(model, task, metric, CleanCorrupted{.memory_budget = 1}).edge_scores);  // one example per part
    AttributionByName exact = by_name("exact");
    exact.exact.edges.assign(model.graph().n_edges(), 0);
    exact.exact.edges[3] = 1;
    const Attribution one = attribute_by_name(model, task, metric, exact);
    const Attribution all = attribute(model, task, metric, ExactPatching{});
    CHECK(one.edge_scores[3] == all.edge_scores[3]);
    CHECK(one.edge_scores[4] == 0.0);
    AttributionByName atp = by_name("atp-star");
    atp.atp_star.grad_drop = false;
    CHECK(attribute_by_name(model, task, metric, atp).edge_scores == attribute(model, task, metric, AtpStar{.grad_drop = false}).edge_scores);
    AttributionByName gim = by_name("gim");
    gim.gim.softmax_temperature = 3;
    CHECK(attribute_by_name(model, task, metric, gim).edge_scores == attribute(model, task, metric, Gim{.softmax_temperature = 3}).edge_scores);
    CHECK(attribute_by_name(model, task, metric, by_name("gim")).edge_scores != attribute_by_name(model, task, metric, gim).edge_scores);
    CHECK_ERROR(attribute_by_name(model, task, metric, by_name("acdc")), "unknown method 'acdc'", "eap, eap-ig, clean-corrupted, gim, atp-star or exact");
  });
}

TEST_CASE("evaluate against the references: the empty circuit is 0, the full one 1, with the CLI's keys") {
  Fixture<double> fx("gpt2-tiny");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const std::size_t E = model.graph().n_edges();
    const auto empty = api::evaluate_circuit_against_references(model, task, MetricKind::LogitDiff, Ablation::Resample, std::vector<std::uint8_t>(E, 0));
    const auto full = api::evaluate_circuit_against_references(model, task, MetricKind::LogitDiff, Ablation::Zero, std::vector<std::uint8_t>(E, 1));
    CHECK(empty.to_json()["faithfulness"] == 0.0);
    CHECK(full.to_json()["faithfulness"] == 1.0);
    CHECK(full.n_edges_in_graph == E);
    std::vector<std::uint8_t> half(E, 0);
    for (std::size_t e = 0; e < E; e += 2) half[e] = 1;
    const auto some = api::evaluate_circuit_against_references(model, task, MetricKind::LogitDiff, Ablation::Resample, half);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    CHECK(some.circuit_metric == evaluate_circuit(model, task, metric, half, ablation_source(model, task, Ablation::Resample, &task.corrupted)).metric);
    std::vector<std::string> keys;
    const api::Json j = some.to_json();
    for (const auto& [key, value] : j.items()) keys.push_back(key);
    CHECK(keys == std::vector<std::string>{"metric", "ablation", "clean_metric", "corrupted_metric", "circuit_metric", "faithfulness", "n_edges_in_graph"});
    CHECK_ERROR(api::evaluate_circuit_against_references(model, task, MetricKind::LogitDiff, Ablation::Resample, std::vector<std::uint8_t>(3, 1)),
                "3 flags", std::to_string(E) + " edges");
  });
}

TEST_CASE("results: a NaN anywhere is refused, naming the key; undefined faithfulness is null") {
  api::CircuitEvaluation same;
  same.clean_metric = same.corrupted_metric = 2.0;
  CHECK(same.to_json()["faithfulness"].is_null());
  PathPatchResult nan{std::numeric_limits<double>::quiet_NaN(), 1.0, 2.0};
  CHECK_ERROR(api::result_text(api::path_patch_json(nan, "kl")), "the result effect is not finite");
  api::Json nested = {{"curve", {{{"fraction", 0.1}}, {{"fraction", std::numeric_limits<double>::infinity()}}}}};
  CHECK_ERROR(api::require_finite(nested), "curve[1].fraction");
  CHECK(api::result_text(api::path_set_json({0.5, 1.0, 0.5}, "kl")) == "{\n \"delta\": \"kl\",\n \"aue\": 0.5,\n \"ate\": 1.0,\n \"proportion_explained\": 0.5\n}\n");
}

TEST_CASE("ground truths: a file first, then a shipped name through the program's lookup") {
  const Graph graph(GraphShape{4, 4, false, false});  // the docstring model's shape: attention-only, 4 x 4
  std::string file_asked;
  const std::string text = R"({"edges": ["input->a0.h0<q>", "a3.h0->logits"]})";
  const api::ShippedFiles lookup = [&](std::string_view file) {
    file_asked = std::string(file);
    return std::string_view(text);
  };
  const auto flags = api::resolve_ground_truth(graph, "docstring", "edges", lookup);
  CHECK(file_asked == "docstring-attn-only-4l.json");
  CHECK(std::count(flags.begin(), flags.end(), std::uint8_t{1}) == 2);
  CHECK_ERROR(api::resolve_ground_truth(graph, "ioi", "edges", nullptr), "does not ship with this program", "ioi-gpt2-small.json");
  CHECK_ERROR(api::resolve_ground_truth(graph, "nonesuch", "edges", lookup), "neither a file nor a shipped ground truth");
}

TEST_CASE("task generators by name: the lines of the task file, the words skipped, the generator's metric") {
  const auto gpt2 = text::ByteLevelBpeTokenizer::from_directory(CIRCUITRY_SOURCE_DIR "/data/gpt2-bpe");
  const api::GeneratedTask t = api::generate_task("ioi", 4, 7, gpt2);
  CHECK(t.examples.size() == 4);
  CHECK(std::count(t.lines.begin(), t.lines.end(), '\n') == 4);
  CHECK(t.lines == text::text_task_lines(text::make_ioi(4, 7, gpt2), gpt2));
  CHECK(t.lines.find("\"clean_text\"") != std::string::npos);
  CHECK(api::generate_task("greater-than", 2, 1, gpt2).examples.size() == 2);
  CHECK_ERROR(api::generate_task("ioi2", 4, 7, gpt2), "unknown task 'ioi2'");
  CHECK_ERROR(api::generate_task("ioi", 0, 7, gpt2), "ioi", "positive");
}

namespace {
/// R ranks simulated one after another in this process: each rank's share() deposits the items it
/// owns in a table the ranks share and takes the others' items from there; a rank run before some
/// other rank's items are in stops there (NotYetShared), and the last one run holds every item, as
/// every rank does under MPI.
struct NotYetShared {};
struct SequentialRanks {
  std::vector<std::string> table;
  std::vector<std::uint8_t> filled;
};
class SimulatedRank final : public Distribution {
 public:
  SimulatedRank(std::size_t rank, std::size_t size, SequentialRanks& shared) : rank_(rank), size_(size), shared_(&shared) {}
  std::size_t rank() const override { return rank_; }
  std::size_t size() const override { return size_; }
  void share(std::vector<std::string>& items) const override {
    shared_->table.resize(items.size()), shared_->filled.resize(items.size(), 0);
    for (std::size_t i = 0; i < items.size(); ++i)
      if (owns(i)) shared_->table[i] = items[i], shared_->filled[i] = 1;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (owns(i)) continue;
      if (!shared_->filled[i]) throw NotYetShared{};
      items[i] = shared_->table[i];
    }
  }

 private:
  std::size_t rank_, size_;
  SequentialRanks* shared_;
};

/// R ranks as R threads of this process, for work that shares more than once (ACDC's windows):
/// share() deposits the items a rank owns, meets the others at a barrier, takes their items, and
/// meets them again before the table is reused.
class ThreadedRanks {
 public:
  explicit ThreadedRanks(std::size_t size) : size_(size), meet_(static_cast<std::ptrdiff_t>(size)) {}

  /// Runs body(rank) on every rank at once; rethrows the first rank's exception.
  void run(const std::function<void(const Distribution&)>& body) {
    std::vector<std::exception_ptr> errors(size_);
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < size_; ++r)
      threads.emplace_back([&, r] {
        const Rank rank(r, *this);
        try {
          body(rank);
        } catch (...) {
          errors[r] = std::current_exception();
          meet_.arrive_and_drop();  // the others go on (and fail on the missing items) rather than wait
        }
      });
    for (std::thread& t : threads) t.join();
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
  }

 private:
  class Rank final : public Distribution {
   public:
    Rank(std::size_t rank, ThreadedRanks& all) : rank_(rank), all_(&all) {}
    std::size_t rank() const override { return rank_; }
    std::size_t size() const override { return all_->size_; }
    void share(std::vector<std::string>& items) const override {
      {
        const std::lock_guard lock(all_->mutex_);
        all_->table_.resize(items.size());
        for (std::size_t i = 0; i < items.size(); ++i)
          if (owns(i)) all_->table_[i] = items[i];
      }
      all_->meet_.arrive_and_wait();
      for (std::size_t i = 0; i < items.size(); ++i)
        if (!owns(i)) items[i] = all_->table_[i];
      all_->meet_.arrive_and_wait();
    }

   private:
    std::size_t rank_;
    ThreadedRanks* all_;
  };

  std::size_t size_;
  std::barrier<> meet_;
  std::mutex mutex_;
  std::vector<std::string> table_;
};
}  // namespace

TEST_CASE("ACDC with fewer passes than ranks: each pass's windows over the ranks give one process's bytes on every rank") {
  for (const char* name : {"gpt2-small3", "attn-only"}) {
    Fixture<double> fx(name);
    fx.with_model([&](const auto& model) {
      using Model = std::decay_t<decltype(model)>;
      const auto task = make_patching_task(model, fx.task);
      for (std::size_t lanes : {1, 2, 8}) {
        AcdcOptions one;
        one.lanes = lanes;
        const std::vector<double> thresholds = {0.001, 0.02};  // some edges kept, some removed
        const AcdcSweep whole = Acdc<Model, double>(model, task, MetricKind::KL, one).sweep(thresholds);
        REQUIRE(whole.circuits[0].n_edges > 0);
        REQUIRE(whole.circuits[0].n_edges < model.graph().n_edges());
        for (std::size_t R : {2, 3}) {
          CAPTURE(name);
          CAPTURE(lanes);
          CAPTURE(R);
          ThreadedRanks ranks(R);
          std::vector<AcdcSweep> got(R);
          std::vector<AcdcCircuit> single(R);
          ranks.run([&](const Distribution& rank) {
            AcdcOptions split = one;
            split.distribution = &rank;
            const Acdc<Model, double> acdc_run(model, task, MetricKind::KL, split);
            got[rank.rank()] = acdc_run.sweep(thresholds);        // 2 passes < R ranks: windows over the ranks
            single[rank.rank()] = acdc_run.pass(thresholds[1]);  // one pass: likewise
          });
          for (std::size_t r = 0; r < R; ++r) {
            CHECK(got[r].edge_scores == whole.edge_scores);
            for (std::size_t i = 0; i < thresholds.size(); ++i) {
              CHECK(got[r].circuits[i].in_graph == whole.circuits[i].in_graph);
              CHECK(got[r].circuits[i].distance == whole.circuits[i].distance);
              CHECK(got[r].circuits[i].metric == whole.circuits[i].metric);
              CHECK(got[r].circuits[i].runs == whole.circuits[i].runs);
            }
            CHECK(single[r].in_graph == whole.circuits[1].in_graph);
            CHECK(single[r].runs == whole.circuits[1].runs);
          }
        }
      }
    });
  }
}

TEST_CASE("a Distribution splits learn-mask's restarts; every rank returns one process's result") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    LearnMaskOptions o;
    o.target_edges = 20, o.steps = 3, o.restarts = 3, o.lr = 0.5;
    const LearnedMask whole = learn_mask(model, task, o);
    ThreadedRanks ranks(2);
    std::vector<LearnedMask> got(2);
    ranks.run([&](const Distribution& rank) {
      LearnMaskOptions split = o;
      split.distribution = &rank;
      got[rank.rank()] = learn_mask(model, task, split);
    });
    for (const LearnedMask& r : got) {
      CHECK(r.log_alpha == whole.log_alpha);
      CHECK(r.in_graph == whole.in_graph);
      CHECK(r.seed == whole.seed);
      CHECK(r.loss == whole.loss);
      CHECK(r.circuit_faithfulness == whole.circuit_faithfulness);
      REQUIRE(r.restarts.size() == whole.restarts.size());
      for (std::size_t i = 0; i < r.restarts.size(); ++i) CHECK(r.restarts[i].objective == whole.restarts[i].objective);
    }
  });
}

TEST_CASE("a Distribution splits exact patching's groups and ACDC's passes; the last rank holds one process's bytes") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    ExactPatching one;
    one.max_rows = 2 * task.clean.rows();  // two lanes a group: many groups
    const Attribution whole = attribute(model, task, metric, one);
    for (std::size_t R : {2, 3}) {
      CAPTURE(R);
      SequentialRanks shared;
      Attribution last;
      for (std::size_t r = R; r-- > 0;) {  // rank 0 last
        const SimulatedRank rank(r, R, shared);
        ExactPatching split = one;
        split.distribution = &rank;
        if (r > 0) CHECK_THROWS_AS(attribute(model, task, metric, split), NotYetShared);
        else last = attribute(model, task, metric, split);
      }
      CHECK(last.edge_scores == whole.edge_scores);
    }
    const std::vector<double> thresholds = {0.001, 0.01, 0.1};
    const AcdcSweep sweep = Acdc<std::decay_t<decltype(model)>, double>(model, task, MetricKind::KL, {}).sweep(thresholds);
    SequentialRanks shared;
    AcdcSweep last;
    for (std::size_t r = 2; r-- > 0;) {
      const SimulatedRank rank(r, 2, shared);
      AcdcOptions options;
      options.distribution = &rank;
      const Acdc<std::decay_t<decltype(model)>, double> acdc_run(model, task, MetricKind::KL, options);
      if (r > 0) CHECK_THROWS_AS(acdc_run.sweep(thresholds), NotYetShared);
      else last = acdc_run.sweep(thresholds);
    }
    CHECK(last.edge_scores == sweep.edge_scores);
    for (std::size_t i = 0; i < thresholds.size(); ++i) {
      CHECK(last.circuits[i].in_graph == sweep.circuits[i].in_graph);
      CHECK(last.circuits[i].distance == sweep.circuits[i].distance);
      CHECK(last.circuits[i].runs == sweep.circuits[i].runs);
      CHECK(last.circuits[i].threshold == thresholds[i]);
    }
    ExactPatching refused = one;
    const SimulatedRank rank(0, 2, shared);
    refused.distribution = &rank;
    refused.checkpoint = [](const ExactCheckpoint&) {};
    CHECK_ERROR(attribute(model, task, metric, refused), "checkpoints are for one process");
  });
}

TEST_CASE("a Distribution splits the gradient methods' parts; the sum in part order gives one process's bytes") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const Attribution whole = attribute(model, task, metric, EapIg{.steps = 3, .memory_budget = 1});  // a part per example
    REQUIRE(task.clean.batch > 2);
    for (std::size_t R : {2, 3}) {
      CAPTURE(R);
      SequentialRanks shared;
      for (std::size_t r = R; r-- > 0;) {
        const SimulatedRank rank(r, R, shared);
        const EapIg split{.steps = 3, .memory_budget = 1, .distribution = &rank};
        if (r > 0) {
          CHECK_THROWS_AS(attribute(model, task, metric, split), NotYetShared);
        } else {
          const Attribution last = attribute(model, task, metric, split);
          CHECK(last.edge_scores == whole.edge_scores);
          CHECK(last.corrupted_metric == whole.corrupted_metric);
        }
      }
    }
    // AtP*'s parts go the same way.
    const Attribution atp_whole = attribute(model, task, metric, AtpStar{.memory_budget = 1});
    for (std::size_t R : {2, 3}) {
      SequentialRanks shared;
      for (std::size_t r = R; r-- > 0;) {
        const SimulatedRank rank(r, R, shared);
        const AtpStar split{.memory_budget = 1, .distribution = &rank};
        if (r > 0) CHECK_THROWS_AS(attribute(model, task, metric, split), NotYetShared);
        else CHECK(attribute(model, task, metric, split).edge_scores == atp_whole.edge_scores);
      }
    }
  });
}

TEST_CASE("a Distribution splits the MIB curve's circuits; every rank gets one process's curve") {
  Fixture<double> fx("gpt2-small3");
  fx.with_model([&](const auto& model) {
    const auto task = make_patching_task(model, fx.task);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    const std::vector<double> scores = attribute(model, task, metric, Eap{}).edge_scores;
    const FaithfulnessCurve whole = faithfulness_curve(model, task, metric, scores);
    SequentialRanks shared;
    for (std::size_t r = 3; r-- > 0;) {
      const SimulatedRank rank(r, 3, shared);
      if (r > 0) {
        CHECK_THROWS_AS(faithfulness_curve(model, task, metric, scores, &rank), NotYetShared);
        continue;
      }
      const FaithfulnessCurve last = faithfulness_curve(model, task, metric, scores, &rank);
      REQUIRE(last.points.size() == whole.points.size());
      for (std::size_t i = 0; i < whole.points.size(); ++i) {
        CHECK(last.points[i].fraction == whole.points[i].fraction);
        CHECK(last.points[i].value == whole.points[i].value);
      }
      CHECK(last.edges_kept == whole.edges_kept);
      CHECK(last.cpr == whole.cpr);
      CHECK(last.cmd == whole.cmd);
    }
  });
}
