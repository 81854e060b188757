// Tests of the coordinator's round bookkeeping: header checks, deliveries
// (checked as they arrive), refusals and abandoned slots, waiting, and the
// round's merge of the accepted updates (in slot order, whatever the arrival
// order) with its per-slot summary.
#include "coordinator/round_collector.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/model/gpt.h"
#include "common/ist/merge.h"
#include "common/model/threads.h"
#include "coordinator/round_merge.h"
#include "common/ist/subnet.h"
#include "common/ist/update_codec.h"
#include "coordinator/job_spec.h"
#include "coordinator/round_plan.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::coordinator {
namespace {

using ::twist::common::ModelConfig;
using ::twist::common::NamedTensors;
using ::twist::common::SubnetUnits;
using ::twist::v1::UpdateHeader;

constexpr uint64_t kIncarnation = 7;
constexpr int64_t kJob = 3;
constexpr int32_t kRound = 5;

// 2 layers, C=8, 2 heads of D=4, F=32, T=8, V=16.
ModelConfig Config() { return ModelConfig::Full(2, 2, 8, 8, 16); }

using ::twist::testing::Clone;

class RoundCollectorTest : public ::testing::Test {
 protected:
  RoundCollectorTest()
      : model_(twist::testing::MakeModel(Config(), /*seed=*/11)) {
    params_ = common::ParameterTensors(*model_);
  }

  // Replaces the weights with multiples of 1/8 in [-1, 1], so adding small
  // shifts and averaging them is exact in float32.
  void MakeWeightsDyadic() {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (const auto& [name, t] : params_) {
      auto values =
          (torch::arange(offset, offset + t.numel(), torch::kLong) % 17 - 8)
              .to(torch::kFloat) *
          0.125;
      t.copy_(values.view(t.sizes()));
      offset += t.numel();
    }
  }

  // Slots of round kRound for n workers w1..wn with the default quotas.
  std::vector<SlotSpec> Slots(int n) {
    twist::v1::JobSpec spec;
    spec.set_seed(3);
    ApplyDefaults(&spec);
    auto plan = PlanRound(spec, Config(), kRound, std::vector<double>(n, 1.0));
    EXPECT_TRUE(plan.ok()) << plan.status();
    std::vector<SlotSpec> slots;
    for (int i = 0; i < n; ++i) {
      SlotSpec slot;
      slot.worker_id = "w" + std::to_string(i + 1);
      slot.worker_name = "host" + std::to_string(i + 1);
      slot.units = (*plan)[i];
      slot.bytes_sent = 1000 * (i + 1);
      slots.push_back(slot);
    }
    return slots;
  }

  static UpdateHeader Header(const std::vector<SlotSpec>& slots, int slot) {
    UpdateHeader h;
    h.set_worker_id(slots[slot].worker_id);
    h.set_incarnation(kIncarnation);
    h.set_job_id(kJob);
    h.set_round(kRound);
    h.set_slot(slot);
    h.set_train_loss(2.0 + slot);
    h.set_tokens(100 * (slot + 1));
    h.set_compute_s(1.5);
    h.set_receive_s(0.25);
    h.set_send_s(0.125);
    return h;
  }

  // The worker's weights after "training": what it received plus `shift`.
  NamedTensors Trained(const SubnetUnits& units, double shift) const {
    torch::NoGradGuard no_grad;
    NamedTensors out;
    for (const auto& [name, t] : twist::testing::Extract(Config(), params_, units)) {
      out.Set(name, t + shift);
    }
    return out;
  }

  // Closes the round and merges it into `params` (plain IST merging).
  static RoundOutcome CloseAndMerge(RoundCollector& collector,
                                    const NamedTensors& params) {
    std::vector<SlotResult> results = collector.Close();
    NamedTensors velocity;
    MergeTargets targets;
    targets.params = &params;
    targets.velocity = &velocity;
    absl::StatusOr<RoundOutcome> outcome =
        MergeRound(Config(), collector.slots(), results, targets);
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    return outcome.ok() ? *outcome : RoundOutcome();
  }

