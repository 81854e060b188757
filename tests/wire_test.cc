// What crosses the wire, with real processes: malformed updates from a fake
// worker, malformed specs and requests from a client, and the security of
// both services (TLS, mutual TLS for workers, bearer tokens per role).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/security.h"
#include "common/rpc/rpc_util.h"
#include "common/transport/subnet_proto.h"
#include "common/transport/tensor_chunks.h"
#include "gtest/gtest.h"
#include "tests/chunk_messages.h"
#include "tests/cluster.h"
#include "tests/test_models.h"
#include "twist/v1/job_service.grpc.pb.h"
#include "twist/v1/worker_service.grpc.pb.h"

namespace twist {
namespace {

using ::twist::testing::Cluster;
using ::twist::testing::HttpGet;
using ::twist::testing::RunCommand;

// A client-side view of a call's outcome.
struct Outcome {
  grpc::StatusCode code;
  std::string message;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << o.code << ": " << o.message;
}

Outcome Of(const grpc::Status& s) {
  return {s.error_code(), s.error_message()};
}

// ---------------------------------------------------------------------------
// Malformed updates, sent by a fake worker speaking the real protocol.

class BadUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = twist::testing::MakeTempDir();
    auto data = twist::testing::PrepareSyntheticDataset(dir_, 100000);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = *data;
    cluster_ = std::make_unique<Cluster>(dir_);
    ASSERT_TRUE(cluster_->StartCoordinator({"--heartbeat_timeout_s=120"}).ok());
    channel_ = common::MakeChannel(cluster_->coordinator_address());
    stub_ = twist::v1::WorkerService::NewStub(channel_);
    // The generated, typed client of the bulk path: the coordinator serves
    // it on raw buffers, and an ordinary protobuf client must still work.
    transfer_ = twist::v1::WorkerTransfer::NewStub(channel_);
  }
  void TearDown() override {
    cluster_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Receives one assignment: its header and tensors.
  bool Receive(twist::v1::AssignmentHeader* header,
               common::NamedTensors* tensors) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      grpc::ClientContext context;
      context.set_deadline(common::DeadlineIn(30));
      twist::v1::AssignmentRequest request;
      request.set_worker_id(worker_id_);
      request.set_wait_s(1);
      auto reader = transfer_->ReceiveAssignment(&context, request);
      twist::v1::AssignmentMessage m;
      if (!reader->Read(&m)) {
        reader->Finish();
        continue;  // no work yet
      }
      *header = m.header();
      auto allocated =
          common::AllocateTensors(header->tensors(), int64_t{1} << 30);
      if (!allocated.ok()) return false;
      common::ChunkAssembler assembler(*allocated);
      while (reader->Read(&m)) {
        if (!assembler.Add(common::ViewOf(m.chunk())).ok()) return false;
      }
      if (!reader->Finish().ok() || !assembler.Finish().ok()) return false;
      *tensors = assembler.tensors();
      return true;
    }
    return false;
  }

  // Sends an update made of `header` and `chunks` (a header-less stream when
  // `with_header` is false).
  Outcome Send(const twist::v1::UpdateHeader& header,
               const std::vector<twist::v1::TensorChunk>& chunks,
               bool with_header = true) {
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(30));
    twist::v1::UpdateResponse response;
    auto writer = transfer_->SendUpdate(&context, &response);
    twist::v1::UpdateMessage m;
    if (with_header) {
      *m.mutable_header() = header;
      writer->Write(m);
    }
    for (const auto& c : chunks) {
      *m.mutable_chunk() = c;
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return Of(writer->Finish());
  }

  std::string dir_, data_, worker_id_;
  std::unique_ptr<Cluster> cluster_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<twist::v1::WorkerService::Stub> stub_;
  std::unique_ptr<twist::v1::WorkerTransfer::Stub> transfer_;
};

