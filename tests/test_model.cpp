// Models: forward against PyTorch fixtures (tests/make_fixtures.py), whole-model gradients
// against finite differences, hooks.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include <circuitry/io/model_directory.hpp>
#include <circuitry/models/model.hpp>
#include <circuitry/task/metrics.hpp>
#include <circuitry/text/task.hpp>

#include "error_check.hpp"
#include "fixtures.hpp"
#include "temp_dir.hpp"

using namespace circuitry;
using namespace circuitry::io;
using circuitry::testing::Fixture;

TEST_CASE_TEMPLATE("forward logits and metrics match PyTorch", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-9;
  for (const char* name : {"gpt2-tiny", "gpt2-small3", "attn-only", "gpt2-tiny-f16", "gpt2-tiny-bf16"}) {
    CAPTURE(name);
    Fixture<T> fx(name);
    fx.with_model([&](const auto& model) {
      Arena arena;
      Context<T, false> ctx(arena);
      Var<T> logits = model.forward(ctx, fx.clean_batch());
      const auto& expected = fx.expected["logits"];
      REQUIRE(logits.shape[0] == expected.size());
      double worst = 0;
      for (std::size_t b = 0; b < expected.size(); ++b)
        for (std::size_t v = 0; v < expected[b].size(); ++v)
          worst = std::max(worst, std::abs(double(logits.value[b * logits.shape[1] + v]) - expected[b][v].template get<double>()));
      CHECK(worst < tol);
      for (auto kind : {MetricKind::LogitDiff, MetricKind::ProbDiff, MetricKind::KL, MetricKind::Loss}) {
        const auto& m = fx.expected["metrics"][metric_name(kind)];
        CHECK(fx.metric_of(model, kind, fx.clean_batch()) == doctest::Approx(m["clean_metric"].template get<double>()).epsilon(tol));
        CHECK(fx.metric_of(model, kind, fx.corrupted_batch()) ==
              doctest::Approx(m["corrupted_metric"].template get<double>()).epsilon(tol));
      }
    });
  }
}

// An architecture no checkpoint format names, composed only for this test: adding one is a `using`.
using NoPositionsGelu = Architecture<NoPositions, PreNorm<LayerNorm>, Attention<Causal>, Mlp<Gelu>, Unembed<LayerNorm>>;

