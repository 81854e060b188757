#include "worker/worker_client.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/model/torch_errors.h"
#include "common/rpc/tensor_streams.h"
#include "common/rpc/rpc_util.h"
#include "common/base/status_macros.h"
#include "common/transport/tensor_chunks.h"
#include "common/transport/wire_chunks.h"
#include "glog/logging.h"

namespace twist::worker {
namespace {

using common::DeadlineIn;
using common::FromGrpcStatus;

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

// twist.v1.WorkerTransfer's methods, called on raw ByteBuffers so chunks are
// written from and read into tensor memory in place.
const std::string& ReceiveAssignmentMethod() {
  static const std::string path = common::MethodPath(
      twist::v1::WorkerTransfer::service_full_name(), "ReceiveAssignment");
  return path;
}
const std::string& SendUpdateMethod() {
  static const std::string path = common::MethodPath(
      twist::v1::WorkerTransfer::service_full_name(), "SendUpdate");
  return path;
}

// Retries of a failed call, doubling from the first to the last.
constexpr double kMinBackoffS = 0.1;
constexpr double kMaxBackoffS = 1.0;

}  // namespace

WorkerClient::WorkerClient(Options options, common::Connection connection,
                           SubnetTrainer* trainer)
    : options_(std::move(options)),
      trainer_(trainer),
      connection_(std::move(connection)),
      channel_(connection_.channel),
      renewed_at_(std::chrono::steady_clock::now()) {}

std::shared_ptr<grpc::Channel> WorkerClient::Channel() {
  absl::MutexLock lock(&channel_mu_);
  return channel_;
}

std::unique_ptr<twist::v1::WorkerService::Stub> WorkerClient::Stub() {
  return twist::v1::WorkerService::NewStub(Channel());
}

void WorkerClient::RenewChannel() {
  absl::MutexLock lock(&channel_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - renewed_at_ < std::chrono::seconds(1)) return;
  channel_ = connection_.NewChannel();
  renewed_at_ = now;
}

void WorkerClient::Prepare(grpc::ClientContext* context,
                           double deadline_s) const {
  context->set_deadline(DeadlineIn(deadline_s));
  connection_.Authorize(context);
}

WorkerClient::~WorkerClient() {
  Stop();
  if (heartbeat_.joinable()) heartbeat_.join();
}

void WorkerClient::Stop() {
  stop_.store(true);
  AbandonCurrent();
}

void WorkerClient::AbandonCurrent() {
  abandon_.store(true);
  absl::MutexLock lock(&mu_);
  if (active_call_ != nullptr) active_call_->TryCancel();
}

// Registers a streaming call so AbandonCurrent() can cancel it: a call stuck
// on a connection that died would otherwise hold the worker until its
// deadline.
class WorkerClient::ActiveCall {
 public:
  ActiveCall(WorkerClient* client, grpc::ClientContext* context)
      : client_(client) {
    absl::MutexLock lock(&client_->mu_);
    client_->active_call_ = context;
  }
  ~ActiveCall() {
    absl::MutexLock lock(&client_->mu_);
    client_->active_call_ = nullptr;
  }

