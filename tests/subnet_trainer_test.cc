// The worker's trainer without networking: the model stays resident on the
// device from round to round, and what it returns is what a fresh trainer
// would return for the same assignment.
#include "worker/subnet_trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "common/data/prepare.h"
#include "common/data/synthetic_corpus.h"
#include "common/ist/slot_payload.h"
#include "common/data/dataset.h"
#include "common/ist/optimizer_state.h"
#include "common/ist/subnet.h"
#include "common/job/job_config.h"
#include "common/job/round_options.h"
#include "common/training/local_training.h"
#include "common/training/compute_dtype.h"
#include "common/model/model_io.h"
#include "common/transport/subnet_proto.h"
#include "common/transport/wire_dtype.h"
#include "tests/test_models.h"

namespace twist {
namespace {

class SubnetTrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(twist::testing::MakeTempDir());
    const std::string text = *dir_ + "/corpus.txt";
    {
      std::FILE* f = std::fopen(text.c_str(), "w");
      const std::string corpus = common::GenerateSyntheticCorpus(3, 60000);
      std::fwrite(corpus.data(), 1, corpus.size(), f);
      std::fclose(f);
    }
    common::PrepareOptions options;
    options.input = text;
    options.output_dir = *dir_ + "/data";
    ASSERT_TRUE(common::PrepareDataset(options).ok());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  // A 2-layer model of 4 heads and 256 columns per layer.
  static twist::v1::JobSpec Spec() {
    twist::v1::JobSpec spec;
    spec.mutable_model()->set_n_layer(2);
    spec.mutable_model()->set_n_head(4);
    spec.mutable_model()->set_n_embd(64);
    spec.mutable_model()->set_block_size(32);
    spec.mutable_model()->set_vocab_size(256);
    spec.mutable_data()->set_path(*dir_ + "/data");
    spec.set_rounds(4);
    spec.set_local_steps(3);
    spec.set_batch_size(4);
    spec.set_seed(5);
    spec.mutable_optimizer()->set_learning_rate(1e-3);
    spec.mutable_optimizer()->set_beta1(0.9);
    spec.mutable_optimizer()->set_beta2(0.95);
    spec.mutable_optimizer()->set_weight_decay(0.1);
    spec.mutable_optimizer()->set_grad_clip(1.0);
    spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_WORKER);
    spec.set_transport_dtype(twist::v1::TRANSPORT_DTYPE_FLOAT32);
    spec.set_compute_dtype(twist::v1::COMPUTE_DTYPE_FLOAT32);
    return spec;
  }

  // Heads {first, first + 1} and columns [first * 64, first * 64 + 128) of
  // every layer: the same shapes whatever `first` in [0, 2].
  static common::SubnetUnits Window(int first) {
    common::SubnetUnits units;
    for (int l = 0; l < 2; ++l) {
      common::LayerUnits layer;
      layer.heads = {first, first + 1};
      for (int c = 0; c < 128; ++c) layer.ffn_columns.push_back(first * 64 + c);
      units.layers.push_back(layer);
    }
    return units;
  }

  // Round `round` of `units` sliced out of `params`, prepared, filled and
  // trained by `trainer`.
  static worker::TrainedSubnet Run(worker::SubnetTrainer& trainer,
                                   const twist::v1::JobSpec& spec, int round,
                                   const common::SubnetUnits& units,
                                   const common::NamedTensors& params,
                                   common::Gpt* model_used = nullptr) {
    const common::ModelConfig full = common::ModelConfigOf(spec);
    common::NamedTensors sliced = twist::testing::Extract(full, params, units);
    if (spec.transport_dtype() == twist::v1::TRANSPORT_DTYPE_BFLOAT16) {
      common::NamedTensors narrowed;
      for (const auto& [name, t] : sliced) narrowed.Set(name, t.to(at::kBFloat16));
      sliced = std::move(narrowed);
    }
    return RunSliced(trainer, spec, round, units, sliced, model_used);
  }

