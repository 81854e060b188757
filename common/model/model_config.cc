#include "common/model/model_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace twist::common {

const char* ActivationName(Activation activation) {
  return activation == Activation::kGeluTanh ? "gelu_tanh" : "gelu";
}

absl::StatusOr<Activation> ParseActivation(const std::string& name) {
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_tanh") return Activation::kGeluTanh;
  return absl::InvalidArgumentError(absl::StrCat(
      "activation '", name, "' is unknown: use gelu or gelu_tanh"));
}

ModelConfig ModelConfig::Full(int n_layer, int n_head, int n_embd,
                              int block_size, int vocab_size) {
  ModelConfig c;
  c.n_layer = n_layer;
  c.n_embd = n_embd;
  c.head_dim = n_head > 0 ? n_embd / n_head : 0;
  c.n_head.assign(n_layer > 0 ? n_layer : 0, n_head);
  c.ffn_width.assign(n_layer > 0 ? n_layer : 0, 4 * n_embd);
  c.block_size = block_size;
  c.vocab_size = vocab_size;
  return c;
}

absl::Status ModelConfig::Validate() const {
  auto bad = [](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("model.", field, ": ", why));
  };
  if (n_layer <= 0) return bad("n_layer", "must be at least 1");
  if (n_embd <= 0) return bad("n_embd", "must be at least 1");
  if (head_dim <= 0) return bad("head_dim", "must be at least 1");
  if (block_size <= 0) return bad("block_size", "must be at least 1");
  if (vocab_size <= 0) return bad("vocab_size", "must be at least 1");
  if (vocab_size > 65536) {
    return bad("vocab_size",
               "must be at most 65536: token files hold uint16 ids");
  }
  if (vocab_used < 0 || vocab_used > vocab_size) {
    return bad("vocab_used",
               absl::StrCat(vocab_used, " must be in [0, vocab_size ",
                            vocab_size, "]"));
  }
  if (static_cast<int>(n_head.size()) != n_layer) {
    return bad("n_head", absl::StrCat("has ", n_head.size(), " entries for ",
                                      n_layer, " layers"));
  }
  if (static_cast<int>(ffn_width.size()) != n_layer) {
    return bad("ffn_width", absl::StrCat("has ", ffn_width.size(),
                                         " entries for ", n_layer, " layers"));
  }
  for (int l = 0; l < n_layer; ++l) {
    if (n_head[l] < 0) {
      return bad(absl::StrCat("n_head[", l, "]"), "must be non-negative");
    }
    if (ffn_width[l] < 0) {
      return bad(absl::StrCat("ffn_width[", l, "]"), "must be non-negative");
    }
  }
  return absl::OkStatus();
}

int64_t ModelConfig::NumParameters() const {
  const int64_t c = n_embd;
  int64_t total = static_cast<int64_t>(vocab_size) * c +  // wte (tied)
                  static_cast<int64_t>(block_size) * c +  // wpe
                  2 * c;                                  // ln_f
  for (int l = 0; l < n_layer; ++l) {
    const int64_t hd = static_cast<int64_t>(n_head[l]) * head_dim;
    const int64_t f = ffn_width[l];
    total += 4 * c;                // ln_1, ln_2
    total += 3 * hd * c + 3 * hd;  // c_attn
    total += c * hd + c;           // attn.c_proj
    total += f * c + f;            // c_fc
    total += c * f + c;            // mlp.c_proj
  }
  return total;
}

bool ModelConfig::IsNanoGptLayout() const {
  for (int l = 0; l < n_layer; ++l) {
    if (n_head[l] * head_dim != n_embd || ffn_width[l] != 4 * n_embd) {
      return false;
    }
  }
  return true;
}

std::string ModelConfig::DebugString() const {
  return absl::StrCat(
      "n_layer=", n_layer, " n_embd=", n_embd, " head_dim=", head_dim,
      " n_head=[", absl::StrJoin(n_head, ","), "] ffn_width=[",
      absl::StrJoin(ffn_width, ","), "] block_size=", block_size,
      " vocab_size=", vocab_size,
      vocab_used > 0 ? absl::StrCat(" vocab_used=", vocab_used) : "",
      activation == Activation::kGelu
          ? ""
          : absl::StrCat(" activation=", ActivationName(activation)));
}

bool ModelConfig::operator==(const ModelConfig& o) const {
  return n_layer == o.n_layer && n_embd == o.n_embd && head_dim == o.head_dim &&
         n_head == o.n_head && ffn_width == o.ffn_width &&
         block_size == o.block_size && vocab_size == o.vocab_size &&
         UsedVocab() == o.UsedVocab() && activation == o.activation;
}

}  // namespace twist::common
