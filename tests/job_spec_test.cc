// Tests of job specs: every default, one spec per validation rule (each
// breaking exactly that rule), and resolution against a real dataset folder
// written by PrepareDataset.
#include "coordinator/job_spec.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "client/spec_input.h"
#include "common/data/prepare.h"
#include "common/data/synthetic_corpus.h"
#include "common/model/model_io.h"
#include "coordinator/init_from.h"
#include "coordinator/round_plan.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::coordinator {
namespace {

using ::twist::v1::JobSpec;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A dataset's metadata as ValidateJobSpec sees it: bytes, 10000 training and
// 1000 validation tokens.
common::DatasetMeta Meta() {
  common::DatasetMeta meta;
  meta.vocab_size = 256;
  meta.train_tokens = 10000;
  meta.val_tokens = 1000;
  meta.content_hash = "abc123";
  meta.tokenizer = "bytes";
  return meta;
}

// A spec that passes validation against Meta(): the defaults, the dataset's
// vocabulary and hash.
JobSpec ValidSpec() {
  JobSpec spec;
  spec.mutable_data()->set_path("/data/brown");
  spec.mutable_data()->set_content_hash("abc123");
  spec.mutable_model()->set_vocab_size(256);
  ApplyDefaults(&spec);
  return spec;
}

TEST(ApplyDefaultsTest, FillsEveryZeroFieldWithItsDocumentedDefault) {
  JobSpec spec;
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.name(), "job");
  EXPECT_EQ(spec.compute_dtype(), twist::v1::COMPUTE_DTYPE_FLOAT32);
  EXPECT_EQ(spec.model().n_layer(), 4);
  EXPECT_EQ(spec.model().n_head(), 4);
  EXPECT_EQ(spec.model().n_embd(), 128);
  EXPECT_EQ(spec.model().block_size(), 128);
  EXPECT_EQ(spec.model().vocab_size(), 0);  // the dataset's, filled at resolve
  EXPECT_EQ(spec.mode(), twist::v1::MODE_TWIST);
  EXPECT_EQ(spec.rounds(), 20);
  EXPECT_EQ(spec.local_steps(), 20);
  EXPECT_EQ(spec.batch_size(), 16);
  EXPECT_EQ(spec.optimizer().learning_rate(), 1e-3);
  EXPECT_EQ(spec.optimizer().min_lr_ratio(), 0.1);
  EXPECT_EQ(spec.optimizer().warmup_steps(), 20);  // 5% of 20 * 20
  EXPECT_EQ(spec.optimizer().weight_decay(), 0.1);
  EXPECT_EQ(spec.optimizer().beta1(), 0.9);
  EXPECT_EQ(spec.optimizer().beta2(), 0.95);
  EXPECT_EQ(spec.optimizer().grad_clip(), 1.0);
  EXPECT_EQ(spec.seed(), 1u);
  EXPECT_EQ(spec.scaling(), twist::v1::SCALING_INVERSE_KEEP_RATIO);
  EXPECT_EQ(spec.eval_every(), 5);
  EXPECT_EQ(spec.eval_batches(), 8);
  EXPECT_EQ(spec.checkpoint_every(), 10);
  EXPECT_EQ(spec.min_workers(), 1);
  EXPECT_EQ(spec.max_workers(), 0);  // all live workers
  EXPECT_EQ(spec.round_deadline_s(), 600);
  EXPECT_EQ(spec.heads_per_worker(), 0);
  EXPECT_EQ(spec.ffn_columns_per_worker(), 0);
  EXPECT_EQ(spec.keep_ratio(), 0);
  EXPECT_FALSE(spec.capacity_weighted());
  EXPECT_EQ(spec.quota(), twist::v1::QUOTA_EQUAL);
  // The default recipe: rolling windows and Nesterov's outer step.
  EXPECT_EQ(spec.deal(), twist::v1::DEAL_ROLLING);
  EXPECT_EQ(spec.outer_learning_rate(), 1.0);
  EXPECT_EQ(spec.outer_momentum(), 0.7);
  EXPECT_FALSE(spec.outer_heavy_ball());
  EXPECT_EQ(spec.data().path(), "");
  EXPECT_EQ(spec.data().content_hash(), "");
}

// local_sgd, the data-parallel baseline, averages plainly by default; the
// first spelling of declared quotas still asks for them.
TEST(ApplyDefaultsTest, DefaultsThatDependOnOtherFields) {
  JobSpec local_sgd;
  local_sgd.set_mode(twist::v1::MODE_LOCAL_SGD);
  ApplyDefaults(&local_sgd);
  EXPECT_EQ(local_sgd.outer_learning_rate(), 1);
  EXPECT_EQ(local_sgd.outer_momentum(), 0);

  JobSpec weighted;
  weighted.set_capacity_weighted(true);
  ApplyDefaults(&weighted);
  EXPECT_EQ(weighted.quota(), twist::v1::QUOTA_DECLARED);

  // A field the spec sets keeps its value; the others take theirs.
  JobSpec half;
  half.set_outer_learning_rate(1);
  ApplyDefaults(&half);
  EXPECT_EQ(half.outer_learning_rate(), 1);
  EXPECT_EQ(half.outer_momentum(), 0.7);
}

