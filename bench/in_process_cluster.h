// Runs a whole job in one process, through the coordinator's own round loop
// (JobRunner with its WorkerRegistry and RoundBoard) and the workers' own
// training (SubnetTrainer), with each worker a thread instead of a process
// and no gRPC in between. The determinism test shows a round over gRPC gives
// the same model bit for bit, so the learning-quality benchmarks use this to
// run many jobs cheaply.
#ifndef TWIST_BENCH_IN_PROCESS_CLUSTER_H_
#define TWIST_BENCH_IN_PROCESS_CLUSTER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/named_tensors.h"
#include "twist/v1/job.pb.h"

namespace twist::bench {

struct InProcessJob {
  twist::v1::JobSpec spec;  // resolved
  std::vector<twist::v1::RoundRecord> rounds;
  std::string model_path;  // the final model (safetensors)
  double wall_s = 0;
};

// Runs `spec` with `workers` worker threads; the final model is written into
// `work_dir`. Workers train with one intra-op thread each (call
// common::ConfigureThreads(1) first).
absl::StatusOr<InProcessJob> RunJobInProcess(const twist::v1::JobSpec& spec,
                                             int workers,
                                             const std::string& work_dir);

}  // namespace twist::bench

#endif  // TWIST_BENCH_IN_PROCESS_CLUSTER_H_
