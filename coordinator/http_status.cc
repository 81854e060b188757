#include "coordinator/http_status.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "coordinator/prometheus_text.h"
#include "coordinator/status_json.h"

namespace twist::coordinator {
namespace {

void SendJson(httplib::Response& res, const nlohmann::json& body,
              int status = 200) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(), "application/json");
}

void SendError(httplib::Response& res, const absl::Status& status) {
  int http = 500;
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      http = 404;
      break;
    case absl::StatusCode::kInvalidArgument:
      http = 400;
      break;
    default:
      break;
  }
  SendJson(res, {{"error", std::string(status.message())}}, http);
}

}  // namespace

HttpStatusServer::HttpStatusServer(Options options, JobManager* jobs,
                                   WorkerRegistry* registry,
                                   const common::TokenAuthenticator* tokens)
    : options_(std::move(options)),
      jobs_(jobs),
      registry_(registry),
      tokens_(tokens),
      server_(options_.tls_cert_file.empty()
                  ? std::make_unique<httplib::Server>()
                  : std::make_unique<httplib::SSLServer>(
                        options_.tls_cert_file.c_str(),
                        options_.tls_key_file.c_str())) {}

HttpStatusServer::~HttpStatusServer() { Stop(); }

void HttpStatusServer::Routes() {
  // Data needs the client token when tokens are on; the page and the probe
  // do not.
  server_->set_pre_routing_handler([this](const httplib::Request& req,
                                          httplib::Response& res) {
    if (req.path == "/" || req.path == "/healthz" || !tokens_->enabled()) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    std::string authorization = req.get_header_value("Authorization");
    if (authorization.empty() && req.has_param("token")) {
      authorization = "Bearer " + req.get_param_value("token");
    }
    const absl::Status s = tokens_->Check(authorization, common::Role::kClient);
    if (s.ok()) return httplib::Server::HandlerResponse::Unhandled;
    SendJson(res, {{"error", std::string(s.message())}},
             s.code() == absl::StatusCode::kPermissionDenied ? 403 : 401);
    return httplib::Server::HandlerResponse::Handled;
  });
  server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kDashboardHtml, "text/html; charset=utf-8");
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get(
      "/api/v1/jobs", [this](const httplib::Request&, httplib::Response& res) {
        absl::StatusOr<std::vector<twist::v1::Job>> jobs = jobs_->List();
        if (!jobs.ok()) return SendError(res, jobs.status());
        nlohmann::json list = nlohmann::json::array();
        for (const auto& job : *jobs) list.push_back(JobSummaryJson(job));
        SendJson(res, {{"insecure", options_.insecure}, {"jobs", list}});
      });
  server_->Get(R"(/api/v1/jobs/(\d+))", [this](const httplib::Request& req,
                                               httplib::Response& res) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(req.matches[1].str(), &id)) {
      return SendError(res, absl::InvalidArgumentError("bad job id"));
    }
    absl::StatusOr<twist::v1::Job> job =
        jobs_->Get(id, /*include_rounds=*/true);
    if (!job.ok()) return SendError(res, job.status());
    SendJson(res, JobDetailJson(*job, registry_->AllWorkers()));
  });
  server_->Get("/api/v1/workers",
               [this](const httplib::Request&, httplib::Response& res) {
                 nlohmann::json list = nlohmann::json::array();
                 for (const auto& w : registry_->AllWorkers())
                   list.push_back(WorkerJson(w));
                 SendJson(res, {{"workers", list}, {"now", common::NowSeconds()}});
               });
  server_->Get(
      "/metrics", [this](const httplib::Request&, httplib::Response& res) {
        absl::StatusOr<std::vector<twist::v1::Job>> jobs = jobs_->List();
        if (!jobs.ok()) return SendError(res, jobs.status());
        res.set_content(
            PrometheusText(*jobs, registry_->AllWorkers(), jobs_->incarnation(),
                           jobs_->stale_updates()),
            "text/plain; version=0.0.4; charset=utf-8");
      });
}

absl::Status HttpStatusServer::Start() {
  if (!server_->is_valid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot serve HTTPS with --tls_cert=", options_.tls_cert_file,
        " and --tls_key=", options_.tls_key_file,
        ": the files are missing or are not a matching PEM pair"));
  }
  Routes();
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
  } else {
    port_ = server_->bind_to_port(options_.host, options_.port) ? options_.port
                                                                : -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen for HTTP on ", options_.host, ":", options_.port,
        ": the port is taken or the address is not local; choose another "
        "--http"));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void HttpStatusServer::Stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

}  // namespace twist::coordinator
