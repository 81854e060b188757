#include "coordinator/job_service.h"

#include "common/rpc/rpc_util.h"
#include "common/transport/subnet_proto.h"
#include "common/transport/tensor_chunks.h"
#include "coordinator/job_spec.h"

namespace twist::coordinator {

using common::ToGrpcStatus;

JobServiceImpl::JobServiceImpl(JobManager* jobs, WorkerRegistry* registry,
                               const common::CallAuthorizer* authorizer,
                               int max_watchers)
    : jobs_(jobs),
      registry_(registry),
      guard_(authorizer, common::Role::kClient),
      max_watchers_(max_watchers) {}

namespace {

// The job as it stands (without rounds), and `round` when the event is one.
twist::v1::JobEvent EventOf(const twist::v1::Job& job,
                            const twist::v1::RoundRecord* round) {
  twist::v1::JobEvent event;
  *event.mutable_job() = job;
  event.mutable_job()->clear_rounds();
  if (round != nullptr) {
    event.mutable_job()->set_round(round->round());  // the job as of then
    *event.mutable_round() = *round;
  }
  return event;
}

}  // namespace

grpc::Status JobServiceImpl::SubmitJob(
    grpc::ServerContext* context, const twist::v1::SubmitJobRequest* request,
    twist::v1::SubmitJobResponse* response) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  absl::StatusOr<twist::v1::Job> job = jobs_->Submit(request->spec());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context,
                                    const twist::v1::GetJobRequest* request,
                                    twist::v1::Job* response) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  absl::StatusOr<twist::v1::Job> job =
      jobs_->Get(request->job_id(), request->include_rounds());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context,
                                      const twist::v1::ListJobsRequest*,
                                      twist::v1::ListJobsResponse* response) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  absl::StatusOr<std::vector<twist::v1::Job>> jobs = jobs_->List();
  if (!jobs.ok()) return ToGrpcStatus(jobs.status());
  for (auto& job : *jobs) *response->add_jobs() = std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::CancelJob(
    grpc::ServerContext* context, const twist::v1::CancelJobRequest* request,
    twist::v1::Job* response) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  absl::StatusOr<twist::v1::Job> job = jobs_->Cancel(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(
    grpc::ServerContext* context, const twist::v1::WatchJobRequest* request,
    grpc::ServerWriter<twist::v1::JobEvent>* writer) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  // Each watcher holds a server thread for as long as it watches: bounded.
  struct Seat {
    std::atomic<int>* count;
    ~Seat() { count->fetch_sub(1); }
  } seat{&watchers_};
  if (watchers_.fetch_add(1) >= max_watchers_) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("this coordinator already serves ", max_watchers_,
                     " WatchJob streams (its --max_watchers): poll GetJob "
                     "or the HTTP API instead, or retry later"));
  }
  uint64_t version = jobs_->version();
  absl::StatusOr<twist::v1::Job> job =
      jobs_->Get(request->job_id(), /*include_rounds=*/true);
  if (!job.ok()) return ToGrpcStatus(job.status());
  // First the job as it stands with every round so far, then what changes.
  int32_t sent_round = -1;
  twist::v1::JobState sent_state = twist::v1::JOB_STATE_UNSPECIFIED;
  std::string sent_reason;
  for (;;) {
    for (const auto& round : job->rounds()) {
      if (round.round() <= sent_round) continue;
      if (!writer->Write(EventOf(*job, &round))) return grpc::Status::CANCELLED;
      sent_round = round.round();
    }
    if (job->state() != sent_state || job->reason() != sent_reason) {
      if (!writer->Write(EventOf(*job, nullptr))) return grpc::Status::CANCELLED;
      sent_state = job->state();
      sent_reason = job->reason();
    }
    if (IsFinished(job->state())) return grpc::Status::OK;
    while (jobs_->WaitForChange(version, absl::Seconds(1)) == version) {
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
    }
    // Only what is new: the job's fields and the rounds not sent yet.
    version = jobs_->version();
    job = jobs_->Get(request->job_id(), /*include_rounds=*/false);
    if (!job.ok()) return ToGrpcStatus(job.status());
    absl::StatusOr<std::vector<twist::v1::RoundRecord>> rounds =
        jobs_->RoundsAfter(request->job_id(), sent_round);
    if (!rounds.ok()) return ToGrpcStatus(rounds.status());
    for (auto& r : *rounds) *job->add_rounds() = std::move(r);
  }
}

grpc::Status JobServiceImpl::ListWorkers(
    grpc::ServerContext* context, const twist::v1::ListWorkersRequest*,
    twist::v1::ListWorkersResponse* response) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  for (auto& w : registry_->AllWorkers())
    *response->add_workers() = std::move(w);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ExportModel(
    grpc::ServerContext* context, const twist::v1::ExportModelRequest* request,
    grpc::ServerWriter<twist::v1::ExportMessage>* writer) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  absl::StatusOr<ExportedModel> model =
      jobs_->Export(request->job_id(), request->keep_ratio(), request->seed(),
                    request->shift_correction());
  if (!model.ok()) return ToGrpcStatus(model.status());
  twist::v1::ExportMessage message;
  auto* header = message.mutable_header();
  for (const auto& [k, v] : model->metadata)
    (*header->mutable_metadata())[k] = v;
  *header->mutable_tensors() = common::DescribeTensors(model->tensors);
  header->set_parameters(model->parameters);
  if (!writer->Write(message)) return grpc::Status::CANCELLED;
  absl::Status s = common::ForEachChunk(
      model->tensors, common::kChunkBytes, [&](const common::ChunkRef& chunk) {
        if (context->IsCancelled())
          return absl::CancelledError("client went away");
        twist::v1::ExportMessage m;
        common::ToMessage(chunk, m.mutable_chunk());
        if (!writer->Write(m)) return absl::UnavailableError("stream broke");
        return absl::OkStatus();
      });
  return ToGrpcStatus(s);
}

}  // namespace twist::coordinator
