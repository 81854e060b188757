#include "common/model/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"

namespace twist::common {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100 << 20;  // the reference's own limit

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble},    {"F32", at::kFloat}, {"F16", at::kHalf},
    {"BF16", at::kBFloat16}, {"I64", at::kLong},  {"I32", at::kInt},
    {"I16", at::kShort},     {"I8", at::kChar},   {"U8", at::kByte},
    {"BOOL", at::kBool},
};

bool DtypeFromName(const std::string& name, at::ScalarType* type) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      *type = d.type;
      return true;
    }
  }
  return false;
}

// A parsed, checked header entry.
struct Entry {
  std::string name;
  at::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// The error for a safetensors file, named `where`, that is corrupt: `why`.
absl::Status Corrupt(const std::string& where, const std::string& why) {
  return absl::DataLossError(
      absl::StrCat("safetensors file ", where, " is corrupt: ", why));
}

// Reads the header's __metadata__ `value` into `metadata`: an object whose
// values are all strings.
absl::Status ParseMetadata(const nlohmann::json& value,
                           const std::string& where, Metadata* metadata) {
  if (!value.is_object())
    return Corrupt(where, "__metadata__ is not an object");
  for (auto m = value.begin(); m != value.end(); ++m) {
    if (!m.value().is_string()) {
      return Corrupt(where,
                     absl::StrCat("metadata '", m.key(), "' is not a string"));
    }
    (*metadata)[m.key()] = m.value().get<std::string>();
  }
  return absl::OkStatus();
}

// Reads the `shape` array of tensor `name` into `dims` and its element count
// into `numel`: non-negative integers whose product stays within 2^62.
absl::Status ParseShape(const nlohmann::json& shape, const std::string& name,
                        const std::string& where, std::vector<int64_t>* dims,
                        uint64_t* numel) {
  *numel = 1;
  for (const auto& dim : shape) {
    if (!dim.is_number_unsigned() &&
        !(dim.is_number_integer() && dim.get<int64_t>() >= 0)) {
      return Corrupt(where,
                     absl::StrCat("tensor '", name, "' has a bad dimension"));
    }
    const uint64_t d = dim.get<uint64_t>();
    if (d != 0 && *numel > (uint64_t{1} << 62) / d) {
      return Corrupt(where,
                     absl::StrCat("tensor '", name, "' is impossibly large"));
    }
    *numel *= d;
    dims->push_back(static_cast<int64_t>(d));
  }
  return absl::OkStatus();
}

// Parses and checks the header entry `v` of tensor `name` into `e`: a known
// dtype, a shape, and data_offsets that span exactly the shape's bytes within
// a data section of `data_size` bytes.
absl::Status ParseEntry(const std::string& name, const nlohmann::json& v,
                        uint64_t data_size, const std::string& where,
                        Entry* e) {
  e->name = name;
  if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() ||
      !v.contains("shape") || !v["shape"].is_array() ||
      !v.contains("data_offsets") || !v["data_offsets"].is_array() ||
      v["data_offsets"].size() != 2) {
    return Corrupt(where, absl::StrCat("entry '", name,
                                       "' lacks dtype, shape or data_offsets"));
  }
  if (!DtypeFromName(v["dtype"].get<std::string>(), &e->type)) {
    return Corrupt(where, absl::StrCat("tensor '", name, "' has unknown dtype ",
                                       v["dtype"].get<std::string>()));
  }
  uint64_t numel;
  TWIST_RETURN_IF_ERROR(ParseShape(v["shape"], name, where, &e->shape, &numel));
  const auto& off = v["data_offsets"];
  if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
    return Corrupt(where,
                   absl::StrCat("tensor '", name, "' has bad data_offsets"));
  }
  e->begin = off[0].get<uint64_t>();
  e->end = off[1].get<uint64_t>();
  const uint64_t bytes = numel * at::elementSize(e->type);
  if (e->end < e->begin || e->end - e->begin != bytes) {
    return Corrupt(where,
                   absl::StrCat("tensor '", name, "' spans ", e->end - e->begin,
                                " bytes but its shape needs ", bytes));
  }
  if (e->end > data_size) {
    return Corrupt(where,
                   absl::StrCat("tensor '", name, "' ends at byte ", e->end,
                                " but the data section has only ", data_size,
                                " (truncated file?)"));
  }
  return absl::OkStatus();
}

// Checks that the tensors of `entries` tile the data section of `data_size`
// bytes exactly: no gaps, no overlaps.
absl::Status CheckTiling(const std::vector<Entry>& entries, uint64_t data_size,
                         const std::string& where) {
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  uint64_t expected = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != expected) {
      return Corrupt(where,
                     absl::StrCat("tensor '", e->name, "' starts at byte ",
                                  e->begin, ", expected ", expected,
                                  " (overlapping or missing data)"));
    }
    expected = e->end;
  }
  if (expected != data_size) {
    return Corrupt(where,
                   absl::StrCat("data section has ", data_size,
                                " bytes but the tensors cover ", expected));
  }
  return absl::OkStatus();
}

