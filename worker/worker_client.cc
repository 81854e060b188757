#include "worker/worker_client.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/free_memory.h"
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

// A failed call or stream: NOT_FOUND means the coordinator does not know
// this worker (it forgot it, or restarted): join again.
ServeResult Failed(absl::Status status) {
  const ServeOutcome outcome = status.code() == absl::StatusCode::kNotFound
                                   ? ServeOutcome::kRejoin
                                   : ServeOutcome::kFailed;
  return {outcome, std::move(status)};
}

// The round was answered, unless the answer did not get through.
ServeResult Sent(absl::Status sent) {
  if (!sent.ok()) return Failed(std::move(sent));
  return {ServeOutcome::kServed, absl::OkStatus()};
}

// The poll brought no assignment: no work yet, or why not.
ServeResult NoAssignment(const absl::StatusOr<bool>& started,
                         grpc::ClientContext* context,
                         grpc::ClientReader<grpc::ByteBuffer>* reader) {
  if (!started.ok()) {  // not a header: a broken assignment stream
    context->TryCancel();
    reader->Finish();
    return Failed(started.status());
  }
  absl::Status s = FromGrpcStatus(reader->Finish());
  if (!s.ok()) return Failed(std::move(s));
  return {ServeOutcome::kNoWork, absl::OkStatus()};
}

// Reads the assignment's chunks into `targets` (the trainer's receive
// buffers: host buffers, or for float32 on the CPU the model's parameters
// themselves) and ends the call.
absl::Status ReceiveTensors(common::TensorStreamReader* stream,
                            grpc::ClientContext* context,
                            grpc::ClientReader<grpc::ByteBuffer>* reader,
                            const common::NamedTensors& targets) {
  common::ChunkAssembler assembler(targets);
  absl::Status read;
  {
    torch::NoGradGuard no_grad;  // the chunks land in parameter memory
    read = stream->ReadChunks(&assembler);
  }
  if (!read.ok()) {
    context->TryCancel();
    reader->Finish();
    return read;
  }
  TWIST_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
  return assembler.Finish();
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

const char* WorkerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kIdle:
      return "idle";
    case WorkerState::kReceiving:
      return "receiving";
    case WorkerState::kTraining:
      return "training";
    case WorkerState::kSending:
      return "sending";
  }
  return "idle";
}

void WorkerClient::SetState(WorkerState state) {
  absl::MutexLock lock(&mu_);
  state_ = state;
}

void WorkerClient::SleepUnlessStopped(double seconds, bool or_abandoned) const {
  // Small steps, so Stop() is prompt.
  const auto until =
      std::chrono::steady_clock::now() +
      std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  while (!stop_.load() && !(or_abandoned && abandon_.load()) &&
         std::chrono::steady_clock::now() < until) {
    absl::SleepFor(absl::Milliseconds(20));
  }
}

void WorkerClient::HeartbeatLoop() {
  while (!stop_.load()) {
    twist::v1::HeartbeatRequest request;
    double interval = 1.0;
    {
      absl::MutexLock lock(&mu_);
      interval = heartbeat_interval_s_;
      if (!need_join_ && !worker_id_.empty()) {
        request.set_worker_id(worker_id_);
        request.set_status(WorkerStateName(state_));
        request.set_resident_parameters(resident_parameters_);
      }
    }
    if (!request.worker_id().empty()) Heartbeat(request, interval);
    SleepUnlessStopped(interval);
  }
}

void WorkerClient::Heartbeat(const twist::v1::HeartbeatRequest& request,
                             double interval_s) {
  twist::v1::HeartbeatResponse response;
  grpc::ClientContext context;
  Prepare(&context, std::max(2.0, 2 * interval_s));
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
    return;
  }
  if (!s.ok()) return;
  bool restarted = false;
  bool stale = false;
  {
    absl::MutexLock lock(&mu_);
    restarted = response.incarnation() != incarnation_;
    if (restarted) need_join_ = true;
    stale = response.abandon_assignment() &&
            response.abandon_job_id() == current_job_ &&
            response.abandon_round() == current_round_;
  }
  if (restarted || stale) AbandonCurrent();
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
    ServeResult result{ServeOutcome::kFailed, absl::OkStatus()};
    if (need_join) {
      result.status = Join();
    } else {
      result = ServeOnce();
    }
    const absl::Status& s = result.status;
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
    if (result.outcome == ServeOutcome::kDeviceUnusable) return s;
    if (result.outcome == ServeOutcome::kRejoin) {
      absl::MutexLock lock(&mu_);
      need_join_ = true;
    }
    if (s.code() == absl::StatusCode::kUnavailable) RenewChannel();
    LOG(WARNING) << (need_join ? "cannot join: " : "") << s << "; retrying in "
                 << backoff_s << " s";
    SleepUnlessStopped(backoff_s);
    // Short: a coordinator that restarted is back within seconds, and every
    // second of backoff is a second its job waits.
    backoff_s = std::min(backoff_s * 2, kMaxBackoffS);
  }
  FinishStepsAhead();
  Leave();
  if (heartbeat_.joinable()) heartbeat_.join();
  return absl::OkStatus();
}

