// End-to-end tests with the real binaries as separate processes on loopback:
// a coordinator, two workers and twistctl. One cluster serves every test of
// this binary (ctest runs the binary as one test) to keep the suite short.
#include <grpcpp/grpcpp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/data/batches.h"
#include "common/data/dataset.h"
#include "common/data/synthetic_corpus.h"
#include "common/ist/merge.h"
#include "common/ist/subnet.h"
#include "common/job/job_config.h"
#include "common/job/round_options.h"
#include "common/model/model_io.h"
#include "common/model/safetensors.h"
#include "common/model/threads.h"
#include "common/rpc/rpc_util.h"
#include "common/training/compute_dtype.h"
#include "common/transport/subnet_proto.h"
#include "coordinator/round_plan.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/test_models.h"
#include "twist/v1/job_service.grpc.pb.h"
#include "worker/subnet_trainer.h"

namespace twist {
namespace {

using ::twist::testing::Cluster;
using ::twist::testing::HttpGet;

// A round record's bytes: the tensors' `tensor_bytes` plus `messages`
// headers (the spec, the units and the tensor list: a few kB).
void ExpectMessageBytes(const nlohmann::json& bytes, int64_t tensor_bytes,
                        int messages = 1) {
  EXPECT_GT(bytes.get<int64_t>(), tensor_bytes);
  EXPECT_LT(bytes.get<int64_t>(), tensor_bytes + messages * 4096);
}

class EndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    common::ConfigureThreads(1);  // as the workers, for bit-exact comparisons
    dir_ = new std::string(twist::testing::MakeTempDir());
    auto data = twist::testing::PrepareSyntheticDataset(*dir_, 300000);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new std::string(*data);
    cluster_ = new Cluster(*dir_);
    absl::Status s = cluster_->StartCoordinator();
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(cluster_->StartWorker("alpha").ok());
    ASSERT_TRUE(cluster_->StartWorker("beta").ok());
    s = cluster_->WaitForLiveWorkers(2);
    ASSERT_TRUE(s.ok()) << s;
  }

  static void TearDownTestSuite() {
    delete cluster_;
    if (!::testing::UnitTest::GetInstance()->Failed())
      std::filesystem::remove_all(*dir_);
  }

  // Submits with twistctl and waits for the end; returns the job id.
  int64_t SubmitAndWatch(const std::vector<std::string>& options,
                         const std::string& data = "") {
    std::vector<std::string> args = {
        "submit", "--data=" + (data.empty() ? *data_ : data), "--watch"};
    args.insert(args.end(), options.begin(), options.end());
    std::string output;
    const int rc = cluster_->Twistctl(args, &output);
    EXPECT_EQ(rc, 0) << output << "\ncoordinator log:\n"
                     << cluster_->coordinator()->Log();
    std::smatch m;
    if (!std::regex_search(output, m, std::regex("submitted job (\\d+)"))) {
      ADD_FAILURE() << "no job id in: " << output;
      return 0;
    }
    return std::stoll(m[1]);
  }

  nlohmann::json JobJson(int64_t id) {
    auto body =
        HttpGet(cluster_->http_port(), absl::StrCat("/api/v1/jobs/", id));
    EXPECT_TRUE(body.ok()) << body.status();
    return body.ok() ? nlohmann::json::parse(*body) : nlohmann::json();
  }

  common::NamedTensors Export(int64_t id, const std::string& file,
                              const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"export", absl::StrCat(id),
                                     "--output=" + *dir_ + "/" + file};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string output;
    EXPECT_EQ(cluster_->Twistctl(args, &output), 0) << output;
    auto read = common::ReadSafetensors(*dir_ + "/" + file);
    EXPECT_TRUE(read.ok()) << read.status();
    return read.ok() ? read->tensors : common::NamedTensors();
  }

  twist::v1::JobSpec ResolvedSpec(int64_t id) {
    auto stub = twist::v1::JobService::NewStub(
        common::MakeChannel(cluster_->coordinator_address()));
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(10));
    twist::v1::GetJobRequest request;
    request.set_job_id(id);
    twist::v1::Job job;
    EXPECT_TRUE(stub->GetJob(&context, request, &job).ok());
    return job.spec();
  }

  static std::string* dir_;
  static std::string* data_;
  static Cluster* cluster_;
};

