// Resident units (compressed jobs): the coordinator's one copy of the model
// as the workers hold it, and the assignments that keep each worker's copy
// equal to it.
//
// A worker that held a unit in the last deal and whose update of it was
// accepted holds the view's values of that unit; so does every worker for
// the replicated parameters. Dealing it the unit again sends only the code
// of the change from the view to the true model (the job's `compression`),
// and the view advances by exactly what the code carries (AdvancedView, the
// arithmetic the worker uses), so what the worker holds and the view stay
// equal bit for bit; what the code did not carry is still in the difference
// and goes with a later change. A unit the worker does not hold travels as
// the view's own values, which first take the true model's where no worker
// holds the unit. One code per parameter and resident unit set: workers
// whose resident sets of a layer differ but overlap are sent the shared
// units as weights. The view is kept in the wire's type (the model's half in
// bfloat16); nothing of it is checkpointed: after a restart no worker is
// resident.
#ifndef TWIST_COMMON_IST_SHARED_VIEW_H_
#define TWIST_COMMON_IST_SHARED_VIEW_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/slot_payload.h"
#include "common/ist/subnet.h"
#include "common/ist/update_codec.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// One deal's assignments, by slot.
struct ViewDeal {
  std::vector<AssignmentForm> forms;
  // The round whose view a resident slot's worker holds (0: not resident).
  std::vector<int32_t> resident_rounds;
  // In the order of SlotPayload(..., forms[i]).assignment().
  std::vector<NamedTensors> assignments;
};

class SharedView {
 public:
  // `encoding` not kNone; `wire` float32 or bfloat16.
  SharedView(const ModelConfig& full, at::ScalarType wire,
             UpdateEncoding encoding);

  // Deals `round` of the model `params` (float32, the full shapes, CPU) to
  // the workers `worker_ids`, the units `units[i]` to slot i, and advances
  // the view. InvalidArgument for a missing or misshapen parameter or units
  // that do not fit.
  absl::StatusOr<ViewDeal> Deal(int32_t round, const NamedTensors& params,
                                const std::vector<std::string>& worker_ids,
                                const std::vector<SubnetUnits>& units);

  // The coordinator accepted the worker's update of the last deal: it holds
  // that deal's view of its units.
  void Delivered(const std::string& worker_id);

  // The view, in the wire's type, the full shapes (empty before a deal).
  const NamedTensors& view() const { return view_; }

 private:
  struct Held {
    int64_t deal = 0;
    int32_t round = 0;
    SubnetUnits units;
    bool delivered = false;
  };

  // Each slot's form for this deal: resident where its worker holds the
  // last deal's view, with the units it holds again, less those that
  // another slot holds in a different resident set.
  std::vector<AssignmentForm> Forms(const std::vector<std::string>& worker_ids,
                                    const std::vector<SubnetUnits>& units,
                                    std::vector<int32_t>* rounds) const;

  const ModelConfig full_;
  const at::ScalarType wire_;
  const UpdateEncoding encoding_;
  NamedTensors view_;
  int64_t deal_ = 0;  // deals so far
  std::map<std::string, Held> held_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_SHARED_VIEW_H_
