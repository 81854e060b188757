#include "coordinator/prometheus_text.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/job_spec.h"

namespace twist::coordinator {
namespace {

// Accumulates one metric family: HELP and TYPE once, then its samples.
class Family {
 public:
  Family(std::string* out, const std::string& name, const std::string& type,
         const std::string& help)
      : out_(out), name_(name) {
    absl::StrAppend(out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  }
  void Sample(const std::string& labels, double value) {
    // Integral values (counters, timestamps in whole seconds) print exactly;
    // the rest with round-trip precision.
    std::string v;
    if (std::isnan(value)) {
      v = "NaN";
    } else if (value == std::floor(value) &&
               std::fabs(value) < 9.007199254740992e15) {
      v = absl::StrFormat("%.0f", value);
    } else {
      v = absl::StrFormat("%.17g", value);
    }
    absl::StrAppend(out_, name_,
                    labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                    v, "\n");
  }

 private:
  std::string* out_;
  std::string name_;
};

std::string JobLabels(const twist::v1::Job& job) {
  return absl::StrCat("job_id=\"", job.id(), "\",job_name=\"",
                      EscapeLabelValue(job.spec().name()), "\"");
}

std::string WorkerLabels(const twist::v1::WorkerInfo& w) {
  return absl::StrCat("worker_id=\"", w.id(), "\",worker_name=\"",
                      EscapeLabelValue(w.name()), "\"");
}

// twist_job_state: for each job, one sample per state, 1 for its own.
void AppendJobStates(const std::vector<twist::v1::Job>& jobs,
                     std::string* out) {
  Family state(out, "twist_job_state", "gauge",
               "1 for the job's current state, 0 for the others.");
  for (const auto& job : jobs) {
    for (auto s :
         {twist::v1::JOB_STATE_QUEUED, twist::v1::JOB_STATE_WAITING,
          twist::v1::JOB_STATE_RUNNING, twist::v1::JOB_STATE_COMPLETED,
          twist::v1::JOB_STATE_FAILED, twist::v1::JOB_STATE_CANCELLED}) {
      state.Sample(
          absl::StrCat(JobLabels(job), ",state=\"", JobStateName(s), "\""),
          job.state() == s ? 1 : 0);
    }
  }
}

// The jobs' rounds (done and planned) and latest losses; a job without a
// loss yet has no sample of it.
void AppendJobProgress(const std::vector<twist::v1::Job>& jobs,
                       std::string* out) {
  Family round(out, "twist_job_round", "gauge",
               "Last finished round of the job.");
  for (const auto& job : jobs) round.Sample(JobLabels(job), job.round());
  Family planned(out, "twist_job_rounds_planned", "gauge",
                 "Rounds the job will run.");
  for (const auto& job : jobs)
    planned.Sample(JobLabels(job), job.spec().rounds());
  Family train(out, "twist_job_train_loss", "gauge",
               "Mean training loss of the last round (nats per token).");
  for (const auto& job : jobs) {
    if (job.has_last_train_loss())
      train.Sample(JobLabels(job), job.last_train_loss());
  }
  Family val(out, "twist_job_validation_loss", "gauge",
             "Validation loss at the last evaluation (nats per token).");
  for (const auto& job : jobs) {
    if (job.has_last_val_loss())
      val.Sample(JobLabels(job), job.last_val_loss());
  }
}

// The jobs' counters of tensor bytes sent and received and of updates not
// merged.
void AppendJobTraffic(const std::vector<twist::v1::Job>& jobs,
                      std::string* out) {
  Family sent(out, "twist_job_sent_bytes_total", "counter",
              "Tensor bytes sent from the coordinator to workers.");
  for (const auto& job : jobs)
    sent.Sample(JobLabels(job), job.bytes_sent_total());
  Family received(out, "twist_job_received_bytes_total", "counter",
                  "Tensor bytes received by the coordinator from workers.");
  for (const auto& job : jobs)
    received.Sample(JobLabels(job), job.bytes_received_total());
  Family rejected(
      out, "twist_job_rejected_updates_total", "counter",
      "Worker updates not merged: rejected, missing or from dropped workers.");
  for (const auto& job : jobs)
    rejected.Sample(JobLabels(job), job.rejected_updates_total());
}

// The count of live workers, then each worker's liveness, throughput and
// last heartbeat.
void AppendWorkers(const std::vector<twist::v1::WorkerInfo>& workers,
                   std::string* out) {
  int live = 0;
  for (const auto& w : workers) live += w.live() ? 1 : 0;
  Family(out, "twist_workers_live", "gauge",
         "Workers heartbeating within the timeout.")
      .Sample("", live);
  Family up(out, "twist_worker_up", "gauge", "1 while the worker is live.");
  for (const auto& w : workers) up.Sample(WorkerLabels(w), w.live() ? 1 : 0);
  Family tps(out, "twist_worker_tokens_per_second", "gauge",
             "Training throughput of the worker in its last round.");
  for (const auto& w : workers) tps.Sample(WorkerLabels(w), w.tokens_per_s());
  Family heartbeat(out, "twist_worker_last_heartbeat_timestamp_seconds",
                   "gauge", "Unix time of the worker's last heartbeat.");
  for (const auto& w : workers)
    heartbeat.Sample(WorkerLabels(w), w.last_heartbeat_at());
}

}  // namespace

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string PrometheusText(const std::vector<twist::v1::Job>& jobs,
                           const std::vector<twist::v1::WorkerInfo>& workers,
                           uint64_t incarnation, int64_t stale_updates) {
  std::string out;
  Family(&out, "twist_coordinator_incarnation", "gauge",
         "Incarnation of this coordinator process (grows at every restart).")
      .Sample("", static_cast<double>(incarnation));
  AppendJobStates(jobs, &out);
  AppendJobProgress(jobs, &out);
  AppendJobTraffic(jobs, &out);
  Family(
      &out, "twist_stale_updates_total", "counter",
      "Updates refused before reaching a round (a round already over, another "
      "coordinator incarnation).")
      .Sample("", static_cast<double>(stale_updates));
  Family duration(&out, "twist_job_round_duration_seconds", "gauge",
                  "Wall time of the job's last round.");
  for (const auto& job : jobs)
    duration.Sample(JobLabels(job), job.last_round_duration_s());
  AppendWorkers(workers, &out);
  return out;
}

}  // namespace twist::coordinator
