// Streaming document encoding at safe split points; see document_encoder.h.
#include "common/tokenizer/document_encoder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/unicode_classes.h"

namespace twist::common {
namespace {

// Add() takes its input in slices of this size, so the buffer never holds
// more than max_buffered_bytes plus one slice, whatever the caller passes.
constexpr size_t kSliceBytes = size_t{1} << 20;

}  // namespace

DocumentEncoder::DocumentEncoder(Gpt2Tokenizer* tokenizer, Callback callback)
    : DocumentEncoder(tokenizer, std::move(callback), Options()) {}

DocumentEncoder::DocumentEncoder(Gpt2Tokenizer* tokenizer, Callback callback,
                                 Options options)
    : tokenizer_(tokenizer),
      callback_(std::move(callback)),
      options_(options) {}

void DocumentEncoder::Begin() {
  state_ = State::kInDocument;
  buffer_.clear();
  buffer_offset_ = 0;
  scanned_ = 0;
  split_ = 0;
  have_previous_ = false;
  previous_is_space_ = false;
  document_bytes_ = 0;
  document_ids_ = 0;
}

absl::Status DocumentEncoder::CheckInDocument() const {
  switch (state_) {
    case State::kInDocument:
      return absl::OkStatus();
    case State::kFailed:
      return absl::FailedPreconditionError(
          "DocumentEncoder: the document already failed; call Begin() to "
          "start another");
    case State::kIdle:
      break;
  }
  return absl::FailedPreconditionError(
      "DocumentEncoder: Add/End called without Begin()");
}

absl::Status DocumentEncoder::Fail(absl::Status status) {
  state_ = State::kFailed;
  buffer_.clear();
  buffer_.shrink_to_fit();
  return status;
}

absl::Status DocumentEncoder::Flush(size_t n) {
  ids_.clear();
  absl::Status status =
      tokenizer_->EncodeAppend(std::string_view(buffer_).substr(0, n), &ids_);
  if (!status.ok()) {
    // Cannot happen: the bytes were validated already.
    return Fail(absl::InternalError(absl::StrCat(
        "DocumentEncoder: encoding validated bytes at document offset ",
        buffer_offset_, " failed: ", status.message())));
  }
  buffer_.erase(0, n);
  buffer_offset_ += n;
  scanned_ -= n;
  split_ = 0;
  if (!ids_.empty()) {
    document_ids_ += ids_.size();
    status = callback_(ids_.data(), ids_.size());
    if (!status.ok()) return Fail(std::move(status));
  }
  return absl::OkStatus();
}

absl::Status DocumentEncoder::Add(std::string_view bytes) {
  if (absl::Status s = CheckInDocument(); !s.ok()) return s;
  while (!bytes.empty()) {
    const std::string_view slice = bytes.substr(0, kSliceBytes);
    bytes.remove_prefix(slice.size());
    buffer_.append(slice.data(), slice.size());
    document_bytes_ += slice.size();

    // Decode the new complete code points, remembering the last position
    // where whitespace follows non-whitespace.
    const size_t size = buffer_.size();
    while (scanned_ < size) {
      const unsigned char b = static_cast<unsigned char>(buffer_[scanned_]);
      bool is_space;
      size_t length;
      if (b < 0x80) {
        is_space = ClassifyCodePoint(b) == CharClass::kWhitespace;
        length = 1;
      } else {
        char32_t c;
        const Utf8Result r = DecodeUtf8(buffer_, scanned_, &c, &length);
        if (r == Utf8Result::kTruncated) break;  // Wait for more bytes.
        if (r == Utf8Result::kInvalid) {
          return Fail(InvalidUtf8Error(buffer_offset_ + scanned_));
        }
        is_space = ClassifyCodePoint(c) == CharClass::kWhitespace;
      }
      if (is_space && have_previous_ && !previous_is_space_) split_ = scanned_;
      have_previous_ = true;
      previous_is_space_ = is_space;
      scanned_ += length;
    }

    if (split_ > 0) {
      if (absl::Status s = Flush(split_); !s.ok()) return s;
    }
    if (buffer_.size() > options_.max_buffered_bytes) {
      return Fail(absl::ResourceExhaustedError(absl::StrCat(
          "DocumentEncoder: ", buffer_.size(),
          " bytes of the document from byte offset ", buffer_offset_,
          " have no safe split point (a non-whitespace character followed "
          "by whitespace); at most ",
          options_.max_buffered_bytes,
          " bytes are buffered. Split such documents before encoding")));
    }
  }
  return absl::OkStatus();
}

absl::Status DocumentEncoder::End() {
  if (absl::Status s = CheckInDocument(); !s.ok()) return s;
  if (scanned_ < buffer_.size()) {
    // The document ends inside a UTF-8 sequence.
    return Fail(InvalidUtf8Error(buffer_offset_ + scanned_));
  }
  if (!buffer_.empty()) {
    if (absl::Status s = Flush(buffer_.size()); !s.ok()) return s;
  }
  state_ = State::kIdle;
  return absl::OkStatus();
}

}  // namespace twist::common
