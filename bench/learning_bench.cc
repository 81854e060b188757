// Benchmark 5: learning quality per unit of cost. Three commands:
//
//   learning_bench run --data=DIR --workers=2 --label=twist-2w [--threads=1]
//                      [submit options: --rounds --local_steps --seed
//                      --optimizer_state --deal ...] --csv=FILE
//                      [--model_out=FILE] [--score_batches=200
//                      --summary=FILE]
//     Runs one job in process (tests/support/in_process_cluster.h) and
//     appends one CSV row per round: validation loss against rounds, bytes
//     communicated, worker compute and seconds since the job started. With
//     --score_batches, scores the final model on
//     that many fixed validation batches (the same windows `score` reads) and
//     appends a line to the summary CSV.
//   learning_bench init --out=FILE [submit options]
//     Writes the job's model as it stands before round 1 (its seeded
//     initialisation): where a plain training loop starts from.
//   learning_bench score --model=FILE --data=DIR --batches=200
//                        --batch_size=12 [--context=T]
//     Prints the mean validation loss of a model file over fixed batches.
//
// bench/learning.sh and bench/optimizer_state.sh run the grids; plot.py draws.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/command_line.h"
#include "client/spec_input.h"
#include "common/data/dataset.h"
#include "common/job/job_config.h"
#include "common/model/model_io.h"
#include "common/model/threads.h"
#include "common/training/evaluation.h"
#include "coordinator/job_spec.h"
#include "tests/support/in_process_cluster.h"

