#include "common/transport/subnet_proto.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/transport/wire_dtype.h"

namespace twist::common {

twist::v1::SubnetAssignment ToProto(const SubnetUnits& units) {
  twist::v1::SubnetAssignment proto;
  for (const auto& layer : units.layers) {
    auto* l = proto.add_layers();
    l->mutable_heads()->Add(layer.heads.begin(), layer.heads.end());
    l->mutable_ffn_columns()->Add(layer.ffn_columns.begin(),
                                  layer.ffn_columns.end());
  }
  return proto;
}

SubnetUnits FromProto(const twist::v1::SubnetAssignment& proto) {
  SubnetUnits units;
  for (const auto& l : proto.layers()) {
    units.layers.push_back(LayerUnits{
        std::vector<int>(l.heads().begin(), l.heads().end()),
        std::vector<int>(l.ffn_columns().begin(), l.ffn_columns().end())});
  }
  return units;
}

google::protobuf::RepeatedPtrField<twist::v1::TensorInfo> DescribeTensors(
    const NamedTensors& tensors) {
  google::protobuf::RepeatedPtrField<twist::v1::TensorInfo> out;
  for (const auto& [name, tensor] : tensors) {
    auto* info = out.Add();
    info->set_name(name);
    for (int64_t d : tensor.sizes()) info->add_shape(d);
    info->set_dtype(ToWireDType(tensor.scalar_type())
                        .value_or(twist::v1::DTYPE_UNSPECIFIED));
  }
  return out;
}

absl::StatusOr<NamedTensors> AllocateTensors(
    const google::protobuf::RepeatedPtrField<twist::v1::TensorInfo>& infos,
    int64_t max_bytes) {
  NamedTensors out;
  int64_t total = 0;
  for (const auto& info : infos) {
    if (out.Contains(info.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", info.name(), "' is announced twice"));
    }
    absl::StatusOr<at::ScalarType> type = FromWireDType(info.dtype());
    if (!type.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", info.name(), "': ", type.status().message()));
    }
    int64_t numel = 1;
    for (int64_t d : info.shape()) {
      if (d < 0 || (d > 0 && numel > (int64_t{1} << 40) / d)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", info.name(), "' has an impossible shape"));
      }
      numel *= d;
    }
    total += numel * static_cast<int64_t>(at::elementSize(*type));
    if (total > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("announced tensors exceed ", max_bytes, " bytes at '",
                       info.name(), "'"));
    }
    out.Set(info.name(), at::empty(std::vector<int64_t>(info.shape().begin(),
                                                        info.shape().end()),
                                   at::TensorOptions().dtype(*type)));
  }
  return out;
}

}  // namespace twist::common