TEST_CASE_TEMPLATE("whole-model gradients match finite differences (double), every architecture", Arch, GPT2, AttnOnly,
                   GeluTransformer, BidirectionalRelu, Tracr, NoPositionsGelu, Pythia, NeoXSequential, Llama) {
  ModelConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 6, c.n_positions = 8, c.vocab_size = 11, c.n_inner = 10;
  c.normalization = std::string(Arch::norm::name), c.attention_dir = std::string(Arch::attention::name);
  c.positional = std::string(Arch::positional()), c.attn_only = !Arch::has_mlp;
  c.parallel_attn_mlp = Arch::parallel_attn_mlp;
  if constexpr (Arch::has_mlp) c.act_fn = std::string(Arch::mlp::name), c.gated_mlp = Arch::mlp::gated;
  if constexpr (!std::is_same_v<Arch, GPT2>) {  // d_head free, untied unembedding with a bias, fewer outputs
    c.head_dim = 4, c.tie_word_embeddings = false, c.unembed_bias = true, c.vocab_out = 9;
  }
  // Rotary over part of each head (Pythia) or all of it, at a small base so the angles are large.
  if constexpr (Arch::attention::rotary) c.rotary_dim = std::is_same_v<Arch, Pythia> ? 2 : 0, c.rotary_base = 10.0;
  if constexpr (std::is_same_v<Arch, Llama>) {  // Qwen2-like: grouped-query attention, q/k/v biases only
    c.n_head = 4, c.n_kv_head = 2, c.head_dim = 2, c.attn_out_bias = false, c.mlp_bias = false, c.unembed_bias = false;
  }
  // Llama also with a QK norm (Qwen3): RMS norms of each head's q and k.
  for (const bool qk_norm : std::is_same_v<Arch, Llama> ? std::vector<bool>{false, true} : std::vector<bool>{false}) {
    CAPTURE(qk_norm);
    c.qk_norm = qk_norm;
    auto model = Model<Arch, double>::random(c, 3, 0.4);
    std::mt19937 rng(5);
    std::normal_distribution<double> normal(0.0, 0.3);
    // Random biases and gains too, so every parameter's gradient is exercised away from 0 / 1.
    for (const ParamDecl& d : Arch::parameter_list(c))
      if (auto& t = model.weights().at(d.name); t.dimension() == 1)
        for (auto& v : t) v += normal(rng);
    const Batch batch = Batch::from({{1, 4, 2, 7}, {3, 3, 9}});
    const std::vector<int> targets{0, 5, 2, 8, 1, 1, 6, 7};  // one per position (padded rows included)
    auto loss_of = [&](Model<Arch, double>& m) {
      Arena arena;
      Context<double, false> ctx(arena);
      ForwardOptions<double> o;
      o.all_positions = true;
      return ops::cross_entropy(ctx, m.forward(ctx, batch, o), targets).value[0];
    };
    Arena arena;
    Tape<double> tape(arena);
    Context<double, true> ctx(arena, tape);
    ParamVars<double> params = model.params();
    params.watch_all(tape);
    ForwardOptions<double> o;
    o.all_positions = true;
    Var<double> input;
    o.input_var = &input;
    tape.backward(ops::cross_entropy(ctx, model.forward(ctx, batch, o, &params), targets));

    double worst = 0, largest = 0;
    std::size_t n_params = 0;
    for (const auto& entry : params.entries()) {
      auto& tensor = model.weights().at(entry.name);
      const double* g = tape.grad(entry.var);
      ++n_params;
      for (int k = 0; k < 6; ++k) {
        const std::size_t i = rng() % tensor.size();
        const double x0 = tensor.data()[i], h = 1e-6;
        tensor.data()[i] = x0 + h;
        const double up = loss_of(model);
        tensor.data()[i] = x0 - h;
        const double down = loss_of(model);
        tensor.data()[i] = x0;
        const double numeric = (up - down) / (2 * h);
        worst = std::max(worst, std::abs(numeric - g[i]));
        largest = std::max(largest, std::abs(numeric));
      }
    }
    CHECK(n_params == Arch::parameter_list(c).size());
    CHECK(largest > 1e-3);
    CHECK(worst < 1e-7);

    // d loss / d (input node output): perturb the embeddings through input_override.
    const std::size_t n = batch.rows() * c.n_embd;
    std::vector<double> embed(input.value, input.value + n);
    const double* g_in = tape.grad(input);
    worst = 0;
    for (std::size_t i = 0; i < n; i += 5) {
      auto run = [&](double delta) {
        std::vector<double> e = embed;
        e[i] += delta;
        Arena a2;
        Context<double, false> plain(a2);
        ForwardOptions<double> oo;
        oo.all_positions = true;
        oo.input_override = e.data();
        return ops::cross_entropy(plain, model.forward(plain, batch, oo), targets).value[0];
      };
      worst = std::max(worst, std::abs((run(1e-6) - run(-1e-6)) / 2e-6 - g_in[i]));
    }
    CHECK(worst < 1e-7);
  }
}

TEST_CASE("Batch: where each sequence's last-position logits are among the readout rows, in both position modes") {
  Batch b = Batch::from({{1, 4, 2, 7}, {3, 3}, {5, 6, 8}});  // pos 4; last rows 3, 5, 10
  CHECK(b.last_readout_indices() == std::vector<std::size_t>{0, 1, 2});
  b.read_all_positions();  // rows 1, 2, 3 | 5 | 9, 10
  CHECK(b.readout == std::vector<std::size_t>{1, 2, 3, 5, 9, 10});
  CHECK(b.last_readout_indices() == std::vector<std::size_t>{2, 3, 5});
  b.readout.pop_back();
  CHECK_THROWS_WITH_AS(b.last_readout_indices(), doctest::Contains("last position"), Error);
}

