// GPT-2 byte-pair encoding speed and preparation memory on a real corpus.
//
//   tokenizer_bench --corpus=data/downloads/package
//                   [--tokenizer_dir=data/tokenizers/gpt2] [--runs=5]
//                   [--prepare_output=/tmp/twist-tokenizer-bench]
//
// 1. Encode speed on one core: the corpus's text (each file one document, as
//    `twistctl prepare --tokenizer=gpt2 --strip_tags` reads it) is loaded
//    into memory first, so the page cache and the disk play no part; each run
//    encodes it all with a fresh tokenizer (an empty cache); the median of
//    --runs runs is reported in MB of text per second. The same for the
//    files' raw bytes (tags included).
// 2. Peak memory of a whole `prepare --tokenizer=gpt2 --strip_tags` in a
//    child process (its ru_maxrss), of the corpus and of four copies of it.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "client/command_line.h"
#include "common/data/corpus_files.h"
#include "common/data/prepare.h"
#include "common/tokenizer/gpt2_tokenizer.h"

namespace twist::bench {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "tokenizer_bench: %s\n", status.ToString().c_str());
  return 1;
}

// Each corpus file's text, tags stripped or not.
absl::StatusOr<std::vector<std::string>> LoadDocuments(
    const std::vector<common::CorpusFile>& files, bool strip_tags) {
  std::vector<std::string> docs;
  for (const common::CorpusFile& file : files) {
    std::string text;
    bool skipped = false;
    absl::Status status = common::StreamText(
        file, strip_tags, /*skip_binary=*/true,
        [&](std::string_view piece) {
          text.append(piece);
          return absl::OkStatus();
        },
        &skipped);
    if (!status.ok()) return status;
    if (!skipped) docs.push_back(std::move(text));
  }
  return docs;
}