TEST(ApplyDefaultsTest, WarmupIsFivePercentOfTheGivenRoundsTimesSteps) {
  JobSpec spec;
  spec.set_rounds(7);
  spec.set_local_steps(30);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.optimizer().warmup_steps(), 10);  // 210 / 20, rounded down

  JobSpec tiny;
  tiny.set_rounds(1);
  tiny.set_local_steps(19);
  ApplyDefaults(&tiny);
  EXPECT_EQ(tiny.optimizer().warmup_steps(), 0);
}

TEST(ApplyDefaultsTest, KeepsFieldsThatAreSet) {
  JobSpec spec;
  spec.set_name("mine");
  spec.mutable_model()->set_n_layer(2);
  spec.mutable_model()->set_n_head(8);
  spec.mutable_model()->set_n_embd(64);
  spec.mutable_model()->set_block_size(32);
  spec.mutable_model()->set_vocab_size(300);
  spec.set_mode(twist::v1::MODE_LOCAL_SGD);
  spec.set_rounds(3);
  spec.set_local_steps(5);
  spec.set_batch_size(4);
  spec.mutable_optimizer()->set_learning_rate(0.02);
  spec.mutable_optimizer()->set_min_lr_ratio(0.5);
  spec.mutable_optimizer()->set_warmup_steps(7);
  spec.mutable_optimizer()->set_weight_decay(0.01);
  spec.mutable_optimizer()->set_beta1(0.8);
  spec.mutable_optimizer()->set_beta2(0.99);
  spec.mutable_optimizer()->set_grad_clip(-1);
  spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_FRESH);
  spec.set_deal(twist::v1::DEAL_ROLLING);
  spec.set_seed(42);
  spec.set_scaling(twist::v1::SCALING_NONE);
  spec.set_eval_every(2);
  spec.set_eval_batches(3);
  spec.set_checkpoint_every(-1);
  spec.set_min_workers(2);
  spec.set_max_workers(5);
  spec.set_round_deadline_s(30.5);
  spec.set_deadline_factor(2);
  spec.set_deadline_floor_s(4);
  spec.set_outer_learning_rate(0.7);
  spec.set_outer_momentum(0.9);
  spec.set_outer_heavy_ball(true);
  spec.set_capacity_weighted(true);
  spec.set_quota(twist::v1::QUOTA_DECLARED);
  spec.set_transport_dtype(twist::v1::TRANSPORT_DTYPE_BFLOAT16);
  spec.set_compute_dtype(twist::v1::COMPUTE_DTYPE_BFLOAT16);
  spec.set_compression(twist::v1::COMPRESSION_TOPK);
  spec.set_topk_fraction(0.01);
  spec.set_overlap_steps(3);
  const JobSpec before = spec;
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.SerializeAsString(), before.SerializeAsString())
      << spec.DebugString();
}

// Fields whose 0 is a choice of its own keep an explicit 0; left unset they
// take their defaults (proto3 optional).
TEST(ApplyDefaultsTest, KeepsExplicitZerosWhereZeroIsAChoice) {
  JobSpec spec;
  spec.mutable_optimizer()->set_min_lr_ratio(0);
  spec.mutable_optimizer()->set_warmup_steps(0);
  spec.mutable_optimizer()->set_weight_decay(0);
  spec.mutable_optimizer()->set_beta1(0);
  spec.mutable_optimizer()->set_beta2(0);
  spec.mutable_optimizer()->set_grad_clip(0);
  spec.set_seed(0);
  ApplyDefaults(&spec);
  EXPECT_EQ(spec.optimizer().min_lr_ratio(), 0);
  EXPECT_EQ(spec.optimizer().warmup_steps(), 0);
  EXPECT_EQ(spec.optimizer().weight_decay(), 0);
  EXPECT_EQ(spec.optimizer().beta1(), 0);
  EXPECT_EQ(spec.optimizer().beta2(), 0);
  EXPECT_EQ(spec.optimizer().grad_clip(), 0);
  EXPECT_EQ(spec.seed(), 0u);

  JobSpec unset;
  ApplyDefaults(&unset);
  EXPECT_TRUE(unset.has_capacity_weighted());
  EXPECT_TRUE(unset.has_outer_momentum());
  EXPECT_TRUE(unset.has_outer_heavy_ball());
  EXPECT_EQ(unset.outer_momentum(), 0.7);  // twist mode's default
  EXPECT_FALSE(unset.outer_heavy_ball());
}

TEST(ValidateJobSpecTest, ValidSpecPasses) {
  EXPECT_TRUE(ValidateJobSpec(ValidSpec(), Meta()).ok())
      << ValidateJobSpec(ValidSpec(), Meta());
}

