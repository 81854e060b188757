#include "common/transport/wire_chunks.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace twist::common {
namespace {

constexpr int kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutTag(std::string* out, int field, int wire_type) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | wire_type);
}

// Reads across a list of spans as one stream.
class SpanReader {
 public:
  SpanReader(const std::vector<Span>& spans, size_t limit)
      : spans_(spans), remaining_(limit) {}

  size_t remaining() const { return remaining_; }

  absl::Status Byte(uint8_t* b) {
    if (remaining_ == 0) return Truncated();
    while (offset_ == spans_[index_].size) {
      ++index_;
      offset_ = 0;
    }
    *b = static_cast<uint8_t>(spans_[index_].data[offset_++]);
    --remaining_;
    return absl::OkStatus();
  }

  absl::Status Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = 0;
      TWIST_RETURN_IF_ERROR(Byte(&b));
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        "malformed chunk message: varint longer than 10 bytes");
  }

  // The next `n` bytes as spans into the input (no copy).
  absl::Status Take(size_t n, std::vector<Span>* out) {
    if (n > remaining_) return Truncated();
    remaining_ -= n;
    while (n > 0) {
      while (offset_ == spans_[index_].size) {
        ++index_;
        offset_ = 0;
      }
      const size_t k = std::min(n, spans_[index_].size - offset_);
      out->push_back({spans_[index_].data + offset_, k});
      offset_ += k;
      n -= k;
    }
    return absl::OkStatus();
  }

  absl::Status String(size_t n, std::string* out) {
    std::vector<Span> spans;
    TWIST_RETURN_IF_ERROR(Take(n, &spans));
    out->clear();
    for (const Span& s : spans) out->append(s.data, s.size);
    return absl::OkStatus();
  }

  absl::Status Skip(int wire_type) {
    uint64_t v = 0;
    std::vector<Span> ignored;
    switch (wire_type) {
      case kVarint:
        return Varint(&v);
      case kFixed64:
        return Take(8, &ignored);
      case kFixed32:
        return Take(4, &ignored);
      case kLength:
        TWIST_RETURN_IF_ERROR(Varint(&v));
        return Take(v, &ignored);
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("malformed chunk message: wire type ", wire_type));
    }
  }

  // A reader over the next `n` bytes, which this reader then skips.
  absl::StatusOr<SpanReader> Sub(size_t n) {
    if (n > remaining_) return Truncated();
    SpanReader sub = *this;
    sub.remaining_ = n;
    std::vector<Span> ignored;
    TWIST_RETURN_IF_ERROR(Take(n, &ignored));
    return sub;
  }

 private:
  static absl::Status Truncated() {
    return absl::InvalidArgumentError("malformed chunk message: truncated");
  }

  const std::vector<Span>& spans_;
  size_t index_ = 0;
  size_t offset_ = 0;
  size_t remaining_;
};

absl::Status DecodeChunk(SpanReader& r, ChunkView* view) {
  while (r.remaining() > 0) {
    uint64_t tag = 0, v = 0;
    TWIST_RETURN_IF_ERROR(r.Varint(&tag));
    const int field = static_cast<int>(tag >> 3),
              wire = static_cast<int>(tag & 7);
    if (field == 1 && wire == kLength) {
      TWIST_RETURN_IF_ERROR(r.Varint(&v));
      TWIST_RETURN_IF_ERROR(r.String(v, &view->name));
    } else if (field == 2 && wire == kLength) {  // packed shape
      TWIST_RETURN_IF_ERROR(r.Varint(&v));
      TWIST_ASSIGN_OR_RETURN(SpanReader packed, r.Sub(v));
      while (packed.remaining() > 0) {
        TWIST_RETURN_IF_ERROR(packed.Varint(&v));
        view->shape.push_back(static_cast<int64_t>(v));
      }
    } else if (field == 2 && wire == kVarint) {  // unpacked shape
      TWIST_RETURN_IF_ERROR(r.Varint(&v));
      view->shape.push_back(static_cast<int64_t>(v));
    } else if (field == 3 && wire == kVarint) {
      TWIST_RETURN_IF_ERROR(r.Varint(&v));
      view->dtype = static_cast<twist::v1::DType>(static_cast<int>(v));
    } else if (field == 4 && wire == kVarint) {
      TWIST_RETURN_IF_ERROR(r.Varint(&view->offset));
    } else if (field == 5 && wire == kLength) {
      TWIST_RETURN_IF_ERROR(r.Varint(&v));
      view->data.clear();
      TWIST_RETURN_IF_ERROR(r.Take(v, &view->data));
      view->data_size = v;
    } else {
      TWIST_RETURN_IF_ERROR(r.Skip(wire));  // unknown fields, as protobuf does
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeChunkPrefix(int chunk_field, const std::string& name,
                              const std::vector<int64_t>& shape,
                              twist::v1::DType dtype, uint64_t offset,
                              size_t data_size) {
  std::string chunk;
  if (!name.empty()) {
    PutTag(&chunk, 1, kLength);
    PutVarint(&chunk, name.size());
    chunk += name;
  }
  if (!shape.empty()) {
    std::string packed;
    for (int64_t d : shape) PutVarint(&packed, static_cast<uint64_t>(d));
    PutTag(&chunk, 2, kLength);
    PutVarint(&chunk, packed.size());
    chunk += packed;
  }
  if (dtype != twist::v1::DTYPE_UNSPECIFIED) {
    PutTag(&chunk, 3, kVarint);
    PutVarint(&chunk, static_cast<uint64_t>(dtype));
  }
  if (offset != 0) {
    PutTag(&chunk, 4, kVarint);
    PutVarint(&chunk, offset);
  }
  if (data_size != 0) {
    PutTag(&chunk, 5, kLength);
    PutVarint(&chunk, data_size);
  }
  std::string out;
  PutTag(&out, chunk_field, kLength);
  PutVarint(&out, chunk.size() + data_size);
  out += chunk;
  return out;
}

absl::StatusOr<bool> DecodeChunkMessage(const std::vector<Span>& message,
                                        int chunk_field, ChunkView* view) {
  size_t total = 0;
  for (const Span& s : message) total += s.size;
  SpanReader r(message, total);
  bool found = false;
  *view = ChunkView();
  while (r.remaining() > 0) {
    uint64_t tag = 0, length = 0;
    TWIST_RETURN_IF_ERROR(r.Varint(&tag));
    const int field = static_cast<int>(tag >> 3),
              wire = static_cast<int>(tag & 7);
    if (field == chunk_field && wire == kLength) {
      TWIST_RETURN_IF_ERROR(r.Varint(&length));
      TWIST_ASSIGN_OR_RETURN(SpanReader chunk, r.Sub(length));
      TWIST_RETURN_IF_ERROR(DecodeChunk(chunk, view));
      found = true;
    } else if (field != chunk_field) {
      // Another member of the oneof (a header): not ours to decode.
      return false;
    } else {
      return absl::InvalidArgumentError(
          "malformed chunk message: chunk is not length-delimited");
    }
  }
  return found;
}

ChunkView ViewOf(const twist::v1::TensorChunk& chunk) {
  ChunkView view;
  view.name = chunk.name();
  view.shape.assign(chunk.shape().begin(), chunk.shape().end());
  view.dtype = chunk.dtype();
  view.offset = chunk.offset();
  view.data.push_back({chunk.data().data(), chunk.data().size()});
  view.data_size = chunk.data().size();
  return view;
}

}  // namespace twist::common