TEST_CASE("bidirectional attention: padding never changes a real position, and later tokens reach earlier ones") {
  ModelConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 8, c.n_positions = 8, c.vocab_size = 11, c.n_inner = 12;
  c.normalization = "none", c.attention_dir = "bidirectional", c.act_fn = "relu";
  const auto model = Model<Tracr, double>::random(c, 4, 0.5);
  auto logits_all = [&](const Batch& batch) {
    Arena arena;
    Context<double, false> ctx(arena);
    ForwardOptions<double> o;
    o.all_positions = true;
    Var<double> y = model.forward(ctx, batch, o);
    return std::vector<double>(y.value, y.value + y.numel());
  };
  const auto alone = logits_all(Batch::from({{1, 4, 2}}));
  const auto padded = logits_all(Batch::from({{1, 4, 2}, {3, 3, 9, 5, 6}}));  // first sequence padded to 5
  const std::size_t V = c.n_outputs();
  for (std::size_t i = 0; i < 3 * V; ++i) CHECK(padded[i] == doctest::Approx(alone[i]).epsilon(1e-12));
  const auto changed = logits_all(Batch::from({{1, 4, 7}}));  // only the last token differs
  double moved = 0;
  for (std::size_t i = 0; i < V; ++i) moved = std::max(moved, std::abs(changed[i] - alone[i]));
  CHECK(moved > 1e-6);  // position 0 sees position 2
}

TEST_CASE_TEMPLATE("TransformerLens checkpoints: logits match TransformerLens and the reference", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-9;
  for (const char* name : {"tl-gelu-new", "tl-gelu", "tl-relu-bidir", "tl-nonorm-relu", "tl-attn-only", "tl-lnpre"}) {
    CAPTURE(name);
    Fixture<T> fx(name);
    std::ifstream in(fx.dir + "/tl-logits.json");
    const nlohmann::json tl = nlohmann::json::parse(in)[std::is_same_v<T, float> ? "float32" : "float64"];
    fx.template with_model<RegisteredArchitectures>([&](const auto& model) {
      for (bool clean : {true, false}) {
        Arena arena;
        Context<T, false> ctx(arena);
        Var<T> last = model.forward(ctx, fx.batch(clean));
        const auto& reference = fx.expected[clean ? "logits" : "corrupted_logits"];
        const auto& theirs = tl[clean ? "logits" : "corrupted_logits"];
        REQUIRE(last.shape[0] == reference.size());
        REQUIRE(last.shape[1] == model.config().n_outputs());
        double worst = 0;
        for (std::size_t b = 0; b < reference.size(); ++b)
          for (std::size_t v = 0; v < last.shape[1]; ++v) {
            const double ours = last.value[b * last.shape[1] + v];
            worst = std::max({worst, std::abs(ours - reference[b][v].template get<double>()),
                              std::abs(ours - theirs[b][v].template get<double>())});
          }
        CHECK(worst < tol);
        // Every position of every example, against TransformerLens' own run.
        const auto& all = tl[clean ? "all_logits" : "all_corrupted_logits"];
        for (std::size_t b = 0; b < all.size(); ++b) {
          const Batch one = Batch::from({clean ? fx.task.examples[b].clean : fx.task.examples[b].corrupted});
          ForwardOptions<T> o;
          o.all_positions = true;
          Var<T> y = model.forward(ctx, one, o);
          for (std::size_t p = 0; p < all[b].size(); ++p)
            for (std::size_t v = 0; v < y.shape[1]; ++v)
              CHECK(std::abs(double(y.value[p * y.shape[1] + v]) - all[b][p][v].template get<double>()) < tol);
        }
      }
    });
  }
}

