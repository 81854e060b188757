// Shape of a GPT-2-style decoder, full or subnetwork.
//
// Legend used in comments across the project: B batch, T time (tokens),
// C model width (n_embd), H heads in a layer, D head width, F FFN width of a
// layer, V vocabulary, L layers.
//
// A full model usually has H * D == C and F == 4 * C in every layer (nanoGPT's
// layout). A subnetwork keeps C, D, T and V and has fewer heads and FFN
// columns, different per layer, possibly none.
#ifndef TWIST_COMMON_MODEL_MODEL_CONFIG_H_
#define TWIST_COMMON_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace twist::common {

// The FFN's nonlinearity: GELU exactly (erf; this project's default, as
// nanoGPT's), or its tanh approximation (GPT-2's, Hugging Face's "gelu_new").
enum class Activation { kGelu, kGeluTanh };

// "gelu" or "gelu_tanh", as exports' metadata ("twist.activation") spell it.
const char* ActivationName(Activation activation);
// InvalidArgument naming the accepted spellings for anything else.
absl::StatusOr<Activation> ParseActivation(const std::string& name);

struct ModelConfig {
  int n_layer = 4;                                    // L
  int n_embd = 128;                                   // C
  int head_dim = 32;                                  // D
  std::vector<int> n_head = {4, 4, 4, 4};             // H per layer
  std::vector<int> ffn_width = {512, 512, 512, 512};  // F per layer
  int block_size = 128;                               // longest context T
  int vocab_size = 256;  // V (byte-level by default)
  // Ids at or above vocab_used are padding (vocab_size rounded up for faster
  // matrix multiplies): their logits are -inf, so they are never sampled and
  // never in the loss. 0: no padding, every id is used.
  int vocab_used = 0;
  Activation activation = Activation::kGelu;

  // The ids a tokenizer can produce: vocab_used, or vocab_size without
  // padding.
  int UsedVocab() const { return vocab_used > 0 ? vocab_used : vocab_size; }

  // A full model: H heads of width C / H and F = 4 * C in every layer.
  // n_embd must be divisible by n_head (checked by Validate()).
  static ModelConfig Full(int n_layer, int n_head, int n_embd, int block_size,
                          int vocab_size);

  // InvalidArgument naming the first field that is out of range.
  absl::Status Validate() const;

  // Parameter count, counting the tied embedding once.
  int64_t NumParameters() const;

  // True when H * D == C and F == 4 * C in every layer, so the model is laid
  // out exactly as nanoGPT's GPT and loads there without metadata.
  bool IsNanoGptLayout() const;

  std::string DebugString() const;

  bool operator==(const ModelConfig& other) const;
  bool operator!=(const ModelConfig& other) const { return !(*this == other); }
};

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_MODEL_CONFIG_H_
