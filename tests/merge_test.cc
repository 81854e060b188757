// Tests of the merge (common/ist/merge.h): against an independent reference
// written with plain tensor operations (index_add_ of the deltas, division by
// the holder counts, the outer step as DiLoCo writes it), bit for bit where
// the arithmetic is the same; against hand-computed means; bfloat16 deltas;
// validation; and extract-then-merge without training.
#include "common/ist/merge.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>

#include "common/ist/partition.h"
#include "common/model/model_io.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::Clone;
using ::twist::testing::Extract;
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

// The merge rule written the slow, obvious way: per tensor, the sum of every
// update's change (index_add_ along the sliced dimension), the holder counts,
// d = sum / max(count, 1), then the outer step where count > 0.
void ReferenceMerge(const ModelConfig& config, const NamedTensors& params,
                    const std::vector<SliceUpdate>& updates,
                    const OuterStep& step, NamedTensors* velocity) {
  torch::NoGradGuard no_grad;
  const SubnetUnits all = AllUnits(config);
  for (const auto& [name, theta] : params) {
    at::Tensor sum = torch::zeros_like(theta);
    std::optional<SliceRule> whole = *SliceRuleFor(config, all, name);
    const int64_t dim = whole ? whole->dim : 0;
    at::Tensor count = torch::zeros(
        {whole ? theta.size(dim) : int64_t{1}}, theta.options());
    for (const SliceUpdate& u : updates) {
      const at::Tensor t = u.tensors->Find(name)->to(theta.scalar_type());
      std::optional<SliceRule> rule = *SliceRuleFor(config, *u.units, name);
      if (!rule) {
        sum.add_(u.is_delta ? t : t - theta);
        count.add_(1);
        continue;
      }
      auto index = torch::tensor(rule->index, torch::kLong);
      sum.index_add_(rule->dim, index,
                     u.is_delta ? t : t - theta.index_select(rule->dim, index));
      count.index_add_(0, index, torch::ones({index.size(0)}, count.options()));
    }
    std::vector<int64_t> shape(theta.dim(), 1);
    if (whole) shape[dim] = -1;
    const at::Tensor c = whole ? count.view(shape) : count.squeeze(0);
    const at::Tensor d = sum / c.clamp_min(1);
    if (step.momentum == 0.0) {
      theta.add_(step.learning_rate == 1.0 ? d : d * step.learning_rate);
      continue;
    }
    const at::Tensor mask = (c > 0).expand_as(theta);
    if (velocity->Find(name) == nullptr) {
      velocity->Set(name, torch::zeros_like(theta).to(kVelocityType));
    }
    // The step uses the velocity before it is stored (rounded).
    at::Tensor& v = *velocity->Find(name);
    const at::Tensor before = v.to(theta.scalar_type());
    const at::Tensor g = -d;
    const at::Tensor next = torch::where(mask, before * step.momentum + g, before);
    const at::Tensor s = step.nesterov ? g + next * step.momentum : next;
    v.copy_(next);
    theta.sub_(torch::where(mask, s * step.learning_rate, torch::zeros_like(s)));
  }
}