std::string* EndToEndTest::dir_ = nullptr;
std::string* EndToEndTest::data_ = nullptr;
Cluster* EndToEndTest::cluster_ = nullptr;

const std::vector<std::string> kSmallModel = {"--n_layer=2", "--n_embd=64",
                                              "--n_head=4", "--block_size=64",
                                              "--batch_size=8"};

std::vector<std::string> With(std::vector<std::string> a,
                              const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(EndToEndTest, TwistJobTrainsReportsExportsAndGenerates) {
  const int64_t id = SubmitAndWatch(
      With(kSmallModel,
           {"--name=e2e-twist", "--rounds=8", "--local_steps=15", "--lr=3e-3",
            "--eval_every=4", "--min_workers=2", "--seed=3"}));
  ASSERT_GT(id, 0);
  const nlohmann::json job = JobJson(id);
  EXPECT_EQ(job["state"], "completed");
  EXPECT_EQ(job["round"], 8);
  const auto& rounds = job["rounds"];
  ASSERT_EQ(rounds.size(), 9u);  // round 0 (evaluation) and 8 rounds

  // Learning: the final validation loss is well below the initial one.
  const double first = rounds[0]["val_loss"], last = rounds[8]["val_loss"];
  EXPECT_LT(last, 0.8 * first) << "val loss " << first << " -> " << last;
  EXPECT_TRUE(rounds[4]["val_loss"].is_number());
  EXPECT_TRUE(rounds[3]["val_loss"].is_null());

  // Every round used both workers, each on a subnetwork of half the heads and
  // half the FFN columns, and said so itself.
  const common::ModelConfig full = common::ModelConfig::Full(2, 4, 64, 64, 256);
  common::SubnetUnits half = common::AllUnits(full);
  for (auto& layer : half.layers) {
    layer.heads.resize(2);
    layer.ffn_columns.resize(128);
  }
  const int64_t subnet_parameters =
      common::SubnetConfig(full, half).NumParameters();
  for (size_t r = 1; r < rounds.size(); ++r) {
    ASSERT_EQ(rounds[r]["workers"].size(), 2u);
    for (const auto& w : rounds[r]["workers"]) {
      EXPECT_TRUE(w["accepted"].get<bool>()) << w.dump();
      EXPECT_EQ(w["parameters"], subnet_parameters);
      EXPECT_LT(w["parameters"].get<int64_t>(), full.NumParameters());
      ExpectMessageBytes(w["bytes_sent"], 4 * subnet_parameters);  // float32
      ExpectMessageBytes(w["bytes_received"], 4 * subnet_parameters);
      EXPECT_GT(w["compute_s"].get<double>(), 0);
    }
  }

  // Prometheus text reports the job.
  auto metrics = HttpGet(cluster_->http_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->find(absl::StrCat("twist_job_round{job_id=\"", id,
                                       "\",job_name=\"e2e-twist\"} 8")),
            std::string::npos)
      << *metrics;
  EXPECT_NE(metrics->find(absl::StrCat(
                "twist_job_state{job_id=\"", id,
                "\",job_name=\"e2e-twist\",state=\"completed\"} 1")),
            std::string::npos);
  EXPECT_NE(metrics->find("twist_workers_live 2"), std::string::npos);
  auto dashboard = HttpGet(cluster_->http_port(), "/");
  ASSERT_TRUE(dashboard.ok());
  EXPECT_NE(dashboard->find("TwIST coordinator"), std::string::npos);

  // The trained model: every head and every FFN column of every layer moved
  // away from the initial weights.
  const common::NamedTensors trained = Export(id, "e2e.safetensors");
  common::Gpt initial(full);
  initial->InitWeights(3);
  const common::NamedTensors before = common::ParameterTensors(*initial);
  for (int l = 0; l < full.n_layer; ++l) {
    const std::string p = absl::StrCat("transformer.h.", l, ".");
    const auto& qkv = *trained.Find(p + "attn.c_attn.weight");
    const auto& qkv0 = *before.Find(p + "attn.c_attn.weight");
    for (int h = 0; h < 4; ++h) {
      EXPECT_FALSE(qkv.slice(0, h * 16, (h + 1) * 16)
                       .equal(qkv0.slice(0, h * 16, (h + 1) * 16)))
          << "layer " << l << " head " << h << " never trained";
    }
    const auto& fc = *trained.Find(p + "mlp.c_fc.weight");
    const auto& fc0 = *before.Find(p + "mlp.c_fc.weight");
    const auto unchanged = (fc == fc0).all(/*dim=*/1).sum().item<int64_t>();
    EXPECT_EQ(unchanged, 0) << "layer " << l << ": FFN columns never trained";
  }

  // The exported file loads as a model and generates text.
  auto loaded = common::LoadModel(*dir_ + "/e2e.safetensors");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config(), full);
  std::string output;
  ASSERT_EQ(
      cluster_->Twistctl({"generate", "--model=" + *dir_ + "/e2e.safetensors",
                          "--prompt=The ", "--tokens=40"},
                         &output),
      0)
      << output;
  EXPECT_TRUE(absl::StartsWith(output, "The ")) << output;
  EXPECT_GE(output.size(), 44u);

  // A half-size subnetwork exports as a smaller model that loads too.
  Export(id, "e2e-half.safetensors", {"--keep_ratio=0.5"});
  auto half_model = common::LoadModel(*dir_ + "/e2e-half.safetensors");
  ASSERT_TRUE(half_model.ok()) << half_model.status();
  EXPECT_EQ((*half_model)->config(), common::SubnetConfig(full, half));
}

