#include "common/rpc/auth.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/sha256.h"

namespace twist::common {
namespace {

std::string Digest(absl::string_view text) { return Sha256Hex(text); }

bool SameDigest(const std::string& a, const std::string& b) {
  return a.size() == b.size() && !a.empty() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::Status FileError(const std::string& what, const std::string& path) {
  const int err = errno;
  const std::string message =
      absl::StrCat("cannot read ", what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES) return absl::PermissionDeniedError(message);
  return absl::FailedPreconditionError(message);
}

}  // namespace

const char* RoleName(Role role) {
  return role == Role::kClient ? "client" : "worker";
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return FileError("token file", path);
  std::string line;
  std::getline(in, line);
  const std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path,
                     " is empty: put the token on its first line "
                     "(e.g. `openssl rand -hex 32 > ",
                     path, "`)"));
  }
  return token;
}

absl::StatusOr<std::string> ReadCredentialFile(const std::string& flag,
                                               const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return FileError(absl::StrCat("--", flag), path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TokenAuthenticator::TokenAuthenticator(std::string client_token,
                                       std::string worker_token)
    : enabled_(true),
      client_digest_(client_token.empty() ? "" : Digest(client_token)),
      worker_digest_(worker_token.empty() ? "" : Digest(worker_token)) {}

absl::StatusOr<TokenAuthenticator> TokenAuthenticator::FromFiles(
    const std::string& client_token_file,
    const std::string& worker_token_file) {
  if (client_token_file.empty() && worker_token_file.empty())
    return TokenAuthenticator();
  std::string client, worker;
  if (!client_token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(client_token_file);
    if (!t.ok()) return t.status();
    client = *t;
  }
  if (!worker_token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(worker_token_file);
    if (!t.ok()) return t.status();
    worker = *t;
  }
  if (!client.empty() && client == worker) {
    return absl::InvalidArgumentError(
        "the client and worker tokens are the same: give each role its own "
        "token, "
        "or a worker could submit and cancel jobs");
  }
  return TokenAuthenticator(client, worker);
}

absl::Status TokenAuthenticator::Check(absl::string_view authorization,
                                       Role role) const {
  if (!enabled_) return absl::OkStatus();
  if (!absl::ConsumePrefix(&authorization, "Bearer ") ||
      authorization.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("this coordinator requires a ", RoleName(role),
                     " token: pass --token_file=FILE holding it"));
  }
  const std::string digest = Digest(authorization);
  const std::string& wanted =
      role == Role::kClient ? client_digest_ : worker_digest_;
  const std::string& other =
      role == Role::kClient ? worker_digest_ : client_digest_;
  // Both comparisons always run, so timing does not tell which matched.
  const bool is_wanted = SameDigest(digest, wanted);
  const bool is_other = SameDigest(digest, other);
  if (is_wanted) return absl::OkStatus();
  if (is_other) {
    return absl::PermissionDeniedError(absl::StrCat(
        "a ", RoleName(role == Role::kClient ? Role::kWorker : Role::kClient),
        " token cannot make ", RoleName(role), " calls"));
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "the ", RoleName(role), " token is not valid for this coordinator"));
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (absl::StartsWith(h, "[") && absl::EndsWith(h, "]"))
    h = h.substr(1, h.size() - 2);
  return h == "localhost" || h == "::1" || absl::StartsWith(h, "127.");
}

bool SplitHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = address.substr(0, colon);
  return absl::SimpleAtoi(address.substr(colon + 1), port) && *port >= 0 &&
         *port < 65536;
}

}  // namespace twist::common