// Parses and checks the JSON header against a data section of `data_size`
// bytes. `where` names the file in errors.
absl::Status ParseHeader(const std::string& header, uint64_t data_size,
                         const std::string& where, std::vector<Entry>* entries,
                         Metadata* metadata) {
  nlohmann::json root = nlohmann::json::parse(header, nullptr,
                                              /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return Corrupt(where, "header is not a JSON object");
  }
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      TWIST_RETURN_IF_ERROR(ParseMetadata(it.value(), where, metadata));
      continue;
    }
    Entry e;
    TWIST_RETURN_IF_ERROR(
        ParseEntry(it.key(), it.value(), data_size, where, &e));
    entries->push_back(std::move(e));
  }
  TWIST_RETURN_IF_ERROR(CheckTiling(*entries, data_size, where));
  // Keep file order stable: the header's order is JSON object order, which
  // nlohmann sorts by key; report tensors in data order instead.
  std::sort(entries->begin(), entries->end(),
            [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  return absl::OkStatus();
}

uint64_t ReadLittleEndian64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

absl::StatusOr<std::string> SafetensorsDtypeName(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return std::string(d.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", c10::toString(type), " has no safetensors name"));
}

absl::Status WriteSafetensors(const std::string& path,
                              const NamedTensors& tensors,
                              const Metadata& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    TWIST_ASSIGN_OR_RETURN(std::string dtype,
                           SafetensorsDtypeName(tensor.scalar_type()));
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", dtype},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(std::move(t));
  }
  std::string header_text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned, as the reference does.
  header_text.append((8 - (8 + header_text.size()) % 8) % 8, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = (header_text.size() >> (8 * i)) & 0xff;

  return WriteFileAtomically(path, [&](int fd, const std::string& tmp) {
    TWIST_RETURN_IF_ERROR(WriteAll(fd, length, sizeof(length), tmp));
    TWIST_RETURN_IF_ERROR(
        WriteAll(fd, header_text.data(), header_text.size(), tmp));
    for (const at::Tensor& t : cpu) {
      TWIST_RETURN_IF_ERROR(
          WriteAll(fd, t.data_ptr(), t.numel() * t.element_size(), tmp));
    }
    return absl::OkStatus();
  });
}

namespace {

// Reads `size` bytes at `offset` into `dst`; false on a short read.
using ReadAt = std::function<bool(uint64_t offset, void* dst, uint64_t size)>;

// Decodes a safetensors image of `total_size` bytes read through `read_at`;
// `where` names its source in errors.
absl::StatusOr<SafetensorsContents> Decode(uint64_t total_size,
                                           const std::string& where,
                                           const ReadAt& read_at) {
  auto corrupt = [&](const std::string& why) {
    return absl::DataLossError(
        absl::StrCat("safetensors file ", where, " is corrupt: ", why));
  };
  unsigned char length[8];
  if (total_size < 8 || !read_at(0, length, 8)) {
    return corrupt(absl::StrCat(
        "only ", total_size, " bytes, shorter than the 8-byte header length"));
  }
  const uint64_t header_size = ReadLittleEndian64(length);
  if (header_size > kMaxHeaderBytes || header_size > total_size - 8) {
    return corrupt(absl::StrCat("header length ", header_size,
                                " does not fit in ", total_size,
                                " bytes (truncated file?)"));
  }
  std::string header(header_size, '\0');
  if (!read_at(8, header.data(), header_size))
    return corrupt("cannot read header");
  SafetensorsContents out;
  std::vector<Entry> entries;
  const uint64_t data_start = 8 + header_size;
  TWIST_RETURN_IF_ERROR(ParseHeader(header, total_size - data_start, where,
                                    &entries, &out.metadata));
  for (const Entry& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.type));
    if (!read_at(data_start + e.begin, t.data_ptr(), e.end - e.begin)) {
      return corrupt(absl::StrCat("cannot read data of tensor '", e.name, "'"));
    }
    out.tensors.Set(e.name, std::move(t));
  }
  return out;
}

}  // namespace

absl::StatusOr<SafetensorsContents> ReadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return ErrnoStatus(errno, absl::StrCat("safetensors file ", path, " on host ", HostName()), "open");
  }
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  return Decode(
      file_size, path, [&](uint64_t offset, void* dst, uint64_t size) {
        in.seekg(static_cast<std::streamoff>(offset));
        return static_cast<bool>(in.read(static_cast<char*>(dst),
                                         static_cast<std::streamsize>(size)));
      });
}

absl::StatusOr<SafetensorsContents> DecodeSafetensors(
    const std::string& bytes) {
  return Decode(bytes.size(), "(in memory)",
                [&](uint64_t offset, void* dst, uint64_t size) {
                  if (offset + size > bytes.size()) return false;
                  std::memcpy(dst, bytes.data() + offset, size);
                  return true;
                });
}

}  // namespace twist::common