// Trained tensors for each worker of `plan`: the received weights plus noise,
// or the noise alone as deltas.
std::vector<NamedTensors> Train(const ModelConfig& config,
                                const NamedTensors& params,
                                const std::vector<SubnetUnits>& plan,
                                bool deltas) {
  std::vector<NamedTensors> out;
  for (size_t w = 0; w < plan.size(); ++w) {
    NamedTensors t;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(w + 1);
    for (const auto& [name, x] : Extract(config, params, plan[w])) {
      const at::Tensor noise = torch::randn(x.sizes(), gen, x.options()) * 0.01;
      t.Set(name, deltas ? noise : x + noise);
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<SliceUpdate> UpdatesOf(const std::vector<SubnetUnits>& plan,
                                   const std::vector<NamedTensors>& trained,
                                   bool deltas) {
  std::vector<SliceUpdate> out;
  for (size_t w = 0; w < plan.size(); ++w) {
    out.push_back({&plan[w], &trained[w], deltas});
  }
  return out;
}

void ExpectEqualBitForBit(const NamedTensors& a, const NamedTensors& b,
                          const std::string& what) {
  for (const auto& [name, t] : a) {
    EXPECT_TRUE(t.equal(*b.Find(name)))
        << what << ", " << name << ": differs by "
        << (t - *b.Find(name)).abs().max().item<double>();
  }
}

TEST(MergeTest, PlainMergeEqualsTheReferenceBitForBit) {
  const ModelConfig config = SmallConfig();
  // 4 heads: 2 workers split them, 3 and 5 share some (cover then fill).
  for (int workers : {1, 2, 3, 5}) {
    for (bool deltas : {false, true}) {
      for (torch::Dtype dtype : {torch::kFloat32, torch::kFloat64}) {
        Gpt model = MakeModel(config, 20 + workers, dtype);
        const NamedTensors params = ParameterTensors(*model);
        const NamedTensors reference = Clone(params);
        const std::vector<SubnetUnits> plan =
            PartitionRound(config, workers, workers);
        const std::vector<NamedTensors> trained =
            Train(config, params, plan, deltas);
        const auto updates = UpdatesOf(plan, trained, deltas);
        NamedTensors unused;
        ReferenceMerge(config, reference, updates, OuterStep(), &unused);
        ASSERT_TRUE(
            MergeUpdates(config, params, updates, OuterStep(), &unused).ok());
        ExpectEqualBitForBit(params, reference,
                             absl::StrCat(workers, " workers, deltas ", deltas,
                                          ", ", c10::toString(dtype)));
        EXPECT_TRUE(unused.empty());  // nothing to keep without momentum
      }
    }
  }
}

TEST(MergeTest, ScratchFromAPoolGivesTheSameResultRoundAfterRound) {
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 5);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors reference = Clone(params);
  TensorPool pool;
  NamedTensors unused;
  for (int64_t round = 1; round <= 3; ++round) {
    const std::vector<SubnetUnits> plan = PartitionRound(config, 3, round);
    const std::vector<NamedTensors> trained =
        Train(config, params, plan, false);
    ReferenceMerge(config, reference, UpdatesOf(plan, trained, false),
                   OuterStep(), &unused);
    pool.Trim();
    ASSERT_TRUE(MergeUpdates(config, params, UpdatesOf(plan, trained, false),
                             OuterStep(), &unused, &pool)
                    .ok());
    ExpectEqualBitForBit(params, reference, absl::StrCat("round ", round));
  }
  EXPECT_GT(pool.NumTensors(), 0);  // shared positions used pooled sums
}

TEST(MergeTest, OuterStepsFollowTheReference) {
  const ModelConfig config = SmallConfig();
  for (OuterStep step : {OuterStep{0.7, 0.0, true}, OuterStep{0.7, 0.9, true},
                         OuterStep{1.0, 0.9, false}}) {
    Gpt model = MakeModel(config, 8);
    const NamedTensors params = ParameterTensors(*model);
    const NamedTensors reference = Clone(params);
    NamedTensors velocity, reference_velocity;
    for (int64_t round = 1; round <= 3; ++round) {
      const std::vector<SubnetUnits> plan = PartitionRound(config, 3, round);
      const std::vector<NamedTensors> trained =
          Train(config, params, plan, false);
      ReferenceMerge(config, reference, UpdatesOf(plan, trained, false), step,
                     &reference_velocity);
      ASSERT_TRUE(MergeUpdates(config, params, UpdatesOf(plan, trained, false),
                               step, &velocity)
                      .ok());
    }
    for (const auto& [name, t] : params) {
      EXPECT_TRUE(torch::allclose(t, *reference.Find(name), 0, 1e-6))
          << "lr " << step.learning_rate << " mu " << step.momentum << ": "
          << name;
    }
    EXPECT_EQ(velocity.size(), step.momentum == 0.0 ? 0u : params.size());
    for (const auto& [name, v] : velocity) {
      EXPECT_EQ(v.scalar_type(), kVelocityType) << name;
      EXPECT_TRUE(torch::allclose(v.to(torch::kFloat),
                                  reference_velocity.Find(name)->to(torch::kFloat),
                                  0, 1e-6))
          << name;
    }
  }
}

// 1 layer, C=4, 2 heads of width 2, F=16, V=8, T=4.
ModelConfig Tiny() { return ModelConfig::Full(1, 2, 4, 4, 8); }

// theta_w = theta + c on everything `units` holds.
NamedTensors Shifted(const ModelConfig& config, const NamedTensors& params,
                     const SubnetUnits& units, double c) {
  NamedTensors out;
  for (const auto& [name, t] : Extract(config, params, units)) {
    out.Set(name, t + c);
  }
  return out;
}

TEST(MergeTest, NesterovMomentumMatchesHandComputedSteps) {
  // One replicated tensor moved by +0.5 twice: g = -0.5 each round.
  //   round 1: v = 0.9*0 - 0.5 = -0.5;  step = g + 0.9 v = -0.95
  //   round 2: v = 0.9*(-0.5) - 0.5 = -0.95;  step = -0.5 - 0.855 = -1.355
  // (-0.5 is exact in bfloat16; -0.95 is stored rounded, after its step.)
  const ModelConfig config = Tiny();
  const SubnetUnits all = AllUnits(config);
  const std::string name = "transformer.ln_f.bias";
  for (bool nesterov : {true, false}) {
    Gpt model = MakeModel(config, 2);
    const NamedTensors params = ParameterTensors(*model);
    const at::Tensor before = params.Find(name)->clone();
    NamedTensors velocity;
    for (int round = 0; round < 2; ++round) {
      const NamedTensors trained = Shifted(config, params, all, 0.5);
      ASSERT_TRUE(MergeUpdates(config, params, {{&all, &trained, false}},
                               {0.7, 0.9, nesterov}, &velocity)
                      .ok());
    }
    // Heavy ball steps by v: 0.5, then 0.95.
    const double moved = nesterov ? 0.7 * (0.95 + 1.355) : 0.7 * (0.5 + 0.95);
    EXPECT_TRUE(torch::allclose(*params.Find(name), before + moved, 0, 1e-6))
        << "nesterov " << nesterov;
    EXPECT_TRUE(velocity.Find(name)->equal(
        torch::full_like(before, -0.95).to(kVelocityType)));
  }
}

TEST(MergeTest, VelocityOfAnotherTypeOrShapeIsRefusedBeforeAnyWrite) {
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 4);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors before = Clone(params);
  const SubnetUnits all = AllUnits(config);
  const NamedTensors trained = Shifted(config, params, all, 0.1);
  const std::string name = "transformer.ln_f.bias";
  for (const at::Tensor& bad :
       {torch::zeros_like(*params.Find(name)).to(torch::kDouble),
        torch::zeros({3}).to(kVelocityType)}) {
    NamedTensors velocity;
    velocity.Set(name, bad);
    const absl::Status s = MergeUpdates(config, params, {{&all, &trained, false}},
                                        {1.0, 0.7, true}, &velocity);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(name), std::string::npos) << s;
    ExpectEqualBitForBit(params, before, "after a refused velocity");
  }
}