TEST(ValidateJobSpecTest, BoundaryValuesPass) {
  std::vector<std::function<void(JobSpec*)>> edits = {
      [](JobSpec* s) { s->mutable_model()->set_n_layer(256); },
      [](JobSpec* s) { s->mutable_model()->set_vocab_size(65536); },
      [](JobSpec* s) {
        s->mutable_model()->set_block_size(999);
      },  // 1000 val tokens
      [](JobSpec* s) { s->mutable_optimizer()->set_min_lr_ratio(1); },
      [](JobSpec* s) { s->mutable_optimizer()->set_min_lr_ratio(0); },
      [](JobSpec* s) { s->mutable_optimizer()->set_warmup_steps(0); },
      [](JobSpec* s) { s->mutable_optimizer()->set_weight_decay(0); },
      [](JobSpec* s) { s->mutable_optimizer()->set_beta1(0); },
      [](JobSpec* s) { s->mutable_optimizer()->set_grad_clip(0); },
      [](JobSpec* s) { s->set_outer_momentum(0); },
      [](JobSpec* s) {
        s->mutable_optimizer()->set_warmup_steps(400);
      },  // 20 * 20
      [](JobSpec* s) {
        s->mutable_optimizer()->set_grad_clip(-1);
      },  // disabled
      [](JobSpec* s) { s->set_heads_per_worker(4); },
      [](JobSpec* s) { s->set_ffn_columns_per_worker(512); },
      [](JobSpec* s) { s->set_keep_ratio(1); },
      [](JobSpec* s) {
        s->set_capacity_weighted(true);
        s->set_quota(twist::v1::QUOTA_DECLARED);
      },
      [](JobSpec* s) { s->set_quota(twist::v1::QUOTA_DECLARED); },
      [](JobSpec* s) { s->set_quota(twist::v1::QUOTA_LEARNED); },
      [](JobSpec* s) { s->set_scaling(twist::v1::SCALING_NONE); },
      [](JobSpec* s) { s->set_mode(twist::v1::MODE_LOCAL_SGD); },
      [](JobSpec* s) { s->set_checkpoint_every(-1); },
      [](JobSpec* s) { s->set_max_workers(1); },
      [](JobSpec* s) { s->mutable_data()->clear_content_hash(); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    JobSpec spec = ValidSpec();
    edits[i](&spec);
    EXPECT_TRUE(ValidateJobSpec(spec, Meta()).ok())
        << "edit " << i << ": " << ValidateJobSpec(spec, Meta());
  }
}

struct BadSpecCase {
  std::string rule;
  std::function<void(JobSpec*, common::DatasetMeta*)> edit;
  absl::StatusCode code;
  std::string message;
};

TEST(ValidateJobSpecTest, EachBrokenRuleIsRefusedNamingTheFieldAndTheFix) {
  using absl::StatusCode;
  const StatusCode kBad = StatusCode::kInvalidArgument;
  const std::vector<BadSpecCase> cases = {
      {"n_layer zero",
       [](JobSpec* s, auto*) { s->mutable_model()->set_n_layer(0); }, kBad,
       "model.n_layer: must be in [1, 256], got 0"},
      {"n_layer too many",
       [](JobSpec* s, auto*) { s->mutable_model()->set_n_layer(257); }, kBad,
       "model.n_layer: must be in [1, 256], got 257"},
      {"n_head", [](JobSpec* s, auto*) { s->mutable_model()->set_n_head(-1); },
       kBad, "model.n_head: must be at least 1, got -1"},
      {"n_embd", [](JobSpec* s, auto*) { s->mutable_model()->set_n_embd(-4); },
       kBad, "model.n_embd: must be at least 1, got -4"},
      {"n_embd divisibility",
       [](JobSpec* s, auto*) { s->mutable_model()->set_n_embd(130); }, kBad,
       "model.n_embd: 130 is not divisible by model.n_head 4: heads share the "
       "width "
       "equally; pick n_embd = 128"},
      {"block_size too short",
       [](JobSpec* s, auto*) { s->mutable_model()->set_block_size(1); }, kBad,
       "model.block_size: must be at least 2, got 1"},
      {"vocab_size below the dataset's",
       [](JobSpec* s, auto*) { s->mutable_model()->set_vocab_size(100); }, kBad,
       "model.vocab_size: 100 must be in [256, 65536]: the dataset uses 256 "
       "token ids; "
       "leave it 0 to take the dataset's"},
      {"vocab_size too large",
       [](JobSpec* s, auto*) { s->mutable_model()->set_vocab_size(65537); },
       kBad,
       "model.vocab_size: 65537 must be in [256, 65536]: the dataset uses 256 "
       "token ids; "
       "leave it 0 to take the dataset's"},
      {"block_size vs validation tokens",
       [](JobSpec* s, auto*) { s->mutable_model()->set_block_size(1000); },
       kBad,
       "model.block_size: context 1000 is longer than the validation set (1000 "
       "tokens): "
       "lower block_size or prepare the dataset with a larger --val_fraction"},
      {"block_size vs training tokens",
       [](JobSpec*, common::DatasetMeta* m) { m->train_tokens = 128; }, kBad,
       "model.block_size: context 128 is longer than the training set (128 "
       "tokens)"},
      {"mode unspecified",
       [](JobSpec* s, auto*) { s->set_mode(twist::v1::MODE_UNSPECIFIED); },
       kBad, "mode: must be twist or local_sgd"},
      {"mode unknown value",
       [](JobSpec* s, auto*) { s->set_mode(static_cast<twist::v1::Mode>(9)); },
       kBad, "mode: must be twist or local_sgd"},
      {"compute_dtype unknown value",
       [](JobSpec* s, auto*) {
         s->set_compute_dtype(static_cast<twist::v1::ComputeDType>(7));
       },
       kBad, "compute_dtype: must be float32 or bfloat16"},
      {"compression unknown value",
       [](JobSpec* s, auto*) {
         s->set_compression(static_cast<twist::v1::Compression>(9));
       },
       kBad, "compression: must be none, int8, int4 or topk"},
      {"topk_fraction above 1",
       [](JobSpec* s, auto*) {
         s->set_compression(twist::v1::COMPRESSION_TOPK);
         s->set_topk_fraction(1.5);
       },
       kBad,
       "topk_fraction: must be in (0, 1] (0.02 sends 2% of the entries), got "
       "1.5"},
      {"compression with coordinator-kept optimizer state",
       [](JobSpec* s, auto*) {
         s->set_compression(twist::v1::COMPRESSION_INT8);
         s->mutable_optimizer()->set_state(
             twist::v1::OPTIMIZER_STATE_COORDINATOR);
       },
       kBad,
       "compression: compresses the parameters' deltas only; with "
       "optimizer.state coordinator the moments would travel uncompressed: "
       "use optimizer.state worker (the default) or compression none"},
      {"overlap_steps as many as a round has",
       [](JobSpec* s, auto*) {
         s->set_local_steps(5);
         s->set_overlap_steps(5);
       },
       kBad,
       "overlap_steps: 5 must be in [0, local_steps = 5): 0 does not overlap "
       "rounds; a few steps hide the merge and the transfers"},
      {"overlap_steps negative",
       [](JobSpec* s, auto*) {
         s->set_local_steps(5);
         s->set_overlap_steps(-1);
       },
       kBad,
       "overlap_steps: -1 must be in [0, local_steps = 5): 0 does not "
       "overlap rounds; a few steps hide the merge and the transfers"},
      {"overlap_steps with coordinator-kept optimizer state",
       [](JobSpec* s, auto*) {
         s->set_overlap_steps(2);
         s->mutable_optimizer()->set_state(
             twist::v1::OPTIMIZER_STATE_COORDINATOR);
       },
       kBad,
       "overlap_steps: needs the optimizer state on the workers: with "
       "optimizer.state coordinator the moments arrive with the assignment, "
       "after the steps ahead; use optimizer.state worker (the default) or "
       "overlap_steps 0"},
      {"rounds", [](JobSpec* s, auto*) { s->set_rounds(0); }, kBad,
       "rounds: must be at least 1, got 0"},
      {"local_steps", [](JobSpec* s, auto*) { s->set_local_steps(-3); }, kBad,
       "local_steps: must be at least 1, got -3"},
      {"batch_size", [](JobSpec* s, auto*) { s->set_batch_size(0); }, kBad,
       "batch_size: must be at least 1, got 0"},
      {"learning_rate negative",
       [](JobSpec* s, auto*) {
         s->mutable_optimizer()->set_learning_rate(-0.5);
       },
       kBad,
       "optimizer.learning_rate: must be a positive number, got -0.5: try "
       "1e-3"},
      {"learning_rate zero",
       [](JobSpec* s, auto*) { s->mutable_optimizer()->set_learning_rate(0); },
       kBad,
       "optimizer.learning_rate: must be a positive number, got 0: try 1e-3"},
      {"learning_rate NaN",
       [](JobSpec* s, auto*) {
         s->mutable_optimizer()->set_learning_rate(kNaN);
       },
       kBad,
       "optimizer.learning_rate: must be a positive number, got nan: try 1e-3"},
      {"learning_rate infinite",
       [](JobSpec* s, auto*) {
         s->mutable_optimizer()->set_learning_rate(kInf);
       },
       kBad,
       "optimizer.learning_rate: must be a positive number, got inf: try 1e-3"},
      {"min_lr_ratio",
       [](JobSpec* s, auto*) { s->mutable_optimizer()->set_min_lr_ratio(1.5); },
       kBad, "optimizer.min_lr_ratio: must be in [0, 1], got 1.5"},
      {"min_lr_ratio NaN",
       [](JobSpec* s, auto*) {
         s->mutable_optimizer()->set_min_lr_ratio(kNaN);
       },
       kBad, "optimizer.min_lr_ratio: must be in [0, 1], got nan"},
      {"warmup_steps negative",
       [](JobSpec* s, auto*) { s->mutable_optimizer()->set_warmup_steps(-1); },
       kBad,
       "optimizer.warmup_steps: -1 must be in [0, rounds * local_steps = 400]"},
      {"warmup_steps too many",
       [](JobSpec* s, auto*) { s->mutable_optimizer()->set_warmup_steps(401); },
       kBad,
       "optimizer.warmup_steps: 401 must be in [0, rounds * local_steps = "
       "400]"},
      {"weight_decay",
       [](JobSpec* s, auto*) {
         s->mutable_optimizer()->set_weight_decay(-0.1);
       },
       kBad, "optimizer.weight_decay: must be non-negative, got -0.1"},
      {"weight_decay infinite",
       [](JobSpec* s, auto*) {
         s->mutable_optimizer()->set_weight_decay(kInf);
       },
       kBad, "optimizer.weight_decay: must be non-negative, got inf"},
      {"beta1",
       [](JobSpec* s, auto*) { s->mutable_optimizer()->set_beta1(1.0); }, kBad,
       "optimizer.beta1: must be in [0, 1), got 1"},
      {"beta2",
       [](JobSpec* s, auto*) { s->mutable_optimizer()->set_beta2(-0.25); },
       kBad, "optimizer.beta2: must be in [0, 1), got -0.25"},
      {"grad_clip NaN",
       [](JobSpec* s, auto*) { s->mutable_optimizer()->set_grad_clip(kNaN); },
       kBad, "optimizer.grad_clip: must be a number"},
      {"heads_per_worker",
       [](JobSpec* s, auto*) { s->set_heads_per_worker(5); }, kBad,
       "heads_per_worker: 5 is outside [0, 4]: each layer has 4 heads"},
      {"heads_per_worker negative",
       [](JobSpec* s, auto*) { s->set_heads_per_worker(-1); }, kBad,
       "heads_per_worker: -1 is outside [0, 4]: each layer has 4 heads"},
      {"ffn_columns_per_worker",
       [](JobSpec* s, auto*) { s->set_ffn_columns_per_worker(513); }, kBad,
       "ffn_columns_per_worker: 513 is outside [0, 512]: each layer has 4 * "
       "n_embd = 512 "
       "FFN columns"},
      {"keep_ratio above 1", [](JobSpec* s, auto*) { s->set_keep_ratio(1.5); },
       kBad, "keep_ratio: must be in (0, 1] (or 0: not set), got 1.5"},
      {"keep_ratio negative",
       [](JobSpec* s, auto*) { s->set_keep_ratio(-0.5); }, kBad,
       "keep_ratio: must be in (0, 1] (or 0: not set), got -0.5"},
      {"keep_ratio NaN", [](JobSpec* s, auto*) { s->set_keep_ratio(kNaN); },
       kBad, "keep_ratio: must be in (0, 1] (or 0: not set), got nan"},
      {"local_sgd with heads_per_worker",
       [](JobSpec* s, auto*) {
         s->set_mode(twist::v1::MODE_LOCAL_SGD);
         s->set_heads_per_worker(2);
       },
       kBad,
       "mode: local_sgd trains the whole model on every worker: remove "
       "heads_per_worker, ffn_columns_per_worker, keep_ratio, quota and "
       "capacity_weighted, or use mode twist"},
      {"local_sgd with ffn_columns_per_worker",
       [](JobSpec* s, auto*) {
         s->set_mode(twist::v1::MODE_LOCAL_SGD);
         s->set_ffn_columns_per_worker(100);
       },
       kBad,
       "mode: local_sgd trains the whole model on every worker: remove "
       "heads_per_worker, ffn_columns_per_worker, keep_ratio, quota and "
       "capacity_weighted, or use mode twist"},
      {"local_sgd with keep_ratio",
       [](JobSpec* s, auto*) {
         s->set_mode(twist::v1::MODE_LOCAL_SGD);
         s->set_keep_ratio(0.5);
       },
       kBad,
       "mode: local_sgd trains the whole model on every worker: remove "
       "heads_per_worker, ffn_columns_per_worker, keep_ratio, quota and "
       "capacity_weighted, or use mode twist"},
      {"local_sgd with capacity_weighted",
       [](JobSpec* s, auto*) {
         s->set_mode(twist::v1::MODE_LOCAL_SGD);
         s->set_capacity_weighted(true);
         s->set_quota(twist::v1::QUOTA_DECLARED);
       },
       kBad,
       "mode: local_sgd trains the whole model on every worker: remove "
       "heads_per_worker, ffn_columns_per_worker, keep_ratio, quota and "
       "capacity_weighted, or use mode twist"},
      {"local_sgd with learned quotas",
       [](JobSpec* s, auto*) {
         s->set_mode(twist::v1::MODE_LOCAL_SGD);
         s->set_quota(twist::v1::QUOTA_LEARNED);
       },
       kBad,
       "mode: local_sgd trains the whole model on every worker: remove "
       "heads_per_worker, ffn_columns_per_worker, keep_ratio, quota and "
       "capacity_weighted, or use mode twist"},
      {"capacity_weighted with another quota",
       [](JobSpec* s, auto*) {
         s->set_capacity_weighted(true);
         s->set_quota(twist::v1::QUOTA_LEARNED);
       },
       kBad,
       "capacity_weighted: is the first spelling of quota: declared, and the "
       "spec also says quota: QUOTA_LEARNED; keep one of them"},
      {"quota unspecified",
       [](JobSpec* s, auto*) { s->set_quota(twist::v1::QUOTA_UNSPECIFIED); },
       kBad, "quota: must be equal, declared or learned"},
      {"quota_in out of range",
       [](JobSpec* s, auto*) {
         s->set_quota_in(static_cast<twist::v1::QuotaIn>(7));
       },
       kBad, "quota_in: must be units or local_steps"},
      {"quota_in local_steps with coordinator-kept state",
       [](JobSpec* s, auto*) {
         s->set_quota(twist::v1::QUOTA_LEARNED);
         s->set_quota_in(twist::v1::QUOTA_IN_LOCAL_STEPS);
         s->mutable_optimizer()->set_state(
             twist::v1::OPTIMIZER_STATE_COORDINATOR);
       },
       kBad,
       "quota_in: local_steps needs the optimizer state on the workers: with "
       "optimizer.state coordinator every unit's step count advances by the "
       "job's local_steps a round; use optimizer.state worker (the default) "
       "or quota_in units"},
      {"quota_in local_steps with overlap_steps",
       [](JobSpec* s, auto*) {
         s->set_quota(twist::v1::QUOTA_LEARNED);
         s->set_quota_in(twist::v1::QUOTA_IN_LOCAL_STEPS);
         s->set_overlap_steps(2);
       },
       kBad,
       "overlap_steps: cannot go with quota_in local_steps: a worker trains "
       "its steps ahead before its next assignment says how many local steps "
       "it has; use overlap_steps 0 or quota_in units"},
      {"scaling",
       [](JobSpec* s, auto*) {
         s->set_scaling(twist::v1::SCALING_UNSPECIFIED);
       },
       kBad, "scaling: must be inverse_keep_ratio, none or correction"},
      {"eval_every", [](JobSpec* s, auto*) { s->set_eval_every(0); }, kBad,
       "eval_every: must be at least 1, got 0"},
      {"eval_batches", [](JobSpec* s, auto*) { s->set_eval_batches(-2); }, kBad,
       "eval_batches: must be at least 1, got -2"},
      {"checkpoint_every",
       [](JobSpec* s, auto*) { s->set_checkpoint_every(-2); }, kBad,
       "checkpoint_every: must be -1 (never) or a number of rounds, got -2"},
      {"min_workers", [](JobSpec* s, auto*) { s->set_min_workers(0); }, kBad,
       "min_workers: must be at least 1, got 0"},
      {"max_workers negative",
       [](JobSpec* s, auto*) { s->set_max_workers(-1); }, kBad,
       "max_workers: -1 must be 0 (all live workers) or at least min_workers "
       "(1)"},
      {"max_workers below min_workers",
       [](JobSpec* s, auto*) {
         s->set_min_workers(3);
         s->set_max_workers(2);
       },
       kBad,
       "max_workers: 2 must be 0 (all live workers) or at least min_workers "
       "(3)"},
      {"round_deadline_s negative",
       [](JobSpec* s, auto*) { s->set_round_deadline_s(-1); }, kBad,
       "round_deadline_s: must be a positive number of seconds, got -1"},
      {"round_deadline_s NaN",
       [](JobSpec* s, auto*) { s->set_round_deadline_s(kNaN); }, kBad,
       "round_deadline_s: must be a positive number of seconds, got nan"},
      {"round_deadline_s infinite",
       [](JobSpec* s, auto*) { s->set_round_deadline_s(kInf); }, kBad,
       "round_deadline_s: must be a positive number of seconds, got inf"},
      {"content hash mismatch",
       [](JobSpec* s, auto*) { s->mutable_data()->set_content_hash("def456"); },
       StatusCode::kFailedPrecondition,
       "data.content_hash: the spec names def456 but the dataset at "
       "/data/brown has "
       "abc123: the data changed since the spec was written; re-run twistctl "
       "prepare on "
       "every machine or drop content_hash from the spec"},
  };
  for (const BadSpecCase& c : cases) {
    JobSpec spec = ValidSpec();
    common::DatasetMeta meta = Meta();
    c.edit(&spec, &meta);
    const absl::Status status = ValidateJobSpec(spec, meta);
    EXPECT_EQ(status.code(), c.code) << c.rule << ": " << status;
    EXPECT_EQ(status.message(), c.message) << c.rule;
  }
}

// A prepared dataset of synthetic text in a fresh temporary folder.
class ResolveJobSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = twist::testing::MakeTempDir();
    const std::string text_path = dir_ + "/corpus.txt";
    std::ofstream(text_path)
        << common::GenerateSyntheticCorpus(/*seed=*/5, 20000);
    common::PrepareOptions options;
    options.input = text_path;
    options.output_dir = dir_ + "/data";
    options.val_fraction = 0.1;
    absl::StatusOr<common::DatasetMeta> meta = common::PrepareDataset(options);
    ASSERT_TRUE(meta.ok()) << meta.status();
    meta_ = *meta;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  JobSpec SmallSpec() const {
    JobSpec spec;
    spec.mutable_data()->set_path(dir_ + "/data");
    spec.mutable_model()->set_block_size(64);
    return spec;
  }

  std::string dir_;
  common::DatasetMeta meta_;
};

