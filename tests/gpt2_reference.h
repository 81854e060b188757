// What tests that compare GPT-2 token ids with an independent encoder share:
// where GPT-2's files are, the reference encoders (tests/reference_bpe.py
// under Python's `regex` module, the npm package gpt-3-encoder under node)
// run as subprocesses, and a temporary folder to hand them files.
//
// The tokenizer files come from the folder named by the environment variable
// TWIST_GPT2_DIR, else the compile definition TWIST_GPT2_DIR; tests that need
// them skip when they are absent (fetch them with
// `bash deploy/fetch-tokenizer.sh DIR`).
#ifndef TWIST_TESTS_GPT2_REFERENCE_H_
#define TWIST_TESTS_GPT2_REFERENCE_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace twist::common {

// A fresh temporary folder, removed with its contents at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `content` to path()/name and returns that path.
  std::string Write(const std::string& name, std::string_view content) const;

 private:
  std::string path_;
};

std::string ShellQuote(std::string_view s);

// Runs `command` under /bin/sh; returns its exit code (-1 when it could not
// run) and standard output. Standard error goes to the test's log.
std::pair<int, std::string> RunCommand(const std::string& command);

// The first executable `name` on PATH, or "".
std::string FindOnPath(const std::string& name);

// The folder holding encoder.json and vocab.bpe, or "" when none is named.
std::string Gpt2Dir();
bool Gpt2FilesPresent();
// Why a test skipped: the files are missing and how to get them.
std::string FetchHint();

// Where tests/reference_bpe.{py,js} live: next to this file, or under
// $TWIST_SOURCE_DIR/tests.
std::string TestsDir();

// The command that runs tests/reference_bpe.py on GPT-2's files, or nullopt
// with *why_not set when Python cannot import `regex`.
std::optional<std::string> PythonReferenceCommand(std::string* why_not);

// Writes each text to its own file and runs `command` (which takes the files
// as its last arguments; its paths must be absolute); returns one id list
// per text. Adds a test failure and returns nullopt when the command fails.
std::optional<std::vector<std::vector<int>>> RunReference(
    const std::string& command, const std::vector<std::string>& texts);

}  // namespace twist::common

#endif  // TWIST_TESTS_GPT2_REFERENCE_H_