TEST(MergeTest, UnitsWithoutContributorsKeepValueAndVelocity) {
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 3);
  const NamedTensors params = ParameterTensors(*model);
  const OuterStep step{1.0, 0.9, true};
  NamedTensors velocity;
  const SubnetUnits all = AllUnits(config);
  const NamedTensors first = Shifted(config, params, all, 0.1);
  ASSERT_TRUE(
      MergeUpdates(config, params, {{&all, &first, false}}, step, &velocity)
          .ok());
  const NamedTensors before = Clone(params);
  const NamedTensors velocity_before = Clone(velocity);
  SubnetUnits some = AllUnits(config);
  some.layers[0].heads = {0};
  some.layers[0].ffn_columns = {2};
  const NamedTensors second = Shifted(config, params, some, 0.1);
  ASSERT_TRUE(
      MergeUpdates(config, params, {{&some, &second, false}}, step, &velocity)
          .ok());
  const std::string fc = "transformer.h.0.mlp.c_fc.weight";
  EXPECT_FALSE(
      params.Find(fc)->select(0, 2).equal(before.Find(fc)->select(0, 2)));
  EXPECT_TRUE(
      params.Find(fc)->select(0, 5).equal(before.Find(fc)->select(0, 5)));
  EXPECT_TRUE(velocity.Find(fc)->select(0, 5).equal(
      velocity_before.Find(fc)->select(0, 5)));
  const std::string proj = "transformer.h.0.attn.c_proj.weight";
  EXPECT_TRUE(params.Find(proj)->slice(1, 2, 4).equal(
      before.Find(proj)->slice(1, 2, 4)));
  EXPECT_FALSE(params.Find(proj)->slice(1, 0, 2).equal(
      before.Find(proj)->slice(1, 0, 2)));
}