TEST_F(ResolveJobSpecTest, FillsVocabularyAndContentHashFromTheDataset) {
  ASSERT_EQ(meta_.vocab_size, 256);
  ASSERT_EQ(meta_.content_hash.size(), 64u);
  absl::StatusOr<JobSpec> spec = ResolveJobSpec(SmallSpec());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model().vocab_size(), 256);
  EXPECT_EQ(spec->data().content_hash(), meta_.content_hash);
  EXPECT_EQ(spec->data().path(), dir_ + "/data");
  // Defaults are applied too.
  EXPECT_EQ(spec->rounds(), 20);
  EXPECT_EQ(spec->mode(), twist::v1::MODE_TWIST);
  EXPECT_EQ(spec->model().block_size(), 64);
}

TEST_F(ResolveJobSpecTest, KeepsAMatchingContentHashAndALargerVocabulary) {
  JobSpec in = SmallSpec();
  in.mutable_data()->set_content_hash(meta_.content_hash);
  in.mutable_model()->set_vocab_size(512);
  absl::StatusOr<JobSpec> spec = ResolveJobSpec(in);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model().vocab_size(), 512);
  EXPECT_EQ(spec->data().content_hash(), meta_.content_hash);
}

TEST_F(ResolveJobSpecTest, MissingDataPathIsNotFoundNamingThePath) {
  JobSpec in = SmallSpec();
  const std::string missing = dir_ + "/no_such_dataset";
  in.mutable_data()->set_path(missing);
  absl::StatusOr<JobSpec> spec = ResolveJobSpec(in);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound) << spec.status();
  EXPECT_EQ(spec.status().message().rfind("data.path: ", 0), 0u)
      << spec.status();
  EXPECT_NE(spec.status().message().find(missing), std::string::npos)
      << spec.status();
}

