// The steps of one round of JobRunner: plan, deal, await, merge, finish.
#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/clock.h"
#include "common/base/free_memory.h"
#include "common/base/status_macros.h"
#include "common/ist/slot_payload.h"
#include "common/job/round_options.h"
#include "common/training/evaluation.h"
#include "common/transport/subnet_proto.h"
#include "coordinator/job_runner.h"
#include "coordinator/round_plan.h"
#include "glog/logging.h"

namespace twist::coordinator {

using common::SecondsSince;

absl::Status JobRunner::RunOneRound(int32_t round,
                                    const std::atomic<bool>& cancel,
                                    const std::atomic<bool>& stop,
                                    int* accepted) {
  const auto start = std::chrono::steady_clock::now();
  TWIST_ASSIGN_OR_RETURN(RoundPlan plan, Plan(round));
  TWIST_ASSIGN_OR_RETURN(std::shared_ptr<RoundCollector> collector,
                         Deal(round, plan));
  const double deal_s = SecondsSince(start);
  const double deadline_s = deadline_.Seconds();
  Await(*collector, deadline_s, cancel, stop);
  if (cancel.load() || stop.load()) return absl::OkStatus();
  const auto merge_start = std::chrono::steady_clock::now();
  TWIST_ASSIGN_OR_RETURN(RoundOutcome outcome, Merge(*collector));
  const double merge_s = SecondsSince(merge_start);
  *accepted = outcome.accepted;
  for (size_t i = 0; i < outcome.ends.size(); ++i) {
    const twist::v1::RoundWorker& w = outcome.workers[i];
    if (w.accepted()) {
      speeds_.Observe(w.worker_id(),
                      static_cast<double>(w.parameters()) * w.tokens(),
                      w.compute_s());
    } else {
      LOG(WARNING) << "job " << job_id_ << " round " << round << ": worker "
                   << w.worker_id() << " (" << w.worker_name()
                   << "): " << w.reason();
    }
    if (outcome.ends[i] == SlotEnd::kRefused) {
      refusers_[w.worker_id()] = w.reason();
    }
    if (outcome.ends[i] == SlotEnd::kDelivered && shared_view_ != nullptr) {
      shared_view_->Delivered(w.worker_id());
    }
  }
  common::ReturnFreeMemory();  // gRPC's buffers of the round's transfers
  if (outcome.accepted == 0) return absl::OkStatus();  // not a round
  deadline_.Learn(outcome.accepted_seconds, plan.workers.size());
  twist::v1::RoundRecord record;
  record.set_round(round);
  record.set_deadline_s(deadline_s);
  record.set_merge_s(merge_s);
  TWIST_RETURN_IF_ERROR(Finish(round, outcome, start, collector->started(),
                               std::move(record)));
  LOG(INFO) << absl::StrFormat(
      "job %d round %d/%d: %d/%d updates, %.2f s (plan and deal %.3f s, "
      "merge %.3f s)",
      job_id_, round, spec_.rounds(), outcome.accepted, collector->num_slots(),
      SecondsSince(start), deal_s, merge_s);
  return absl::OkStatus();
}

absl::StatusOr<JobRunner::RoundPlan> JobRunner::Plan(int32_t round) {
  RoundPlan plan;
  for (auto& w : registry_->LiveWorkers()) {
    if (refusers_.count(w.id()) == 0) plan.workers.push_back(std::move(w));
  }
  if (spec_.max_workers() > 0 &&
      static_cast<int>(plan.workers.size()) > spec_.max_workers()) {
    plan.workers.resize(spec_.max_workers());
  }
  std::vector<double> capacities;
  if (spec_.quota() == twist::v1::QUOTA_LEARNED) {
    std::vector<std::string> ids;
    for (const auto& w : plan.workers) ids.push_back(w.id());
    capacities = speeds_.Capacities(ids);
  } else {
    for (const auto& w : plan.workers) capacities.push_back(w.capacity());
  }
  TWIST_ASSIGN_OR_RETURN(plan.units,
                         PlanRound(spec_, config_, round, capacities));
  TWIST_ASSIGN_OR_RETURN(plan.local_steps,
                         LocalStepsPerSlot(spec_, capacities));
  TWIST_ASSIGN_OR_RETURN(plan.update_forms,
                         UpdateForms(round, plan.units, capacities));
  return plan;
}

absl::StatusOr<std::vector<common::UpdateForm>> JobRunner::UpdateForms(
    int32_t round, const std::vector<common::SubnetUnits>& units,
    const std::vector<double>& capacities) const {
  common::UpdateForm form;
  form.encoding = common::UpdateEncodingOf(spec_);
  std::vector<common::UpdateForm> forms(units.size(), form);
  if (form.encoding.codec == common::UpdateCodec::kNone) return forms;
  // Checkpoint rounds and the last one flush what the workers kept: a
  // checkpoint, and the finished model, then hold every update whole.
  const bool flush = round >= spec_.rounds() ||
                     (spec_.checkpoint_every() > 0 &&
                      round % spec_.checkpoint_every() == 0);
  if (flush) {
    for (auto& f : forms) f.encoding.codec = common::UpdateCodec::kNone;
    return forms;
  }
  // The next round's deal, if the same workers are live (and, with learned
  // quotas, their speeds stay as learned so far): what a worker will not
  // hold then leaves with this update. A change of workers or speeds moves
  // units otherwise; their leftovers then stay with the worker that had them
  // until it holds them again or the next flush.
  TWIST_ASSIGN_OR_RETURN(std::vector<common::SubnetUnits> next,
                         PlanRound(spec_, config_, round + 1, capacities));
  for (size_t i = 0; i < units.size(); ++i) {
    forms[i].leaving = common::UnitsNotIn(units[i], next[i]);
  }
  return forms;
}

absl::StatusOr<common::UnitContributions> JobRunner::Contributions() {
  // A fixed calibration batch carved from the training data (never the
  // validation data), the same every round.
  TWIST_ASSIGN_OR_RETURN(
      torch::Tensor idx,
      common::CalibrationTokens(dataset_->train(), /*batches=*/1,
                                spec_.batch_size(), config_.block_size));
  return common::EstimateUnitContributions(model_->module(), idx);
}

absl::StatusOr<std::vector<common::NamedTensors>> JobRunner::SliceForSlots(
    const std::vector<common::SubnetUnits>& units,
    std::vector<common::NamedTensors>* shifts) {
  bool same = true;
  for (const auto& u : units) same = same && u == units[0];
  shifts->assign(units.size(), common::NamedTensors());
  const common::FullOptimizerState* state = model_->optimizer_state();
  const at::ScalarType model_type =
      model_->parameters().empty()
          ? wire_dtype_
          : model_->parameters()[0].tensor.scalar_type();
  if (same && state == nullptr && wire_dtype_ == model_type &&
      units[0] == common::AllUnits(config_)) {
    // local_sgd in the model's own type: every slot's assignment is the
    // model itself, streamed from its memory without a copy. Nothing writes
    // the model before every slot has settled: a worker delivers only after
    // reading its whole assignment, and the stream of a slot given up stops
    // at its next chunk once the round is over (WorkerTransferService).
    common::NamedTensors model;
    for (const auto& [name, t] : model_->parameters()) {
      model.Set(name, t.detach());
    }
    const common::SlotPayload payload(config_, units[0], wire_dtype_,
                                      /*with_optimizer_state=*/false);
    TWIST_ASSIGN_OR_RETURN(common::NamedTensors assignment,
                           payload.ComposeAssignment(model, {}));
    return std::vector<common::NamedTensors>(units.size(), assignment);
  }
  // local_sgd: one extraction, shared read-only by every slot.
  const std::vector<common::SubnetUnits> distinct =
      same ? std::vector<common::SubnetUnits>{units[0]} : units;
  // Into last round's tensors where they are free again (sent and
  // dropped): fresh memory would cost a page fault per page.
  TWIST_ASSIGN_OR_RETURN(
      std::vector<common::NamedTensors> params,
      common::ExtractSubnets(config_, model_->parameters(), distinct,
                             wire_dtype_, &round_pool_));
  if (spec_.scaling() == twist::v1::SCALING_CORRECTION && !same) {
    // Each slot's missing units' mean contributions go into its output
    // biases (and come out again when its update is merged).
    TWIST_ASSIGN_OR_RETURN(common::UnitContributions contributions,
                           Contributions());
    for (size_t i = 0; i < units.size(); ++i) {
      (*shifts)[i] = common::BiasShifts(contributions, units[i]);
      common::ApplyBiasShifts((*shifts)[i], params[i]);
    }
  }
  // The units' optimizer state travels with them, when the coordinator
  // keeps it.
  std::vector<common::NamedTensors> states(distinct.size());
  if (state != nullptr) {
    TWIST_ASSIGN_OR_RETURN(
        states, state->Slice(config_, distinct, wire_dtype_, &round_pool_));
  }
  std::vector<common::NamedTensors> sliced;
  for (size_t i = 0; i < distinct.size(); ++i) {
    const common::SlotPayload payload(config_, distinct[i], wire_dtype_,
                                      state != nullptr);
    TWIST_ASSIGN_OR_RETURN(common::NamedTensors assignment,
                           payload.ComposeAssignment(params[i], states[i]));
    sliced.push_back(std::move(assignment));
  }
  if (same) sliced.resize(units.size(), sliced[0]);
  return sliced;
}

absl::StatusOr<std::shared_ptr<RoundCollector>> JobRunner::Deal(
    int32_t round, const RoundPlan& plan) {
  std::vector<SlotSpec> slots;
  std::vector<std::shared_ptr<Assignment>> assignments;
  round_pool_.Trim();  // what the last round did not ask for
  {
    // For reading: the finisher may be evaluating the same model.
    absl::ReaderMutexLock lock(&model_mu_);
    std::vector<common::NamedTensors> shifts(plan.units.size());
    std::vector<common::NamedTensors> sliced;
    common::ViewDeal view_deal;
    if (shared_view_ != nullptr) {
      std::vector<std::string> ids;
      for (const auto& w : plan.workers) ids.push_back(w.id());
      TWIST_ASSIGN_OR_RETURN(view_deal,
                             shared_view_->Deal(round, model_->parameters(),
                                                ids, plan.units));
      sliced = std::move(view_deal.assignments);
    } else {
      TWIST_ASSIGN_OR_RETURN(sliced, SliceForSlots(plan.units, &shifts));
    }
    for (size_t i = 0; i < plan.workers.size(); ++i) {
      auto a = std::make_shared<Assignment>();
      a->tensors = std::move(sliced[i]);
      auto& h = a->header;
      h.set_incarnation(options_.incarnation);
      h.set_job_id(job_id_);
      h.set_round(round);
      h.set_slot(static_cast<int32_t>(i));
      h.set_local_steps(plan.local_steps[i]);
      *h.mutable_spec() = spec_;
      *h.mutable_units() = common::ToProto(plan.units[i]);
      *h.mutable_tensors() = common::DescribeTensors(a->tensors);
      const common::UpdateForm& form = plan.update_forms[i];
      h.set_update_compression(form.encoding.codec == common::UpdateCodec::kNone
                                   ? twist::v1::COMPRESSION_NONE
                                   : spec_.compression());
      if (!form.leaving.layers.empty()) {
        *h.mutable_leaving_units() = common::ToProto(form.leaving);
      }
      if (!view_deal.forms.empty() && view_deal.forms[i].resident) {
        h.set_resident_round(view_deal.resident_rounds[i]);
        *h.mutable_resident_units() =
            common::ToProto(view_deal.forms[i].resident_units);
      }
      // What travels: the header and the tensors' bytes.
      const int64_t bytes =
          a->tensors.NumBytes() + static_cast<int64_t>(h.ByteSizeLong());
      slots.push_back(SlotSpec{plan.workers[i].id(), plan.workers[i].name(),
                               plan.units[i], bytes,
                               std::move(shifts[i]), form});
      assignments.push_back(std::move(a));
    }
  }
  auto collector = std::make_shared<RoundCollector>(
      options_.incarnation, job_id_, round, config_, std::move(slots),
      wire_dtype_,
      spec_.optimizer().state() == twist::v1::OPTIMIZER_STATE_COORDINATOR,
      &round_pool_);
  board_->Publish(collector);
  for (size_t i = 0; i < assignments.size(); ++i) {
    registry_->Offer(plan.workers[i].id(), std::move(assignments[i]));
  }
  return collector;
}

void JobRunner::Await(RoundCollector& collector, double deadline_s,
                      const std::atomic<bool>& cancel,
                      const std::atomic<bool>& stop) {
  const absl::Time deadline = absl::Now() + absl::Seconds(deadline_s);
  for (;;) {
    if (collector.WaitAllSettled(absl::Now() + options_.poll_interval)) break;
    if (cancel.load() || stop.load()) break;
    for (int slot : collector.Outstanding()) {
      const Liveness liveness = registry_->Check(collector.slot(slot).worker_id);
      if (liveness.live()) continue;
      if (liveness.state == Liveness::State::kLeft) {
        collector.Abandon(slot, SlotEnd::kWorkerLeft,
                          "worker left (shut down cleanly)");
      } else {
        collector.Abandon(slot, SlotEnd::kWorkerLost,
                          absl::StrCat("worker lost: ", liveness.reason));
      }
    }
    if (absl::Now() >= deadline) {
      for (int slot : collector.Outstanding()) {
        collector.Abandon(slot, SlotEnd::kDeadline,
                          deadline_.Explain(deadline_s));
      }
    }
  }
  for (int slot : collector.Outstanding()) {
    collector.Abandon(
        slot, SlotEnd::kInterrupted,
        cancel.load() ? "job cancelled" : "coordinator stopping");
  }
  // Workers still busy with a slot that was given up are told to drop it;
  // one that delivered may already be on the next round.
  for (int slot : collector.Abandoned()) {
    registry_->Revoke(collector.slot(slot).worker_id, job_id_,
                      collector.round());
  }
  board_->Publish(nullptr);
}

absl::StatusOr<RoundOutcome> JobRunner::Merge(RoundCollector& collector) {
  std::vector<SlotResult> results = collector.Close();
  finisher_->AwaitModelRead();  // the last round's evaluation and checkpoint
  absl::MutexLock lock(&model_mu_);
  MergeTargets targets;
  targets.params = &model_->parameters();
  targets.step = outer_step_;
  targets.velocity = model_->velocity();
  targets.optimizer_state = model_->optimizer_state();
  targets.local_steps = spec_.local_steps();
  targets.scratch = &round_pool_;
  return MergeRound(config_, collector.slots(), results, targets);
}

absl::Status JobRunner::Finish(int32_t round, const RoundOutcome& outcome,
                               std::chrono::steady_clock::time_point start,
                               absl::Time handed_out,
                               twist::v1::RoundRecord record) {
  record.set_train_loss(outcome.mean_train_loss);
  record.set_tokens(outcome.tokens);
  int64_t bytes_sent = 0;
  for (const auto& w : outcome.workers) {
    bytes_sent += w.bytes_sent();
    if (w.accepted() && w.compute_s() > 0) {
      registry_->RecordRound(w.worker_id(), w.tokens() / w.compute_s());
    }
    *record.add_workers() = w;
  }
  record.set_bytes_sent(bytes_sent);
  record.set_bytes_received(outcome.bytes_received);
  record.set_duration_s(SecondsSince(start));
  SetIdleFractions(handed_out, &record);
  const bool evaluate =
      round % spec_.eval_every() == 0 || round == spec_.rounds();
  const bool checkpoint = spec_.checkpoint_every() > 0 &&
                          round % spec_.checkpoint_every() == 0 &&
                          round < spec_.rounds();
  return finisher_->Submit(std::move(record), evaluate, checkpoint);
}

void JobRunner::SetIdleFractions(absl::Time handed_out,
                                 twist::v1::RoundRecord* record) {
  for (auto& w : *record->mutable_workers()) {
    if (!w.accepted()) continue;
    const absl::Time arrived = handed_out + absl::Seconds(w.seconds());
    const auto last = last_update_at_.find(w.worker_id());
    const double cycle_s = last == last_update_at_.end()
                               ? record->duration_s()
                               : absl::ToDoubleSeconds(arrived - last->second);
    if (cycle_s > 0) {
      w.set_idle_fraction(std::clamp(1 - w.compute_s() / cycle_s, 0.0, 1.0));
    }
    last_update_at_[w.worker_id()] = arrived;
  }
}

}  // namespace twist::coordinator