// Hugging Face GPT-NeoX / Llama-family fixtures (tests/make_hf_family_fixtures.py): circuitry's
// forward against transformers' float32 run, and in double against the exact float64 run
// (`float64_strict`: transformers itself keeps rotary angles and RMSNorm in float32).
template <class T>
void check_hf_logits(const std::string& dir, const std::string& logits_dir) {
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-9;
  const auto checkpoint = io::load_model_directory<T>(dir);
  const Task task = read_task(logits_dir + "/task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
  std::ifstream in(logits_dir + "/hf-logits.json");
  const nlohmann::json hf = nlohmann::json::parse(in)[std::is_same_v<T, float> ? "float32" : "float64_strict"];
  with_architecture(checkpoint.config, [&]<class Arch>() {
    const Model<Arch, T> model(checkpoint.config, checkpoint.weights);
    for (bool clean : {true, false}) {
      std::vector<std::vector<int>> seqs;
      for (const auto& e : task.examples) seqs.push_back(clean ? e.clean : e.corrupted);
      Arena arena;
      Context<T, false> ctx(arena);
      Var<T> last = model.forward(ctx, Batch::from(seqs));  // examples of different lengths, padded
      const auto& theirs = hf[clean ? "logits" : "corrupted_logits"];
      REQUIRE(last.shape[0] == theirs.size());
      double worst = 0;
      for (std::size_t b = 0; b < theirs.size(); ++b)
        for (std::size_t v = 0; v < last.shape[1]; ++v)
          worst = std::max(worst, std::abs(double(last.value[b * last.shape[1] + v]) - theirs[b][v].template get<double>()));
      CHECK(worst < tol);
      const auto& all = hf[clean ? "all_logits" : "all_corrupted_logits"];
      worst = 0;
      for (std::size_t b = 0; b < all.size(); ++b) {
        ForwardOptions<T> o;
        o.all_positions = true;
        Var<T> y = model.forward(ctx, Batch::from({seqs[b]}), o);
        for (std::size_t p = 0; p < all[b].size(); ++p)
          for (std::size_t v = 0; v < y.shape[1]; ++v)
            worst = std::max(worst, std::abs(double(y.value[p * y.shape[1] + v]) - all[b][p][v].template get<double>()));
      }
      CHECK(worst < tol);
    }
  });
}

TEST_CASE_TEMPLATE("Hugging Face GPT-NeoX, Llama, Qwen2, Qwen3, Mistral, Gemma 2, Gemma 3 (sliding windows included): logits match transformers", T, float, double) {
  const std::string fixtures = CIRCUITRY_FIXTURES_DIR;
  for (const char* name : {"hf-pythia", "hf-pythia-sequential", "hf-llama", "hf-llama-gqa", "hf-qwen2", "hf-qwen3", "hf-mistral",
                           "hf-llama-bf16", "hf-llama-sharded", "hf-llama-rope-linear", "hf-llama-rope-llama3", "hf-gemma2", "hf-gemma3",
                           "hf-mistral-sliding", "hf-qwen2-sliding"}) {
    CAPTURE(name);
    check_hf_logits<T>(fixtures + "/" + name, fixtures + "/" + name);
  }
  // The configs transformers 4.x wrote (rope_theta, rotary_pct, torch_dtype, ...) read as the same models.
  for (const char* model : {"hf-pythia", "hf-pythia-sequential", "hf-llama", "hf-llama-gqa", "hf-qwen2", "hf-qwen3", "hf-mistral",
                            "hf-llama-bf16", "hf-llama-rope-linear", "hf-llama-rope-llama3", "hf-mistral-sliding", "hf-qwen2-sliding"}) {
    CAPTURE(model);
    const testing::TempDir dir;
    std::filesystem::copy_file(fixtures + "/" + model + "/model.safetensors", dir / "model.safetensors");
    std::filesystem::copy_file(fixtures + "/hf-legacy-configs/" + model + ".json", dir / "config.json");
    check_hf_logits<T>(dir.path.string(), fixtures + "/" + model);
  }
}

TEST_CASE("Rope scaling: linear and llama3 inverse frequencies as transformers computes them") {
  const std::string fixtures = CIRCUITRY_FIXTURES_DIR;
  for (const char* name : {"hf-llama-rope-linear", "hf-llama-rope-llama3"}) {
    CAPTURE(name);
    const nlohmann::json expected = nlohmann::json::parse(std::ifstream(fixtures + "/" + name + "/rope-inv-freq.json"));
    // The config in transformers 5's spelling (rope_parameters) and in 4.x's (rope_theta + rope_scaling).
    for (const std::string& config : {fixtures + "/" + name + "/config.json", fixtures + "/hf-legacy-configs/" + name + ".json"}) {
      CAPTURE(config);
      const ModelConfig c = io::read_hf_family_config(config);
      CHECK(c.rope_scaling.type == expected["rope_parameters"]["rope_type"].get<std::string>());
      const std::vector<double> theta = ops::rotary_frequencies(c.rotary_dims(), c.rotary_base, c.rope_scaling);
      REQUIRE(theta.size() == expected["float64"].size());
      for (std::size_t i = 0; i < theta.size(); ++i) {
        CAPTURE(i);
        const double exact = expected["float64"][i].get<double>(), theirs = expected["transformers_float32"][i].get<double>();
        CHECK(std::abs(theta[i] - exact) <= 1e-15 * exact);
        CHECK(std::abs(theta[i] - theirs) <= 1e-6 * exact);  // transformers computes them in float32
      }
    }
  }
  // A table of the scaled frequencies: angle p theta_i at position p.
  ops::RopeScaling linear;
  linear.type = "linear", linear.factor = 4;
  const ops::RotaryTable<double> table(3, 4, 100.0, linear);
  CHECK(std::abs(table.cos[2 * 2 + 1] - std::cos(2 * 0.1 / 4)) < 1e-15);  // theta_1 = 100^(-1/2) / 4
  CHECK(std::abs(table.sin[2 * 2 + 0] - std::sin(2 * 1.0 / 4)) < 1e-15);  // theta_0 = 1 / 4
}

TEST_CASE("Qwen3's QK norm: its tensors are required exactly when model_type says qwen3") {
  const std::string fixtures = CIRCUITRY_FIXTURES_DIR;
  const testing::TempDir tmp;
  for (const char* type : {"qwen3", "qwen2"}) {
    CAPTURE(type);
    const std::filesystem::path dir = tmp / type;
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(fixtures + "/hf-qwen3/model.safetensors", dir / "model.safetensors");
    nlohmann::json config = nlohmann::json::parse(std::ifstream(fixtures + "/hf-qwen3/config.json"));
    config["model_type"] = type;
    testing::write_file(dir / "config.json", config.dump());
    if (std::string(type) == "qwen3") {
      const auto checkpoint = io::load_model_directory<float>(dir);
      CHECK(checkpoint.config.qk_norm);
      CHECK(checkpoint.weights.at("blocks.1.attn.k_norm.w").size() == 8);
    } else {  // Qwen2 has q/k/v biases and no QK norm: the file lacks the first and holds the second
      CHECK_ERROR(io::load_model_directory<float>(dir), "missing tensor 'layers.0.self_attn.q_proj.bias'",
                  "'model.layers.0.self_attn.q_proj.bias'");
    }
  }
}

TEST_CASE("Hugging Face configs circuitry cannot run are refused, naming the setting") {
  const std::string dir = std::string(CIRCUITRY_FIXTURES_DIR) + "/hf-unsupported/";
  CHECK_ERROR(io::read_hf_family_config(dir + "rope-scaling-yarn.json"), "rope_scaling", "yarn");
  CHECK_ERROR(io::read_hf_family_config(dir + "rope-parameters-yarn.json"), "rope_parameters", "yarn");
  CHECK_ERROR(io::read_hf_family_config(dir + "gqa-indivisible.json"), "num_key_value_heads");
  {  // A llama3 rope scaling without one of its numbers, and another rope_type, name the field.
    const testing::TempDir tmp;
    nlohmann::json config = nlohmann::json::parse(std::ifstream(std::string(CIRCUITRY_FIXTURES_DIR) + "/hf-legacy-configs/hf-llama-rope-llama3.json"));
    config["rope_scaling"].erase("high_freq_factor");
    testing::write_file(tmp / "config.json", config.dump());
    CHECK_ERROR(io::read_hf_family_config(tmp / "config.json"), "config.json", "rope_scaling", "high_freq_factor");
    config["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
    testing::write_file(tmp / "config.json", config.dump());
    CHECK_ERROR(io::read_hf_family_config(tmp / "config.json"), "rope_scaling", "dynamic");
  }
  {  // Sliding windows are read (Mistral: every layer; Qwen2: the layers from max_window_layers on).
    const ModelConfig mistral = io::read_hf_family_config(dir + "mistral-sliding.json");
    CHECK(mistral.sliding_window == 4);
    CHECK((mistral.window(0) == 4 && mistral.window(1) == 4));
    const ModelConfig qwen = io::read_hf_family_config(std::string(CIRCUITRY_FIXTURES_DIR) + "/hf-qwen2-sliding/config.json");
    CHECK((qwen.window(0) == 0 && qwen.window(1) == 3));
  }
  {  // A config.json claiming more layers than the checkpoint holds is refused before allocating them.
    const testing::TempDir tmp;
    const std::string llama = std::string(CIRCUITRY_FIXTURES_DIR) + "/hf-llama/";
    std::filesystem::copy_file(llama + "model.safetensors", tmp / "model.safetensors");
    nlohmann::json config = nlohmann::json::parse(std::ifstream(llama + "config.json"));
    config["num_hidden_layers"] = 1000000;
    testing::write_file(tmp / "config.json", config.dump());
    CHECK_ERROR(io::load_model_directory<float>(tmp.path), "num_hidden_layers = 1000000");
  }
  // Unknown model types (mixtral is MoE, bert an encoder) are refused by load_model_directory, listing what it reads.
  for (const char* file : {"mixtral.json", "unknown.json"}) {
    CAPTURE(file);
    const testing::TempDir tmp;
    std::filesystem::copy_file(dir + file, tmp / "config.json");
    CHECK_ERROR(io::load_model_directory<float>(tmp.path), "model_type", "llama");
  }
}

TEST_CASE("TransformerLens configs circuitry cannot run are refused, naming the field") {
  const std::string dir = std::string(CIRCUITRY_FIXTURES_DIR) + "/tl-unsupported/";
  for (auto [file, field] : {std::pair{"rotary.json", "positional_embedding_type"}, {"shortformer.json", "positional_embedding_type"},
                             {"solu.json", "act_fn"}, {"rms.json", "normalization_type"}}) {
    CAPTURE(file);
    try {
      read_transformer_lens_config(dir + file);
      FAIL("accepted " << file);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  }
  // A math-changing setting away from TransformerLens' default is refused by name; gelu_fast
  // and gelu_pytorch_tanh are gelu_new under other names.
  std::ifstream in(std::string(CIRCUITRY_FIXTURES_DIR) + "/tl-gelu-new/config.json");
  const nlohmann::json base = nlohmann::json::parse(in);
  const std::filesystem::path tmp = std::filesystem::temp_directory_path() / "circuitry-tl-config.json";
  for (auto [key, value] : {std::pair{"gated_mlp", nlohmann::json(true)}, {"parallel_attn_mlp", true}, {"n_key_value_heads", 1},
                            {"attn_scale", 3.0}, {"final_rms", true}}) {
    nlohmann::json j = base;
    j[key] = value;
    std::ofstream(tmp) << j.dump();
    CAPTURE(key);
    CHECK_THROWS_WITH_AS(read_transformer_lens_config(tmp), doctest::Contains(key), Error);
  }
  nlohmann::json fast = base;
  fast["act_fn"] = "gelu_fast";
  std::ofstream(tmp) << fast.dump();
  CHECK(read_transformer_lens_config(tmp).act_fn == "gelu_new");
  std::filesystem::remove(tmp);
}

TEST_CASE_TEMPLATE("tracr's compiled models: circuitry reproduces tracr's own outputs", T, float, double) {
  for (const char* name : {"reverse", "proportion"}) {
    CAPTURE(name);
    const auto checkpoint = load_model_directory<T>(std::string(CIRCUITRY_SOURCE_DIR) + "/data/tracr/" + name);
    const Model<Tracr, T> model(checkpoint.config, checkpoint.weights);
    std::ifstream in(std::string(CIRCUITRY_FIXTURES_DIR) + "/tracr/" + name + "-expected.json");
    const nlohmann::json expected = nlohmann::json::parse(in);
    double worst = 0;
    for (const auto& example : expected["examples"])
      for (bool clean : {true, false}) {
        Arena arena;
        Context<T, false> ctx(arena);
        ForwardOptions<T> o;
        o.all_positions = true;
        Var<T> y = model.forward(ctx, Batch::from({example[clean ? "clean" : "corrupted"].template get<std::vector<int>>()}), o);
        const auto& want = example[clean ? "clean_logits" : "corrupted_logits"];
        REQUIRE(y.shape[0] == want.size());
        REQUIRE(y.shape[1] == want[0].size());
        for (std::size_t p = 0; p < want.size(); ++p)
          for (std::size_t v = 0; v < want[p].size(); ++v)
            worst = std::max(worst, std::abs(double(y.value[p * y.shape[1] + v]) - want[p][v].template get<double>()));
      }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("hooks read and replace activations by TransformerLens names") {
  Fixture<double> fx("gpt2-tiny");
  fx.with_model([&](const auto& model) {
    Arena arena;
    Context<double, false> ctx(arena);
    std::vector<std::string> seen;
    Hooks<double> hooks;
    for (std::string name : {"hook_embed", "blocks.1.attn.hook_pattern", "blocks.0.attn.hook_q", "blocks.1.hook_mlp_out",
                             "ln_final.hook_normalized"})
      hooks.add(name, [&, name](TensorView<double> v) { seen.push_back(name + v.shape.str()); });
    ForwardOptions<double> o;
    o.hooks = &hooks;
    const Batch batch = fx.clean_batch();
    Var<double> plain = model.forward(ctx, batch);
    std::vector<double> before(plain.value, plain.value + plain.numel());
    model.forward(ctx, batch, o);
    const std::string B = std::to_string(batch.batch), P = std::to_string(batch.pos);
    CHECK(seen == std::vector<std::string>{"hook_embed[" + B + ", " + P + ", 16]", "blocks.0.attn.hook_q[" + B + ", " + P + ", 2, 8]",
                                           "blocks.1.attn.hook_pattern[" + B + ", 2, " + P + ", " + P + "]",
                                           "blocks.1.hook_mlp_out[" + B + ", " + P + ", 16]",
                                           "ln_final.hook_normalized[" + B + ", " + P + ", 16]"});
    // Zeroing every MLP output by hook equals a model with zero MLP output weights and biases.
    Hooks<double> zero;
    for (int l = 0; l < 2; ++l)
      zero.add("blocks." + std::to_string(l) + ".hook_mlp_out", [](TensorView<double> v) {
        for (std::size_t i = 0; i < v.numel(); ++i) v.data[i] = 0;
      });
    o.hooks = &zero;
    Var<double> hooked = model.forward(ctx, batch, o);
    auto stripped = model;
    for (int l = 0; l < 2; ++l)
      stripped.weights().at(layer_param(l, "mlp.W_out")).fill(0), stripped.weights().at(layer_param(l, "mlp.b_out")).fill(0);
    Var<double> expect = stripped.forward(ctx, batch);
    for (std::size_t i = 0; i < hooked.numel(); ++i) CHECK(hooked.value[i] == doctest::Approx(expect.value[i]).epsilon(1e-12));
    bool changed = false;
    for (std::size_t i = 0; i < hooked.numel(); ++i) changed = changed || std::abs(hooked.value[i] - before[i]) > 1e-6;
    CHECK(changed);
  });
}

TEST_CASE("sequences longer than the context are a clear error") {
  Fixture<float> fx("attn-only");
  fx.with_model([&](const auto& model) {
    Arena arena;
    Context<float, false> ctx(arena);
    std::vector<int> tooLong(model.config().n_positions + 1, 1);
    CHECK_THROWS_WITH_AS(model.forward(ctx, Batch::from({tooLong})), doctest::Contains("longer than the context"), Error);
  });
}

TEST_CASE("gradients w.r.t. any activation by its hook name match finite differences") {
  Fixture<double> fx("gpt2-tiny");
  fx.with_model([&](const auto& model) {
    const Batch batch = fx.clean_batch();
    const auto data = fx.metric_data(model);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    Arena arena;
    Tape<double> tape(arena);
    Context<double, true> ctx(arena, tape);
    std::map<std::string, Var<double>> acts;
    ForwardOptions<double> o;
    o.activations = &acts;
    tape.backward(metric(ctx, model.forward(ctx, batch, o), data));
    for (const char* name : {"blocks.0.hook_attn_out", "blocks.1.mlp.hook_post", "blocks.1.attn.hook_pattern", "hook_pos_embed"}) {
      CAPTURE(name);
      REQUIRE(acts.count(name));
      const Var<double>& v = acts[name];
      const double* g = tape.grad(v);
      REQUIRE(g != nullptr);
      for (std::size_t i : {std::size_t(0), v.numel() / 3, v.numel() - 1}) {
        auto run = [&](double delta) {  // the metric with activation i moved by delta, through a hook
          Hooks<double> hooks;
          hooks.add(name, [&](TensorView<double> t) { t.data[i] += delta; });
          ForwardOptions<double> p;
          p.hooks = &hooks;
          Arena a2;
          Context<double, false> plain(a2);
          return metric(plain, model.forward(plain, batch, p), data).value[0];
        };
        CHECK((run(1e-6) - run(-1e-6)) / 2e-6 == doctest::Approx(g[i]).epsilon(1e-6).scale(1.0));
      }
    }
  });
}
