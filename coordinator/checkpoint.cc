#include "coordinator/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/files.h"
#include "common/base/sha256.h"
#include "common/model/safetensors.h"
#include "common/base/status_macros.h"

namespace twist::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr char kModelPrefix[] = "model.";
constexpr char kStatePrefix[] = "state.";

// SHA-256 over each tensor's name and raw bytes, in order, as hex.
std::string Checksum(const common::NamedTensors& tensors) {
  common::Sha256 hash;
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    hash.Update(absl::StrCat(name, "\n"));
    hash.Update(t.data_ptr(), t.numel() * t.element_size());
  }
  return hash.HexDigest();
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  TWIST_ASSIGN_OR_RETURN(common::SafetensorsContents contents,
                         common::ReadSafetensors(path));
  auto round_it = contents.metadata.find("twist.checkpoint_round");
  auto sum_it = contents.metadata.find("twist.checksum");
  Checkpoint out;
  if (round_it == contents.metadata.end() ||
      sum_it == contents.metadata.end() ||
      !absl::SimpleAtoi(round_it->second, &out.round)) {
    return absl::DataLossError(
        absl::StrCat(path, " lacks its round or checksum"));
  }
  const std::string checksum = Checksum(contents.tensors);
  if (checksum != sum_it->second) {
    return absl::DataLossError(absl::StrCat(
        path, ": checksum mismatch (stored ", sum_it->second.substr(0, 12),
        "..., computed ", checksum.substr(0, 12), "...)"));
  }
  for (const auto& [name, tensor] : contents.tensors) {
    if (name.rfind(kModelPrefix, 0) == 0) {
      out.model.Set(name.substr(sizeof(kModelPrefix) - 1), tensor);
    } else if (name.rfind(kStatePrefix, 0) == 0) {
      out.state.Set(name.substr(sizeof(kStatePrefix) - 1), tensor);
    }
  }
  out.path = path;
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<int32_t, std::string>>> ListCheckpoints(
    const std::string& job_dir) {
  std::vector<std::pair<int32_t, std::string>> out;
  std::error_code ec;
  fs::directory_iterator it(job_dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return out;
  static const std::regex pattern("checkpoint-(\\d+)\\.safetensors");
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::smatch m;
    const std::string name = it->path().filename().string();
    if (std::regex_match(name, m, pattern)) {
      out.emplace_back(std::stoi(m[1]), it->path().string());
    }
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list the checkpoints in ", job_dir, " on host ",
                     common::HostName(), ": ", ec.message()));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

absl::Status WriteCheckpoint(const std::string& job_dir, int32_t round,
                             const common::NamedTensors& model,
                             const common::NamedTensors& state, int keep) {
  std::error_code ec;
  fs::create_directories(job_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", job_dir, ": ", ec.message()));
  }
  common::NamedTensors tensors;
  for (const auto& [name, t] : model)
    tensors.Set(kModelPrefix + name, t.detach());
  for (const auto& [name, t] : state)
    tensors.Set(kStatePrefix + name, t.detach());
  const std::string checksum = Checksum(tensors);
  const std::string path =
      absl::StrFormat("%s/checkpoint-%06d.safetensors", job_dir, round);
  TWIST_RETURN_IF_ERROR(common::WriteSafetensors(
      path, tensors,
      {{"twist.checkpoint_round", absl::StrCat(round)},
       {"twist.checksum", checksum},
       // Partitions and batches are pure functions of (seed, round, slot,
       // step): the round is the whole random state to restore.
       {"twist.rng", "stateless: seed and round"}}));
  TWIST_ASSIGN_OR_RETURN(const auto all, ListCheckpoints(job_dir));
  for (size_t i = std::max(keep, 1); i < all.size(); ++i) {
    fs::remove(all[i].second, ec);  // a stale file left over is harmless
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Checkpoint>> LoadLatestCheckpoint(
    const std::string& job_dir, std::vector<std::string>* skipped) {
  TWIST_ASSIGN_OR_RETURN(const auto all, ListCheckpoints(job_dir));
  for (const auto& [round, path] : all) {
    absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(path);
    if (checkpoint.ok())
      return std::optional<Checkpoint>(*std::move(checkpoint));
    if (skipped != nullptr) {
      skipped->push_back(absl::StrCat("checkpoint of round ", round,
                                      " is unusable (",
                                      checkpoint.status().message(), ")"));
    }
  }
  return std::optional<Checkpoint>();
}

}  // namespace twist::coordinator
