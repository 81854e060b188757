#include "common/ist/update_codec.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

constexpr int64_t kInt8Block = 256;
constexpr int64_t kInt4Block = 64;
constexpr int64_t kTopKChunk = 4096;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Entries kept of a top-k chunk of `length` elements.
int64_t KeptOf(int64_t length, double fraction) {
  const int64_t k = static_cast<int64_t>(std::ceil(fraction * length - 1e-9));
  return std::clamp<int64_t>(k, 1, length);
}

// Top-k's chunk lengths: full chunks, then a shorter last one if any.
struct TopKLayout {
  int64_t full_chunks = 0;
  int64_t k_full = 0;
  int64_t last_length = 0;  // 0: no shorter last chunk
  int64_t k_last = 0;

  TopKLayout(int64_t numel, double fraction)
      : full_chunks(numel / kTopKChunk),
        k_full(KeptOf(kTopKChunk, fraction)),
        last_length(numel % kTopKChunk),
        k_last(last_length > 0 ? KeptOf(last_length, fraction) : 0) {}
  int64_t chunks() const { return full_chunks + (last_length > 0 ? 1 : 0); }
  int64_t kept() const { return full_chunks * k_full + k_last; }
};

// `n` elements of `flat`, zero-padded to `blocks` x `block`.
at::Tensor Blocks(const at::Tensor& flat, int64_t blocks, int64_t block) {
  at::Tensor padded = at::zeros({blocks * block}, flat.options());
  padded.narrow(0, 0, flat.numel()).copy_(flat);
  return padded.view({blocks, block});  // [blocks, block]
}

// Round-to-nearest codes of `values` ([rows, cols]) in steps of `step`
// ([rows]), within [-limit, limit]; a zero step gives zero codes.
at::Tensor Quantize(const at::Tensor& values, const at::Tensor& step,
                    double limit) {
  const at::Tensor safe = at::where(step > 0, step, at::ones_like(step));
  return at::round(values / safe.unsqueeze(1)).clamp_(-limit, limit);
}

// Signed 4-bit codes (float, in [-7, 7]) as nibbles q + 8, two per byte, low
// nibble first; an odd count is padded with a zero code.
at::Tensor PackNibbles(const at::Tensor& codes) {
  at::Tensor q = (codes.reshape({-1}) + 8).to(at::kByte);
  if (q.numel() % 2 == 1) q = at::cat({q, at::full({1}, 8, q.options())});
  const at::Tensor pairs = q.view({-1, 2});
  return pairs.select(1, 0) + pairs.select(1, 1) * 16;  // [numel / 2]
}

// The first `count` codes of `packed`, as float values in [-7, 7];
// InvalidArgument for a nibble no encoder writes (0).
absl::StatusOr<at::Tensor> UnpackNibbles(const at::Tensor& packed,
                                         int64_t count) {
  const at::Tensor low = at::bitwise_and(packed, 15);
  const at::Tensor high = at::bitwise_right_shift(packed, 4);
  const at::Tensor q = at::stack({low, high}, 1).view({-1}).narrow(0, 0, count);
  if (q.numel() > 0 && (q == 0).any().item<bool>()) {
    return absl::InvalidArgumentError(
        absl::StrCat("4-bit code ", (q == 0).nonzero()[0].item<int64_t>(),
                     " is 0, which no encoder writes"));
  }
  return q.to(at::kFloat) - 8;
}

// The float32 steps at the front of `bytes`; InvalidArgument unless each is
// finite and not negative.
absl::StatusOr<at::Tensor> Steps(const at::Tensor& bytes, int64_t count) {
  const at::Tensor steps =
      bytes.narrow(0, 0, 4 * count).clone().view(at::kFloat);  // [count]
  const at::Tensor bad = at::logical_not(at::isfinite(steps)).logical_or_(steps < 0);
  if (count > 0 && bad.any().item<bool>()) {
    const int64_t i = bad.nonzero()[0].item<int64_t>();
    return absl::InvalidArgumentError(
        absl::StrCat("step ", i, " is ", steps[i].item<float>(),
                     " (steps are finite and not negative)"));
  }
  return steps;
}

