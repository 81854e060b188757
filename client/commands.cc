#include "client/commands.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/progress.h"
#include "client/spec_input.h"
#include "common/base/status_macros.h"
#include "common/job/job_fields.h"
#include "common/job/job_states.h"
#include "common/model/hf_gpt2.h"
#include "common/model/safetensors.h"
#include "common/rpc/rpc_util.h"
#include "common/rpc/tensor_streams.h"
#include "common/transport/subnet_proto.h"
#include "common/transport/tensor_chunks.h"
#include "twist/v1/job_service.grpc.pb.h"

namespace twist::client {
namespace {

using common::DeadlineIn;
using common::FromGrpcStatus;

// A connection to the coordinator with the user's TLS settings and token.
class Client {
 public:
  static absl::StatusOr<Client> Open(const CommandLine& line) {
    TWIST_ASSIGN_OR_RETURN(common::Connection connection,
                           common::Connect(line.coordinator, line.security));
    return Client(std::move(connection));
  }
  twist::v1::JobService::Stub* operator->() { return stub_.get(); }
  grpc::ChannelInterface* channel() const { return connection_.channel.get(); }
  // Deadline and token for one call.
  void Prepare(grpc::ClientContext* context, double deadline_s) const {
    context->set_deadline(DeadlineIn(deadline_s));
    connection_.Authorize(context);
  }

 private:
  explicit Client(common::Connection connection)
      : connection_(std::move(connection)),
        stub_(twist::v1::JobService::NewStub(connection_.channel)) {}
  common::Connection connection_;
  std::unique_ptr<twist::v1::JobService::Stub> stub_;
};

// Adds where the coordinator is to connection errors.
absl::Status Rpc(const CommandLine& line, const grpc::Status& status) {
  absl::Status s = FromGrpcStatus(status);
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(s.code(),
                        absl::StrCat("cannot reach the coordinator at ",
                                     line.coordinator, " (", s.message(),
                                     "): is twist-coordinator running? "
                                     "(--coordinator=HOST:PORT)"));
  }
  return s;
}

// One unary call on a fresh connection: `call(stub, context, response)`
// returns the call's grpc::Status.
template <typename Response, typename Call>
absl::StatusOr<Response> CallJobService(const CommandLine& line,
                                        double deadline_s, Call call) {
  TWIST_ASSIGN_OR_RETURN(Client stub, Client::Open(line));
  grpc::ClientContext context;
  stub.Prepare(&context, deadline_s);
  Response response;
  TWIST_RETURN_IF_ERROR(Rpc(line, call(stub, &context, &response)));
  return response;
}

absl::StatusOr<int64_t> JobIdArgument(const CommandLine& line) {
  int64_t id = 0;
  if (line.positional.size() != 1 ||
      !absl::SimpleAtoi(line.positional[0], &id) || id <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "`twistctl ", line.command, "` takes one job id, e.g. `twistctl ",
        line.command, " 3` (`twistctl list` shows the ids)"));
  }
  return id;
}

std::string Time(double t) {
  if (t <= 0) return "-";
  const time_t seconds = static_cast<time_t>(t);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S",
                std::localtime(&seconds));
  return buf;
}

std::string Loss(bool has, double v) {
  return has ? absl::StrFormat("%.4f", v) : "-";
}

}  // namespace

absl::Status Submit(const CommandLine& line) {
  std::set<std::string> allowed = SpecOptionNames();
  allowed.insert({"spec", "watch"});
  TWIST_RETURN_IF_ERROR(CheckOptions(line, allowed));
  twist::v1::SubmitJobRequest request;
  if (line.Has("spec")) {
    TWIST_ASSIGN_OR_RETURN(*request.mutable_spec(),
                           LoadSpecFile(line.Get("spec")));
  }
  TWIST_RETURN_IF_ERROR(ApplySpecOptions(line, request.mutable_spec()));
  TWIST_ASSIGN_OR_RETURN(Client stub, Client::Open(line));
  grpc::ClientContext context;
  stub.Prepare(&context, 60);
  twist::v1::SubmitJobResponse response;
  TWIST_RETURN_IF_ERROR(
      Rpc(line, stub->SubmitJob(&context, request, &response)));
  const auto& job = response.job();
  std::printf(
      "submitted job %lld (%s): %s mode, %d rounds of %d local steps, %lld "
      "parameters\n",
      static_cast<long long>(job.id()), job.spec().name().c_str(),
      common::ModeName(job.spec().mode()).c_str(), job.spec().rounds(),
      job.spec().local_steps(),
      static_cast<long long>(job.parameters()));
  TWIST_ASSIGN_OR_RETURN(bool watch, line.GetBool("watch", false));
  if (watch) {
    CommandLine watch_line = line;
    watch_line.command = "watch";
    watch_line.options.clear();
    watch_line.positional = {absl::StrCat(job.id())};
    return Watch(watch_line);
  }
  return absl::OkStatus();
}