TEST_F(ResolveJobSpecTest, EmptyDataPathIsInvalidArgument) {
  JobSpec in = SmallSpec();
  in.mutable_data()->clear_path();
  absl::StatusOr<JobSpec> spec = ResolveJobSpec(in);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      spec.status().message(),
      "data.path: is empty: give the folder written by `twistctl prepare`");
}

TEST_F(ResolveJobSpecTest, DifferentContentHashIsFailedPrecondition) {
  JobSpec in = SmallSpec();
  in.mutable_data()->set_content_hash("0123456789abcdef");
  absl::StatusOr<JobSpec> spec = ResolveJobSpec(in);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kFailedPrecondition)
      << spec.status();
  EXPECT_NE(spec.status().message().find("the spec names 0123456789abcdef"),
            std::string::npos)
      << spec.status();
  EXPECT_NE(spec.status().message().find(meta_.content_hash), std::string::npos)
      << spec.status();
}

TEST_F(ResolveJobSpecTest, SpecTooLargeForTheDatasetIsInvalidArgument) {
  JobSpec in = SmallSpec();
  in.mutable_model()->set_block_size(static_cast<int>(meta_.val_tokens));
  absl::StatusOr<JobSpec> spec = ResolveJobSpec(in);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spec.status().message().rfind("model.block_size: context ", 0), 0u)
      << spec.status();
}

