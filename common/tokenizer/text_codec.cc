#include "common/tokenizer/text_codec.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/gpt2_tokenizer.h"

namespace twist::common {
namespace {

class ByteCodec : public TextCodec {
 public:
  std::string name() const override { return "bytes"; }
  int vocab_size() const override { return 256; }
  int document_separator() const override { return '\n'; }
  absl::StatusOr<std::vector<int>> Encode(std::string_view text) override {
    std::vector<int> ids;
    ids.reserve(text.size());
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  absl::StatusOr<std::string> Decode(
      const std::vector<int>& ids) const override {
    std::string text;
    text.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] > 255) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token id ", ids[i], " at position ", i, " is not a byte"));
      }
      text.push_back(static_cast<char>(ids[i]));
    }
    return text;
  }
};

class Gpt2Codec : public TextCodec {
 public:
  explicit Gpt2Codec(Gpt2Tokenizer tokenizer)
      : tokenizer_(std::move(tokenizer)) {}
  std::string name() const override { return "gpt2"; }
  int vocab_size() const override { return tokenizer_.vocab_size(); }
  int document_separator() const override { return tokenizer_.eot_id(); }
  absl::StatusOr<std::vector<int>> Encode(std::string_view text) override {
    return tokenizer_.Encode(text);
  }
  absl::StatusOr<std::string> Decode(
      const std::vector<int>& ids) const override {
    return tokenizer_.Decode(ids);
  }

 private:
  Gpt2Tokenizer tokenizer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TextCodec>> TextCodec::Open(
    const std::string& name, const std::string& gpt2_dir) {
  if (name == "bytes") return std::make_unique<ByteCodec>();
  if (name == "gpt2") {
    absl::StatusOr<Gpt2Tokenizer> tokenizer = Gpt2Tokenizer::Load(
        gpt2_dir.empty() ? Gpt2Tokenizer::DefaultDir() : gpt2_dir);
    if (!tokenizer.ok()) return tokenizer.status();
    return std::make_unique<Gpt2Codec>(*std::move(tokenizer));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown tokenizer '", name, "': use bytes or gpt2"));
}

}  // namespace twist::common
