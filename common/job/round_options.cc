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

UpdateCodec UpdateCodecOf(twist::v1::Compression compression) {
  switch (compression) {
    case twist::v1::COMPRESSION_INT8:
      return UpdateCodec::kInt8;
    case twist::v1::COMPRESSION_INT4:
      return UpdateCodec::kInt4;
    case twist::v1::COMPRESSION_TOPK:
      return UpdateCodec::kTopK;
    default:
      return UpdateCodec::kNone;
  }
}

UpdateEncoding UpdateEncodingOf(const twist::v1::JobSpec& spec) {
  UpdateEncoding out;
  out.codec = UpdateCodecOf(spec.compression());
  out.topk_fraction = spec.topk_fraction();
  return out;
}

UpdateEncoding ChangeEncodingOf(const twist::v1::JobSpec& spec) {
  UpdateEncoding out = UpdateEncodingOf(spec);
  if (out.codec == UpdateCodec::kTopK) out.codec = UpdateCodec::kInt4;
  return out;
}

}  // namespace twist::common