TEST_F(BadUpdateTest, EachMalformedUpdateIsRefusedWithItsCodeAndTheJobGoesOn) {
  {
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(10));
    twist::v1::JoinRequest join;
    join.set_protocol_version(common::kProtocolVersion + 1);
    twist::v1::JoinResponse joined;
    const Outcome o = Of(stub_->Join(&context, join, &joined));
    EXPECT_EQ(o.code, grpc::StatusCode::FAILED_PRECONDITION) << o;
    EXPECT_TRUE(absl::StrContains(o.message, "run the same TwIST version"))
        << o;
  }
  {
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(10));
    twist::v1::JoinRequest join;
    join.set_protocol_version(common::kProtocolVersion);
    join.set_name("fake");
    twist::v1::JoinResponse joined;
    ASSERT_TRUE(stub_->Join(&context, join, &joined).ok());
    worker_id_ = joined.worker_id();
  }
  // A real worker beside the fake one: its updates make every round count
  // (a round with no accepted update is dealt again, not recorded).
  ASSERT_TRUE(cluster_->StartWorker("real", {}).ok());
  std::string output;
  ASSERT_EQ(cluster_->Twistctl(
                {"submit", "--data=" + data_, "--n_layer=1", "--n_embd=32",
                 "--n_head=2", "--block_size=16", "--batch_size=2",
                 "--rounds=7", "--local_steps=1", "--eval_every=7",
                 "--min_workers=2"},
                &output),
            0)
      << output;

  // One valid update per round is built from what the coordinator sent.
  struct Case {
    const char* what;
    std::function<void(twist::v1::UpdateHeader*,
                       std::vector<twist::v1::TensorChunk>*)>
        mutate;
    bool with_header;
    grpc::StatusCode code;
    const char* message;
  };
  auto rename = [](twist::v1::UpdateHeader*,
                   std::vector<twist::v1::TensorChunk>* c) {
    for (auto& chunk : *c) {
      if (chunk.name() == "transformer.ln_f.bias") chunk.set_name("bogus");
    }
  };
  auto reshape = [](twist::v1::UpdateHeader*,
                    std::vector<twist::v1::TensorChunk>* c) {
    (*c)[0].set_shape(0, (*c)[0].shape(0) + 1);
  };
  auto retype = [](twist::v1::UpdateHeader*,
                   std::vector<twist::v1::TensorChunk>* c) {
    (*c)[0].set_dtype(twist::v1::DTYPE_FLOAT64);
  };
  auto truncate = [](twist::v1::UpdateHeader*,
                     std::vector<twist::v1::TensorChunk>* c) { c->pop_back(); };
  auto oversize = [](twist::v1::UpdateHeader*,
                     std::vector<twist::v1::TensorChunk>* c) {
    (*c)[0].set_data(
        std::string(5 << 20, 'x'));  // beyond the 4 MiB message limit
  };
  auto stale_round = [](twist::v1::UpdateHeader* h,
                        std::vector<twist::v1::TensorChunk>*) {
    h->set_round(h->round() + 1);
  };
  auto old_incarnation = [](twist::v1::UpdateHeader* h,
                            std::vector<twist::v1::TensorChunk>*) {
    h->set_incarnation(h->incarnation() + 100);
  };
  auto nan = [](twist::v1::UpdateHeader*,
                std::vector<twist::v1::TensorChunk>* c) {
    const float x = std::nanf("");
    std::string data = (*c)[0].data();
    std::memcpy(data.data(), &x, sizeof(x));
    (*c)[0].set_data(data);
  };
  auto none = [](twist::v1::UpdateHeader*,
                 std::vector<twist::v1::TensorChunk>*) {};
  using grpc::StatusCode;
  // Each round's cases, in order; the last case of a round settles the slot.
  const std::vector<std::vector<Case>> rounds = {
      {{"no header", none, false, StatusCode::INVALID_ARGUMENT,
        "must start with its header"},
       {"a round that is not current", stale_round, true,
        StatusCode::FAILED_PRECONDITION, "is not the current round"},
       {"another coordinator incarnation", old_incarnation, true,
        StatusCode::FAILED_PRECONDITION, "incarnation"},
       {"unknown tensor name", rename, true, StatusCode::INVALID_ARGUMENT,
        "bad chunk for tensor 'bogus': no such tensor is expected"}},
      // The stream breaks after the header: the slot's update is incomplete.
      {{"oversize message", oversize, true, StatusCode::RESOURCE_EXHAUSTED,
        "larger than max"}},
      {{"wrong shape", reshape, true, StatusCode::INVALID_ARGUMENT,
        "differs from the expected"}},
      {{"wrong dtype", retype, true, StatusCode::INVALID_ARGUMENT,
        "dtype DTYPE_FLOAT64 differs from the expected Float"}},
      {{"truncated stream", truncate, true, StatusCode::INVALID_ARGUMENT,
        "is incomplete"}},
      // Checked as it arrives: the worker hears why.
      {{"NaN values", nan, true, StatusCode::INVALID_ARGUMENT,
        "holds NaN or infinite values"}},
      {{"valid", none, true, StatusCode::OK, ""}},
  };
  for (size_t r = 0; r < rounds.size(); ++r) {
    twist::v1::AssignmentHeader assignment;
    common::NamedTensors tensors;
    ASSERT_TRUE(Receive(&assignment, &tensors)) << "round " << r + 1;
    ASSERT_EQ(assignment.round(), static_cast<int>(r + 1));
    for (const Case& c : rounds[r]) {
      twist::v1::UpdateHeader header;
      header.set_worker_id(worker_id_);
      header.set_incarnation(assignment.incarnation());
      header.set_job_id(assignment.job_id());
      header.set_round(assignment.round());
      header.set_slot(assignment.slot());
      header.set_parameters(tensors.NumElements());
      std::vector<twist::v1::TensorChunk> chunks =
          *twist::testing::SplitIntoChunks(tensors);
      c.mutate(&header, &chunks);
      const Outcome o = Send(header, chunks, c.with_header);
      EXPECT_EQ(o.code, c.code) << c.what << ": " << o;
      EXPECT_TRUE(absl::StrContains(o.message, c.message))
          << c.what << ": " << o;
    }
  }

  // The job went on, every refusal recorded with its reason.
  ASSERT_EQ(cluster_->Twistctl({"watch", "1"}, &output), 0) << output;
  auto body = HttpGet(cluster_->http_port(), "/api/v1/jobs/1");
  ASSERT_TRUE(body.ok());
  const nlohmann::json job = nlohmann::json::parse(*body);
  EXPECT_EQ(job["state"], "completed");
  const char* expected[] = {"malformed update: bad chunk for tensor 'bogus'",
                            "malformed update: tensor",
                            "malformed update: bad chunk for tensor",
                            "malformed update: bad chunk for tensor",
                            "malformed update: tensor",
                            "update rejected: tensor"};
  auto fake = [&](int r) {
    for (const auto& w : job["rounds"][r]["workers"]) {
      if (w["worker_name"] == "fake") return w;
    }
    return nlohmann::json();
  };
  for (int r = 1; r <= 6; ++r) {
    const auto w = fake(r);
    ASSERT_TRUE(w.is_object()) << r;
    EXPECT_FALSE(w["accepted"].get<bool>()) << r;
    EXPECT_TRUE(
        absl::StartsWith(w["reason"].get<std::string>(), expected[r - 1]))
        << r << ": " << w["reason"];
  }
  EXPECT_TRUE(absl::StrContains(fake(6)["reason"].get<std::string>(),
                                "NaN or infinite"));
  EXPECT_TRUE(fake(7)["accepted"].get<bool>());
  EXPECT_EQ(job["rejected_updates_total"], 6);
  auto metrics = HttpGet(cluster_->http_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_TRUE(absl::StrContains(*metrics, "twist_stale_updates_total 2"))
      << *metrics;
}