  // Run() of an assignment whose tensors are `sliced`.
  static worker::TrainedSubnet RunSliced(worker::SubnetTrainer& trainer,
                                         const twist::v1::JobSpec& spec,
                                         int round,
                                         const common::SubnetUnits& units,
                                         const common::NamedTensors& sliced,
                                         common::Gpt* model_used = nullptr) {
    twist::v1::AssignmentHeader header;
    header.set_incarnation(1);
    header.set_job_id(1);
    header.set_round(round);
    *header.mutable_spec() = spec;
    *header.mutable_units() = common::ToProto(units);
    *header.mutable_tensors() = common::DescribeTensors(sliced);
    auto prepared = trainer.Prepare(header);
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    {
      torch::NoGradGuard no_grad;
      for (const auto& [name, t] : prepared->receive_into)
        t.copy_(*sliced.Find(name));
    }
    if (model_used != nullptr) *model_used = prepared->model;
    auto trained = trainer.Train(*prepared);
    EXPECT_TRUE(trained.ok()) << trained.status();
    // Owned copies: the float32 tensors on the CPU are the model's own.
    worker::TrainedSubnet out = *std::move(trained);
    out.tensors = twist::testing::Clone(out.tensors);
    return out;
  }

  static common::NamedTensors FullParams(const twist::v1::JobSpec& spec) {
    common::Gpt model(common::ModelConfigOf(spec));
    model->InitWeights(spec.seed());
    return twist::testing::Clone(common::ParameterTensors(*model));
  }

  static std::string* dir_;
};
std::string* SubnetTrainerTest::dir_ = nullptr;

void ExpectEqualTensors(const common::NamedTensors& a,
                        const common::NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_TRUE(a[i].tensor.equal(b[i].tensor))
        << a[i].name << " differs by up to "
        << (a[i].tensor.to(at::kFloat) - b[i].tensor.to(at::kFloat))
               .abs()
               .max()
               .item<double>();
  }
}

TEST_F(SubnetTrainerTest, KeepsTheModelResidentWhileTheShapesStayTheSame) {
  const twist::v1::JobSpec spec = Spec();
  const common::NamedTensors params = FullParams(spec);
  worker::SubnetTrainer trainer(worker::SubnetTrainer::Options{});
  common::Gpt first{nullptr}, second{nullptr}, third{nullptr};
  Run(trainer, spec, 1, Window(0), params, &first);
  const void* weights = first->transformer->wte->weight.data_ptr();
  Run(trainer, spec, 2, Window(1), params, &second);
  EXPECT_EQ(first.get(), second.get());
  EXPECT_EQ(second->transformer->wte->weight.data_ptr(), weights);
  // Other shapes: a model of its own, and the old one is let go.
  common::SubnetUnits narrower = Window(0);
  narrower.layers[1].heads = {3};
  Run(trainer, spec, 3, narrower, params, &third);
  EXPECT_NE(third.get(), first.get());
  EXPECT_EQ(trainer.resident_model().get(), third.get());
  EXPECT_EQ(third->transformer->blocks[1]->attn->n_head(), 1);
}

TEST_F(SubnetTrainerTest, AResidentModelTrainsAsAFreshOneWould) {
  // Fresh optimizer state, so that the second round of a trainer that kept
  // its model must equal a new trainer's first, bit for bit: nothing of the
  // last round (gradients, scales, weights) leaks into the next.
  twist::v1::JobSpec spec = Spec();
  spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_FRESH);
  for (const auto dtype : {twist::v1::TRANSPORT_DTYPE_FLOAT32,
                           twist::v1::TRANSPORT_DTYPE_BFLOAT16}) {
    spec.set_transport_dtype(dtype);
    const common::NamedTensors params = FullParams(spec);
    worker::SubnetTrainer resident(worker::SubnetTrainer::Options{});
    Run(resident, spec, 1, Window(0), params);
    const worker::TrainedSubnet again =
        Run(resident, spec, 2, Window(2), params);
    worker::SubnetTrainer fresh(worker::SubnetTrainer::Options{});
    const worker::TrainedSubnet once = Run(fresh, spec, 2, Window(2), params);
    EXPECT_EQ(again.deltas, once.deltas);
    ExpectEqualTensors(again.tensors, once.tensors);
  }
}

