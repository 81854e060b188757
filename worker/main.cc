// twist-worker: joins a coordinator, trains the subnetworks it is dealt on its
// GPU (or CPU) and returns the updated slices.
#include <signal.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/model/gpt.h"
#include "common/rpc/security.h"
#include "common/model/threads.h"
#include "glog/logging.h"
#include "worker/subnet_trainer.h"
#include "worker/worker_client.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:7070",
          "coordinator gRPC address (host:port)");
ABSL_FLAG(std::string, device, "auto",
          "auto (CUDA when available), cpu, cuda or cuda:N");
ABSL_FLAG(std::string, name, "",
          "name shown on the coordinator (default: host-pid)");
ABSL_FLAG(
    double, capacity, 1.0,
    "relative speed; jobs with capacity_weighted deal units in proportion");
ABSL_FLAG(int, threads, 0, "LibTorch threads (0: all cores)");
ABSL_FLAG(std::string, data_dir, "",
          "look datasets up as DIR/<last component of the job's data.path> "
          "(default: the job's data.path itself)");
ABSL_FLAG(std::string, token_file, "",
          "file holding the coordinator's worker token (when it requires "
          "tokens)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA that signed the coordinator's certificate: use TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(
    double, test_delay_after_train_s, 0,
    "testing only: wait this long after training each round (a straggler)");

namespace {
twist::worker::WorkerClient* g_client = nullptr;
void OnSignal(int) {
  if (g_client) g_client->Stop();
}
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "twist-worker --coordinator=HOST:PORT [--device=auto|cpu|cuda:N] "
      "[--name=NAME]\n"
      "Trains the subnetworks a TwIST coordinator deals it.");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  twist::common::ConfigureThreads(absl::GetFlag(FLAGS_threads));

  absl::StatusOr<torch::Device> device =
      twist::common::ResolveDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::fprintf(stderr, "twist-worker: %s\n",
                 std::string(device.status().message()).c_str());
    return 1;
  }
  std::string name = absl::GetFlag(FLAGS_name);
  if (name.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    name = absl::StrCat(host, "-", ::getpid());
  }
  twist::worker::SubnetTrainer::Options trainer_options;
  trainer_options.device = *device;
  trainer_options.data_dir = absl::GetFlag(FLAGS_data_dir);
  trainer_options.worker_name = name;
  twist::worker::SubnetTrainer trainer(trainer_options);

  twist::worker::WorkerClient::Options options;
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  options.name = name;
  options.device_name = device->str();
  options.capacity = absl::GetFlag(FLAGS_capacity);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.delay_after_train_s = absl::GetFlag(FLAGS_test_delay_after_train_s);
  twist::common::ClientSecurity security;
  security.token_file = absl::GetFlag(FLAGS_token_file);
  security.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  absl::StatusOr<twist::common::Connection> connection =
      twist::common::Connect(options.coordinator, security);
  if (!connection.ok()) {
    std::fprintf(stderr, "twist-worker: %s\n",
                 std::string(connection.status().message()).c_str());
    return 1;
  }
  twist::worker::WorkerClient client(options, *connection, &trainer);
  g_client = &client;
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  LOG(INFO) << "twist-worker " << name << " on " << device->str()
            << ", coordinator " << options.coordinator;
  absl::Status status = client.Run();
  g_client = nullptr;
  if (!status.ok()) {
    std::fprintf(stderr, "twist-worker: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
