#include "common/data/prepare.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"
#include "common/data/token_file.h"
#include "common/tokenizer/document_encoder.h"
#include "common/tokenizer/gpt2_tokenizer.h"

namespace twist::common {
namespace {

namespace fs = std::filesystem;

// Below this much text a model has nothing to learn and a validation split
// of a few bytes measures nothing.
constexpr int64_t kMinCorpusBytes = 1000;

// The train and validation token files, written side by side.
struct Outputs {
  std::unique_ptr<TokenFileWriter> train, val;

  static absl::StatusOr<Outputs> Create(const std::string& dir) {
    Outputs out;
    TWIST_ASSIGN_OR_RETURN(
        out.train,
        TokenFileWriter::Create((fs::path(dir) / kTrainFile).string()));
    TWIST_ASSIGN_OR_RETURN(
        out.val, TokenFileWriter::Create((fs::path(dir) / kValFile).string()));
    return out;
  }
};

absl::Status TooShort(const PrepareOptions& options, int64_t bytes) {
  return absl::InvalidArgumentError(absl::StrCat(
      "input ", options.input, " yields only ", bytes, " bytes of text",
      options.strip_tags ? " after stripping tags" : "", "; at least ",
      kMinCorpusBytes,
      " are needed: use a larger corpus (or check strip_tags: it drops "
      "tokens without a word before their last '/')"));
}

// The bytes of text StreamText gives for `file` (tags stripped).
absl::StatusOr<int64_t> CountTextBytes(const CorpusFile& file, bool strip_tags,
                                       bool skip_binary) {
  int64_t bytes = 0;
  bool skipped = false;
  TWIST_RETURN_IF_ERROR(StreamText(
      file, strip_tags, skip_binary,
      [&](std::string_view text) {
        bytes += static_cast<int64_t>(text.size());
        return absl::OkStatus();
      },
      &skipped));
  return bytes;
}

// Bytes: one stream, its last val_fraction of bytes for validation. A first
// pass counts the stream's bytes (tags stripped), the second writes.
absl::Status PrepareBytes(const PrepareOptions& options,
                          const std::vector<CorpusFile>& files, Outputs* out,
                          DatasetMeta* meta) {
  const bool skip_binary = files.size() > 1;
  int64_t total = 0;
  for (const CorpusFile& file : files) {
    TWIST_ASSIGN_OR_RETURN(
        const int64_t bytes,
        CountTextBytes(file, options.strip_tags, skip_binary));
    total += bytes;
  }
  if (total < kMinCorpusBytes) return TooShort(options, total);
  // The validation set is the tail of the stream, as in nanoGPT, so it is
  // text the model never trains on (not interleaved windows of it).
  const int64_t val_bytes = std::max<int64_t>(
      1, static_cast<int64_t>(
             std::floor(static_cast<double>(total) * options.val_fraction)));
  const int64_t train_bytes = total - val_bytes;
  int64_t written = 0;
  for (const CorpusFile& file : files) {
    bool skipped = false;
    TWIST_RETURN_IF_ERROR(StreamText(
        file, options.strip_tags, skip_binary,
        [&](std::string_view text) {
          for (unsigned char c : text) {
            TokenFileWriter* to =
                written++ < train_bytes ? out->train.get() : out->val.get();
            TWIST_RETURN_IF_ERROR(to->Append(static_cast<uint16_t>(c)));
          }
          return absl::OkStatus();
        },
        &skipped));
  }
  meta->vocab_size = 256;
  meta->tokenizer = "bytes";
  return absl::OkStatus();
}

// Where a GPT-2 corpus splits into training and validation text.
struct Gpt2Split {
  // Several files: the first validation file.
  size_t first_val;
  // A lone document: the text byte past which validation begins (at the
  // first line break at or past it).
  int64_t split_at;
};

// Puts the last val_fraction of the input's bytes (of a lone document, of its
// text) in validation: from the file where the files' suffix reaches that
// many bytes, always leaving the first file for training.
absl::StatusOr<Gpt2Split> PlanGpt2Split(const PrepareOptions& options,
                                        const std::vector<CorpusFile>& files) {
  int64_t total = 0;  // input bytes; a lone document: its text's bytes
  if (files.size() == 1) {
    TWIST_ASSIGN_OR_RETURN(total, CountTextBytes(files[0], options.strip_tags,
                                                 /*skip_binary=*/false));
  } else {
    for (const CorpusFile& f : files) total += f.bytes;
  }
  const int64_t val_target = std::max<int64_t>(
      1, static_cast<int64_t>(
             std::floor(static_cast<double>(total) * options.val_fraction)));
  Gpt2Split split;
  // The first validation document: where the suffix reaches the target.
  split.first_val = files.size();
  for (int64_t suffix = 0; split.first_val > 1 && suffix < val_target;) {
    suffix += files[--split.first_val].bytes;
  }
  split.split_at = total - val_target;
  return split;
}

// Writes GPT-2 documents to the training file, then, after SwitchToVal(), to
// the validation file, with <|endoftext|> between the documents of each
// split. Documents begin at their first piece of text, so a skipped (binary)
// file leaves no empty document behind.
class Gpt2DocumentWriter {
 public:
  // `tokenizer` and `out` must outlive this writer.
  Gpt2DocumentWriter(Gpt2Tokenizer* tokenizer, Outputs* out)
      : tokenizer_(tokenizer),
        out_(out),
        writer_(out->train.get()),
        encoder_(tokenizer, [this](const int* ids, size_t n) {
          return writer_->Append(ids, n);
        }) {}
  Gpt2DocumentWriter(const Gpt2DocumentWriter&) = delete;
  Gpt2DocumentWriter& operator=(const Gpt2DocumentWriter&) = delete;

