// Text to token ids and back with a dataset's tokenizer, chosen by the name
// that meta.json and exported models record ("bytes" or "gpt2"): what
// `twistctl generate` uses to encode a prompt and decode what it samples.
#ifndef TWIST_COMMON_TOKENIZER_TEXT_CODEC_H_
#define TWIST_COMMON_TOKENIZER_TEXT_CODEC_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace twist::common {

class TextCodec {
 public:
  virtual ~TextCodec() = default;

  // "bytes": one id per byte, vocabulary 256. "gpt2": GPT-2's byte-pair
  // encoding from `gpt2_dir` (encoder.json and vocab.bpe; empty:
  // Gpt2Tokenizer::DefaultDir()). InvalidArgument
  // for another name; the tokenizer's load errors (NotFound with a hint) for
  // missing files.
  static absl::StatusOr<std::unique_ptr<TextCodec>> Open(
      const std::string& name, const std::string& gpt2_dir);

  virtual std::string name() const = 0;
  virtual int vocab_size() const = 0;
  // The id that separates documents (and starts an empty prompt): '\n' for
  // bytes, <|endoftext|> for gpt2.
  virtual int document_separator() const = 0;
  // InvalidArgument when `text` cannot be encoded (gpt2: not UTF-8).
  virtual absl::StatusOr<std::vector<int>> Encode(std::string_view text) = 0;
  // InvalidArgument for an id outside [0, vocab_size()).
  virtual absl::StatusOr<std::string> Decode(
      const std::vector<int>& ids) const = 0;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_TOKENIZER_TEXT_CODEC_H_