at::Tensor EncodeBlocks(const at::Tensor& flat, int64_t block, double limit) {
  const int64_t n = flat.numel();
  const int64_t blocks = CeilDiv(n, block);
  const at::Tensor values = Blocks(flat, blocks, block);  // [blocks, block]
  const at::Tensor step = values.abs().amax(1) / static_cast<float>(limit);
  const at::Tensor codes = Quantize(values, step, limit);  // [blocks, block]
  const at::Tensor step_bytes = step.contiguous().view(at::kByte);
  if (limit == 127) {
    const at::Tensor code_bytes =
        codes.view({-1}).narrow(0, 0, n).to(at::kChar).view(at::kByte);
    return at::cat({step_bytes, code_bytes});
  }
  return at::cat({step_bytes, PackNibbles(codes)});
}

absl::StatusOr<at::Tensor> DecodeBlocks(const at::Tensor& bytes, int64_t n,
                                        int64_t block, double limit) {
  const int64_t blocks = CeilDiv(n, block);
  absl::StatusOr<at::Tensor> step = Steps(bytes, blocks);
  if (!step.ok()) return step.status();
  const at::Tensor payload = bytes.narrow(0, 4 * blocks, bytes.numel() - 4 * blocks);
  at::Tensor codes;
  if (limit == 127) {
    codes = payload.clone().view(at::kChar);
    if (n > 0 && (codes == -128).any().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "int8 code ", (codes == -128).nonzero()[0].item<int64_t>(),
          " is -128, which no encoder writes"));
    }
    codes = codes.to(at::kFloat);
  } else {
    absl::StatusOr<at::Tensor> q = UnpackNibbles(payload, blocks * block);
    if (!q.ok()) return q.status();
    codes = *q;
  }
  const at::Tensor values = Blocks(codes.narrow(0, 0, n), blocks, block) *
                            step->unsqueeze(1);  // [blocks, block]
  return values.view({-1}).narrow(0, 0, n);
}

// Top-k's chosen offsets ([rows, k], ascending) and their codes of `values`
// ([rows, length]) with one step per row.
void SelectTopK(const at::Tensor& values, int64_t k, std::vector<at::Tensor>* steps,
                std::vector<at::Tensor>* offsets, std::vector<at::Tensor>* codes) {
  const at::Tensor chosen =
      std::get<0>(at::sort(std::get<1>(values.abs().topk(k, 1, true, false)), 1));
  const at::Tensor kept = values.gather(1, chosen);  // [rows, k]
  const at::Tensor step = kept.abs().amax(1) / 7.0f;  // [rows]
  steps->push_back(step);
  offsets->push_back(chosen.to(at::kShort).reshape({-1}));
  codes->push_back(Quantize(kept, step, 7).reshape({-1}));
}

at::Tensor EncodeTopK(const at::Tensor& flat, double fraction) {
  const TopKLayout layout(flat.numel(), fraction);
  std::vector<at::Tensor> steps, offsets, codes;
  if (layout.full_chunks > 0) {
    SelectTopK(flat.narrow(0, 0, layout.full_chunks * kTopKChunk)
                   .view({layout.full_chunks, kTopKChunk}),
               layout.k_full, &steps, &offsets, &codes);
  }
  if (layout.last_length > 0) {
    SelectTopK(flat.narrow(0, layout.full_chunks * kTopKChunk, layout.last_length)
                   .view({1, layout.last_length}),
               layout.k_last, &steps, &offsets, &codes);
  }
  return at::cat({at::cat(steps).contiguous().view(at::kByte),
                  at::cat(offsets).contiguous().view(at::kByte),
                  PackNibbles(at::cat(codes))});
}