// ---------------------------------------------------------------------------
// Bad requests from clients, over the wire.

TEST(BadRequestTest, SpecsAndRequestsThatCannotRunGetSpecificCodes) {
  const std::string dir = twist::testing::MakeTempDir();
  auto data = twist::testing::PrepareSyntheticDataset(dir, 50000);
  ASSERT_TRUE(data.ok());
  Cluster cluster(dir);
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  auto stub = twist::v1::JobService::NewStub(
      common::MakeChannel(cluster.coordinator_address()));
  auto submit = [&](const std::function<void(twist::v1::JobSpec*)>& edit) {
    twist::v1::SubmitJobRequest request;
    request.mutable_spec()->mutable_data()->set_path(*data);
    request.mutable_spec()->mutable_model()->set_block_size(32);
    edit(request.mutable_spec());
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(10));
    twist::v1::SubmitJobResponse response;
    return Of(stub->SubmitJob(&context, request, &response));
  };
  struct Case {
    const char* what;
    std::function<void(twist::v1::JobSpec*)> edit;
    grpc::StatusCode code;
    const char* message;
  };
  using grpc::StatusCode;
  const Case cases[] = {
      {"missing dataset",
       [](auto* s) { s->mutable_data()->set_path("/nonexistent/data"); },
       StatusCode::NOT_FOUND, "data.path: dataset /nonexistent/data"},
      {"no dataset", [](auto* s) { s->mutable_data()->clear_path(); },
       StatusCode::INVALID_ARGUMENT, "data.path: is empty"},
      {"a file, not a dataset folder",
       [&](auto* s) { s->mutable_data()->set_path(*data + "/meta.json"); },
       StatusCode::INVALID_ARGUMENT, "data.path: "},
      {"other content",
       [](auto* s) { s->mutable_data()->set_content_hash("abc"); },
       StatusCode::FAILED_PRECONDITION,
       "data.content_hash: the spec names abc"},
      {"context longer than validation",
       [](auto* s) { s->mutable_model()->set_block_size(60000); },
       StatusCode::INVALID_ARGUMENT, "longer than the validation set"},
      {"quota above the heads", [](auto* s) { s->set_heads_per_worker(9); },
       StatusCode::INVALID_ARGUMENT, "heads_per_worker: 9 is outside [0, 4]"},
      {"negative learning rate",
       [](auto* s) { s->mutable_optimizer()->set_learning_rate(-1); },
       StatusCode::INVALID_ARGUMENT,
       "optimizer.learning_rate: must be a positive number"},
  };
  for (const Case& c : cases) {
    const Outcome o = submit(c.edit);
    EXPECT_EQ(o.code, c.code) << c.what << ": " << o;
    EXPECT_TRUE(absl::StrContains(o.message, c.message)) << c.what << ": " << o;
  }
  // Unknown ids and finished jobs.
  {
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(10));
    twist::v1::GetJobRequest request;
    request.set_job_id(999);
    twist::v1::Job job;
    const Outcome o = Of(stub->GetJob(&context, request, &job));
    EXPECT_EQ(o.code, StatusCode::NOT_FOUND) << o;
    EXPECT_TRUE(absl::StrContains(o.message, "job 999 does not exist")) << o;
  }
  ASSERT_EQ(submit([](auto*) {}).code,
            StatusCode::OK);  // job 1, queued: no workers
  std::string output;
  ASSERT_EQ(cluster.Twistctl({"cancel", "1"}, &output), 0) << output;
  EXPECT_NE(cluster.Twistctl({"cancel", "1"}, &output), 0);
  EXPECT_TRUE(absl::StrContains(output, "job 1 already ended (cancelled)"))
      << output;
  // A malformed spec file is refused by twistctl before any call.
  std::ofstream(dir + "/bad.textproto")
      << "rounds: 3\nmodel { n_layer: \"four\" }\n";
  EXPECT_NE(
      cluster.Twistctl({"submit", "--spec=" + dir + "/bad.textproto"}, &output),
      0);
  EXPECT_TRUE(absl::StrContains(output, "bad.textproto:2:")) << output;
  EXPECT_NE(
      cluster.Twistctl({"submit", "--data=" + *data, "--rounds=ten"}, &output),
      0);
  EXPECT_TRUE(absl::StrContains(output, "--rounds=ten is not a valid value"))
      << output;
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------
// Security: TLS, mutual TLS for workers, tokens per role.

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(twist::testing::MakeTempDir());
    // A CA, the coordinator's certificate, a worker certificate, and an
    // unrelated CA, as an operator would make them.
    const std::string script = absl::StrCat(
        "set -e; cd ", *dir_, "\n",
        "key() { openssl ecparam -name prime256v1 -genkey -noout -out $1.key; "
        "}\n",
        "key ca; openssl req -x509 -new -key ca.key -subj /CN=twist-test-ca "
        "-days 2 -out ca.pem\n",
        "key other; openssl req -x509 -new -key other.key -subj /CN=other "
        "-days 2 -out other.pem\n",
        "for n in server worker; do key $n\n",
        "  openssl req -new -key $n.key -subj /CN=$n -out $n.csr\n",
        "  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $n.ext\n",
        "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -days 2 ",
        "-extfile $n.ext -out $n.pem 2>/dev/null\n", "done\n",
        "echo client-secret-1 > client.token; echo worker-secret-2 > "
        "worker.token\n");
    std::string output;
    ASSERT_EQ(RunCommand({"/bin/sh", "-c", script}, &output), 0) << output;
    auto data = twist::testing::PrepareSyntheticDataset(*dir_, 60000);
    ASSERT_TRUE(data.ok());
    data_ = new std::string(*data);
    cluster_ = new Cluster(*dir_);
    absl::Status s = cluster_->StartCoordinator(
        {"--tls_cert=" + Path("server.pem"), "--tls_key=" + Path("server.key"),
         "--tls_client_ca=" + Path("ca.pem"), "--require_worker_cert",
         "--client_token_file=" + Path("client.token"),
         "--worker_token_file=" + Path("worker.token")});
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    delete cluster_;
    if (!::testing::UnitTest::GetInstance()->Failed())
      std::filesystem::remove_all(*dir_);
  }
  static std::string Path(const std::string& name) {
    return *dir_ + "/" + name;
  }

  // A connection with the given CA, token file and client certificate.
  static common::Connection Connect(const std::string& ca,
                                    const std::string& token,
                                    const std::string& cert = "") {
    common::ClientSecurity security;
    security.tls_ca_file = ca.empty() ? "" : Path(ca);
    security.token_file = token.empty() ? "" : Path(token);
    if (!cert.empty()) {
      security.tls_cert_file = Path(cert + ".pem");
      security.tls_key_file = Path(cert + ".key");
    }
    auto connection =
        common::Connect(cluster_->coordinator_address(), security);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return *connection;
  }

  static Outcome ListJobs(const common::Connection& c) {
    auto stub = twist::v1::JobService::NewStub(c.channel);
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(10));
    c.Authorize(&context);
    twist::v1::ListJobsResponse response;
    return Of(stub->ListJobs(&context, {}, &response));
  }

  static Outcome Join(const common::Connection& c) {
    auto stub = twist::v1::WorkerService::NewStub(c.channel);
    grpc::ClientContext context;
    context.set_deadline(common::DeadlineIn(10));
    c.Authorize(&context);
    twist::v1::JoinRequest request;
    request.set_protocol_version(common::kProtocolVersion);
    twist::v1::JoinResponse response;
    return Of(stub->Join(&context, request, &response));
  }

  static std::string* dir_;
  static std::string* data_;
  static Cluster* cluster_;
};

