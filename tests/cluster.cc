#include "tests/cluster.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/data/prepare.h"
#include "common/data/synthetic_corpus.h"

extern char** environ;

namespace twist::testing {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> out;
  for (const auto& a : args) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Process>> Process::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  pid_t pid = 0;
  std::vector<char*> args = Argv(argv);
  const int rc =
      posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start ", argv[0], ": ", strerror(rc)));
  }
  return std::unique_ptr<Process>(new Process(pid, log_path));
}

Process::~Process() { Signal(SIGKILL, /*wait=*/true); }

std::string Process::Log() const { return ReadFile(log_path_); }

bool Process::Running() { return !reaped_ && Wait(0) < 0; }

int Process::Signal(int signal, bool wait) {
  if (reaped_) return exit_status_;
  ::kill(pid_, signal);
  return wait ? Wait(1e9) : 0;
}

int Process::Wait(double timeout_s) {
  if (reaped_) return exit_status_;
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  for (;;) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      exit_status_ =
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_status_;
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int RunCommand(const std::vector<std::string>& argv, std::string* output,
               int timeout_s) {
  char path[] = "/tmp/twist_cmd_XXXXXX";
  const int fd = mkstemp(path);
  ::close(fd);
  auto process = Process::Start(argv, path);
  if (!process.ok()) {
    *output = std::string(process.status().message());
    return -1;
  }
  const int rc = (*process)->Wait(timeout_s);
  *output = ReadFile(path);
  if (rc < 0) *output += "\n[killed after timeout]";
  process->reset();  // kills it if it is still running
  ::unlink(path);
  return rc;
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path,
                                    const std::string& ca_file,
                                    const std::string& token) {
  const std::string scheme = ca_file.empty() ? "http" : "https";
  httplib::Client client(absl::StrCat(scheme, "://127.0.0.1:", port));
  if (!ca_file.empty()) {
    client.set_ca_cert_path(ca_file.c_str());
    client.enable_server_certificate_verification(true);
  }
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = client.Get(path.c_str(), headers);
  if (!res)
    return absl::UnavailableError(absl::StrCat("GET ", path, " failed"));
  if (res->status != 200) {
    return absl::Status(
        absl::StatusCode::kUnknown,
        absl::StrCat("GET ", path, ": HTTP ", res->status, ": ", res->body));
  }
  return res->body;
}

Cluster::Cluster(std::string dir) : dir_(std::move(dir)) {}

Cluster::~Cluster() {
  for (auto& w : workers_) w->Signal(SIGKILL, true);
  if (coordinator_) coordinator_->Signal(SIGKILL, true);
}

absl::Status Cluster::StartCoordinator(const std::vector<std::string>& extra) {
  // A restart keeps the ports, so workers and clients find it again.
  std::vector<std::string> argv = {
      TWIST_COORDINATOR_BINARY, absl::StrCat("--listen=127.0.0.1:", grpc_port_),
      absl::StrCat("--http=127.0.0.1:", http_port_), "--threads=1",
      "--state_dir=" + dir_ + "/state"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  coordinator_flags_ = extra;
  const std::string log =
      absl::StrCat(dir_, "/coordinator-", ++coordinator_starts_, ".log");
  auto process = Process::Start(argv, log);
  if (!process.ok()) return process.status();
  coordinator_ = std::move(*process);
  static const std::regex ready("ready grpc_port=(\\d+) http_port=(\\d+)");
  for (int i = 0; i < 600; ++i) {
    std::smatch m;
    const std::string text = coordinator_->Log();
    if (std::regex_search(text, m, ready)) {
      grpc_port_ = std::stoi(m[1]);
      http_port_ = std::stoi(m[2]);
      return absl::OkStatus();
    }
    if (!coordinator_->Running()) {
      return absl::InternalError(absl::StrCat("coordinator exited:\n", text));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError("coordinator did not become ready");
}

absl::Status Cluster::RestartCoordinator() {
  if (coordinator_ && coordinator_->Running()) {
    return absl::FailedPreconditionError("the coordinator is still running");
  }
  return StartCoordinator(coordinator_flags_);
}

absl::Status Cluster::StartWorker(const std::string& name,
                                  const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {
      TWIST_WORKER_BINARY, "--coordinator=" + coordinator_address(),
      "--name=" + name, "--threads=1", "--device=cpu"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto process = Process::Start(argv, dir_ + "/worker-" + name + ".log");
  if (!process.ok()) return process.status();
  workers_.push_back(std::move(*process));
  worker_names_.push_back(name);
  return absl::OkStatus();
}

absl::Status Cluster::WaitForLiveWorkers(int count, double timeout_s) {
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  int live = 0;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto body = HttpGet(http_port_, "/api/v1/workers");
    last = body.ok() ? *body : std::string(body.status().message());
    if (body.ok()) {
      live = 0;
      const nlohmann::json parsed = nlohmann::json::parse(*body);
      for (const auto& w : parsed["workers"])
        live += w["live"].get<bool>() ? 1 : 0;
      if (live >= count) return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "only ", live, " of ", count, " workers live; last answer: ", last));
}

int Cluster::Twistctl(const std::vector<std::string>& args,
                      std::string* output) {
  std::vector<std::string> argv = {TWIST_TWISTCTL_BINARY,
                                   "--coordinator=" + coordinator_address()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, output);
}

Process* Cluster::worker(const std::string& name) {
  for (size_t i = worker_names_.size(); i-- > 0;) {
    if (worker_names_[i] == name) return workers_[i].get();
  }
  return nullptr;
}

std::string Cluster::coordinator_address() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

absl::StatusOr<std::string> PrepareSyntheticDataset(const std::string& dir,
                                                    size_t bytes,
                                                    uint64_t seed) {
  const std::string text_path = dir + "/corpus.txt";
  std::ofstream(text_path) << common::GenerateSyntheticCorpus(seed, bytes);
  std::string output;
  const int rc =
      RunCommand({TWIST_TWISTCTL_BINARY, "prepare", "--input=" + text_path,
                  "--output=" + dir + "/data"},
                 &output);
  if (rc != 0)
    return absl::InternalError(
        absl::StrCat("twistctl prepare failed: ", output));
  return dir + "/data";
}

}  // namespace twist::testing
