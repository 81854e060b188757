// Reuse of large tensors across rounds. The coordinator extracts every
// worker's slices each round into fresh tensors of the same shapes as last
// round's; allocating them anew costs a page fault and the zeroing of every
// page, which for large models takes longer than the copy itself. A pool hands
// back a tensor of the asked shape whose memory nobody else references any
// more (the last round's slices, once sent and dropped).
#ifndef TWIST_COMMON_IST_TENSOR_POOL_H_
#define TWIST_COMMON_IST_TENSOR_POOL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace twist::common {

class TensorPool {
 public:
  // A contiguous tensor of `shape` and `options` with unspecified contents:
  // a pooled one that no one else holds (no other handle, view or storage
  // reference), else a new one that joins the pool.
  at::Tensor Acquire(at::IntArrayRef shape, const at::TensorOptions& options);

  // Drops the tensors not acquired since the last Trim, so shapes that stop
  // being asked for do not hold memory forever. Call once per round.
  void Trim();

  int64_t NumTensors() const;
  int64_t NumBytes() const;

 private:
  struct Entry {
    at::Tensor tensor;
    bool used = false;
  };
  // Entries by shape, dtype and device: a round asks for a few hundred
  // tensors per worker, so a scan over all of them per request would grow
  // with the square of the workers.
  using Key = std::pair<std::vector<int64_t>, std::string>;
  static Key KeyOf(at::IntArrayRef shape, const at::TensorOptions& options);
  mutable std::mutex mu_;
  std::map<Key, std::vector<Entry>> entries_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_TENSOR_POOL_H_
