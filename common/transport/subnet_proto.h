// SubnetUnits to and from the wire's SubnetAssignment message.
#ifndef TWIST_COMMON_TRANSPORT_SUBNET_PROTO_H_
#define TWIST_COMMON_TRANSPORT_SUBNET_PROTO_H_

#include "common/model/named_tensors.h"
#include "common/ist/subnet.h"
#include "twist/v1/tensor.pb.h"

namespace twist::common {

twist::v1::SubnetAssignment ToProto(const SubnetUnits& units);
SubnetUnits FromProto(const twist::v1::SubnetAssignment& proto);

// Name, shape and dtype of each tensor, in order: what a receiver needs to
// preallocate before chunks arrive.
google::protobuf::RepeatedPtrField<twist::v1::TensorInfo> DescribeTensors(
    const NamedTensors& tensors);

// Empty CPU tensors matching `infos`. InvalidArgument for an unknown dtype, a
// negative dimension, a repeated name, or more than `max_bytes` in total.
absl::StatusOr<NamedTensors> AllocateTensors(
    const google::protobuf::RepeatedPtrField<twist::v1::TensorInfo>& infos,
    int64_t max_bytes);

}  // namespace twist::common

#endif  // TWIST_COMMON_TRANSPORT_SUBNET_PROTO_H_