  // A collector of round kRound for `slots`, float32 updates, no pool.
  static std::unique_ptr<RoundCollector> Collector(
      const std::vector<SlotSpec>& slots,
      at::ScalarType wire_dtype = at::kFloat) {
    return std::make_unique<RoundCollector>(kIncarnation, kJob, kRound,
                                            Config(), slots, wire_dtype,
                                            /*with_optimizer_state=*/false,
                                            nullptr);
  }

  common::Gpt model_;
  NamedTensors params_;
};

TEST_F(RoundCollectorTest, ExpectReturnsEmptyTensorsOfTheSubnetShapes) {
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  EXPECT_EQ(collector.num_slots(), 2);
  EXPECT_EQ(collector.slot(1).worker_id, "w2");
  for (int s = 0; s < 2; ++s) {
    absl::StatusOr<NamedTensors> expected = collector.Expect(Header(slots, s));
    ASSERT_TRUE(expected.ok()) << expected.status();
    auto sliced = twist::testing::ExtractOne(Config(), params_, slots[s].units);
    ASSERT_TRUE(sliced.ok());
    ASSERT_EQ(expected->size(), sliced->size());
    for (size_t i = 0; i < sliced->size(); ++i) {
      EXPECT_EQ((*expected)[i].name, (*sliced)[i].name);
      EXPECT_EQ((*expected)[i].tensor.sizes(), (*sliced)[i].tensor.sizes())
          << (*sliced)[i].name;
      EXPECT_EQ((*expected)[i].tensor.scalar_type(), at::kFloat);
    }
  }
  // One head of two, 16 of 32 columns: c_attn keeps 3 * 1 * 4 rows. A
  // round that travels in bfloat16 expects bfloat16.
  auto bf16_round = Collector(slots, at::kBFloat16);
  absl::StatusOr<NamedTensors> bf16 = bf16_round->Expect(Header(slots, 0));
  ASSERT_TRUE(bf16.ok());
  const at::Tensor* c_attn = bf16->Find("transformer.h.0.attn.c_attn.weight");
  ASSERT_NE(c_attn, nullptr);
  EXPECT_EQ(c_attn->sizes().vec(), (std::vector<int64_t>{12, 8}));
  EXPECT_EQ(c_attn->scalar_type(), at::kBFloat16);
  EXPECT_EQ(bf16->Find("transformer.h.1.mlp.c_fc.weight")->sizes().vec(),
            (std::vector<int64_t>{16, 8}));
}

TEST_F(RoundCollectorTest, ForeignOrStaleHeadersAreFailedPrecondition) {
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  struct Case {
    std::string what;
    UpdateHeader header;
    std::string message;
  };
  std::vector<Case> cases;
  UpdateHeader h = Header(slots, 0);
  h.set_incarnation(6);
  cases.push_back(
      {"incarnation", h,
       "update for coordinator incarnation 6 but this coordinator is "
       "incarnation 7 (it restarted): the update is stale and was dropped"});
  h = Header(slots, 0);
  h.set_job_id(4);
  cases.push_back(
      {"job", h,
       "update for job 4 round 5 but the current round is job 3 round 5: the "
       "update is stale and was dropped"});
  h = Header(slots, 0);
  h.set_round(4);
  cases.push_back(
      {"round", h,
       "update for job 3 round 4 but the current round is job 3 round 5: the "
       "update is stale and was dropped"});
  h = Header(slots, 0);
  h.set_slot(2);
  cases.push_back(
      {"slot out of range", h, "worker w1 does not hold slot 2 of round 5"});
  h = Header(slots, 0);
  h.set_slot(-1);
  cases.push_back(
      {"negative slot", h, "worker w1 does not hold slot -1 of round 5"});
  h = Header(slots, 0);
  h.set_worker_id("w2");
  cases.push_back({"worker", h, "worker w2 does not hold slot 0 of round 5"});

  for (const Case& c : cases) {
    auto expected = collector.Expect(c.header);
    EXPECT_EQ(expected.status().code(), absl::StatusCode::kFailedPrecondition)
        << c.what;
    EXPECT_EQ(expected.status().message(), c.message) << c.what;
    const absl::Status delivered =
        collector.Deliver(c.header, Trained(slots[0].units, 1.0), 10);
    EXPECT_EQ(delivered.code(), absl::StatusCode::kFailedPrecondition)
        << c.what;
    EXPECT_EQ(delivered.message(), c.message) << c.what;
    const absl::Status refused = collector.Refuse(c.header, "no");
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << c.what;
  }
  // None of them settled a slot.
  EXPECT_EQ(collector.Outstanding(), (std::vector<int>{0, 1}));
}

TEST_F(RoundCollectorTest, SecondUpdateForASlotIsAlreadyExists) {
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  ASSERT_TRUE(
      collector.Deliver(Header(slots, 0), Trained(slots[0].units, 1.0), 10)
          .ok());
  const std::string message = "slot 0 of round 5 already has an update";
  absl::Status again =
      collector.Deliver(Header(slots, 0), Trained(slots[0].units, 2.0), 10);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(), message);
  EXPECT_EQ(collector.Expect(Header(slots, 0)).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(collector.Refuse(Header(slots, 0), "late error").code(),
            absl::StatusCode::kAlreadyExists);

  ASSERT_TRUE(collector.Refuse(Header(slots, 1), "dataset differs").ok());
  absl::Status after_refusal =
      collector.Deliver(Header(slots, 1), Trained(slots[1].units, 1.0), 10);
  EXPECT_EQ(after_refusal.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(after_refusal.message(), "slot 1 of round 5 already has an update");
}

TEST_F(RoundCollectorTest, MergeAppliesExactlyTheMeanUpdate) {
  MakeWeightsDyadic();
  const NamedTensors before = Clone(params_);
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  for (int s = 0; s < 2; ++s) {
    ASSERT_TRUE(
        collector
            .Deliver(Header(slots, s), Trained(slots[s].units, 1.0), 500 + s)
            .ok());
  }
  EXPECT_TRUE(collector.Outstanding().empty());
  const RoundOutcome outcome = CloseAndMerge(collector, params_);
  EXPECT_EQ(outcome.accepted, 2);
  EXPECT_EQ(outcome.mean_train_loss, 2.5);  // (2 + 3) / 2
  EXPECT_EQ(outcome.tokens, 300);
  EXPECT_EQ(outcome.bytes_received, 1001);
  ASSERT_EQ(outcome.workers.size(), 2u);
  for (int s = 0; s < 2; ++s) {
    const twist::v1::RoundWorker& w = outcome.workers[s];
    EXPECT_EQ(w.worker_id(), slots[s].worker_id);
    EXPECT_EQ(w.worker_name(), slots[s].worker_name);
    EXPECT_EQ(w.slot(), s);
    EXPECT_TRUE(w.accepted());
    EXPECT_EQ(w.reason(), "");
    EXPECT_EQ(w.train_loss(), 2.0 + s);
    EXPECT_EQ(w.tokens(), 100 * (s + 1));
    EXPECT_EQ(w.compute_s(), 1.5);
    EXPECT_EQ(w.receive_s(), 0.25);
    EXPECT_EQ(w.send_s(), 0.125);
    EXPECT_EQ(w.bytes_sent(), 1000 * (s + 1));
    EXPECT_EQ(w.bytes_received(), 500 + s);
    EXPECT_EQ(w.parameters(),
              common::SubnetConfig(Config(), slots[s].units).NumParameters());
  }
  // Everything moves by +1, exactly: the default split of 2 heads and 32
  // columns over 2 workers is disjoint, and both move the replicated tensors.
  for (const auto& [name, t] : params_) {
    EXPECT_TRUE(t.equal(*before.Find(name) + 1.0)) << name;
  }
}

// The mean delta a tensor should get when worker w (holding plan[w]) moved
// everything it holds by shifts[w]: per unit, the mean over its holders.
at::Tensor ExpectedDelta(const ModelConfig& config,
                         const std::vector<SlotSpec>& slots,
                         const std::vector<double>& shifts,
                         const std::string& name, at::IntArrayRef shape) {
  double all = 0;
  for (double s : shifts) all += s;
  all /= shifts.size();
  for (int l = 0; l < config.n_layer; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    const int H = config.n_head[l], D = config.head_dim,
              F = config.ffn_width[l];
    auto mean_over_holders = [&](int k, bool heads) {
      std::vector<float> sum(k, 0), count(k, 0);
      for (size_t w = 0; w < slots.size(); ++w) {
        const auto& layer = slots[w].units.layers[l];
        for (int u : heads ? layer.heads : layer.ffn_columns) {
          sum[u] += shifts[w];
          count[u] += 1;
        }
      }
      std::vector<float> mean(k, 0);
      for (int u = 0; u < k; ++u)
        mean[u] = count[u] > 0 ? sum[u] / count[u] : 0;
      return torch::tensor(mean);
    };
    // (3*H*D): the q, k and v blocks each repeat the heads' rows.
    const at::Tensor head_rows =
        mean_over_holders(H, true).repeat_interleave(D).repeat({3});
    const at::Tensor columns = mean_over_holders(F, false);
    if (name == p + "attn.c_attn.weight")
      return head_rows.view({-1, 1}).expand(shape);
    if (name == p + "attn.c_attn.bias") return head_rows;
    if (name == p + "attn.c_proj.weight") {
      return mean_over_holders(H, true)
          .repeat_interleave(D)
          .view({1, -1})
          .expand(shape);
    }
    if (name == p + "mlp.c_fc.weight")
      return columns.view({-1, 1}).expand(shape);
    if (name == p + "mlp.c_fc.bias") return columns;
    if (name == p + "mlp.c_proj.weight")
      return columns.view({1, -1}).expand(shape);
  }
  return torch::full(shape, static_cast<float>(all));
}

TEST_F(RoundCollectorTest, MergeAveragesOverTheWorkersHoldingEachUnit) {
  MakeWeightsDyadic();
  const NamedTensors before = Clone(params_);
  // Three workers share 2 heads (one each) and 32 columns (11 each), so some
  // units have two holders: their means are 1.5, 2 or 2.5, all exact.
  const std::vector<SlotSpec> slots = Slots(3);
  const std::vector<double> shifts = {1.0, 2.0, 3.0};
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  for (int s = 0; s < 3; ++s) {
    ASSERT_TRUE(
        collector
            .Deliver(Header(slots, s), Trained(slots[s].units, shifts[s]), 1)
            .ok());
  }
  const RoundOutcome outcome = CloseAndMerge(collector, params_);
  ASSERT_EQ(outcome.accepted, 3);
  for (const auto& [name, t] : params_) {
    const at::Tensor expected =
        *before.Find(name) +
        ExpectedDelta(Config(), slots, shifts, name, t.sizes());
    EXPECT_TRUE(t.equal(expected)) << name << "\n" << (t - expected);
  }
  // Some unit had two holders (else this test checks no mean).
  bool some_unit_shared = false;
  for (int l = 0; l < Config().n_layer; ++l) {
    std::vector<int> holders(Config().ffn_width[l], 0);
    for (const auto& slot : slots) {
      for (int u : slot.units.layers[l].ffn_columns) {
        some_unit_shared |= ++holders[u] > 1;
      }
    }
  }
  EXPECT_TRUE(some_unit_shared);
}

TEST_F(RoundCollectorTest, MergeIsTheSameBytesWhateverTheArrivalOrderAndThreads) {
  // Weights from the model's own initialisation and updates with per-element
  // noise, so float sums of deltas depend on their order.
  const std::vector<SlotSpec> slots = Slots(3);
  const std::vector<double> shifts = {0.1, 0.37, 0.73};
  std::vector<NamedTensors> trained;
  for (int s = 0; s < 3; ++s) {
    NamedTensors t = Trained(slots[s].units, shifts[s]);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + s);
    for (const auto& [name, tensor] : t) {
      tensor.add_(torch::randn(tensor.sizes(), gen) * shifts[s]);
    }
    trained.push_back(std::move(t));
  }

  auto in_order = Collector(slots);
  for (int s = 0; s < 3; ++s) {
    ASSERT_TRUE(in_order->Deliver(Header(slots, s), Clone(trained[s]), 1).ok());
  }
  const NamedTensors a_params = Clone(params_), c_params = Clone(params_);
  const RoundOutcome a = CloseAndMerge(*in_order, a_params);
  ASSERT_EQ(a.accepted, 3);
  // Every arrival order, merged with one thread and with several: the same
  // bytes.
  const int threads = at::get_num_threads();
  std::vector<int> order = {0, 1, 2};
  do {
    for (int n : {1, 3}) {
      at::set_num_threads(n);
      // The merge's loop really runs on n threads (the project's files are
      // compiled with LibTorch's OpenMP).
      ASSERT_EQ(common::ParallelForThreads(), n);
      auto shuffled = Collector(slots);
      for (int s : order) {
        ASSERT_TRUE(
            shuffled->Deliver(Header(slots, s), Clone(trained[s]), 1).ok());
      }
      const NamedTensors b_params = Clone(params_);
      const RoundOutcome b = CloseAndMerge(*shuffled, b_params);
      ASSERT_EQ(b.accepted, 3);
      for (const auto& [name, t] : a_params) {
        const at::Tensor& other = *b_params.Find(name);
        EXPECT_EQ(std::memcmp(t.data_ptr(), other.data_ptr(),
                              t.numel() * t.element_size()),
                  0)
            << name << ", arrival order " << order[0] << order[1] << order[2]
            << ", " << n << " threads";
      }
      for (int s = 0; s < 3; ++s)
        EXPECT_EQ(b.workers[s].worker_id(), slots[s].worker_id);
    }
  } while (std::next_permutation(order.begin(), order.end()));
  at::set_num_threads(threads);

  // The check can fail: merging the same updates in reverse slot order gives
  // different bits somewhere.
  std::vector<common::SliceUpdate> backwards;
  for (int s = 2; s >= 0; --s) {
    backwards.push_back({&slots[s].units, &trained[s], false});
  }
  NamedTensors velocity;
  ASSERT_TRUE(common::MergeUpdates(Config(), c_params, backwards,
                                   common::OuterStep(), &velocity)
                  .ok());
  bool any_differs = false;
  for (const auto& [name, t] : a_params) {
    if (!t.equal(*c_params.Find(name))) any_differs = true;
  }
  EXPECT_TRUE(any_differs);
}

TEST_F(RoundCollectorTest, NaNUpdateIsRejectedOnArrivalOthersAccepted) {
  const std::vector<SlotSpec> slots = Slots(3);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  for (int s = 0; s < 3; ++s) {
    NamedTensors t = Trained(slots[s].units, 0.5);
    if (s == 1) {
      t.Find("transformer.ln_f.weight")->index_put_({2}, std::nanf(""));
    }
    const absl::Status delivered =
        collector.Deliver(Header(slots, s), std::move(t), 10);
    EXPECT_EQ(delivered.code(), s == 1 ? absl::StatusCode::kInvalidArgument
                                       : absl::StatusCode::kOk)
        << delivered;
  }
  const NamedTensors before = Clone(params_);
  const RoundOutcome outcome = CloseAndMerge(collector, params_);
  EXPECT_EQ(outcome.accepted, 2);
  EXPECT_EQ(outcome.mean_train_loss,
            3.0);                         // (2 + 4) / 2: slot 1's loss left out
  EXPECT_EQ(outcome.tokens, 400);         // 100 + 300
  EXPECT_EQ(outcome.bytes_received, 30);  // received, even if rejected
  ASSERT_EQ(outcome.workers.size(), 3u);
  EXPECT_TRUE(outcome.workers[0].accepted());
  EXPECT_FALSE(outcome.workers[1].accepted());
  EXPECT_TRUE(outcome.workers[2].accepted());
  EXPECT_EQ(outcome.workers[1].reason(),
            "update rejected: slot 1: tensor 'transformer.ln_f.weight' holds "
            "NaN or infinite values");
  for (const auto& [name, t] : params_) {
    EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
  }
  // The two accepted updates moved ln_f by +0.5.
  EXPECT_TRUE(torch::allclose(*params_.Find("transformer.ln_f.weight"),
                              *before.Find("transformer.ln_f.weight") + 0.5,
                              0, 1e-6));
}

// Compressed updates are decoded on arrival; one whose code does not decode
// is rejected naming its slot and tensor, and the round goes on without it.
TEST_F(RoundCollectorTest, CorruptCompressedUpdateIsRejectedNamingSlotAndTensor) {
  std::vector<SlotSpec> slots = Slots(3);
  for (SlotSpec& slot : slots) {
    slot.update_form.encoding = {common::UpdateCodec::kInt8};
    slot.update_form.leaving.layers.resize(Config().n_layer);
  }
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  const std::string bad = "transformer.h.1.attn.c_attn.weight";
  for (int s = 0; s < 3; ++s) {
    UpdateHeader h = Header(slots, s);
    h.set_deltas(true);
    absl::StatusOr<NamedTensors> buffers = collector.Expect(h);
    ASSERT_TRUE(buffers.ok()) << buffers.status();
    const common::SlotPayload payload(Config(), slots[s].units, at::kFloat,
                                      false, slots[s].update_form);
    for (const common::PayloadTensor& t : payload.update()) {
      at::Tensor code = common::EncodeUpdate(
          torch::full(t.values_shape, 0.5f), slots[s].update_form.encoding);
      if (s == 1 && t.name == bad) {
        code.narrow(0, 0, 4).copy_(torch::full({1}, -1.0f).view(at::kByte));
      }
      buffers->Find(t.name)->copy_(code);
    }
    const absl::Status delivered =
        collector.Deliver(h, *std::move(buffers), 10);
    EXPECT_EQ(delivered.code(), s == 1 ? absl::StatusCode::kInvalidArgument
                                       : absl::StatusCode::kOk)
        << delivered;
  }
  const NamedTensors before = Clone(params_);
  const RoundOutcome outcome = CloseAndMerge(collector, params_);
  EXPECT_EQ(outcome.accepted, 2);
  EXPECT_FALSE(outcome.workers[1].accepted());
  EXPECT_NE(outcome.workers[1].reason().find("slot 1"), std::string::npos);
  EXPECT_NE(outcome.workers[1].reason().find(bad), std::string::npos)
      << outcome.workers[1].reason();
  EXPECT_NE(outcome.workers[1].reason().find("step 0 is -1"), std::string::npos)
      << outcome.workers[1].reason();
  // The two decoded updates moved ln_f by +0.5.
  EXPECT_TRUE(torch::allclose(*params_.Find("transformer.ln_f.weight"),
                              *before.Find("transformer.ln_f.weight") + 0.5,
                              0, 1e-6));
}

TEST_F(RoundCollectorTest, AbandonAndRefuseRecordTheirReasons) {
  const std::vector<SlotSpec> slots = Slots(4);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  ASSERT_TRUE(
      collector.Deliver(Header(slots, 0), Trained(slots[0].units, 1.0), 10)
          .ok());
  collector.Abandon(1, SlotEnd::kWorkerLost, "worker w2 lost: no heartbeat");
  UpdateHeader refused = Header(slots, 2);
  refused.set_error("dataset differs");
  refused.set_parameters(4321);  // what the worker says it held
  ASSERT_TRUE(
      collector.Refuse(refused, "worker could not train: dataset differs")
          .ok());
  // Abandoning a delivered slot leaves its update alone.
  collector.Abandon(0, SlotEnd::kDeadline, "deadline");
  EXPECT_EQ(collector.Outstanding(), (std::vector<int>{3}));

  const absl::Status late =
      collector.Deliver(Header(slots, 1), Trained(slots[1].units, 1.0), 10);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(late.message(),
            "slot 1 of round 5 was given up: worker w2 lost: no heartbeat");

  EXPECT_EQ(collector.Abandoned(), (std::vector<int>{1}));
  const RoundOutcome outcome = CloseAndMerge(collector, params_);
  EXPECT_EQ(outcome.accepted, 1);
  EXPECT_EQ(outcome.mean_train_loss, 2.0);
  ASSERT_EQ(outcome.workers.size(), 4u);
  EXPECT_TRUE(outcome.workers[0].accepted());
  EXPECT_EQ(outcome.workers[0].reason(), "");
  EXPECT_FALSE(outcome.workers[1].accepted());
  EXPECT_EQ(outcome.workers[1].reason(), "worker w2 lost: no heartbeat");
  EXPECT_EQ(outcome.workers[1].train_loss(), 0);
  EXPECT_FALSE(outcome.workers[2].accepted());
  EXPECT_EQ(outcome.workers[2].reason(),
            "worker could not train: dataset differs");
  EXPECT_EQ(outcome.workers[2].train_loss(),
            4.0);  // the header's figures are kept
  EXPECT_EQ(outcome.workers[2].tokens(), 300);
  EXPECT_EQ(outcome.workers[2].parameters(), 4321);
  EXPECT_EQ(outcome.workers[3].parameters(),  // no header: as planned
            common::SubnetConfig(Config(), slots[3].units).NumParameters());
  EXPECT_FALSE(outcome.workers[3].accepted());
  EXPECT_EQ(outcome.workers[3].reason(), "no update before the round ended");
  EXPECT_EQ(outcome.tokens, 100);
}

TEST_F(RoundCollectorTest, NoAcceptedUpdateGivesNaNLossAndAnUnchangedModel) {
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  collector.Abandon(0, SlotEnd::kWorkerLost, "lost");
  collector.Abandon(1, SlotEnd::kWorkerLost, "lost");
  const NamedTensors before = Clone(params_);
  const RoundOutcome outcome = CloseAndMerge(collector, params_);
  EXPECT_EQ(outcome.accepted, 0);
  EXPECT_TRUE(std::isnan(outcome.mean_train_loss));
  for (const auto& [name, t] : params_) {
    EXPECT_TRUE(t.equal(*before.Find(name))) << name;
  }
}

TEST_F(RoundCollectorTest, WaitAllSettledWaitsForTheLastSlotOrTheDeadline) {
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  ASSERT_TRUE(
      collector.Deliver(Header(slots, 0), Trained(slots[0].units, 1.0), 10)
          .ok());

  const absl::Time start = absl::Now();
  EXPECT_FALSE(collector.WaitAllSettled(start + absl::Milliseconds(100)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_EQ(collector.Outstanding(), (std::vector<int>{1}));

  NamedTensors second = Trained(slots[1].units, 1.0);
  std::thread deliverer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(
        collector.Deliver(Header(slots, 1), std::move(second), 10).ok());
  });
  const absl::Time wait_start = absl::Now();
  EXPECT_TRUE(collector.WaitAllSettled(wait_start + absl::Seconds(20)));
  EXPECT_LT(absl::Now() - wait_start, absl::Seconds(10));
  deliverer.join();
  EXPECT_TRUE(collector.Outstanding().empty());
  // Settled already: returns at once, even with a deadline in the past.
  EXPECT_TRUE(collector.WaitAllSettled(absl::InfinitePast()));
}

TEST_F(RoundCollectorTest, AbandonSettlesASlotForWaitAllSettled) {
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  collector.Abandon(0, SlotEnd::kWorkerLost, "lost");
  EXPECT_FALSE(collector.WaitAllSettled(absl::Now() + absl::Milliseconds(20)));
  ASSERT_TRUE(collector.Refuse(Header(slots, 1), "could not train").ok());
  EXPECT_TRUE(collector.WaitAllSettled(absl::Now() + absl::Milliseconds(20)));
}

TEST_F(RoundCollectorTest, DeliveriesAfterCloseFail) {
  const std::vector<SlotSpec> slots = Slots(2);
  auto owned = Collector(slots);
  RoundCollector& collector = *owned;
  ASSERT_TRUE(
      collector.Deliver(Header(slots, 0), Trained(slots[0].units, 1.0), 10)
          .ok());
  const RoundOutcome outcome = CloseAndMerge(collector, params_);
  EXPECT_EQ(outcome.accepted, 1);
  const std::string message = "round 5 is over: the update came too late";
  absl::Status late =
      collector.Deliver(Header(slots, 1), Trained(slots[1].units, 1.0), 10);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(late.message(), message);
  EXPECT_EQ(collector.Expect(Header(slots, 1)).status().message(), message);
  EXPECT_EQ(collector.Refuse(Header(slots, 1), "x").message(), message);
}

}  // namespace
}  // namespace twist::coordinator
