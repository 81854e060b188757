#include "tests/gpt2_reference.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#ifndef TWIST_REFERENCE_PYTHON
#define TWIST_REFERENCE_PYTHON "/usr/bin/python3"
#endif

namespace twist::common {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern =
      (base != nullptr && *base != '\0' ? std::string(base)
                                        : fs::temp_directory_path().string()) +
      "/twist_tokenizer_test.XXXXXX";
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (!path_.empty()) fs::remove_all(path_, ignored);
}

std::string TempDir::Write(const std::string& name,
                           std::string_view content) const {
  const std::string file = path_ + "/" + name;
  std::ofstream out(file, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  return file;
}

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs `command` under /bin/sh; returns its exit code (-1 when it could not
// run) and standard output. Standard error goes to the test's log.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::string output;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, got);
  }
  const int status = pclose(pipe);
  const int code =
      status == -1 ? -1 : (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return {code, output};
}

// The folder holding encoder.json and vocab.bpe, or "" when none is named.
std::string Gpt2Dir() {
  if (const char* env = std::getenv("TWIST_GPT2_DIR"); env != nullptr) {
    return env;
  }
#ifdef TWIST_GPT2_DIR
  return TWIST_GPT2_DIR;
#else
  return "";
#endif
}

std::string FetchHint() {
  return "GPT-2 tokenizer files not found: run `bash deploy/fetch-tokenizer.sh "
         "DIR` and set TWIST_GPT2_DIR=DIR (environment or compile "
         "definition); TWIST_GPT2_DIR is \"" +
         Gpt2Dir() + "\"";
}

bool Gpt2FilesPresent() {
  const std::string dir = Gpt2Dir();
  return !dir.empty() && fs::exists(dir + "/encoder.json") &&
         fs::exists(dir + "/vocab.bpe");
}

// Where tests/reference_bpe.{py,js} live: next to this file, or under
// $TWIST_SOURCE_DIR/tests.
std::string TestsDir() {
  const fs::path here = fs::path(__FILE__).parent_path();
  if (fs::exists(here / "reference_bpe.py")) return here.string();
  if (const char* src = std::getenv("TWIST_SOURCE_DIR"); src != nullptr) {
    return (fs::path(src) / "tests").string();
  }
  return here.string();
}

// The first executable `name` on PATH, or "".
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view entry : absl::StrSplit(path, ':')) {
    if (entry.empty()) continue;
    const std::string candidate = absl::StrCat(entry, "/", name);
    if (access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) {
      return candidate;
    }
  }
  return "";
}

std::optional<std::string> PythonReferenceCommand(std::string* why_not) {
  const std::string python = TWIST_REFERENCE_PYTHON;
  if (RunCommand(ShellQuote(python) + " -c 'import regex' 2>/dev/null").first !=
      0) {
    *why_not = python +
               " cannot import regex: install Debian's python3-regex "
               "(apt-get install python3-regex)";
    return std::nullopt;
  }
  const std::string script =
      fs::absolute(TestsDir() + "/reference_bpe.py").string();
  if (!fs::exists(script)) {
    *why_not = script + " not found; set TWIST_SOURCE_DIR to the repository";
    return std::nullopt;
  }
  return absl::StrCat(ShellQuote(python), " ", ShellQuote(script), " ",
                      ShellQuote(fs::absolute(Gpt2Dir()).string()));
}

// Writes each text to its own file and runs `command` (which takes the files
// as its last arguments; its paths must be absolute); returns one id list
// per text.
std::optional<std::vector<std::vector<int>>> RunReference(
    const std::string& command, const std::vector<std::string>& texts) {
  TempDir dir;
  // Short relative names from inside the folder: /bin/sh -c takes its
  // command as one argument, limited to 128 KiB on Linux.
  std::string full =
      absl::StrCat("cd ", ShellQuote(dir.path()), " && ", command);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string name = absl::StrCat(i);
    dir.Write(name, texts[i]);
    full += " " + name;
  }
  const auto [code, output] = RunCommand(full);
  EXPECT_EQ(code, 0) << "reference failed: " << command;
  if (code != 0) return std::nullopt;
  std::vector<std::vector<int>> all;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (line.empty()) continue;
    all.push_back(
        nlohmann::json::parse(std::string(line)).get<std::vector<int>>());
  }
  EXPECT_EQ(all.size(), texts.size()) << "reference printed too few lines";
  if (all.size() != texts.size()) return std::nullopt;
  return all;
}

}  // namespace twist::common
