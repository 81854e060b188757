// twist-coordinator: holds the full models, the job queue and the round loop;
// serves the gRPC API (jobs and workers) and the HTTP status endpoint.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/free_memory.h"
#include "common/base/status_macros.h"
#include "common/ist/slice_kernels.h"
#include "common/rpc/auth.h"
#include "common/rpc/security.h"
#include "common/rpc/rpc_util.h"
#include "common/model/threads.h"
#include "coordinator/http_status.h"
#include "coordinator/incarnation.h"
#include "coordinator/job_manager.h"
#include "coordinator/job_service.h"
#include "coordinator/job_store.h"
#include "coordinator/state_lock.h"
#include "coordinator/worker_registry.h"
#include "coordinator/worker_service.h"
#include "coordinator/worker_transfer_service.h"
#include "glog/logging.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070",
          "gRPC address (host:port) for jobs and workers");
ABSL_FLAG(std::string, http, "127.0.0.1:8080",
          "HTTP status address (host:port): dashboard, /api/v1, /metrics; "
          "empty disables");
ABSL_FLAG(
    std::string, state_dir, "twist-state",
    "folder for jobs.db, checkpoints and trained models (created if missing)");
ABSL_FLAG(int, threads, 0,
          "LibTorch threads for merging and evaluation (0: all cores)");
ABSL_FLAG(double, heartbeat_interval_s, 1.0, "how often workers heartbeat");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve gRPC and HTTP over TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: verify client certificates against it (mutual TLS)");
ABSL_FLAG(bool, require_worker_cert, false,
          "workers must present a certificate signed by --tls_client_ca");
ABSL_FLAG(std::string, client_token_file, "",
          "file holding the bearer token of job clients (twistctl); turns "
          "authentication on");
ABSL_FLAG(std::string, worker_token_file, "",
          "file holding the bearer token of workers; turns authentication on");
ABSL_FLAG(bool, insecure, false,
          "allow listening beyond loopback without TLS and tokens (trusted "
          "networks only)");
ABSL_FLAG(int, max_watchers, 64,
          "WatchJob streams served at once; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_rpc_threads, 512,
          "threads the gRPC server may use for calls in flight (each long-poll "
          "of a worker and each watcher holds one); calls beyond get "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(double, heartbeat_timeout_s, 10.0,
          "a worker silent this long is dropped from its round and from the "
          "live set");

// jemalloc's settings (ignored by other allocators; common/base/
// free_memory.h). The coordinator's large tensors live in its model and its
// round pool; what else it frees (gRPC's buffers, evaluation's activations)
// goes back to the system within about a second, blocks of 8 MB and more at
// once (jemalloc's default), so its peak is what it holds.
extern "C" const char* malloc_conf =
    "dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true";

namespace {

namespace tc = twist::coordinator;

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

int Fail(const absl::Status& status) {
  LOG(ERROR) << status.message();
  std::fprintf(stderr, "twist-coordinator: %s\n",
               std::string(status.message()).c_str());
  return 1;
}

// The state directory, locked before anything in it is read or written.
struct State {
  std::unique_ptr<tc::StateLock> lock;
  uint64_t incarnation = 0;
  std::unique_ptr<tc::JobStore> store;
};

absl::StatusOr<State> OpenState(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create --state_dir ", state_dir, ": ", ec.message()));
  }
  State state;
  TWIST_ASSIGN_OR_RETURN(state.lock, tc::StateLock::Acquire(state_dir));
  TWIST_ASSIGN_OR_RETURN(state.incarnation, tc::NextIncarnation(state_dir));
  TWIST_ASSIGN_OR_RETURN(state.store,
                         tc::JobStore::Open(state_dir + "/jobs.db"));
  return state;
}

twist::common::ExposureOptions ExposureOptionsFromFlags() {
  twist::common::ExposureOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.http = absl::GetFlag(FLAGS_http);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  twist::common::ServerSecurity& security = options.security;
  security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  security.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  security.require_worker_cert = absl::GetFlag(FLAGS_require_worker_cert);
  security.client_token_file = absl::GetFlag(FLAGS_client_token_file);
  security.worker_token_file = absl::GetFlag(FLAGS_worker_token_file);
  return options;
}

// The gRPC server with the services on --listen; `port` gets the bound port.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpc(
    const std::shared_ptr<grpc::ServerCredentials>& credentials,
    const std::vector<grpc::Service*>& services, int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  twist::common::ConfigureServerBuilder(&builder);
  grpc::ResourceQuota quota("twist-coordinator");
  quota.SetMaxThreads(absl::GetFlag(FLAGS_max_rpc_threads));
  builder.SetResourceQuota(quota);
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), credentials, port);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on --listen=", absl::GetFlag(FLAGS_listen),
                     ": the port is taken or the address is not local"));
  }
  return server;
}

