// Benchmark 3 (C++ side): the worker's training step on a subnetwork that
// keeps a fraction of every layer's heads and FFN columns, through the same
// TrainLocalSteps the worker daemon runs. One keep ratio per process, so the
// peak resident memory is that ratio's. bench/python_step.py is the PyTorch
// counterpart with the same model, batch and threads.
//
//   worker_step_bench --keep=0.5 [--threads=1] [--steps=20] [--warmup=3]
//                     [--n_layer=4
//                     --n_head=4 --n_embd=128 --block_size=128
//                     --batch_size=16 --vocab_size=256]
//                     [--compute_dtype=float32|bfloat16]
//                     [--activation=gelu|gelu_tanh] [--bench=worker_step]
//                     [--device=cpu|cuda|cuda:N|auto]
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/strings/numbers.h"
#include "bench/bench_util.h"
#include "common/data/dataset.h"
#include "common/model/gpt.h"
#include "common/training/local_training.h"
#include "common/base/rng.h"
#include "common/ist/subnet.h"
#include "common/model/threads.h"
#include "common/training/compute_dtype.h"

int main(int argc, char** argv) {
  using namespace twist;
  double keep = 1.0;
  int threads = 1, steps = 20, warmup = 3, n_layer = 4, n_head = 4, n_embd = 128,
      block = 128, batch = 16, vocab = 256;
  std::string device_name = "cpu", compute = "float32", label = "worker_step",
              activation = "gelu";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) {
      return a.rfind(flag, 0) == 0 ? a.substr(std::strlen(flag))
                                   : std::string();
    };
    if (auto v = value("--keep="); !v.empty()) absl::SimpleAtod(v, &keep);
    if (auto v = value("--threads="); !v.empty()) absl::SimpleAtoi(v, &threads);
    if (auto v = value("--steps="); !v.empty()) absl::SimpleAtoi(v, &steps);
    if (auto v = value("--warmup="); !v.empty()) absl::SimpleAtoi(v, &warmup);
    if (auto v = value("--n_layer="); !v.empty()) absl::SimpleAtoi(v, &n_layer);
    if (auto v = value("--n_head="); !v.empty()) absl::SimpleAtoi(v, &n_head);
    if (auto v = value("--n_embd="); !v.empty()) absl::SimpleAtoi(v, &n_embd);
    if (auto v = value("--block_size="); !v.empty())
      absl::SimpleAtoi(v, &block);
    if (auto v = value("--batch_size="); !v.empty())
      absl::SimpleAtoi(v, &batch);
    if (auto v = value("--vocab_size="); !v.empty()) absl::SimpleAtoi(v, &vocab);
    if (auto v = value("--compute_dtype="); !v.empty()) compute = v;
    if (auto v = value("--activation="); !v.empty()) activation = v;
    if (auto v = value("--bench="); !v.empty()) label = v;
    if (auto v = value("--device="); !v.empty()) device_name = v;
  }
  const auto device = common::ResolveDevice(device_name);
  if (!device.ok()) {
    std::fprintf(stderr, "%s\n", device.status().ToString().c_str());
    return 2;
  }
  if (compute != "float32" && compute != "bfloat16") {
    std::fprintf(stderr, "--compute_dtype must be float32 or bfloat16\n");
    return 2;
  }
  const at::ScalarType compute_dtype =
      compute == "bfloat16" ? at::kBFloat16 : at::kFloat;
  if (compute_dtype == at::kBFloat16) {
    if (absl::Status s = common::CheckBFloat16Compute(*device); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 2;
    }
  }
  common::ConfigureThreads(threads);
  common::ModelConfig full =
      common::ModelConfig::Full(n_layer, n_head, n_embd, block, vocab);
  full.activation = activation == "gelu_tanh" ? common::Activation::kGeluTanh
                                              : common::Activation::kGelu;
  common::SubnetUnits units = common::AllUnits(full);
  for (auto& layer : units.layers) {
    layer.heads.resize(std::max<size_t>(1, std::lround(keep * n_head)));
    layer.ffn_columns.resize(
        std::max<size_t>(1, std::lround(keep * 4 * n_embd)));
  }
  common::Gpt model(common::SubnetConfig(full, units));
  model->InitWeights(1);
  model->SetPartialSumScales(common::ScalesFor(
      full, units, common::PartialSumScaling::kInverseKeepRatio));
  model->to(*device);  // as the worker does before TrainLocalSteps

  // Random byte tokens in a token file, as the worker reads its dataset.
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("twist_step_bench_" + std::to_string(getpid())))
                               .string();
  std::vector<uint16_t> tokens(1 << 20);
  common::SplitMix64 rng(7);
  for (auto& t : tokens) t = static_cast<uint16_t>(rng.UniformBelow(vocab));
  if (!common::WriteTokenFile(path, tokens).ok()) return 1;
  auto file = common::TokenFile::Open(path);
  if (!file.ok()) return 1;

  common::LocalTrainingOptions options;
  options.batch_size = batch;
  options.context = block;
  options.schedule.peak = 1e-3;
  options.schedule.total_steps = 1000;
  options.compute_dtype = compute_dtype;
  options.steps = warmup;
  (void)common::TrainLocalSteps(*model, **file, options);
  options.steps = steps;
  options.round = 2;
  auto result = common::TrainLocalSteps(*model, **file, options);
  std::filesystem::remove(path);
  if (!result.ok()) {
    std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
    return 1;
  }
  const double step_s = result->compute_s / steps;
  const int64_t params = common::SubnetConfig(full, units).NumParameters();
  std::printf(
      "JSON {\"bench\": \"%s\", \"impl\": \"cpp\", \"keep\": %.4f, "
      "\"device\": \"%s\", \"threads\": %d, \"compute_dtype\": \"%s\", "
      "\"batch_size\": %d, \"context\": %d, \"n_layer\": %d, \"n_embd\": %d, "
      "\"parameters\": %lld, \"step_s\": %.6f, \"tokens_per_s\": %.1f, "
      "\"peak_rss_bytes\": %lld}\n",
      label.c_str(), keep, device->str().c_str(), threads, compute.c_str(),
      batch, block, n_layer, n_embd, static_cast<long long>(params),
      step_s, batch * block / step_s,
      static_cast<long long>(bench::PeakRssBytes()));
  return 0;
}
