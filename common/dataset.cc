// Token files, meta.json, the content hash and batch sampling (see
// dataset.h for the layout on disk).
#include "common/dataset.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rng.h"
#include "common/status_macros.h"

namespace twist::common {
namespace {

constexpr char kMetaFile[] = "meta.json";
constexpr char kTrainFile[] = "train.bin";
constexpr char kValFile[] = "val.bin";
constexpr char kPrepareHint[] = "run `twistctl prepare` to create it";

// Mixed into every batch seed so that (job seed, round, slot, step) never
// yields the seed of a partition keyed by (job seed, round, layer, kind).
// ASCII "TWISTBAT".
constexpr uint64_t kBatchSeedTag = 0x5457495354424154ULL;

// The largest vocabulary a uint16 token file can address.
constexpr int kMaxVocab = 65536;

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
    return "unknown-host";
  }
  return name;
}

std::string JoinPath(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

std::string DatasetLabel(const std::string& dir) {
  return absl::StrCat("dataset ", dir, " on host ", HostName());
}

// A status for the errno of a failed system call on `what`, with the most
// specific code a caller can act on.
absl::Status ErrnoError(const std::string& what, const std::string& action) {
  const int err = errno;
  const std::string message =
      absl::StrCat(what, ": cannot ", action, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) {
    return absl::PermissionDeniedError(message);
  }
  return absl::InternalError(message);
}

absl::Status WriteAll(int fd, const char* data, size_t size,
                      const std::string& what) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(what, "write");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Writes `bytes` to `path` through `path`.tmp.<pid>, fsynced and renamed, so
// a reader (or a crash) never sees a half-written file under `path`.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& bytes) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const std::string what = absl::StrCat(tmp, " on host ", HostName());
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(what, "create");
  absl::Status status = WriteAll(fd, bytes.data(), bytes.size(), what);
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoError(what, "fsync");
  if (::close(fd) != 0 && status.ok()) status = ErrnoError(what, "close");
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoError(absl::StrCat(path, " on host ", HostName()),
                        "rename into place");
  }
  if (!status.ok()) std::remove(tmp.c_str());
  return status;
}

// Reads a whole (small) file. ENOENT becomes NotFound with `missing_message`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          const std::string& what,
                                          const std::string& missing_message) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(missing_message);
    return ErrnoError(what, "open");
  }
  std::string text;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status status = ErrnoError(what, "read");
      ::close(fd);
      return status;
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

// Validates the shared arguments of SampleBatch and EvalBatch.
absl::Status CheckBatchArgs(const TokenFile& tokens, int batch, int context,
                            const char* caller) {
  if (batch <= 0 || context <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(caller, ": batch (", batch,
                                                   ") and context (", context,
                                                   ") must both be positive"));
  }
  if (tokens.size() < static_cast<int64_t>(context) + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        caller, ": token file ", tokens.path(), " on host ", HostName(),
        " holds ", tokens.size(),
        " tokens, fewer than context + 1 = ", static_cast<int64_t>(context) + 1,
        ": use a shorter context or a larger dataset (a larger val_fraction "
        "for the validation set)"));
  }
  return absl::OkStatus();
}

// Copies the window starting at `start` into row `row` of the (B, T) outputs.
void CopyWindow(const TokenFile& tokens, int64_t start, int row, int context,
                std::vector<int64_t>* inputs, std::vector<int64_t>* targets) {
  const int64_t base = static_cast<int64_t>(row) * context;
  for (int t = 0; t < context; ++t) {
    (*inputs)[base + t] = tokens.at(start + t);
    (*targets)[base + t] = tokens.at(start + t + 1);
  }
}

void ResizeBatch(int batch, int context, std::vector<int64_t>* inputs,
                 std::vector<int64_t>* targets) {
  const size_t n = static_cast<size_t>(batch) * static_cast<size_t>(context);
  inputs->assign(n, 0);
  targets->assign(n, 0);
}

