#include "coordinator/init_from.h"

#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/job/job_config.h"
#include "common/model/weights_import.h"

namespace twist::coordinator {
namespace {

using twist::v1::JobSpec;

// Sets *field to the file's value when it is 0, else checks they agree.
absl::Status TakeOrMatch(const std::string& path, const char* field,
                         int file_value, const char* what,
                         const std::function<int()>& get,
                         const std::function<void(int)>& set) {
  if (get() == 0) {
    set(file_value);
    return absl::OkStatus();
  }
  if (get() != file_value) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init_from: ", path, " has ", what, " ", file_value, " but ", field,
        " is ", get(), ": leave ", field, " out to take the file's"));
  }
  return absl::OkStatus();
}

twist::v1::Activation ToProto(common::Activation a) {
  return a == common::Activation::kGeluTanh ? twist::v1::ACTIVATION_GELU_TANH
                                            : twist::v1::ACTIVATION_GELU;
}

}  // namespace

absl::Status ApplyInitFrom(JobSpec* spec) {
  if (spec->init_from().empty()) return absl::OkStatus();
  TWIST_ASSIGN_OR_RETURN(common::WeightsFile file,
                         common::ReadWeightsFile(spec->init_from()));
  auto* m = spec->mutable_model();
  const std::string& path = file.path;
  TWIST_RETURN_IF_ERROR(TakeOrMatch(
      path, "model.n_layer", file.n_layer, "layers",
      [&] { return m->n_layer(); }, [&](int v) { m->set_n_layer(v); }));
  TWIST_RETURN_IF_ERROR(TakeOrMatch(
      path, "model.n_embd", file.n_embd, "width", [&] { return m->n_embd(); },
      [&](int v) { m->set_n_embd(v); }));
  TWIST_RETURN_IF_ERROR(TakeOrMatch(
      path, "model.block_size", file.block_size, "context",
      [&] { return m->block_size(); }, [&](int v) { m->set_block_size(v); }));
  TWIST_RETURN_IF_ERROR(TakeOrMatch(
      path, "model.vocab_size", file.vocab_size, "vocabulary",
      [&] { return m->vocab_size(); }, [&](int v) { m->set_vocab_size(v); }));
  if (file.n_head > 0) {
    TWIST_RETURN_IF_ERROR(TakeOrMatch(
        path, "model.n_head", file.n_head, "heads per layer",
        [&] { return m->n_head(); }, [&](int v) { m->set_n_head(v); }));
  } else if (m->n_head() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init_from: ", path,
        " does not say how many heads its layers have (the weights cannot "
        "tell): set model.n_head (12 for GPT-2 small), or put the hub's "
        "config.json beside the file"));
  }
  if (file.activation) {
    const twist::v1::Activation from_file = ToProto(*file.activation);
    if (m->activation() == twist::v1::ACTIVATION_UNSPECIFIED) {
      m->set_activation(from_file);
    } else if (m->activation() != from_file) {
      return absl::InvalidArgumentError(absl::StrCat(
          "init_from: ", path, " was trained with ",
          common::ActivationName(*file.activation), " but model.activation is ",
          twist::v1::Activation_Name(m->activation()),
          ": leave model.activation out to take the file's"));
    }
  }
  if (m->n_head() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.n_head: must be at least 1, got ", m->n_head()));
  }
  if (m->n_embd() % m->n_head() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("init_from: ", path, " has width ", m->n_embd(),
                     ", which model.n_head ", m->n_head(), " does not divide"));
  }
  TWIST_RETURN_IF_ERROR(
      common::ImportWeights(file, common::ModelConfigOf(*spec)).status());
  spec->set_init_from_sha256(file.sha256);
  return absl::OkStatus();
}

absl::StatusOr<common::NamedTensors> LoadInitFrom(const JobSpec& spec) {
  absl::StatusOr<common::WeightsFile> file =
      common::ReadWeightsFile(spec.init_from());
  if (!file.ok()) {
    return absl::FailedPreconditionError(file.status().message());
  }
  if (!spec.init_from_sha256().empty() &&
      file->sha256 != spec.init_from_sha256()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "init_from: ", spec.init_from(), " changed since the job was submitted",
        " (SHA-256 ", file->sha256.substr(0, 16), ", recorded ",
        spec.init_from_sha256().substr(0, 16),
        "): put the original file back, or submit a new job"));
  }
  absl::StatusOr<common::NamedTensors> tensors =
      common::ImportWeights(*file, common::ModelConfigOf(spec));
  if (!tensors.ok()) {
    return absl::FailedPreconditionError(tensors.status().message());
  }
  return tensors;
}

}  // namespace twist::coordinator