absl::Status List(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(CheckOptions(line, {}));
  TWIST_ASSIGN_OR_RETURN(
      const twist::v1::ListJobsResponse response,
      CallJobService<twist::v1::ListJobsResponse>(
          line, 10, [](Client& stub, grpc::ClientContext* context, auto* out) {
            return stub->ListJobs(context, {}, out);
          }));
  std::printf("%-5s %-20s %-10s %-9s %-11s %-10s %-10s %s\n", "ID", "NAME",
              "STATE", "MODE", "ROUND", "TRAIN", "VAL", "CREATED");
  for (const auto& job : response.jobs()) {
    std::printf(
        "%-5lld %-20s %-10s %-9s %-11s %-10s %-10s %s\n",
        static_cast<long long>(job.id()),
        job.spec().name().substr(0, 20).c_str(),
        common::JobStateName(job.state()).c_str(),
        common::ModeName(job.spec().mode()).c_str(),
        absl::StrCat(job.round(), "/", job.spec().rounds()).c_str(),
        Loss(job.has_last_train_loss(), job.last_train_loss()).c_str(),
        Loss(job.has_last_val_loss(), job.last_val_loss()).c_str(),
        Time(job.created_at()).c_str());
  }
  return absl::OkStatus();
}

absl::Status Status(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(CheckOptions(line, {"json"}));
  TWIST_ASSIGN_OR_RETURN(int64_t id, JobIdArgument(line));
  twist::v1::GetJobRequest request;
  request.set_job_id(id);
  request.set_include_rounds(true);
  TWIST_ASSIGN_OR_RETURN(
      const twist::v1::Job job,
      CallJobService<twist::v1::Job>(
          line, 10, [&](Client& stub, grpc::ClientContext* context, auto* out) {
            return stub->GetJob(context, request, out);
          }));
  if (line.Has("json")) {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(job, &json, options);
    std::printf("%s\n", json.c_str());
    return absl::OkStatus();
  }
  std::printf(
      "job %lld (%s): %s%s\n", static_cast<long long>(job.id()),
      job.spec().name().c_str(), common::JobStateName(job.state()).c_str(),
      job.reason().empty() ? ""
                           : absl::StrCat(" (", job.reason(), ")").c_str());
  std::printf(
      "  round %d of %d, %lld parameters, created %s, started %s, finished "
      "%s\n",
      job.round(), job.spec().rounds(),
      static_cast<long long>(job.parameters()), Time(job.created_at()).c_str(),
      Time(job.started_at()).c_str(), Time(job.finished_at()).c_str());
  std::printf("  sent %s, received %s\n",
              FormatBytes(job.bytes_sent_total()).c_str(),
              FormatBytes(job.bytes_received_total()).c_str());
  std::printf("  %5s %9s %9s %8s %10s %10s %s\n", "ROUND", "TRAIN", "VAL",
              "SECONDS", "SENT", "RECEIVED", "WORKERS");
  for (const auto& r : job.rounds()) {
    int accepted = 0;
    std::string dropped;
    for (const auto& w : r.workers()) {
      if (w.accepted()) {
        ++accepted;
      } else {
        absl::StrAppend(&dropped, "  ", w.worker_name(), ": ", w.reason());
      }
    }
    std::printf(
        "  %5d %9s %9s %8.2f %10s %10s %d/%d%s\n", r.round(),
        Loss(r.round() > 0 && std::isfinite(r.train_loss()), r.train_loss())
            .c_str(),
        Loss(r.has_val_loss(), r.val_loss()).c_str(), r.duration_s(),
        FormatBytes(r.bytes_sent()).c_str(),
        FormatBytes(r.bytes_received()).c_str(), accepted, r.workers_size(),
        dropped.c_str());
  }
  return absl::OkStatus();
}

