// An ordered list of named tensors with lookup by name: what a model's
// state, a subnetwork's slices, a weights file and a transfer carry.
#ifndef TWIST_COMMON_MODEL_NAMED_TENSORS_H_
#define TWIST_COMMON_MODEL_NAMED_TENSORS_H_

#include <ATen/core/Tensor.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace twist::common {

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

class NamedTensors {
 public:
  NamedTensors() = default;

  // Appends; a name already present is replaced in place (order kept).
  void Set(const std::string& name, at::Tensor tensor);

  // nullptr when absent.
  const at::Tensor* Find(const std::string& name) const;
  at::Tensor* Find(const std::string& name);
  bool Contains(const std::string& name) const { return Find(name) != nullptr; }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const NamedTensor& operator[](size_t i) const { return entries_[i]; }
  std::vector<NamedTensor>::const_iterator begin() const {
    return entries_.begin();
  }
  std::vector<NamedTensor>::const_iterator end() const {
    return entries_.end();
  }

  // Total bytes of all tensors' elements.
  int64_t NumBytes() const;
  int64_t NumElements() const;

 private:
  std::vector<NamedTensor> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_NAMED_TENSORS_H_
