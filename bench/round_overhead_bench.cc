// Benchmark 2: the coordinator's own work in a steady-state round against a
// memcpy of the same bytes (every worker's slices out, and back), for models
// of 1M to 300M parameters and 2 to 16 workers. A round here is what the
// coordinator does with a round's data, in the order it does it:
//
//   partition  PlanRound (one balls-in-hats draw per layer and kind)
//   extract    every slot's slices into the round's pool (JobRunner::Deal)
//   check      each update's finiteness, as it arrives: the extra time the
//              assembly of received chunks takes with the check fused into
//              its copy (ChunkAssembler check_finite) over without it
//   merge      MergeUpdates into the model (tensors on --threads threads),
//              sums of shared units pooled
//
// One pool holds the round's tensors, as in the coordinator (trimmed once a
// round). The first round fills it; the measured rounds reuse it, so their
// page faults (minor faults per round, from getrusage) show whether a round
// allocates. Prints a table and one JSON object per configuration. A
// configuration whose round tensors would not fit in 80% of the machine's
// available memory is skipped with a line that says what it needs.
//
// --shape=gpt2 measures GPT-2 small instead (50304-token vocabulary, so a
// third of its bytes sit in the replicated embedding), and --mode=local_sgd
// deals every worker the whole model (keep 1: every position is shared).
// --recipe=default deals and merges as a job whose spec names neither deal
// nor outer step (twist: the rolling deal, Nesterov's outer step with its
// velocity); --recipe=old as one that names the random deal and plain
// merging.
//
// --kernels=generic|avx2|avx512 picks the slicing and merging kernels'
// instruction set (default: the widest this CPU runs; each row names its).
//
//   round_overhead_bench [--max_params=3e8] [--threads=1] [--rounds=3]
//                        [--shape=NAME] [--mode=twist|local_sgd] [--workers=N]
//                        [--recipe=default|old] [--kernels=ISA]
#include <sys/resource.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "bench/bench_util.h"
#include "common/ist/merge.h"
#include "common/ist/subnet.h"
#include "common/ist/tensor_pool.h"
#include "common/job/job_fields.h"
#include "common/job/round_options.h"
#include "common/model/model_io.h"
#include "common/model/threads.h"
#include "common/transport/tensor_chunks.h"
#include "coordinator/round_plan.h"

namespace twist::bench {
namespace {

struct Shape {
  const char* name;
  int n_layer, n_head, n_embd;
  int block_size = 128, vocab_size = 256;
  bool by_default = true;  // measured without --shape
};

constexpr Shape kShapes[] = {
    {"1M", 4, 4, 128},
    {"10M", 8, 8, 320},
    {"100M", 12, 13, 832},
    {"300M", 24, 16, 1024},
    {"gpt2", 12, 12, 768, 1024, 50304, false},
};

common::NamedTensors RandomModel(const common::ModelConfig& config) {
  common::NamedTensors out;
  for (const auto& p : common::ParameterShapes(config)) {
    out.Set(p.name, torch::randn(p.shape) * 0.02);
  }
  return out;
}

int64_t MinorFaults() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// The memory the system can hand out now (MemAvailable), in bytes; -1 if
// /proc/meminfo does not say.
int64_t AvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return -1;
}

// The memcpy of the round's bytes, out and back, as the baseline: copied in
// pieces of at most 256 MB, so that the baseline of a large configuration
// needs no second copy of its round tensors. A piece is far beyond the
// caches, so the time per byte is that of one copy of all of them.
double MemcpySeconds(int64_t bytes) {
  const int64_t piece = std::min<int64_t>(bytes, int64_t{256} << 20);
  std::vector<char> src(piece), dst(piece);
  std::memset(src.data(), 1, piece);
  std::memset(dst.data(), 2, piece);
  return MedianSeconds(3, [&] {
    for (int64_t done = 0; done < bytes; done += piece) {
      const int64_t n = std::min(piece, bytes - done);
      std::memcpy(dst.data(), src.data(), n);  // out
      std::memcpy(src.data(), dst.data(), n);  // back
    }
  });
}

// Seconds of each step of one round, summed over the measured rounds.
struct Steps {
  double partition = 0, extract = 0, check = 0, merge = 0;
  double total() const { return partition + extract + check + merge; }
};

}  // namespace
}  // namespace twist::bench