absl::Status Watch(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(CheckOptions(line, {}));
  TWIST_ASSIGN_OR_RETURN(int64_t id, JobIdArgument(line));
  const bool tty = ::isatty(STDOUT_FILENO);
  TWIST_ASSIGN_OR_RETURN(Client stub, Client::Open(line));
  ProgressView view;
  twist::v1::Job job;
  // Reconnects while the coordinator is away (e.g. restarting).
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext context;
    stub.Prepare(&context, 7 * 24 * 3600);
    twist::v1::WatchJobRequest request;
    request.set_job_id(id);
    auto reader = stub->WatchJob(&context, request);
    twist::v1::JobEvent event;
    std::string last;
    while (reader->Read(&event)) {
      job = event.job();
      if (event.has_round()) view.AddRound(event.round());
      const std::string text = view.Render(job);
      if (text == last) continue;
      last = text;
      if (tty) {
        std::printf("\r\033[K%s", text.c_str());
      } else {
        std::printf("%s\n", text.c_str());
      }
      std::fflush(stdout);
    }
    absl::Status s = Rpc(line, reader->Finish());
    if (tty) std::printf("\n");
    if (s.ok()) break;
    if (s.code() != absl::StatusCode::kUnavailable || attempt >= 30) return s;
    std::fprintf(stderr, "lost the coordinator (%s); reconnecting\n",
                 std::string(s.message()).c_str());
    absl::SleepFor(absl::Seconds(2));
  }
  switch (job.state()) {
    case twist::v1::JOB_STATE_COMPLETED:
      return absl::OkStatus();
    case twist::v1::JOB_STATE_CANCELLED:
      return absl::CancelledError(absl::StrCat("job ", id, " was cancelled"));
    default:
      return absl::AbortedError(
          absl::StrCat("job ", id, " failed: ", job.reason()));
  }
}

absl::Status Cancel(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(CheckOptions(line, {}));
  TWIST_ASSIGN_OR_RETURN(int64_t id, JobIdArgument(line));
  twist::v1::CancelJobRequest request;
  request.set_job_id(id);
  TWIST_ASSIGN_OR_RETURN(
      const twist::v1::Job job,
      CallJobService<twist::v1::Job>(
          line, 30, [&](Client& stub, grpc::ClientContext* context, auto* out) {
            return stub->CancelJob(context, request, out);
          }));
  std::printf("job %lld: %s\n", static_cast<long long>(id),
              common::JobStateName(job.state()).c_str());
  return absl::OkStatus();
}

absl::Status Workers(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(CheckOptions(line, {}));
  TWIST_ASSIGN_OR_RETURN(
      const twist::v1::ListWorkersResponse response,
      CallJobService<twist::v1::ListWorkersResponse>(
          line, 10, [](Client& stub, grpc::ClientContext* context, auto* out) {
            return stub->ListWorkers(context, {}, out);
          }));
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  std::printf("%-5s %-24s %-8s %-5s %-10s %-10s %-12s %s\n", "ID", "NAME",
              "DEVICE", "LIVE", "STATUS", "HEARTBEAT", "TOKENS/S", "ROUNDS");
  for (const auto& w : response.workers()) {
    std::printf(
        "%-5s %-24s %-8s %-5s %-10s %-10s %-12s %lld\n", w.id().c_str(),
        w.name().substr(0, 24).c_str(), w.device().c_str(),
        w.live() ? "yes" : "no", w.status().c_str(),
        absl::StrFormat("%.1fs ago", std::max(0.0, now - w.last_heartbeat_at()))
            .c_str(),
        FormatCount(w.tokens_per_s()).c_str(),
        static_cast<long long>(w.rounds_done()));
  }
  return absl::OkStatus();
}

