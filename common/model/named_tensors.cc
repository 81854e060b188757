#include "common/model/named_tensors.h"

namespace twist::common {

void NamedTensors::Set(const std::string& name, at::Tensor tensor) {
  auto it = index_.find(name);
  if (it != index_.end()) {
    entries_[it->second].tensor = std::move(tensor);
    return;
  }
  index_.emplace(name, entries_.size());
  entries_.push_back(NamedTensor{name, std::move(tensor)});
}

const at::Tensor* NamedTensors::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].tensor;
}

at::Tensor* NamedTensors::Find(const std::string& name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].tensor;
}

int64_t NamedTensors::NumBytes() const {
  int64_t total = 0;
  for (const auto& e : entries_)
    total += e.tensor.numel() * e.tensor.element_size();
  return total;
}

int64_t NamedTensors::NumElements() const {
  int64_t total = 0;
  for (const auto& e : entries_) total += e.tensor.numel();
  return total;
}

}  // namespace twist::common
