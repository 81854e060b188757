// Streaming GPT-2 encoding of documents for dataset preparation: a document
// arrives in pieces of any size (cut anywhere, even inside a UTF-8 sequence)
// and its token ids leave through a callback, with memory bounded whatever
// the document's size. The ids are exactly Gpt2Tokenizer::Encode of the whole
// document.
#ifndef TWIST_COMMON_TOKENIZER_DOCUMENT_ENCODER_H_
#define TWIST_COMMON_TOKENIZER_DOCUMENT_ENCODER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/tokenizer/gpt2_tokenizer.h"

namespace twist::common {

// Encodes one document at a time: Begin(), Add() any number of times, End().
//
// How it stays exact while streaming: it encodes only up to the last "safe
// split point" seen so far, a position p where the code point before p is not
// whitespace and the code point at p is. No GPT-2 pre-token contains a
// non-whitespace code point followed by a whitespace one, and the pattern's
// only lookahead (`\s+(?!\S)`) concerns whitespace runs, which cannot reach
// across p; so Encode(text[:p]) followed by Encode(text[p:]) equals
// Encode(text). Bytes after the last split point stay buffered until more
// input or End(). Ordinary prose has a split point every few bytes.
//
// Not thread-safe; uses (and mutates the cache of) the tokenizer it is given,
// which must outlive it and not be used elsewhere concurrently.
class DocumentEncoder {
 public:
  // Receives ids in document order, n > 0 per call. A non-OK return is passed
  // back to the caller of Add/End, and the document is abandoned.
  using Callback = std::function<absl::Status(const int* ids, size_t n)>;

  struct Options {
    // Largest number of bytes buffered without a safe split point (a
    // document with a longer run of non-whitespace, or of whitespace, fails
    // with ResourceExhausted).
    size_t max_buffered_bytes = size_t{64} << 20;
  };

  DocumentEncoder(Gpt2Tokenizer* tokenizer, Callback callback);
  DocumentEncoder(Gpt2Tokenizer* tokenizer, Callback callback, Options options);

  // Starts a document; an unfinished earlier document is discarded.
  void Begin();

  // Appends bytes of the current document and emits the ids of everything
  // before the last safe split point. Errors (the document is then abandoned
  // and later Add/End calls return FailedPrecondition until Begin()):
  //   FailedPrecondition: no Begin(), or the document already failed.
  //   InvalidArgument: ill-formed UTF-8; the message names the byte offset
  //     within the document (a sequence cut across Add calls is fine).
  //   ResourceExhausted: more than max_buffered_bytes without a safe split
  //     point.
  //   Whatever the callback returns.
  absl::Status Add(std::string_view bytes);

  // Ends the document: emits the ids of the buffered rest. Errors as for Add;
  // InvalidArgument when the document ends inside a UTF-8 sequence. The
  // end-of-text id is not emitted: the caller separates documents.
  absl::Status End();

  // Bytes and ids of the current (or last) document so far.
  uint64_t document_bytes() const { return document_bytes_; }
  uint64_t document_ids() const { return document_ids_; }
  // Bytes held back, waiting for a split point (for tests and monitoring).
  size_t buffered_bytes() const { return buffer_.size(); }

 private:
  enum class State { kIdle, kInDocument, kFailed };

  absl::Status CheckInDocument() const;
  // Encodes buffer_[0, n) and emits the ids; drops those bytes.
  absl::Status Flush(size_t n);
  absl::Status Fail(absl::Status status);

  Gpt2Tokenizer* tokenizer_;
  Callback callback_;
  Options options_;

  State state_ = State::kIdle;
  std::string buffer_;          // Bytes not encoded yet.
  uint64_t buffer_offset_ = 0;  // Document offset of buffer_[0].
  size_t scanned_ = 0;          // buffer_[0, scanned_) is decoded.
  size_t split_ = 0;            // Last safe split point in buffer_ (0: none).
  bool have_previous_ = false;  // A code point precedes buffer_[scanned_].
  bool previous_is_space_ = false;
  uint64_t document_bytes_ = 0;
  uint64_t document_ids_ = 0;
  std::vector<int> ids_;  // Reused output buffer.
};

}  // namespace twist::common

#endif  // TWIST_COMMON_TOKENIZER_DOCUMENT_ENCODER_H_