// GPT-2 byte-pair encoding through the whole path: twistctl prepares the
// text, a job trains with the vocabulary padded to 50304 (padding masked),
// the export records the tokenizer and generate decodes with it.
TEST_F(EndToEndTest, Gpt2DatasetTrainsWithAPaddedVocabularyAndGenerates) {
  const std::string gpt2 = TWIST_GPT2_DIR;
  if (!std::filesystem::exists(gpt2 + "/encoder.json")) {
    GTEST_SKIP() << gpt2 << "/encoder.json not found: run "
                 << "`bash deploy/fetch-tokenizer.sh`";
  }
  const std::string text = *dir_ + "/gpt2-corpus.txt";
  {
    std::ofstream out(text);
    out << common::GenerateSyntheticCorpus(11, 120000);
  }
  std::string output;
  ASSERT_EQ(cluster_->Twistctl({"prepare", "--input=" + text,
                                "--output=" + *dir_ + "/gpt2-data",
                                "--tokenizer=gpt2", "--tokenizer_dir=" + gpt2},
                               &output),
            0)
      << output;
  auto meta = common::ReadDatasetMeta(*dir_ + "/gpt2-data");
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->tokenizer, "gpt2");
  EXPECT_EQ(meta->vocab_size, 50257);

  const int64_t id = SubmitAndWatch(
      {"--n_layer=1", "--n_embd=32", "--n_head=2", "--block_size=32",
       "--batch_size=4", "--rounds=2", "--local_steps=3", "--eval_every=1",
       "--vocab_size=50304"},
      *dir_ + "/gpt2-data");
  const nlohmann::json job = JobJson(id);
  ASSERT_EQ(job["state"], "completed") << job.dump();
  const double first = job["rounds"][0]["val_loss"];
  const double last = job["rounds"].back()["val_loss"];
  EXPECT_LT(first, std::log(50257.0) + 0.5);  // no mass on padding at start
  EXPECT_LT(last, first);

  Export(id, "gpt2.safetensors");
  common::Metadata metadata;
  auto model =
      common::LoadModel(*dir_ + "/gpt2.safetensors", torch::kCPU, &metadata);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(metadata["twist.tokenizer"], "gpt2");
  EXPECT_EQ(metadata["twist.vocab_used"], "50257");
  EXPECT_EQ((*model)->config().vocab_size, 50304);
  ASSERT_EQ(
      cluster_->Twistctl(
          {"generate", "--model=" + *dir_ + "/gpt2.safetensors",
           "--prompt=The county", "--tokens=20", "--tokenizer_dir=" + gpt2},
          &output),
      0)
      << output;
  EXPECT_TRUE(absl::StartsWith(output, "The county")) << output;
  // Without the tokenizer's files, generate says where to get them.
  EXPECT_NE(
      cluster_->Twistctl({"generate", "--model=" + *dir_ + "/gpt2.safetensors",
                          "--tokenizer_dir=" + *dir_ + "/nowhere"},
                         &output),
      0);
  EXPECT_NE(output.find("fetch-tokenizer.sh"), std::string::npos) << output;
}

