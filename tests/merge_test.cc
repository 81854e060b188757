#include "common/merge.h"

#include <limits>

#include "common/model_io.h"
#include "common/partition.h"
#include "common/tensor_chunks.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::SmallConfig;

// One round's units for n workers with the default quotas.
std::vector<SubnetUnits> PartitionRound(const ModelConfig& config, int n,
                                        int64_t round) {
  std::vector<SubnetUnits> out(n);
  for (auto& u : out) u.layers.resize(config.n_layer);
  for (int l = 0; l < config.n_layer; ++l) {
    for (UnitKind kind : {UnitKind::kHead, UnitKind::kFfnColumn}) {
      const int k =
          kind == UnitKind::kHead ? config.n_head[l] : config.ffn_width[l];
      auto hats = AssignUnits(k, std::vector<int>(n, DefaultQuota(k, n)),
                              PartitionKey{42, round, l, kind}, true);
      EXPECT_TRUE(hats.ok());
      for (int w = 0; w < n; ++w) {
        (kind == UnitKind::kHead ? out[w].layers[l].heads
                                 : out[w].layers[l].ffn_columns) = (*hats)[w];
      }
    }
  }
  return out;
}

NamedTensors Clone(const NamedTensors& t) {
  NamedTensors out;
  for (const auto& [name, tensor] : t) out.Set(name, tensor.detach().clone());
  return out;
}

TEST(MergeTest, ExtractThenMergeWithoutTrainingIsBitExact) {
  const ModelConfig config = SmallConfig();
  for (int n : {2, 3, 5}) {
    Gpt model = MakeModel(config, 10 + n);
    const NamedTensors params = ParameterTensors(*model);
    const NamedTensors before = Clone(params);
    SubnetMerger merger(config, params);
    for (const SubnetUnits& units : PartitionRound(config, n, /*round=*/n)) {
      auto sliced = ExtractSubnet(config, params, units);
      ASSERT_TRUE(sliced.ok());
      ASSERT_TRUE(merger.AddWeights(units, *sliced).ok());
    }
    EXPECT_EQ(merger.num_accepted(), n);
    ApplyMergedDelta(merger.Finish(), params);
    for (const auto& [name, tensor] : params) {
      EXPECT_TRUE(tensor.equal(*before.Find(name)))
          << n << " workers: " << name;
    }
  }
}

// A model small enough to compute merges by hand: 2 layers, C=4, 2 heads of
// width 2, F=16, V=8, T=4.
ModelConfig TinyConfig() { return ModelConfig::Full(2, 2, 4, 4, 8); }

// theta_w = theta + c on everything the worker holds.
NamedTensors ShiftedSlices(const ModelConfig& config,
                           const NamedTensors& params, const SubnetUnits& units,
                           double c) {
  auto sliced = ExtractSubnet(config, params, units);
  EXPECT_TRUE(sliced.ok());
  NamedTensors out;
  for (const auto& [name, t] : *sliced) out.Set(name, t + c);
  return out;
}

