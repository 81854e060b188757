// What compressing an update costs and saves at GPT-2 small: one keep-1/2
// worker's update (round 5 of a rolling deal over 2 workers: 82.0M
// parameters, one head and one FFN column per layer leaving it) in each
// codec, through the slot payload the daemons use. Per codec: the update's
// bytes (codes and the leaving units' leftovers in bfloat16), the worker's
// encode time (codes and its own decode, for the residual) and the
// coordinator's decode time, against today's bfloat16 deltas (a cast each
// way). Then the coordinator's side of resident units (common/ist/
// shared_view.h): the time of one steady-state deal to both workers (the
// change of every resident unit encoded, decoded and applied to the view,
// the weights of the moving units gathered) and its bytes to one worker, per
// change codec. Prints tables and "JSON {...}" lines.
//
//   codec_bench [--threads=1] [--repeats=3]
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "common/ist/partition.h"
#include "common/ist/shared_view.h"
#include "common/ist/slot_payload.h"
#include "common/model/model_io.h"

namespace twist::bench {
namespace {

using common::UpdateCodec;

// Worker `w` of 2 in round `round` of the rolling deal, half of each layer.
common::SubnetUnits Rolling(const common::ModelConfig& full, int w,
                            int64_t round) {
  common::SubnetUnits units;
  units.layers.resize(full.n_layer);
  for (int l = 0; l < full.n_layer; ++l) {
    const int h = full.n_head[l], f = full.ffn_width[l];
    units.layers[l].heads = (*common::RollingWindows(h, {h / 2, h / 2}, round))[w];
    units.layers[l].ffn_columns =
        (*common::RollingWindows(f, {f / 2, f / 2}, round))[w];
  }
  return units;
}

int Flag(int argc, char** argv, const char* name, int fallback) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::atoi(argv[i] + prefix.size());
    }
  }
  return fallback;
}

// Steady-state deals of the full model to 2 workers of a rolling deal, the
// model moving between them as merges move it.
void DealTimes(const common::ModelConfig& full, int repeats, int threads) {
  common::NamedTensors model;  // float32, the coordinator's T
  for (const auto& p : common::ParameterShapes(full)) {
    model.Set(p.name, torch::randn(p.shape) * 0.02);
  }
  std::printf("\ncoordinator, resident units: one deal to 2 workers\n");
  std::printf("%-6s %12s %12s %14s\n", "codec", "deal s", "MB to w0",
              "view MB");
  for (UpdateCodec codec : {UpdateCodec::kInt8, UpdateCodec::kInt4}) {
    common::SharedView view(full, at::kBFloat16, {codec, 0.02});
    const std::vector<std::string> ids = {"w0", "w1"};
    int64_t round = 4;
    double bytes = 0;
    auto deal = [&] {
      const std::vector<common::SubnetUnits> units = {
          Rolling(full, 0, round), Rolling(full, 1, round)};
      common::ViewDeal dealt = *view.Deal(round, model, ids, units);
      bytes = static_cast<double>(dealt.assignments[0].NumBytes());
      for (const auto& id : ids) view.Delivered(id);
      ++round;
    };
    deal();  // weights: nobody holds anything yet
    const double deal_s = MedianSeconds(repeats, [&] {
      for (auto& [name, t] : model) t.add_(t.sign() * 1e-4);  // a "merge"
      deal();
    });
    const double view_bytes = static_cast<double>(view.view().NumBytes());
    std::printf("%-6s %12.3f %12.1f %14.1f\n", common::UpdateCodecName(codec),
                deal_s, bytes / 1e6, view_bytes / 1e6);
    std::printf("JSON {\"bench\": \"deal\", \"codec\": \"%s\", "
                "\"deal_s\": %.4f, \"bytes_to_worker\": %.0f, "
                "\"view_bytes\": %.0f, \"threads\": %d}\n",
                common::UpdateCodecName(codec), deal_s, bytes, view_bytes,
                threads);
  }
}

