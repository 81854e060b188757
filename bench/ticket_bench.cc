// Benchmark 6: golden tickets. Subnetworks of a trained model, without any
// fine-tuning: at keep ratios 3/4, 1/2, 1/4, the validation loss of random
// subnetworks and of the best of them by a calibration score (computed on
// batches carved from the training data, never the validation data), with
// partial sums scaled by k/m or with the shift correction, and the inference
// speedup of the pruned model on the CPU; and the same model pruned to the
// same sizes by structured post-training pruning (weight magnitude, or FLAP's
// fluctuation on the calibration batches; common/ist/unit_importance.h). Run
// it on a TwIST-trained model and on a plainly trained one.
//
//   ticket_bench --model=FILE --label=NAME --data=DIR --csv=FILE [--samples=12]
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "common/data/dataset.h"
#include "common/training/evaluation.h"
#include "common/training/local_training.h"
#include "common/model/model_io.h"
#include "common/ist/pruning.h"
#include "common/ist/unit_importance.h"
#include "common/model/safetensors.h"
#include "common/model/threads.h"

namespace twist::bench {
namespace {

// Mean cross-entropy of `model` on `tokens` (N, T) in batches of `batch`.
double Loss(common::GptImpl& model, const torch::Tensor& tokens, int batch) {
  torch::NoGradGuard no_grad;
  model.eval();
  double sum = 0;
  int n = 0;
  for (int64_t i = 0; i + batch <= tokens.size(0); i += batch, ++n) {
    auto x = tokens.slice(0, i, i + batch);
    sum += model.Loss(x.slice(1, 0, x.size(1) - 1), x.slice(1, 1, x.size(1)))
               .item<double>();
  }
  return sum / n;
}

// Median milliseconds of one forward pass on `tokens`.
double ForwardMs(common::GptImpl& model, const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  return 1e3 * MedianSeconds(9, [&] { model.forward(tokens); });
}

}  // namespace
}  // namespace twist::bench