// A job started from another job's export (nanoGPT's names, and Hugging Face
// GPT-2's written by export --format=hf) evaluates at round 0 exactly as the
// other job ended; a file whose tensor does not fit is refused at submit.
TEST_F(EndToEndTest, JobStartsFromAnExportInEitherNaming) {
  const std::vector<std::string> model = {
      "--n_layer=2",           "--n_embd=32",    "--n_head=2",
      "--block_size=32",       "--batch_size=4", "--eval_every=1",
      "--activation=gelu_tanh"};
  const int64_t source =
      SubmitAndWatch(With(model, {"--rounds=2", "--local_steps=5"}));
  const nlohmann::json ended = JobJson(source);
  ASSERT_EQ(ended["state"], "completed") << ended.dump();
  const double final_loss = ended["rounds"].back()["val_loss"];
  Export(source, "source.safetensors");
  std::string output;
  ASSERT_EQ(
      cluster_->Twistctl({"export", absl::StrCat(source),
                          "--output=" + *dir_ + "/source-hf", "--format=hf"},
                         &output),
      0)
      << output;
  ASSERT_TRUE(std::filesystem::exists(*dir_ + "/source-hf/config.json"));

  for (const std::string file : {*dir_ + "/source.safetensors",
                                 *dir_ + "/source-hf/model.safetensors"}) {
    // Only the data, the schedule and init_from: the shape comes from the file.
    const int64_t id =
        SubmitAndWatch({"--init_from=" + file, "--rounds=1", "--local_steps=1",
                        "--batch_size=4", "--eval_every=1"});
    const nlohmann::json job = JobJson(id);
    ASSERT_EQ(job["state"], "completed") << job.dump();
    EXPECT_EQ(job["rounds"][0]["val_loss"].get<double>(), final_loss) << file;
    const twist::v1::JobSpec spec = ResolvedSpec(id);
    EXPECT_EQ(spec.model().n_embd(), 32);
    EXPECT_EQ(spec.model().n_head(), 2);
    EXPECT_EQ(spec.model().activation(), twist::v1::ACTIVATION_GELU_TANH);
    EXPECT_EQ(spec.init_from_sha256().size(), 64u);
  }

  // One tensor of the wrong shape: refused at submit, naming init_from and
  // the tensor.
  auto read = common::ReadSafetensors(*dir_ + "/source.safetensors");
  ASSERT_TRUE(read.ok()) << read.status();
  common::NamedTensors bad;
  for (const auto& [name, t] : read->tensors) {
    bad.Set(name, name == "transformer.h.1.mlp.c_fc.weight"
                      ? torch::zeros({100, 32})
                      : t);
  }
  ASSERT_TRUE(
      common::WriteSafetensors(*dir_ + "/bad.safetensors", bad, read->metadata)
          .ok());
  EXPECT_NE(cluster_->Twistctl({"submit", "--data=" + *data_,
                                "--init_from=" + *dir_ + "/bad.safetensors"},
                               &output),
            0);
  EXPECT_NE(output.find("init_from: " + *dir_ + "/bad.safetensors"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("'transformer.h.1.mlp.c_fc.weight' of shape [100, 32]"),
            std::string::npos)
      << output;
  // The status code other clients see.
  auto stub = twist::v1::JobService::NewStub(
      common::MakeChannel(cluster_->coordinator_address()));
  grpc::ClientContext context;
  context.set_deadline(common::DeadlineIn(30));
  twist::v1::SubmitJobRequest request;
  request.mutable_spec()->mutable_data()->set_path(*data_);
  request.mutable_spec()->set_init_from(*dir_ + "/bad.safetensors");
  twist::v1::SubmitJobResponse response;
  const grpc::Status status = stub->SubmitJob(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
}

TEST_F(EndToEndTest, LocalSgdJobCompletesThroughTheSamePath) {
  const int64_t id = SubmitAndWatch(With(
      kSmallModel,
      {"--name=e2e-local-sgd", "--mode=local_sgd", "--rounds=3",
       "--local_steps=10", "--lr=3e-3", "--eval_every=3", "--min_workers=2"}));
  ASSERT_GT(id, 0);
  const nlohmann::json job = JobJson(id);
  EXPECT_EQ(job["state"], "completed");
  EXPECT_EQ(job["mode"], "local_sgd");
  const int64_t full =
      common::ModelConfig::Full(2, 4, 64, 64, 256).NumParameters();
  ASSERT_EQ(job["rounds"].size(), 4u);
  for (size_t r = 1; r < 4; ++r) {
    ExpectMessageBytes(job["rounds"][r]["bytes_sent"], 2 * 4 * full,
                       2);  // the whole model to each
    for (const auto& w : job["rounds"][r]["workers"])
      EXPECT_EQ(w["parameters"], full);
  }
  EXPECT_LT(job["rounds"][3]["val_loss"].get<double>(),
            job["rounds"][0]["val_loss"].get<double>());
}

TEST_F(EndToEndTest, Bfloat16TransportHalvesTheBytesAndStillLearns) {
  const int64_t id = SubmitAndWatch(
      With(kSmallModel,
           {"--name=e2e-bf16", "--transport_dtype=bfloat16", "--rounds=4",
            "--local_steps=15", "--lr=3e-3", "--eval_every=4",
            "--min_workers=2", "--outer_lr=0.8", "--outer_momentum=0.5"}));
  ASSERT_GT(id, 0);
  const nlohmann::json job = JobJson(id);
  EXPECT_EQ(job["state"], "completed");
  for (size_t r = 1; r < job["rounds"].size(); ++r) {
    for (const auto& w : job["rounds"][r]["workers"]) {
      EXPECT_TRUE(w["accepted"].get<bool>()) << w.dump();
      ExpectMessageBytes(w["bytes_sent"],
                         2 * w["parameters"].get<int64_t>());  // bfloat16
      ExpectMessageBytes(w["bytes_received"],
                         2 * w["parameters"].get<int64_t>());
    }
  }
  EXPECT_LT(job["rounds"][4]["val_loss"].get<double>(),
            0.9 * job["rounds"][0]["val_loss"].get<double>());
}

// Every compression mode through the daemons: codes over gRPC, decoded on
// arrival, residuals kept by the workers between rounds; a compressed round
// takes fewer bytes than a flushing one (round 4, the last, sends bfloat16
// deltas); assignments after the first carry changes to the resident units
// (the workers apply them to their copies), so they take fewer bytes than
// the first; and the job learns.
TEST_F(EndToEndTest, EveryCompressionModeTrainsThroughTheDaemons) {
  for (const char* compression : {"int8", "int4", "topk"}) {
    const int64_t id = SubmitAndWatch(
        With(kSmallModel,
             {absl::StrCat("--name=e2e-", compression),
              absl::StrCat("--compression=", compression),
              "--transport_dtype=bfloat16", "--deal=rolling", "--rounds=4",
              "--local_steps=15", "--lr=3e-3", "--eval_every=4",
              "--min_workers=2"}));
    ASSERT_GT(id, 0);
    const nlohmann::json job = JobJson(id);
    EXPECT_EQ(job["state"], "completed") << compression;
    for (size_t r = 1; r < job["rounds"].size(); ++r) {
      for (const auto& w : job["rounds"][r]["workers"]) {
        EXPECT_TRUE(w["accepted"].get<bool>()) << compression << w.dump();
      }
    }
    const auto bytes = [&](int r) {
      return job["rounds"][r]["bytes_received"].get<int64_t>();
    };
    EXPECT_LT(bytes(2), 0.7 * bytes(4)) << compression;
    const auto dealt = [&](int r) {
      return job["rounds"][r]["bytes_sent"].get<int64_t>();
    };
    EXPECT_LT(dealt(3), 0.7 * dealt(1)) << compression;
    EXPECT_LT(job["rounds"][4]["val_loss"].get<double>(),
              0.9 * job["rounds"][0]["val_loss"].get<double>())
        << compression;
  }
}

TEST_F(EndToEndTest, Bfloat16ComputeTrainsThroughTheDaemons) {
  // Workers that have bfloat16 units train in mixed precision; on a CPU
  // without them every round is refused with the reason and the job fails
  // saying so.
  const int64_t id = SubmitAndWatch(
      With(kSmallModel,
           {"--name=e2e-bf16-compute", "--compute_dtype=bfloat16",
            "--rounds=3", "--local_steps=15", "--lr=3e-3", "--eval_every=3",
            "--min_workers=2"}));
  ASSERT_GT(id, 0);
  const nlohmann::json job = JobJson(id);
  if (!common::CheckBFloat16Compute(torch::kCPU).ok()) {
    EXPECT_EQ(job["state"], "failed");
    EXPECT_NE(job["reason"].get<std::string>().find("bfloat16"), std::string::npos)
        << job["reason"];
    return;
  }
  EXPECT_EQ(job["state"], "completed");
  EXPECT_EQ(job["spec"]["compute_dtype"], "COMPUTE_DTYPE_BFLOAT16");
  for (size_t r = 1; r < job["rounds"].size(); ++r) {
    for (const auto& w : job["rounds"][r]["workers"]) {
      EXPECT_TRUE(w["accepted"].get<bool>()) << w.dump();
    }
  }
  EXPECT_LT(job["rounds"][3]["val_loss"].get<double>(),
            0.9 * job["rounds"][0]["val_loss"].get<double>());
}

TEST_F(EndToEndTest, OneRoundOverGrpcEqualsTheSameRoundInProcess) {
  const int64_t id = SubmitAndWatch(
      With(kSmallModel, {"--name=e2e-determinism", "--rounds=1",
                         "--local_steps=4", "--min_workers=2", "--seed=11"}));
  ASSERT_GT(id, 0);
  ASSERT_EQ(JobJson(id)["state"], "completed");
  const common::NamedTensors over_grpc = Export(id, "determinism.safetensors");

  // The same round in this process: init, partition, extract, train, merge.
  const twist::v1::JobSpec spec = ResolvedSpec(id);
  const common::ModelConfig config = common::ModelConfigOf(spec);
  common::Gpt model(config);
  model->InitWeights(spec.seed());
  const common::NamedTensors params = common::ParameterTensors(*model);
  auto plan = coordinator::PlanRound(spec, config, /*round=*/1, {1.0, 1.0});
  ASSERT_TRUE(plan.ok());
  std::vector<common::NamedTensors> trained_slots;
  for (int slot = 0; slot < 2; ++slot) {
    // Each slot a worker of its own, as over gRPC (a worker's optimizer state
    // is its own).
    worker::SubnetTrainer trainer(worker::SubnetTrainer::Options{});
    auto sliced = twist::testing::ExtractOne(config, params, (*plan)[slot]);
    ASSERT_TRUE(sliced.ok());
    twist::v1::AssignmentHeader header;
    header.set_round(1);
    header.set_slot(slot);
    *header.mutable_spec() = spec;
    *header.mutable_units() = common::ToProto((*plan)[slot]);
    *header.mutable_tensors() = common::DescribeTensors(*sliced);
    auto prepared = trainer.Prepare(header);
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    {
      torch::NoGradGuard no_grad;
      for (const auto& [name, t] : prepared->receive_into)
        t.copy_(*sliced->Find(name));
    }
    auto trained = trainer.Train(*prepared);
    ASSERT_TRUE(trained.ok()) << trained.status();
    trained_slots.push_back(trained->tensors);
  }
  // The job's own outer step (the default's momentum, from a zero velocity).
  common::NamedTensors velocity;
  ASSERT_TRUE(common::MergeUpdates(config, params,
                                   {{&(*plan)[0], &trained_slots[0], false},
                                    {&(*plan)[1], &trained_slots[1], false}},
                                   common::OuterStepOf(spec), &velocity)
                  .ok());
  for (const auto& [name, t] : params) {
    const at::Tensor* remote = over_grpc.Find(name);
    ASSERT_NE(remote, nullptr) << name;
    EXPECT_TRUE(t.equal(*remote)) << name << " differs by up to "
                                  << (t - *remote).abs().max().item<double>();
  }
}

}  // namespace
}  // namespace twist

