#include "common/ist/tensor_pool.h"

#include <algorithm>

namespace twist::common {
namespace {

// True when `entry` is referenced by the pool alone: one handle to its
// TensorImpl and one reference to its storage (a view or a copy of the handle
// elsewhere, e.g. in a transfer still in flight, adds one).
bool OnlyInPool(const at::Tensor& entry) {
  return entry.use_count() == 1 && entry.storage().use_count() == 1;
}

}  // namespace

TensorPool::Key TensorPool::KeyOf(at::IntArrayRef shape,
                                  const at::TensorOptions& options) {
  return {shape.vec(), std::string(c10::toString(options.dtype())) + "@" +
                           options.device().str()};
}

at::Tensor TensorPool::Acquire(at::IntArrayRef shape,
                               const at::TensorOptions& options) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Entry>& same = entries_[KeyOf(shape, options)];
  for (Entry& e : same) {
    if (OnlyInPool(e.tensor)) {
      e.used = true;
      return e.tensor;
    }
  }
  same.push_back({at::empty(shape, options), true});
  return same.back().tensor;
}

void TensorPool::Trim() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    std::vector<Entry>& same = it->second;
    same.erase(std::remove_if(same.begin(), same.end(),
                              [](const Entry& e) { return !e.used; }),
               same.end());
    for (Entry& e : same) e.used = false;
    it = same.empty() ? entries_.erase(it) : std::next(it);
  }
}

int64_t TensorPool::NumTensors() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& [key, same] : entries_)
    n += static_cast<int64_t>(same.size());
  return n;
}

int64_t TensorPool::NumBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t bytes = 0;
  for (const auto& [key, same] : entries_) {
    for (const Entry& e : same) bytes += e.tensor.nbytes();
  }
  return bytes;
}

}  // namespace twist::common
