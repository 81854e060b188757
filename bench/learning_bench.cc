// Benchmark 5: learning quality per unit of cost. Runs one job in process
// (bench/in_process_cluster.h) and appends one CSV row per round: validation
// loss against rounds, bytes communicated and worker compute. bench/learning.sh
// runs the grid of modes, worker counts, units per worker, local steps and
// seeds, and bench/plot.py draws the figures.
//
//   learning_bench run --data=DIR --workers=2 --label=twist-2w [submit options
//                      such as --rounds --local_steps --heads_per_worker
//                      --seed]
//                      --csv=FILE [--model_out=FILE]
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/in_process_cluster.h"
#include "client/command_line.h"
#include "client/spec_input.h"
#include "common/model/threads.h"

int main(int argc, char** argv) {
  using namespace twist;
  auto line =
      client::ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
  if (!line.ok()) {
    std::fprintf(stderr, "%s\n", std::string(line.status().message()).c_str());
    return 2;
  }
  std::set<std::string> allowed = client::SpecOptionNames();
  allowed.insert({"workers", "label", "csv", "model_out"});
  if (absl::Status s = client::CheckOptions(*line, allowed); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  twist::v1::JobSpec spec;
  spec.set_checkpoint_every(-1);
  if (absl::Status s = client::ApplySpecOptions(*line, &spec); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  const int workers = static_cast<int>(line->GetInt("workers", 2).value_or(2));
  const std::string label = line->Get("label", "job");
  common::ConfigureThreads(1);
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("twist-learning-", getpid()))
                              .string();
  std::filesystem::create_directories(dir);
  auto job = bench::RunJobInProcess(spec, workers, dir);
  if (!job.ok()) {
    std::fprintf(stderr, "%s: %s\n", label.c_str(),
                 std::string(job.status().message()).c_str());
    return 1;
  }
  if (line->Has("model_out")) {
    std::filesystem::copy_file(
        job->model_path, line->Get("model_out"),
        std::filesystem::copy_options::overwrite_existing);
  }
  std::filesystem::remove_all(dir);
  const bool header = !std::filesystem::exists(line->Get("csv"));
  std::ofstream csv(line->Get("csv"), std::ios::app);
  if (header) {
    csv << "label,seed,workers,mode,local_steps,round,steps_per_worker,train_"
           "loss,val_loss,"
           "bytes,worker_seconds,flops,wall_seconds\n";
  }
  int64_t bytes = 0;
  double worker_s = 0, flops = 0;
  for (const auto& r : job->rounds) {
    for (const auto& w : r.workers()) {
      bytes += w.bytes_sent() + w.bytes_received();
      worker_s += w.compute_s();
      // 6 FLOPs per parameter per token (forward and backward), the usual
      // estimate; attention's T^2 terms are left out.
      flops += 6.0 * static_cast<double>(w.parameters()) *
               static_cast<double>(w.tokens());
    }
    csv << absl::StrFormat(
        "%s,%d,%d,%s,%d,%d,%d,%s,%s,%d,%.3f,%.4g,%.2f\n", label,
        job->spec.seed(), workers,
        job->spec.mode() == twist::v1::MODE_LOCAL_SGD ? "local_sgd" : "twist",
        job->spec.local_steps(), r.round(), r.round() * job->spec.local_steps(),
        r.round() == 0 ? "" : absl::StrFormat("%.5f", r.train_loss()),
        r.has_val_loss() ? absl::StrFormat("%.5f", r.val_loss()) : "", bytes,
        worker_s, flops, job->wall_s);
  }
  std::printf(
      "%s seed %d: final val loss %.4f, %.1f MB moved, %.0f worker-seconds, "
      "%.0f s\n",
      label.c_str(), static_cast<int>(job->spec.seed()),
      job->rounds.back().val_loss(), bytes / 1e6, worker_s, job->wall_s);
  return 0;
}
