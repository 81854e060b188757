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

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

int Fail(const absl::Status& status) {
  LOG(ERROR) << status.message();
  std::fprintf(stderr, "twist-coordinator: %s\n",
               std::string(status.message()).c_str());
  return 1;
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

  namespace tc = twist::coordinator;
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "cannot create --state_dir ", state_dir, ": ", ec.message())));
  }
  // Before anything in the folder is read or written.
  absl::StatusOr<std::unique_ptr<tc::StateLock>> lock =
      tc::StateLock::Acquire(state_dir);
  if (!lock.ok()) return Fail(lock.status());
  absl::StatusOr<uint64_t> incarnation = tc::NextIncarnation(state_dir);
  if (!incarnation.ok()) return Fail(incarnation.status());
  absl::StatusOr<std::unique_ptr<tc::JobStore>> store =
      tc::JobStore::Open(state_dir + "/jobs.db");
  if (!store.ok()) return Fail(store.status());

  tc::WorkerRegistry::Options registry_options;
  registry_options.heartbeat_interval_s =
      absl::GetFlag(FLAGS_heartbeat_interval_s);
  registry_options.heartbeat_timeout_s =
      absl::GetFlag(FLAGS_heartbeat_timeout_s);
  tc::WorkerRegistry registry(registry_options);

  tc::JobManager::Options manager_options;
  manager_options.state_dir = state_dir;
  manager_options.incarnation = *incarnation;
  tc::JobManager jobs(manager_options, store->get(), &registry);

  // Security: TLS when a certificate is given, tokens when token files are,
  // and nothing but loopback without both unless --insecure says so.
  twist::common::ServerSecurity security;
  security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  security.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  security.require_worker_cert = absl::GetFlag(FLAGS_require_worker_cert);
  absl::StatusOr<twist::common::TokenAuthenticator> tokens =
      twist::common::TokenAuthenticator::FromFiles(
          absl::GetFlag(FLAGS_client_token_file),
          absl::GetFlag(FLAGS_worker_token_file));
  if (!tokens.ok()) return Fail(tokens.status());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      twist::common::MakeServerCredentials(security);
  if (!credentials.ok()) return Fail(credentials.status());
  const bool protected_ = security.tls() && tokens->enabled();
  bool exposed = false;  // listening beyond loopback without TLS and tokens
  for (const auto& [flag, address] :
       {std::pair<std::string, std::string>{"listen",
                                            absl::GetFlag(FLAGS_listen)},
        {"http", absl::GetFlag(FLAGS_http)}}) {
    if (address.empty()) continue;
    std::string host;
    int port = 0;
    if (!twist::common::SplitHostPort(address, &host, &port)) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--", flag, "=", address, " is not HOST:PORT")));
    }
    if (twist::common::IsLoopbackHost(host) || protected_) continue;
    if (!absl::GetFlag(FLAGS_insecure)) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("refusing to listen on --", flag, "=", address,
                       " without TLS and tokens: anyone on the network could "
                       "submit jobs or pose as a "
                       "worker. Give --tls_cert/--tls_key and "
                       "--client_token_file/--worker_token_file "
                       "(see docs/security.md), or pass --insecure on a "
                       "network you trust")));
    }
    exposed = true;
  }
  if (exposed) {
    LOG(WARNING) << "--insecure: listening beyond loopback without "
                 << (security.tls() ? "" : "TLS")
                 << (!security.tls() && !tokens->enabled() ? " and " : "")
                 << (tokens->enabled() ? "" : "tokens")
                 << "; anyone who reaches these ports can submit jobs and join "
                    "as a worker";
  }
  const twist::common::CallAuthorizer authorizer(*tokens,
                                                 security.require_worker_cert);

  tc::JobServiceImpl job_service(&jobs, &registry, &authorizer,
                                 absl::GetFlag(FLAGS_max_watchers));
  tc::WorkerServiceImpl worker_service(&registry, *incarnation, &authorizer);
  tc::WorkerTransferService worker_transfer(
      &registry, jobs.board(), &authorizer,
      tc::WorkerTransferService::Options());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  twist::common::ConfigureServerBuilder(&builder);
  grpc::ResourceQuota quota("twist-coordinator");
  quota.SetMaxThreads(absl::GetFlag(FLAGS_max_rpc_threads));
  builder.SetResourceQuota(quota);
  int grpc_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), *credentials,
                           &grpc_port);
  builder.RegisterService(&job_service);
  builder.RegisterService(&worker_service);
  builder.RegisterService(&worker_transfer);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen on --listen=", absl::GetFlag(FLAGS_listen),
                     ": the port is taken or the address is not local")));
  }

  std::unique_ptr<tc::HttpStatusServer> http;
  if (!absl::GetFlag(FLAGS_http).empty()) {
    tc::HttpStatusServer::Options http_options;
    twist::common::SplitHostPort(absl::GetFlag(FLAGS_http), &http_options.host,
                                 &http_options.port);  // checked above
    http_options.insecure = exposed;
    http_options.tls_cert_file = security.tls_cert_file;
    http_options.tls_key_file = security.tls_key_file;
    http = std::make_unique<tc::HttpStatusServer>(http_options, &jobs,
                                                  &registry, &*tokens);
    if (absl::Status s = http->Start(); !s.ok()) return Fail(s);
  }
  if (absl::Status s = jobs.Start(); !s.ok()) return Fail(s);

  std::string listen_host;
  int unused = 0;
  twist::common::SplitHostPort(absl::GetFlag(FLAGS_listen), &listen_host,
                               &unused);
  LOG(INFO) << "twist-coordinator incarnation " << *incarnation
            << " serving gRPC on " << listen_host << ":" << grpc_port
            << (http ? absl::StrCat(
                           ", HTTP on http://",
                           absl::GetFlag(FLAGS_http)
                               .substr(0, absl::GetFlag(FLAGS_http).rfind(':')),
                           ":", http->port(), "/")
                     : std::string())
            << ", state in " << state_dir;
  // Scripts read the bound ports from this line (useful with port 0).
  std::printf("twist-coordinator ready grpc_port=%d http_port=%d\n", grpc_port,
              http ? http->port() : 0);
  std::fflush(stdout);

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  while (!g_stop.load()) absl::SleepFor(absl::Milliseconds(100));
  LOG(INFO) << "stopping";
  jobs.Stop();
  server->Shutdown(twist::common::DeadlineIn(5));
  if (http) http->Stop();
  return 0;
}