namespace twist {
namespace {

// The plain training loop a one-worker job must equal: one model, one
// torch::optim::AdamW for all R*L steps, the job's batches in the order the
// rounds take them (global step g: round g / L + 1, slot 0, step g mod L),
// its learning-rate schedule, clipping and weight decay on matrices only.
common::NamedTensors PlainLoop(const twist::v1::JobSpec& spec) {
  const common::ModelConfig config = common::ModelConfigOf(spec);
  common::Gpt model(config);
  model->InitWeights(spec.seed());
  auto dataset = common::Dataset::Open(spec.data().path());
  EXPECT_TRUE(dataset.ok());
  const common::LocalTrainingOptions o =
      common::TrainingOptionsOf(spec, /*round=*/1, /*slot=*/0);
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model->parameters())
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto adamw = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(o.schedule.At(0))
            .betas({o.beta1, o.beta2})
            .eps(1e-8)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, adamw(o.weight_decay));
  groups.emplace_back(no_decay, adamw(0.0));
  torch::optim::AdamW optimizer(groups);
  model->train();
  std::vector<int64_t> inputs, targets;
  const int64_t L = spec.local_steps();
  for (int64_t g = 0; g < spec.rounds() * L; ++g) {
    EXPECT_TRUE(common::SampleBatch(dataset->train(), spec.batch_size(),
                                    config.block_size,
                                    common::BatchSeed(spec.seed(), g / L + 1,
                                                      /*slot=*/0, g % L),
                                    &inputs, &targets)
                    .ok());
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options())
          .lr(o.schedule.At(g));
    }
    model->zero_grad(true);
    auto to_tensor = [&](std::vector<int64_t>& v) {
      return torch::from_blob(v.data(), {spec.batch_size(), config.block_size},
                              torch::kLong)
          .clone();
    };
    model->Loss(to_tensor(inputs), to_tensor(targets)).backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), o.grad_clip);
    optimizer.step();
  }
  return twist::testing::Clone(common::ParameterTensors(*model));
}