// (a * b) mod m for a, b < m without overflow: the product of two slot
// numbers exceeds 64 bits once a file has more than 2^32 windows.
uint64_t MulMod(uint64_t a, uint64_t b, uint64_t m) {
  if (m <= (uint64_t{1} << 32)) return a * b % m;
  uint64_t result = 0;
  while (b > 0) {
    // Additions modulo m written so that they never wrap.
    if (b & 1) result = result >= m - a ? result - (m - a) : result + a;
    a = a >= m - a ? a - (m - a) : a + a;
    b >>= 1;
  }
  return result;
}

}  // namespace

absl::StatusOr<DatasetMeta> ReadDatasetMeta(const std::string& dir) {
  const std::string path = JoinPath(dir, kMetaFile);
  const std::string label = DatasetLabel(dir);
  TWIST_ASSIGN_OR_RETURN(
      const std::string text,
      ReadSmallFile(path, absl::StrCat(label, ": ", kMetaFile),
                    absl::StrCat(label, ": ", kMetaFile, " missing (", path,
                                 "): ", kPrepareHint)));
  const nlohmann::json json =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::DataLossError(absl::StrCat(
        label, ": ", path,
        " is not a JSON object: the file is damaged; rerun `twistctl "
        "prepare`"));
  }
  auto bad_field = [&](const char* field, const std::string& expected) {
    return absl::DataLossError(
        absl::StrCat(label, ": ", path, ": field \"", field, "\" must be ",
                     expected, ": fix the file or rerun `twistctl prepare`"));
  };
  auto get_int = [&](const char* field, int64_t low, int64_t high,
                     int64_t* out) -> absl::Status {
    const auto it = json.find(field);
    const std::string range =
        absl::StrCat("an integer in [", low, ", ", high, "]");
    if (it == json.end() || !it->is_number_integer()) {
      return bad_field(field, range);
    }
    const int64_t value = it->get<int64_t>();
    if (value < low || value > high) return bad_field(field, range);
    *out = value;
    return absl::OkStatus();
  };
  auto get_string = [&](const char* field, bool required,
                        std::string* out) -> absl::Status {
    const auto it = json.find(field);
    if (it == json.end() && !required) return absl::OkStatus();
    if (it == json.end() || !it->is_string()) {
      return bad_field(field, "a string");
    }
    *out = it->get<std::string>();
    return absl::OkStatus();
  };

  DatasetMeta meta;
  int64_t vocab = 0;
  TWIST_RETURN_IF_ERROR(get_int("vocab_size", 1, kMaxVocab, &vocab));
  meta.vocab_size = static_cast<int>(vocab);
  TWIST_RETURN_IF_ERROR(
      get_int("train_tokens", 0, INT64_MAX / 2, &meta.train_tokens));
  TWIST_RETURN_IF_ERROR(
      get_int("val_tokens", 0, INT64_MAX / 2, &meta.val_tokens));
  TWIST_RETURN_IF_ERROR(get_string("content_hash", true, &meta.content_hash));
  TWIST_RETURN_IF_ERROR(get_string("tokenizer", false, &meta.tokenizer));
  TWIST_RETURN_IF_ERROR(get_string("source", false, &meta.source));
  return meta;
}

absl::Status WriteDatasetMeta(const std::string& dir, const DatasetMeta& meta) {
  if (meta.vocab_size < 1 || meta.vocab_size > kMaxVocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size ", meta.vocab_size, " for dataset ", dir,
                     " is outside [1, ", kMaxVocab,
                     "]: uint16 token files hold ids below ", kMaxVocab));
  }
  if (meta.train_tokens < 0 || meta.val_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token counts for dataset ", dir, " must not be negative (train ",
        meta.train_tokens, ", val ", meta.val_tokens, ")"));
  }
  nlohmann::json json = {
      {"vocab_size", meta.vocab_size}, {"train_tokens", meta.train_tokens},
      {"val_tokens", meta.val_tokens}, {"content_hash", meta.content_hash},
      {"tokenizer", meta.tokenizer},   {"source", meta.source},
  };
  return WriteFileAtomically(JoinPath(dir, kMetaFile), json.dump(2) + "\n");
}

absl::Status WriteTokenFile(const std::string& path,
                            const std::vector<uint16_t>& tokens) {
  // Encode explicitly so the file is little-endian on any host.
  std::string bytes(tokens.size() * 2, '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    bytes[2 * i] = static_cast<char>(tokens[i] & 0xff);
    bytes[2 * i + 1] = static_cast<char>(tokens[i] >> 8);
  }
  return WriteFileAtomically(path, bytes);
}

