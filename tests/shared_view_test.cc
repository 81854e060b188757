// Tests of resident units (common/ist/shared_view.h and SlotPayload's
// resident form): after every deal, what each worker holds of a unit equals
// the coordinator's view of it bit for bit, across deals that move units,
// workers that miss a round or an acceptance, and overlapping deals; a
// resident worker is sent fewer bytes; a corrupt change is refused naming it.
#include "common/ist/shared_view.h"

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "common/ist/partition.h"
#include "common/model/model_io.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;

// What a simulated worker holds: its units and its copy of the view.
struct Holder {
  SubnetUnits units;
  NamedTensors view;
};

// `n` workers' rolling windows of half the heads and columns in `round`.
std::vector<SubnetUnits> Rolling(const ModelConfig& config, int n,
                                 int64_t round) {
  std::vector<SubnetUnits> out(n);
  for (auto& u : out) u.layers.resize(config.n_layer);
  for (int l = 0; l < config.n_layer; ++l) {
    const int h = config.n_head[l], f = config.ffn_width[l];
    auto heads = *RollingWindows(h, std::vector<int>(n, h / 2), round);
    auto cols = *RollingWindows(f, std::vector<int>(n, f / 2), round);
    for (int w = 0; w < n; ++w) {
      out[w].layers[l].heads = heads[w];
      out[w].layers[l].ffn_columns = cols[w];
    }
  }
  return out;
}

// The view's values of `units` (the slice a holder must have).
NamedTensors SliceOfView(const ModelConfig& config, const NamedTensors& view,
                         const SubnetUnits& units) {
  NamedTensors out;
  for (const auto& p : ParameterShapes(SubnetConfig(config, units))) {
    out.Set(p.name, *CarryAlongUnits(config, AllUnits(config), units, p.name,
                                     *view.Find(p.name)));
  }
  return out;
}

void ExpectHolds(const ModelConfig& config, const SharedView& shared,
                 const Holder& holder, const std::string& what) {
  const NamedTensors want = SliceOfView(config, shared.view(), holder.units);
  for (const auto& [name, t] : want) {
    const at::Tensor* got = holder.view.Find(name);
    ASSERT_NE(got, nullptr) << what << " " << name;
    EXPECT_EQ(got->scalar_type(), t.scalar_type()) << what << " " << name;
    EXPECT_TRUE(torch::equal(*got, t)) << what << " " << name;
  }
}

// One deal received by the workers `ids` (all of them apply it; only those
// in `delivered` have their update accepted).
void DealAndReceive(const ModelConfig& config, SharedView& shared,
                    at::ScalarType wire, int32_t round,
                    const NamedTensors& model,
                    const std::vector<std::string>& ids,
                    const std::vector<SubnetUnits>& units,
                    const std::vector<std::string>& delivered,
                    std::map<std::string, Holder>& holders,
                    std::vector<int64_t>* bytes = nullptr,
                    std::vector<bool>* resident = nullptr) {
  auto dealt = shared.Deal(round, model, ids, units);
  ASSERT_TRUE(dealt.ok()) << dealt.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    Holder& h = holders[ids[i]];
    const SlotPayload payload(config, units[i], wire, false, {},
                              dealt->forms[i]);
    ASSERT_EQ(payload.assignment().size(), dealt->assignments[i].size());
    for (size_t k = 0; k < payload.assignment().size(); ++k) {
      const PayloadTensor& t = payload.assignment()[k];
      EXPECT_EQ(dealt->assignments[i][k].name, t.name);
      EXPECT_EQ(dealt->assignments[i][k].tensor.sizes().vec(), t.shape)
          << t.name;
      EXPECT_EQ(dealt->assignments[i][k].tensor.scalar_type(), t.dtype)
          << t.name;
    }
    auto view = payload.ReceiveView(dealt->assignments[i], h.units, h.view,
                                    at::kCPU);
    ASSERT_TRUE(view.ok()) << view.status();
    h.units = units[i];
    h.view = *view;
    ExpectHolds(config, shared, h, "round " + std::to_string(round) + " " +
                                       ids[i]);
    if (bytes != nullptr) bytes->push_back(dealt->assignments[i].NumBytes());
    if (resident != nullptr) resident->push_back(dealt->forms[i].resident);
  }
  for (const auto& id : delivered) shared.Delivered(id);
}