namespace twist::bench {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::StatusOr<double> Score(const std::string& model_path,
                             const std::string& data, int batches,
                             int batch_size, int context) {
  auto model = common::LoadModel(model_path);
  if (!model.ok()) return model.status();
  auto dataset = common::Dataset::Open(data);
  if (!dataset.ok()) return dataset.status();
  if (context <= 0) context = (*model)->config().block_size;
  return common::EvaluateLoss(**model, dataset->val(), batches, batch_size,
                              context);
}

int Init(const client::CommandLine& line) {
  twist::v1::JobSpec spec;
  if (absl::Status s = client::ApplySpecOptions(line, &spec); !s.ok()) {
    return Fail(s);
  }
  auto resolved = coordinator::ResolveJobSpec(spec);
  if (!resolved.ok()) return Fail(resolved.status());
  common::Gpt model(common::ModelConfigOf(*resolved));
  model->InitWeights(resolved->seed());
  if (absl::Status s = common::SaveModel(line.Get("out"), *model); !s.ok()) {
    return Fail(s);
  }
  return 0;
}

int ScoreCommand(const client::CommandLine& line) {
  auto loss = Score(line.Get("model"), line.Get("data"),
                    static_cast<int>(line.GetInt("batches", 200).value_or(200)),
                    static_cast<int>(line.GetInt("batch_size", 12).value_or(12)),
                    static_cast<int>(line.GetInt("context", 0).value_or(0)));
  if (!loss.ok()) return Fail(loss.status());
  std::printf("%.5f\n", *loss);
  return 0;
}

int Run(const client::CommandLine& line) {
  twist::v1::JobSpec spec;
  spec.set_checkpoint_every(-1);
  if (absl::Status s = client::ApplySpecOptions(line, &spec); !s.ok()) {
    return Fail(s);
  }
  const int workers = static_cast<int>(line.GetInt("workers", 2).value_or(2));
  const int threads = static_cast<int>(line.GetInt("threads", 1).value_or(1));
  const std::string label = line.Get("label", "job");
  common::ConfigureThreads(threads);
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("twist-learning-", getpid()))
                              .string();
  std::filesystem::create_directories(dir);
  const double started_at = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  auto job = testing::RunJobInProcess(spec, workers, dir);
  if (!job.ok()) {
    std::fprintf(stderr, "%s: %s\n", label.c_str(),
                 std::string(job.status().message()).c_str());
    return 1;
  }
  double final_loss = job->rounds.back().val_loss();
  const int score_batches =
      static_cast<int>(line.GetInt("score_batches", 0).value_or(0));
  if (score_batches > 0) {
    auto loss = Score(job->model_path, job->spec.data().path(), score_batches,
                      job->spec.batch_size(), job->spec.model().block_size());
    if (!loss.ok()) return Fail(loss.status());
    final_loss = *loss;
  }
  if (line.Has("model_out")) {
    std::filesystem::copy_file(
        job->model_path, line.Get("model_out"),
        std::filesystem::copy_options::overwrite_existing);
  }
  std::filesystem::remove_all(dir);
  int64_t bytes = 0, bytes_sent = 0, bytes_received = 0;
  double worker_s = 0, flops = 0;
  std::ostringstream rows;
  for (const auto& r : job->rounds) {
    for (const auto& w : r.workers()) {
      bytes_sent += w.bytes_sent();
      bytes_received += w.bytes_received();
      bytes += w.bytes_sent() + w.bytes_received();
      worker_s += w.compute_s();
      // 6 FLOPs per parameter per token (forward and backward), the usual
      // estimate; attention's T^2 terms are left out.
      flops += 6.0 * static_cast<double>(w.parameters()) *
               static_cast<double>(w.tokens());
    }
    rows << absl::StrFormat(
        "%s,%d,%d,%s,%d,%d,%d,%s,%s,%d,%.3f,%.4g,%.2f,%.2f\n", label,
        job->spec.seed(), workers, common::ModeName(job->spec.mode()),
        job->spec.local_steps(), r.round(), r.round() * job->spec.local_steps(),
        r.round() == 0 ? "" : absl::StrFormat("%.5f", r.train_loss()),
        r.has_val_loss() ? absl::StrFormat("%.5f", r.val_loss()) : "", bytes,
        worker_s, flops, job->wall_s, r.finished_at() - started_at);
  }
  if (line.Has("csv")) {
    const bool header = !std::filesystem::exists(line.Get("csv"));
    std::ofstream csv(line.Get("csv"), std::ios::app);
    if (header) {
      csv << "label,seed,workers,mode,local_steps,round,steps_per_worker,"
             "train_loss,val_loss,bytes,worker_seconds,flops,wall_seconds,"
             "elapsed_seconds\n";
    }
    csv << rows.str();
  }
  if (line.Has("summary")) {
    const bool header = !std::filesystem::exists(line.Get("summary"));
    std::ofstream csv(line.Get("summary"), std::ios::app);
    if (header) {
      csv << "label,seed,workers,threads,mode,optimizer_state,deal,"
             "local_steps,final_val_loss,bytes_sent,bytes_received,"
             "worker_seconds,wall_seconds\n";
    }
    csv << absl::StrFormat(
        "%s,%d,%d,%d,%s,%s,%s,%d,%.5f,%d,%d,%.2f,%.2f\n", label,
        job->spec.seed(), workers, threads, common::ModeName(job->spec.mode()),
        twist::v1::OptimizerState_Name(job->spec.optimizer().state()),
        twist::v1::Deal_Name(job->spec.deal()), job->spec.local_steps(),
        final_loss, bytes_sent, bytes_received, worker_s, job->wall_s);
  }
  std::printf(
      "%s seed %d: final val loss %.4f, %.1f MB moved, %.0f worker-seconds, "
      "%.0f s\n",
      label.c_str(), static_cast<int>(job->spec.seed()), final_loss,
      bytes / 1e6, worker_s, job->wall_s);
  return 0;
}

}  // namespace
}  // namespace twist::bench

int main(int argc, char** argv) {
  using namespace twist;
  auto line =
      client::ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
  if (!line.ok()) return bench::Fail(line.status());
  std::set<std::string> allowed = client::SpecOptionNames();
  allowed.insert({"workers", "threads", "label", "csv", "model_out",
                  "score_batches", "summary", "out", "model", "batches",
                  "context"});
  if (absl::Status s = client::CheckOptions(*line, allowed); !s.ok()) {
    return bench::Fail(s);
  }
  if (line->command == "run") return bench::Run(*line);
  if (line->command == "init") return bench::Init(*line);
  if (line->command == "score") return bench::ScoreCommand(*line);
  std::fprintf(stderr, "usage: learning_bench run|init|score ... (see the "
                       "comment at the top of bench/learning_bench.cc)\n");
  return 2;
}