TEST(MergeTest, HandMadeUpdatesGiveHandComputedMeans) {
  // 2 layers, C=4, 2 heads of width 2, F=16.
  const ModelConfig config = ModelConfig::Full(2, 2, 4, 4, 8);
  Gpt model = MakeModel(config, 1);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors theta = Clone(params);
  // Worker A (+1): layer 0 heads {0,1}, columns {0,1}; nothing of layer 1.
  // Worker B (+3): layer 0 head {1}, columns {1,2}; layer 1 heads {0,1},
  // column {0}.
  SubnetUnits a, b;
  a.layers = {LayerUnits{{0, 1}, {0, 1}}, LayerUnits{{}, {}}};
  b.layers = {LayerUnits{{1}, {1, 2}}, LayerUnits{{0, 1}, {0}}};
  const NamedTensors ta = Shifted(config, params, a, 1.0);
  const NamedTensors tb = Shifted(config, params, b, 3.0);
  NamedTensors unused;
  ASSERT_TRUE(MergeUpdates(config, params, {{&a, &ta, false}, {&b, &tb, false}},
                           OuterStep(), &unused)
                  .ok());
  auto expect_shift = [&](const std::string& name, int64_t dim, int64_t from,
                          int64_t to, double shift) {
    auto got = params.Find(name)->slice(dim, from, to);
    auto want = theta.Find(name)->slice(dim, from, to) + shift;
    EXPECT_TRUE(torch::allclose(got, want, 0, 1e-6))
        << name << " [" << from << "," << to << ") expected +" << shift;
  };
  const int64_t D = 2, HD = 4;
  // Layer 0 attention: head 0 from A only (+1), head 1 from A and B (+2), in
  // each of the q, k, v row blocks, and the projection's columns.
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
  // Replicated tensors: the mean over both updates (+2).
  for (const char* name :
       {"transformer.wte.weight", "transformer.wpe.weight",
        "transformer.h.1.ln_2.bias", "transformer.ln_f.weight",
        "transformer.h.1.mlp.c_proj.bias"}) {
    expect_shift(name, 0, 0, params.Find(name)->size(0), 2.0);
  }
}

TEST(MergeTest, ExtractThenMergeWithoutTrainingIsBitExact) {
  const ModelConfig config = SmallConfig();
  for (int n : {2, 3, 5}) {
    Gpt model = MakeModel(config, 10 + n);
    const NamedTensors params = ParameterTensors(*model);
    const NamedTensors before = Clone(params);
    const std::vector<SubnetUnits> plan = PartitionRound(config, n, n);
    std::vector<NamedTensors> sliced;
    for (const auto& units : plan) {
      sliced.push_back(Extract(config, params, units));
    }
    NamedTensors unused;
    ASSERT_TRUE(MergeUpdates(config, params, UpdatesOf(plan, sliced, false),
                             OuterStep(), &unused)
                    .ok());
    ExpectEqualBitForBit(params, before, absl::StrCat(n, " workers"));
  }
}

TEST(MergeTest, WholeModelEverywhereGivesThePlainMean) {
  // local_sgd: every worker holds everything; the result is the mean.
  const ModelConfig config = ModelConfig::Full(1, 2, 8, 4, 16);
  Gpt model = MakeModel(config, 3);
  const NamedTensors params = ParameterTensors(*model);
  const SubnetUnits all = AllUnits(config);
  NamedTensors a, b;
  for (const auto& [name, t] : params) {
    a.Set(name, t + 1.0f);
    b.Set(name, t + 2.0f);
  }
  const NamedTensors before = Clone(params);
  NamedTensors unused;
  ASSERT_TRUE(MergeUpdates(config, params,
                           {{&all, &a, false}, {&all, &b, false}}, OuterStep(),
                           &unused)
                  .ok());
  for (const auto& [name, t] : params) {
    EXPECT_TRUE(torch::allclose(t, *before.Find(name) + 1.5f, 0, 1e-6))
        << name;
  }
}

TEST(MergeTest, Bfloat16DeltasMergeAsTheirWidenedValuesBitForBit) {
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 9);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors reference = Clone(params);
  const std::vector<SubnetUnits> plan = PartitionRound(config, 3, 2);
  std::vector<NamedTensors> narrow = Train(config, params, plan, true);
  std::vector<NamedTensors> wide;
  for (auto& update : narrow) {
    NamedTensors n, w;
    for (const auto& [name, t] : update) {
      n.Set(name, t.to(at::kBFloat16));
      w.Set(name, n.Find(name)->to(at::kFloat));
    }
    update = n;
    wide.push_back(w);
  }
  NamedTensors unused;
  ASSERT_TRUE(MergeUpdates(config, params, UpdatesOf(plan, narrow, true),
                           OuterStep(), &unused)
                  .ok());
  ReferenceMerge(config, reference, UpdatesOf(plan, wide, true), OuterStep(),
                 &unused);
  ExpectEqualBitForBit(params, reference, "bfloat16 deltas");
}