// Also with overlapping rounds: the worker trains 3 of each round's 5 steps
// ahead, on its own update, while the coordinator merges; one worker's
// merged model is its update, so the steps carry over unchanged. With plain
// merging: an outer step with momentum moves the model past the update.
TEST_F(EndToEndTest, OneWorkerJobIsPlainTrainingAcrossRounds) {
  for (const char* mode : {"twist", "local_sgd", "overlap"}) {
    const bool overlap = std::string(mode) == "overlap";
    const int64_t id = SubmitAndWatch(
        With(kSmallModel,
             {absl::StrCat("--name=e2e-plain-", mode),
              overlap ? "--overlap_steps=3" : absl::StrCat("--mode=", mode),
              "--rounds=3", "--local_steps=5", "--max_workers=1",
              "--eval_every=3", "--checkpoint_every=-1", "--outer_lr=1",
              "--outer_momentum=0"}));
    ASSERT_GT(id, 0);
    const nlohmann::json record = JobJson(id);
    ASSERT_EQ(record["state"], "completed");
    if (overlap) {
      // The same worker trains every round (the first live one): from round
      // 2 on, its first 3 steps were trained ahead.
      for (int r = 1; r <= 3; ++r) {
        ASSERT_EQ(record["rounds"][r]["workers"].size(), 1u);
        EXPECT_EQ(record["rounds"][r]["workers"][0]["steps_ahead"],
                  r == 1 ? 0 : 3)
            << "round " << r;
      }
    }
    const common::NamedTensors job =
        Export(id, absl::StrCat("plain-", mode, ".safetensors"));
    const common::NamedTensors plain = PlainLoop(ResolvedSpec(id));
    double worst = 0;
    for (const auto& [name, t] : plain) {
      const at::Tensor* remote = job.Find(name);
      ASSERT_NE(remote, nullptr) << name;
      worst = std::max(worst, (t - *remote).abs().max().item<double>());
    }
    EXPECT_LT(worst, 1e-5) << mode;
    std::printf(
        "[figures] one-worker %s job against the plain loop: max "
        "|difference| %.3g after 3 rounds of 5 steps\n",
        mode, worst);
  }
}

}  // namespace
}  // namespace twist

