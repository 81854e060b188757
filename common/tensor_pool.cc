#include "common/tensor_pool.h"

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

at::Tensor TensorPool::Acquire(at::IntArrayRef shape,
                               const at::TensorOptions& options) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : entries_) {
    if (e.tensor.sizes() == shape &&
        e.tensor.scalar_type() == options.dtype().toScalarType() &&
        e.tensor.device() == options.device() && OnlyInPool(e.tensor)) {
      e.used = true;
      return e.tensor;
    }
  }
  entries_.push_back({at::empty(shape, options), true});
  return entries_.back().tensor;
}

void TensorPool::Trim() {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const Entry& e) { return !e.used; }),
                 entries_.end());
  for (Entry& e : entries_) e.used = false;
}

int64_t TensorPool::NumTensors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(entries_.size());
}

int64_t TensorPool::NumBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t bytes = 0;
  for (const Entry& e : entries_) bytes += e.tensor.nbytes();
  return bytes;
}

}  // namespace twist::common