std::string* SecurityTest::dir_ = nullptr;
std::string* SecurityTest::data_ = nullptr;
Cluster* SecurityTest::cluster_ = nullptr;

TEST_F(SecurityTest,
       CallsWithoutTheRightCredentialsAreRefusedWithTheRightCode) {
  using grpc::StatusCode;
  Outcome o = ListJobs(Connect("ca.pem", ""));
  EXPECT_EQ(o.code, StatusCode::UNAUTHENTICATED) << o;
  EXPECT_TRUE(absl::StrContains(o.message, "requires a client token")) << o;

  std::ofstream(Path("wrong.token")) << "not-the-token\n";
  o = ListJobs(Connect("ca.pem", "wrong.token"));
  EXPECT_EQ(o.code, StatusCode::UNAUTHENTICATED) << o;

  o = ListJobs(Connect("ca.pem", "worker.token"));
  EXPECT_EQ(o.code, StatusCode::PERMISSION_DENIED) << o;
  EXPECT_TRUE(
      absl::StrContains(o.message, "a worker token cannot make client calls"))
      << o;

  o = Join(Connect("ca.pem", "client.token", "worker"));
  EXPECT_EQ(o.code, StatusCode::PERMISSION_DENIED) << o;
  EXPECT_TRUE(
      absl::StrContains(o.message, "a client token cannot make worker calls"))
      << o;

  o = Join(Connect("ca.pem", "worker.token"));  // no client certificate
  EXPECT_EQ(o.code, StatusCode::UNAUTHENTICATED) << o;
  EXPECT_TRUE(absl::StrContains(o.message, "client certificate")) << o;

  o = ListJobs(
      Connect("other.pem", "client.token"));  // does not trust the server
  EXPECT_EQ(o.code, StatusCode::UNAVAILABLE) << o;

  o = ListJobs(Connect("", "client.token"));  // plaintext to a TLS port
  EXPECT_EQ(o.code, StatusCode::UNAVAILABLE) << o;

  EXPECT_EQ(ListJobs(Connect("ca.pem", "client.token")).code, StatusCode::OK);
  EXPECT_EQ(Join(Connect("ca.pem", "worker.token", "worker")).code,
            StatusCode::OK);
}