// init_from gives the model's shape; what the spec sets must agree with it.
TEST_F(ResolveJobSpecTest, InitFromGivesTheShapeAndRefusesDisagreements) {
  common::ModelConfig config = common::ModelConfig::Full(2, 4, 32, 64, 256);
  config.activation = common::Activation::kGeluTanh;
  common::Gpt model = twist::testing::MakeModel(config, 1);
  const std::string file = dir_ + "/start.safetensors";
  ASSERT_TRUE(common::SaveModel(file, *model).ok());

  JobSpec in;
  in.mutable_data()->set_path(dir_ + "/data");
  in.set_init_from(file);
  absl::StatusOr<JobSpec> spec = ResolveJobSpec(in);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model().n_layer(), 2);
  EXPECT_EQ(spec->model().n_head(), 4);  // from the file's metadata
  EXPECT_EQ(spec->model().n_embd(), 32);
  EXPECT_EQ(spec->model().block_size(), 64);
  EXPECT_EQ(spec->model().vocab_size(), 256);
  EXPECT_EQ(spec->model().activation(), twist::v1::ACTIVATION_GELU_TANH);
  EXPECT_EQ(spec->init_from_sha256().size(), 64u);

  const auto refused = [&](const std::function<void(JobSpec*)>& change,
                           const std::string& expected) {
    JobSpec bad = in;
    change(&bad);
    absl::StatusOr<JobSpec> out = ResolveJobSpec(bad);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument)
        << out.status();
    EXPECT_EQ(out.status().message().rfind("init_from: ", 0), 0u)
        << out.status();
    EXPECT_NE(out.status().message().find(expected), std::string::npos)
        << out.status();
  };
  refused([](JobSpec* s) { s->mutable_model()->set_n_embd(64); },
          "has width 32 but model.n_embd is 64");
  refused([](JobSpec* s) { s->mutable_model()->set_n_head(2); },
          "has heads per layer 4 but model.n_head is 2");
  refused(
      [](JobSpec* s) {
        s->mutable_model()->set_activation(twist::v1::ACTIVATION_GELU);
      },
      "was trained with gelu_tanh");
  refused([&](JobSpec* s) { s->set_init_from(dir_ + "/none.safetensors"); },
          "does not exist");

  // When the job starts (or restarts before a checkpoint): the same file
  // gives the weights; a file changed since submit fails the job, saying so.
  absl::StatusOr<common::NamedTensors> loaded = LoadInitFrom(*spec);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->Find("transformer.wte.weight")
                  ->equal(model->transformer->wte->weight));
  common::Gpt other = twist::testing::MakeModel(config, 2);
  ASSERT_TRUE(common::SaveModel(file, *other).ok());
  loaded = LoadInitFrom(*spec);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(
      loaded.status().message().find("changed since the job was submitted"),
      std::string::npos)
      << loaded.status();
}

