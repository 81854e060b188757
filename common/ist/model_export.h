// A trained model as `twistctl export` writes it: the whole model, or a
// random subnetwork of it (a "golden ticket", PruneModel) with its partial
// sums scaled or its biases shift-corrected, as the tensors and metadata of
// a safetensors file.
#ifndef TWIST_COMMON_IST_MODEL_EXPORT_H_
#define TWIST_COMMON_IST_MODEL_EXPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ist/subnet.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "common/model/safetensors.h"

namespace twist::common {

struct ModelExportOptions {
  // 0 or 1: the whole model; in between: RandomSubnet(keep_ratio, seed).
  double keep_ratio = 1.0;
  uint64_t seed = 0;
  // How the subnetwork's partial sums are scaled (without shift correction).
  PartialSumScaling scaling = PartialSumScaling::kInverseKeepRatio;
  // Shift-correct the biases instead: the units' mean contributions are
  // estimated with the full model on 4 batches of `calibration_batch_size`
  // sequences (CalibrationTokens) of the training split of the prepared
  // dataset in `calibration_data`.
  bool shift_correction = false;
  std::string calibration_data;
  int calibration_batch_size = 0;
  // Written into the file beside the configuration, "twist.keep_ratio" and
  // "twist.shift_correction" (which ExportModel sets).
  Metadata metadata;
};

// A model ready to write as safetensors.
struct ExportedModel {
  NamedTensors tensors;  // as SaveModel writes them (ExportTensors)
  Metadata metadata;
  int64_t parameters = 0;  // of the exported model
};

// InvalidArgument unless keep_ratio is in [0, 1].
absl::Status CheckExportKeepRatio(double keep_ratio);

// The model of `config` with parameters `params` ("lm_head.weight", tied to
// the embedding, may be among them), cut down and corrected per `options`.
// Errors: CheckExportKeepRatio's, the calibration dataset's, PruneModel's.
absl::StatusOr<ExportedModel> ExportModel(const ModelConfig& config,
                                          const NamedTensors& params,
                                          const ModelExportOptions& options);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_MODEL_EXPORT_H_
