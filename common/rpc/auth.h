// Bearer tokens and TLS settings. Two roles hold separate tokens: job clients
// (twistctl) and workers. Authentication is on whenever token files are
// given; tokens are read from files, never from command lines (which other
// users can see in `ps`), and compared in constant time.
#ifndef TWIST_COMMON_RPC_AUTH_H_
#define TWIST_COMMON_RPC_AUTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace twist::common {

enum class Role { kClient, kWorker };

const char* RoleName(Role role);

// Reads a token file: the first line, surrounding whitespace removed.
// NotFound / PermissionDenied naming the file; InvalidArgument when empty.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Reads a whole PEM (or any) file; errors name the flag and the path.
absl::StatusOr<std::string> ReadCredentialFile(const std::string& flag,
                                               const std::string& path);

// Checks "authorization" header values against the two roles' tokens.
class TokenAuthenticator {
 public:
  // Authentication off: every call is allowed.
  TokenAuthenticator() = default;
  // Either token may be empty (that role then cannot authenticate).
  TokenAuthenticator(std::string client_token, std::string worker_token);

  // Loads the tokens from files; an empty path leaves that role without a
  // token. Enabled when at least one file is given.
  static absl::StatusOr<TokenAuthenticator> FromFiles(
      const std::string& client_token_file,
      const std::string& worker_token_file);

  bool enabled() const { return enabled_; }

  // OK when `authorization` ("Bearer <token>") holds the token of `role`.
  // Unauthenticated for a missing, malformed or unknown token;
  // PermissionDenied for the other role's token.
  absl::Status Check(absl::string_view authorization, Role role) const;

 private:
  bool enabled_ = false;
  std::string client_digest_;  // SHA-256 of each token, compared instead of
  std::string worker_digest_;  // the tokens so timing reveals no length
};

// True for addresses that only this machine reaches: 127.0.0.0/8, ::1,
// localhost. `host` is the host part of HOST:PORT (brackets allowed).
bool IsLoopbackHost(const std::string& host);

// Splits "host:port" or "[v6]:port". False when malformed.
bool SplitHostPort(const std::string& address, std::string* host, int* port);

}  // namespace twist::common

#endif  // TWIST_COMMON_RPC_AUTH_H_