TokenFile::TokenFile(std::string path, void* mapping, int64_t size)
    : path_(std::move(path)),
      mapping_(mapping),
      bytes_(static_cast<const unsigned char*>(mapping)),
      size_(size) {}

TokenFile::~TokenFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, static_cast<size_t>(size_) * 2);
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(
    const std::string& path) {
  return OpenLabelled(
      path, absl::StrCat("token file ", path, " on host ", HostName()));
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::OpenLabelled(
    const std::string& path, const std::string& label) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat(label, " missing (", path, "): ", kPrepareHint));
    }
    return ErrnoError(absl::StrCat(label, " (", path, ")"), "open");
  }
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    absl::Status status =
        ErrnoError(absl::StrCat(label, " (", path, ")"), "stat");
    ::close(fd);
    return status;
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(label, " (", path,
                     ") is not a regular file: point the job at a "
                     "folder written by `twistctl prepare`"));
  }
  const int64_t bytes = static_cast<int64_t>(info.st_size);
  if (bytes % 2 != 0) {
    ::close(fd);
    return absl::DataLossError(absl::StrCat(
        label, " (", path, ") has an odd length of ", bytes,
        " bytes, but token files hold 2-byte ids: the file is truncated or "
        "not a token file; rerun `twistctl prepare`"));
  }
  void* mapping = nullptr;
  // mmap rejects a zero length; an empty file simply has no tokens.
  if (bytes > 0) {
    mapping = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ,
                     MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      absl::Status status =
          ErrnoError(absl::StrCat(label, " (", path, ")"), "mmap");
      ::close(fd);
      return status;
    }
  }
  // The mapping keeps the file alive; the descriptor is no longer needed.
  ::close(fd);
  return std::unique_ptr<TokenFile>(new TokenFile(path, mapping, bytes / 2));
}

Dataset::Dataset(std::string dir, DatasetMeta meta,
                 std::unique_ptr<TokenFile> train,
                 std::unique_ptr<TokenFile> val)
    : dir_(std::move(dir)),
      meta_(std::move(meta)),
      train_(std::move(train)),
      val_(std::move(val)) {}

absl::StatusOr<Dataset> Dataset::Open(const std::string& dir) {
  const std::string label = DatasetLabel(dir);
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::NotFoundError(
        absl::StrCat(label,
                     ": no such folder: copy the dataset to this host or run "
                     "`twistctl prepare` there"));
  }
  TWIST_ASSIGN_OR_RETURN(DatasetMeta meta, ReadDatasetMeta(dir));
  TWIST_ASSIGN_OR_RETURN(
      std::unique_ptr<TokenFile> train,
      TokenFile::OpenLabelled(JoinPath(dir, kTrainFile),
                              absl::StrCat(label, ": ", kTrainFile)));
  TWIST_ASSIGN_OR_RETURN(
      std::unique_ptr<TokenFile> val,
      TokenFile::OpenLabelled(JoinPath(dir, kValFile),
                              absl::StrCat(label, ": ", kValFile)));
  auto check_count = [&](const char* file, const char* field, int64_t expected,
                         int64_t actual) -> absl::Status {
    if (expected == actual) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(
        label, ": meta.json says ", field, " = ", expected, " but ", file,
        " holds ", actual,
        " tokens: the files come from different "
        "preparations or were truncated in a copy; copy the folder again or "
        "rerun `twistctl prepare`"));
  };
  TWIST_RETURN_IF_ERROR(check_count(kTrainFile, "train_tokens",
                                    meta.train_tokens, train->size()));
  TWIST_RETURN_IF_ERROR(
      check_count(kValFile, "val_tokens", meta.val_tokens, val->size()));
  return Dataset(dir, std::move(meta), std::move(train), std::move(val));
}

