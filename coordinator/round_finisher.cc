#include "coordinator/round_finisher.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"
#include "common/model/torch_errors.h"
#include "common/training/evaluation.h"
#include "coordinator/checkpoint.h"

namespace twist::coordinator {

RoundFinisher::RoundFinisher(const common::TokenFile& val, Options options,
                             Hooks hooks, ModelReader reader)
    : options_(std::move(options)),
      hooks_(std::move(hooks)),
      val_(val),
      reader_(std::move(reader)) {
  thread_ = std::thread([this] { Loop(); });
}

RoundFinisher::~RoundFinisher() {
  Drain().IgnoreError();  // the runner reported it
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Status RoundFinisher::Submit(twist::v1::RoundRecord record,
                                  bool evaluate, bool checkpoint) {
  absl::MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  if (evaluate || checkpoint) ++model_reads_;
  queue_.push_back(Task{std::move(record), evaluate, checkpoint});
  return absl::OkStatus();
}

void RoundFinisher::AwaitModelRead() {
  absl::MutexLock lock(&mu_);
  auto read = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return model_reads_ == 0;
  };
  mu_.Await(absl::Condition(&read));
}

absl::StatusOr<double> RoundFinisher::EvaluateNow() {
  TWIST_RETURN_IF_ERROR(Drain());
  double loss = 0;
  TWIST_RETURN_IF_ERROR(reader_([&](common::GptImpl& model,
                                    const common::NamedTensors&,
                                    const common::NamedTensors&) {
    TWIST_ASSIGN_OR_RETURN(loss, Evaluate(model));
    return absl::OkStatus();
  }));
  return loss;
}

absl::Status RoundFinisher::Drain() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && !working_;
  };
  mu_.Await(absl::Condition(&idle));
  return error_;
}

void RoundFinisher::Loop() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping
      task = std::move(queue_.front());
      queue_.pop_front();
      working_ = true;
    }
    // After an error nothing more is finished: the job fails with it.
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      status = error_;
    }
    if (status.ok()) status = Finish(task);
    absl::MutexLock lock(&mu_);
    if (task.evaluate || task.checkpoint) --model_reads_;
    if (!status.ok() && error_.ok()) error_ = status;
    working_ = false;
  }
}

absl::StatusOr<double> RoundFinisher::Evaluate(common::GptImpl& model) {
  return common::CatchTorchErrors("evaluating the model", [&] {
    return common::EvaluateLoss(model, val_, options_.eval_batches,
                                options_.batch_size, model.config().block_size);
  });
}

absl::Status RoundFinisher::Finish(Task& task) {
  twist::v1::RoundRecord& record = task.record;
  if (task.evaluate || task.checkpoint) {
    TWIST_RETURN_IF_ERROR(reader_([&](common::GptImpl& model,
                                      const common::NamedTensors& params,
                                      const common::NamedTensors& state) {
      if (task.evaluate) {
        const auto start = std::chrono::steady_clock::now();
        TWIST_ASSIGN_OR_RETURN(double val_loss, Evaluate(model));
        record.set_has_val_loss(true);
        record.set_val_loss(val_loss);
        record.set_eval_s(common::SecondsSince(start));
      }
      if (task.checkpoint) {
        TWIST_RETURN_IF_ERROR(WriteCheckpoint(options_.job_dir, record.round(),
                                              params, state,
                                              options_.checkpoints_kept));
      }
      return absl::OkStatus();
    }));
  }
  record.set_finished_at(common::NowSeconds());
  hooks_.round_finished(record);
  if (task.checkpoint) hooks_.checkpoint_written(record.round());
  return absl::OkStatus();
}

}  // namespace twist::coordinator