// The model moves between deals as merges move it.
void Perturb(NamedTensors& model, double scale) {
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model) t.add_(torch::randn_like(t) * scale);
}

TEST(SharedViewTest, HoldersStayEqualToTheViewAcrossAMovingDeal) {
  const ModelConfig config = ModelConfig::Full(2, 4, 16, 8, 16);
  for (UpdateCodec codec :
       {UpdateCodec::kInt8, UpdateCodec::kInt4, UpdateCodec::kTopK}) {
    for (at::ScalarType wire : {at::kFloat, at::kBFloat16}) {
      SCOPED_TRACE(std::string(UpdateCodecName(codec)) + " " +
                   c10::toString(wire));
      torch::manual_seed(3);
      NamedTensors model = twist::testing::Clone(ParameterTensors(*MakeModel(config, 7)));
      SharedView shared(config, wire, {codec, 0.05});
      std::map<std::string, Holder> holders;
      const std::vector<std::string> ab = {"a", "b"};
      for (int32_t round = 1; round <= 6; ++round) {
        Perturb(model, 1e-2);
        std::vector<int64_t> bytes;
        std::vector<bool> resident;
        // Round 4: b's update is not accepted, so it is not resident in 5.
        const std::vector<std::string> delivered =
            round == 4 ? std::vector<std::string>{"a"} : ab;
        DealAndReceive(config, shared, wire, round, model, ab,
                       Rolling(config, 2, round), delivered, holders, &bytes,
                       &resident);
        EXPECT_EQ(resident[0], round > 1) << round;
        EXPECT_EQ(resident[1], round > 1 && round != 5) << round;
        if (round == 5) EXPECT_LT(bytes[0], bytes[1]);
      }
      // A third worker joins: it is sent weights, the others changes, and
      // all three hold the view.
      Perturb(model, 1e-2);
      std::vector<bool> resident;
      DealAndReceive(config, shared, wire, 7, model, {"a", "b", "c"},
                     Rolling(config, 3, 7), {"a", "b", "c"}, holders, nullptr,
                     &resident);
      EXPECT_EQ(resident, (std::vector<bool>{true, true, false}));
    }
  }
}

TEST(SharedViewTest, ResidentAssignmentsAreSmallAndTrackTheModel) {
  const ModelConfig config = ModelConfig::Full(2, 4, 32, 8, 64);
  torch::manual_seed(4);
  NamedTensors model = twist::testing::Clone(ParameterTensors(*MakeModel(config, 8)));
  SharedView shared(config, at::kBFloat16, {UpdateCodec::kInt8, 0.02});
  std::map<std::string, Holder> holders;
  std::vector<int64_t> first, later;
  DealAndReceive(config, shared, at::kBFloat16, 1, model, {"a", "b"},
                 Rolling(config, 2, 1), {"a", "b"}, holders, &first);
  // The same units again: int8 changes only, about half of bfloat16.
  Perturb(model, 1e-3);
  DealAndReceive(config, shared, at::kBFloat16, 2, model, {"a", "b"},
                 Rolling(config, 2, 1), {"a", "b"}, holders, &later);
  for (int i = 0; i < 2; ++i) EXPECT_LT(later[i], 0.55 * first[i]);
  // The view is the model to the code's precision.
  for (const auto& [name, t] : model) {
    const at::Tensor diff = (shared.view().Find(name)->to(at::kFloat) - t).abs();
    EXPECT_LT(diff.max().item<double>(), 0.02 * t.abs().max().item<double>() + 1e-6)
        << name;
  }
}

