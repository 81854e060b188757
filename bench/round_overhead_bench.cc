// Benchmark 2: the coordinator's work in a round (partition, extract every
// worker's slices, merge them back) against a memcpy of the same bytes (every
// worker's slices out and back), for models of 1M to 300M parameters and 2
// to 16 workers. Prints a table and one JSON object per configuration.
//
//   round_overhead_bench [--max_params=3e8] [--threads=1]
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "bench/bench_util.h"
#include "common/merge.h"
#include "common/model_io.h"
#include "common/subnet.h"
#include "common/threads.h"
#include "coordinator/round_plan.h"

namespace twist::bench {
namespace {

struct Shape {
  const char* name;
  int n_layer, n_head, n_embd;
};

constexpr Shape kShapes[] = {
    {"1M", 4, 4, 128},
    {"10M", 8, 8, 320},
    {"100M", 12, 13, 832},
    {"300M", 24, 16, 1024},
};

common::NamedTensors RandomModel(const common::ModelConfig& config) {
  common::NamedTensors out;
  for (const auto& p : common::ParameterShapes(config)) {
    out.Set(p.name, torch::randn(p.shape) * 0.02);
  }
  return out;
}

}  // namespace
}  // namespace twist::bench

int main(int argc, char** argv) {
  using namespace twist;
  double max_params = 3.1e8;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--max_params=", 0) == 0)
      absl::SimpleAtod(a.substr(13), &max_params);
    if (a.rfind("--threads=", 0) == 0) absl::SimpleAtoi(a.substr(10), &threads);
  }
  common::ConfigureThreads(threads);
  torch::manual_seed(0);
  std::printf("%-6s %7s %8s %10s %10s %10s %10s %10s %8s\n", "model", "workers",
              "MB moved", "partition", "extract", "merge", "total", "memcpy",
              "ratio");
  for (const auto& shape : bench::kShapes) {
    const common::ModelConfig config = common::ModelConfig::Full(
        shape.n_layer, shape.n_head, shape.n_embd, 128, 256);
    if (config.NumParameters() > max_params) continue;
    common::NamedTensors full = bench::RandomModel(config);
    for (int workers : {2, 4, 8, 16}) {
      twist::v1::JobSpec spec;
      spec.set_mode(twist::v1::MODE_TWIST);
      spec.set_seed(1);
      const std::vector<double> capacities(workers, 1.0);
      std::vector<common::SubnetUnits> plan;
      const double partition_s = bench::MedianSeconds(3, [&] {
        plan = *coordinator::PlanRound(spec, config, /*round=*/1, capacities);
      });
      // As the coordinator from its second round on: the last round's slices
      // are dropped and their tensors reused from the pool.
      common::TensorPool pool;
      std::vector<common::NamedTensors> slices =
          *common::ExtractSubnets(config, full, plan, &pool);
      const double extract_s = bench::MedianSeconds(3, [&] {
        slices.clear();
        pool.Trim();
        slices = *common::ExtractSubnets(config, full, plan, &pool);
      });
      int64_t bytes = 0;
      for (const auto& s : slices) bytes += s.NumBytes();
      // The workers' trained slices: the received ones, slightly moved.
      for (auto& s : slices) {
        for (const auto& [name, t] : s) t.add_(1e-3);
      }
      common::NamedTensors theta;
      for (const auto& [name, t] : full) theta.Set(name, t.clone());
      std::vector<common::UpdateToMerge> updates;
      for (int w = 0; w < workers; ++w)
        updates.push_back({&plan[w], &slices[w], false});
      // What the coordinator runs for plain merging (the default): validation
      // of every update, then the in-place merge.
      const double merge_s = bench::MedianSeconds(3, [&] {
        for (const absl::Status& s :
             common::MergeInPlace(config, theta, updates)) {
          if (!s.ok()) std::abort();
        }
      });
      // The bytes that must move: every worker's slices out, and back.
      std::vector<char> src(bytes), dst(bytes);
      std::memset(src.data(), 1, bytes);
      std::memset(dst.data(), 2, bytes);
      const double memcpy_s = bench::MedianSeconds(3, [&] {
        std::memcpy(dst.data(), src.data(), bytes);  // out
        std::memcpy(src.data(), dst.data(), bytes);  // back
      });
      const double total = partition_s + extract_s + merge_s;
      std::printf("%-6s %7d %8.1f %9.4fs %9.4fs %9.4fs %9.4fs %9.4fs %7.2fx\n",
                  shape.name, workers, 2.0 * bytes / 1e6, partition_s,
                  extract_s, merge_s, total, memcpy_s, total / memcpy_s);
      std::printf(
          "JSON {\"bench\": \"round_overhead\", \"model\": \"%s\", "
          "\"parameters\": %lld, "
          "\"workers\": %d, \"bytes_moved\": %lld, \"partition_s\": %.6f, "
          "\"extract_s\": %.6f, "
          "\"merge_s\": %.6f, \"memcpy_s\": %.6f, \"ratio\": %.4f}\n",
          shape.name, static_cast<long long>(config.NumParameters()), workers,
          static_cast<long long>(2 * bytes), partition_s, extract_s, merge_s,
          memcpy_s, total / memcpy_s);
      std::fflush(stdout);
    }
  }
  return 0;
}