TEST_F(SecurityTest, HealthServiceStaysOpenForProbes) {
  common::Connection c = Connect("ca.pem", "");
  grpc::GenericStub stub(c.channel);
  grpc::ClientContext context;
  context.set_deadline(common::DeadlineIn(10));
  grpc::Slice empty("");  // an empty HealthCheckRequest: the whole server
  grpc::ByteBuffer request(&empty, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  const grpc::Status s = done.get_future().get();
  EXPECT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(slices[0].size(), 2u);  // status: SERVING (field 1 = 1)
  EXPECT_EQ(slices[0].begin()[1], 1);
}

TEST_F(SecurityTest, HttpEndpointServesTlsAndWantsTheClientToken) {
  const int port = cluster_->http_port();
  EXPECT_TRUE(HttpGet(port, "/healthz", Path("ca.pem")).ok());
  auto no_token = HttpGet(port, "/api/v1/jobs", Path("ca.pem"));
  EXPECT_TRUE(absl::StrContains(no_token.status().message(), "HTTP 401"))
      << no_token.status();
  auto worker = HttpGet(port, "/metrics", Path("ca.pem"), "worker-secret-2");
  EXPECT_TRUE(absl::StrContains(worker.status().message(), "HTTP 403"))
      << worker.status();
  auto ok = HttpGet(port, "/api/v1/jobs", Path("ca.pem"), "client-secret-1");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(nlohmann::json::parse(*ok)["insecure"], false);
  EXPECT_FALSE(HttpGet(port, "/healthz").ok());  // plain HTTP to an HTTPS port
}

TEST_F(SecurityTest, RightCredentialsWorkEndToEnd) {
  for (const char* name : {"tls-a", "tls-b"}) {
    ASSERT_TRUE(
        cluster_
            ->StartWorker(name, {"--tls_ca=" + Path("ca.pem"),
                                 "--tls_cert=" + Path("worker.pem"),
                                 "--tls_key=" + Path("worker.key"),
                                 "--token_file=" + Path("worker.token")})
            .ok());
  }
  std::string output;
  const int rc = cluster_->Twistctl(
      {"--tls_ca=" + Path("ca.pem"), "--token_file=" + Path("client.token"),
       "submit", "--data=" + *data_, "--n_layer=1", "--n_embd=32", "--n_head=2",
       "--block_size=16", "--batch_size=4", "--rounds=3", "--local_steps=5",
       "--min_workers=2", "--watch"},
      &output);
  EXPECT_EQ(rc, 0) << output << cluster_->coordinator()->Log();
  EXPECT_TRUE(absl::StrContains(output, "completed")) << output;
}

TEST(ListenPolicyTest, BeyondLoopbackNeedsTlsAndTokensOrInsecure) {
  const std::string dir = twist::testing::MakeTempDir();
  std::string output;
  const int rc = RunCommand({TWIST_COORDINATOR_BINARY, "--listen=0.0.0.0:0",
                             "--http=", "--state_dir=" + dir + "/a"},
                            &output, 30);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_TRUE(
      absl::StrContains(output,
                        "refusing to listen on --listen=0.0.0.0:0 without TLS "
                        "and tokens"))
      << output;
  Cluster insecure(dir);
  ASSERT_TRUE(
      insecure.StartCoordinator({"--insecure", "--http=0.0.0.0:0"}).ok());
  auto jobs = HttpGet(insecure.http_port(), "/api/v1/jobs");
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(nlohmann::json::parse(*jobs)["insecure"], true);
  EXPECT_TRUE(absl::StrContains(insecure.coordinator()->Log(),
                                "--insecure: listening beyond "
                                "loopback"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace twist
