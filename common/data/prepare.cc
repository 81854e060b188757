#include "common/data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"

namespace twist::common {
namespace {

namespace fs = std::filesystem;

// Below this much text a byte-level model has nothing to learn and a
// validation split of a few bytes measures nothing.
constexpr size_t kMinCorpusBytes = 1000;

// Files in a corpus folder that are not corpus text. The Brown Corpus npm
// package (`brown-corpus`) ships its texts (ca01 ... cr09) beside README,
// CONTENTS (the list of texts), cats.txt (each text's category), a LICENSE
// and package.json, and a categories.pickle; hidden files (.npmignore,
// .DS_Store, ...) are skipped too. README* and LICENSE* match any case and
// suffix (README.md, license). Binary files are skipped when read (see
// LooksBinary).
bool IsNonCorpusFile(const std::string& name) {
  return name.empty() || name[0] == '.' ||
         absl::StartsWithIgnoreCase(name, "README") ||
         absl::StartsWithIgnoreCase(name, "LICENSE") || name == "CONTENTS" ||
         name == "cats.txt" || name == "package.json" ||
         absl::EndsWith(name, ".pickle");
}

// Text files hold no NUL bytes; anything that does (a pickle, an image) in a
// corpus folder is not text to train on.
bool LooksBinary(const std::string& content) {
  return content.find('\0') != std::string::npos;
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot read input file ", path, " on host ", HostName(),
                     ": check its permissions"));
  }
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("error while reading input file ",
                                            path, " on host ", HostName()));
  }
  return text;
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

std::vector<uint16_t> BytesToTokens(const std::string& text, size_t begin,
                                    size_t end) {
  std::vector<uint16_t> tokens(end - begin);
  for (size_t i = begin; i < end; ++i) {
    tokens[i - begin] = static_cast<unsigned char>(text[i]);
  }
  return tokens;
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

absl::StatusOr<DatasetMeta> PrepareDataset(const PrepareOptions& options) {
  // Written so that NaN fails too.
  if (!(options.val_fraction > 0.0 && options.val_fraction <= 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "val_fraction ", options.val_fraction,
        " is outside (0, 0.5]: choose e.g. 0.1 to hold out the last 10% of "
        "the text for validation"));
  }
  if (options.input.empty() || options.output_dir.empty()) {
    return absl::InvalidArgumentError(
        "prepare needs both an input (a text file or folder) and an output "
        "folder");
  }
  std::error_code error;
  const fs::file_status input_status = fs::status(options.input, error);
  if (!fs::exists(input_status)) {
    return absl::NotFoundError(absl::StrCat(
        "input ", options.input, " does not exist on host ", HostName(),
        ": pass a text file or a folder of text files"));
  }

  std::vector<std::string> files;
  if (fs::is_directory(input_status)) {
    std::error_code canonical_error;
    fs::path skip_dir =
        fs::weakly_canonical(options.output_dir, canonical_error);
    if (canonical_error) skip_dir.clear();
    TWIST_ASSIGN_OR_RETURN(files, ListCorpusFiles(options.input, skip_dir));
    if (files.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input folder ", options.input, " on host ", HostName(),
          " holds no corpus files (hidden files, README*, LICENSE*, CONTENTS, "
          "cats.txt, package.json and *.pickle are skipped)"));
    }
  } else {
    // A file named explicitly is read whatever its name.
    files.push_back(options.input);
  }

  std::string text;
  for (const std::string& file : files) {
    TWIST_ASSIGN_OR_RETURN(std::string content, ReadTextFile(file));
    if (files.size() > 1 && LooksBinary(content)) continue;
    if (options.strip_tags) {
      text += StripBrownTags(content);
    } else {
      text += content;
      // Keep the last line of one file from running into the next.
      if (!content.empty() && content.back() != '\n') text.push_back('\n');
    }
  }
  if (text.size() < kMinCorpusBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", options.input, " yields only ", text.size(), " bytes of text",
        options.strip_tags ? " after stripping tags" : "", "; at least ",
        kMinCorpusBytes,
        " are needed: use a larger corpus (or check strip_tags: it drops "
        "tokens without a word before their last '/')"));
  }

  // The validation set is the tail of the stream, as in nanoGPT, so it is
  // text the model never trains on (not interleaved windows of it).
  const size_t val_bytes = std::max<size_t>(
      1, static_cast<size_t>(std::floor(static_cast<double>(text.size()) *
                                        options.val_fraction)));
  const size_t train_bytes = text.size() - val_bytes;

  fs::create_directories(options.output_dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create output folder ",
                                            options.output_dir, " on host ",
                                            HostName(), ": ", error.message()));
  }
  const std::string train_path =
      (fs::path(options.output_dir) / "train.bin").string();
  const std::string val_path =
      (fs::path(options.output_dir) / "val.bin").string();
  TWIST_RETURN_IF_ERROR(
      WriteTokenFile(train_path, BytesToTokens(text, 0, train_bytes)));
  TWIST_RETURN_IF_ERROR(
      WriteTokenFile(val_path, BytesToTokens(text, train_bytes, text.size())));

  DatasetMeta meta;
  meta.vocab_size = 256;
  meta.train_tokens = static_cast<int64_t>(train_bytes);
  meta.val_tokens = static_cast<int64_t>(val_bytes);
  meta.tokenizer = "bytes";
  meta.source = options.input;
  // Hash what is on disk, not what was meant to be written.
  TWIST_ASSIGN_OR_RETURN(meta.content_hash,
                         ComputeContentHash(options.output_dir));
  // meta.json last: an interrupted run leaves counts that do not match the
  // token files, which Dataset::Open reports, rather than a valid-looking set.
  TWIST_RETURN_IF_ERROR(WriteDatasetMeta(options.output_dir, meta));
  return meta;
}

}  // namespace twist::common