// The HTTP status endpoint on --http, not started yet.
std::unique_ptr<tc::HttpStatusServer> MakeHttp(
    const twist::common::Exposure& exposure,
    const twist::common::ServerSecurity& security, tc::JobManager* jobs,
    tc::WorkerRegistry* registry, const twist::common::TokenAuthenticator* tokens) {
  tc::HttpStatusServer::Options options;
  options.host = exposure.http_host;
  options.port = exposure.http_port;
  options.insecure = exposure.insecure;
  options.tls_cert_file = security.tls_cert_file;
  options.tls_key_file = security.tls_key_file;
  return std::make_unique<tc::HttpStatusServer>(options, jobs, registry,
                                                tokens);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "twist-coordinator --listen=HOST:PORT --http=HOST:PORT --state_dir=DIR\n"
      "Runs TwIST jobs over the workers that join it.");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  twist::common::ConfigureThreads(absl::GetFlag(FLAGS_threads));

  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  absl::StatusOr<State> state = OpenState(state_dir);
  if (!state.ok()) return Fail(state.status());
  tc::WorkerRegistry::Options registry_options;
  registry_options.heartbeat_interval_s =
      absl::GetFlag(FLAGS_heartbeat_interval_s);
  registry_options.heartbeat_timeout_s =
      absl::GetFlag(FLAGS_heartbeat_timeout_s);
  tc::WorkerRegistry registry(registry_options);
  tc::JobManager::Options manager_options;
  manager_options.state_dir = state_dir;
  manager_options.incarnation = state->incarnation;
  tc::JobManager jobs(manager_options, state->store.get(), &registry);

  // Security: TLS when a certificate is given, tokens when token files are,
  // and nothing but loopback without both unless --insecure says so.
  const twist::common::ExposureOptions exposure_options =
      ExposureOptionsFromFlags();
  const twist::common::ServerSecurity& security = exposure_options.security;
  absl::StatusOr<twist::common::TokenAuthenticator> tokens =
      twist::common::TokenAuthenticator::FromFiles(security.client_token_file,
                                                   security.worker_token_file);
  if (!tokens.ok()) return Fail(tokens.status());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      twist::common::MakeServerCredentials(security);
  if (!credentials.ok()) return Fail(credentials.status());
  absl::StatusOr<twist::common::Exposure> exposure =
      twist::common::ExposureFor(exposure_options);
  if (!exposure.ok()) return Fail(exposure.status());
  if (exposure->insecure) LOG(WARNING) << exposure->warning;
  const twist::common::CallAuthorizer authorizer(*tokens,
                                                 security.require_worker_cert);

  tc::JobServiceImpl job_service(&jobs, &registry, &authorizer,
                                 absl::GetFlag(FLAGS_max_watchers));
  tc::WorkerServiceImpl worker_service(&registry, state->incarnation,
                                       &authorizer);
  tc::WorkerTransferService worker_transfer(
      &registry, jobs.board(), &authorizer,
      tc::WorkerTransferService::Options());
  int grpc_port = 0;
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = StartGrpc(
      *credentials, {&job_service, &worker_service, &worker_transfer},
      &grpc_port);
  if (!server.ok()) return Fail(server.status());

  std::unique_ptr<tc::HttpStatusServer> http;
  if (exposure->serve_http) {
    http = MakeHttp(*exposure, security, &jobs, &registry, &*tokens);
    if (absl::Status s = http->Start(); !s.ok()) return Fail(s);
  }
  if (absl::Status s = jobs.Start(); !s.ok()) return Fail(s);

  LOG(INFO) << "twist-coordinator incarnation " << state->incarnation
            << " serving gRPC on " << exposure->listen_host << ":" << grpc_port
            << (http ? absl::StrCat(", HTTP on http://", exposure->http_host,
                                    ":", http->port(), "/")
                     : std::string())
            << ", state in " << state_dir << ", "
            << twist::common::AllocatorName() << ", merging on "
            << twist::common::ParallelForThreads() << " thread(s) with "
            << twist::common::KernelIsaName(
                   twist::common::ActiveKernelIsa())
            << " kernels";
  // Scripts read the bound ports from this line (useful with port 0).
  std::printf("twist-coordinator ready grpc_port=%d http_port=%d\n", grpc_port,
              http ? http->port() : 0);
  std::fflush(stdout);

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  while (!g_stop.load()) absl::SleepFor(absl::Milliseconds(100));
  LOG(INFO) << "stopping";
  jobs.Stop();
  (*server)->Shutdown(twist::common::DeadlineIn(5));
  if (http) http->Stop();
  return 0;
}