  // Whether documents still go to the training file.
  bool in_train() const { return writer_ == out_->train.get(); }

  // Adds `text` to the current document, beginning one if none is open.
  absl::Status Add(std::string_view text) {
    if (!in_document_) TWIST_RETURN_IF_ERROR(BeginDocument());
    return encoder_.Add(text);
  }

  // Adds `text` as Add() does, except that when it has a line break at or
  // past byte `from`, the document ends after the first such break and the
  // rest of `text` begins the validation split.
  absl::Status AddSplittingAtLineBreak(std::string_view text, size_t from) {
    const size_t line_end = text.find('\n', from);
    if (line_end != std::string_view::npos) {
      TWIST_RETURN_IF_ERROR(Add(text.substr(0, line_end + 1)));
      TWIST_RETURN_IF_ERROR(SwitchToVal());
      text.remove_prefix(line_end + 1);
      if (text.empty()) return absl::OkStatus();
    }
    return Add(text);
  }

  // Ends the current document, if any; what follows goes to validation.
  absl::Status SwitchToVal() {
    if (in_document_) TWIST_RETURN_IF_ERROR(encoder_.End());
    in_document_ = false;
    writer_ = out_->val.get();
    split_has_document_ = false;
    return absl::OkStatus();
  }

  // Closes the document of a file whose streaming returned `streamed`: ends
  // it when that is OK. Returns `streamed` or the error of ending it.
  absl::Status FinishFile(absl::Status streamed) {
    if (streamed.ok() && in_document_) streamed = encoder_.End();
    in_document_ = false;
    return streamed;
  }

 private:
  absl::Status BeginDocument() {
    if (split_has_document_) {
      const int eot = tokenizer_->eot_id();
      TWIST_RETURN_IF_ERROR(writer_->Append(&eot, 1));
    }
    split_has_document_ = true;
    in_document_ = true;
    encoder_.Begin();
    return absl::OkStatus();
  }

