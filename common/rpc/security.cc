#include "common/rpc/security.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/rpc_util.h"
#include "common/base/status_macros.h"

namespace twist::common {

void Connection::Authorize(grpc::ClientContext* context) const {
  if (!bearer.empty()) context->AddMetadata("authorization", bearer);
}

absl::StatusOr<Connection> Connect(const std::string& target,
                                   const ClientSecurity& security) {
  Connection out;
  if (!security.token_file.empty()) {
    TWIST_ASSIGN_OR_RETURN(std::string token,
                           ReadTokenFile(security.token_file));
    out.bearer = absl::StrCat("Bearer ", token);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!security.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions options;
    TWIST_ASSIGN_OR_RETURN(options.pem_root_certs,
                           ReadCredentialFile("tls_ca", security.tls_ca_file));
    if (!security.tls_cert_file.empty()) {
      TWIST_ASSIGN_OR_RETURN(
          options.pem_cert_chain,
          ReadCredentialFile("tls_cert", security.tls_cert_file));
      TWIST_ASSIGN_OR_RETURN(
          options.pem_private_key,
          ReadCredentialFile("tls_key", security.tls_key_file));
    }
    credentials = grpc::SslCredentials(options);
  } else if (!security.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert needs --tls_ca (the CA that signed the coordinator's "
        "certificate)");
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  out.target = target;
  out.credentials = credentials;
  out.channel = out.NewChannel();
  return out;
}

std::shared_ptr<grpc::Channel> Connection::NewChannel() const {
  grpc::ChannelArguments args = DefaultChannelArguments();
  // Its own subchannel, not one shared through gRPC's global pool (which a
  // channel to the same target would otherwise reuse, state and all).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, credentials, args);
}

absl::Status CheckServerSecurity(const ServerSecurity& security) {
  if (!security.tls()) {
    if (!security.tls_client_ca_file.empty() || security.require_worker_cert) {
      return absl::InvalidArgumentError(
          "--tls_client_ca and --require_worker_cert need TLS: give --tls_cert "
          "and --tls_key");
    }
    return absl::OkStatus();
  }
  if (security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert needs --tls_key (its private key)");
  }
  if (security.tls_client_ca_file.empty() && security.require_worker_cert) {
    return absl::InvalidArgumentError(
        "--require_worker_cert needs --tls_client_ca (the CA of the workers' "
        "certificates)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security) {
  TWIST_RETURN_IF_ERROR(CheckServerSecurity(security));
  if (!security.tls()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      security.tls_client_ca_file.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          // Clients (twistctl) may come without a certificate; one that is
          // presented must verify. Workers are held to it per call.
          : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  TWIST_ASSIGN_OR_RETURN(
      pair.cert_chain, ReadCredentialFile("tls_cert", security.tls_cert_file));
  TWIST_ASSIGN_OR_RETURN(pair.private_key,
                         ReadCredentialFile("tls_key", security.tls_key_file));
  options.pem_key_cert_pairs.push_back(pair);
  if (!security.tls_client_ca_file.empty()) {
    TWIST_ASSIGN_OR_RETURN(
        options.pem_root_certs,
        ReadCredentialFile("tls_client_ca", security.tls_client_ca_file));
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<Exposure> ExposureFor(const ExposureOptions& options) {
  const ServerSecurity& security = options.security;
  TWIST_RETURN_IF_ERROR(CheckServerSecurity(security));
  const bool tokens = !security.client_token_file.empty() ||
                      !security.worker_token_file.empty();
  const bool protected_ = security.tls() && tokens;
  Exposure out;
  out.serve_http = !options.http.empty();
  struct Address {
    const char* flag;
    const std::string& address;
    std::string* host;
    int* port;
  };
  for (const Address& a :
       {Address{"listen", options.listen, &out.listen_host, &out.listen_port},
        Address{"http", options.http, &out.http_host, &out.http_port}}) {
    if (a.address.empty()) continue;
    if (!SplitHostPort(a.address, a.host, a.port)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", a.flag, "=", a.address, " is not HOST:PORT"));
    }
    if (IsLoopbackHost(*a.host) || protected_) continue;
    if (!options.insecure) {
      return absl::FailedPreconditionError(
          absl::StrCat("refusing to listen on --", a.flag, "=", a.address,
                       " without TLS and tokens: anyone on the network could "
                       "submit jobs or pose as a "
                       "worker. Give --tls_cert/--tls_key and "
                       "--client_token_file/--worker_token_file "
                       "(see docs/security.md), or pass --insecure on a "
                       "network you trust"));
    }
    out.insecure = true;
  }
  if (out.insecure) {
    out.warning = absl::StrCat(
        "--insecure: listening beyond loopback without ",
        security.tls() ? "" : "TLS", !security.tls() && !tokens ? " and " : "",
        tokens ? "" : "tokens",
        "; anyone who reaches these ports can submit jobs and join as a "
        "worker");
  }
  return out;
}

grpc::Status CallAuthorizer::Authorize(const grpc::ServerContext* context,
                                       Role role) const {
  if (role == Role::kWorker && require_worker_cert_) {
    auto auth = context->auth_context();
    if (!auth || !auth->IsPeerAuthenticated()) {
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          "workers must present a client certificate signed by the "
          "coordinator's --tls_client_ca");
    }
  }
  if (!tokens_.enabled()) return grpc::Status::OK;
  std::string authorization;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end())
    authorization.assign(it->second.data(), it->second.size());
  return ToGrpcStatus(tokens_.Check(authorization, role));
}

}  // namespace twist::common
