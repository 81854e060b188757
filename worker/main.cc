// twist-worker: joins a coordinator, trains the subnetworks it is dealt on its
// GPU (or CPU) and returns the updated slices.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/base/free_memory.h"
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

ABSL_FLAG(int64_t, max_assignment_bytes, 0,
          "refuse (with a clear error to the coordinator) assignments whose "
          "tensors exceed this many bytes; 0: no limit");

// jemalloc's settings: worker/malloc_conf.cc (twist_worker_malloc_conf).

namespace {

// SIGINT and SIGTERM reach a handler that only writes the signal's number to
// a pipe (async-signal-safe); a thread reading the pipe stops the client,
// which takes locks and cancels calls, as a signal handler may not. (Masking
// the signals instead would miss threads that libraries start before main.)
int g_signal_pipe[2] = {-1, -1};

void OnStopSignal(int signal) {
  const char byte = static_cast<char>(signal);
  const int saved = errno;
  (void)!::write(g_signal_pipe[1], &byte, 1);
  errno = saved;
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
  trainer_options.max_assignment_bytes =
      absl::GetFlag(FLAGS_max_assignment_bytes);
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
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "twist-worker: cannot create a pipe: %s\n",
                 std::strerror(errno));
    return 1;
  }
  std::thread signals([&] {
    char byte = 0;
    while (::read(g_signal_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (byte == 0) return;  // main ends the thread
    LOG(INFO) << "signal " << static_cast<int>(byte)
              << ": leaving the coordinator";
    client.Stop();
  });
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  LOG(INFO) << "twist-worker " << name << " on " << device->str()
            << ", coordinator " << options.coordinator << ", "
            << twist::common::AllocatorName();
  absl::Status status = client.Run();
  const char done = 0;
  (void)!::write(g_signal_pipe[1], &done, 1);
  signals.join();
  if (client.training_left_running()) {
    // A local step is still computing on its thread: do not wait for it.
    LOG(INFO) << "left with a local step unfinished; exiting";
    google::FlushLogFiles(google::GLOG_INFO);
    std::fflush(nullptr);
    std::_Exit(status.ok() ? 0 : 1);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "twist-worker: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