absl::StatusOr<std::string> ComputeContentHash(const std::string& dir) {
  const std::string label = DatasetLabel(dir);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(
      EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (context == nullptr ||
      EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL could not start a SHA-256 digest");
  }
  std::vector<char> buffer(1 << 20);
  for (const char* name : {kTrainFile, kValFile}) {
    const std::string path = JoinPath(dir, name);
    const std::string what = absl::StrCat(label, ": ", name, " (", path, ")");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return absl::NotFoundError(absl::StrCat(label, ": ", name, " missing (",
                                                path, "): ", kPrepareHint));
      }
      return ErrnoError(what, "open");
    }
    // Each file's name and length go in before its bytes, so moving the
    // train/val boundary (another --val_fraction) changes the hash.
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      absl::Status status = ErrnoError(what, "stat");
      ::close(fd);
      return status;
    }
    const std::string prefix = absl::StrCat(name, " ", st.st_size, "\n");
    if (EVP_DigestUpdate(context.get(), prefix.data(), prefix.size()) != 1) {
      ::close(fd);
      return absl::InternalError("OpenSSL SHA-256 update failed");
    }
    while (true) {
      const ssize_t n = ::read(fd, buffer.data(), buffer.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        absl::Status status = ErrnoError(what, "read");
        ::close(fd);
        return status;
      }
      if (n == 0) break;
      if (EVP_DigestUpdate(context.get(), buffer.data(),
                           static_cast<size_t>(n)) != 1) {
        ::close(fd);
        return absl::InternalError("OpenSSL SHA-256 update failed");
      }
    }
    ::close(fd);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context.get(), digest, &length) != 1) {
    return absl::InternalError("OpenSSL SHA-256 finalisation failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

uint64_t BatchSeed(uint64_t job_seed, int64_t round, int64_t slot,
                   int64_t step) {
  return DeriveSeed({kBatchSeedTag, job_seed, static_cast<uint64_t>(round),
                     static_cast<uint64_t>(slot), static_cast<uint64_t>(step)});
}

absl::Status SampleBatch(const TokenFile& tokens, int batch, int context,
                         uint64_t seed, std::vector<int64_t>* inputs,
                         std::vector<int64_t>* targets) {
  TWIST_RETURN_IF_ERROR(CheckBatchArgs(tokens, batch, context, "SampleBatch"));
  ResizeBatch(batch, context, inputs, targets);
  SplitMix64 rng(seed);
  // size - context starts leave room for the last target.
  const uint64_t starts = static_cast<uint64_t>(tokens.size() - context);
  for (int b = 0; b < batch; ++b) {
    const int64_t start = static_cast<int64_t>(rng.UniformBelow(starts));
    CopyWindow(tokens, start, b, context, inputs, targets);
  }
  return absl::OkStatus();
}

int64_t EvalWindowCount(const TokenFile& tokens, int context) {
  if (context <= 0 || tokens.size() < static_cast<int64_t>(context) + 1) {
    return 0;
  }
  // Slot s starts at s * context; the last start is at most size - context - 1.
  return (tokens.size() - context - 1) / context + 1;
}

absl::Status EvalBatch(const TokenFile& tokens, int batch, int context,
                       int index, std::vector<int64_t>* inputs,
                       std::vector<int64_t>* targets) {
  TWIST_RETURN_IF_ERROR(CheckBatchArgs(tokens, batch, context, "EvalBatch"));
  if (index < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EvalBatch: batch index ", index, " must not be negative"));
  }
  ResizeBatch(batch, context, inputs, targets);
  const uint64_t slots =
      static_cast<uint64_t>(EvalWindowCount(tokens, context));
  // The step nearest slots / golden ratio visits the slots in a low-
  // discrepancy order; coprime to `slots`, it visits each exactly once per
  // cycle. Computed in double, which is exact enough and identical on every
  // IEEE-754 platform for any file size that fits on a disk.
  uint64_t step = static_cast<uint64_t>(
      std::llround(static_cast<double>(slots) * 0.6180339887498949));
  if (step == 0) step = 1;
  while (std::gcd(step, slots) != 1) ++step;
  for (int j = 0; j < batch; ++j) {
    const uint64_t window =
        (static_cast<uint64_t>(index) * static_cast<uint64_t>(batch) + j) %
        slots;
    const uint64_t slot = MulMod(window, step, slots);
    CopyWindow(tokens, static_cast<int64_t>(slot) * context, j, context, inputs,
               targets);
  }
  return absl::OkStatus();
}

}  // namespace twist::common