TEST_F(SubnetTrainerTest, Bfloat16TransportReturnsTrainedMinusReceived) {
  // The same assignment in float32 and in bfloat16: the bfloat16 update is
  // the trained weights minus the bfloat16 weights received, rounded; so
  // received + update is the float32 run's result to bfloat16 precision
  // (the runs start from weights that differ by the rounding of bfloat16).
  twist::v1::JobSpec spec = Spec();
  const common::NamedTensors params = FullParams(spec);
  worker::SubnetTrainer a(worker::SubnetTrainer::Options{});
  const worker::TrainedSubnet f32 = Run(a, spec, 1, Window(1), params);
  spec.set_transport_dtype(twist::v1::TRANSPORT_DTYPE_BFLOAT16);
  worker::SubnetTrainer b(worker::SubnetTrainer::Options{});
  const worker::TrainedSubnet bf16 = Run(b, spec, 1, Window(1), params);
  ASSERT_TRUE(bf16.deltas);
  ASSERT_FALSE(f32.deltas);
  const common::NamedTensors received = twist::testing::Extract(
      common::ModelConfigOf(spec), params, Window(1));
  for (const auto& [name, delta] : bf16.tensors) {
    EXPECT_EQ(delta.scalar_type(), at::kBFloat16) << name;
    const at::Tensor base = received.Find(name)->to(at::kBFloat16).to(at::kFloat);
    const at::Tensor trained = base + delta.to(at::kFloat);
    const at::Tensor want = *f32.tensors.Find(name);
    EXPECT_LT((trained - want).abs().max().item<double>(),
              1e-2 * (1 + want.abs().max().item<double>()))
        << name;
    // An update, not weights: far smaller than the weights themselves.
    EXPECT_LT(delta.to(at::kFloat).abs().max().item<double>(), 0.05) << name;
  }
}

TEST_F(SubnetTrainerTest, WorkerKeptStateCarriesAcrossRoundsOnTheDevice) {
  // Two rounds of a rolling window with worker-kept moments train the same
  // as one trainer that never gave its model up: the second round differs
  // from a fresh-state run of the same round.
  const twist::v1::JobSpec spec = Spec();
  const common::NamedTensors params = FullParams(spec);
  worker::SubnetTrainer kept(worker::SubnetTrainer::Options{});
  Run(kept, spec, 1, Window(0), params);
  const worker::TrainedSubnet carried = Run(kept, spec, 2, Window(1), params);
  twist::v1::JobSpec fresh_spec = spec;
  fresh_spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_FRESH);
  worker::SubnetTrainer fresh(worker::SubnetTrainer::Options{});
  const worker::TrainedSubnet restarted =
      Run(fresh, fresh_spec, 2, Window(1), params);
  double largest = 0;
  for (const auto& [name, t] : carried.tensors) {
    largest = std::max(
        largest, (t - *restarted.tensors.Find(name)).abs().max().item<double>());
  }
  EXPECT_GT(largest, 1e-6);
}

// Error feedback on the worker: an update's residual is kept only once the
// coordinator accepted it (KeepResidual); a later round of the same job
// starts from the received weights plus it (so its update carries it), also
// after a coordinator restart that resumes after its round, while a restart
// that resumes at or before it drops it. Rounds after the first train at
// learning rate 0, so what they send is exactly what they started with.
TEST_F(SubnetTrainerTest, ResidualIsAddedAfterAnAcceptedUpdateOnly) {
  twist::v1::JobSpec spec = Spec();
  spec.set_compression(twist::v1::COMPRESSION_INT4);
  spec.set_rounds(10);
  const common::ModelConfig full = common::ModelConfigOf(spec);
  const common::NamedTensors params = FullParams(spec);
  // Round `round` of Window(1) from `params`, int4 codes, nothing leaving;
  // returns what the coordinator decodes plus what the worker keeps.
  const auto run = [&](worker::SubnetTrainer& trainer, uint64_t incarnation,
                       int round, double lr,
                       std::shared_ptr<worker::Residual>* left) {
    const common::NamedTensors sliced =
        twist::testing::Extract(full, params, Window(1));
    twist::v1::AssignmentHeader header;
    header.set_incarnation(incarnation);
    header.set_job_id(1);
    header.set_round(round);
    *header.mutable_spec() = spec;
    header.mutable_spec()->mutable_optimizer()->set_learning_rate(lr);
    *header.mutable_units() = common::ToProto(Window(1));
    *header.mutable_tensors() = common::DescribeTensors(sliced);
    header.set_update_compression(twist::v1::COMPRESSION_INT4);
    auto prepared = trainer.Prepare(header);
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    {
      torch::NoGradGuard no_grad;
      for (const auto& [name, t] : prepared->receive_into)
        t.copy_(*sliced.Find(name));
    }
    auto trained = trainer.Train(*prepared);
    EXPECT_TRUE(trained.ok()) << trained.status();
    EXPECT_TRUE(trained->deltas);
    common::UpdateForm form;
    form.encoding = {common::UpdateCodec::kInt4};
    form.leaving.layers.resize(2);
    const common::SlotPayload payload(full, Window(1), at::kFloat, false, form);
    auto decoded = payload.DecodeUpdate(trained->tensors);
    EXPECT_TRUE(decoded.ok()) << decoded.status();
    common::NamedTensors whole;  // decoded + kept: all the worker had to send
    for (const auto& [name, t] : *decoded) {
      whole.Set(name, t + *trained->residual->values.Find(name));
    }
    *left = trained->residual;
    return whole;
  };
  worker::SubnetTrainer trainer(worker::SubnetTrainer::Options{});
  std::shared_ptr<worker::Residual> first, dropped, left;
  run(trainer, 1, 1, 1e-3, &first);
  trainer.KeepResidual(first);
  double largest = 0;
  for (const auto& [name, t] : first->values) {
    largest = std::max(largest, t.abs().max().item<double>());
  }
  ASSERT_GT(largest, 0);
  run(trainer, 1, 2, 0, &dropped);  // not accepted: not kept
  const auto expect = [&](const common::NamedTensors& got, bool with_first) {
    for (const auto& [name, t] : got) {
      const at::Tensor want =
          with_first ? *first->values.Find(name) : torch::zeros_like(t);
      EXPECT_TRUE(torch::allclose(t, want, 1e-4, 1e-6))
          << name << ": max |diff| " << (t - want).abs().max().item<double>();
    }
  };
  // Round 3 starts from round 1's residual, not round 2's.
  expect(run(trainer, 1, 3, 0, &left), true);
  // A restarted coordinator resuming after round 1 (at round 3): added.
  expect(run(trainer, 2, 3, 0, &left), true);
  // One resuming at round 1 (its checkpoint predates the residual): dropped.
  expect(run(trainer, 3, 1, 0, &left), false);
}

