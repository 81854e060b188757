// The coordinator's HTTP status endpoint: the dashboard at /, JSON under
// /api/v1/, Prometheus text at /metrics and /healthz for probes. Read-only;
// it serves what the JobManager and WorkerRegistry hold.
#ifndef TWIST_COORDINATOR_HTTP_STATUS_H_
#define TWIST_COORDINATOR_HTTP_STATUS_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "common/rpc/auth.h"
#include "coordinator/job_manager.h"
#include "coordinator/worker_registry.h"

namespace httplib {
class Server;
}

namespace twist::coordinator {

class HttpStatusServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 8080;            // 0 picks a free port
    bool insecure = false;      // shown on the dashboard as a warning
    std::string tls_cert_file;  // with tls_key_file: HTTPS
    std::string tls_key_file;
  };

  // `jobs`, `registry` and `tokens` must outlive the server. With tokens
  // enabled, /api/ and /metrics need the client token (an
  // "Authorization: Bearer" header, or ?token= for tools that cannot send
  // headers); / and /healthz stay open.
  HttpStatusServer(Options options, JobManager* jobs, WorkerRegistry* registry,
                   const common::TokenAuthenticator* tokens);
  ~HttpStatusServer();

  // Binds and starts serving on a thread of its own. FailedPrecondition when
  // the certificate or key cannot be loaded.
  absl::Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  void Routes();

  const Options options_;
  JobManager* const jobs_;
  WorkerRegistry* const registry_;
  const common::TokenAuthenticator* const tokens_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// The dashboard page (coordinator/dashboard.html, embedded at build time).
extern const char kDashboardHtml[];

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_HTTP_STATUS_H_