void WorkerClient::Leave() {
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = need_join_ ? "" : worker_id_;
  }
  if (id.empty()) return;
  twist::v1::LeaveRequest request;
  request.set_worker_id(id);
  twist::v1::LeaveResponse response;
  grpc::ClientContext context;
  Prepare(&context, 3);
  Stub()->Leave(&context, request, &response);
  LOG(INFO) << "left the coordinator";
}

ServeResult WorkerClient::ServeOnce() {
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = worker_id_;
    state_ = WorkerState::kIdle;
  }
  twist::v1::AssignmentRequest request;
  request.set_worker_id(id);
  request.set_wait_s(options_.poll_s);
  grpc::ClientContext context;
  // The coordinator holds the call up to poll_s, then the transfer follows.
  Prepare(&context, options_.poll_s + 600);
  ActiveCall active(this, &context);
  const std::shared_ptr<grpc::Channel> channel = Channel();
  auto reader =
      common::OpenServerStream(channel.get(), common::ReceiveAssignmentPath(),
                               &context, common::ToByteBuffer(request));
  common::TensorStreamReader stream(reader.get(), common::kAssignmentChunkField,
                                    "assignment stream");
  twist::v1::AssignmentMessage message;
  const absl::StatusOr<bool> started = stream.ReadHeader(&message);
  if (!started.ok() || !*started) {
    return NoAssignment(started, &context, reader.get());
  }
  const auto receive_start = std::chrono::steady_clock::now();
  twist::v1::UpdateHeader update = BeginRound(id, message.header());
  absl::StatusOr<PreparedSubnet> prepared = common::CatchTorchErrors(
      "preparing the subnetwork",
      [&] { return trainer_->Prepare(message.header()); });
  if (!prepared.ok()) {
    context.TryCancel();
    reader->Finish();
    update.set_error(std::string(prepared.status().message()));
    return Sent(SendUpdate(update, {}));
  }
  // Chunks that land in the parameters wait for steps still training them
  // (another job's, after a cancel); otherwise the steps run on while the
  // assignment arrives.
  if (prepared->receives_in_place) FinishStepsAhead();
  if (absl::Status s = ReceiveTensors(&stream, &context, reader.get(),
                                      prepared->receive_into);
      !s.ok()) {
    return Failed(std::move(s));
  }
  update.set_receive_s(Since(receive_start));
  FinishStepsAhead();
  if (stop_.load()) return {ServeOutcome::kAbandoned, absl::OkStatus()};
  {
    absl::MutexLock lock(&mu_);
    state_ = WorkerState::kTraining;
    resident_parameters_ =
        common::SubnetConfig(prepared->full, prepared->units).NumParameters();
  }
  return TrainAndSend(std::move(update), *std::move(prepared));
}

twist::v1::UpdateHeader WorkerClient::BeginRound(
    const std::string& worker_id, const twist::v1::AssignmentHeader& header) {
  abandon_.store(false);
  {
    absl::MutexLock lock(&mu_);
    current_job_ = header.job_id();
    current_round_ = header.round();
    state_ = WorkerState::kReceiving;
  }
  twist::v1::UpdateHeader update;
  update.set_worker_id(worker_id);
  update.set_incarnation(header.incarnation());
  update.set_job_id(header.job_id());
  update.set_round(header.round());
  update.set_slot(header.slot());
  return update;
}

