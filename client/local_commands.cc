// twistctl's commands that run on this machine alone, without a
// coordinator: preparing a dataset and sampling from an exported model.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/sampling.h"
#include "common/base/status_macros.h"
#include "common/data/prepare.h"
#include "common/model/model_io.h"
#include "common/tokenizer/text_codec.h"

namespace twist::client {

absl::Status Prepare(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(
      CheckOptions(line, {"input", "output", "val_fraction", "strip_tags",
                          "tokenizer", "tokenizer_dir"}));
  common::PrepareOptions options;
  options.input = line.Get("input");
  options.output_dir = line.Get("output");
  if (options.input.empty() || options.output_dir.empty()) {
    return absl::InvalidArgumentError(
        "usage: twistctl prepare --input=FILE_OR_FOLDER --output=DIR "
        "[--val_fraction=0.1] [--strip_tags] [--tokenizer=bytes|gpt2] "
        "[--tokenizer_dir=DIR]");
  }
  options.tokenizer = line.Get("tokenizer", "bytes");
  options.tokenizer_dir = line.Get("tokenizer_dir");
  TWIST_ASSIGN_OR_RETURN(options.val_fraction,
                         line.GetDouble("val_fraction", 0.1));
  TWIST_ASSIGN_OR_RETURN(options.strip_tags, line.GetBool("strip_tags", false));
  TWIST_ASSIGN_OR_RETURN(common::DatasetMeta meta,
                         common::PrepareDataset(options));
  std::printf(
      "prepared %s: %lld training and %lld validation tokens (vocabulary %d), "
      "content hash %s\n",
      options.output_dir.c_str(), static_cast<long long>(meta.train_tokens),
      static_cast<long long>(meta.val_tokens), meta.vocab_size,
      meta.content_hash.substr(0, 16).c_str());
  return absl::OkStatus();
}

namespace {

// The tokenizer of an exported model: --tokenizer when given, else the one
// its metadata names, else bytes for a model of at most 256 tokens.
absl::StatusOr<std::unique_ptr<common::TextCodec>> OpenModelCodec(
    const CommandLine& line, const common::GptImpl& model,
    const common::Metadata& metadata, const std::string& path) {
  std::string name = line.Get("tokenizer");
  if (name.empty()) {
    const auto it = metadata.find("twist.tokenizer");
    if (it != metadata.end() && !it->second.empty()) {
      name = it->second;
    } else if (model.config().UsedVocab() <= 256) {
      name = "bytes";
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " does not say which tokenizer its ",
                       model.config().UsedVocab(),
                       " tokens come from: pass --tokenizer=gpt2 (or bytes)"));
    }
  }
  TWIST_ASSIGN_OR_RETURN(
      std::unique_ptr<common::TextCodec> codec,
      common::TextCodec::Open(name, line.Get("tokenizer_dir")));
  if (codec->vocab_size() != model.config().UsedVocab()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model's vocabulary is ", model.config().UsedVocab(),
        " tokens and tokenizer ", name, "'s is ", codec->vocab_size(),
        ": pass the tokenizer the model was trained with (--tokenizer)"));
  }
  return codec;
}

}  // namespace

absl::Status Generate(const CommandLine& line) {
  TWIST_RETURN_IF_ERROR(
      CheckOptions(line, {"model", "prompt", "tokens", "temperature", "top_k",
                          "seed", "tokenizer", "tokenizer_dir"}));
  const std::string path = line.Get("model");
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "usage: twistctl generate --model=FILE.safetensors [--prompt=TEXT] "
        "[--tokens=200] "
        "[--temperature=0.8] [--top_k=40] [--seed=1] "
        "[--tokenizer=bytes|gpt2] [--tokenizer_dir=DIR]");
  }
  common::Metadata metadata;
  TWIST_ASSIGN_OR_RETURN(common::Gpt model,
                         common::LoadModel(path, torch::kCPU, &metadata));
  TWIST_ASSIGN_OR_RETURN(std::unique_ptr<common::TextCodec> codec,
                         OpenModelCodec(line, *model, metadata, path));
  SamplingOptions options;
  TWIST_ASSIGN_OR_RETURN(int64_t tokens,
                         line.GetInt("tokens", options.max_new_tokens));
  TWIST_ASSIGN_OR_RETURN(options.temperature,
                         line.GetDouble("temperature", options.temperature));
  TWIST_ASSIGN_OR_RETURN(int64_t top_k, line.GetInt("top_k", options.top_k));
  TWIST_ASSIGN_OR_RETURN(int64_t seed, line.GetInt("seed", 1));
  options.max_new_tokens = static_cast<int>(tokens);
  options.top_k = static_cast<int>(top_k);
  options.seed = static_cast<uint64_t>(seed);
  const std::string prompt = line.Get("prompt");
  TWIST_ASSIGN_OR_RETURN(std::vector<int> prompt_ids, codec->Encode(prompt));
  if (prompt_ids.empty()) prompt_ids.push_back(codec->document_separator());
  TWIST_ASSIGN_OR_RETURN(std::vector<int> ids,
                         SampleTokens(*model, prompt_ids, options));
  TWIST_ASSIGN_OR_RETURN(std::string text, codec->Decode(ids));
  std::printf("%s%s\n", prompt.c_str(), text.c_str());
  return absl::OkStatus();
}

}  // namespace twist::client
