#include "common/ist/model_export.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/data/dataset.h"
#include "common/ist/pruning.h"
#include "common/ist/shift_correction.h"
#include "common/model/gpt.h"
#include "common/model/model_io.h"
#include "common/training/evaluation.h"

namespace twist::common {

absl::Status CheckExportKeepRatio(double keep_ratio) {
  if (!(keep_ratio >= 0 && keep_ratio <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keep_ratio must be in [0, 1] (0 or 1: the whole model), got ",
        keep_ratio));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExportedModel> ExportModel(const ModelConfig& config,
                                          const NamedTensors& params,
                                          const ModelExportOptions& options) {
  TWIST_RETURN_IF_ERROR(CheckExportKeepRatio(options.keep_ratio));
  SubnetUnits units = AllUnits(config);
  if (options.keep_ratio > 0 && options.keep_ratio < 1) {
    TWIST_ASSIGN_OR_RETURN(units,
                           RandomSubnet(config, options.keep_ratio, options.seed));
  }
  std::optional<UnitContributions> correction;
  if (options.shift_correction) {
    TWIST_ASSIGN_OR_RETURN(Dataset dataset,
                           Dataset::Open(options.calibration_data));
    TWIST_ASSIGN_OR_RETURN(
        torch::Tensor tokens,
        CalibrationTokens(dataset.train(), /*batches=*/4,
                          options.calibration_batch_size, config.block_size));
    Gpt full_model(config);
    TWIST_RETURN_IF_ERROR(LoadParameters(*full_model, [&] {
      NamedTensors p;
      for (const auto& [name, t] : params) {
        if (name != "lm_head.weight") p.Set(name, t);
      }
      return p;
    }()));
    correction = EstimateUnitContributions(*full_model, tokens);
  }
  TWIST_ASSIGN_OR_RETURN(
      Gpt model, PruneModel(config, params, units, options.scaling,
                            correction ? &*correction : nullptr));
  Metadata extra = options.metadata;
  extra["twist.keep_ratio"] =
      absl::StrCat(options.keep_ratio > 0 ? options.keep_ratio : 1.0);
  extra["twist.shift_correction"] = correction ? "true" : "false";
  ExportedModel out;
  TWIST_ASSIGN_OR_RETURN(out.tensors,
                         ExportTensors(*model, extra, &out.metadata));
  out.parameters = model->config().NumParameters();
  return out;
}

}  // namespace twist::common