TEST(MergeTest, HandMadeUpdatesGiveHandComputedMeans) {
  const ModelConfig config = TinyConfig();
  Gpt model = MakeModel(config, 1);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors theta = Clone(params);

  // Worker A (+1): layer 0 heads {0,1}, columns {0,1}; nothing of layer 1.
  // Worker B (+3): layer 0 head {1}, columns {1,2}; layer 1 heads {0,1}, column
  // {0}. Worker C (+100): a NaN in its update, rejected whole.
  SubnetUnits a, b;
  a.layers = {LayerUnits{{0, 1}, {0, 1}}, LayerUnits{{}, {}}};
  b.layers = {LayerUnits{{1}, {1, 2}}, LayerUnits{{0, 1}, {0}}};
  SubnetMerger merger(config, params);
  ASSERT_TRUE(merger.AddWeights(a, ShiftedSlices(config, params, a, 1.0)).ok());
  ASSERT_TRUE(merger.AddWeights(b, ShiftedSlices(config, params, b, 3.0)).ok());
  NamedTensors bad = ShiftedSlices(config, params, b, 100.0);
  bad.Find("transformer.h.1.mlp.c_fc.bias")->index_put_({0}, std::nan(""));
  EXPECT_EQ(merger.AddWeights(b, bad).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(merger.num_accepted(), 2);
  ApplyMergedDelta(merger.Finish(), params);

  auto expect_shift = [&](const std::string& name, int64_t dim, int64_t from,
                          int64_t to, double shift) {
    auto got = params.Find(name)->slice(dim, from, to);
    auto want = theta.Find(name)->slice(dim, from, to) + shift;
    EXPECT_TRUE(torch::allclose(got, want, 0, 1e-6))
        << name << " [" << from << "," << to << ") expected +" << shift;
  };
  const int64_t D = 2, HD = 4;
  // Layer 0 attention: head 0 from A only (+1), head 1 from A and B (+2),
  // in each of the q, k, v row blocks, and the projection's columns.
  for (int64_t block = 0; block < 3; ++block) {
    expect_shift("transformer.h.0.attn.c_attn.weight", 0, block * HD,
                 block * HD + D, 1.0);
    expect_shift("transformer.h.0.attn.c_attn.weight", 0, block * HD + D,
                 block * HD + 2 * D, 2.0);
    expect_shift("transformer.h.0.attn.c_attn.bias", 0, block * HD + D,
                 block * HD + 2 * D, 2.0);
  }
  expect_shift("transformer.h.0.attn.c_proj.weight", 1, 0, 2, 1.0);
  expect_shift("transformer.h.0.attn.c_proj.weight", 1, 2, 4, 2.0);
  // Layer 0 FFN: column 0 A (+1), 1 both (+2), 2 B (+3), 3 nobody (+0).
  for (auto [col, shift] :
       {std::pair<int, double>{0, 1}, {1, 2}, {2, 3}, {3, 0}}) {
    expect_shift("transformer.h.0.mlp.c_fc.weight", 0, col, col + 1, shift);
    expect_shift("transformer.h.0.mlp.c_fc.bias", 0, col, col + 1, shift);
    expect_shift("transformer.h.0.mlp.c_proj.weight", 1, col, col + 1, shift);
  }
  // Layer 1: A held nothing, so B's values stand alone where B held units.
  expect_shift("transformer.h.1.attn.c_attn.weight", 0, 0, 12, 3.0);
  expect_shift("transformer.h.1.mlp.c_fc.weight", 0, 0, 1, 3.0);
  expect_shift("transformer.h.1.mlp.c_fc.weight", 0, 1, 4, 0.0);
  // Replicated tensors: the mean over both accepted updates (+2).
  for (const char* name :
       {"transformer.wte.weight", "transformer.wpe.weight",
        "transformer.h.1.ln_2.bias", "transformer.ln_f.weight",
        "transformer.h.1.mlp.c_proj.bias"}) {
    expect_shift(name, 0, 0, params.Find(name)->size(0), 2.0);
  }
}

TEST(MergeTest, DeltasMergeLikeWeights) {
  const ModelConfig config = TinyConfig();
  Gpt model = MakeModel(config, 4);
  const NamedTensors params = ParameterTensors(*model);
  SubnetUnits a = AllUnits(config);
  a.layers[0].heads = {1};
  NamedTensors weights = ShiftedSlices(config, params, a, 0.5);
  NamedTensors deltas;
  const NamedTensors received = *ExtractSubnet(config, params, a);
  for (const auto& [name, t] : received) {
    deltas.Set(name, *weights.Find(name) - t);
  }
  SubnetMerger by_weights(config, params), by_deltas(config, params);
  ASSERT_TRUE(by_weights.AddWeights(a, weights).ok());
  ASSERT_TRUE(by_deltas.AddDeltas(a, deltas).ok());
  const MergedDelta x = by_weights.Finish(), y = by_deltas.Finish();
  for (const auto& [name, t] : x.mean_delta) {
    EXPECT_TRUE(torch::allclose(t, *y.mean_delta.Find(name))) << name;
  }
  // Contributor counts: head 1 of layer 0 counted, head 0 not.
  const auto& count =
      *x.contributors.Find("transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(count[0].item<double>(), 0.0);
  EXPECT_EQ(count[2].item<double>(), 1.0);
}

TEST(MergeTest, RejectsMalformedUpdatesWhole) {
  const ModelConfig config = TinyConfig();
  Gpt model = MakeModel(config, 2);
  const NamedTensors params = ParameterTensors(*model);
  const SubnetUnits units = AllUnits(config);
  const NamedTensors good = ShiftedSlices(config, params, units, 1.0);
  auto with = [&](const std::string& name, at::Tensor t) {
    NamedTensors out;
    for (const auto& [n, v] : good) out.Set(n, n == name ? t : v);
    return out;
  };
  struct Bad {
    const char* what;
    NamedTensors update;
    const char* message;
  };
  const std::string fc = "transformer.h.0.mlp.c_fc.weight";
  NamedTensors missing;
  for (const auto& [n, v] : good) {
    if (n != fc) missing.Set(n, v);
  }
  NamedTensors extra = good;
  extra.Set("transformer.h.0.attn.bias", torch::zeros({4}));
  std::vector<Bad> cases = {
      {"nan", with(fc, good.Find(fc)->clone().fill_(std::nan(""))),
       "NaN or infinite"},
      {"inf",
       with(fc, good.Find(fc)->clone().fill_(
                    std::numeric_limits<float>::infinity())),
       "NaN or infinite"},
      {"shape", with(fc, torch::zeros({3, 4})),
       "has shape (3, 4), expected (16, 4)"},
      {"dtype", with(fc, good.Find(fc)->to(torch::kFloat64)),
       "has dtype Double"},
      {"missing", missing, "is missing"},
      {"extra", extra, "'transformer.h.0.attn.bias' is not a parameter"},
  };
  SubnetMerger merger(config, params);
  for (const Bad& bad : cases) {
    absl::Status s = merger.AddWeights(units, bad.update);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.what;
    EXPECT_NE(s.message().find(bad.message), std::string::npos)
        << bad.what << ": " << s;
  }
  EXPECT_EQ(merger.num_accepted(), 0);
  const MergedDelta merged = merger.Finish();
  for (const auto& [name, t] : merged.mean_delta) {
    EXPECT_EQ(t.abs().sum().item<double>(), 0.0) << name;
  }
}

}  // namespace
}  // namespace twist::common

