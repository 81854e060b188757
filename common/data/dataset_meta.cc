#include "common/data/dataset_meta.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"

namespace twist::common {
namespace {

// The largest vocabulary a uint16 token file can address.
constexpr int kMaxVocab = 65536;

}  // namespace

std::string DatasetLabel(const std::string& dir) {
  return absl::StrCat("dataset ", dir, " on host ", HostName());
}

absl::StatusOr<DatasetMeta> ReadDatasetMeta(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kMetaFile).string();
  const std::string label = DatasetLabel(dir);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(absl::StrCat(label, ": ", kMetaFile,
                                              " missing (", path, "): ",
                                              kPrepareHint));
    }
    return absl::Status(text.status().code(),
                        absl::StrCat(label, ": ", text.status().message()));
  }
  const nlohmann::json json =
      nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
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
  return WriteFileAtomically((std::filesystem::path(dir) / kMetaFile).string(), json.dump(2) + "\n");
}

}  // namespace twist::common