namespace twist {
namespace {

TEST_F(EndToEndTest, CoordinatorKeptOptimizerStateTravelsWithTheSlices) {
  for (const char* dtype : {"float32", "bfloat16"}) {
    const int64_t id = SubmitAndWatch(
        With(kSmallModel,
             {absl::StrCat("--name=e2e-kept-", dtype),
              "--optimizer_state=coordinator",
              absl::StrCat("--transport_dtype=", dtype), "--deal=rolling",
              "--rounds=4", "--local_steps=15", "--lr=3e-3", "--eval_every=4",
              "--min_workers=2", "--checkpoint_every=2"}));
    ASSERT_GT(id, 0);
    const nlohmann::json job = JobJson(id);
    ASSERT_EQ(job["state"], "completed") << job["reason"];
    const int64_t element = std::string(dtype) == "float32" ? 4 : 2;
    for (size_t r = 1; r < job["rounds"].size(); ++r) {
      for (const auto& w : job["rounds"][r]["workers"]) {
        EXPECT_TRUE(w["accepted"].get<bool>()) << w.dump();
        const int64_t n = w["parameters"].get<int64_t>();
        // Parameters and both moments back; out, the step counts too.
        ExpectMessageBytes(w["bytes_received"], 3 * element * n);
        EXPECT_GT(w["bytes_sent"].get<int64_t>(), 3 * element * n);
        EXPECT_LT(w["bytes_sent"].get<int64_t>(),
                  3 * element * n + 4 * n / 8 + 4096);
      }
    }
    EXPECT_LT(job["rounds"][4]["val_loss"].get<double>(),
              0.9 * job["rounds"][0]["val_loss"].get<double>());
  }
}

}  // namespace
}  // namespace twist