TEST(MergeTest, Bfloat16DeltasKeepSmallUpdatesThatBfloat16WeightsWouldLose) {
  const ModelConfig config = ModelConfig::Full(2, 2, 8, 4, 16);
  Gpt model = MakeModel(config, 9);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors theta = Clone(params);
  SubnetUnits units = AllUnits(config);
  units.layers[1].heads = {1};
  // The coordinator sends bfloat16 (narrowed as it slices); the worker widens
  // it, trains (+2e-5), and returns the bfloat16 delta against what it got.
  auto wire = ExtractSubnets(config, params, {units}, at::kBFloat16);
  ASSERT_TRUE(wire.ok());
  NamedTensors deltas;
  for (const auto& [name, t] : (*wire)[0]) {
    EXPECT_TRUE(t.equal(Extract(config, params, units)
                            .Find(name)
                            ->to(at::kBFloat16)))
        << "slicing into bfloat16 rounds as Tensor::to does: " << name;
    const at::Tensor widened = t.to(at::kFloat);
    deltas.Set(name, ((widened + 2e-5) - widened).to(at::kBFloat16));
  }
  NamedTensors unused;
  ASSERT_TRUE(MergeUpdates(config, params, {{&units, &deltas, true}},
                           OuterStep(), &unused)
                  .ok());
  // Every held weight moved by 2e-5 (to bfloat16's relative precision of the
  // delta, 2^-8), including weights far larger than the update.
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

TEST(MergeTest, ValidateUpdateRejectsMalformedUpdatesNamingTheTensor) {
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 2);
  const NamedTensors params = ParameterTensors(*model);
  const SubnetUnits units = AllUnits(config);
  const NamedTensors good = Shifted(config, params, units, 1.0);
  auto with = [&](const std::string& name, at::Tensor t) {
    NamedTensors out;
    for (const auto& [n, v] : good) out.Set(n, n == name ? t : v);
    return out;
  };
  const std::string fc = "transformer.h.0.mlp.c_fc.weight";
  NamedTensors missing;
  for (const auto& [n, v] : good) {
    if (n != fc) missing.Set(n, v);
  }
  NamedTensors extra = good;
  extra.Set("transformer.h.0.attn.bias", torch::zeros({4}));
  struct Bad {
    const char* what;
    NamedTensors update;
    bool is_delta;
    const char* message;
  };
  const std::vector<Bad> cases = {
      {"nan", with(fc, good.Find(fc)->clone().fill_(std::nan(""))), false,
       "NaN or infinite"},
      {"inf",
       with(fc, good.Find(fc)->clone().fill_(
                    std::numeric_limits<float>::infinity())),
       false, "NaN or infinite"},
      {"bf16 nan",
       with(fc, good.Find(fc)->clone().fill_(std::nan("")).to(at::kBFloat16)),
       true, "NaN or infinite"},
      {"shape", with(fc, torch::zeros({3, 4})), false,
       "has shape (3, 4), expected (16, 4)"},
      {"dtype", with(fc, good.Find(fc)->to(torch::kFloat64)), false,
       "has dtype Double"},
      {"bf16 weights", with(fc, good.Find(fc)->to(at::kBFloat16)), false,
       "has dtype BFloat16"},
      {"missing", missing, false, "is missing"},
      {"extra", extra, false, "'transformer.h.0.attn.bias' is not a parameter"},
  };
  for (const Bad& bad : cases) {
    absl::Status s =
        ValidateUpdate(config, params, {&units, &bad.update, bad.is_delta});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.what;
    EXPECT_NE(s.message().find(bad.message), std::string::npos)
        << bad.what << ": " << s;
  }
  EXPECT_TRUE(ValidateUpdate(config, params, {&units, &good, false}).ok());
}

TEST(MergeTest, MisshapenUpdateIsRefusedBeforeAnythingIsWritten) {
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 2);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors before = Clone(params);
  const SubnetUnits units = AllUnits(config);
  const NamedTensors good = Shifted(config, params, units, 1.0);
  NamedTensors bad = Clone(good);
  bad.Set("transformer.ln_f.bias", torch::zeros({3}));
  NamedTensors unused;
  const absl::Status s = MergeUpdates(
      config, params, {{&units, &good, false}, {&units, &bad, false}},
      OuterStep(), &unused);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  ExpectEqualBitForBit(params, before, "after a refused merge");
}

}  // namespace
}  // namespace twist::common