 private:
  WorkerClient* const client_;
};

absl::Status WorkerClient::Join() {
  twist::v1::JoinRequest request;
  request.set_protocol_version(common::kProtocolVersion);
  request.set_name(options_.name);
  request.set_device(options_.device_name);
  request.set_capacity(options_.capacity);
  request.set_threads(options_.threads);
  twist::v1::JoinResponse response;
  grpc::ClientContext context;
  Prepare(&context, 10);
  TWIST_RETURN_IF_ERROR(
      FromGrpcStatus(Stub()->Join(&context, request, &response)));
  absl::MutexLock lock(&mu_);
  worker_id_ = response.worker_id();
  incarnation_ = response.incarnation();
  heartbeat_interval_s_ = std::max(0.05, response.heartbeat_interval_s());
  need_join_ = false;
  LOG(INFO) << "joined " << options_.coordinator << " as " << worker_id_
            << " (coordinator incarnation " << incarnation_ << ")";
  return absl::OkStatus();
}

void WorkerClient::HeartbeatLoop() {
  while (!stop_.load()) {
    twist::v1::HeartbeatRequest request;
    double interval = 1.0;
    {
      absl::MutexLock lock(&mu_);
      interval = heartbeat_interval_s_;
      if (need_join_ || worker_id_.empty()) {
        request.clear_worker_id();
      } else {
        request.set_worker_id(worker_id_);
        request.set_status(status_);
        request.set_resident_parameters(resident_parameters_);
      }
    }
    if (!request.worker_id().empty()) {
      twist::v1::HeartbeatResponse response;
      grpc::ClientContext context;
      Prepare(&context, std::max(2.0, 2 * interval));
      grpc::Status s = Stub()->Heartbeat(&context, request, &response);
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE) RenewChannel();
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        LOG(WARNING) << "coordinator does not know this worker ("
                     << s.error_message() << "): joining again";
        {
          absl::MutexLock lock(&mu_);
          need_join_ = true;
        }
        AbandonCurrent();
      } else if (s.ok()) {
        bool restarted = false;
        {
          absl::MutexLock lock(&mu_);
          restarted = response.incarnation() != incarnation_;
          if (restarted) need_join_ = true;
        }
        bool stale = false;
        if (response.abandon_assignment()) {
          absl::MutexLock lock(&mu_);
          stale = response.abandon_job_id() == current_job_ &&
                  response.abandon_round() == current_round_;
        }
        if (restarted || stale) AbandonCurrent();
      }
    }
    // Sleep in small steps so Stop() is prompt.
    const auto until =
        std::chrono::steady_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(interval * 1e6));
    while (!stop_.load() && std::chrono::steady_clock::now() < until) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
}

absl::Status WorkerClient::Run() {
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  double backoff_s = kMinBackoffS;
  while (!stop_.load()) {
    bool need_join = false;
    {
      absl::MutexLock lock(&mu_);
      need_join = need_join_;
    }
    absl::Status s = need_join ? Join() : ServeOnce();
    if (s.ok()) {
      backoff_s = kMinBackoffS;
      continue;
    }
    if (stop_.load()) break;
    if (need_join && (s.code() == absl::StatusCode::kFailedPrecondition ||
                      s.code() == absl::StatusCode::kUnauthenticated ||
                      s.code() == absl::StatusCode::kPermissionDenied)) {
      // Another protocol version or wrong credentials: retrying cannot help.
      return s;
    }
    if (s.code() == absl::StatusCode::kAborted) return s;  // device unusable
    if (s.code() == absl::StatusCode::kNotFound) {
      absl::MutexLock lock(&mu_);
      need_join_ = true;
    }
    if (s.code() == absl::StatusCode::kUnavailable) RenewChannel();
    LOG(WARNING) << (need_join ? "cannot join: " : "") << s << "; retrying in "
                 << backoff_s << " s";
    const auto until =
        std::chrono::steady_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(backoff_s * 1e6));
    while (!stop_.load() && std::chrono::steady_clock::now() < until) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    // Short: a coordinator that restarted is back within seconds, and every
    // second of backoff is a second its job waits.
    backoff_s = std::min(backoff_s * 2, kMaxBackoffS);
  }
  // A clean goodbye, so the coordinator records a leave rather than a loss.
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = need_join_ ? "" : worker_id_;
  }
  if (!id.empty()) {
    twist::v1::LeaveRequest request;
    request.set_worker_id(id);
    twist::v1::LeaveResponse response;
    grpc::ClientContext context;
    Prepare(&context, 3);
    Stub()->Leave(&context, request, &response);
    LOG(INFO) << "left the coordinator";
  }
  if (heartbeat_.joinable()) heartbeat_.join();
  return absl::OkStatus();
}