TEST(SharedViewTest, OverlappingResidentSetsTravelAsWeights) {
  const ModelConfig config = ModelConfig::Full(1, 4, 16, 8, 16);
  auto units = [&](std::vector<int> heads) {
    SubnetUnits u = AllUnits(config);
    u.layers[0].heads = std::move(heads);
    u.layers[0].ffn_columns = {};
    return u;
  };
  torch::manual_seed(5);
  NamedTensors model = twist::testing::Clone(ParameterTensors(*MakeModel(config, 9)));
  SharedView shared(config, at::kFloat, {UpdateCodec::kInt4, 0.02});
  std::map<std::string, Holder> holders;
  const std::vector<SubnetUnits> deal = {units({0, 1, 2}), units({1, 2, 3})};
  DealAndReceive(config, shared, at::kFloat, 1, model, {"a", "b"}, deal,
                 {"a", "b"}, holders);
  Perturb(model, 1e-2);
  auto dealt = shared.Deal(2, model, {"a", "b"}, deal);
  ASSERT_TRUE(dealt.ok()) << dealt.status();
  // Heads 1 and 2 are in both resident sets, which differ: weights for both.
  EXPECT_EQ(dealt->forms[0].resident_units.layers[0].heads,
            std::vector<int>{0});
  EXPECT_EQ(dealt->forms[1].resident_units.layers[0].heads,
            std::vector<int>{3});
  for (int i = 0; i < 2; ++i) {
    Holder& h = holders[i == 0 ? "a" : "b"];
    const SlotPayload payload(config, deal[i], at::kFloat, false, {},
                              dealt->forms[i]);
    auto view = payload.ReceiveView(dealt->assignments[i], h.units, h.view,
                                    at::kCPU);
    ASSERT_TRUE(view.ok()) << view.status();
    h.view = *view;
    ExpectHolds(config, shared, h, i == 0 ? "a" : "b");
  }
}

TEST(SharedViewTest, ACorruptChangeIsRefusedNamingIt) {
  const ModelConfig config = ModelConfig::Full(1, 2, 8, 8, 16);
  NamedTensors model = twist::testing::Clone(ParameterTensors(*MakeModel(config, 2)));
  SharedView shared(config, at::kFloat, {UpdateCodec::kInt8, 0.02});
  std::map<std::string, Holder> holders;
  const std::vector<SubnetUnits> deal = Rolling(config, 2, 1);
  DealAndReceive(config, shared, at::kFloat, 1, model, {"a", "b"}, deal,
                 {"a", "b"}, holders);
  auto dealt = shared.Deal(2, model, {"a", "b"}, deal);
  ASSERT_TRUE(dealt.ok()) << dealt.status();
  ASSERT_TRUE(dealt->forms[0].resident);
  const std::string name = ChangeName("transformer.h.0.mlp.c_fc.weight");
  NamedTensors assignment;
  for (const auto& [n, t] : dealt->assignments[0]) {
    if (n != name) {
      assignment.Set(n, t);
      continue;
    }
    at::Tensor bad = t.clone();
    // The first block's step becomes -1.0f (little-endian float32).
    bad.slice(0, 0, 4).copy_(at::tensor({0, 0, 128, 191}, at::kByte));
    assignment.Set(n, bad);
  }
  const SlotPayload payload(config, deal[0], at::kFloat, false, {},
                            dealt->forms[0]);
  auto view = payload.ReceiveView(assignment, holders["a"].units,
                                  holders["a"].view, at::kCPU);
  ASSERT_FALSE(view.ok());
  EXPECT_NE(view.status().message().find(name), std::string::npos)
      << view.status();
  // A worker that does not hold a resident unit refuses too.
  auto unheld = payload.ReceiveView(dealt->assignments[0], holders["b"].units,
                                    holders["b"].view, at::kCPU);
  EXPECT_FALSE(unheld.ok());
}

}  // namespace
}  // namespace twist::common
