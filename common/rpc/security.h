// TLS credentials and bearer tokens on gRPC channels and servers, shared by
// the coordinator, the worker and twistctl.
#ifndef TWIST_COMMON_RPC_SECURITY_H_
#define TWIST_COMMON_RPC_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/rpc/auth.h"

namespace twist::common {

// How a client (twistctl or a worker) reaches the coordinator.
struct ClientSecurity {
  std::string token_file;  // bearer token of the client's role
  std::string
      tls_ca_file;  // CA that signed the coordinator's certificate: TLS on
  std::string tls_cert_file;  // the client's own certificate (mutual TLS)
  std::string tls_key_file;
};

// A channel plus the token every call must carry.
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::string bearer;  // "Bearer <token>" or empty
  std::string target;
  std::shared_ptr<grpc::ChannelCredentials> credentials;

  // Adds the token to a call (no-op without one).
  void Authorize(grpc::ClientContext* context) const;

  // A new channel to the same target with the same credentials and a
  // connection of its own: what a long-lived client switches to when its
  // channel stays unavailable after the server restarted (gRPC's reconnect
  // of the old one can lag the server's return by seconds).
  std::shared_ptr<grpc::Channel> NewChannel() const;
};

absl::StatusOr<Connection> Connect(const std::string& target,
                                   const ClientSecurity& security);

// How the coordinator serves.
struct ServerSecurity {
  std::string tls_cert_file;  // with tls_key_file: TLS on
  std::string tls_key_file;
  std::string tls_client_ca_file;  // verify client certificates against this CA
  bool require_worker_cert =
      false;  // workers must present a verified certificate
  std::string client_token_file;
  std::string worker_token_file;

  bool tls() const { return !tls_cert_file.empty(); }
};

// The combinations of TLS flags the coordinator accepts, checked without
// reading any file: --tls_client_ca and --require_worker_cert need TLS,
// --tls_cert needs --tls_key, --require_worker_cert needs --tls_client_ca.
// InvalidArgument naming the flags otherwise.
absl::Status CheckServerSecurity(const ServerSecurity& security);

// CheckServerSecurity, then the credentials with the files read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security);

// Where the coordinator listens, as its flags give it.
struct ExposureOptions {
  std::string listen;  // gRPC HOST:PORT (--listen)
  std::string http;    // HTTP HOST:PORT (--http); empty: no HTTP endpoint
  ServerSecurity security;  // TLS on with tls_cert_file, tokens with either
                            // token file
  bool insecure = false;    // --insecure
};

// How it may serve, by ExposureFor.
struct Exposure {
  std::string listen_host;  // the parts of ExposureOptions::listen
  int listen_port = 0;
  bool serve_http = false;  // ExposureOptions::http was given
  std::string http_host;    // its parts, when serve_http
  int http_port = 0;
  // An address beyond loopback without both TLS and tokens, allowed only by
  // --insecure; `warning` then says what is missing, for the log.
  bool insecure = false;
  std::string warning;
};

// The coordinator's exposure policy, decided from the flags alone (no file
// is read and nothing listens). Loopback addresses (IsLoopbackHost) are
// always allowed; any other address needs TLS and tokens both, or
// --insecure. Errors, in this order: the TLS flag combinations
// (CheckServerSecurity); then for --listen and --http in turn,
// InvalidArgument for an address that is not HOST:PORT and
// FailedPrecondition for one beyond loopback without TLS and tokens when
// --insecure is not given.
absl::StatusOr<Exposure> ExposureFor(const ExposureOptions& options);

// Checks each call of a service for its role: the bearer token and, for
// workers when required, a verified client certificate.
class CallAuthorizer {
 public:
  CallAuthorizer() = default;
  CallAuthorizer(TokenAuthenticator tokens, bool require_worker_cert)
      : tokens_(std::move(tokens)), require_worker_cert_(require_worker_cert) {}

  grpc::Status Authorize(const grpc::ServerContext* context, Role role) const;
  bool enabled() const { return tokens_.enabled(); }

 private:
  TokenAuthenticator tokens_;
  bool require_worker_cert_ = false;
};

// One service's authorization: the role its every call needs, checked by
// the CallAuthorizer. Each RPC handler starts with
//   if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
class CallGuard {
 public:
  // `authorizer` must outlive the guard.
  CallGuard(const CallAuthorizer* authorizer, Role role)
      : authorizer_(authorizer), role_(role) {}

  grpc::Status Check(const grpc::ServerContext* context) const {
    return authorizer_->Authorize(context, role_);
  }

 private:
  const CallAuthorizer* const authorizer_;
  const Role role_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_RPC_SECURITY_H_