absl::Status WorkerClient::ServeOnce() {
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = worker_id_;
    status_ = "idle";
  }
  twist::v1::AssignmentRequest request;
  request.set_worker_id(id);
  request.set_wait_s(options_.poll_s);
  grpc::ClientContext context;
  // The coordinator holds the call up to poll_s, then the transfer follows.
  Prepare(&context, options_.poll_s + 600);
  ActiveCall active(this, &context);
  const std::shared_ptr<grpc::Channel> channel = Channel();
  auto reader = common::OpenServerStream(channel.get(),
                                         ReceiveAssignmentMethod().c_str(), &context,
                                         common::ToByteBuffer(request));
  grpc::ByteBuffer buffer;
  if (!reader->Read(&buffer)) {
    return FromGrpcStatus(reader->Finish());  // OK: no work yet
  }
  const auto receive_start = std::chrono::steady_clock::now();
  twist::v1::AssignmentMessage message;
  if (!common::FromByteBuffer(buffer, &message).ok() || !message.has_header()) {
    context.TryCancel();
    reader->Finish();
    return absl::InvalidArgumentError(
        "assignment stream did not start with a header");
  }
  abandon_.store(false);
  {
    absl::MutexLock lock(&mu_);
    current_job_ = message.header().job_id();
    current_round_ = message.header().round();
  }
  {
    absl::MutexLock lock(&mu_);
    status_ = "receiving";
  }
  twist::v1::UpdateHeader update;
  update.set_worker_id(id);
  update.set_incarnation(message.header().incarnation());
  update.set_job_id(message.header().job_id());
  update.set_round(message.header().round());
  update.set_slot(message.header().slot());

  absl::StatusOr<PreparedSubnet> prepared = common::CatchTorchErrors(
      "preparing the subnetwork",
      [&] { return trainer_->Prepare(message.header()); });
  if (!prepared.ok()) {
    context.TryCancel();
    reader->Finish();
    update.set_error(std::string(prepared.status().message()));
    return SendUpdate(update, {});
  }
  {
    common::ChunkAssembler assembler(prepared->receive_into);
    absl::Status bad;
    {
      torch::NoGradGuard no_grad;  // the chunks land in parameter memory
      int64_t bytes = 0;
      while (bad.ok() && reader->Read(&buffer)) {
        absl::StatusOr<bool> chunk = common::AddChunkBuffer(
            buffer, common::kAssignmentChunkField, &assembler, &bytes);
        if (!chunk.ok()) {
          bad = chunk.status();
        } else if (!*chunk) {
          bad = absl::InvalidArgumentError("a second header in one assignment");
        }
      }
    }
    if (!bad.ok()) {
      context.TryCancel();
      reader->Finish();
      return bad;
    }
    TWIST_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
    TWIST_RETURN_IF_ERROR(assembler.Finish());
  }
  update.set_receive_s(Since(receive_start));
  {
    absl::MutexLock lock(&mu_);
    status_ = "training";
    resident_parameters_ = prepared->receive_into.NumElements();
  }

  absl::StatusOr<TrainedSubnet> trained = Train(*std::move(prepared));
  if (!trained.ok()) {
    if (trained.status().code() == absl::StatusCode::kCancelled) {
      LOG(INFO) << "round " << update.round()
                << " abandoned: " << trained.status().message();
      return absl::OkStatus();
    }
    update.set_error(std::string(trained.status().message()));
    LOG(WARNING) << "cannot train round " << update.round() << ": "
                 << trained.status();
    TWIST_RETURN_IF_ERROR(SendUpdate(update, {}));
    // A device that cannot be trusted any more ends the worker; anything
    // else (out of memory included) was this round's problem only.
    if (trained.status().code() == absl::StatusCode::kAborted) {
      return trained.status();
    }
    return absl::OkStatus();
  }
  if (options_.delay_after_train_s > 0) {
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::microseconds(static_cast<int64_t>(
                           options_.delay_after_train_s * 1e6));
    while (!stop_.load() && !abandon_.load() &&
           std::chrono::steady_clock::now() < until) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  if (abandon_.load() || stop_.load()) return absl::OkStatus();
  update.set_train_loss(trained->result.mean_loss);
  update.set_tokens(trained->result.tokens);
  update.set_compute_s(trained->result.compute_s);
  update.set_parameters(trained->parameters);
  update.set_deltas(trained->deltas);
  return SendUpdate(update, trained->tensors);
}