// The specs shipped in deploy/examples/ parse, pass validation against a
// Brown-Corpus-sized byte dataset once given a data path, and plan a round
// for their min_workers workers.
TEST(DeployExamplesTest, EveryExampleSpecIsValid) {
  const std::filesystem::path examples =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "deploy" /
      "examples";
  if (!std::filesystem::is_directory(examples))
    GTEST_SKIP() << "no " << examples;
  common::DatasetMeta brown;
  brown.vocab_size = 256;
  brown.train_tokens = 5400000;
  brown.val_tokens = 600000;
  brown.content_hash = "abc123";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples)) {
    const std::string path = entry.path().string();
    absl::StatusOr<JobSpec> spec = client::LoadSpecFile(path);
    ASSERT_TRUE(spec.ok()) << spec.status();
    ASSERT_TRUE(
        client::ApplySpecOptions(
            *client::ParseCommandLine({"submit", "--data=/data/brown"}), &*spec)
            .ok());
    ApplyDefaults(&*spec);
    if (spec->model().vocab_size() == 0) {
      spec->mutable_model()->set_vocab_size(brown.vocab_size);
    }
    const absl::Status valid = ValidateJobSpec(*spec, brown);
    EXPECT_TRUE(valid.ok()) << path << ": " << valid;
    EXPECT_FALSE(spec->name().empty()) << path;
    EXPECT_NE(spec->name(), "job") << path << ": examples name their job";
    absl::StatusOr<std::vector<common::SubnetUnits>> plan =
        PlanRound(*spec, ModelConfigOf(*spec), 1,
                  std::vector<double>(spec->min_workers(), 1.0));
    EXPECT_TRUE(plan.ok()) << path << ": " << plan.status();
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(JobSpecNamesTest, StatesAndModesAreLowerCaseWords) {
  EXPECT_EQ(JobStateName(twist::v1::JOB_STATE_QUEUED), "queued");
  EXPECT_EQ(JobStateName(twist::v1::JOB_STATE_WAITING), "waiting");
  EXPECT_EQ(JobStateName(twist::v1::JOB_STATE_RUNNING), "running");
  EXPECT_EQ(JobStateName(twist::v1::JOB_STATE_COMPLETED), "completed");
  EXPECT_EQ(JobStateName(twist::v1::JOB_STATE_FAILED), "failed");
  EXPECT_EQ(JobStateName(twist::v1::JOB_STATE_CANCELLED), "cancelled");
  EXPECT_EQ(JobStateName(twist::v1::JOB_STATE_UNSPECIFIED), "unknown");
  EXPECT_EQ(ModeName(twist::v1::MODE_TWIST), "twist");
  EXPECT_EQ(ModeName(twist::v1::MODE_LOCAL_SGD), "local_sgd");
  EXPECT_FALSE(IsFinished(twist::v1::JOB_STATE_RUNNING));
  EXPECT_FALSE(IsFinished(twist::v1::JOB_STATE_WAITING));
  EXPECT_TRUE(IsFinished(twist::v1::JOB_STATE_COMPLETED));
  EXPECT_TRUE(IsFinished(twist::v1::JOB_STATE_FAILED));
  EXPECT_TRUE(IsFinished(twist::v1::JOB_STATE_CANCELLED));
}

}  // namespace
}  // namespace twist::coordinator
