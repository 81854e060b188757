#include "coordinator/job_spec.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "coordinator/init_from.h"

namespace twist::coordinator {
namespace {

using twist::v1::JobSpec;

absl::Status Bad(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

bool Finite(double x) { return std::isfinite(x); }

// The model's shape, against the dataset's vocabulary and sizes.
absl::Status ValidateModel(const JobSpec& spec,
                           const common::DatasetMeta& meta) {
  const auto& m = spec.model();
  if (m.n_layer() < 1 || m.n_layer() > 256) {
    return Bad("model.n_layer",
               absl::StrCat("must be in [1, 256], got ", m.n_layer()));
  }
  if (m.n_head() < 1) {
    return Bad("model.n_head",
               absl::StrCat("must be at least 1, got ", m.n_head()));
  }
  if (m.n_embd() < 1) {
    return Bad("model.n_embd",
               absl::StrCat("must be at least 1, got ", m.n_embd()));
  }
  if (m.n_embd() % m.n_head() != 0) {
    return Bad("model.n_embd",
               absl::StrCat(m.n_embd(), " is not divisible by model.n_head ",
                            m.n_head(),
                            ": heads share the width equally; pick n_embd = ",
                            m.n_head() * std::max(1, m.n_embd() / m.n_head())));
  }
  if (m.block_size() < 2) {
    return Bad("model.block_size",
               absl::StrCat("must be at least 2, got ", m.block_size()));
  }
  if (m.vocab_size() < meta.vocab_size || m.vocab_size() > 65536) {
    return Bad("model.vocab_size",
               absl::StrCat(m.vocab_size(), " must be in [", meta.vocab_size,
                            ", 65536]: the dataset uses ", meta.vocab_size,
                            " token ids; leave it 0 to take the dataset's"));
  }
  return absl::OkStatus();
}

// The context against the dataset's sizes: every batch needs block_size + 1
// tokens.
absl::Status ValidateContext(const JobSpec& spec,
                             const common::DatasetMeta& meta) {
  const int32_t block_size = spec.model().block_size();
  if (block_size + 1 > meta.val_tokens) {
    return Bad(
        "model.block_size",
        absl::StrCat("context ", block_size,
                     " is longer than the validation set (", meta.val_tokens,
                     " tokens): lower block_size or prepare the ",
                     "dataset with a larger --val_fraction"));
  }
  if (block_size + 1 > meta.train_tokens) {
    return Bad("model.block_size",
               absl::StrCat("context ", block_size,
                            " is longer than the training set (",
                            meta.train_tokens, " tokens)"));
  }
  return absl::OkStatus();
}

// Mode, rounds, local steps and the batch.
absl::Status ValidateSchedule(const JobSpec& spec) {
  if (spec.mode() != twist::v1::MODE_TWIST &&
      spec.mode() != twist::v1::MODE_LOCAL_SGD) {
    return Bad("mode", "must be twist or local_sgd");
  }
  if (spec.rounds() < 1) {
    return Bad("rounds",
               absl::StrCat("must be at least 1, got ", spec.rounds()));
  }
  if (spec.local_steps() < 1) {
    return Bad("local_steps",
               absl::StrCat("must be at least 1, got ", spec.local_steps()));
  }
  if (spec.batch_size() < 1) {
    return Bad("batch_size",
               absl::StrCat("must be at least 1, got ", spec.batch_size()));
  }
  return absl::OkStatus();
}

// The learning-rate schedule: peak, floor and warm-up.
absl::Status ValidateLearningRate(const JobSpec& spec) {
  const auto& o = spec.optimizer();
  if (!(o.learning_rate() > 0) || !Finite(o.learning_rate())) {
    return Bad("optimizer.learning_rate",
               absl::StrCat("must be a positive number, got ",
                            o.learning_rate(), ": try 1e-3"));
  }
  if (!(o.min_lr_ratio() >= 0 && o.min_lr_ratio() <= 1)) {
    return Bad("optimizer.min_lr_ratio",
               absl::StrCat("must be in [0, 1], got ", o.min_lr_ratio()));
  }
  const int64_t total_steps =
      static_cast<int64_t>(spec.rounds()) * spec.local_steps();
  if (o.warmup_steps() < 0 || o.warmup_steps() > total_steps) {
    return Bad("optimizer.warmup_steps",
               absl::StrCat(o.warmup_steps(),
                            " must be in [0, rounds * local_steps = ",
                            total_steps, "]"));
  }
  return absl::OkStatus();
}

// AdamW's decay, betas and clipping, and where its state lives.
absl::Status ValidateAdamW(const twist::v1::OptimizerSpec& o) {
  if (!(o.weight_decay() >= 0) || !Finite(o.weight_decay())) {
    return Bad("optimizer.weight_decay",
               absl::StrCat("must be non-negative, got ", o.weight_decay()));
  }
  if (!(o.beta1() >= 0 && o.beta1() < 1)) {
    return Bad("optimizer.beta1",
               absl::StrCat("must be in [0, 1), got ", o.beta1()));
  }
  if (!(o.beta2() >= 0 && o.beta2() < 1)) {
    return Bad("optimizer.beta2",
               absl::StrCat("must be in [0, 1), got ", o.beta2()));
  }
  if (!Finite(o.grad_clip())) {
    return Bad("optimizer.grad_clip", "must be a number");
  }
  if (!twist::v1::OptimizerState_IsValid(o.state()) ||
      o.state() == twist::v1::OPTIMIZER_STATE_UNSPECIFIED) {
    return Bad("optimizer.state", "must be fresh, worker or coordinator");
  }
  return absl::OkStatus();
}

// Each worker's share of the units (twist mode) and how they are dealt.
absl::Status ValidateSubnetworks(const JobSpec& spec) {
  const int heads = spec.model().n_head(), columns = 4 * spec.model().n_embd();
  if (spec.heads_per_worker() < 0 || spec.heads_per_worker() > heads) {
    return Bad("heads_per_worker",
               absl::StrCat(spec.heads_per_worker(), " is outside [0, ", heads,
                            "]: each layer has ", heads, " heads"));
  }
  if (spec.ffn_columns_per_worker() < 0 ||
      spec.ffn_columns_per_worker() > columns) {
    return Bad("ffn_columns_per_worker",
               absl::StrCat(spec.ffn_columns_per_worker(), " is outside [0, ",
                            columns, "]: each layer has 4 * n_embd = ", columns,
                            " FFN columns"));
  }
  if (!(spec.keep_ratio() >= 0 && spec.keep_ratio() <= 1)) {
    return Bad("keep_ratio",
               absl::StrCat("must be in (0, 1] (or 0: not set), got ",
                            spec.keep_ratio()));
  }
  if (!twist::v1::Quota_IsValid(spec.quota()) ||
      spec.quota() == twist::v1::QUOTA_UNSPECIFIED) {
    return Bad("quota", "must be equal, declared or learned");
  }
  if (spec.capacity_weighted() && spec.quota() != twist::v1::QUOTA_DECLARED) {
    return Bad("capacity_weighted",
               absl::StrCat("is the first spelling of quota: declared, and "
                            "the spec also says quota: ",
                            twist::v1::Quota_Name(spec.quota()),
                            "; keep one of them"));
  }
  if (spec.mode() == twist::v1::MODE_LOCAL_SGD &&
      (spec.heads_per_worker() || spec.ffn_columns_per_worker() ||
       spec.keep_ratio() || spec.quota() != twist::v1::QUOTA_EQUAL)) {
    return Bad("mode",
               "local_sgd trains the whole model on every worker: remove "
               "heads_per_worker, ffn_columns_per_worker, keep_ratio, quota "
               "and capacity_weighted, or use mode twist");
  }
  if (!twist::v1::QuotaIn_IsValid(spec.quota_in())) {
    return Bad("quota_in", "must be units or local_steps");
  }
  if (spec.quota_in() == twist::v1::QUOTA_IN_LOCAL_STEPS &&
      spec.optimizer().state() == twist::v1::OPTIMIZER_STATE_COORDINATOR) {
    return Bad("quota_in",
               "local_steps needs the optimizer state on the workers: with "
               "optimizer.state coordinator every unit's step count advances "
               "by the job's local_steps a round; use optimizer.state worker "
               "(the default) or quota_in units");
  }
  if (spec.scaling() != twist::v1::SCALING_INVERSE_KEEP_RATIO &&
      spec.scaling() != twist::v1::SCALING_NONE &&
      spec.scaling() != twist::v1::SCALING_CORRECTION) {
    return Bad("scaling", "must be inverse_keep_ratio, none or correction");
  }
  if (!twist::v1::Deal_IsValid(spec.deal()) ||
      spec.deal() == twist::v1::DEAL_UNSPECIFIED) {
    return Bad("deal", "must be random or rolling");
  }
  return absl::OkStatus();
}

// Evaluations, checkpoints and how many workers a round uses.
absl::Status ValidateBookkeeping(const JobSpec& spec) {
  if (spec.eval_every() < 1) {
    return Bad("eval_every",
               absl::StrCat("must be at least 1, got ", spec.eval_every()));
  }
  if (spec.eval_batches() < 1) {
    return Bad("eval_batches",
               absl::StrCat("must be at least 1, got ", spec.eval_batches()));
  }
  if (spec.checkpoint_every() < -1) {
    return Bad("checkpoint_every",
               absl::StrCat("must be -1 (never) or a number of rounds, got ",
                            spec.checkpoint_every()));
  }
  if (spec.min_workers() < 1) {
    return Bad("min_workers",
               absl::StrCat("must be at least 1, got ", spec.min_workers()));
  }
  if (spec.max_workers() < 0 ||
      (spec.max_workers() > 0 && spec.max_workers() < spec.min_workers())) {
    return Bad("max_workers",
               absl::StrCat(spec.max_workers(),
                            " must be 0 (all live workers) or at least ",
                            "min_workers (", spec.min_workers(), ")"));
  }
  return absl::OkStatus();
}

// The straggler deadline.
absl::Status ValidateDeadlines(const JobSpec& spec) {
  if (!(spec.round_deadline_s() > 0) || !Finite(spec.round_deadline_s())) {
    return Bad("round_deadline_s",
               absl::StrCat("must be a positive number of seconds, got ",
                            spec.round_deadline_s()));
  }
  if (!(spec.deadline_factor() >= 1) || !Finite(spec.deadline_factor())) {
    return Bad(
        "deadline_factor",
        absl::StrCat("must be at least 1 (a multiple of the median round "
                     "time), got ",
                     spec.deadline_factor()));
  }
  if (!(spec.deadline_floor_s() > 0) ||
      spec.deadline_floor_s() > spec.round_deadline_s()) {
    return Bad("deadline_floor_s",
               absl::StrCat(spec.deadline_floor_s(),
                            " must be positive and at most round_deadline_s (",
                            spec.round_deadline_s(), ")"));
  }
  return absl::OkStatus();
}

// compression and topk_fraction, and what compression combines with.
absl::Status ValidateCompression(const JobSpec& spec) {
  if (!twist::v1::Compression_IsValid(spec.compression()) ||
      spec.compression() == twist::v1::COMPRESSION_UNSPECIFIED) {
    return Bad("compression", "must be none, int8, int4 or topk");
  }
  if (spec.compression() == twist::v1::COMPRESSION_TOPK &&
      !(spec.topk_fraction() > 0 && spec.topk_fraction() <= 1)) {
    return Bad("topk_fraction",
               absl::StrCat("must be in (0, 1] (0.02 sends 2% of the "
                            "entries), got ",
                            spec.topk_fraction()));
  }
  if (spec.compression() != twist::v1::COMPRESSION_NONE &&
      spec.optimizer().state() == twist::v1::OPTIMIZER_STATE_COORDINATOR) {
    return Bad("compression",
               "compresses the parameters' deltas only; with optimizer.state "
               "coordinator the moments would travel uncompressed: use "
               "optimizer.state worker (the default) or compression none");
  }
  return absl::OkStatus();
}

// Overlapping rounds: fewer steps ahead than a round has, and the optimizer
// state with the worker (or fresh).
absl::Status ValidateOverlap(const JobSpec& spec) {
  if (spec.overlap_steps() < 0 || spec.overlap_steps() >= spec.local_steps()) {
    return Bad("overlap_steps",
               absl::StrCat(spec.overlap_steps(),
                            " must be in [0, local_steps = ", spec.local_steps(),
                            "): 0 does not overlap rounds; a few steps hide "
                            "the merge and the transfers"));
  }
  if (spec.overlap_steps() > 0 &&
      spec.optimizer().state() == twist::v1::OPTIMIZER_STATE_COORDINATOR) {
    return Bad("overlap_steps",
               "needs the optimizer state on the workers: with "
               "optimizer.state coordinator the moments arrive with the "
               "assignment, after the steps ahead; use optimizer.state worker "
               "(the default) or overlap_steps 0");
  }
  if (spec.overlap_steps() > 0 &&
      spec.quota_in() == twist::v1::QUOTA_IN_LOCAL_STEPS) {
    return Bad("overlap_steps",
               "cannot go with quota_in local_steps: a worker trains its "
               "steps ahead before its next assignment says how many local "
               "steps it has; use overlap_steps 0 or quota_in units");
  }
  return absl::OkStatus();
}

// The coordinator's outer optimizer and the element types of transport and
// compute.
absl::Status ValidateOuterAndTypes(const JobSpec& spec) {
  if (!(spec.outer_learning_rate() > 0) ||
      !Finite(spec.outer_learning_rate())) {
    return Bad(
        "outer_learning_rate",
        absl::StrCat("must be a positive number (1: plain merging), got ",
                     spec.outer_learning_rate()));
  }
  if (!(spec.outer_momentum() >= 0 && spec.outer_momentum() < 1)) {
    return Bad(
        "outer_momentum",
        absl::StrCat(
            "must be in [0, 1) (0: plain merging; DiLoCo uses 0.9), got ",
            spec.outer_momentum()));
  }
  if (spec.transport_dtype() != twist::v1::TRANSPORT_DTYPE_FLOAT32 &&
      spec.transport_dtype() != twist::v1::TRANSPORT_DTYPE_BFLOAT16) {
    return Bad("transport_dtype", "must be float32 or bfloat16");
  }
  if (spec.compute_dtype() != twist::v1::COMPUTE_DTYPE_FLOAT32 &&
      spec.compute_dtype() != twist::v1::COMPUTE_DTYPE_BFLOAT16) {
    return Bad("compute_dtype", "must be float32 or bfloat16");
  }
  TWIST_RETURN_IF_ERROR(ValidateCompression(spec));
  return ValidateOverlap(spec);
}

// A content hash named by the spec must be the dataset's.
absl::Status ValidateContentHash(const JobSpec& spec,
                                 const common::DatasetMeta& meta) {
  if (!meta.content_hash.empty() && !spec.data().content_hash().empty() &&
      meta.content_hash != spec.data().content_hash()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data.content_hash: the spec names ", spec.data().content_hash(),
        " but the dataset at ", spec.data().path(), " has ", meta.content_hash,
        ": the data changed since the spec was written; re-run twistctl "
        "prepare on every machine or drop content_hash from the spec"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const JobSpec& spec,
                             const common::DatasetMeta& meta) {
  TWIST_RETURN_IF_ERROR(ValidateModel(spec, meta));
  TWIST_RETURN_IF_ERROR(ValidateContext(spec, meta));
  TWIST_RETURN_IF_ERROR(ValidateSchedule(spec));
  TWIST_RETURN_IF_ERROR(ValidateLearningRate(spec));
  TWIST_RETURN_IF_ERROR(ValidateAdamW(spec.optimizer()));
  TWIST_RETURN_IF_ERROR(ValidateSubnetworks(spec));
  TWIST_RETURN_IF_ERROR(ValidateBookkeeping(spec));
  TWIST_RETURN_IF_ERROR(ValidateDeadlines(spec));
  TWIST_RETURN_IF_ERROR(ValidateOuterAndTypes(spec));
  return ValidateContentHash(spec, meta);
}

absl::StatusOr<JobSpec> ResolveJobSpec(JobSpec spec) {
  TWIST_RETURN_IF_ERROR(ApplyInitFrom(&spec));
  ApplyDefaults(&spec);
  if (spec.data().path().empty()) {
    return Bad("data.path",
               "is empty: give the folder written by `twistctl prepare`");
  }
  std::error_code ec;
  if (std::filesystem::exists(spec.data().path(), ec) &&
      !std::filesystem::is_directory(spec.data().path(), ec)) {
    return Bad("data.path",
               absl::StrCat(spec.data().path(),
                            " is a file, not a folder: give the folder "
                            "`twistctl prepare` wrote (it holds meta.json, "
                            "train.bin and val.bin)"));
  }
  absl::StatusOr<common::DatasetMeta> meta =
      common::ReadDatasetMeta(spec.data().path());
  if (!meta.ok()) {
    return absl::Status(meta.status().code(),
                        absl::StrCat("data.path: ", meta.status().message()));
  }
  if (spec.model().vocab_size() == 0)
    spec.mutable_model()->set_vocab_size(meta->vocab_size);
  TWIST_RETURN_IF_ERROR(ValidateJobSpec(spec, *meta));
  // The data files themselves must be readable here too: the coordinator
  // evaluates on val.bin.
  absl::StatusOr<common::Dataset> dataset =
      common::Dataset::Open(spec.data().path());
  if (!dataset.ok()) {
    return absl::Status(
        dataset.status().code(),
        absl::StrCat("data.path: ", dataset.status().message()));
  }
  if (spec.data().content_hash().empty()) {
    spec.mutable_data()->set_content_hash(meta->content_hash);
  }
  spec.mutable_data()->set_tokenizer(meta->tokenizer);
  spec.mutable_data()->set_vocab_size(meta->vocab_size);
  return spec;
}

}  // namespace twist::coordinator