namespace twist::common {
namespace {

TEST(MergeTest, Bfloat16DeltasKeepSmallUpdatesThatBfloat16WeightsWouldLose) {
  const ModelConfig config = ModelConfig::Full(2, 2, 8, 4, 16);
  Gpt model = twist::testing::MakeModel(config, 9);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors theta = Clone(params);
  SubnetUnits units = AllUnits(config);
  units.layers[1].heads = {1};
  // The coordinator sends bfloat16; the worker widens it, trains (+2e-5),
  // and returns the bfloat16 delta against what it received.
  const NamedTensors sent = *ExtractSubnet(config, params, units);
  NamedTensors wire;
  for (const auto& [name, t] : sent) wire.Set(name, t.to(at::kBFloat16));
  NamedTensors received, deltas;
  for (const auto& [name, t] : wire) {
    const at::Tensor widened = t.to(at::kFloat);
    received.Set(name, widened);
    deltas.Set(name, ((widened + 2e-5) - widened).to(at::kBFloat16));
  }
  // The deltas cross the wire as bfloat16 chunks, bit for bit.
  auto chunks = SplitIntoChunks(deltas, 64);
  ASSERT_TRUE(chunks.ok());
  NamedTensors targets;
  for (const auto& [name, t] : deltas) targets.Set(name, torch::empty_like(t));
  ChunkAssembler assembler(targets, 64);
  for (const auto& c : *chunks) ASSERT_TRUE(assembler.Add(c).ok());
  ASSERT_TRUE(assembler.Finish().ok());
  NamedTensors arrived;
  for (const auto& [name, t] : assembler.tensors()) {
    EXPECT_TRUE(t.equal(*deltas.Find(name))) << name;
    arrived.Set(name, t.to(at::kFloat));
  }
  SubnetMerger merger(config, params);
  ASSERT_TRUE(merger.AddDeltas(units, arrived).ok());
  ApplyMergedDelta(merger.Finish(), params);
  // Every held weight moved by 2e-5 (to bfloat16's relative precision of the
  // delta, 2^-8), including weights far larger than the update.
  for (const auto& [name, t] : params) {
    const at::Tensor moved = (t - *theta.Find(name)).abs();
    EXPECT_GT(moved.max().item<double>(), 0.99 * 2e-5) << name;
  }
  const std::string fc = "transformer.h.0.mlp.c_fc.weight";
  EXPECT_TRUE(torch::allclose(*params.Find(fc) - *theta.Find(fc),
                              torch::full_like(*theta.Find(fc), 2e-5),
                              1.0 / 256, 0));
  // Sending bfloat16 weights instead would have lost the update: rounding
  // theta + 2e-5 to bfloat16 gives back bfloat16(theta) for most weights.
  const at::Tensor w = *theta.Find(fc);
  const double lost = ((w + 2e-5).to(at::kBFloat16) == w.to(at::kBFloat16))
                          .to(at::kFloat)
                          .mean()
                          .item<double>();
  EXPECT_GT(lost, 0.5);
}

}  // namespace
}  // namespace twist::common