int Main(int argc, char** argv) {
  const int threads = Flag(argc, argv, "threads", 1);
  const int repeats = Flag(argc, argv, "repeats", 3);
  at::set_num_threads(threads);
  const common::ModelConfig full =
      common::ModelConfig::Full(12, 12, 768, 1024, 50304);
  const common::SubnetUnits units = Rolling(full, 0, 5);
  const common::SubnetUnits leaving =
      common::UnitsNotIn(units, Rolling(full, 0, 6));
  torch::manual_seed(1);
  common::NamedTensors values;  // float32 deltas of the worker's subnetwork
  int64_t parameters = 0;
  for (const auto& p :
       common::ParameterShapes(common::SubnetConfig(full, units))) {
    values.Set(p.name, torch::randn(p.shape) * 1e-3);
    parameters += values.Find(p.name)->numel();
  }
  std::printf("GPT-2 small, keep 1/2, round 5 of a rolling deal: %.1fM "
              "parameters, %d thread(s)\n", parameters / 1e6, threads);
  std::printf("%-6s %12s %10s %12s %12s\n", "codec", "MB", "vs bf16",
              "encode s", "decode s");
  // Today's bfloat16 deltas: a cast on the worker, a widening on the
  // coordinator.
  const double bf16_bytes = 2.0 * parameters;
  const double bf16_encode = MedianSeconds(repeats, [&] {
    for (const auto& [name, t] : values) t.to(at::kBFloat16);
  });
  common::NamedTensors narrowed;
  for (const auto& [name, t] : values) narrowed.Set(name, t.to(at::kBFloat16));
  const double bf16_decode = MedianSeconds(repeats, [&] {
    for (const auto& [name, t] : narrowed) t.to(at::kFloat);
  });
  std::printf("%-6s %12.1f %10.3f %12.3f %12.3f\n", "bf16", bf16_bytes / 1e6,
              1.0, bf16_encode, bf16_decode);
  std::printf("JSON {\"bench\": \"codec\", \"codec\": \"bf16\", \"bytes\": %.0f, "
              "\"encode_s\": %.4f, \"decode_s\": %.4f, \"threads\": %d, "
              "\"parameters\": %lld}\n",
              bf16_bytes, bf16_encode, bf16_decode, threads,
              static_cast<long long>(parameters));
  for (UpdateCodec codec :
       {UpdateCodec::kInt8, UpdateCodec::kInt4, UpdateCodec::kTopK}) {
    common::UpdateForm form;
    form.encoding = {codec, 0.02};
    form.leaving = leaving;
    const common::SlotPayload payload(full, units, at::kBFloat16, false, form);
    common::EncodedUpdate encoded;
    const double encode_s = MedianSeconds(repeats, [&] {
      encoded = *payload.EncodeUpdate(values);
    });
    const double decode_s = MedianSeconds(repeats, [&] {
      if (!payload.DecodeUpdate(encoded.tensors).ok()) std::abort();
    });
    const double bytes = static_cast<double>(encoded.tensors.NumBytes());
    std::printf("%-6s %12.1f %10.3f %12.3f %12.3f\n",
                common::UpdateCodecName(codec), bytes / 1e6,
                bytes / bf16_bytes, encode_s, decode_s);
    std::printf("JSON {\"bench\": \"codec\", \"codec\": \"%s\", \"bytes\": %.0f, "
                "\"encode_s\": %.4f, \"decode_s\": %.4f, \"threads\": %d, "
                "\"parameters\": %lld}\n",
                common::UpdateCodecName(codec), bytes, encode_s, decode_s,
                threads, static_cast<long long>(parameters));
  }
  DealTimes(full, repeats, threads);
  return 0;
}

}  // namespace
}  // namespace twist::bench

int main(int argc, char** argv) { return twist::bench::Main(argc, argv); }