// Median MB/s over `runs` encodings of all of `docs`, each with a fresh copy
// of `tokenizer` (an empty cache).
absl::StatusOr<double> EncodeMegabytesPerSecond(
    const common::Gpt2Tokenizer& tokenizer,
    const std::vector<std::string>& docs, int runs, int64_t* ids_out) {
  int64_t bytes = 0;
  for (const std::string& d : docs) bytes += static_cast<int64_t>(d.size());
  std::vector<double> rates;
  std::vector<int> ids;
  for (int r = 0; r < runs; ++r) {
    common::Gpt2Tokenizer fresh = tokenizer;
    int64_t count = 0;
    const double start = Now();
    for (const std::string& d : docs) {
      ids.clear();
      absl::Status status = fresh.EncodeAppend(d, &ids);
      if (!status.ok()) return status;
      count += static_cast<int64_t>(ids.size());
    }
    rates.push_back(static_cast<double>(bytes) / 1e6 / (Now() - start));
    *ids_out = count;
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// A folder under `scratch` with `copies` links to every corpus file of
// `corpus`, so it reads as the corpus `copies` times over.
absl::StatusOr<std::string> LinkCopies(const std::string& corpus,
                                       const std::string& scratch, int copies) {
  absl::StatusOr<std::vector<common::CorpusFile>> files =
      common::ListCorpus(corpus, "");
  if (!files.ok()) return files.status();
  const std::filesystem::path folder =
      std::filesystem::path(scratch) / absl::StrCat("x", copies);
  std::error_code error;
  std::filesystem::remove_all(folder, error);
  for (int c = 0; c < copies; ++c) {
    for (size_t i = 0; i < files->size(); ++i) {
      const std::filesystem::path link =
          folder / absl::StrCat(c) / absl::StrCat(i, ".txt");
      std::filesystem::create_directories(link.parent_path(), error);
      std::filesystem::create_symlink(
          std::filesystem::absolute((*files)[i].path), link, error);
      if (error) {
        return absl::InternalError(
            absl::StrCat("cannot link ", link.string(), ": ", error.message()));
      }
    }
  }
  return folder.string();
}

// Runs PrepareDataset in a child process; returns its peak RSS in bytes.
absl::StatusOr<int64_t> PreparePeakRss(const common::PrepareOptions& options,
                                       double* seconds) {
  const double start = Now();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    absl::StatusOr<common::DatasetMeta> meta = common::PrepareDataset(options);
    if (!meta.ok()) {
      std::fprintf(stderr, "prepare: %s\n", meta.status().ToString().c_str());
    }
    _exit(meta.ok() ? 0 : 1);
  }
  int status = 0;
  struct rusage usage;
  if (wait4(pid, &status, 0, &usage) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    return absl::InternalError("prepare failed in the child process");
  }
  *seconds = Now() - start;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args = {"tokenizer"};  // the parser wants a command
  args.insert(args.end(), argv + 1, argv + argc);
  absl::StatusOr<client::CommandLine> line = client::ParseCommandLine(args);
  if (!line.ok()) return Fail(line.status());
  if (absl::Status s = client::CheckOptions(
          *line, {"corpus", "tokenizer_dir", "runs", "prepare_output"});
      !s.ok()) {
    return Fail(s);
  }
  const std::string corpus = line->Get("corpus", "data/downloads/package");
  const std::string dir =
      line->Get("tokenizer_dir", common::Gpt2Tokenizer::DefaultDir());
  absl::StatusOr<int64_t> runs = line->GetInt("runs", 5);
  if (!runs.ok()) return Fail(runs.status());
  const std::string output =
      line->Get("prepare_output", "/tmp/twist-tokenizer-bench");

  // Memory first, before this process loads anything the child would
  // inherit: a whole prepare of the corpus, then of the corpus four times
  // over (links to its files), so constant memory shows as equal peaks.
  for (const int copies : {1, 4}) {
    std::string input = corpus;
    if (copies > 1) {
      absl::StatusOr<std::string> linked = LinkCopies(corpus, output, copies);
      if (!linked.ok()) return Fail(linked.status());
      input = *linked;
    }
    common::PrepareOptions options;
    options.input = input;
    options.output_dir = output + "/dataset";
    options.strip_tags = true;
    options.tokenizer = "gpt2";
    options.tokenizer_dir = dir;
    double seconds = 0;
    absl::StatusOr<int64_t> peak = PreparePeakRss(options, &seconds);
    if (!peak.ok()) return Fail(peak.status());
    std::printf(
        "prepare --tokenizer=gpt2 --strip_tags of the corpus x%d: "
        "%.1f s, peak RSS %.1f MB\n",
        copies, seconds, *peak / 1e6);
    std::printf(
        "JSON {\"bench\": \"tokenizer_prepare\", \"copies\": %d, "
        "\"seconds\": %.2f, \"peak_rss_bytes\": %lld}\n",
        copies, seconds, static_cast<long long>(*peak));
  }

  absl::StatusOr<common::Gpt2Tokenizer> tokenizer =
      common::Gpt2Tokenizer::Load(dir);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  absl::StatusOr<std::vector<common::CorpusFile>> files =
      common::ListCorpus(corpus, "");
  if (!files.ok()) return Fail(files.status());
  int64_t corpus_bytes = 0;
  for (const auto& f : *files) corpus_bytes += f.bytes;

  std::printf(
      "GPT-2 BPE on %s: %zu files, %.1f MB on disk; median of %lld "
      "runs, one core, text in memory\n",
      corpus.c_str(), files->size(), corpus_bytes / 1e6,
      static_cast<long long>(*runs));
  std::printf("%-22s %10s %12s %10s\n", "text", "MB", "tokens", "MB/s");
  for (const bool strip : {true, false}) {
    absl::StatusOr<std::vector<std::string>> docs =
        LoadDocuments(*files, strip);
    if (!docs.ok()) return Fail(docs.status());
    int64_t bytes = 0;
    for (const std::string& d : *docs) bytes += static_cast<int64_t>(d.size());
    int64_t ids = 0;
    absl::StatusOr<double> rate = EncodeMegabytesPerSecond(
        *tokenizer, *docs, static_cast<int>(*runs), &ids);
    if (!rate.ok()) return Fail(rate.status());
    const char* label = strip ? "tags stripped" : "raw files";
    std::printf("%-22s %10.2f %12lld %10.2f\n", label, bytes / 1e6,
                static_cast<long long>(ids), *rate);
    std::printf(
        "JSON {\"bench\": \"tokenizer\", \"text\": \"%s\", \"bytes\": %lld, "
        "\"tokens\": %lld, \"bytes_per_token\": %.4f, \"mb_per_s\": %.3f, "
        "\"runs\": %lld}\n",
        strip ? "stripped" : "raw", static_cast<long long>(bytes),
        static_cast<long long>(ids), static_cast<double>(bytes) / ids, *rate,
        static_cast<long long>(*runs));
  }

  return 0;
}

}  // namespace
}  // namespace twist::bench

int main(int argc, char** argv) { return twist::bench::Main(argc, argv); }