ServeResult WorkerClient::TrainAndSend(twist::v1::UpdateHeader update,
                                       PreparedSubnet prepared) {
  absl::StatusOr<TrainedSubnet> trained = Train(std::move(prepared));
  if (!trained.ok()) return TrainingFailed(std::move(update), trained.status());
  SleepUnlessStopped(options_.delay_after_train_s, /*or_abandoned=*/true);
  if (abandon_.load() || stop_.load()) {
    return {ServeOutcome::kAbandoned, absl::OkStatus()};
  }
  update.set_train_loss(trained->result.mean_loss);
  update.set_tokens(trained->result.tokens);
  update.set_compute_s(trained->result.compute_s);
  update.set_steps_ahead(trained->steps_ahead);
  update.set_parameters(trained->parameters);
  update.set_deltas(trained->deltas);
  if (trainer_->HasStepsAhead()) StartStepsAhead();
  absl::Status sent = SendUpdate(update, trained->tensors);
  if (sent.ok() && last_update_accepted_ && trained->residual != nullptr) {
    trainer_->KeepResidual(std::move(trained->residual));
  }
  trained->tensors = common::NamedTensors();
  // The round's buffers, freed on any thread, go back while the machine's
  // cores are otherwise idle: the coordinator may be merging on them now.
  common::ReturnFreeMemoryWhenIdle();
  return Sent(std::move(sent));
}

ServeResult WorkerClient::TrainingFailed(twist::v1::UpdateHeader update,
                                         const absl::Status& status) {
  if (status.code() == absl::StatusCode::kCancelled) {
    LOG(INFO) << "round " << update.round()
              << " abandoned: " << status.message();
    return {ServeOutcome::kAbandoned, absl::OkStatus()};
  }
  update.set_error(std::string(status.message()));
  LOG(WARNING) << "cannot train round " << update.round() << ": " << status;
  if (absl::Status sent = SendUpdate(update, {}); !sent.ok()) {
    return Failed(std::move(sent));
  }
  // A device that cannot be trusted any more ends the worker (the trainer
  // says so with ABORTED: common/model/torch_errors.h); anything else (out
  // of memory included) was this round's problem only.
  if (status.code() == absl::StatusCode::kAborted) {
    return {ServeOutcome::kDeviceUnusable, status};
  }
  return {ServeOutcome::kServed, absl::OkStatus()};
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
  if (!AwaitUnlessStopped(task->mu, task->done)) {
    return absl::CancelledError("the worker is stopping");
  }
  return std::move(task->result);
}

struct WorkerClient::StepsAhead {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
};

void WorkerClient::StartStepsAhead() {
  auto task = std::make_shared<StepsAhead>();
  std::thread([this, task] {
    const absl::Status trained =
        common::CatchTorchErrors("training the next round's first steps", [&] {
          return trainer_->TrainAhead([this] { return stop_.load(); });
        });
    if (!trained.ok() && !stop_.load()) {
      LOG(WARNING) << "the next round will train all its steps: " << trained;
    }
    absl::MutexLock lock(&task->mu);
    task->done = true;
  }).detach();
  steps_ahead_ = std::move(task);
}

void WorkerClient::FinishStepsAhead() {
  if (steps_ahead_ == nullptr) return;
  const std::shared_ptr<StepsAhead> task = std::move(steps_ahead_);
  absl::MutexLock lock(&task->mu);
  AwaitUnlessStopped(task->mu, task->done);
}

bool WorkerClient::AwaitUnlessStopped(absl::Mutex& mu, const bool& done) {
  while (!done && !stop_.load()) {
    mu.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(50));
  }
  if (!done) training_left_running_.store(true);
  return done;
}

absl::Status WorkerClient::SendUpdate(const twist::v1::UpdateHeader& header,
                                      const common::NamedTensors& tensors) {
  SetState(WorkerState::kSending);
  const auto start = std::chrono::steady_clock::now();
  twist::v1::UpdateMessage message;
  *message.mutable_header() = header;
  message.mutable_header()->set_send_s(last_send_s_);
  const twist::v1::UpdateHeader& h = message.header();
  grpc::ClientContext context;
  Prepare(&context, 600);
  ActiveCall active(this, &context);
  grpc::ByteBuffer response;
  const std::shared_ptr<grpc::Channel> channel = Channel();
  auto writer = common::OpenClientStream(
      channel.get(), common::SendUpdatePath(), &context, &response);
  // A broken stream ends the call: its status says why.
  common::WriteTensorStream(writer.get(), message, tensors,
                            common::kUpdateChunkField)
      .IgnoreError();
  writer->WritesDone();
  absl::Status status = FromGrpcStatus(writer->Finish());
  last_send_s_ = Since(start);
  last_update_accepted_ = status.ok();
  // The model stays resident: resident_parameters_ holds.
  SetState(WorkerState::kIdle);
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