int main(int argc, char** argv) {
  using namespace twist;
  double max_params = 3.1e8;
  int threads = 1, rounds = 3, only_workers = 0;
  std::string only_shape, mode = "twist", recipe = "default", kernels;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--shape=", 0) == 0) only_shape = a.substr(8);
    if (a.rfind("--mode=", 0) == 0) mode = a.substr(7);
    if (a.rfind("--recipe=", 0) == 0) recipe = a.substr(9);
    if (a.rfind("--kernels=", 0) == 0) kernels = a.substr(10);
    if (a.rfind("--workers=", 0) == 0) {
      absl::SimpleAtoi(a.substr(10), &only_workers);
    }
    if (a.rfind("--max_params=", 0) == 0)
      absl::SimpleAtod(a.substr(13), &max_params);
    if (a.rfind("--threads=", 0) == 0) absl::SimpleAtoi(a.substr(10), &threads);
    if (a.rfind("--rounds=", 0) == 0) absl::SimpleAtoi(a.substr(9), &rounds);
  }
  common::ConfigureThreads(threads);
  if (!kernels.empty()) {
    bool known = false;
    for (common::KernelIsa isa : common::SupportedKernelIsas()) {
      if (kernels == common::KernelIsaName(isa)) {
        known = common::UseKernelIsa(isa);
      }
    }
    if (!known) {
      std::fprintf(stderr,
                   "--kernels=%s is not an instruction set this build and CPU "
                   "run; they are:",
                   kernels.c_str());
      for (common::KernelIsa isa : common::SupportedKernelIsas()) {
        std::fprintf(stderr, " %s", common::KernelIsaName(isa));
      }
      std::fprintf(stderr, "\n");
      return 2;
    }
  }
  const char* isa = common::KernelIsaName(common::ActiveKernelIsa());
  torch::manual_seed(0);
  std::printf("%-6s %7s %8s %9s %9s %9s %9s %9s %9s %7s %8s\n", "model",
              "workers", "MB moved", "partition", "extract", "check", "merge",
              "total", "memcpy", "ratio", "faults");
  if (mode != "twist" && mode != "local_sgd") {
    std::fprintf(stderr, "--mode must be twist or local_sgd, not '%s'\n",
                 mode.c_str());
    return 2;
  }
  if (recipe != "default" && recipe != "old") {
    std::fprintf(stderr, "--recipe must be default or old, not '%s'\n",
                 recipe.c_str());
    return 2;
  }
  for (const auto& shape : bench::kShapes) {
    if (only_shape.empty() ? !shape.by_default : only_shape != shape.name) {
      continue;
    }
    const common::ModelConfig config =
        common::ModelConfig::Full(shape.n_layer, shape.n_head, shape.n_embd,
                                  shape.block_size, shape.vocab_size);
    if (only_shape.empty() && config.NumParameters() > max_params) continue;
    common::NamedTensors full = bench::RandomModel(config);
    for (int workers : {2, 4, 8, 16}) {
      if (only_workers > 0 && workers != only_workers) continue;
      // The fields every JSON row of this configuration starts with; the
      // caller prints the rest and the closing brace.
      const auto print_json_head = [&] {
        std::printf(
            "JSON {\"bench\": \"round_overhead\", \"model\": \"%s\", "
            "\"mode\": \"%s\", \"recipe\": \"%s\", \"threads\": %d, "
            "\"kernels\": \"%s\", \"kernels_chosen\": %s, "
            "\"parameters\": %lld, \"workers\": %d, ",
            shape.name, mode.c_str(), recipe.c_str(), threads, isa,
            kernels.empty() ? "false" : "true",
            static_cast<long long>(config.NumParameters()), workers);
      };
      twist::v1::JobSpec spec;
      spec.set_mode(mode == "twist" ? twist::v1::MODE_TWIST
                                    : twist::v1::MODE_LOCAL_SGD);
      spec.set_seed(1);
      if (recipe == "old") {
        spec.set_deal(twist::v1::DEAL_RANDOM);
        spec.set_outer_learning_rate(1);
        spec.set_outer_momentum(0);
      }
      common::ApplyDefaults(&spec);
      const common::OuterStep outer_step = common::OuterStepOf(spec);
      const std::vector<double> capacities(workers, 1.0);
      {
        // What the rounds hold at once: the model, its velocity and the
        // merge's sums (each at most the model's float32 bytes), the
        // extracted slices (one shared extraction under local_sgd) and the
        // updates.
        const int64_t model_bytes = 4 * config.NumParameters();
        int64_t slice_bytes = 0;
        const std::vector<common::SubnetUnits> plan =
            *coordinator::PlanRound(spec, config, 1, capacities);
        for (const auto& units : plan) {
          slice_bytes +=
              4 * common::SubnetConfig(config, units).NumParameters();
        }
        const int64_t extracted =
            mode == "local_sgd" ? slice_bytes / workers : slice_bytes;
        const int64_t need = 3 * model_bytes + extracted + slice_bytes;
        const int64_t available = bench::AvailableBytes();
        if (available > 0 && need > available / 10 * 8) {
          std::printf("%-6s %7d skipped: needs about %.1f GB, %.1f GB "
                      "available (80%% of it may be used)\n",
                      shape.name, workers, need / 1e9, available / 1e9);
          print_json_head();
          std::printf("\"skipped_needs_bytes\": %lld, "
                      "\"available_bytes\": %lld}\n",
                      static_cast<long long>(need),
                      static_cast<long long>(available));
          std::fflush(stdout);
          continue;
        }
      }
      common::TensorPool pool;
      common::NamedTensors velocity;
      bench::Steps steps;
      int64_t bytes = 0, faults = 0;
      // Round 0 warms the pool up; rounds 1..R are measured.
      for (int round = 0; round <= rounds; ++round) {
        const bool measured = round > 0;
        const int64_t faults_before = bench::MinorFaults();
        double t = bench::Now();
        std::vector<common::SubnetUnits> plan =
            *coordinator::PlanRound(spec, config, round + 1, capacities);
        const double partition_s = bench::Now() - t;

        t = bench::Now();
        pool.Trim();
        // local_sgd: one extraction that every slot shares, as the
        // coordinator deals it.
        const bool same = mode == "local_sgd";
        std::vector<common::NamedTensors> slices = *common::ExtractSubnets(
            config, full,
            same ? std::vector<common::SubnetUnits>{plan[0]} : plan,
            at::kFloat, &pool);
        if (same) slices.resize(workers, slices[0]);
        const double extract_s = bench::Now() - t;

        // The workers train (the received values, slightly moved) and their
        // updates arrive in pooled update buffers, chunk by chunk, once
        // without and once with the finiteness check fused into the copy.
        bytes = 0;
        for (int w = 0; w < workers; ++w) {
          for (const auto& [name, s] : slices[w]) s.add_(1e-3);
          bytes += slices[w].NumBytes();
        }
        std::vector<common::NamedTensors> updates(workers);
        for (int w = 0; w < workers; ++w) {
          for (const auto& [name, s] : slices[w]) {
            updates[w].Set(name, pool.Acquire(s.sizes(), s.options()));
          }
        }
        double receive_s[2] = {0, 0};
        for (bool check : {false, true}) {
          t = bench::Now();
          for (int w = 0; w < workers; ++w) {
            common::ChunkAssembler assembler(
                updates[w], {common::kChunkBytes, check});
            absl::Status s = common::ForEachChunk(
                slices[w], common::kChunkBytes,
                [&](const common::ChunkRef& c) {
                  common::ChunkView view;
                  view.name = c.name;
                  view.shape = c.shape;
                  view.dtype = c.dtype;
                  view.offset = c.offset;
                  view.data.push_back({c.data, c.size});
                  view.data_size = c.size;
                  return assembler.Add(view);
                });
            if (!s.ok() || !assembler.Finish().ok()) std::abort();
          }
          receive_s[check] = bench::Now() - t;
        }
        const double check_s = std::max(0.0, receive_s[1] - receive_s[0]);
        slices.clear();  // sent: the pool may hand them out again

        t = bench::Now();
        std::vector<common::SliceUpdate> merge;
        for (int w = 0; w < workers; ++w) {
          merge.push_back({&plan[w], &updates[w], false});
        }
        if (!common::MergeUpdates(config, full, merge, outer_step, &velocity,
                                  &pool)
                 .ok()) {
          std::abort();
        }
        const double merge_s = bench::Now() - t;
        if (measured) {
          steps.partition += partition_s;
          steps.extract += extract_s;
          steps.check += check_s;
          steps.merge += merge_s;
          // The pool reused: a steady-state round should fault no page in.
          faults += bench::MinorFaults() - faults_before;
        }
      }
      // The bytes that must move: every worker's slices out, and back.
      const double memcpy_s = bench::MemcpySeconds(bytes);
      const double per = 1.0 / rounds;
      const double total = steps.total() * per;
      const double faults_per_round = static_cast<double>(faults) * per;
      std::printf(
          "%-6s %7d %8.1f %8.4fs %8.4fs %8.4fs %8.4fs %8.4fs %8.4fs %6.2fx "
          "%8.0f\n",
          shape.name, workers, 2.0 * bytes / 1e6, steps.partition * per,
          steps.extract * per, steps.check * per, steps.merge * per, total,
          memcpy_s, total / memcpy_s, faults_per_round);
      print_json_head();
      std::printf(
          "\"bytes_moved\": %lld, "
          "\"partition_s\": %.6f, \"extract_s\": %.6f, \"check_s\": %.6f, "
          "\"merge_s\": %.6f, \"memcpy_s\": %.6f, \"ratio\": %.4f, "
          "\"page_faults_per_round\": %.1f}\n",
          static_cast<long long>(2 * bytes), steps.partition * per,
          steps.extract * per, steps.check * per, steps.merge * per, memcpy_s,
          total / memcpy_s, faults_per_round);
      std::fflush(stdout);
    }
  }
  return 0;
}