  Gpt2Tokenizer* tokenizer_;
  Outputs* out_;
  TokenFileWriter* writer_;  // out_'s train or val file
  DocumentEncoder encoder_;
  bool split_has_document_ = false;  // an end-of-text goes before the next
  bool in_document_ = false;
};

// Streams `file` as one document into `writer`, adding its text's bytes to
// `text_bytes`. A lone document (`lone`) switches to validation at the first
// line break at or past text byte `split_at`. Errors name the file.
absl::Status WriteGpt2File(const CorpusFile& file, bool strip_tags, bool lone,
                           int64_t split_at, int64_t* text_bytes,
                           Gpt2DocumentWriter* writer) {
  bool skipped = false;
  absl::Status status = StreamText(
      file, strip_tags, /*skip_binary=*/!lone,
      [&](std::string_view text) -> absl::Status {
        const int64_t read = *text_bytes;
        *text_bytes += static_cast<int64_t>(text.size());
        if (lone && writer->in_train() && *text_bytes > split_at) {
          const size_t from =
              static_cast<size_t>(std::max<int64_t>(0, split_at - read));
          return writer->AddSplittingAtLineBreak(text, from);
        }
        return writer->Add(text);
      },
      &skipped);
  status = writer->FinishFile(std::move(status));
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("input file ", file.path,
                                                    ": ", status.message()));
  }
  return absl::OkStatus();
}

// GPT-2: a document per file, <|endoftext|> between the documents of each
// split; validation from the last documents, or, for a lone document, from
// the first line break at or past the split point of its text.
absl::Status PrepareGpt2(const PrepareOptions& options,
                         const std::vector<CorpusFile>& files, Outputs* out,
                         DatasetMeta* meta) {
  const std::string dir = options.tokenizer_dir.empty()
                              ? Gpt2Tokenizer::DefaultDir()
                              : options.tokenizer_dir;
  TWIST_ASSIGN_OR_RETURN(Gpt2Tokenizer tokenizer, Gpt2Tokenizer::Load(dir));
  const bool lone = files.size() == 1;
  TWIST_ASSIGN_OR_RETURN(const Gpt2Split split, PlanGpt2Split(options, files));
  Gpt2DocumentWriter writer(&tokenizer, out);
  int64_t text_bytes = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (i == split.first_val && !lone) {
      TWIST_RETURN_IF_ERROR(writer.SwitchToVal());
    }
    TWIST_RETURN_IF_ERROR(WriteGpt2File(files[i], options.strip_tags, lone,
                                        split.split_at, &text_bytes, &writer));
  }
  if (text_bytes < kMinCorpusBytes) return TooShort(options, text_bytes);
  meta->vocab_size = tokenizer.vocab_size();
  meta->tokenizer = "gpt2";
  return absl::OkStatus();
}

}  // namespace

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
  if (options.tokenizer != "bytes" && options.tokenizer != "gpt2") {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer '", options.tokenizer, "' is unknown: use bytes or gpt2"));
  }
  TWIST_ASSIGN_OR_RETURN(std::vector<CorpusFile> files,
                         ListCorpus(options.input, options.output_dir));
  std::error_code error;
  fs::create_directories(options.output_dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create output folder ",
                                            options.output_dir, " on host ",
                                            HostName(), ": ", error.message()));
  }
  TWIST_ASSIGN_OR_RETURN(Outputs out, Outputs::Create(options.output_dir));
  DatasetMeta meta;
  TWIST_RETURN_IF_ERROR(options.tokenizer == "gpt2"
                            ? PrepareGpt2(options, files, &out, &meta)
                            : PrepareBytes(options, files, &out, &meta));
  if (out.train->tokens() == 0 || out.val->tokens() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", options.input, " gives ", out.train->tokens(),
        " training and ", out.val->tokens(),
        " validation tokens: both need some; with one file, give it more "
        "lines (it is split at a line break), or give more files"));
  }
  meta.train_tokens = out.train->tokens();
  meta.val_tokens = out.val->tokens();
  TWIST_RETURN_IF_ERROR(out.train->Finish());
  TWIST_RETURN_IF_ERROR(out.val->Finish());
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
