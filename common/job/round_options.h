// What a job spec means for the coordinator's rounds: the element type
// tensors travel in, how updates are compressed, and the outer optimizer's step on the merged update.
#ifndef TWIST_COMMON_JOB_ROUND_OPTIONS_H_
#define TWIST_COMMON_JOB_ROUND_OPTIONS_H_

#include <c10/core/ScalarType.h>

#include "common/ist/slice_kernels.h"
#include "common/ist/update_codec.h"
#include "twist/v1/job.pb.h"

namespace twist::common {

// transport_dtype: bfloat16, else float32.
at::ScalarType WireDtypeOf(const twist::v1::JobSpec& spec);

// The codec of a Compression value (unspecified: none).
UpdateCodec UpdateCodecOf(twist::v1::Compression compression);

// compression and topk_fraction.
UpdateEncoding UpdateEncodingOf(const twist::v1::JobSpec& spec);

// How the changes to resident units travel to the workers (common/ist/
// shared_view.h): as the updates do, except int4 under top-k. The outer
// step moves every entry of the model every round (momentum, and the mean
// of the workers' different entries), which a few entries per chunk cannot
// follow: on the Brown benchmark a top-k view fell so far behind the model
// that validation loss rose from 3.0 to 4.2 while the workers' training
// loss fell.
UpdateEncoding ChangeEncodingOf(const twist::v1::JobSpec& spec);

// outer_learning_rate (1 when not positive), outer_momentum, and Nesterov's
// momentum unless outer_heavy_ball.
OuterStep OuterStepOf(const twist::v1::JobSpec& spec);

}  // namespace twist::common

#endif  // TWIST_COMMON_JOB_ROUND_OPTIONS_H_
