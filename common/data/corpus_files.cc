#include "common/data/corpus_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"

namespace twist::common {
namespace {

namespace fs = std::filesystem;

constexpr size_t kReadBytes = size_t{1} << 20;
constexpr size_t kBinaryProbeBytes = size_t{64} << 10;

// Files in a corpus folder that are not corpus text. The Brown Corpus npm
// package (`brown-corpus`) ships its texts (ca01 ... cr09) beside README,
// CONTENTS (the list of texts), cats.txt (each text's category), a LICENSE
// and package.json, and a categories.pickle; hidden files (.npmignore,
// .DS_Store, ...) are skipped too. README* and LICENSE* match any case and
// suffix (README.md, license). Binary files are skipped when read (see
// StreamText).
bool IsNonCorpusFile(const std::string& name) {
  return name.empty() || name[0] == '.' ||
         absl::StartsWithIgnoreCase(name, "README") ||
         absl::StartsWithIgnoreCase(name, "LICENSE") || name == "CONTENTS" ||
         name == "cats.txt" || name == "package.json" ||
         absl::EndsWith(name, ".pickle");
}

// The corpus files under `folder`, sorted by path so the byte stream (and
// hence the content hash) is the same on every machine, whatever order the
// file system lists them in. `skip_dir` (canonical, may be empty) is left out.
absl::StatusOr<std::vector<std::string>> ListCorpusFiles(
    const std::string& folder, const fs::path& skip_dir) {
  std::vector<std::string> files;
  std::error_code error;
  fs::recursive_directory_iterator it(folder, error);
  const fs::recursive_directory_iterator end;
  for (; !error && it != end; it.increment(error)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    std::error_code type_error;
    if (it->is_directory(type_error)) {
      // Hidden folders (.git, .cache) and the output folder hold no corpus.
      std::error_code canonical_error;
      if (name.empty() || name[0] == '.' ||
          (!skip_dir.empty() &&
           fs::weakly_canonical(path, canonical_error) == skip_dir)) {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (!it->is_regular_file(type_error) || IsNonCorpusFile(name)) continue;
    files.push_back(path.string());
  }
  if (error) {
    return absl::InternalError(absl::StrCat("cannot list input folder ", folder,
                                            " on host ", HostName(), ": ",
                                            error.message()));
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Whitespace within a line (the locale-independent set of isspace).
bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

std::string StripBrownTags(const std::string& text) {
  std::string out;
  out.reserve(text.size() / 2);
  size_t line_begin = 0;
  while (line_begin < text.size()) {
    size_t line_end = text.find('\n', line_begin);
    if (line_end == std::string::npos) line_end = text.size();
    bool first_word = true;
    size_t i = line_begin;
    while (i < line_end) {
      // Skip whitespace, then take one token.
      while (i < line_end && IsBlank(text[i])) ++i;
      const size_t token_begin = i;
      while (i < line_end && !IsBlank(text[i])) ++i;
      if (token_begin == i) continue;
      // Words may hold slashes themselves ("1/2/cd"): the tag follows the last.
      const std::string token = text.substr(token_begin, i - token_begin);
      const size_t slash = token.rfind('/');
      const std::string word =
          slash == std::string::npos ? token : token.substr(0, slash);
      if (word.empty()) continue;
      if (!first_word) out.push_back(' ');
      out += word;
      first_word = false;
    }
    if (!first_word) out.push_back('\n');
    line_begin = line_end + 1;
  }
  return out;
}

absl::StatusOr<std::vector<CorpusFile>> ListCorpus(
    const std::string& input, const std::string& skip_dir) {
  std::error_code error;
  const fs::file_status status = fs::status(input, error);
  if (!fs::exists(status)) {
    return absl::NotFoundError(
        absl::StrCat("input ", input, " does not exist on host ", HostName(),
                     ": pass a text file or a folder of text files"));
  }
  std::vector<std::string> paths;
  if (fs::is_directory(status)) {
    std::error_code canonical_error;
    fs::path skip = fs::weakly_canonical(skip_dir, canonical_error);
    if (canonical_error || skip_dir.empty()) skip.clear();
    TWIST_ASSIGN_OR_RETURN(paths, ListCorpusFiles(input, skip));
    if (paths.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input folder ", input, " on host ", HostName(),
          " holds no corpus files (hidden files, README*, LICENSE*, CONTENTS, "
          "cats.txt, package.json and *.pickle are skipped)"));
    }
  } else {
    // A file named explicitly is read whatever its name.
    paths.push_back(input);
  }
  std::vector<CorpusFile> out;
  for (const std::string& path : paths) {
    const auto size = fs::file_size(path, error);
    if (error) {
      return absl::InternalError(absl::StrCat("cannot stat input file ", path,
                                              " on host ", HostName(), ": ",
                                              error.message()));
    }
    out.push_back({path, static_cast<int64_t>(size)});
  }
  return out;
}

absl::Status StreamText(
    const CorpusFile& file, bool strip_tags, bool skip_binary,
    const std::function<absl::Status(std::string_view)>& sink, bool* skipped) {
  *skipped = false;
  const std::string what =
      absl::StrCat("input file ", file.path, " on host ", HostName());
  const int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, what, "open");
  std::string chunk(kReadBytes, '\0');
  std::string partial_line;  // strip_tags: a line not ended yet
  char last = '\n';
  bool first = true;
  absl::Status status;
  for (;;) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = ErrnoStatus(errno, what, "read");
      break;
    }
    if (n == 0) break;
    std::string_view piece(chunk.data(), static_cast<size_t>(n));
    if (first && skip_binary &&
        piece.substr(0, kBinaryProbeBytes).find('\0') !=
            std::string_view::npos) {
      *skipped = true;
      break;
    }
    first = false;
    if (!strip_tags) {
      last = piece.back();
      status = sink(piece);
      if (!status.ok()) break;
      continue;
    }
    partial_line.append(piece);
    const size_t end = partial_line.rfind('\n');
    if (end == std::string::npos) continue;
    status = sink(StripBrownTags(partial_line.substr(0, end + 1)));
    if (!status.ok()) break;
    partial_line.erase(0, end + 1);
  }
  ::close(fd);
  if (!status.ok() || *skipped) return status;
  if (strip_tags) {
    if (!partial_line.empty()) return sink(StripBrownTags(partial_line));
    return absl::OkStatus();
  }
  // Keep the last line of one file from running into the next.
  return last == '\n' ? absl::OkStatus() : sink("\n");
}

}  // namespace twist::common