absl::StatusOr<TrainedSubnet> WorkerClient::Train(PreparedSubnet prepared) {
  // On a thread of its own, so that Stop() is answered at once whatever the
  // length of a local step: a stopping worker leaves the coordinator and
  // exits while the step is still running (training_left_running()).
  struct Task {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<TrainedSubnet> result ABSL_GUARDED_BY(mu) =
        absl::UnknownError("not trained");
  };
  auto task = std::make_shared<Task>();
  auto subnet = std::make_shared<PreparedSubnet>(std::move(prepared));
  std::thread([this, task, subnet] {
    absl::StatusOr<TrainedSubnet> result =
        common::CatchTorchErrors("training the subnetwork", [&] {
          return trainer_->Train(
              *subnet, [this] { return abandon_.load() || stop_.load(); });
        });
    subnet->model = nullptr;  // the trainer keeps the model resident; this handle goes
    absl::MutexLock lock(&task->mu);
    task->result = std::move(result);
    task->done = true;
  }).detach();
  absl::MutexLock lock(&task->mu);
  while (!task->done && !stop_.load()) {
    task->mu.AwaitWithTimeout(absl::Condition(&task->done),
                              absl::Milliseconds(50));
  }
  if (!task->done) {
    training_left_running_.store(true);
    return absl::CancelledError("the worker is stopping");
  }
  return std::move(task->result);
}

absl::Status WorkerClient::SendUpdate(const twist::v1::UpdateHeader& header,
                                      const common::NamedTensors& tensors) {
  {
    absl::MutexLock lock(&mu_);
    status_ = "sending";
  }
  const auto start = std::chrono::steady_clock::now();
  twist::v1::UpdateHeader h = header;
  h.set_send_s(last_send_s_);
  grpc::ClientContext context;
  Prepare(&context, 600);
  ActiveCall active(this, &context);
  grpc::ByteBuffer response;
  const std::shared_ptr<grpc::Channel> channel = Channel();
  auto writer = common::OpenClientStream(
      channel.get(), SendUpdateMethod().c_str(), &context, &response);
  twist::v1::UpdateMessage message;
  *message.mutable_header() = h;
  bool ok = writer->Write(common::ToByteBuffer(message));
  if (ok) {
    absl::Status s = common::ForEachChunkBuffer(
        tensors, common::kChunkBytes, common::kUpdateChunkField,
        [&](grpc::ByteBuffer& chunk) {
          return writer->Write(chunk)
                     ? absl::OkStatus()
                     : absl::UnavailableError("update stream broke");
        });
    ok = s.ok();
  }
  writer->WritesDone();
  absl::Status status = FromGrpcStatus(writer->Finish());
  last_send_s_ = Since(start);
  {
    absl::MutexLock lock(&mu_);
    status_ = "idle";  // the model stays resident: resident_parameters_ holds
  }
  if (!status.ok()) {
    // A refused update (stale round, malformed) is the coordinator's call;
    // the worker carries on with the next assignment.
    LOG(WARNING) << "update for job " << h.job_id() << " round " << h.round()
                 << " not accepted: " << status;
    if (status.code() == absl::StatusCode::kUnavailable) return status;
  }
  return absl::OkStatus();
}

}  // namespace twist::worker