// Overlapping rounds: the next round's first steps train ahead on the
// weights the last update was computed from; the next assignment's weights
// then take their progress, and training goes on from the step after them
// with the same optimizer. Checked against that arithmetic done directly
// with TrainLocalSteps.
TEST_F(SubnetTrainerTest, StepsTrainedAheadCarryOntoTheNextAssignment) {
  twist::v1::JobSpec spec = Spec();
  spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_FRESH);
  spec.set_overlap_steps(2);  // of 3
  const common::ModelConfig full = common::ModelConfigOf(spec);
  const common::NamedTensors params = FullParams(spec);
  worker::SubnetTrainer trainer(worker::SubnetTrainer::Options{});
  const worker::TrainedSubnet first = Run(trainer, spec, 1, Window(0), params);
  ASSERT_TRUE(trainer.HasStepsAhead());
  ASSERT_TRUE(trainer.TrainAhead().ok());
  EXPECT_FALSE(trainer.HasStepsAhead());
  // The coordinator's next weights: the update's, moved by the merge.
  torch::manual_seed(3);
  common::NamedTensors next;
  for (const auto& [name, t] : first.tensors) {
    next.Set(name, t + 0.01 * torch::randn_like(t));
  }
  const worker::TrainedSubnet second =
      RunSliced(trainer, spec, 2, Window(0), next);

  common::Gpt model(common::SubnetConfig(full, Window(0)));
  model->SetPartialSumScales(common::ScalesFor(full, Window(0),
                                               common::ScalingOf(spec)));
  const common::NamedTensors own = common::ParameterTensors(*model);
  // Weights written outside autograd.
  const auto set = [&](const auto& value) {
    torch::NoGradGuard no_grad;
    for (const auto& [name, p] : own) p.copy_(value(name, p));
  };
  set([&](const std::string& name, const at::Tensor&) {
    return *first.tensors.Find(name);
  });
  common::LocalTrainingOptions options =
      common::TrainingOptionsOf(spec, /*round=*/2, /*slot=*/0);
  common::AdamW optimizer(own, common::StepDims(full, Window(0)),
                          common::AdamWOptionsOf(options));
  auto data = common::Dataset::Open(*dir_ + "/data");
  ASSERT_TRUE(data.ok()) << data.status();
  options.steps = 2;
  auto ahead = common::TrainLocalSteps(*model, data->train(), options,
                                       &optimizer);
  ASSERT_TRUE(ahead.ok()) << ahead.status();
  set([&](const std::string& name, const at::Tensor& p) {
    return *next.Find(name) + (p - *first.tensors.Find(name));
  });
  options.first_step = 2;
  options.steps = 1;
  auto rest = common::TrainLocalSteps(*model, data->train(), options,
                                      &optimizer);
  ASSERT_TRUE(rest.ok()) << rest.status();
  for (const auto& [name, p] : own) {
    const at::Tensor& got = *second.tensors.Find(name);
    EXPECT_TRUE(torch::allclose(got, p, /*rtol=*/0, /*atol=*/1e-6))
        << name << ": max |diff| " << (got - p).abs().max().item<double>();
  }
  EXPECT_NEAR(second.result.mean_loss,
              (2 * ahead->mean_loss + rest->mean_loss) / 3, 1e-6);
  EXPECT_EQ(second.result.tokens, 3 * spec.batch_size() * 32);
  EXPECT_EQ(second.steps_ahead, 2);
  // The last round leaves nothing to train ahead.
  Run(trainer, spec, 3, Window(0), params);
  EXPECT_TRUE(trainer.HasStepsAhead());
  Run(trainer, spec, 4, Window(0), params);
  EXPECT_FALSE(trainer.HasStepsAhead());
}

