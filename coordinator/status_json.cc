#include "coordinator/status_json.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "coordinator/job_spec.h"

namespace twist::coordinator {
namespace {

// A finite number, or null.
nlohmann::json Number(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

nlohmann::json Time(double t) {
  return t > 0 ? nlohmann::json(t) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json JobSummaryJson(const twist::v1::Job& job) {
  return {
      {"id", job.id()},
      {"name", job.spec().name()},
      {"state", JobStateName(job.state())},
      {"reason", job.reason()},
      {"mode", ModeName(job.spec().mode())},
      {"round", job.round()},
      {"rounds_total", job.spec().rounds()},
      {"created_at", Time(job.created_at())},
      {"started_at", Time(job.started_at())},
      {"finished_at", Time(job.finished_at())},
      {"parameters", job.parameters()},
      {"last_train_loss", job.has_last_train_loss()
                              ? Number(job.last_train_loss())
                              : nlohmann::json(nullptr)},
      {"last_val_loss", job.has_last_val_loss() ? Number(job.last_val_loss())
                                                : nlohmann::json(nullptr)},
      {"bytes_sent_total", job.bytes_sent_total()},
      {"bytes_received_total", job.bytes_received_total()},
      {"rejected_updates_total", job.rejected_updates_total()},
      {"notice", job.notice()},
  };
}

nlohmann::json RoundJson(const twist::v1::RoundRecord& r) {
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : r.workers()) {
    workers.push_back({
        {"worker_id", w.worker_id()},
        {"worker_name", w.worker_name()},
        {"slot", w.slot()},
        {"accepted", w.accepted()},
        {"reason", w.reason()},
        {"train_loss", Number(w.train_loss())},
        {"tokens", w.tokens()},
        {"compute_s", w.compute_s()},
        {"steps_ahead", w.steps_ahead()},
        {"receive_s", w.receive_s()},
        {"send_s", w.send_s()},
        {"bytes_sent", w.bytes_sent()},
        {"bytes_received", w.bytes_received()},
        {"parameters", w.parameters()},
        {"seconds", w.seconds()},
        {"idle_fraction", w.idle_fraction()},
    });
  }
  return {
      {"round", r.round()},
      {"train_loss",
       r.round() == 0 ? nlohmann::json(nullptr) : Number(r.train_loss())},
      {"val_loss",
       r.has_val_loss() ? Number(r.val_loss()) : nlohmann::json(nullptr)},
      {"bytes_sent", r.bytes_sent()},
      {"bytes_received", r.bytes_received()},
      {"duration_s", r.duration_s()},
      {"merge_s", r.merge_s()},
      {"eval_s", r.eval_s()},
      {"tokens", r.tokens()},
      {"tokens_per_s", r.duration_s() > 0 ? r.tokens() / r.duration_s() : 0.0},
      {"finished_at", Time(r.finished_at())},
      {"deadline_s", r.deadline_s()},
      {"workers", workers},
  };
}

nlohmann::json WorkerJson(const twist::v1::WorkerInfo& w) {
  return {
      {"id", w.id()},
      {"name", w.name()},
      {"device", w.device()},
      {"capacity", w.capacity()},
      {"threads", w.threads()},
      {"address", w.address()},
      {"joined_at", Time(w.joined_at())},
      {"last_heartbeat_at", Time(w.last_heartbeat_at())},
      {"live", w.live()},
      {"status", w.status()},
      {"tokens_per_s", w.tokens_per_s()},
      {"resident_parameters", w.resident_parameters()},
      {"rounds_done", w.rounds_done()},
  };
}

nlohmann::json JobDetailJson(
    const twist::v1::Job& job,
    const std::vector<twist::v1::WorkerInfo>& workers) {
  nlohmann::json out = JobSummaryJson(job);
  std::string spec_json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  // That option skips unset fields with presence (proto3 optional): every
  // field is shown, as it reads.
  if (google::protobuf::util::MessageToJsonString(
          common::WithEveryFieldSet(job.spec()), &spec_json, options)
          .ok()) {
    out["spec"] =
        nlohmann::json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  }
  nlohmann::json rounds = nlohmann::json::array();
  for (const auto& r : job.rounds()) rounds.push_back(RoundJson(r));
  out["rounds"] = std::move(rounds);
  nlohmann::json live = nlohmann::json::array();
  for (const auto& w : workers) {
    if (w.live()) live.push_back(WorkerJson(w));
  }
  out["workers"] = std::move(live);
  return out;
}

}  // namespace twist::coordinator
