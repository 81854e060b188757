// gRPC JobService: a thin adapter from the wire to the JobManager and the
// WorkerRegistry, used by twistctl and any other gRPC client.
#ifndef TWIST_COORDINATOR_JOB_SERVICE_H_
#define TWIST_COORDINATOR_JOB_SERVICE_H_

#include <atomic>

#include "common/rpc/security.h"
#include "coordinator/job_manager.h"
#include "coordinator/worker_registry.h"
#include "twist/v1/job_service.grpc.pb.h"

namespace twist::coordinator {

class JobServiceImpl final : public twist::v1::JobService::Service {
 public:
  // `jobs`, `registry` and `authorizer` must outlive the service. Every call
  // needs the client role.
  // At most `max_watchers` WatchJob streams are served at once; more get
  // RESOURCE_EXHAUSTED.
  JobServiceImpl(JobManager* jobs, WorkerRegistry* registry,
                 const common::CallAuthorizer* authorizer, int max_watchers);

  grpc::Status SubmitJob(grpc::ServerContext* context,
                         const twist::v1::SubmitJobRequest* request,
                         twist::v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context,
                      const twist::v1::GetJobRequest* request,
                      twist::v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context,
                        const twist::v1::ListJobsRequest* request,
                        twist::v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context,
                         const twist::v1::CancelJobRequest* request,
                         twist::v1::Job* response) override;
  grpc::Status WatchJob(
      grpc::ServerContext* context, const twist::v1::WatchJobRequest* request,
      grpc::ServerWriter<twist::v1::JobEvent>* writer) override;
  grpc::Status ListWorkers(grpc::ServerContext* context,
                           const twist::v1::ListWorkersRequest* request,
                           twist::v1::ListWorkersResponse* response) override;
  grpc::Status ExportModel(
      grpc::ServerContext* context,
      const twist::v1::ExportModelRequest* request,
      grpc::ServerWriter<twist::v1::ExportMessage>* writer) override;

 private:
  JobManager* const jobs_;
  WorkerRegistry* const registry_;
  const common::CallGuard guard_;
  const int max_watchers_;
  std::atomic<int> watchers_{0};
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_SERVICE_H_