absl::Status Export(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(CheckOptions(
      line, {"output", "keep_ratio", "seed", "correction", "format"}));
  TWIST_ASSIGN_OR_RETURN(int64_t id, JobIdArgument(line));
  const std::string output = line.Get("output");
  const std::string format = line.Get("format", "nanogpt");
  if (output.empty() || (format != "nanogpt" && format != "hf")) {
    return absl::InvalidArgumentError(
        "usage: twistctl export JOB --output=FILE.safetensors "
        "[--keep_ratio=0.5 --seed=1] [--correction], or --format=hf "
        "--output=FOLDER (model.safetensors and config.json with Hugging Face "
        "GPT-2's names)");
  }
  twist::v1::ExportModelRequest request;
  request.set_job_id(id);
  TWIST_ASSIGN_OR_RETURN(double keep, line.GetDouble("keep_ratio", 1.0));
  TWIST_ASSIGN_OR_RETURN(int64_t seed, line.GetInt("seed", 1));
  request.set_keep_ratio(keep);
  request.set_seed(static_cast<uint64_t>(seed));
  TWIST_ASSIGN_OR_RETURN(bool correction, line.GetBool("correction", false));
  request.set_shift_correction(correction);
  TWIST_ASSIGN_OR_RETURN(Client stub, Client::Open(line));
  grpc::ClientContext context;
  stub.Prepare(&context, 3600);
  // Read on a raw stream, so chunks are decoded in place and copied once,
  // into the tensors (common/rpc/tensor_streams.h).
  auto reader = common::OpenServerStream(stub.channel(),
                                         common::ExportModelPath(), &context,
                                         common::ToByteBuffer(request));
  common::TensorStreamReader stream(reader.get(), common::kExportChunkField,
                                    "export stream");
  twist::v1::ExportMessage message;
  absl::StatusOr<bool> started = stream.ReadHeader(&message);
  if (!started.ok() || !*started) {
    absl::Status s = Rpc(line, reader->Finish());
    if (!s.ok()) return s;
    return started.ok()
               ? absl::DataLossError("export stream ended before its header")
               : started.status();
  }
  const twist::v1::ExportHeader header = message.header();
  TWIST_ASSIGN_OR_RETURN(
      common::NamedTensors tensors,
      common::AllocateTensors(header.tensors(), int64_t{1} << 40));
  common::ChunkAssembler assembler(tensors);
  TWIST_RETURN_IF_ERROR(stream.ReadChunks(&assembler));
  TWIST_RETURN_IF_ERROR(Rpc(line, reader->Finish()));
  TWIST_RETURN_IF_ERROR(assembler.Finish());
  common::Metadata metadata(header.metadata().begin(), header.metadata().end());
  TWIST_RETURN_IF_ERROR(
      format == "hf"
          ? common::WriteHuggingFaceModel(output, assembler.tensors(), metadata)
          : common::WriteSafetensors(output, assembler.tensors(), metadata));
  std::printf("exported job %lld (%s, %lld parameters) to %s\n",
              static_cast<long long>(id),
              keep > 0 && keep < 1
                  ? absl::StrCat("subnetwork keeping ", keep).c_str()
                  : "full model",
              static_cast<long long>(header.parameters()), output.c_str());
  return absl::OkStatus();
}

const char* Usage() {
  static const std::string* usage = new std::string(absl::StrCat(
      R"(twistctl: the TwIST client

usage: twistctl [--coordinator=HOST:PORT] [--token_file=FILE] [--tls_ca=FILE]
                COMMAND [ARGS] [--option=value ...]
  (the coordinator defaults to 127.0.0.1:7070; --token_file holds the client
  token of a coordinator with authentication, --tls_ca the CA of its
  certificate, --tls_cert/--tls_key a client certificate)

commands:
  prepare --input=FILE_OR_DIR --output=DIR [--val_fraction=0.1] [--strip_tags]
          [--tokenizer=bytes|gpt2] [--tokenizer_dir=DIR]
      text to train.bin / val.bin / meta.json; gpt2 is GPT-2's byte-pair
      encoding, its files in --tokenizer_dir (default data/tokenizers/gpt2,
      fetched by deploy/fetch-tokenizer.sh)
  submit [--spec=FILE] [--data=DIR] [--watch] [spec options]
      queue a job; spec options override the file (see deploy/examples/ and
      docs/job-spec.md for what each means and its default):
)",
      common::SpecOptionsUsage(6, 80),
      R"(  list                      jobs, newest first
  status JOB [--json]       one job and its rounds
  watch JOB                 a live progress bar until the job ends
  cancel JOB
  workers                   workers, live first
  export JOB --output=FILE [--keep_ratio=R --seed=S] [--correction] [--format=hf]
      the model (or a random subnetwork keeping R of each layer's units) as safetensors;
      --correction folds the dropped units' mean output into the biases instead of scaling;
      --format=hf writes FILE as a folder: Hugging Face GPT-2's model.safetensors and config.json
  generate --model=FILE [--prompt=TEXT] [--tokens=200] [--temperature=0.8] [--top_k=40]
           [--tokenizer=bytes|gpt2] [--tokenizer_dir=DIR]
      sample text from an exported model (its tokenizer from the file's metadata)
)"));
  return usage->c_str();
}

}  // namespace twist::client