namespace twist::common {
namespace {

// MergeInPlace against SubnetMerger + ApplyMergedDelta on the same updates.
void ExpectSameAsGeneralMerge(const ModelConfig& config, int workers,
                              int64_t round, bool deltas, torch::Dtype dtype) {
  Gpt model = twist::testing::MakeModel(config, 20 + workers, dtype);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors general = Clone(params);
  const std::vector<SubnetUnits> plan = PartitionRound(config, workers, round);
  std::vector<NamedTensors> trained;
  for (int w = 0; w < workers; ++w) {
    NamedTensors t;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(w + 1);
    const NamedTensors sliced = *ExtractSubnet(config, params, plan[w]);
    for (const auto& [name, x] : sliced) {
      const at::Tensor noise = torch::randn(x.sizes(), gen, x.options()) * 0.01;
      t.Set(name, deltas ? noise : x + noise);
    }
    trained.push_back(t);
  }
  // One update is rejected (a NaN), so counts come from the accepted ones.
  trained[workers - 1]
      .Find("transformer.wte.weight")
      ->index_put_({0, 0}, std::nan(""));
  SubnetMerger merger(config, general);
  std::vector<UpdateToMerge> updates;
  for (int w = 0; w < workers; ++w) {
    const absl::Status s = deltas ? merger.AddDeltas(plan[w], trained[w])
                                  : merger.AddWeights(plan[w], trained[w]);
    EXPECT_EQ(s.ok(), w != workers - 1);
    updates.push_back({&plan[w], &trained[w], deltas});
  }
  ApplyMergedDelta(merger.Finish(), general);
  const std::vector<absl::Status> statuses =
      MergeInPlace(config, params, updates);
  ASSERT_EQ(statuses.size(), static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w)
    EXPECT_EQ(statuses[w].ok(), w != workers - 1);
  EXPECT_NE(statuses[workers - 1].message().find("NaN"), std::string::npos);
  for (const auto& [name, t] : params) {
    EXPECT_TRUE(t.equal(*general.Find(name)))
        << workers << " workers, " << name << ": differs by "
        << (t - *general.Find(name)).abs().max().item<double>();
  }
}

TEST(MergeTest, InPlaceMergeEqualsTheGeneralMergeBitForBit) {
  const ModelConfig config = SmallConfig();
  // 4 heads: 2 workers split them, 3 share some (cover then fill).
  for (int workers : {2, 3, 5}) {
    ExpectSameAsGeneralMerge(config, workers, workers, /*deltas=*/false,
                             torch::kFloat32);
    ExpectSameAsGeneralMerge(config, workers, workers, /*deltas=*/true,
                             torch::kFloat32);
  }
  ExpectSameAsGeneralMerge(config, 3, 1, false, torch::kFloat64);
}

TEST(MergeTest, InPlaceMergeOfTheWholeModelEverywhereIsTheMean) {
  // local_sgd: every worker holds everything; the result is the plain mean.
  const ModelConfig config = ModelConfig::Full(1, 2, 8, 4, 16);
  Gpt model = twist::testing::MakeModel(config, 3);
  const NamedTensors params = ParameterTensors(*model);
  const SubnetUnits all = AllUnits(config);
  NamedTensors a, b;
  for (const auto& [name, t] : params) {
    a.Set(name, t + 1.0f);
    b.Set(name, t + 2.0f);
  }
  const NamedTensors before = Clone(params);
  const auto statuses =
      MergeInPlace(config, params, {{&all, &a, false}, {&all, &b, false}});
  ASSERT_TRUE(statuses[0].ok() && statuses[1].ok());
  for (const auto& [name, t] : params) {
    EXPECT_TRUE(torch::allclose(t, *before.Find(name) + 1.5f, 0, 1e-6)) << name;
  }
}

}  // namespace
}  // namespace twist::common
