// SHA-256 as lower-case hex, for content hashes (datasets, checkpoints,
// weights files) and token digests. Streams: memory does not grow with the
// input.
#ifndef TWIST_COMMON_BASE_SHA256_H_
#define TWIST_COMMON_BASE_SHA256_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace twist::common {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // The digest of everything added, as 64 hex digits. Call once.
  std::string HexDigest();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// The digest of `bytes` as 64 hex digits.
std::string Sha256Hex(absl::string_view bytes);

}  // namespace twist::common

#endif  // TWIST_COMMON_BASE_SHA256_H_
