// Scoring a model on fixed batches of a token file: the validation loss the
// coordinator records, and the calibration tokens that shift correction and
// pruning scores are estimated on.
#ifndef TWIST_COMMON_TRAINING_EVALUATION_H_
#define TWIST_COMMON_TRAINING_EVALUATION_H_

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "common/data/token_file.h"
#include "common/model/gpt.h"

namespace twist::common {

// Mean cross-entropy (nats per token) over `batches` fixed evaluation batches
// of the validation data (EvalBatch), without gradients.
absl::StatusOr<double> EvaluateLoss(GptImpl& model, const TokenFile& val,
                                    int batches, int batch_size, int context);

// `batches` fixed batches of training data (never validation data), for
// shift-correction estimates and for scoring subnetworks: (batches * B, T).
absl::StatusOr<torch::Tensor> CalibrationTokens(const TokenFile& train,
                                                int batches, int batch_size,
                                                int context);

}  // namespace twist::common

#endif  // TWIST_COMMON_TRAINING_EVALUATION_H_