int main(int argc, char** argv) {
  using namespace twist;
  std::string model_path, label = "model", data, csv_path;
  int samples = 12, batch = 16, eval_batches = 16, calibration_batches = 4;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) {
      return a.rfind(flag, 0) == 0 ? a.substr(std::strlen(flag))
                                   : std::string();
    };
    if (auto v = value("--model="); !v.empty()) model_path = v;
    if (auto v = value("--label="); !v.empty()) label = v;
    if (auto v = value("--data="); !v.empty()) data = v;
    if (auto v = value("--csv="); !v.empty()) csv_path = v;
    if (auto v = value("--samples="); !v.empty()) absl::SimpleAtoi(v, &samples);
  }
  common::ConfigureThreads(1);
  auto loaded = common::ReadSafetensors(model_path);
  auto full = common::LoadModel(model_path);
  auto dataset = common::Dataset::Open(data);
  if (!loaded.ok() || !full.ok() || !dataset.ok()) {
    std::fprintf(stderr, "cannot load %s or %s\n", model_path.c_str(),
                 data.c_str());
    return 1;
  }
  const common::ModelConfig config = (*full)->config();
  const int T = config.block_size + 1;  // inputs and targets
  // Validation windows, and calibration windows from the training data.
  auto val = common::CalibrationTokens(dataset->val(), eval_batches, batch, T);
  auto calibration = common::CalibrationTokens(dataset->train(),
                                               calibration_batches, batch, T);
  if (!val.ok() || !calibration.ok()) return 1;
  const auto contributions = common::EstimateUnitContributions(
      **full, calibration->slice(1, 0, config.block_size));
  const torch::Tensor timing_tokens =
      val->slice(0, 0, batch).slice(1, 0, config.block_size);
  const double full_ms = bench::ForwardMs(**full, timing_tokens);
  const double full_loss = bench::Loss(**full, *val, batch);

  std::ostringstream csv;
  if (!std::filesystem::exists(csv_path)) {
    csv << "model,kind,scaling,keep,val_loss,val_loss_sd,calibration_loss,"
           "parameters,"
           "forward_ms,speedup\n";
  }
  csv << absl::StrFormat("%s,full,none,1,%.5f,0,%.5f,%d,%.3f,1\n", label,
                         full_loss, bench::Loss(**full, *calibration, batch),
                         config.NumParameters(), full_ms);
  std::printf("%s: full model val loss %.4f, forward %.2f ms\n", label.c_str(),
              full_loss, full_ms);
  for (double keep : {0.75, 0.5, 0.25}) {
    for (bool corrected : {false, true}) {
      std::vector<double> val_losses;
      double best_calibration = std::numeric_limits<double>::infinity(),
             best_val = 0;
      double forward_ms = 0;
      int64_t parameters = 0;
      for (int s = 0; s < samples; ++s) {
        auto units = common::RandomSubnet(config, keep, 1000 + s);
        auto pruned =
            common::PruneModel(config, loaded->tensors, *units,
                               common::PartialSumScaling::kInverseKeepRatio,
                               corrected ? &contributions : nullptr);
        if (!pruned.ok()) return 1;
        const double c = bench::Loss(**pruned, *calibration, batch);
        const double v = bench::Loss(**pruned, *val, batch);
        val_losses.push_back(v);
        if (c < best_calibration) {
          best_calibration = c;
          best_val = v;
        }
        if (s == 0) {
          forward_ms = bench::ForwardMs(**pruned, timing_tokens);
          parameters = (*pruned)->config().NumParameters();
        }
      }
      double mean = 0, sd = 0;
      for (double v : val_losses) mean += v / val_losses.size();
      for (double v : val_losses)
        sd += (v - mean) * (v - mean) / (val_losses.size() - 1);
      sd = std::sqrt(sd);
      const char* scaling = corrected ? "correction" : "scaled";
      csv << absl::StrFormat("%s,random,%s,%g,%.5f,%.5f,,%d,%.3f,%.3f\n", label,
                             scaling, keep, mean, sd, parameters, forward_ms,
                             full_ms / forward_ms);
      csv << absl::StrFormat("%s,best,%s,%g,%.5f,0,%.5f,%d,%.3f,%.3f\n", label,
                             scaling, keep, best_val, best_calibration,
                             parameters, forward_ms, full_ms / forward_ms);
      std::printf(
          "%s keep %.2f %-10s: random %.4f +- %.4f, best-of-%d %.4f, %.2fx "
          "faster\n",
          label.c_str(), keep, scaling, mean, sd, samples, best_val,
          full_ms / forward_ms);
    }
  }
  // Structured post-training pruning of the same model to the same sizes,
  // by each criterion of common/ist/unit_importance.h, each with the partial
  // sums left, scaled by k/m, or shift-corrected (FLAP's bias compensation).
  const common::UnitScores magnitude = common::MagnitudeScores(**full);
  const common::UnitScores fluctuation = common::FluctuationScores(
      **full, calibration->slice(1, 0, config.block_size));
  for (double keep : {0.5, 0.25}) {
    for (const auto& [criterion, scores] :
         {std::pair<const char*, const common::UnitScores*>{"magnitude",
                                                            &magnitude},
          {"fluctuation", &fluctuation}}) {
      auto units = common::TopUnits(config, *scores, keep);
      if (!units.ok()) return 1;
      for (const char* scaling : {"none", "scaled", "correction"}) {
        const bool corrected = std::string(scaling) == "correction";
        auto pruned = common::PruneModel(
            config, loaded->tensors, *units,
            std::string(scaling) == "scaled"
                ? common::PartialSumScaling::kInverseKeepRatio
                : common::PartialSumScaling::kNone,
            corrected ? &contributions : nullptr);
        if (!pruned.ok()) return 1;
        const double v = bench::Loss(**pruned, *val, batch);
        const double c = bench::Loss(**pruned, *calibration, batch);
        csv << absl::StrFormat("%s,pruned-%s,%s,%g,%.5f,0,%.5f,%d,,\n", label,
                               criterion, scaling, keep, v, c,
                               (*pruned)->config().NumParameters());
        std::printf("%s keep %.2f pruned by %-11s %-10s: %.4f\n",
                    label.c_str(), keep, criterion, scaling, v);
      }
    }
  }
  std::ofstream(csv_path, std::ios::app) << csv.str();
  return 0;
}