// InvalidArgument unless the offsets of each of `rows` chunks ([rows, k])
// ascend strictly and stay below `length`.
absl::Status CheckOffsets(const at::Tensor& offsets, int64_t length,
                          int64_t first_chunk) {
  at::Tensor bad = (offsets < 0).logical_or_(offsets >= length).any(1);
  if (offsets.size(1) > 1) {
    bad.logical_or_((offsets.narrow(1, 1, offsets.size(1) - 1) <=
                     offsets.narrow(1, 0, offsets.size(1) - 1))
                        .any(1));
  }
  if (bad.any().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "top-k offsets of chunk ", first_chunk + bad.nonzero()[0].item<int64_t>(),
        " do not ascend within its ", length, " elements"));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> DecodeTopK(const at::Tensor& bytes, int64_t n,
                                      double fraction) {
  const TopKLayout layout(n, fraction);
  const int64_t chunks = layout.chunks();
  const int64_t kept = layout.kept();
  absl::StatusOr<at::Tensor> step = Steps(bytes, chunks);
  if (!step.ok()) return step.status();
  const at::Tensor offsets =
      bytes.narrow(0, 4 * chunks, 2 * kept).clone().view(at::kShort).to(at::kLong);
  absl::StatusOr<at::Tensor> q = UnpackNibbles(
      bytes.narrow(0, 4 * chunks + 2 * kept, (kept + 1) / 2), kept);
  if (!q.ok()) return q.status();
  at::Tensor out = at::zeros({chunks * kTopKChunk}, bytes.options().dtype(at::kFloat));
  int64_t at_entry = 0;
  struct Rows {
    int64_t rows, length, k, first;
  };
  const Rows parts[] = {
      {layout.full_chunks, kTopKChunk, layout.k_full, 0},
      {layout.last_length > 0 ? 1 : 0, layout.last_length, layout.k_last,
       layout.full_chunks}};
  for (const auto& [rows, length, k, first] : parts) {
    if (rows == 0) continue;
    const at::Tensor off = offsets.narrow(0, at_entry, rows * k).view({rows, k});
    if (absl::Status s = CheckOffsets(off, length, first); !s.ok()) return s;
    const at::Tensor base =
        (at::arange(first, first + rows, off.options()) * kTopKChunk).unsqueeze(1);
    const at::Tensor values = q->narrow(0, at_entry, rows * k).view({rows, k}) *
                              step->narrow(0, first, rows).unsqueeze(1);
    out.index_put_({(base + off).view({-1})}, values.view({-1}));
    at_entry += rows * k;
  }
  return out.narrow(0, 0, n);
}


// The block codecs with one pass over memory on the CPU (the tensor
// operations above take several, each into fresh memory): the same
// arithmetic (a float division by the step, rounded half to even; a float
// product back), so the bytes and values are those of EncodeBlocks and
// DecodeBlocks, bit for bit, whatever the thread count.
at::Tensor EncodeBlocksOnCpu(const at::Tensor& flat, int64_t block,
                             double limit) {
  const int64_t n = flat.numel();
  const int64_t blocks = CeilDiv(n, block);
  const bool bytes_per_code = limit == 127;
  const int64_t code_bytes = bytes_per_code ? n : blocks * block / 2;
  at::Tensor out = at::empty({4 * blocks + code_bytes}, at::kByte);
  uint8_t* steps = out.data_ptr<uint8_t>();
  uint8_t* codes = steps + 4 * blocks;
  const float* x = flat.data_ptr<float>();
  const float lim = static_cast<float>(limit);
  at::parallel_for(0, blocks, 256, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * block, end = std::min(n, begin + block);
      float amax = 0;
      for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float step = amax / lim;
      std::memcpy(steps + 4 * b, &step, 4);
      const float safe = step > 0 ? step : 1.0f;
      for (int64_t i = begin; i < begin + block; ++i) {
        const float v = i < end ? x[i] : 0.0f;
        const float q = std::clamp(std::nearbyint(v / safe), -lim, lim);
        if (bytes_per_code) {
          if (i < end) codes[i] = static_cast<uint8_t>(static_cast<int8_t>(q));
        } else {
          const uint8_t nibble = static_cast<uint8_t>(q + 8);
          uint8_t& byte = codes[i / 2];
          byte = (i % 2 == 0) ? nibble : static_cast<uint8_t>(byte | (nibble << 4));
        }
      }
    }
  });
  return out;
}

absl::StatusOr<at::Tensor> DecodeBlocksOnCpu(const at::Tensor& bytes,
                                             int64_t n, int64_t block,
                                             double limit) {
  const int64_t blocks = CeilDiv(n, block);
  const bool bytes_per_code = limit == 127;
  const uint8_t* data = bytes.data_ptr<uint8_t>();
  std::vector<float> step(blocks);
  std::memcpy(step.data(), data, 4 * blocks);
  for (int64_t b = 0; b < blocks; ++b) {
    if (!std::isfinite(step[b]) || step[b] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("step ", b, " is ", step[b],
                       " (steps are finite and not negative)"));
    }
  }
  const uint8_t* codes = data + 4 * blocks;
  if (bytes_per_code) {
    const uint8_t* bad = std::find(codes, codes + n, uint8_t{128});
    if (bad != codes + n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "int8 code ", bad - codes, " is -128, which no encoder writes"));
    }
  } else {
    for (int64_t i = 0; i < blocks * block; ++i) {
      if (((codes[i / 2] >> (4 * (i % 2))) & 15) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "4-bit code ", i, " is 0, which no encoder writes"));
      }
    }
  }
  at::Tensor out = at::empty({n}, at::kFloat);
  float* y = out.data_ptr<float>();
  at::parallel_for(0, blocks, 256, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * block, end = std::min(n, begin + block);
      for (int64_t i = begin; i < end; ++i) {
        const float q =
            bytes_per_code
                ? static_cast<float>(static_cast<int8_t>(codes[i]))
                : static_cast<float>(((codes[i / 2] >> (4 * (i % 2))) & 15)) - 8;
        y[i] = q * step[b];
      }
    }
  });
  return out;
}
}  // namespace

