// Turning text into a prepared dataset: what `twistctl prepare` does. Input
// is read as a stream, so memory does not grow with the corpus.
//
// Two tokenizers:
//   bytes  one token per byte (vocabulary 256): any text in any encoding
//          round-trips, and there is no tokenizer file to ship to workers.
//          The corpus is one stream (files in path order); its last
//          val_fraction of bytes is the validation set.
//   gpt2   GPT-2's byte-pair encoding (vocabulary 50257). Each input file is
//          a document, with <|endoftext|> (50256) between documents. The
//          validation set is the last documents, from the first whose input
//          bytes bring it to val_fraction of the corpus; a corpus of one
//          document is split at the first line break past that point. Input
//          must be UTF-8: an ill-formed byte is an error naming the file and
//          its offset.
#ifndef TWIST_COMMON_DATA_PREPARE_H_
#define TWIST_COMMON_DATA_PREPARE_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/data/corpus_files.h"
#include "common/data/dataset.h"

namespace twist::common {

struct PrepareOptions {
  // A text file, or a folder read recursively (common/data/corpus_files.h).
  std::string input;  // e.g. "node_modules/brown-corpus/brown"
  // Created if needed; train.bin, val.bin and meta.json are written there.
  // When it lies inside `input`, it is not read as input.
  std::string output_dir;  // e.g. "/data/brown"
  // The share of the corpus that becomes val.bin; in (0, 0.5].
  double val_fraction = 0.1;
  // Brown Corpus format: each whitespace token is word/tag and only the word
  // is kept ("The/at Fulton/np-tl" -> "The Fulton"), one output line per
  // input line that has words, words joined by single spaces.
  bool strip_tags = false;
  std::string tokenizer = "bytes";  // or "gpt2"
  // gpt2's files; empty: Gpt2Tokenizer::DefaultDir().
  std::string tokenizer_dir;
};

// Reads options.input, tokenizes it, writes the dataset into
// options.output_dir and returns its meta (also written to meta.json, last,
// with the content hash, the tokenizer and source = options.input). Errors:
// NotFound when the input or the tokenizer's files do not exist;
// InvalidArgument for val_fraction outside (0, 0.5], an unknown tokenizer, a
// folder with no corpus files, text shorter than 1000 bytes, a split that
// leaves either side empty, or (gpt2) input that is not UTF-8; file-system
// errors name the path. Nothing is left under the output's names on error.
absl::StatusOr<DatasetMeta> PrepareDataset(const PrepareOptions& options);

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_PREPARE_H_
