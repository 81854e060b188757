// Real TwIST processes for end-to-end tests: a coordinator and workers
// started from the built binaries on loopback ports the kernel picks, a
// twistctl runner, and an HTTP getter for the status endpoint. Every process
// is killed and reaped when its owner goes away.
#ifndef TWIST_TESTS_CLUSTER_H_
#define TWIST_TESTS_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace twist::testing {

// A child process with its output in a log file.
class Process {
 public:
  // Starts `argv` with stdout and stderr appended to `log_path`.
  static absl::StatusOr<std::unique_ptr<Process>> Start(
      const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();  // SIGKILL and reap, if still running

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string Log() const;
  bool Running();
  // Sends `signal`; with wait, reaps the process and returns its exit status.
  int Signal(int signal, bool wait);
  // Waits up to `timeout_s` for the process to exit and returns its exit
  // status (128 + signal when killed), or -1 on timeout.
  int Wait(double timeout_s);

 private:
  Process(pid_t pid, std::string log_path)
      : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
  int exit_status_ = 0;
};

// Runs a command to completion; returns its exit code and fills `output`.
int RunCommand(const std::vector<std::string>& argv, std::string* output,
               int timeout_s = 600);

// GET http://127.0.0.1:port/path (https:// when `ca_file` is given, with
// the CA to verify the server), with a bearer token when given; the body, or
// an error carrying the HTTP status.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path,
                                    const std::string& ca_file = "",
                                    const std::string& token = "");

// A coordinator plus workers in a temporary folder.
class Cluster {
 public:
  explicit Cluster(std::string dir);
  ~Cluster();

  // Starts the coordinator (one thread, kernel-chosen ports the first time,
  // the same ones after) and waits until it is ready; `extra` flags are
  // appended.
  absl::Status StartCoordinator(const std::vector<std::string>& extra = {});
  // Starts it again on the same state folder, ports and flags (after it was
  // killed or stopped).
  absl::Status RestartCoordinator();
  // Starts a worker named `name` (one thread).
  absl::Status StartWorker(const std::string& name,
                           const std::vector<std::string>& extra = {});
  // Waits until `count` workers are live according to the status endpoint.
  absl::Status WaitForLiveWorkers(int count, double timeout_s = 30);

  // twistctl against this coordinator; returns the exit code.
  int Twistctl(const std::vector<std::string>& args, std::string* output);

  std::string coordinator_address() const;
  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  const std::string& dir() const { return dir_; }
  Process* coordinator() { return coordinator_.get(); }
  std::vector<std::unique_ptr<Process>>& workers() { return workers_; }
  // The newest worker started under `name`, or nullptr.
  Process* worker(const std::string& name);

 private:
  std::string dir_;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::vector<std::string> worker_names_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  int coordinator_starts_ = 0;
  std::vector<std::string> coordinator_flags_;
};

// Writes a synthetic corpus and prepares it with twistctl into dir/data.
// Returns the dataset folder.
absl::StatusOr<std::string> PrepareSyntheticDataset(const std::string& dir,
                                                    size_t bytes,
                                                    uint64_t seed = 1);

}  // namespace twist::testing

#endif  // TWIST_TESTS_CLUSTER_H_