const char* UpdateCodecName(UpdateCodec codec) {
  switch (codec) {
    case UpdateCodec::kNone:
      return "none";
    case UpdateCodec::kInt8:
      return "int8";
    case UpdateCodec::kInt4:
      return "int4";
    case UpdateCodec::kTopK:
      return "topk";
  }
  return "unknown";
}

int64_t EncodedBytes(const UpdateEncoding& encoding, int64_t numel) {
  switch (encoding.codec) {
    case UpdateCodec::kInt8:
      return 4 * CeilDiv(numel, kInt8Block) + numel;
    case UpdateCodec::kInt4:
      return 4 * CeilDiv(numel, kInt4Block) + kInt4Block / 2 * CeilDiv(numel, kInt4Block);
    case UpdateCodec::kTopK: {
      const TopKLayout layout(numel, encoding.topk_fraction);
      return 4 * layout.chunks() + 2 * layout.kept() + (layout.kept() + 1) / 2;
    }
    case UpdateCodec::kNone:
      break;
  }
  return 4 * numel;
}

at::Tensor EncodeUpdate(const at::Tensor& values,
                        const UpdateEncoding& encoding) {
  return EncodeUpdate(values, encoding, /*tensor_ops=*/!values.is_cpu());
}

at::Tensor EncodeUpdate(const at::Tensor& values,
                        const UpdateEncoding& encoding, bool tensor_ops) {
  const at::Tensor flat =
      values.reshape({-1}).to(at::kFloat).contiguous();  // [numel]
  if (flat.numel() == 0) return at::empty({0}, flat.options().dtype(at::kByte));
  switch (encoding.codec) {
    case UpdateCodec::kInt8:
      return tensor_ops ? EncodeBlocks(flat, kInt8Block, 127)
                        : EncodeBlocksOnCpu(flat, kInt8Block, 127);
    case UpdateCodec::kInt4:
      return tensor_ops ? EncodeBlocks(flat, kInt4Block, 7)
                        : EncodeBlocksOnCpu(flat, kInt4Block, 7);
    case UpdateCodec::kTopK:
      return EncodeTopK(flat, encoding.topk_fraction);
    case UpdateCodec::kNone:
      break;
  }
  return flat.clone().view(at::kByte);
}

absl::StatusOr<at::Tensor> DecodeUpdate(const at::Tensor& bytes,
                                        at::IntArrayRef shape,
                                        const UpdateEncoding& encoding) {
  return DecodeUpdate(bytes, shape, encoding, /*tensor_ops=*/!bytes.is_cpu());
}

absl::StatusOr<at::Tensor> DecodeUpdate(const at::Tensor& bytes,
                                        at::IntArrayRef shape,
                                        const UpdateEncoding& encoding,
                                        bool tensor_ops) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const int64_t want = EncodedBytes(encoding, n);
  if (bytes.scalar_type() != at::kByte || bytes.dim() != 1 ||
      bytes.numel() != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        UpdateCodecName(encoding.codec), " form of ", n, " elements takes ",
        want, " bytes, got ", bytes.numel()));
  }
  if (n == 0) return at::zeros(shape, bytes.options().dtype(at::kFloat));
  absl::StatusOr<at::Tensor> flat;
  switch (encoding.codec) {
    case UpdateCodec::kInt8:
      flat = tensor_ops ? DecodeBlocks(bytes, n, kInt8Block, 127)
                        : DecodeBlocksOnCpu(bytes.contiguous(), n, kInt8Block, 127);
      break;
    case UpdateCodec::kInt4:
      flat = tensor_ops ? DecodeBlocks(bytes, n, kInt4Block, 7)
                        : DecodeBlocksOnCpu(bytes.contiguous(), n, kInt4Block, 7);
      break;
    case UpdateCodec::kTopK:
      flat = DecodeTopK(bytes, n, encoding.topk_fraction);
      break;
    case UpdateCodec::kNone:
      flat = bytes.clone().view(at::kFloat);
      break;
  }
  if (!flat.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        UpdateCodecName(encoding.codec), " form: ", flat.status().message()));
  }
  return flat->reshape(shape);
}

}  // namespace twist::common
