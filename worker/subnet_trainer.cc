#include "worker/subnet_trainer.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/job/job_config.h"
#include "common/model/model_io.h"
#include "common/base/status_macros.h"
#include "common/ist/subnet.h"
#include "common/transport/subnet_proto.h"

namespace twist::worker {
SubnetTrainer::SubnetTrainer(Options options) : options_(std::move(options)) {}

std::string SubnetTrainer::DatasetPath(const twist::v1::JobSpec& spec) const {
  if (options_.data_dir.empty()) return spec.data().path();
  std::filesystem::path p(spec.data().path());
  if (!p.has_filename()) p = p.parent_path();
  return (std::filesystem::path(options_.data_dir) / p.filename()).string();
}

absl::StatusOr<PreparedSubnet> SubnetTrainer::Prepare(
    const twist::v1::AssignmentHeader& header) const {
  const common::ModelConfig full = common::ModelConfigOf(header.spec());
  TWIST_RETURN_IF_ERROR(full.Validate());
  const common::SubnetUnits units = common::FromProto(header.units());
  TWIST_RETURN_IF_ERROR(common::ValidateUnits(full, units));
  if (options_.max_assignment_bytes > 0) {
    const int64_t bytes =
        common::SubnetConfig(full, units).NumParameters() *
        (header.tensors_size() > 0 &&
                 header.tensors(0).dtype() == twist::v1::DTYPE_BFLOAT16
             ? 2
             : 4);
    if (bytes > options_.max_assignment_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "worker ", options_.worker_name, " on ", common::HostName(),
          ": the assignment's tensors take ", bytes,
          " bytes, more than its --max_assignment_bytes=",
          options_.max_assignment_bytes,
          ": raise the limit or give the job a smaller keep_ratio"));
    }
  }
  PreparedSubnet out;
  out.header = header;
  out.model = common::Gpt(common::SubnetConfig(full, units));
  out.model->SetPartialSumScales(
      common::ScalesFor(full, units, common::ScalingOf(header.spec())));
  out.receive_into = common::ParameterTensors(*out.model);
  if (header.tensors_size() > 0 &&
      header.tensors(0).dtype() == twist::v1::DTYPE_BFLOAT16) {
    out.reduced_precision = true;
  }
  // The announced tensors must be exactly this model's parameters, in order,
  // all in float32 or all in bfloat16.
  if (header.tensors_size() != static_cast<int>(out.receive_into.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("assignment announces ", header.tensors_size(),
                     " tensors but the subnetwork has ",
                     out.receive_into.size(), " parameters"));
  }
  for (int i = 0; i < header.tensors_size(); ++i) {
    const auto& info = header.tensors(i);
    const auto& expected = out.receive_into[i];
    const auto wanted = out.reduced_precision ? twist::v1::DTYPE_BFLOAT16
                                              : twist::v1::DTYPE_FLOAT32;
    if (info.name() != expected.name || info.dtype() != wanted ||
        std::vector<int64_t>(info.shape().begin(), info.shape().end()) !=
            expected.tensor.sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "assignment tensor ", i, " is '", info.name(), "', expected '",
          expected.name, "' of the subnetwork's shape, in ",
          twist::v1::DType_Name(wanted)));
    }
  }
  if (out.reduced_precision) {
    common::NamedTensors staging;
    for (const auto& [name, t] : out.receive_into) {
      staging.Set(
          name, at::empty(t.sizes(), at::TensorOptions().dtype(at::kBFloat16)));
    }
    out.receive_into = std::move(staging);
  }
  return out;
}

absl::StatusOr<const common::Dataset*> SubnetTrainer::OpenDataset(
    const twist::v1::JobSpec& spec) {
  const std::string path = DatasetPath(spec);
  if (dataset_ == nullptr || dataset_path_ != path) {
    absl::StatusOr<common::Dataset> opened = common::Dataset::Open(path);
    if (!opened.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", options_.worker_name, " on ", common::HostName(),
                       ": ", opened.status().message()));
    }
    dataset_ = std::make_unique<common::Dataset>(std::move(*opened));
    dataset_path_ = path;
  }
  const std::string& want = spec.data().content_hash();
  if (!want.empty() && dataset_->meta().content_hash != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", options_.worker_name, " on ", common::HostName(), ": dataset ", path,
        " has content hash ", dataset_->meta().content_hash,
        " but the job expects ", want,
        ": copy the coordinator's dataset to this machine (or pass "
        "--data_dir)"));
  }
  return dataset_.get();
}

absl::StatusOr<TrainedSubnet> SubnetTrainer::Train(
    PreparedSubnet& subnet, std::function<bool()> should_stop) {
  const auto& h = subnet.header;
  TWIST_ASSIGN_OR_RETURN(const common::Dataset* dataset, OpenDataset(h.spec()));
  // Reduced-precision transport: widen what arrived into the parameters and
  // keep it, to return deltas against exactly what was received.
  common::NamedTensors received;
  if (subnet.reduced_precision) {
    torch::NoGradGuard no_grad;
    for (const auto& [name, param] : common::ParameterTensors(*subnet.model)) {
      param.copy_(*subnet.receive_into.Find(name));
      received.Set(name, param.detach().clone());
    }
  }
  subnet.model->to(options_.device);
  common::LocalTrainingOptions options =
      common::TrainingOptionsOf(h.spec(), h.round(), h.slot());
  options.should_stop = std::move(should_stop);
  TrainedSubnet out;
  TWIST_ASSIGN_OR_RETURN(
      out.result,
      common::TrainLocalSteps(*subnet.model, dataset->train(), options));
  torch::NoGradGuard no_grad;
  for (const auto& [name, param] : common::ParameterTensors(*subnet.model)) {
    at::Tensor trained = param.detach().to(torch::kCPU).contiguous();
    if (subnet.reduced_precision) {
      trained = (trained - *received.Find(name)).to(at::kBFloat16).contiguous();
    }
    out.tensors.Set(name, trained);
  }
  out.deltas = subnet.reduced_precision;
  out.parameters = out.tensors.NumElements();
  return out;
}

}  // namespace twist::worker