TEST_F(SubnetTrainerTest, StepsAheadOfAnotherRoundAreDropped) {
  // A round dealt again, or after a coordinator restart: the assignment is
  // not the round trained ahead, and it trains as if nothing had been.
  twist::v1::JobSpec spec = Spec();
  spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_FRESH);
  const common::NamedTensors params = FullParams(spec);
  worker::SubnetTrainer waited(worker::SubnetTrainer::Options{});
  Run(waited, spec, 1, Window(0), params);
  EXPECT_FALSE(waited.HasStepsAhead());
  const worker::TrainedSubnet want = Run(waited, spec, 1, Window(1), params);
  spec.set_overlap_steps(2);
  worker::SubnetTrainer ahead(worker::SubnetTrainer::Options{});
  Run(ahead, spec, 1, Window(0), params);
  ASSERT_TRUE(ahead.TrainAhead().ok());
  const worker::TrainedSubnet got = Run(ahead, spec, 1, Window(1), params);
  ExpectEqualTensors(got.tensors, want.tensors);
  EXPECT_EQ(got.result.mean_loss, want.result.mean_loss);
  EXPECT_EQ(got.steps_ahead, 0);
}

TEST_F(SubnetTrainerTest, Bfloat16ComputeTrainsCloseToFloat32) {
  twist::v1::JobSpec spec = Spec();
  const common::NamedTensors params = FullParams(spec);
  worker::SubnetTrainer a(worker::SubnetTrainer::Options{});
  const worker::TrainedSubnet f32 = Run(a, spec, 1, Window(0), params);
  if (!common::CheckBFloat16Compute(torch::kCPU).ok()) {
    // The refusal is the contract here.
    spec.set_compute_dtype(twist::v1::COMPUTE_DTYPE_BFLOAT16);
    twist::v1::AssignmentHeader header;
    *header.mutable_spec() = spec;
    *header.mutable_units() = common::ToProto(Window(0));
    worker::SubnetTrainer b(worker::SubnetTrainer::Options{});
    EXPECT_EQ(b.Prepare(header).status().code(),
              absl::StatusCode::kFailedPrecondition);
    GTEST_SKIP() << "this CPU has no bfloat16 units: refusal checked";
  }
  spec.set_compute_dtype(twist::v1::COMPUTE_DTYPE_BFLOAT16);
  worker::SubnetTrainer b(worker::SubnetTrainer::Options{});
  const worker::TrainedSubnet bf16 = Run(b, spec, 1, Window(0), params);
  EXPECT_NEAR(bf16.result.mean_loss, f32.result.mean_loss,
              0.02 * f32.result.mean_loss);
  EXPECT_NE(bf16.result.mean_loss, f32.result.mean_loss);  // it did change
  // Each tensor moved the way float32 moved it: the two updates differ by
  // far less than either's size (Adam's steps are about lr in every entry,
  // so bfloat16 rounding can flip single small-gradient entries).
  const common::NamedTensors start = twist::testing::Extract(
      common::ModelConfigOf(spec), params, Window(0));
  double differ2 = 0, moved2 = 0;
  for (const auto& [name, t] : bf16.tensors) {
    EXPECT_EQ(t.scalar_type(), at::kFloat) << name;  // float32 masters
    const at::Tensor ours = (t - *start.Find(name)).flatten();
    const at::Tensor want = (*f32.tensors.Find(name) - *start.Find(name)).flatten();
    const double cosine =
        (ours.dot(want) / (ours.norm() * want.norm() + 1e-30)).item<double>();
    EXPECT_GT(cosine, 0.7) << name;
    differ2 += (ours - want).pow(2).sum().item<double>();
    moved2 += want.pow(2).sum().item<double>();
  }
  EXPECT_LT(std::sqrt(differ2), 0.35 * std::sqrt(moved2));
}

}  // namespace
}  // namespace twist
