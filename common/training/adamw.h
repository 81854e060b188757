// AdamW whose moments can outlive a round and move between processes: its
// state is plain named tensors (the moments in each parameter's shape, and
// the steps they have taken), and the steps are counted per position along
// the parameter's sliced dimension, so a unit new to a worker starts its bias
// correction at step 0 while the units it kept go on from theirs. With equal
// steps everywhere it computes exactly what torch::optim::AdamW computes.
//
//   m <- beta1 m + (1 - beta1) g           v <- beta2 v + (1 - beta2) g^2
//   p <- p (1 - lr wd)                     (matrices and embeddings only)
//   p <- p - lr (m / (1 - beta1^t)) / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// where t is the position's step count after this step.
#ifndef TWIST_COMMON_TRAINING_ADAMW_H_
#define TWIST_COMMON_TRAINING_ADAMW_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model/named_tensors.h"

namespace twist::common {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // on tensors of 2 or more dimensions only
};

// The names a parameter's state goes by in a state's NamedTensors.
std::string ExpAvgName(const std::string& param);
std::string ExpAvgSqName(const std::string& param);
std::string StepsName(const std::string& param);

class AdamW {
 public:
  // `params` are the tensors it steps (their .grad()), by name; `step_dims`
  // gives, per parameter, the dimension along which steps are counted (-1:
  // one count for the whole tensor). The state starts at zero.
  AdamW(NamedTensors params, const std::vector<int64_t>& step_dims,
        AdamWOptions options);

  // One step with learning rate `lr`. Parameters without a gradient are
  // left alone (their state too).
  void Step(double lr);

  // The state, as "exp_avg.<name>", "exp_avg_sq.<name>" (each parameter's
  // shape) and "steps.<name>" (float32: one count per position along the
  // step dimension, or one value). The tensors are the optimizer's own.
  NamedTensors State() const;

  // Replaces the state. Moments that are contiguous and of their parameter's
  // element type and device become the optimizer's own (no copy: handles
  // the caller keeps see its steps); others are copied in. InvalidArgument
  // naming the tensor for a missing or misshapen one; a negative step count
  // or a negative exp_avg_sq value is refused too.
  absl::Status LoadState(NamedTensors state);

 private:
  struct Entry {
    std::string name;
    at::Tensor param;
    at::Tensor exp_avg, exp_avg_sq;
    at::Tensor steps;  // float64 counts, shaped to broadcast against param
    int64_t dim = -1;
    bool decay = false;
  };
  // Zero moments for the entries that have none yet.
  void AllocateMoments() const;

  const AdamWOptions options_;
  // Mutable: the moments are allocated at first use, also by State().
  mutable std::vector<Entry> entries_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_TRAINING_ADAMW_H_
