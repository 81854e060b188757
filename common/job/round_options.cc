#include "common/job/round_options.h"

namespace twist::common {

at::ScalarType WireDtypeOf(const twist::v1::JobSpec& spec) {
  return spec.transport_dtype() == twist::v1::TRANSPORT_DTYPE_BFLOAT16
             ? at::kBFloat16
             : at::kFloat;
}

OuterStep OuterStepOf(const twist::v1::JobSpec& spec) {
  OuterStep step;
  step.learning_rate =
      spec.outer_learning_rate() > 0 ? spec.outer_learning_rate() : 1.0;
  step.momentum = spec.outer_momentum();
  step.nesterov = !spec.outer_heavy_ball();
  return step;
}

}  // namespace twist::common
